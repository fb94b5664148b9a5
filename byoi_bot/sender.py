"""The outbox's sender: one thread that drains `core.outbox` at the pace Slack allows.

Slack takes about one message per second per channel and answers 429 with `Retry-After`
beyond that. The sender sends the oldest waiting post of each lane (channel and kind), at
most one per lane every `interval` seconds, and waits out a lane's `Retry-After` without
holding the others. The store wakes it when something is queued.
"""

from __future__ import annotations

import logging
import threading
import time

from .core.outbox import Courier
from .logs import about

log = logging.getLogger(__name__)

IDLE_WAIT = 5.0


class OutboxSender:
    """Drains the outbox from a daemon thread; `start()` / `stop()`."""

    def __init__(self, courier: Courier, interval: float = 1.0) -> None:
        self.courier = courier
        self.interval = interval
        self._ready_at: dict[tuple[str, str], float] = {}  # lane -> monotonic time
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._rounds = threading.Condition()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Send from now on; posts a dead sender left half-sent go back in line first."""
        self.courier.outbox.resume_sending()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="byoi-outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the post being sent (the rest waits in the store for the next start)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Something was queued: look now."""
        self._wake.set()

    def wait_empty(self, timeout: float) -> bool:
        """Wait until nothing is left to send (checked after each round); False on timeout."""
        with self._rounds:
            return self._rounds.wait_for(lambda: self.courier.outbox.backlog() == 0, timeout)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                wait = self.send_due()
            except Exception:  # a broken store must not kill the thread
                log.exception("outbox sender failed; retrying")
                wait = IDLE_WAIT
            with self._rounds:
                self._rounds.notify_all()
            self._wake.wait(wait)
            self._wake.clear()

    def send_due(self) -> float:
        """Send the head of every lane that may send now; return seconds until the next one."""
        soonest = IDLE_WAIT
        for head in self.courier.outbox.heads():
            if self._stopping.is_set():
                break
            wait = self._ready_at.get(head.lane, 0.0) - time.monotonic()
            if wait <= 0:
                with about(head.post.request_id):
                    retry = self.courier.deliver(head)
                pause = self.interval if retry is None else max(retry, self.interval)
                self._ready_at[head.lane] = time.monotonic() + pause
                wait = 0.0 if retry is None else pause
            soonest = min(soonest, max(wait, 0.0))
        return soonest

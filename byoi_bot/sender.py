"""The outbox's sender: one thread that drains `core.outbox` at the pace Slack allows.

Slack takes about one message per second per channel and answers 429 with `Retry-After`
beyond that. The sender sends the oldest waiting post of each lane (channel and kind), at
most one per lane every `interval` seconds, and waits out a lane's `Retry-After` without
holding the others. The store wakes it when something is queued.

While the chat refuses the bot's credentials (`Courier.health` red), nothing is sent: the
sender probes the credentials instead, after `first_probe` seconds, then twice as long each
time up to `MAX_PROBE_WAIT`, and sends the queued posts once a probe succeeds.
"""

from __future__ import annotations

import logging
import threading
import time

from .core.outbox import Courier
from .logs import about

log = logging.getLogger(__name__)

IDLE_WAIT = 5.0
FIRST_PROBE = 5.0
MAX_PROBE_WAIT = 60.0


class OutboxSender:
    """Drains the outbox from a daemon thread; `start()` / `stop()`."""

    def __init__(
        self, courier: Courier, interval: float = 1.0, first_probe: float = FIRST_PROBE
    ) -> None:
        self.courier = courier
        self.interval = interval
        self.first_probe = first_probe
        self._probe_wait = first_probe  # doubles at each refused probe
        self._probe_at = 0.0  # monotonic time of the next credentials probe, while refused
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
        if not self.courier.health.ok and (wait := self._probe()) > 0:
            return wait
        soonest = IDLE_WAIT
        for head in self.courier.outbox.heads():
            if self._stopping.is_set():
                break
            if not self.courier.health.ok:  # refused while sending: probe from now on
                return 0.0
            wait = self._ready_at.get(head.lane, 0.0) - time.monotonic()
            if wait <= 0:
                with about(head.post.request_id):
                    retry = self.courier.deliver(head)
                pause = self.interval if retry is None else max(retry, self.interval)
                self._ready_at[head.lane] = time.monotonic() + pause
                wait = 0.0 if retry is None else pause
            soonest = min(soonest, max(wait, 0.0))
        return soonest

    def _probe(self) -> float:
        """While the credentials are refused: probe them when due; 0 once they work again,
        else seconds until the next probe."""
        now = time.monotonic()
        if self._probe_at == 0.0:  # just refused
            self._probe_wait = self.first_probe
            self._probe_at = now + self._probe_wait
        if now < self._probe_at:
            return self._probe_at - now
        if self.courier.probe():
            self._probe_at = 0.0
            self._ready_at.clear()  # the lanes have been idle since
            return 0.0
        self._probe_wait = min(self._probe_wait * 2, MAX_PROBE_WAIT)
        self._probe_at = now + self._probe_wait
        return self._probe_wait

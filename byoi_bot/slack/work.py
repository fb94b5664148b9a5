"""The bot's own bounded executor: slow work after the ack, never on Bolt's listener threads.

Bolt answers Slack when a listener calls `ack()`, but runs listeners on a small thread
pool: a listener that preflights an image for 8 s holds a thread, and the next request's
ack waits for one. Listeners here ack, then hand the slow part to `Work`, which has its own
threads and a bounded queue; when both are full, `submit` says no at once so the listener
can answer "busy" instead of making the user wait.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

BUSY = (
    "byoi-bot is busy with many requests right now and did not start this one; "
    "nothing was changed. Try again in a minute."
)


class Work:
    """At most `workers` tasks run at once and `queue` more wait; beyond that, refused."""

    def __init__(self, workers: int = 8, queue: int = 64) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="byoi-work")
        self._slots = threading.BoundedSemaphore(workers + queue)

    def submit(self, task: Callable[..., object], *args: object) -> bool:
        """Run `task(*args)` in the background; False (nothing run) when the queue is full."""
        if not self._slots.acquire(blocking=False):
            log.warning("work queue full: refused %s", getattr(task, "__name__", "a task"))
            return False
        try:
            self._pool.submit(self._run, task, args)
        except RuntimeError:  # shutting down
            self._slots.release()
            return False
        return True

    def _run(self, task: Callable[..., object], args: tuple) -> None:
        try:
            task(*args)
        except Exception as exc:  # the task answers the user itself; this is a last resort
            log.error("background task failed: %s", type(exc).__name__, exc_info=exc)
        finally:
            self._slots.release()

    def shutdown(self, wait: bool = True) -> None:
        """Finish (or, with `wait=False`, abandon) the queued tasks and stop the threads."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

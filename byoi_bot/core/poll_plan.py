"""When each deployment is polled next: back-off after failed reads, OVHcloud's rate limit.

Bookkeeping on the bot's clock, without threads or I/O: the poller asks what is due and
says how each poll went. A deployment whose read failed waits 2, 4, 8, 16 … seconds (at
most one poll interval) before its next try, alone; a 429 pauses every poll for as long as
OVHcloud's Retry-After asks.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from .ports import Clock

FIRST_RETRY = timedelta(seconds=2)


class PollPlan:
    """Retry times per request id and the global pause; safe to share between threads."""

    def __init__(self, clock: Clock, longest: timedelta, first: timedelta = FIRST_RETRY) -> None:
        self.clock = clock
        self.longest = longest
        self.first = first
        self._retries: dict[str, tuple[datetime, int]] = {}  # id -> (next try, failures)
        self._paused_until: datetime | None = None
        self._lock = threading.Lock()

    def paused(self) -> bool:
        """True while OVHcloud's Retry-After holds every poll back."""
        with self._lock:
            return self._paused(self.clock.now())

    def due(self, request_id: str) -> bool:
        """Whether `request_id` may be polled now (not paused, not waiting to retry)."""
        now = self.clock.now()
        with self._lock:
            if self._paused(now):
                return False
            retry = self._retries.get(request_id)
            return retry is None or retry[0] <= now

    def retries_due(self) -> list[str]:
        """Ids whose retry time has come, soonest first (none while paused)."""
        now = self.clock.now()
        with self._lock:
            if self._paused(now):
                return []
            due = [(at, i) for i, (at, _) in self._retries.items() if at <= now]
        return [i for _, i in sorted(due)]

    def next_try(self, request_id: str) -> datetime | None:
        """When `request_id` is tried again after a failed read (None: with the cycle)."""
        with self._lock:
            retry = self._retries.get(request_id)
            return retry[0] if retry else None

    def succeeded(self, request_id: str) -> None:
        """The poll read OVHcloud: back to the normal cycle."""
        with self._lock:
            self._retries.pop(request_id, None)

    forget = succeeded  # the request is no longer followed

    def failed(self, request_id: str, retry_after: float | None = None) -> timedelta:
        """A transient failure: plan the next try (and pause all on Retry-After); its delay."""
        now = self.clock.now()
        with self._lock:
            _, failures = self._retries.get(request_id, (now, 0))
            delay = min(self.first * 2**failures, self.longest)
            if retry_after is not None:
                wait = timedelta(seconds=retry_after)
                delay = max(delay, wait)
                self._paused_until = max(self._paused_until or now, now + wait)
            self._retries[request_id] = (now + delay, failures + 1)
            return delay

    def _paused(self, now: datetime) -> bool:
        return self._paused_until is not None and now < self._paused_until

"""One OVHcloud account's call budget: at most `per_minute` calls in any 60-second window.

Every call of the account takes a slot (`take`, waiting if need be, or `try_take`); polls
may use only the budget minus a reserve, so that commands and start calls always find room
before polls. A 429 from OVHcloud halves the budget (`throttled`); it grows back by a tenth
of the nominal budget per quiet minute. A sliding window (a log of the last minute's calls),
not a token bucket: a bucket would allow a full burst on top of a full minute's refill, up to
twice the budget in one window. Bookkeeping on an injected monotonic clock; safe across
threads.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

WINDOW = 60.0
POLL, COMMAND = "poll", "command"
_kind: ContextVar[str] = ContextVar("ovh_call_kind", default=COMMAND)


@contextmanager
def polling() -> Iterator[None]:
    """OVHcloud calls made inside are polls (lowest priority); every other call is a command."""
    token = _kind.set(POLL)
    try:
        yield
    finally:
        _kind.reset(token)


def current_kind() -> str:
    return _kind.get()


class CallBudget:
    """The sliding-window budget of one account."""

    def __init__(
        self,
        per_minute: int,
        *,
        reserve: float = 0.1,
        monotonic: Callable[[], float] = time.monotonic,
        recheck: float = 1.0,
    ) -> None:
        self.per_minute = per_minute
        self.recheck = recheck  # longest wait between two looks at a full window (seconds)
        self.taken = 0  # calls counted since it was made
        self.limit = per_minute  # lower after a 429, until it recovers
        self.reserve = reserve
        self.monotonic = monotonic
        self._calls: deque[float] = deque()
        self._recover_at: float | None = None
        self._changed = threading.Condition()

    def headroom(self, kind: str = POLL) -> int:
        """Calls of `kind` that may be made now without going over the budget."""
        with self._changed:
            return self._headroom(kind, self.monotonic())

    def try_take(self, kind: str | None = None) -> bool:
        """Take a slot if there is one now."""
        with self._changed:
            now = self.monotonic()
            if self._headroom(kind or current_kind(), now) <= 0:
                return False
            self._calls.append(now)
            self.taken += 1
            return True

    def take(self, kind: str | None = None, sleep: Callable[[float], None] | None = None) -> float:
        """Take a slot, waiting until one frees up; returns the seconds waited."""
        kind = kind or current_kind()
        waited = 0.0
        with self._changed:
            while True:
                now = self.monotonic()
                if self._headroom(kind, now) > 0:
                    self._calls.append(now)
                    self.taken += 1
                    return waited
                pause = max(0.01, self._calls[0] + WINDOW - now) if self._calls else 0.5
                if sleep is None:
                    self._changed.wait(min(pause, self.recheck))  # the clock may be a test's
                else:
                    self._changed.release()
                    try:
                        sleep(pause)
                    finally:
                        self._changed.acquire()
                waited += pause

    def throttled(self) -> None:
        """OVHcloud answered 429: halve the budget until a quiet minute has passed."""
        with self._changed:
            self.limit = max(1, self.limit // 2)
            self._recover_at = self.monotonic() + WINDOW

    def poll_capacity(self) -> int:
        """Polls per minute the budget allows as it stands."""
        return max(1, self.limit - self._reserved())

    def calls_in_window(self) -> int:
        with self._changed:
            self._forget(self.monotonic())
            return len(self._calls)

    def _headroom(self, kind: str, now: float) -> int:
        self._forget(now)
        room = self.limit - len(self._calls)
        return room - self._reserved() if kind == POLL else room

    def _reserved(self) -> int:
        return max(1, round(self.limit * self.reserve)) if self.limit > 1 else 0

    def _forget(self, now: float) -> None:
        while self._calls and self._calls[0] <= now - WINDOW:
            self._calls.popleft()
        if self._recover_at is not None and now >= self._recover_at:
            self.limit = min(self.per_minute, self.limit + max(1, self.per_minute // 10))
            self._recover_at = None if self.limit == self.per_minute else now + WINDOW
            self._changed.notify_all()

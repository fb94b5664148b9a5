"""When each deployment is polled next: back-off after failed reads, OVHcloud's rate limit,
and, under a call budget, where a change is likely first.

Bookkeeping on the bot's clock, without threads or I/O: the poller asks what is due and
says how each poll went. A deployment whose read failed waits 2, 4, 8, 16 … seconds (at
most one poll interval) before its next try, alone; a 429 pauses every poll for as long as
OVHcloud's Retry-After asks.

Under a budget (`pick`), polls go first where a step is likely to have ended: the install
status of every poll teaches `StepTimings` when each step typically ends (elapsed seconds
since the install began), so a deployment whose step just started is not asked again until
that step should be over (never sooner than `MIN_GAP`: a step that just started will not end
in 2 s); one whose step runs late is asked again after 5, 10, 20 … s (at most one poll
interval). The most overdue goes first. `round_robin=True` is the uniform reference: the
least recently polled first, as many as the budget allows.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from .ports import Clock

FIRST_RETRY = timedelta(seconds=2)
MIN_GAP = 2.0  # seconds: a step that just started will not end sooner
OVERDUE_FIRST = 5.0  # seconds before asking again about a step that runs late
NEVER = datetime.min.replace(tzinfo=UTC)


class StepTimings:
    """When each install step ends, learned from polls: a step seen under way at elapsed
    times e1, e2, … has its middle about at their mean; it ends about half-way between its
    middle and the next step's (the last one as far after its middle as before)."""

    def __init__(self, samples: int = 3) -> None:
        self.samples = samples  # observations a step needs before its end is trusted
        self._seen: dict[int, list[float]] = {}  # step index -> [sum of elapsed, count]
        self._lock = threading.Lock()

    def seen(self, index: int, elapsed: float) -> None:
        with self._lock:
            total = self._seen.setdefault(index, [0.0, 0])
            total[0] += elapsed
            total[1] += 1

    def end_of(self, index: int) -> float | None:
        """Elapsed seconds when step `index` typically ends (None: not known yet)."""
        with self._lock:
            middle, after = self._middle(index), self._middle(index + 1)
            before = self._middle(index - 1) if index else 0.0
        if middle is None:
            return None
        if after is not None:
            return (middle + after) / 2
        return middle + (middle - before) / 2 if before is not None else None

    def _middle(self, index: int) -> float | None:
        total, count = self._seen.get(index, (0.0, 0))
        return total / count if count >= self.samples else None


def position(progress: dict | None) -> tuple[int, float] | None:
    """(index of the step under way, elapsed seconds) of a stored progress record."""
    steps = (progress or {}).get("steps") or []
    elapsed = (progress or {}).get("elapsed_seconds")
    if not steps or elapsed is None:
        return None
    for statuses in (("error",), ("doing",), ("todo", "pending", "idle")):
        for index, step in enumerate(steps):
            if step.get("status") in statuses:
                return index, float(elapsed)
    return len(steps), float(elapsed)


class PollPlan:
    """Retry times per request id and the global pause; safe to share between threads."""

    def __init__(self, clock: Clock, longest: timedelta, first: timedelta = FIRST_RETRY) -> None:
        self.clock = clock
        self.longest = longest
        self.first = first
        self._retries: dict[str, tuple[datetime, int]] = {}  # id -> (next try, failures)
        self._paused_until: datetime | None = None
        self._lock = threading.Lock()
        self.timings = StepTimings()
        self._next: dict[str, tuple[datetime, int, int]] = {}  # id -> (due, step, overdue)
        self._last: dict[str, datetime] = {}  # id -> last poll

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
            self._last[request_id] = self.clock.now()

    def forget(self, request_id: str) -> None:
        """The request is no longer followed."""
        with self._lock:
            for plans in (self._retries, self._next, self._last):
                plans.pop(request_id, None)

    def observed(self, request_id: str, progress: dict | None) -> None:
        """A budgeted poll read `progress` (a stored record): plan its next poll."""
        now = self.clock.now()
        where = position(progress)
        with self._lock:
            _, step, overdue = self._next.get(request_id, (now, -1, 0))
        if where is None:
            wait = self.longest.total_seconds()
            index = step
        else:
            index, elapsed = where
            self.timings.seen(index, elapsed)
            overdue = overdue if index == step else 0
            end = self.timings.end_of(index)
            if end is None:
                wait = self.longest.total_seconds()
            elif end > elapsed:
                wait = max(MIN_GAP, end - elapsed)
            else:
                wait = min(OVERDUE_FIRST * 2**overdue, self.longest.total_seconds())
                overdue += 1
        with self._lock:
            self._next[request_id] = (now + timedelta(seconds=wait), index, overdue)

    def pick(self, request_ids: list[str], capacity: int, round_robin: bool = False) -> list[str]:
        """Up to `capacity` of `request_ids` to poll now: those whose change is most overdue
        (or, `round_robin`, the least recently polled), none waiting to retry."""
        if capacity <= 0:
            return []
        now = self.clock.now()
        with self._lock:
            if self._paused(now):
                return []
            ready = [i for i in request_ids if i not in self._retries or self._retries[i][0] <= now]
            if round_robin:
                order = sorted(ready, key=lambda i: self._last.get(i, NEVER))
            else:
                due = [(self._next.get(i, (NEVER,))[0], i) for i in ready]
                order = [i for at, i in sorted(due) if at <= now]
        return order[:capacity]

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

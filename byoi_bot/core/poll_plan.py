"""When each deployment is polled next: back-off after failed reads, OVHcloud's rate limit,
and, under a call budget, where a change is likely first.

Bookkeeping on the bot's clock, without threads or I/O: the poller asks what is due and
says how each poll went. A deployment whose read failed waits 2, 4, 8, 16 … seconds (at
most one poll interval) before its next try, alone; a 429 pauses every poll for as long as
OVHcloud's Retry-After asks.

Under a budget (`pick`), polls go first where a step is likely to have ended: the install
status of every poll teaches `StepTimings` when each step typically ends (elapsed seconds
since the install began). The deployments where the most delay piles up (steps expected to
have ended since their last read, by how long ago) go first, except one whose next step is
about to end (`SOON`: better asked just after it); a deployment whose step just started is
not asked again until that step should be over, and never sooner than `MIN_GAP` (a step
that just started will not end in 2 s); one whose step runs late is asked again after 5,
10, 20 … s (at most one poll interval). `round_robin=True` is the uniform reference: the
least recently polled first, as many as the budget allows.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import UTC, datetime, timedelta

from .ports import Clock

FIRST_RETRY = timedelta(seconds=2)
MIN_GAP = 2.0  # seconds: a step that just started will not end sooner
OVERDUE_FIRST = 5.0  # seconds before asking again about a step that runs late
SOON = 10.0  # seconds: a step ending this soon is waited for rather than asked before
NEVER = datetime.min.replace(tzinfo=UTC)


class StepTimings:
    """When each install step ends (elapsed seconds since the install began), learned from
    what polls see: a deployment read at step j at elapsed e shows step j not ended yet and
    step j-1 ended by e. A step's end is put between the late "not yet" readings (their 90th
    percentile) and the early "ended" ones (their 10th), over the last `keep` readings of
    each kind: robust to a few slow or fast servers, whichever polls were made.
    """

    def __init__(self, samples: int = 3, keep: int = 200) -> None:
        self.samples = samples  # readings of each kind a step needs before its end is trusted
        self.keep = keep
        self._before: dict[int, deque[float]] = {}  # step -> elapsed while not yet ended
        self._after: dict[int, deque[float]] = {}  # step -> elapsed once ended
        self._lock = threading.Lock()

    def seen(self, index: int, elapsed: float) -> None:
        """A deployment was read at step `index`, `elapsed` seconds into its install."""
        with self._lock:
            self._before.setdefault(index, deque(maxlen=self.keep)).append(elapsed)
            if index:
                self._after.setdefault(index - 1, deque(maxlen=self.keep)).append(elapsed)

    def end_of(self, index: int) -> float | None:
        """Elapsed seconds when step `index` typically ends (None: not known yet)."""
        with self._lock:
            before = sorted(self._before.get(index, ()))
            after = sorted(self._after.get(index, ()))
        if len(before) < self.samples or len(after) < self.samples:
            return None
        late = before[int(0.9 * (len(before) - 1))]
        early = after[int(0.1 * (len(after) - 1))]
        return (late + early) / 2


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
        self._seen: dict[str, tuple[int, float, datetime]] = {}  # id -> step, elapsed, when

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
            for plans in (self._retries, self._next, self._last, self._seen):
                plans.pop(request_id, None)

    def observed(self, request_id: str, progress: dict | None) -> None:
        """A budgeted poll read `progress` (`Progress.to_dict()`): learn, plan its next poll."""
        now = self.clock.now()
        where = position(progress)
        with self._lock:
            _, step, overdue = self._next.get(request_id, (now, -1, 0))
        if where is None:
            wait = self.longest.total_seconds()
            index = step
        else:
            index, elapsed = where
            with self._lock:
                self._seen[request_id] = (index, elapsed, now)
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
        """Up to `capacity` of `request_ids` to poll now: where the most delay piles up, then
        the next expected to change (or, `round_robin`, the least recently polled), none
        waiting to retry."""
        if capacity <= 0:
            return []
        now = self.clock.now()
        with self._lock:
            if self._paused(now):
                return []
            ready = [i for i in request_ids if i not in self._retries or self._retries[i][0] <= now]
            if round_robin:
                return sorted(ready, key=lambda i: self._last.get(i, NEVER))[:capacity]
            recent = now - timedelta(seconds=MIN_GAP)
            ready = [i for i in ready if self._last.get(i, NEVER) <= recent]
            seen = {i: self._seen.get(i) for i in ready}
            last = {i: self._last.get(i) for i in ready}
            due = {i: self._next.get(i, (NEVER,))[0] for i in ready}
        ends: dict[int, float | None] = {}
        owed = {i: self._owed(seen[i], last[i], now, ends) for i in ready}
        first = sorted((i for i in ready if owed[i] > 0), key=lambda i: -owed[i])
        rest = sorted((i for i in ready if owed[i] <= 0), key=lambda i: due[i])
        return (first + rest)[:capacity]

    def _owed(
        self,
        seen: tuple[int, float, datetime] | None,
        last: datetime | None,
        now: datetime,
        ends: dict,
    ) -> float:
        """The delay piling up on a deployment: for each step expected to have ended since it
        was last read, the seconds since (the time since its last read when its step or the
        step's end is not known; infinite for one never read)."""
        if seen is None:
            return float("inf") if last is None else (now - last).total_seconds()
        index, elapsed, when = seen
        waited = (now - when).total_seconds()
        if ends.setdefault(index, self.timings.end_of(index)) is None:
            return waited
        owed, step = 0.0, index
        while (end := ends.setdefault(step, self.timings.end_of(step))) is not None:
            if end > elapsed + waited:
                if end - elapsed - waited <= SOON:
                    return 0.0  # another step ends in a moment: ask just after it
                break
            owed += elapsed + waited - end
            step += 1
        return owed

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

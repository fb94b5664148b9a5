"""When each deployment is polled next: back-off after failed reads, OVHcloud's rate limit,
and, under a call budget, where a change is likely first.

Bookkeeping on the bot's clock, without threads or I/O: the poller asks what is due and
says how each poll went. A deployment whose read failed waits 2, 4, 8, 16 … seconds (at
most one poll interval) before its next try, alone; a 429 pauses every poll for as long as
OVHcloud's Retry-After asks.

Under a budget (`pick`), a poll is worth the step changes it is expected to show: the
install status of every poll teaches `StepTimings` when each step typically ends, so the
plan knows, for every deployment, which steps should have ended since its last read (or
since its install began, never read yet). The deployments with the most such changes go
first, the freshest first among equals (news is worth most while it is new); then those
whose step was never seen ending; then the next expected to change. One whose next step
ends within `SOON` seconds waits for it (one read then shows both); one read less than
`MIN_GAP` seconds ago waits (a step that just started will not end in 2 s); one whose step
runs late is asked again after 5, 10, 20 … s (at most one poll interval). So that no plan
can starve a deployment, one not read for `STALE` times the even pace (the seconds between
two reads of one when the budget is shared evenly) goes before all. `round_robin=True` is
the uniform reference: the least recently polled first, as many as the budget allows.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from .ports import Clock
from .step_timings import StepTimings, position

FIRST_RETRY = timedelta(seconds=2)
MIN_GAP = 2.0  # seconds: a step that just started will not end sooner
OVERDUE_FIRST = 5.0  # seconds before asking again about a step that runs late
SOON = 10.0  # seconds: a step ending this soon is waited for rather than asked before
STALE = 3.0  # even paces: a deployment not read for this long goes before all
NEVER = datetime.min.replace(tzinfo=UTC)


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
        longest = self.longest.total_seconds()
        if where is None:
            wait, index = longest, step
        else:
            index, elapsed, steps = where
            with self._lock:
                self._seen[request_id] = (index, elapsed, now)
            self.timings.seen(request_id, index, elapsed, steps)
            overdue = overdue if index == step else 0
            end = self.timings.end_of(index)
            if end is None:
                wait = longest
            elif end > elapsed:
                wait = max(MIN_GAP, end - elapsed)
            else:
                wait = OVERDUE_FIRST * 2**overdue
                overdue += 1
        wait = min(wait, longest)
        with self._lock:
            self._next[request_id] = (now + timedelta(seconds=wait), index, overdue)

    def pick(
        self,
        started: Mapping[str, datetime | None],
        capacity: int,
        *,
        pace: float,
        round_robin: bool = False,
    ) -> list[str]:
        """Up to `capacity` of the deployments in `started` (id -> when its install began) to
        poll now, none waiting to retry; `pace`: seconds between two reads of one when the
        budget is shared evenly. `round_robin`: the least recently polled first."""
        if capacity <= 0:
            return []
        now = self.clock.now()
        with self._lock:
            if self._paused(now):
                return []
            ready = [i for i in started if i not in self._retries or self._retries[i][0] <= now]
            if round_robin:
                return sorted(ready, key=lambda i: self._last.get(i, NEVER))[:capacity]
            recent = now - timedelta(seconds=MIN_GAP)
            ready = [i for i in ready if self._last.get(i, NEVER) <= recent]
            known = {i: (self._seen.get(i), self._next.get(i), self._last.get(i)) for i in ready}
        stale = max(STALE * pace, self.longest.total_seconds())
        ends: dict[int, float | None] = {}
        ranked = []
        for request_id in ready:
            seen, planned, last = known[request_id]
            if seen is None and last is None and started[request_id] is not None:
                seen = (0, 0.0, started[request_id])  # never read: from when its install began
            rank = self._rank(seen, planned, last, now, stale, ends)
            if rank is not None:
                ranked.append((rank, request_id))
        return [request_id for _, request_id in sorted(ranked)[:capacity]]

    def _rank(
        self,
        seen: tuple[int, float, datetime] | None,
        planned: tuple[datetime, int, int] | None,
        last: datetime | None,
        now: datetime,
        stale: float,
        ends: dict[int, float | None],
    ) -> tuple | None:
        """How urgent a poll of one deployment is (lowest first); None: not worth one now,
        a step ends in a moment."""
        waited = (now - (seen[2] if seen else last or NEVER)).total_seconds()
        if waited >= stale:
            return (0, -waited)  # read at least every few paces, whatever the plan says
        if seen is None:
            return (2, -waited)  # its status shows no steps: by how long since its read
        index, elapsed, when = seen
        ahead = elapsed + waited  # where it is now, in seconds into its install
        floor = elapsed + ((planned[0] - when).total_seconds() if planned else 0.0)
        changes, step = [], index  # ages of the steps expected to have ended since its read
        while (end := ends.setdefault(step, self.timings.end_of(step))) is not None:
            floor = max(floor, end)  # a step running late is asked about on its back-off
            if floor > ahead:
                if floor - ahead <= SOON:
                    return None  # another step ends in a moment: ask just after it
                break
            changes.append(ahead - floor)
            step += 1
        if changes:
            return (1, -len(changes), min(changes))
        if end is None:
            return (2, -waited)  # its step was never seen ending: by how long since its read
        if planned and planned[0] > now:
            return None  # nothing expected, and read less than a poll interval ago
        return (3, floor - ahead)

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

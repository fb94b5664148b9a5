"""May this start now, and if not, when: maintenance windows, freezes and emergencies.

This is the one place that answers it (`decide`); the workflow, the scheduler, fleets and
cards all ask here. Approvals are not decided here (`core.policy`): a freeze or a closed
window blocks *starting*, never requesting or approving.

>>> w = Window.parse("Tue 22:00-02:00 Europe/Paris")
>>> w.describe()
'Tue 22:00–02:00 Europe/Paris'
>>> monday_noon = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)
>>> d = decide(monday_noon, windows=(w,))
>>> d.now, d.start_at.isoformat()
(False, '2026-12-08T21:00:00+00:00')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WINDOW_EXAMPLE = "Tue 22:00-02:00 Europe/Paris"
_WINDOW = re.compile(
    r"^\s*(?P<days>[A-Za-z]{3}(?:\s*-\s*[A-Za-z]{3})?)\s+"
    r"(?P<start>\d{1,2}:\d{2})\s*[-–]\s*(?P<end>\d{1,2}:\d{2})\s+(?P<zone>\S+)\s*$"
)
AT_REASON = "its scheduled time (`at=`)"
_MAX_STEPS = 64  # freezes and windows alternating; more means a configuration that never opens


class ChangeControlError(ValueError):
    """A window or freeze that cannot be understood; the message says what is expected."""


@dataclass(frozen=True)
class Window:
    """A weekly range in a named time zone, e.g. ``Tue 22:00-02:00 Europe/Paris``.

    The range starts on each of `days` (0 = Monday) at `start` local time and ends at `end`
    local time, the next day when `end` is not after `start`. Local times follow the zone's
    daylight-saving rules, so a window stays at 22:00 on the wall clock all year.
    """

    days: tuple[int, ...]
    start: time
    end: time
    zone: str
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> Window:
        """Read ``Day[-Day] HH:MM-HH:MM Zone``; raise `ChangeControlError` with an example."""
        match = _WINDOW.match(text or "")
        if not match:
            raise ChangeControlError(
                f"window `{text}` is not `Day HH:MM-HH:MM Zone` (e.g. `{WINDOW_EXAMPLE}` or "
                "`Mon-Fri 09:00-17:00 UTC`)"
            )
        days = _days(match["days"], text)
        start, end = _clock(match["start"], text), _clock(match["end"], text)
        if start == end:
            raise ChangeControlError(f"window `{text}` starts and ends at the same time")
        try:
            ZoneInfo(match["zone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise ChangeControlError(
                f"window `{text}`: `{match['zone']}` is not a time zone name "
                "(e.g. `Europe/Paris`, `America/Montreal`, `UTC`)"
            ) from None
        return cls(days, start, end, match["zone"], text.strip())

    def describe(self) -> str:
        """The window as people write it."""
        first, last = DAYS[self.days[0]].title(), DAYS[self.days[-1]].title()
        days = first if len(self.days) == 1 else f"{first}-{last}"
        return f"{days} {self.start:%H:%M}–{self.end:%H:%M} {self.zone}"

    def spans(self, around: datetime) -> Iterable[tuple[datetime, datetime]]:
        """The window's occurrences (start, end in UTC) from the day before `around` on,
        for the next eight days, in order."""
        zone = ZoneInfo(self.zone)
        local_day = around.astimezone(zone).date()
        for offset in range(-1, 9):
            day = local_day + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            end_day = day if self.end > self.start else day + timedelta(days=1)
            yield _utc(day, self.start, zone), _utc(end_day, self.end, zone)

    def open_span(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The occurrence that `at` falls in, or None when the window is closed then."""
        return next(((s, e) for s, e in self.spans(at) if s <= at < e), None)

    def next_start(self, after: datetime) -> datetime:
        """The first start of the window after `after` (always within eight days)."""
        return next(s for s, _ in self.spans(after) if s > after)


@dataclass(frozen=True)
class Freeze:
    """No deployment of the named policies (all when empty) starts in [starts, ends)."""

    id: str
    starts: datetime
    ends: datetime
    reason: str
    policies: tuple[str, ...] = ()
    created_by: str = ""

    def covers(self, at: datetime, policy: str) -> bool:
        """True when this freeze blocks starting a deployment of `policy` at `at`."""
        return self.starts <= at < self.ends and (not self.policies or policy in self.policies)

    def describe(self) -> str:
        """One line for `/byoi freezes` and cards (times in UTC)."""
        scope = ", ".join(f"`{p}`" for p in self.policies) or "all policies"
        when = f"{_utc_text(self.starts)} → {_utc_text(self.ends)}"
        return f"`{self.id}` {when} ({scope}): {self.reason}"


@dataclass(frozen=True)
class StartDecision:
    """The answer to "may this start now, and if not, when"."""

    now: bool
    start_at: datetime  # `now` itself when it may start now
    reason: str = ""  # why it waits, in plain words (empty when it may start now)
    window_ends: datetime | None = None  # the open window's end, when a window applies
    overridden: tuple[str, ...] = ()  # what an emergency skipped ("window", "freeze")


def decide(
    now: datetime,
    *,
    at: datetime | None = None,
    windows: Sequence[Window] = (),
    freezes: Sequence[Freeze] = (),
    policy: str = "",
    emergency: bool = False,
) -> StartDecision:
    """When a deployment under `policy` may start: after `at`, inside one of `windows` (if
    any), outside every freeze — or, for an emergency, after `at` alone.

    An install that runs past a window's end is not stopped (it cannot be); `window_ends`
    tells the card when the window closes.
    """
    start = max(now, at) if at else now
    if emergency:
        skipped = []
        if windows and not window_span(windows, start):
            skipped.append("window")
        if any(f.covers(start, policy) for f in freezes):
            skipped.append("freeze")
        waits = start > now
        return StartDecision(not waits, start, AT_REASON if waits else "", None, tuple(skipped))
    reason = AT_REASON if start > now else ""
    for _ in range(_MAX_STEPS):
        freeze = next((f for f in freezes if f.covers(start, policy)), None)
        if freeze:
            start, reason = freeze.ends, f"the end of freeze `{freeze.id}` ({freeze.reason})"
            continue
        if windows and not window_span(windows, start):
            start = min(w.next_start(start) for w in windows)
            reason = reason if reason.startswith("the end") else "the next maintenance window"
            continue
        break
    else:
        raise ChangeControlError(
            f"policy `{policy}` has no start time in sight: its windows all fall in freezes"
        )
    span = window_span(windows, start) if windows else None
    if start <= now:
        return StartDecision(True, now, "", span[1] if span else None)
    return StartDecision(False, start, reason, span[1] if span else None)


def parse_windows(entries: Iterable[str]) -> tuple[Window, ...]:
    """Every entry of a policy's `windows` list, parsed."""
    return tuple(Window.parse(str(e)) for e in entries)


def window_span(windows: Sequence[Window], at: datetime) -> tuple[datetime, datetime] | None:
    """The open occurrence (start, end) of any of `windows` at `at` that ends last."""
    spans = [s for w in windows if (s := w.open_span(at))]
    return max(spans, key=lambda s: s[1]) if spans else None


def _days(text: str, whole: str) -> tuple[int, ...]:
    names = [d.strip().lower() for d in text.split("-")]
    if any(n not in DAYS for n in names):
        raise ChangeControlError(
            f"window `{whole}`: days are written Mon, Tue, Wed, Thu, Fri, Sat, Sun "
            "(one, or a range like `Mon-Fri`)"
        )
    first, last = DAYS.index(names[0]), DAYS.index(names[-1])
    return tuple(range(first, last + 1)) if first <= last else (*range(first, 7), *range(last + 1))


def _clock(text: str, whole: str) -> time:
    hours, minutes = (int(x) for x in text.split(":"))
    if hours == 24 and minutes == 0:
        return time(0, 0)
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise ChangeControlError(f"window `{whole}`: `{text}` is not a time of day (00:00–23:59)")
    return time(hours, minutes)


def _utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    """Local wall time on `day` in `zone`, as UTC. A time that the spring change skips is
    moved forward by the change, as wall clocks are (02:30 → 03:30); a time that the autumn
    change repeats is taken at its first occurrence."""
    return datetime.combine(day, at, zone).astimezone(UTC)


def _utc_text(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

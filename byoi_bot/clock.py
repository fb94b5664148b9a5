"""The real clock. Everything that reads time takes a `core.ports.Clock`; this is the one
production passes, and the only place that reads the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """The real time, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

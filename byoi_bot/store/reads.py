"""The reads both stores answer alike: one statement of `sql.py`, its rows mapped by `rows.py`.

`Reads` is mixed into both adapters of the core's `RequestStore` port, `sqlite.Store` and
`postgres.PostgresStore`. Each adapter supplies the two things that differ:

- `_rows(statement, params)`: run one of `sql`'s statements (PostgreSQL's placeholders; the
  SQLite store applies `qmark()`) and return its rows as dicts. No read here needs a write
  transaction: SQLite reads under the store's lock, PostgreSQL on a pooled connection.
- `in_states(states, server)`, on which `active()` stands (``IN (?, ?)`` against ``= ANY(%s)``).

Writes stay in the adapters, where their transactions and locks can be seen.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from ..core.change_control import Freeze
from ..core.fleet import Fleet
from ..core.posts import Queued
from ..core.request import Request
from ..core.states import ACTIVE_STATES, State
from . import sql
from .rows import (
    dt,
    fleet_from_row,
    freeze_from_row,
    from_row,
    in_rollout_order,
    iso,
    queued_from_row,
)


class Reads:
    """The `RequestStore` port's reads, over the adapter's `_rows()` and `in_states()`."""

    _rows: Callable[[str, Iterable[Any]], list[dict]]
    in_states: Callable[[Iterable[State], str | None], list[Request]]

    def get(self, request_id: str) -> Request | None:
        """The request with this id, or None."""
        rows = self._rows(sql.REQUEST, [request_id])
        return from_row(rows[0]) if rows else None

    def by_message(self, channel: str, ts: str) -> Request | None:
        """The request whose card is the message `ts` in `channel`, or None."""
        rows = self._rows(sql.REQUEST_BY_CARD, [channel, ts])
        return from_row(rows[0]) if rows else None

    def active(self, server: str | None = None) -> list[Request]:
        """Requests that hold their server: pending, approved, submitting or deploying."""
        return self.in_states(ACTIVE_STATES, server)

    def count(self) -> int:
        """How many requests there are, in every state (for the pages of `/byoi list`)."""
        return self._rows(sql.REQUEST_COUNT)[0]["n"]

    def secrets(self, request_id: str) -> dict | None:
        """The request's secrets while it has them (before submission), else None."""
        rows = self._rows(sql.SECRETS_OF, [request_id])
        return json.loads(rows[0]["data"]) if rows else None

    def fleet(self, fleet_id: str) -> Fleet | None:
        """The fleet request with this id, or None."""
        rows = self._rows(sql.FLEET, [fleet_id])
        return fleet_from_row(rows[0]) if rows else None

    def fleet_by_message(self, channel: str, ts: str) -> Fleet | None:
        """The fleet whose card is the message `ts` in `channel`, or None."""
        rows = self._rows(sql.FLEET_BY_CARD, [channel, ts])
        return fleet_from_row(rows[0]) if rows else None

    def fleet_members(self, fleet: Fleet) -> list[Request]:
        """The fleet's server requests, in rollout order."""
        rows = self._rows(sql.FLEET_MEMBERS, [fleet.id])
        return in_rollout_order(fleet, map(from_row, rows))

    def heads(self) -> list[Queued]:
        """The oldest waiting post of every lane (channel and kind) not sending one now."""
        return [queued_from_row(r) for r in self._rows(sql.LANE_HEADS)]

    def backlog(self) -> int:
        """How many posts wait to be sent."""
        return self._rows(sql.BACKLOG)[0]["n"]

    def request_counts(self) -> dict[str, int]:
        """How many requests are in each state (states with none are left out)."""
        return {r["state"]: r["n"] for r in self._rows(sql.REQUESTS_BY_STATE)}

    def outbox_waiting(self) -> tuple[int, datetime | None]:
        """How many posts wait to be sent, and when the oldest of them was queued."""
        (row,) = self._rows(sql.WAITING)
        return row["n"], dt(row["oldest"])

    def by_reply(self, channel: str, ts: str) -> Request | None:
        """The request in whose thread the bot posted the message `ts`, or None."""
        rows = self._rows(sql.REPLIED_IN, [channel, ts])
        return self.get(rows[0]["request_id"]) if rows else None

    def approvals(self, request_id: str, fingerprint: str) -> list[str]:
        """Users whose approval is bound to `fingerprint` (approvals of anything else are void)."""
        rows = self._rows(sql.APPROVERS, [request_id, fingerprint])
        return [r["user"] for r in rows]

    def freezes(self, *, ending_after: datetime) -> list[Freeze]:
        """The freezes not lifted that end after `ending_after`, earliest first."""
        return [freeze_from_row(r) for r in self._rows(sql.CURRENT_FREEZES, [iso(ending_after)])]

    def unreviewed(self) -> list[dict]:
        """Emergency overrides nobody has reviewed yet, oldest due first."""
        return [r | {"due_at": dt(r["due_at"])} for r in self._rows(sql.UNREVIEWED)]

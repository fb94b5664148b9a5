"""What both stores share: request ids, requests to and from table rows, change control's SQL.

Timestamps are written as ISO 8601 text (PostgreSQL casts it to `timestamptz`) and read back
from either text or a `datetime`; JSON fields are text in both databases.
"""

from __future__ import annotations

import json
import secrets as random
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ..core.change_control import Freeze
from ..core.fleet import Fleet, FleetState, Rollout
from ..core.request import DeploySpec, Request
from ..core.states import State
from .audit_chain import GENESIS

ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def new_request_id() -> str:
    """A short id people can type: ``r-`` and six letters or digits (no 0/o/1/l/i)."""
    return "r-" + "".join(random.choice(ID_ALPHABET) for _ in range(6))


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def dt(value: str | datetime | None) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(value) if value else None


def column(value: Any) -> Any:
    """A field value as it is stored."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, State):
        return str(value)
    return value


def to_row(r: Request) -> dict:
    """The `requests` row of `r`."""
    return {
        "id": r.id,
        "server": r.spec.server,
        "state": str(r.state),
        "requester": r.requester,
        "channel": r.channel,
        "spec": json.dumps(r.spec.public_dict()),
        "fingerprint": r.fingerprint,
        "policy_name": r.policy_name,
        "created_at": iso(r.created_at),
        "expires_at": iso(r.expires_at),
        "message_ts": r.message_ts,
        "provider_handle": r.provider_handle,
        "submitted_at": iso(r.submitted_at),
        "finished_at": iso(r.finished_at),
        "last_status": r.last_status,
        "checks": json.dumps(r.checks),
        "server_facts": json.dumps(r.server_facts) if r.server_facts else None,
        "image_facts": json.dumps(r.image_facts) if r.image_facts else None,
        "progress": json.dumps(r.progress) if r.progress else None,
        "last_post_at": iso(r.last_post_at),
        "start_mark": r.start_mark,
        "version": r.version,
        "fleet_id": r.fleet_id,
        "boot": json.dumps(r.boot) if r.boot else None,
    }


def from_row(row: dict) -> Request:
    """The request of a `requests` row."""

    def loads(key: str) -> Any:
        return json.loads(row[key]) if row.get(key) else None

    return Request(
        id=row["id"],
        spec=DeploySpec.from_public_dict(json.loads(row["spec"])),
        requester=row["requester"],
        channel=row["channel"],
        state=State(row["state"]),
        created_at=dt(row["created_at"]),
        expires_at=dt(row["expires_at"]),
        policy_name=row["policy_name"],
        fingerprint=row["fingerprint"],
        message_ts=row["message_ts"],
        provider_handle=row["provider_handle"],
        submitted_at=dt(row["submitted_at"]),
        finished_at=dt(row["finished_at"]),
        last_status=row["last_status"],
        checks=loads("checks") or [],
        server_facts=loads("server_facts"),
        image_facts=loads("image_facts"),
        progress=loads("progress"),
        last_post_at=dt(row.get("last_post_at")),
        start_mark=row.get("start_mark"),
        version=row.get("version") or 0,
        fleet_id=row.get("fleet_id"),
        boot=loads("boot"),
    )


def fleet_to_row(f: Fleet) -> dict:
    """The `fleets` row of `f`."""
    return {
        "id": f.id,
        "requester": f.requester,
        "channel": f.channel,
        "state": str(f.state),
        "created_at": iso(f.created_at),
        "expires_at": iso(f.expires_at),
        "policy_name": f.policy_name,
        "servers": json.dumps(list(f.servers)),
        "rollout": json.dumps(f.rollout.__dict__),
        "pattern": f.pattern,
        "refused": json.dumps([list(r) for r in f.refused]),
        "fingerprint": f.fingerprint,
        "message_ts": f.message_ts,
        "announced": json.dumps(f.announced),
        "waves_announced": f.waves_announced,
        "started_at": iso(f.started_at),
        "finished_at": iso(f.finished_at),
    }


def fleet_from_row(row: dict) -> Fleet:
    """The fleet of a `fleets` row."""
    return Fleet(
        id=row["id"],
        requester=row["requester"],
        channel=row["channel"],
        state=FleetState(row["state"]),
        created_at=dt(row["created_at"]),
        expires_at=dt(row["expires_at"]),
        policy_name=row["policy_name"],
        servers=tuple(json.loads(row["servers"])),
        rollout=Rollout(**json.loads(row["rollout"])),
        pattern=row["pattern"],
        refused=tuple(tuple(r) for r in json.loads(row["refused"] or "[]")),
        fingerprint=row["fingerprint"],
        message_ts=row["message_ts"],
        announced=json.loads(row["announced"] or "{}"),
        waves_announced=row["waves_announced"] or 0,
        started_at=dt(row["started_at"]),
        finished_at=dt(row["finished_at"]),
    )


def in_rollout_order(fleet: Fleet, members: Iterable[Request]) -> list[Request]:
    """A fleet's server requests in the order of its rollout (`fleet.servers`)."""
    order = {server: i for i, server in enumerate(fleet.servers)}
    return sorted(members, key=lambda r: order[r.spec.server])


def fleet_change(expected: FleetState, to: FleetState, reason: str) -> str:
    """The audit reason of a fleet's state change (fleets have no from/to state columns)."""
    return f"{expected} → {to}: {reason}"


def fleet_approved(servers: int) -> str:
    """The audit reason of an approval of a fleet: how many servers' specs it covered."""
    return f"approved {servers} servers"


# -- change control: audit chain, freezes, reviews (the same SQL on both stores) ------------

SYSTEM_ACTOR = "byoi-bot"
AUDIT_PAGE = 2000  # rows per page when the whole chain is read (export, verify)
FREEZE_COLUMNS = {
    "id": str,
    "starts_at": str,
    "ends_at": str,
    "reason": str,
    "policies": str,
    "created_by": str,
    "created_at": str,
    "lifted_by": str,
    "lifted_at": str,
}
REVIEW_COLUMNS = {
    "request_id": str,
    "policy_name": str,
    "due_at": str,
    "reviewed_by": str,
    "reviewed_at": str,
    "reminded_at": str,
}
# Placeholders in PostgreSQL's style; `qmark()` turns them into SQLite's.
LIFTABLE_FREEZE = "SELECT * FROM freezes WHERE id = %s AND lifted_by IS NULL AND ends_at > %s"
CURRENT_FREEZES = (
    "SELECT * FROM freezes WHERE lifted_by IS NULL AND ends_at > %s ORDER BY starts_at"
)
UNREVIEWED = "SELECT * FROM reviews WHERE reviewed_by IS NULL ORDER BY due_at, request_id"


def qmark(sql: str) -> str:
    """A statement of this section with SQLite's placeholders."""
    return sql.replace("%s", "?")


def audit_row(
    request_id: str,
    at: str | None,
    actor: str,
    action: str,
    from_state: State | None,
    to_state: State | None,
) -> dict:
    """An audit row's fields (its reason and hashes are added by the store)."""
    return {
        "request_id": request_id,
        "at": at,
        "actor": actor,
        "action": action,
        "from_state": str(from_state) if from_state else None,
        "to_state": str(to_state) if to_state else None,
    }


def prev_hash(last: Any) -> str:
    """The hash the next audit row chains to: the last row's, or the chain's start."""
    if last is None:
        return GENESIS
    value = last["hash"] if isinstance(last, dict) else last[0]
    return value or GENESIS


def time_range(since: datetime | None, until: datetime | None) -> list[str]:
    """[since, until) as ISO texts for `at >= ? AND at < ?` (open ends: all of time)."""
    start = since or datetime(1970, 1, 1, tzinfo=UTC)
    end = until or datetime(9999, 1, 1, tzinfo=UTC)
    return [iso(start), iso(end)]


def freeze_to_row(freeze: Freeze, created_at: str | None) -> dict:
    return {
        "id": freeze.id,
        "starts_at": iso(freeze.starts),
        "ends_at": iso(freeze.ends),
        "reason": freeze.reason,
        "policies": json.dumps(list(freeze.policies)),
        "created_by": freeze.created_by,
        "created_at": created_at,
    }


def freeze_from_row(row: dict) -> Freeze:
    return Freeze(
        id=row["id"],
        starts=dt(row["starts_at"]),
        ends=dt(row["ends_at"]),
        reason=row["reason"],
        policies=tuple(json.loads(row["policies"] or "[]")),
        created_by=row["created_by"] or "",
    )

"""What both stores share: request ids, and requests to and from table rows.

Timestamps are written as ISO 8601 text (PostgreSQL casts it to `timestamptz`) and read back
from either text or a `datetime`; JSON fields are text in both databases.
"""

from __future__ import annotations

import json
import secrets as random
from datetime import UTC, datetime
from typing import Any

from ..core.request import DeploySpec, Request
from ..core.states import State

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
    )

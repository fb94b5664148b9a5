"""The SQL both stores run, written once with PostgreSQL's placeholders (``%s``).

The PostgreSQL store runs these statements as they are; the SQLite store passes each one
through `qmark()` first, which turns ``%s`` into SQLite's ``?``:

>>> qmark(REQUEST)
'SELECT * FROM requests WHERE id = ?'

Only SQL that both databases read alike lives here: ``"user"`` is quoted (a reserved word
in PostgreSQL, a plain identifier in SQLite); ``INSERT … ON CONFLICT DO NOTHING`` and
``true``/``false`` need SQLite 3.24 or later (Debian 12 has 3.40).

What really differs stays in each adapter: transactions and locks, migrations,
``RETURNING`` (PostgreSQL answers in the same statement, SQLite reads again under its write
lock), ``= ANY(%s)`` against ``IN (?, ?)``, and the PostgreSQL-only ``seq`` column that
breaks ties between requests created in the same instant.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..core.ports import Clock
from ..core.posts import Post
from . import audit_chain
from .rows import AUDIT_PAGE, column, iso, prev_hash

# An adapter's way to run one of these statements in its open transaction: the psycopg
# connection's `execute`, or the SQLite store's `_run` (which applies `qmark()`).
Execute = Callable[[str, list[Any]], Any]


def qmark(statement: str) -> str:
    """`statement` with SQLite's placeholders."""
    return statement.replace("%s", "?")


# -- requests ------------------------------------------------------------------------------

REQUEST = "SELECT * FROM requests WHERE id = %s"
REQUEST_BY_CARD = "SELECT * FROM requests WHERE channel = %s AND message_ts = %s"
STATE_OF = "SELECT state FROM requests WHERE id = %s"
REQUEST_COUNT = "SELECT count(*) AS n FROM requests"
# `{assignments}` comes from `assignments()`; every write makes a new version of the card.
CHANGE_STATE = (
    "UPDATE requests SET {assignments}, version = version + 1 WHERE id = %s AND state = %s"
)
CHANGE_REQUEST = "UPDATE requests SET {assignments}, version = version + 1 WHERE id = %s"
BUMP = "UPDATE requests SET version = version + 1 WHERE id = %s"
CLAIM_CARD = "UPDATE requests SET card_version = %s WHERE id = %s AND card_version < %s"
RELEASE_CARD = "UPDATE requests SET card_version = 0 WHERE id = %s AND card_version = %s"

ADD_SECRETS = "INSERT INTO secrets (request_id, data) VALUES (%s, %s)"
SECRETS_OF = "SELECT data FROM secrets WHERE request_id = %s"
DELETE_SECRETS = "DELETE FROM secrets WHERE request_id = %s"


def keep_secrets(execute: Execute, request_id: str, secrets: dict | None) -> None:
    """Keep a new request's secrets until its submission; a request without any (no header
    values, user data or URL credentials) gets no row."""
    if secrets and any(secrets.values()):
        execute(ADD_SECRETS, [request_id, json.dumps(secrets)])


# -- fleets (deploys to many servers) --------------------------------------------------------

FLEET = "SELECT * FROM fleets WHERE id = %s"
FLEET_BY_CARD = "SELECT * FROM fleets WHERE channel = %s AND message_ts = %s"
FLEET_MEMBERS = "SELECT * FROM requests WHERE fleet_id = %s"
CHANGE_FLEET_STATE = "UPDATE fleets SET {assignments} WHERE id = %s AND state = %s"
CHANGE_FLEET = "UPDATE fleets SET {assignments} WHERE id = %s"
BUMP_FLEET = "UPDATE requests SET version = version + 1 WHERE fleet_id = %s"
# One approval row per server among `{ids}` (one %s each), bound to that server's
# fingerprint. (SQLite reads the ON of ON CONFLICT after `INSERT … SELECT` as a join's unless
# the SELECT has a WHERE: it has.)
APPROVE_FLEET = (
    'INSERT INTO approvals (request_id, "user", fingerprint, at) '
    "SELECT id, %s, fingerprint, %s FROM requests WHERE fleet_id = %s AND id IN ({ids}) "
    "ON CONFLICT DO NOTHING"
)
WITHDRAW_FROM_FLEET = (
    'DELETE FROM approvals WHERE "user" = %s AND request_id IN '
    "(SELECT id FROM requests WHERE fleet_id = %s)"
)

# -- approvals -------------------------------------------------------------------------------

APPROVE = (
    'INSERT INTO approvals (request_id, "user", fingerprint, at) VALUES (%s, %s, %s, %s) '
    "ON CONFLICT DO NOTHING"
)
WITHDRAW = 'DELETE FROM approvals WHERE request_id = %s AND "user" = %s'
APPROVERS = 'SELECT "user" FROM approvals WHERE request_id = %s AND fingerprint = %s ORDER BY at'


def approve(execute: Execute, request_id: str, user: str, fingerprint: str, at: str) -> bool:
    """Record `user`'s approval of exactly `fingerprint`; a new one gives the request a new
    version (its card shows the votes). False if it was already recorded."""
    added = execute(APPROVE, [request_id, user, fingerprint, at]).rowcount
    if added:
        execute(BUMP, [request_id])
    return bool(added)


def withdraw(execute: Execute, request_id: str, user: str) -> bool:
    """Withdraw `user`'s approval of a request (a new version of it); False if there was none."""
    removed = execute(WITHDRAW, [request_id, user]).rowcount
    if removed:
        execute(BUMP, [request_id])
    return bool(removed)


def approve_fleet(
    execute: Execute, fleet_id: str, user: str, at: str, request_ids: Sequence[str]
) -> int:
    """Record `user`'s approval of the fleet's servers in `request_ids`, each bound to its own
    request's fingerprint, and give the fleet's requests a new version; how many approvals
    were new (none for no `request_ids`)."""
    if not request_ids:
        return 0
    ids = ", ".join(["%s"] * len(request_ids))
    added = execute(APPROVE_FLEET.format(ids=ids), [user, at, fleet_id, *request_ids]).rowcount
    if added:
        execute(BUMP_FLEET, [fleet_id])
    return added


def withdraw_from_fleet(execute: Execute, fleet_id: str, user: str) -> bool:
    """Withdraw `user`'s approvals of a fleet's servers (new versions of their requests);
    False if there were none."""
    removed = execute(WITHDRAW_FROM_FLEET, [user, fleet_id]).rowcount
    if removed:
        execute(BUMP_FLEET, [fleet_id])
    return bool(removed)


# -- outbox: what the bot has to say, sent in order per lane (channel and kind) --------------

COALESCE_POST = "UPDATE outbox SET text = %s WHERE key = %s AND state = 'queued'"
QUEUE_POST = (
    "INSERT INTO outbox (kind, request_id, channel, key, text, state, attempts, unsure, "
    "created_at) VALUES (%s, %s, %s, %s, %s, 'queued', 0, false, %s)"
)
# The oldest waiting post of every lane that is not sending one now.
LANE_HEADS = (
    "SELECT * FROM outbox WHERE id IN (SELECT MIN(id) FROM outbox "
    "WHERE state = 'queued' GROUP BY channel, kind) AND NOT EXISTS (SELECT 1 "
    "FROM outbox o WHERE o.state = 'sending' AND o.channel = outbox.channel "
    "AND o.kind = outbox.kind) ORDER BY id"
)
POST = "SELECT * FROM outbox WHERE id = %s"
CLAIM_POST = (
    "UPDATE outbox SET state = 'sending', attempts = attempts + 1 "
    "WHERE id = %s AND state = 'queued'"
)
# Back in line, or dropped when a newer post with its key waits.
REQUEUE_POST = (
    "UPDATE outbox SET state = CASE WHEN key IS NOT NULL AND EXISTS (SELECT 1 "
    "FROM outbox o WHERE o.key = outbox.key AND o.state = 'queued' AND o.id > "
    "outbox.id) THEN 'dropped' ELSE 'queued' END, unsure = %s WHERE id = %s"
)
RESUME_SENDING = "UPDATE outbox SET state = 'queued', unsure = true WHERE state = 'sending'"
BACKLOG = "SELECT count(*) AS n FROM outbox WHERE state IN ('queued', 'sending')"
WAITING = (
    "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox "
    "WHERE state IN ('queued', 'sending')"
)
REQUESTS_BY_STATE = "SELECT state, count(*) AS n FROM requests GROUP BY state"
REPLIED_IN = "SELECT request_id FROM outbox WHERE channel = %s AND ts = %s"
FORGET_SENT = "DELETE FROM outbox WHERE state IN ('sent', 'dropped') AND done_at < %s"


def queue(execute: Execute, posts: Iterable[Post], clock: Clock) -> int:
    """Queue `posts` with `execute` (the adapter's, in its open transaction); how many.

    A waiting post with the same key takes the new text instead of queueing another: only
    the latest progress line or card of a request is worth sending.
    """
    count = 0
    for post in posts:
        count += 1
        if post.key and execute(COALESCE_POST, [post.text, post.key]).rowcount:
            continue
        post_row = [post.kind, post.request_id, post.channel, post.key, post.text]
        execute(QUEUE_POST, [*post_row, iso(clock.now())])
    return count


# -- audit, change control and Slack's deliveries ------------------------------------------

LAST_HASH = "SELECT hash FROM audit ORDER BY id DESC LIMIT 1"
AUDIT = "SELECT * FROM audit ORDER BY id"
AUDIT_OF = "SELECT * FROM audit WHERE request_id = %s ORDER BY id"
# A page of the whole chain after row id %s, in [since, until).
AUDIT_CHAIN_PAGE = (
    f"SELECT * FROM audit WHERE id > %s AND at >= %s AND at < %s ORDER BY id LIMIT {AUDIT_PAGE}"
)


def append_audit(execute: Execute, entry: dict) -> None:
    """Append `entry` (an `audit_row()` and its reason) to the audit log, sealed with the hash
    of the row before it. Run it in the adapter's write transaction: that transaction holds
    the chain's lock (SQLite's write lock, PostgreSQL's advisory lock), so no two rows ever
    chain to the same one."""
    sealed = audit_chain.seal(entry, prev_hash(execute(LAST_HASH, []).fetchone()))
    execute(insert("audit", sealed), list(sealed.values()))


LIFTABLE_FREEZE = "SELECT * FROM freezes WHERE id = %s AND lifted_by IS NULL AND ends_at > %s"
LIFT_FREEZE = "UPDATE freezes SET lifted_by = %s, lifted_at = %s WHERE id = %s"
CURRENT_FREEZES = (
    "SELECT * FROM freezes WHERE lifted_by IS NULL AND ends_at > %s ORDER BY starts_at"
)
OPEN_REVIEW = (
    "INSERT INTO reviews (request_id, policy_name, due_at) VALUES (%s, %s, %s) "
    "ON CONFLICT DO NOTHING"
)
REVIEWED = (
    "UPDATE reviews SET reviewed_by = %s, reviewed_at = %s "
    "WHERE request_id = %s AND reviewed_by IS NULL"
)
UNREVIEWED = "SELECT * FROM reviews WHERE reviewed_by IS NULL ORDER BY due_at, request_id"
REMINDED = "UPDATE reviews SET reminded_at = %s WHERE request_id = %s AND reminded_at IS NULL"

FIRST_DELIVERY = "INSERT INTO events (event_id, at) VALUES (%s, %s) ON CONFLICT DO NOTHING"
FORGET_EVENTS = "DELETE FROM events WHERE at < %s"


def insert(table: str, row: dict) -> str:
    """The INSERT of `row` (column names to values) into `table`.

    >>> insert("events", {"event_id": "Ev1", "at": "2026-01-02T00:00:00+00:00"})
    'INSERT INTO events (event_id, at) VALUES (%s, %s)'
    """
    return f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})"


def assignments(fields: dict[str, Any]) -> tuple[str, list[Any]]:
    """The ``SET`` list of an UPDATE writing `fields`, and the values as they are stored.

    >>> from datetime import UTC, datetime
    >>> assignments({"last_status": "done", "finished_at": datetime(2026, 1, 2, tzinfo=UTC)})
    ('last_status = %s, finished_at = %s', ['done', '2026-01-02T00:00:00+00:00'])
    """
    return ", ".join(f"{name} = %s" for name in fields), [column(v) for v in fields.values()]

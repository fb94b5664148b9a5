"""The SQLite store (sqlite-utils): the embedded default, for one bot process.

The store is the single source of truth; the scheduler and the chat adapters rebuild
everything they need from it at start-up. Its public methods are the `RequestStore` port
of the core; `postgres.py` is the other adapter, for replicas sharing one database.

>>> store = Store(":memory:")
>>> store.schema_version()
10

Rules it enforces:

- every state change is a compare-and-set on the current state, written in the same
  transaction as its audit row: two concurrent approvals cannot both submit;
- at most one active request per server (a partial unique index);
- the audit log is append-only (triggers refuse UPDATE and DELETE);
- what the bot has to say about a change (`core.posts.Post`) is written to the outbox in
  the change's own transaction; the outbox holds chat text only, never secrets;
- secrets (header values, user data, URL credentials) live in their own table until
  submission, when `transition(..., take_secrets=True)` hands them out once and deletes them
  (zeroed on disk: `secure_delete`, and the WAL is checkpointed when a secret was deleted).

The list, status and poll queries are answered from indexes (state, creation time, server);
`stream()` yields requests page by page, so a poll cycle never holds every request at once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlite_utils import Database, Migrations

from ..clock import SystemClock
from ..core.change_control import Freeze
from ..core.fleet import Fleet, FleetState
from ..core.ports import Clock, ServerBusy
from ..core.posts import Post, Queued
from ..core.request import Request
from ..core.states import ACTIVE_STATES, IllegalTransition, State, check_transition
from . import audit_chain
from .lockfile import hold_shared
from .rows import (
    AUDIT_PAGE,
    CURRENT_FREEZES,
    FREEZE_COLUMNS,
    LIFTABLE_FREEZE,
    REVIEW_COLUMNS,
    SYSTEM_ACTOR,
    UNREVIEWED,
    audit_row,
    column,
    dt,
    fleet_approved,
    fleet_change,
    fleet_from_row,
    fleet_to_row,
    freeze_from_row,
    freeze_to_row,
    from_row,
    in_rollout_order,
    iso,
    prev_hash,
    qmark,
    time_range,
    to_row,
)

migrations = Migrations("byoi-bot")


@migrations()
def m001_initial(db: Database) -> None:
    db["requests"].create(
        {
            "id": str,
            "server": str,
            "state": str,
            "requester": str,
            "channel": str,
            "spec": str,
            "fingerprint": str,
            "policy_name": str,
            "created_at": str,
            "expires_at": str,
            "message_ts": str,
            "provider_handle": str,
            "submitted_at": str,
            "finished_at": str,
            "last_status": str,
            "checks": str,
            "server_facts": str,
            "image_facts": str,
        },
        pk="id",
    )
    db["requests"].create_index(["server"])
    db["requests"].create_index(["channel", "message_ts"])
    db["approvals"].create(
        {"request_id": str, "user": str, "fingerprint": str, "at": str},
        pk=("request_id", "user"),
        foreign_keys=[("request_id", "requests", "id")],
    )
    db["secrets"].create({"request_id": str, "data": str}, pk="request_id")
    db["audit"].create(
        {
            "id": int,
            "request_id": str,
            "at": str,
            "actor": str,
            "action": str,
            "from_state": str,
            "to_state": str,
            "reason": str,
        },
        pk="id",
    )
    db["audit"].create_index(["request_id"])
    for op in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER audit_no_{op.lower()} BEFORE {op} ON audit "
            "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
        )


@migrations()
def m002_one_active_request_per_server(db: Database) -> None:
    states = ", ".join(f"'{s}'" for s in sorted(ACTIVE_STATES))
    db.execute(
        f"CREATE UNIQUE INDEX one_active_per_server ON requests(server) WHERE state IN ({states})"
    )


@migrations()
def m003_events_and_progress(db: Database) -> None:
    db["events"].create({"event_id": str, "at": str}, pk="event_id")
    db["requests"].add_column("progress", str)
    db["requests"].add_column("last_post_at", str)


@migrations()
def m004_start_mark(db: Database) -> None:
    db["requests"].add_column("start_mark", str)


@migrations()
def m005_outbox(db: Database) -> None:
    db["outbox"].create(
        {
            "id": int,
            "kind": str,
            "request_id": str,
            "channel": str,
            "key": str,
            "text": str,
            "state": str,  # queued, sending, sent, dropped
            "attempts": int,
            "unsure": int,
            "created_at": str,
            "done_at": str,
            "ts": str,
            "error": str,
        },
        pk="id",
    )
    db["outbox"].create_index(["state", "channel", "kind", "id"])
    db["outbox"].create_index(["key", "state"])
    db["outbox"].create_index(["channel", "ts"])


@migrations()
def m006_versions(db: Database) -> None:
    db["requests"].add_column("version", int, not_null_default=0)
    db["requests"].add_column("card_version", int, not_null_default=0)


@migrations()
def m007_query_indexes(db: Database) -> None:
    """Indexes for `stream`/`in_states` (state, then age), `recent` and a server's history."""
    db.execute("DROP INDEX IF EXISTS idx_requests_server")
    db["requests"].create_index(["state", "created_at", "id"])
    db["requests"].create_index(["created_at"])
    db["requests"].create_index(["server", "created_at"])


@migrations()
def m008_fleets(db: Database) -> None:
    """Deploys to many servers: the fleet request, and each server's request pointing to it."""
    db["fleets"].create(
        {
            "id": str,
            "requester": str,
            "channel": str,
            "state": str,
            "created_at": str,
            "expires_at": str,
            "policy_name": str,
            "policy_note": str,
            "servers": str,
            "rollout": str,
            "pattern": str,
            "refused": str,
            "fingerprint": str,
            "message_ts": str,
            "announced": str,
            "waves_announced": int,
            "started_at": str,
            "finished_at": str,
        },
        pk="id",
    )
    db["fleets"].create_index(["state"])
    db["fleets"].create_index(["channel", "message_ts"])
    db["requests"].add_column("fleet_id", str)
    db["requests"].create_index(["fleet_id"])


@migrations()
def m_change_01_audit_chain_freezes_reviews(db: Database) -> None:
    """Change control: the audit rows chained by hash (existing rows sealed in order),
    freezes, and the post-hoc reviews of emergency overrides."""
    for op in ("update", "delete"):
        db.execute(f"DROP TRIGGER IF EXISTS audit_no_{op}")
    db["audit"].add_column("prev_hash", str)
    db["audit"].add_column("hash", str)
    prev = audit_chain.GENESIS
    for row in list(db.query("SELECT * FROM audit ORDER BY id")):
        sealed = audit_chain.seal(row, prev)
        db.execute(
            "UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?",
            [sealed["prev_hash"], sealed["hash"], row["id"]],
        )
        prev = sealed["hash"]
    _audit_append_only(db)
    db["freezes"].create(FREEZE_COLUMNS, pk="id")
    db["reviews"].create(REVIEW_COLUMNS, pk="request_id")


def _audit_append_only(db: Database) -> None:
    for op in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER audit_no_{op.lower()} BEFORE {op} ON audit "
            "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
        )


@migrations()
def m_gate_01_boot_gate(db: Database) -> None:
    """The boot gate: its record per request, and `booting` holds its server like `deploying`."""
    db["requests"].add_column("boot", str)
    states = ", ".join(f"'{s}'" for s in sorted(ACTIVE_STATES))
    db.execute("DROP INDEX one_active_per_server")
    db.execute(
        f"CREATE UNIQUE INDEX one_active_per_server ON requests(server) WHERE state IN ({states})"
    )


STREAM_PAGE = 200  # rows per page of `stream()`

SCHEMA_VERSION = len(migrations._migrations)

_CLAIMS: set[tuple[str, str]] = set()  # (file, request id) claimed in this process
_CLAIMS_LOCK = threading.Lock()


class SoleLeader:
    """One process on one file leads from the start: its background work runs right away."""

    def start(
        self,
        on_elected: Callable[[], None],
        on_deposed: Callable[[], None],
        on_notified: Callable[[], None] = lambda: None,
    ) -> None:
        """Lead now; posts queued here wake the sender directly (`Store.on_enqueue`)."""
        on_elected()

    def stop(self) -> None:
        """Nothing to release."""

    def leader_known(self) -> bool:
        """Always: this process."""
        return True


class Store:
    """The request store over one SQLite file (WAL mode), safe to share between threads."""

    def __init__(
        self, path: str, *, clock: Clock | None = None, busy_timeout: float = 30.0
    ) -> None:
        self._clock = clock or SystemClock()  # stamps approvals, audit rows and event ids
        conn = sqlite3.connect(path, timeout=busy_timeout, check_same_thread=False)
        self._holder = hold_shared(path)  # `byoi-bot restore` waits for it (`lockfile`)
        self.db = Database(conn)
        self._lock = threading.RLock()
        self._file = os.path.realpath(path) if path != ":memory:" else f":memory:{id(self)}"
        if path != ":memory:":
            self.db.enable_wal()
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA secure_delete = ON")  # deleted secrets are zeroed on disk
        with self._lock:
            migrations.apply(self.db)
        self.on_enqueue: Callable[[], None] = lambda: None  # wakes the outbox's sender
        self.resume_sending()

    def close(self) -> None:
        """Close the connection, once no other thread is using it (closing under a running
        statement of another thread can crash the interpreter)."""
        with self._lock:
            self.db.close()
            if self._holder is not None:
                self._holder.close()

    def probe(self) -> None:
        """Take and release the write lock: proves the file is writable (`byoi-bot check`)."""
        with self._write() as db:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS _probe (x)")

    def schema_version(self) -> int:
        """How many migrations this file has had applied."""
        with self._lock:
            return len(migrations.applied(self.db))

    def leadership(self) -> SoleLeader:
        """Who runs the background work: this process, the only one on the file."""
        return SoleLeader()

    @contextmanager
    def claim_request(self, request_id: str) -> Iterator[bool]:
        """Work on `request_id` alone while the block runs: yields False when this process
        already does (a start call under way is never reconciled under its feet). One file
        has one process, so the claims live in memory; they end with it."""
        key = (self._file, request_id)
        with _CLAIMS_LOCK:
            mine = key not in _CLAIMS
            _CLAIMS.add(key)
        try:
            yield mine
        finally:
            if mine:
                with _CLAIMS_LOCK:
                    _CLAIMS.discard(key)

    def claim_card(self, request_id: str, version: int) -> bool:
        """True when the card may show `version`: no newer version was drawn or is being."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE requests SET card_version = ? WHERE id = ? AND card_version < ?",
                [version, request_id, version],
            )
            return cursor.rowcount == 1

    def release_card(self, request_id: str, version: int) -> None:
        """Undo `claim_card(request_id, version)` when the card could not be drawn."""
        with self._write() as db:
            db.execute(
                "UPDATE requests SET card_version = 0 WHERE id = ? AND card_version = ?",
                [request_id, version],
            )

    @contextmanager
    def _write(self, notify: bool = True) -> Iterator[Database]:
        """One write transaction, taking SQLite's write lock up front (BEGIN IMMEDIATE).

        When it queued posts, the outbox's sender is woken after the commit (by the caller
        instead, with `notify=False`)."""
        with self._lock:
            self._enqueued = False
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.rollback()
                raise
            self.db.execute("COMMIT")
            enqueued = self._enqueued
        if enqueued and notify:
            self.on_enqueue()

    # -- requests -------------------------------------------------------------------

    def create(self, request: Request, secrets: dict | None, reason: str = "requested") -> None:
        """Store a new request (and its secrets) with its first audit row.

        Raises `ServerBusy` when the server already has an active request.
        """
        with self._write() as db:
            other = self._active_on(request.spec.server)
            if other:
                raise ServerBusy(request.spec.server, other)
            db["requests"].insert(to_row(request))
            if secrets and any(secrets.values()):
                db["secrets"].insert({"request_id": request.id, "data": json.dumps(secrets)})
            self._audit(request.id, request.requester, "created", None, request.state, reason)

    def get(self, request_id: str) -> Request | None:
        """The request with this id, or None."""
        with self._lock:
            rows = list(self.db.query("SELECT * FROM requests WHERE id = ?", [request_id]))
        return from_row(rows[0]) if rows else None

    def by_message(self, channel: str, ts: str) -> Request | None:
        """The request whose card is the message `ts` in `channel`, or None."""
        with self._lock:
            rows = list(
                self.db.query(
                    "SELECT * FROM requests WHERE channel = ? AND message_ts = ?", [channel, ts]
                )
            )
        return from_row(rows[0]) if rows else None

    def in_states(self, states: Iterable[State], server: str | None = None) -> list[Request]:
        """Requests in any of `states` (optionally of one server), oldest first."""
        wanted = [str(s) for s in states]
        sql = f"SELECT * FROM requests WHERE state IN ({', '.join('?' * len(wanted))})"
        params: list[Any] = list(wanted)
        if server:
            sql += " AND server = ?"
            params.append(server)
        with self._lock:
            rows = list(self.db.query(sql + " ORDER BY created_at", params))
        return [from_row(r) for r in rows]

    def stream(self, states: Iterable[State], page: int = STREAM_PAGE) -> Iterator[Request]:
        """Requests in any of `states`, oldest first, read `page` rows at a time.

        Keyset pagination on (created_at, id): no lock or cursor is held between pages, so
        other threads write while a cycle walks the rows; a request that changes state
        meanwhile may or may not be yielded.
        """
        wanted = [str(s) for s in states]
        sql = (
            f"SELECT * FROM requests WHERE state IN ({', '.join('?' * len(wanted))}) "
            "AND (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?"
        )
        after: tuple[str, str] = ("", "")
        while True:
            with self._lock:
                rows = list(self.db.query(sql, [*wanted, *after, page]))
            for row in rows:
                yield from_row(row)
            if len(rows) < page:
                return
            after = (rows[-1]["created_at"], rows[-1]["id"])

    def active(self, server: str | None = None) -> list[Request]:
        """Requests that hold their server: pending, approved, submitting or deploying."""
        return self.in_states(ACTIVE_STATES, server)

    def recent(self, limit: int = 20, server: str | None = None, offset: int = 0) -> list[Request]:
        """The newest requests (of one server, if given), newest first, skipping `offset`."""
        sql, params = "SELECT * FROM requests", []
        if server:
            sql, params = sql + " WHERE server = ?", [server]
        sql += " ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?"  # pages never overlap
        with self._lock:
            rows = list(self.db.query(sql, [*params, limit, offset]))
        return [from_row(r) for r in rows]

    def count(self) -> int:
        with self._lock:
            return self.db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]

    def _active_on(self, server: str) -> Request | None:
        found = self.active(server)
        return found[0] if found else None

    def transition(
        self,
        request_id: str,
        expected: State,
        to: State,
        actor: str,
        reason: str = "",
        *,
        take_secrets: bool = False,
        posts: Callable[[Request], Iterable[Post]] | None = None,
        **fields: Any,
    ) -> tuple[Request, dict | None]:
        """Move a request from `expected` to `to`, atomically with its audit row and posts.

        A compare-and-set: raises `IllegalTransition` when the edge is not allowed or the
        request is no longer in `expected` (another thread or a repeated event got there
        first). With `take_secrets`, the request's secrets are returned and deleted in the
        same transaction; they are deleted anyway when the request reaches a final state.
        Extra `fields` (e.g. ``provider_handle``) are written with the change; `posts`, given
        the changed request, says what to tell the chat about it (queued in the same
        transaction).
        """
        check_transition(request_id, expected, to)
        values = {k: column(v) for k, v in fields.items()}
        values["state"] = str(to)
        assignments = ", ".join(f"{k} = ?" for k in values) + ", version = version + 1"
        with self._write(notify=False) as db:
            cursor = db.execute(
                f"UPDATE requests SET {assignments} WHERE id = ? AND state = ?",
                [*values.values(), request_id, str(expected)],
            )
            if cursor.rowcount != 1:
                current = self._state_of(request_id)
                raise IllegalTransition(
                    request_id, current or expected, to, f"it is {current or 'unknown'} now"
                )
            taken = self._secrets(request_id) if take_secrets else None
            deleted = 0
            if take_secrets or to.is_final:
                deleted = db.execute(
                    "DELETE FROM secrets WHERE request_id = ?", [request_id]
                ).rowcount
            self._audit(request_id, actor, "transition", expected, to, reason)
            if posts:
                changed = self.get(request_id)
                assert changed is not None
                self._enqueue(posts(changed))
        if deleted:
            self._checkpoint()
        request = self.get(request_id)
        assert request is not None
        if posts:
            self.on_enqueue()  # once the change is complete, checkpoint included
        return request, taken

    def update(self, request_id: str, posts: Iterable[Post] = (), **fields: Any) -> None:
        """Write display fields that are not state (card ts, last status, progress), and the
        posts that report them, in one transaction."""
        if "state" in fields:
            raise ValueError("state changes go through transition()")
        values = {k: column(v) for k, v in fields.items()}
        assignments = ", ".join(f"{k} = ?" for k in values) + ", version = version + 1"
        with self._write() as db:
            if values:
                db.execute(
                    f"UPDATE requests SET {assignments} WHERE id = ?",
                    [*values.values(), request_id],
                )
            self._enqueue(posts)

    def _checkpoint(self) -> None:
        """Fold the WAL into the file and empty it, so deleted secrets leave no old copy."""
        with self._lock:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _state_of(self, request_id: str) -> State | None:
        rows = list(self.db.query("SELECT state FROM requests WHERE id = ?", [request_id]))
        return State(rows[0]["state"]) if rows else None

    def secrets(self, request_id: str) -> dict | None:
        """The request's secrets while it has them (before submission), else None."""
        with self._lock:
            return self._secrets(request_id)

    def _secrets(self, request_id: str) -> dict | None:
        rows = list(self.db.query("SELECT data FROM secrets WHERE request_id = ?", [request_id]))
        return json.loads(rows[0]["data"]) if rows else None

    # -- fleets (deploys to many servers) ---------------------------------------------

    def create_fleet(self, fleet: Fleet, children: list[tuple[Request, dict | None]]) -> None:
        """Store a fleet request and its servers' requests (and secrets) in one transaction.

        Raises `ServerBusy` when one of the servers already has an active request.
        """
        with self._write() as db:
            for child, _ in children:
                other = self._active_on(child.spec.server)
                if other:
                    raise ServerBusy(child.spec.server, other)
            db["fleets"].insert(fleet_to_row(fleet))
            self._audit(fleet.id, fleet.requester, "created", None, None, "fleet requested")
            for child, secrets in children:
                db["requests"].insert(to_row(child))
                if secrets and any(secrets.values()):
                    db["secrets"].insert({"request_id": child.id, "data": json.dumps(secrets)})
                self._audit(child.id, child.requester, "created", None, child.state, fleet.id)

    def fleet(self, fleet_id: str) -> Fleet | None:
        """The fleet request with this id, or None."""
        with self._lock:
            rows = list(self.db.query("SELECT * FROM fleets WHERE id = ?", [fleet_id]))
        return fleet_from_row(rows[0]) if rows else None

    def fleet_by_message(self, channel: str, ts: str) -> Fleet | None:
        """The fleet whose card is the message `ts` in `channel`, or None."""
        with self._lock:
            rows = list(
                self.db.query(
                    "SELECT * FROM fleets WHERE channel = ? AND message_ts = ?", [channel, ts]
                )
            )
        return fleet_from_row(rows[0]) if rows else None

    def fleets_in_states(self, states: Iterable[FleetState]) -> list[Fleet]:
        """Fleet requests in any of `states`, oldest first."""
        wanted = [str(s) for s in states]
        sql = f"SELECT * FROM fleets WHERE state IN ({', '.join('?' * len(wanted))})"
        with self._lock:
            rows = list(self.db.query(sql + " ORDER BY created_at", wanted))
        return [fleet_from_row(r) for r in rows]

    def fleet_members(self, fleet: Fleet) -> list[Request]:
        """The fleet's server requests, in rollout order."""
        with self._lock:
            rows = list(self.db.query("SELECT * FROM requests WHERE fleet_id = ?", [fleet.id]))
        return in_rollout_order(fleet, map(from_row, rows))

    def fleet_transition(
        self,
        fleet_id: str,
        expected: FleetState,
        to: FleetState,
        actor: str,
        reason: str,
        **fields: Any,
    ) -> bool:
        """Compare-and-set of the fleet's state with its audit row; False if it moved."""
        values = {k: column(v) for k, v in fields.items()} | {"state": str(to)}
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self._write() as db:
            cursor = db.execute(
                f"UPDATE fleets SET {assignments} WHERE id = ? AND state = ?",
                [*values.values(), fleet_id, str(expected)],
            )
            if cursor.rowcount != 1:
                return False
            reason = fleet_change(expected, to, reason)
            self._audit(fleet_id, actor, "transition", None, None, reason)
        return True

    def update_fleet(self, fleet_id: str, **fields: Any) -> None:
        """Write fleet fields that are not its state (card ts, what was announced)."""
        values = {k: column(v) for k, v in fields.items()}
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self._write() as db:
            db.execute(
                f"UPDATE fleets SET {assignments} WHERE id = ?", [*values.values(), fleet_id]
            )

    def add_fleet_approval(self, fleet: Fleet, user: str, request_ids: Sequence[str]) -> bool:
        """Record `user`'s approval of the exact spec of each of the fleet's servers in
        `request_ids` (those whose policy lists `user`); False if already recorded."""
        with self._write() as db:
            rows = list(
                db.query("SELECT id, fingerprint FROM requests WHERE fleet_id = ?", [fleet.id])
            )
            added = 0
            for row in (r for r in rows if r["id"] in request_ids):
                added += db.execute(
                    "INSERT OR IGNORE INTO approvals (request_id, user, fingerprint, at) "
                    "VALUES (?, ?, ?, ?)",
                    [row["id"], user, row["fingerprint"], iso(self._clock.now())],
                ).rowcount
            if added:
                db.execute(
                    "UPDATE requests SET version = version + 1 WHERE fleet_id = ?", [fleet.id]
                )
                self._audit(fleet.id, user, "approval", None, None, fleet_approved(added))
            return bool(added)

    def remove_fleet_approval(self, fleet: Fleet, user: str) -> bool:
        """Withdraw `user`'s approval of the fleet; False if there was none."""
        with self._write() as db:
            cursor = db.execute(
                "DELETE FROM approvals WHERE user = ? AND request_id IN "
                "(SELECT id FROM requests WHERE fleet_id = ?)",
                [user, fleet.id],
            )
            if cursor.rowcount:
                db.execute(
                    "UPDATE requests SET version = version + 1 WHERE fleet_id = ?", [fleet.id]
                )
                self._audit(fleet.id, user, "withdrawal", None, None, "approval withdrawn")
            return bool(cursor.rowcount)

    # -- approvals ------------------------------------------------------------------

    def add_approval(
        self,
        request_id: str,
        user: str,
        fingerprint: str,
        posts: Callable[[list[str]], Iterable[Post]] | None = None,
    ) -> bool:
        """Record `user`'s approval of exactly `fingerprint`; False if already recorded.

        `posts`, given the approvals of `fingerprint` this one included, says what to tell
        the chat (queued in the same transaction)."""
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO approvals (request_id, user, fingerprint, at) "
                "VALUES (?, ?, ?, ?)",
                [request_id, user, fingerprint, iso(self._clock.now())],
            )
            if cursor.rowcount:
                self._bump(request_id)
                self._audit(request_id, user, "approval", None, None, "approved")
                if posts:
                    self._enqueue(posts(self.approvals(request_id, fingerprint)))
            return bool(cursor.rowcount)

    def remove_approval(self, request_id: str, user: str, posts: Iterable[Post] = ()) -> bool:
        """Withdraw `user`'s approval (and queue `posts`); False if there was none."""
        with self._write() as db:
            cursor = db.execute(
                "DELETE FROM approvals WHERE request_id = ? AND user = ?", [request_id, user]
            )
            if cursor.rowcount:
                self._bump(request_id)
                self._audit(request_id, user, "withdrawal", None, None, "approval withdrawn")
                self._enqueue(posts)
            return bool(cursor.rowcount)

    def _bump_fleet(self, fleet_id: str) -> None:
        """A new version of every server's request of the fleet (their votes changed)."""
        self.db.execute("UPDATE requests SET version = version + 1 WHERE fleet_id = ?", [fleet_id])

    def _bump(self, request_id: str) -> None:
        """A new version of the request (its card shows the votes)."""
        self.db.execute("UPDATE requests SET version = version + 1 WHERE id = ?", [request_id])

    # -- outbox ---------------------------------------------------------------------

    def resume_sending(self) -> None:
        """Posts a sender was sending when it died go back in line, marked unsure (they may
        have been posted); at start-up, before the sender starts."""
        with self._write() as db:
            db.execute("UPDATE outbox SET state = 'queued', unsure = 1 WHERE state = 'sending'")

    def enqueue(self, posts: Iterable[Post]) -> None:
        """Queue posts that report no stored change (e.g. "starts at 12:00")."""
        with self._write():
            self._enqueue(posts)

    def _enqueue(self, posts: Iterable[Post]) -> None:
        """Queue `posts` in the current transaction; a waiting post with the same key takes
        the new text instead (only the latest progress or card is worth sending)."""
        for post in posts:
            self._enqueued = True
            if post.key:
                cursor = self.db.execute(
                    "UPDATE outbox SET text = ? WHERE key = ? AND state = 'queued'",
                    [post.text, post.key],
                )
                if cursor.rowcount:
                    continue
            self.db["outbox"].insert(
                {
                    "kind": post.kind,
                    "request_id": post.request_id,
                    "channel": post.channel,
                    "key": post.key,
                    "text": post.text,
                    "state": "queued",
                    "attempts": 0,
                    "unsure": 0,
                    "created_at": iso(self._clock.now()),
                }
            )

    def heads(self) -> list[Queued]:
        """The oldest waiting post of every lane (channel and kind) not sending one now."""
        with self._lock:
            rows = self.db.query(
                "SELECT * FROM outbox WHERE id IN (SELECT MIN(id) FROM outbox "
                "WHERE state = 'queued' GROUP BY channel, kind) AND NOT EXISTS (SELECT 1 "
                "FROM outbox o WHERE o.state = 'sending' AND o.channel = outbox.channel "
                "AND o.kind = outbox.kind) ORDER BY id"
            )
            return [self._queued(r) for r in rows]

    def claim(self, post_id: int) -> Queued | None:
        """Mark a waiting post as being sent; None when it is not waiting any more."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE outbox SET state = 'sending', attempts = attempts + 1 "
                "WHERE id = ? AND state = 'queued'",
                [post_id],
            )
            if cursor.rowcount != 1:
                return None
            row = next(db.query("SELECT * FROM outbox WHERE id = ?", [post_id]))
        return self._queued(row)

    def sent(self, post_id: int, ts: str | None) -> None:
        """The post is in the chat (`ts`: its message id, for replies)."""
        self._settle(post_id, "sent", ts=ts)

    def requeue(self, post_id: int, *, unsure: bool) -> None:
        """Put a post back in its place; dropped instead when a newer one replaces it."""
        with self._write() as db:
            db.execute(
                "UPDATE outbox SET state = CASE WHEN key IS NOT NULL AND EXISTS (SELECT 1 "
                "FROM outbox o WHERE o.key = outbox.key AND o.state = 'queued' AND o.id > "
                "outbox.id) THEN 'dropped' ELSE 'queued' END, unsure = ? WHERE id = ?",
                [int(unsure), post_id],
            )

    def drop(self, post_id: int, reason: str) -> None:
        """Give up on a post the chat will never take."""
        self._settle(post_id, "dropped", error=reason[:200])

    def _settle(self, post_id: int, state: str, **fields: Any) -> None:
        with self._write() as db:
            done = {"state": state, "done_at": iso(self._clock.now())}
            db["outbox"].update(post_id, {**done, **fields})

    def backlog(self) -> int:
        """How many posts wait to be sent."""
        with self._lock:
            return self.db.execute(
                "SELECT COUNT(*) FROM outbox WHERE state IN ('queued', 'sending')"
            ).fetchone()[0]

    def request_counts(self) -> dict[str, int]:
        """How many requests are in each state (states with none are left out)."""
        with self._lock:
            rows = self.db.execute("SELECT state, COUNT(*) FROM requests GROUP BY state")
            return dict(rows.fetchall())

    def outbox_waiting(self) -> tuple[int, datetime | None]:
        """How many posts wait to be sent, and when the oldest of them was queued."""
        with self._lock:
            count, oldest = self.db.execute(
                "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE state IN ('queued', 'sending')"
            ).fetchone()
        return count, datetime.fromisoformat(oldest) if oldest else None

    def by_reply(self, channel: str, ts: str) -> Request | None:
        """The request in whose thread the bot posted the message `ts`, or None."""
        with self._lock:
            rows = list(
                self.db.query(
                    "SELECT request_id FROM outbox WHERE channel = ? AND ts = ?", [channel, ts]
                )
            )
        return self.get(rows[0]["request_id"]) if rows else None

    def forget_sent(self, before: datetime) -> int:
        """Drop settled posts older than `before` (kept a while to recognise thread replies)."""
        with self._write() as db:
            return db.execute(
                "DELETE FROM outbox WHERE state IN ('sent', 'dropped') AND done_at < ?",
                [iso(before)],
            ).rowcount

    @staticmethod
    def _queued(row: dict) -> Queued:
        post = Post(row["kind"], row["request_id"], row["channel"], row["text"] or "", row["key"])
        return Queued(row["id"], post, row["attempts"], bool(row["unsure"]))

    def approvals(self, request_id: str, fingerprint: str) -> list[str]:
        """Users whose approval is bound to `fingerprint` (approvals of anything else are void)."""
        with self._lock:
            rows = self.db.query(
                "SELECT user FROM approvals WHERE request_id = ? AND fingerprint = ? ORDER BY at",
                [request_id, fingerprint],
            )
            return [r["user"] for r in rows]

    # -- audit and events -------------------------------------------------------------

    def note(self, request_id: str, actor: str, action: str, reason: str) -> None:
        """Append an audit row that is not a state change (e.g. a refused approval)."""
        with self._write():
            self._audit(request_id, actor, action, None, None, reason)

    def _audit(
        self,
        request_id: str,
        actor: str,
        action: str,
        from_state: State | None,
        to_state: State | None,
        reason: str,
    ) -> None:
        """Append one audit row, chained to the last (inside `_write()`'s transaction)."""
        last = self.db.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        row = audit_row(request_id, iso(self._clock.now()), actor, action, from_state, to_state)
        self.db["audit"].insert(audit_chain.seal(row | {"reason": reason}, prev_hash(last)))

    def audit(self, request_id: str | None = None) -> list[dict]:
        """The audit trail of one request, or of all, oldest first."""
        sql, params = "SELECT * FROM audit", []
        if request_id:
            sql, params = sql + " WHERE request_id = ?", [request_id]
        with self._lock:
            return list(self.db.query(sql + " ORDER BY id", params))

    def audit_chain(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[dict]:
        """Every audit row with its hashes, oldest first, in pages (an export or a check of
        the whole chain never holds it all)."""
        last = 0
        while True:
            with self._lock:
                page = list(
                    self.db.query(
                        "SELECT * FROM audit WHERE id > ? AND at >= ? AND at < ? ORDER BY id "
                        f"LIMIT {AUDIT_PAGE}",
                        [last, *time_range(since, until)],
                    )
                )
            yield from page
            if len(page) < AUDIT_PAGE:
                return
            last = page[-1]["id"]

    # -- change control ---------------------------------------------------------------

    def add_freeze(self, freeze: Freeze) -> None:
        """Store a freeze, with its audit row."""
        with self._write() as db:
            db["freezes"].insert(freeze_to_row(freeze, iso(self._clock.now())))
            self._audit(freeze.id, freeze.created_by, "freeze", None, None, freeze.describe())

    def lift_freeze(self, freeze_id: str, user: str) -> Freeze | None:
        """End a freeze now (None when no such freeze is still in force)."""
        now = iso(self._clock.now())
        with self._write() as db:
            row = next(db.query(qmark(LIFTABLE_FREEZE), [freeze_id, now]), None)
            if row is None:
                return None
            db.execute(
                "UPDATE freezes SET lifted_by = ?, lifted_at = ? WHERE id = ?",
                [user, now, freeze_id],
            )
            self._audit(freeze_id, user, "unfreeze", None, None, "freeze lifted")
        return freeze_from_row(row)

    def freezes(self, *, ending_after: datetime) -> list[Freeze]:
        """The freezes not lifted that end after `ending_after`, earliest first."""
        with self._lock:
            rows = self.db.query(qmark(CURRENT_FREEZES), [iso(ending_after)])
            return [freeze_from_row(r) for r in rows]

    def open_review(self, request_id: str, policy_name: str, due: datetime, why: str) -> None:
        """An emergency override to be reviewed by `due`, flagged in the audit trail."""
        with self._write() as db:
            db["reviews"].insert(
                {"request_id": request_id, "policy_name": policy_name, "due_at": iso(due)},
                ignore=True,
            )
            self._audit(request_id, SYSTEM_ACTOR, "emergency_override", None, None, why)

    def review(self, request_id: str, user: str, posts: list[Post]) -> bool:
        """Record `user`'s review of an emergency override; False if it was reviewed."""
        with self._write() as db:
            changed = db.execute(
                "UPDATE reviews SET reviewed_by = ?, reviewed_at = ? "
                "WHERE request_id = ? AND reviewed_by IS NULL",
                [user, iso(self._clock.now()), request_id],
            ).rowcount
            if changed:
                self._audit(request_id, user, "emergency_review", None, None, "reviewed")
                self._enqueue(posts)
        return bool(changed)

    def unreviewed(self) -> list[dict]:
        """Emergency overrides nobody has reviewed yet, oldest due first."""
        with self._lock:
            return [r | {"due_at": dt(r["due_at"])} for r in self.db.query(UNREVIEWED)]

    def remind_review(self, request_id: str, posts: list[Post]) -> bool:
        """Mark the reminder of an overdue review as sent, queueing `posts`, once."""
        with self._write():
            changed = self.db.execute(
                "UPDATE reviews SET reminded_at = ? WHERE request_id = ? AND reminded_at IS NULL",
                [iso(self._clock.now()), request_id],
            ).rowcount
            if changed:
                self._enqueue(posts)
        return bool(changed)

    def first_delivery(self, event_id: str) -> bool:
        """True the first time `event_id` is seen: Slack's retried deliveries count once."""
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO events (event_id, at) VALUES (?, ?)",
                [event_id, iso(self._clock.now())],
            )
            return bool(cursor.rowcount)

    def forget_events(self, before: datetime) -> int:
        """Drop delivery ids seen before `before` (Slack retries within minutes, not days)."""
        with self._write() as db:
            return db.execute("DELETE FROM events WHERE at < ?", [iso(before)]).rowcount

"""The PostgreSQL store (psycopg 3): one database shared by every replica of the bot.

The same `RequestStore` port and rules as the SQLite store, enforced by the database so
that they hold across processes:

- a state change is one conditional ``UPDATE … WHERE id = … AND state = …`` written in the
  same transaction as its audit row: of two replicas approving or submitting the same
  request, only the one whose update changed the row goes on (and calls OVHcloud);
- one active request per server (a partial unique index); Slack's event ids and the votes
  are de-duplicated by primary keys (``INSERT … ON CONFLICT DO NOTHING``);
- the audit log is append-only (a trigger refuses UPDATE, DELETE and TRUNCATE);
- a request being submitted is *claimed* by a session advisory lock of the submitting
  process: a crash releases it, so reconciliation never settles a start call still under way;
- background work runs on one leader, elected by `pg_try_advisory_lock` on a connection of its
  own (`AdvisoryLeader`); when the leader dies, its session ends and another replica takes over
  within `interval` seconds.

Session advisory locks need a session: connect to PostgreSQL directly or through a pooler in
*session* mode (PgBouncer's transaction pooling would lose them between statements).
Secrets are deleted at submission; PostgreSQL reclaims dead rows at VACUUM.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import ConnectionPool

from ..clock import SystemClock
from ..core.change_control import Freeze
from ..core.fleet import Fleet, FleetState
from ..core.ports import Clock, ServerBusy
from ..core.posts import Post, Queued
from ..core.request import Request
from ..core.states import ACTIVE_STATES, IllegalTransition, State, check_transition
from . import audit_chain
from .rows import (
    AUDIT_PAGE,
    CURRENT_FREEZES,
    LIFTABLE_FREEZE,
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
    time_range,
    to_row,
)

log = logging.getLogger(__name__)

# Advisory lock keys. The leader's and the claims' second key hashes the schema, so bots on
# different schemas of one database (or the tests) never contend.
MIGRATION_LOCK = 0x6279_6F69_0001  # one replica migrates at a time
AUDIT_SPACE = 0x6279_6F61  # "byoa": held by the durable transaction extending the audit chain
LEADER_SPACE = 0x6279_6F6C  # "byol": held by the replica that runs the background work
AUDIT_LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))"
CLAIM_SPACE = 0x6279_6F63  # "byoc": a request being submitted or reconciled
STOP_CHECK = 0.1  # seconds: how soon a leader that is asked to stop lets go of the lead
OUTBOX_CHANNEL = "byoi_outbox"  # NOTIFY at every enqueue: wakes the leader's sender
DISPLAY_FIELDS = {"progress", "last_status", "last_post_at"}  # lost in a crash: read again
STREAM_PAGE = 200  # rows per page of `stream()`
CONNECT = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 5, "keepalives_count": 3}

_ACTIVE = ", ".join(f"'{s}'" for s in sorted(ACTIVE_STATES))
MIGRATIONS = (
    f"""
    CREATE TABLE requests (
        id text PRIMARY KEY,
        seq bigint GENERATED ALWAYS AS IDENTITY,
        server text NOT NULL,
        state text NOT NULL,
        requester text NOT NULL,
        channel text NOT NULL,
        spec text NOT NULL,
        fingerprint text NOT NULL,
        policy_name text NOT NULL,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        message_ts text,
        provider_handle text,
        submitted_at timestamptz,
        finished_at timestamptz,
        last_status text,
        checks text,
        server_facts text,
        image_facts text,
        progress text,
        last_post_at timestamptz,
        start_mark text,
        version integer NOT NULL DEFAULT 0,
        card_version integer NOT NULL DEFAULT 0
    );
    CREATE INDEX requests_server ON requests (server);
    CREATE INDEX requests_state ON requests (state);
    CREATE INDEX requests_card ON requests (channel, message_ts);
    CREATE UNIQUE INDEX one_active_per_server ON requests (server) WHERE state IN ({_ACTIVE});
    CREATE TABLE approvals (
        request_id text NOT NULL REFERENCES requests (id),
        "user" text NOT NULL,
        fingerprint text NOT NULL,
        at timestamptz NOT NULL,
        PRIMARY KEY (request_id, "user")
    );
    CREATE TABLE secrets (request_id text PRIMARY KEY REFERENCES requests (id), data text);
    CREATE TABLE audit (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        request_id text NOT NULL,
        at timestamptz NOT NULL,
        actor text NOT NULL,
        action text NOT NULL,
        from_state text,
        to_state text,
        reason text
    );
    CREATE INDEX audit_request ON audit (request_id);
    CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
    CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
    CREATE TABLE events (event_id text PRIMARY KEY, at timestamptz NOT NULL);
    """,
    """
    CREATE TABLE outbox (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        kind text NOT NULL,
        request_id text NOT NULL,
        channel text NOT NULL,
        key text,
        text text,
        state text NOT NULL,  -- queued, sending, sent, dropped
        attempts integer NOT NULL DEFAULT 0,
        unsure boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL,
        done_at timestamptz,
        ts text,
        error text
    );
    CREATE INDEX outbox_lanes ON outbox (state, channel, kind, id);
    CREATE INDEX outbox_keys ON outbox (key, state);
    CREATE INDEX outbox_replies ON outbox (channel, ts);
    """,
    # the list, status and poll queries: state then age (`stream`), age (`recent`), and a
    # server's history
    """
    DROP INDEX IF EXISTS requests_server;
    CREATE INDEX requests_state_age ON requests (state, created_at, id);
    CREATE INDEX requests_age ON requests (created_at);
    CREATE INDEX requests_server_age ON requests (server, created_at);
    """,
    # deploys to many servers: the fleet request, and each server's request pointing to it
    """
    CREATE TABLE fleets (
        id text PRIMARY KEY,
        requester text NOT NULL,
        channel text NOT NULL,
        state text NOT NULL,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        policy_name text NOT NULL,
        policy_note text,
        servers text NOT NULL,
        rollout text NOT NULL,
        pattern text,
        refused text,
        fingerprint text NOT NULL,
        message_ts text,
        announced text,
        waves_announced integer NOT NULL DEFAULT 0,
        started_at timestamptz,
        finished_at timestamptz
    );
    CREATE INDEX fleets_state ON fleets (state);
    CREATE INDEX fleets_card ON fleets (channel, message_ts);
    ALTER TABLE requests ADD COLUMN fleet_id text REFERENCES fleets (id);
    CREATE INDEX requests_fleet ON requests (fleet_id);
    """,
)


def _change_control(conn: psycopg.Connection) -> None:
    """Change control: the audit rows chained by hash (existing rows sealed in order),
    freezes, and the post-hoc reviews of emergency overrides."""
    conn.execute("DROP TRIGGER audit_no_change ON audit")
    conn.execute("ALTER TABLE audit ADD COLUMN prev_hash text, ADD COLUMN hash text")
    prev = audit_chain.GENESIS
    for row in conn.execute("SELECT * FROM audit ORDER BY id").fetchall():
        sealed = audit_chain.seal(row, prev)
        conn.execute(
            "UPDATE audit SET prev_hash = %s, hash = %s WHERE id = %s",
            [sealed["prev_hash"], sealed["hash"], row["id"]],
        )
        prev = sealed["hash"]
    conn.execute(
        "CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON audit "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"
    )
    conn.execute(
        "CREATE TABLE freezes (id text PRIMARY KEY, starts_at timestamptz NOT NULL, "
        "ends_at timestamptz NOT NULL, reason text NOT NULL, policies text NOT NULL, "
        "created_by text, created_at timestamptz, lifted_by text, lifted_at timestamptz)"
    )
    conn.execute(
        "CREATE TABLE reviews (request_id text PRIMARY KEY, policy_name text, "
        "due_at timestamptz NOT NULL, reviewed_by text, reviewed_at timestamptz, "
        "reminded_at timestamptz)"
    )


# m_gate_01: the boot gate's record per request; `booting` holds its server
_BOOT_GATE = f"""
    ALTER TABLE requests ADD COLUMN boot text;
    DROP INDEX one_active_per_server;
    CREATE UNIQUE INDEX one_active_per_server ON requests (server) WHERE state IN ({_ACTIVE});
"""

MIGRATIONS = (*MIGRATIONS, _change_control, _BOOT_GATE)
SCHEMA_VERSION = len(MIGRATIONS)


def redact(dsn: str) -> str:
    """`dsn` without its password, fit for messages and logs."""
    dsn = re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", dsn)
    return re.sub(r"(password=)[^&\s]*", r"\1***", dsn)


def _schema_version(conn: psycopg.Connection) -> int:
    cursor = conn.cursor(row_factory=tuple_row)
    if not cursor.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]:
        return 0
    return cursor.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]


def migrate(conn: psycopg.Connection) -> int:
    """Apply the missing migrations in one transaction (one replica at a time)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = _schema_version(conn)
        for number, step in enumerate(MIGRATIONS[done:], start=done + 1):
            step(conn) if callable(step) else conn.execute(step)
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", [number])
    return len(MIGRATIONS)


def inspect(dsn: str) -> tuple[int, int]:
    """(schema version, the version this code migrates to) of an existing database, after
    proving the role may create tables there and write the bot's; changes nothing (all in a
    transaction rolled back): `byoi-bot check`."""
    with psycopg.connect(dsn, **CONNECT) as conn:
        version = _schema_version(conn)
        with conn.transaction(force_rollback=True):
            conn.execute("CREATE TABLE byoi_probe (x integer)")
            if version:
                conn.execute("LOCK TABLE requests, approvals, audit, events IN ROW EXCLUSIVE MODE")
    return version, SCHEMA_VERSION


class PostgresStore:
    """The request store over a PostgreSQL database, safe to share between threads and
    between processes."""

    def __init__(self, dsn: str, *, clock: Clock | None = None, max_connections: int = 20) -> None:
        self.dsn = dsn
        self._clock = clock or SystemClock()  # stamps approvals, audit rows and event ids
        self.on_enqueue: Callable[[], None] = lambda: None  # wakes this process's sender
        with psycopg.connect(dsn, autocommit=True, **CONNECT) as conn:  # errors show here
            migrate(conn)
        self.pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True, "row_factory": dict_row, **CONNECT},
            check=ConnectionPool.check_connection,  # a database restart costs no failed call
            name="byoi-store",
            open=True,
        )

    def close(self) -> None:
        self.pool.close()

    def schema_version(self) -> int:
        with self.pool.connection() as conn:
            return _schema_version(conn)

    def leadership(self) -> AdvisoryLeader:
        """Who runs the background work: the replica holding the leader lock."""
        return AdvisoryLeader(self.dsn)

    @contextmanager
    def _tx(self, *, durable: bool = True) -> Iterator[psycopg.Connection]:
        """One transaction; not `durable`: committed without waiting for the disk (a crash
        of PostgreSQL may lose it, for display-only writes; ~3 ms less per commit here)."""
        with self.pool.connection() as conn, conn.transaction():
            if durable:
                # Every durable transaction may extend the audit chain: it takes the chain's
                # lock first, so replicas append in turn and no two locks are taken in two
                # orders (the lock goes with the transaction).
                conn.execute(AUDIT_LOCK, [AUDIT_SPACE])
            else:
                conn.execute("SET LOCAL synchronous_commit = off")
            yield conn

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict]:
        with self.pool.connection() as conn:
            return conn.execute(sql, list(params)).fetchall()

    # -- requests -------------------------------------------------------------------

    def create(self, request: Request, secrets: dict | None, reason: str = "requested") -> None:
        """Store a new request (and its secrets) with its first audit row; `ServerBusy` when
        the server already has an active request (here or on another replica)."""
        try:
            with self._tx() as conn:
                self._insert(conn, "requests", to_row(request))
                if secrets and any(secrets.values()):
                    conn.execute(
                        "INSERT INTO secrets (request_id, data) VALUES (%s, %s)",
                        [request.id, json.dumps(secrets)],
                    )
                r = request
                self._audit(conn, r.id, r.requester, "created", None, r.state, reason)
        except psycopg.errors.UniqueViolation:
            other = self.active(request.spec.server)
            if not other:
                raise
            raise ServerBusy(request.spec.server, other[0]) from None

    def get(self, request_id: str) -> Request | None:
        rows = self._rows("SELECT * FROM requests WHERE id = %s", [request_id])
        return from_row(rows[0]) if rows else None

    def by_message(self, channel: str, ts: str) -> Request | None:
        rows = self._rows(
            "SELECT * FROM requests WHERE channel = %s AND message_ts = %s", [channel, ts]
        )
        return from_row(rows[0]) if rows else None

    def in_states(self, states: Iterable[State], server: str | None = None) -> list[Request]:
        sql, params = "SELECT * FROM requests WHERE state = ANY(%s)", [[str(s) for s in states]]
        if server:
            sql, params = sql + " AND server = %s", [*params, server]
        return [from_row(r) for r in self._rows(sql + " ORDER BY created_at, seq", params)]

    def stream(self, states: Iterable[State], page: int = STREAM_PAGE) -> Iterator[Request]:
        """Requests in any of `states`, oldest first, read `page` rows at a time (keyset
        pagination on (created_at, id): no transaction or cursor is held between pages, so a
        request that changes state meanwhile may or may not be yielded)."""
        sql = "SELECT * FROM requests WHERE state = ANY(%s)"
        wanted: list[Any] = [[str(s) for s in states]]
        after: list[Any] = []
        while True:
            where = " AND (created_at, id) > (%s, %s)" if after else ""
            rows = self._rows(
                sql + where + " ORDER BY created_at, id LIMIT %s", [*wanted, *after, page]
            )
            yield from map(from_row, rows)
            if len(rows) < page:
                return
            after = [rows[-1]["created_at"], rows[-1]["id"]]

    def active(self, server: str | None = None) -> list[Request]:
        return self.in_states(ACTIVE_STATES, server)

    def recent(self, limit: int = 20, server: str | None = None, offset: int = 0) -> list[Request]:
        sql, params = "SELECT * FROM requests", []
        if server:
            sql, params = sql + " WHERE server = %s", [server]
        sql += " ORDER BY created_at DESC, seq DESC LIMIT %s OFFSET %s"
        rows = self._rows(sql, [*params, limit, offset])
        return [from_row(r) for r in rows]

    def count(self) -> int:
        return self._rows("SELECT COUNT(*) AS n FROM requests")[0]["n"]

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
        """Move a request from `expected` to `to` with its audit row and `posts` (given the
        changed request): one conditional UPDATE, so only one replica ever wins
        (`IllegalTransition` for the others)."""
        check_transition(request_id, expected, to)
        values = {k: column(v) for k, v in fields.items()} | {"state": str(to)}
        assignments = ", ".join(f"{k} = %s" for k in values) + ", version = version + 1"
        taken, queued = None, 0
        with self._tx() as conn:
            row = conn.execute(
                f"UPDATE requests SET {assignments} WHERE id = %s AND state = %s RETURNING *",
                [*values.values(), request_id, str(expected)],
            ).fetchone()
            if row is None:
                found = conn.execute("SELECT state FROM requests WHERE id = %s", [request_id])
                current = (found.fetchone() or {}).get("state")
                raise IllegalTransition(
                    request_id, State(current) if current else expected, to,
                    f"it is {current or 'unknown'} now",
                )  # fmt: skip
            if take_secrets or to.is_final:
                gone = conn.execute(
                    "DELETE FROM secrets WHERE request_id = %s RETURNING data", [request_id]
                ).fetchone()
                if take_secrets and gone and gone["data"]:
                    taken = json.loads(gone["data"])
            self._audit(conn, request_id, actor, "transition", expected, to, reason)
            if posts:
                queued = self._enqueue(conn, posts(from_row(row)))
        if queued:
            self.on_enqueue()
        return from_row(row), taken

    def update(self, request_id: str, posts: Iterable[Post] = (), **fields: Any) -> None:
        """Write fields that are not state, and the posts that report them; progress and
        status lines are committed without waiting for the disk (a crash loses both the line
        and its post, and the next poll reads them again)."""
        if "state" in fields:
            raise ValueError("state changes go through transition()")
        values = {k: column(v) for k, v in fields.items()}
        assignments = ", ".join(f"{k} = %s" for k in values) + ", version = version + 1"
        with self._tx(durable=not values.keys() <= DISPLAY_FIELDS) as conn:
            if values:
                conn.execute(
                    f"UPDATE requests SET {assignments} WHERE id = %s",
                    [*values.values(), request_id],
                )
            queued = self._enqueue(conn, posts)
        if queued:
            self.on_enqueue()

    def secrets(self, request_id: str) -> dict | None:
        rows = self._rows("SELECT data FROM secrets WHERE request_id = %s", [request_id])
        return json.loads(rows[0]["data"]) if rows else None

    @contextmanager
    def claim_request(self, request_id: str) -> Iterator[bool]:
        """Work on `request_id` alone while the block runs (a session advisory lock: yields
        False while another thread or replica holds it; a crash of the holder releases it)."""
        key = "%s, hashtext(current_schema() || '/' || %s)"
        with self.pool.connection() as conn:
            sql = f"SELECT pg_try_advisory_lock({key}) AS got"
            got = conn.execute(sql, [CLAIM_SPACE, request_id]).fetchone()["got"]
            try:
                yield got
            finally:
                if got:
                    conn.execute(f"SELECT pg_advisory_unlock({key})", [CLAIM_SPACE, request_id])

    def claim_card(self, request_id: str, version: int) -> bool:
        """True when the card may show `version`: no newer version was drawn or is being.
        Bookkeeping only: committed without waiting for the disk."""
        with self._tx(durable=False) as conn:
            cursor = conn.execute(
                "UPDATE requests SET card_version = %s WHERE id = %s AND card_version < %s",
                [version, request_id, version],
            )
            return cursor.rowcount == 1

    def release_card(self, request_id: str, version: int) -> None:
        """Undo `claim_card(request_id, version)` when the card could not be drawn."""
        with self.pool.connection() as db:
            db.execute(
                "UPDATE requests SET card_version = 0 WHERE id = %s AND card_version = %s",
                [request_id, version],
            )

    # -- fleets (deploys to many servers) ---------------------------------------------

    def create_fleet(self, fleet: Fleet, children: list[tuple[Request, dict | None]]) -> None:
        """Store a fleet request and its servers' requests (and secrets) in one transaction;
        `ServerBusy` when one of the servers already has an active request."""
        row = fleet_to_row(fleet)
        try:
            with self._tx() as conn:
                self._insert(conn, "fleets", row)
                self._audit(conn, fleet.id, fleet.requester, "created", None, None,
                            "fleet requested")  # fmt: skip
                for child, secrets in children:
                    self._insert(conn, "requests", to_row(child))
                    if secrets and any(secrets.values()):
                        conn.execute(
                            "INSERT INTO secrets (request_id, data) VALUES (%s, %s)",
                            [child.id, json.dumps(secrets)],
                        )
                    c = child
                    self._audit(conn, c.id, c.requester, "created", None, c.state, fleet.id)
        except psycopg.errors.UniqueViolation:
            for child, _ in children:
                other = self.active(child.spec.server)
                if other:
                    raise ServerBusy(child.spec.server, other[0]) from None
            raise

    @staticmethod
    def _insert(conn: psycopg.Connection, table: str, row: dict) -> None:
        names = ", ".join(row)
        conn.execute(
            f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(row))})",
            list(row.values()),
        )

    def fleet(self, fleet_id: str) -> Fleet | None:
        rows = self._rows("SELECT * FROM fleets WHERE id = %s", [fleet_id])
        return fleet_from_row(rows[0]) if rows else None

    def fleet_by_message(self, channel: str, ts: str) -> Fleet | None:
        rows = self._rows(
            "SELECT * FROM fleets WHERE channel = %s AND message_ts = %s", [channel, ts]
        )
        return fleet_from_row(rows[0]) if rows else None

    def fleets_in_states(self, states: Iterable[FleetState]) -> list[Fleet]:
        rows = self._rows(
            "SELECT * FROM fleets WHERE state = ANY(%s) ORDER BY created_at, id",
            [[str(s) for s in states]],
        )
        return [fleet_from_row(r) for r in rows]

    def fleet_members(self, fleet: Fleet) -> list[Request]:
        rows = self._rows("SELECT * FROM requests WHERE fleet_id = %s", [fleet.id])
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
        """Compare-and-set of the fleet's state with its audit row: one conditional UPDATE,
        so of two replicas only one moves the fleet; False for the other."""
        values = {k: column(v) for k, v in fields.items()} | {"state": str(to)}
        assignments = ", ".join(f"{k} = %s" for k in values)
        with self._tx() as conn:
            cursor = conn.execute(
                f"UPDATE fleets SET {assignments} WHERE id = %s AND state = %s",
                [*values.values(), fleet_id, str(expected)],
            )
            if cursor.rowcount != 1:
                return False
            reason = fleet_change(expected, to, reason)
            self._audit(conn, fleet_id, actor, "transition", None, None, reason)
        return True

    def update_fleet(self, fleet_id: str, **fields: Any) -> None:
        """Write fleet fields that are not its state (card ts, what was announced)."""
        if "state" in fields:
            raise ValueError("state changes go through fleet_transition()")
        values = {k: column(v) for k, v in fields.items()}
        assignments = ", ".join(f"{k} = %s" for k in values)
        with self.pool.connection() as conn:
            conn.execute(
                f"UPDATE fleets SET {assignments} WHERE id = %s", [*values.values(), fleet_id]
            )

    def add_fleet_approval(self, fleet: Fleet, user: str, request_ids: Sequence[str]) -> bool:
        """Record `user`'s approval of the exact spec of each of the fleet's servers in
        `request_ids` (one approval row per server, bound to its fingerprint); False if
        already recorded."""
        with self._tx() as conn:
            added = conn.execute(
                'INSERT INTO approvals (request_id, "user", fingerprint, at) '
                "SELECT id, %s, fingerprint, %s FROM requests WHERE fleet_id = %s "
                "AND id = ANY(%s) ON CONFLICT DO NOTHING",
                [user, iso(self._clock.now()), fleet.id, list(request_ids)],
            ).rowcount
            if added:
                conn.execute(
                    "UPDATE requests SET version = version + 1 WHERE fleet_id = %s", [fleet.id]
                )
                self._audit(conn, fleet.id, user, "approval", None, None, fleet_approved(added))
        return bool(added)

    def remove_fleet_approval(self, fleet: Fleet, user: str) -> bool:
        """Withdraw `user`'s approval of the fleet; False if there was none."""
        with self._tx() as conn:
            removed = conn.execute(
                'DELETE FROM approvals WHERE "user" = %s AND request_id IN '
                "(SELECT id FROM requests WHERE fleet_id = %s)",
                [user, fleet.id],
            ).rowcount
            if removed:
                conn.execute(
                    "UPDATE requests SET version = version + 1 WHERE fleet_id = %s", [fleet.id]
                )
                self._audit(conn, fleet.id, user, "withdrawal", None, None, "approval withdrawn")
        return bool(removed)

    # -- approvals ------------------------------------------------------------------

    def add_approval(
        self,
        request_id: str,
        user: str,
        fingerprint: str,
        posts: Callable[[list[str]], Iterable[Post]] | None = None,
    ) -> bool:
        queued = 0
        with self._tx() as conn:
            cursor = conn.execute(
                'INSERT INTO approvals (request_id, "user", fingerprint, at) '
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [request_id, user, fingerprint, iso(self._clock.now())],
            )
            if cursor.rowcount:
                self._bump(conn, request_id)
                self._audit(conn, request_id, user, "approval", None, None, "approved")
                if posts:
                    voters = self._approvals(conn, request_id, fingerprint)
                    queued = self._enqueue(conn, posts(voters))
        if queued:
            self.on_enqueue()
        return bool(cursor.rowcount)

    def remove_approval(self, request_id: str, user: str, posts: Iterable[Post] = ()) -> bool:
        queued = 0
        with self._tx() as conn:
            cursor = conn.execute(
                'DELETE FROM approvals WHERE request_id = %s AND "user" = %s', [request_id, user]
            )
            if cursor.rowcount:
                self._bump(conn, request_id)
                self._audit(conn, request_id, user, "withdrawal", None, None, "approval withdrawn")
                queued = self._enqueue(conn, posts)
        if queued:
            self.on_enqueue()
        return bool(cursor.rowcount)

    @staticmethod
    def _bump(conn: psycopg.Connection, request_id: str) -> None:
        """A new version of the request (its card shows the votes)."""
        conn.execute("UPDATE requests SET version = version + 1 WHERE id = %s", [request_id])

    def approvals(self, request_id: str, fingerprint: str) -> list[str]:
        with self.pool.connection() as conn:
            return self._approvals(conn, request_id, fingerprint)

    @staticmethod
    def _approvals(conn: psycopg.Connection, request_id: str, fingerprint: str) -> list[str]:
        rows = conn.execute(
            'SELECT "user" FROM approvals WHERE request_id = %s AND fingerprint = %s ORDER BY at',
            [request_id, fingerprint],
        ).fetchall()
        return [r["user"] for r in rows]

    # -- outbox ---------------------------------------------------------------------

    def resume_sending(self) -> None:
        """Posts a dead sender was sending go back in line, marked unsure (they may have been
        posted): called when this replica's sender starts."""
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE outbox SET state = 'queued', unsure = true WHERE state = 'sending'"
            )

    def enqueue(self, posts: Iterable[Post]) -> None:
        """Queue posts that report no stored change (e.g. "starts at 12:00")."""
        with self._tx() as conn:
            queued = self._enqueue(conn, posts)
        if queued:
            self.on_enqueue()

    def _enqueue(self, conn: psycopg.Connection, posts: Iterable[Post]) -> int:
        """Queue `posts` in `conn`'s transaction (a waiting post with the same key takes the
        new text instead) and notify the leader's sender at commit; how many were queued."""
        count = 0
        for post in posts:
            count += 1
            if post.key:
                cursor = conn.execute(
                    "UPDATE outbox SET text = %s WHERE key = %s AND state = 'queued'",
                    [post.text, post.key],
                )
                if cursor.rowcount:
                    continue
            conn.execute(
                "INSERT INTO outbox (kind, request_id, channel, key, text, state, created_at) "
                "VALUES (%s, %s, %s, %s, %s, 'queued', %s)",
                [post.kind, post.request_id, post.channel, post.key, post.text,
                 iso(self._clock.now())],
            )  # fmt: skip
        if count:
            conn.execute(f"NOTIFY {OUTBOX_CHANNEL}")
        return count

    def heads(self) -> list[Queued]:
        """The oldest waiting post of every lane (channel and kind) not sending one now."""
        rows = self._rows(
            "SELECT * FROM outbox WHERE id IN (SELECT MIN(id) FROM outbox "
            "WHERE state = 'queued' GROUP BY channel, kind) AND NOT EXISTS (SELECT 1 "
            "FROM outbox o WHERE o.state = 'sending' AND o.channel = outbox.channel "
            "AND o.kind = outbox.kind) ORDER BY id"
        )
        return [_queued(r) for r in rows]

    def claim(self, post_id: int) -> Queued | None:
        """Mark a waiting post as being sent; None when it is not waiting any more."""
        with self.pool.connection() as conn:
            row = conn.execute(
                "UPDATE outbox SET state = 'sending', attempts = attempts + 1 "
                "WHERE id = %s AND state = 'queued' RETURNING *",
                [post_id],
            ).fetchone()
        return _queued(row) if row else None

    def sent(self, post_id: int, ts: str | None) -> None:
        self._settle(post_id, "sent", ts=ts)

    def requeue(self, post_id: int, *, unsure: bool) -> None:
        """Put a post back in its place; dropped instead when a newer one replaces it."""
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE outbox SET state = CASE WHEN key IS NOT NULL AND EXISTS (SELECT 1 "
                "FROM outbox o WHERE o.key = outbox.key AND o.state = 'queued' AND o.id > "
                "outbox.id) THEN 'dropped' ELSE 'queued' END, unsure = %s WHERE id = %s",
                [unsure, post_id],
            )

    def drop(self, post_id: int, reason: str) -> None:
        self._settle(post_id, "dropped", error=reason[:200])

    def _settle(self, post_id: int, state: str, **fields: Any) -> None:
        values = {"state": state, "done_at": iso(self._clock.now()), **fields}
        assignments = ", ".join(f"{k} = %s" for k in values)
        with self.pool.connection() as conn:
            conn.execute(
                f"UPDATE outbox SET {assignments} WHERE id = %s", [*values.values(), post_id]
            )

    def backlog(self) -> int:
        """How many posts wait to be sent."""
        rows = self._rows("SELECT count(*) AS n FROM outbox WHERE state IN ('queued', 'sending')")
        return rows[0]["n"]

    def request_counts(self) -> dict[str, int]:
        """How many requests are in each state (states with none are left out)."""
        rows = self._rows("SELECT state, count(*) AS n FROM requests GROUP BY state")
        return {r["state"]: r["n"] for r in rows}

    def outbox_waiting(self) -> tuple[int, datetime | None]:
        """How many posts wait to be sent, and when the oldest of them was queued."""
        (row,) = self._rows(
            "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox "
            "WHERE state IN ('queued', 'sending')"
        )
        return row["n"], row["oldest"]

    def by_reply(self, channel: str, ts: str) -> Request | None:
        """The request in whose thread the bot posted the message `ts`, or None."""
        rows = self._rows(
            "SELECT request_id FROM outbox WHERE channel = %s AND ts = %s", [channel, ts]
        )
        return self.get(rows[0]["request_id"]) if rows else None

    def forget_sent(self, before: datetime) -> int:
        """Drop settled posts older than `before` (kept a while to recognise thread replies)."""
        with self.pool.connection() as conn:
            return conn.execute(
                "DELETE FROM outbox WHERE state IN ('sent', 'dropped') AND done_at < %s",
                [iso(before)],
            ).rowcount

    # -- audit and events -------------------------------------------------------------

    def note(self, request_id: str, actor: str, action: str, reason: str) -> None:
        with self._tx() as conn:
            self._audit(conn, request_id, actor, action, None, None, reason)

    def _audit(
        self,
        conn: psycopg.Connection,
        request_id: str,
        actor: str,
        action: str,
        from_state: State | None,
        to_state: State | None,
        reason: str,
    ) -> None:
        """Append one audit row in `conn`'s (durable) transaction, chained to the last."""
        last = conn.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        row = audit_row(request_id, iso(self._clock.now()), actor, action, from_state, to_state)
        sealed = audit_chain.seal(row | {"reason": reason}, prev_hash(last))
        conn.execute(
            f"INSERT INTO audit ({', '.join(sealed)}) VALUES ({', '.join(['%s'] * len(sealed))})",
            list(sealed.values()),
        )

    def audit(self, request_id: str | None = None) -> list[dict]:
        sql, params = "SELECT * FROM audit", []
        if request_id:
            sql, params = sql + " WHERE request_id = %s", [request_id]
        return [r | {"at": iso(r["at"])} for r in self._rows(sql + " ORDER BY id", params)]

    def audit_chain(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[dict]:
        last = 0
        while True:
            page = self._rows(
                "SELECT * FROM audit WHERE id > %s AND at >= %s AND at < %s ORDER BY id "
                f"LIMIT {AUDIT_PAGE}",
                [last, *time_range(since, until)],
            )
            yield from (r | {"at": iso(r["at"])} for r in page)
            if len(page) < AUDIT_PAGE:
                return
            last = page[-1]["id"]

    # -- change control ---------------------------------------------------------------

    def add_freeze(self, freeze: Freeze) -> None:
        with self._tx() as conn:
            self._insert(conn, "freezes", freeze_to_row(freeze, iso(self._clock.now())))
            self._audit(conn, freeze.id, freeze.created_by, "freeze", None, None, freeze.describe())

    def lift_freeze(self, freeze_id: str, user: str) -> Freeze | None:
        now = iso(self._clock.now())
        with self._tx() as conn:
            row = conn.execute(LIFTABLE_FREEZE + " FOR UPDATE", [freeze_id, now]).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE freezes SET lifted_by = %s, lifted_at = %s WHERE id = %s",
                [user, now, freeze_id],
            )
            self._audit(conn, freeze_id, user, "unfreeze", None, None, "freeze lifted")
        return freeze_from_row(row)

    def freezes(self, *, ending_after: datetime) -> list[Freeze]:
        return [freeze_from_row(r) for r in self._rows(CURRENT_FREEZES, [iso(ending_after)])]

    def open_review(self, request_id: str, policy_name: str, due: datetime, why: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO reviews (request_id, policy_name, due_at) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                [request_id, policy_name, iso(due)],
            )
            self._audit(conn, request_id, SYSTEM_ACTOR, "emergency_override", None, None, why)

    def review(self, request_id: str, user: str, posts: list[Post]) -> bool:
        with self._tx() as conn:
            changed = conn.execute(
                "UPDATE reviews SET reviewed_by = %s, reviewed_at = %s "
                "WHERE request_id = %s AND reviewed_by IS NULL",
                [user, iso(self._clock.now()), request_id],
            ).rowcount
            if changed:
                self._audit(conn, request_id, user, "emergency_review", None, None, "reviewed")
                self._enqueue(conn, posts)
        if changed:
            self.on_enqueue()
        return bool(changed)

    def unreviewed(self) -> list[dict]:
        return [r | {"due_at": dt(r["due_at"])} for r in self._rows(UNREVIEWED)]

    def remind_review(self, request_id: str, posts: list[Post]) -> bool:
        with self._tx() as conn:
            changed = conn.execute(
                "UPDATE reviews SET reminded_at = %s WHERE request_id = %s AND reminded_at IS NULL",
                [iso(self._clock.now()), request_id],
            ).rowcount
            if changed:
                self._enqueue(conn, posts)
        if changed:
            self.on_enqueue()
        return bool(changed)

    def first_delivery(self, event_id: str) -> bool:
        with self.pool.connection() as conn:
            cursor = conn.execute(
                "INSERT INTO events (event_id, at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                [event_id, iso(self._clock.now())],
            )
            return bool(cursor.rowcount)

    def forget_events(self, before: datetime) -> int:
        with self.pool.connection() as conn:
            return conn.execute("DELETE FROM events WHERE at < %s", [iso(before)]).rowcount


def _queued(row: dict) -> Queued:
    post = Post(row["kind"], row["request_id"], row["channel"], row["text"] or "", row["key"])
    return Queued(row["id"], post, row["attempts"], bool(row["unsure"]))


class AdvisoryLeader:
    """Leader election by `pg_try_advisory_lock` on a dedicated connection.

    `start` tries once right away, then a thread retries every `interval` seconds while
    another replica leads. While this one leads, the same connection LISTENs for the outbox's
    notifications (posts queued by any replica wake this one's sender) and proves itself
    alive. Losing the connection deposes this replica (its lock went with the session); a dead
    leader's session ends with it, so a survivor is elected within about `interval` seconds.
    """

    def __init__(self, dsn: str, *, interval: float = 1.0) -> None:
        self.dsn = dsn
        self.interval = interval
        self.leading = False
        self._conn: psycopg.Connection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(
        self,
        on_elected: Callable[[], None],
        on_deposed: Callable[[], None],
        on_notified: Callable[[], None] = lambda: None,
    ) -> None:
        self._on_elected, self._on_deposed, self._on_notified = on_elected, on_deposed, on_notified
        self._step()
        self._thread = threading.Thread(target=self._run, name="byoi-leader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop trying; release the lock (by closing the session) if held."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        self._drop()

    def leader_known(self) -> bool:
        """This replica leads, or the last election reached the database (another leads)."""
        return self.leading or self._conn is not None

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.leading:
                self._listen()
            elif self._stop.wait(self.interval):
                return
            self._step()

    def _listen(self) -> None:
        """Wait up to `interval` for the outbox's notifications, waking the sender on each;
        in slices of `STOP_CHECK`, so that `stop()` lets go of the lead at once."""
        deadline = time.monotonic() + self.interval
        try:
            assert self._conn is not None
            while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
                for _ in self._conn.notifies(timeout=min(left, STOP_CHECK)):
                    self._on_notified()
        except psycopg.Error as exc:
            log.warning("leader connection lost: %s", type(exc).__name__)
            self._drop()

    def _step(self) -> None:
        try:
            if self._conn is None:
                self._conn = psycopg.connect(self.dsn, autocommit=True, **CONNECT)
            if self.leading:
                self._conn.execute("SELECT 1")
                return
            sql = "SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))"
            got = self._conn.execute(sql, [LEADER_SPACE]).fetchone()
            if got[0]:
                self._conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
                self.leading = True
                log.info("leading: this replica runs the background work")
                self._on_elected()
        except psycopg.Error as exc:
            log.warning("leader election: %s", type(exc).__name__)
            self._drop()
        except Exception:  # the work's own failure must not stop the election loop
            log.exception("starting the background work failed")

    def _drop(self) -> None:
        if self.leading:
            self.leading = False
            log.info("no longer leading")
            self._on_deposed()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

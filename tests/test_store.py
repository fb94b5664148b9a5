"""Both stores (SQLite, PostgreSQL): compare-and-set transitions, audit, secrets, busy
servers, durability; each test runs on each store (`db_location`)."""

import threading
from datetime import timedelta

import pytest
from core_fixtures import T0, request, spec
from raw_sql import column, execute, older_schema_with

from byoi_bot.core.fleet import FleetState
from byoi_bot.core.ports import ServerBusy
from byoi_bot.core.states import IllegalTransition, State
from byoi_bot.store import SCHEMA_VERSION, Store, new_request_id, open_store
from byoi_bot.store.rows import dt, to_row


@pytest.fixture
def store(db_location):
    s = open_store(db_location)
    yield s
    s.close()


def dump(store) -> str:
    """Every table's content as text."""
    if isinstance(store, Store):
        return "\n".join(store.db.iterdump())
    with store.pool.connection() as conn:
        tables = [r["tablename"] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )]  # fmt: skip
        return "\n".join(
            str(row) for t in tables for row in conn.execute(f"SELECT * FROM {t}").fetchall()
        )


def test_schema_version_is_recorded_and_migrations_are_idempotent(db_location):
    open_store(db_location).close()
    again = open_store(db_location)
    if isinstance(again, Store):
        assert again.schema_version() == SCHEMA_VERSION >= 3
        assert again.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    else:
        from byoi_bot.store import postgres

        assert again.schema_version() == postgres.SCHEMA_VERSION >= 1
    again.close()


def test_create_and_get_round_trip(store):
    r = request()
    store.create(r, spec().secrets())
    assert store.get(r.id) == r
    assert store.get("r-nothere") is None
    assert store.secrets(r.id)["headers"] == [["Authorization", "Bearer s3cr3t-token"]]


def test_transition_writes_state_and_audit_in_one_go(store):
    r = request()
    store.create(r, None)
    moved, _ = store.transition(r.id, State.PENDING_APPROVAL, State.APPROVED, "U2", "quorum")
    assert moved.state is State.APPROVED
    trail = store.audit(r.id)
    assert [(a["action"], a["from_state"], a["to_state"]) for a in trail] == [
        ("created", None, "pending_approval"),
        ("transition", "pending_approval", "approved"),
    ]
    assert trail[1]["actor"] == "U2" and trail[1]["reason"] == "quorum"


def test_illegal_and_stale_transitions_are_refused_without_damage(store):
    r = request()
    store.create(r, None)
    with pytest.raises(IllegalTransition, match="cannot go from pending_approval to done"):
        store.transition(r.id, State.PENDING_APPROVAL, State.DONE, "U2")
    store.transition(r.id, State.PENDING_APPROVAL, State.APPROVED, "U2")
    with pytest.raises(IllegalTransition, match="it is approved now"):
        store.transition(r.id, State.PENDING_APPROVAL, State.REJECTED, "U3")
    assert store.get(r.id).state is State.APPROVED
    assert len(store.audit(r.id)) == 2


def test_two_concurrent_approvals_make_exactly_one_transition(store):
    r = request()
    store.create(r, None)
    barrier = threading.Barrier(8)
    wins, losses = [], []

    def approve(user):
        barrier.wait()
        try:
            store.transition(r.id, State.PENDING_APPROVAL, State.APPROVED, user)
            wins.append(user)
        except IllegalTransition:
            losses.append(user)

    threads = [threading.Thread(target=approve, args=(f"U{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == 7
    transitions = [a for a in store.audit(r.id) if a["to_state"] == "approved"]
    assert len(transitions) == 1


def test_two_store_objects_on_one_database_race_safely(db_location):
    first, second = open_store(db_location), open_store(db_location)
    first.create(request(), None)
    first.transition("r-aaaaaa", State.PENDING_APPROVAL, State.APPROVED, "U2")
    with pytest.raises(IllegalTransition):
        second.transition("r-aaaaaa", State.PENDING_APPROVAL, State.APPROVED, "U3")
    first.close()
    second.close()


def test_request_reopened_from_a_fresh_store_keeps_its_history(db_location):
    path = db_location
    first = open_store(path)
    r = request()
    first.create(r, spec().secrets())
    first.add_approval(r.id, "U2", r.fingerprint)
    first.transition(r.id, State.PENDING_APPROVAL, State.APPROVED, "U2", "quorum")
    first.close()
    fresh = open_store(path)
    again = fresh.get(r.id)
    assert again.state is State.APPROVED and again.spec == r.spec
    assert fresh.approvals(r.id, r.fingerprint) == ["U2"]
    assert [a["action"] for a in fresh.audit(r.id)] == ["created", "approval", "transition"]
    fresh.close()


def test_one_active_request_per_server(store):
    store.create(request("r-aaaaaa"), None)
    with pytest.raises(ServerBusy) as info:
        store.create(request("r-bbbbbb"), None)
    assert info.value.other.id == "r-aaaaaa"
    store.create(request("r-cccccc", server="ns2.example.net"), None)
    store.transition("r-aaaaaa", State.PENDING_APPROVAL, State.CANCELLED, "U100")
    store.create(request("r-dddddd"), None)


def test_secrets_are_handed_out_once_at_submission_and_never_audited(store):
    r = request()
    store.create(r, spec().secrets())
    store.transition(r.id, State.PENDING_APPROVAL, State.APPROVED, "U2")
    _, secrets = store.transition(r.id, State.APPROVED, State.SUBMITTING, "bot", take_secrets=True)
    assert secrets["user_data"].startswith("#cloud-config")
    assert store.secrets(r.id) is None
    text = dump(store)
    assert "s3cr3t-token" not in text and "hunter2" not in text


def test_secrets_are_dropped_when_a_request_ends_before_submission(store):
    r = request()
    store.create(r, spec().secrets())
    store.transition(r.id, State.PENDING_APPROVAL, State.EXPIRED, "byoi-bot")
    assert store.secrets(r.id) is None


def test_audit_log_is_append_only(store):
    store.create(request(), None)
    with pytest.raises(Exception, match="append-only"):
        execute(store, "UPDATE audit SET actor = 'someone else'")
    with pytest.raises(Exception, match="append-only"):
        execute(store, "DELETE FROM audit")
    assert len(store.audit()) == 1


def test_approvals_are_bound_to_the_fingerprint(store):
    r = request()
    store.create(r, None)
    assert store.add_approval(r.id, "U2", r.fingerprint)
    assert not store.add_approval(r.id, "U2", r.fingerprint)
    store.add_approval(r.id, "U3", "fingerprint-of-something-else")
    assert store.approvals(r.id, r.fingerprint) == ["U2"]
    assert store.remove_approval(r.id, "U2") and not store.remove_approval(r.id, "U2")
    assert store.approvals(r.id, r.fingerprint) == []


def test_repeated_event_ids_count_once(store):
    assert store.first_delivery("Ev1")
    assert not store.first_delivery("Ev1")
    assert store.first_delivery("Ev2")


def test_queries_by_state_message_and_server(store):
    store.create(request("r-aaaaaa"), None)
    store.create(request("r-bbbbbb", server="ns2.example.net"), None)
    store.update("r-aaaaaa", message_ts="1700000000.000100")
    assert store.by_message("C1", "1700000000.000100").id == "r-aaaaaa"
    assert [r.id for r in store.active("ns2.example.net")] == ["r-bbbbbb"]
    assert len(store.in_states([State.PENDING_APPROVAL])) == 2
    assert [r.id for r in store.recent(5, server="ns2.example.net")] == ["r-bbbbbb"]
    with pytest.raises(ValueError, match="transition"):
        store.update("r-aaaaaa", state="done")


def test_request_ids_are_short_and_unambiguous():
    ids = {new_request_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 8 and i.startswith("r-") and not set(i[2:]) & set("01ilo") for i in ids)


def test_old_delivery_ids_are_forgotten(store):
    from datetime import UTC, datetime, timedelta

    store.first_delivery("Ev1")
    assert store.forget_events(datetime.now(UTC) - timedelta(days=1)) == 0
    assert store.forget_events(datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert store.first_delivery("Ev1")


def test_approvals_audit_rows_and_delivery_ids_are_stamped_by_the_bots_clock(db_location):
    class Clock:
        now = staticmethod(lambda: T0)

    store = open_store(db_location, clock=Clock())
    r = request()
    store.create(r, None)
    store.add_approval(r.id, "U2", "f")
    assert store.first_delivery("Ev1")
    assert {row["at"] for row in store.audit(r.id)} == {T0.isoformat()}
    assert [dt(at) for at in column(store, "SELECT at FROM approvals")] == [T0]
    assert store.forget_events(T0) == 0 and store.forget_events(T0 + timedelta(seconds=1)) == 1
    store.close()


def test_two_replicas_creating_for_one_server_make_one_request(db_location):
    replicas = [open_store(db_location) for _ in range(2)]
    barrier = threading.Barrier(8)
    made, busy = [], []

    def create(i):
        barrier.wait()
        try:
            replicas[i % 2].create(request(f"r-aaaaa{'abcdefgh'[i]}"), None)
            made.append(i)
        except ServerBusy:
            busy.append(i)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1 and len(busy) == 7
    assert len(replicas[0].active()) == 1
    for r in replicas:
        r.close()


def test_a_claim_is_held_by_one_worker_at_a_time(db_location):
    first, second = open_store(db_location), open_store(db_location)
    with first.claim_request("r-aaaaaa") as mine:
        assert mine
        with first.claim_request("r-aaaaaa") as again, second.claim_request("r-aaaaaa") as theirs:
            assert not again and not theirs
        with second.claim_request("r-bbbbbb") as other:
            assert other
    with second.claim_request("r-aaaaaa") as theirs:
        assert theirs, "released at the end of the block"
    first.close()
    second.close()


def test_a_card_never_goes_back_to_an_older_version(store):
    r = request()
    store.create(r, None)
    moved, _ = store.transition(r.id, State.PENDING_APPROVAL, State.APPROVED, "U2")
    store.update(r.id, last_status="x")
    newest = store.get(r.id)
    assert r.version < moved.version < newest.version
    assert store.claim_card(r.id, newest.version)
    assert not store.claim_card(r.id, moved.version), "an older state after a newer one"
    assert not store.claim_card(r.id, newest.version), "drawn once"


def test_one_leader_at_a_time_and_a_new_one_when_it_goes(db_location):
    store = open_store(db_location)
    first, second = store.leadership(), store.leadership()
    elected = []
    first.start(lambda: elected.append("first"), lambda: elected.append("first deposed"))
    second.start(lambda: elected.append("second"), lambda: None)
    if isinstance(store, Store):  # one SQLite file, one process: it leads from the start
        assert elected == ["first", "second"]
        return
    assert elected == ["first"]
    first.stop()
    assert elected == ["first", "first deposed"]
    wait = threading.Event()
    deadline = second.interval * 5
    while "second" not in elected and deadline > 0:
        wait.wait(0.05)
        deadline -= 0.05
    assert elected[-1] == "second"
    second.stop()
    store.close()


def test_a_postgres_database_that_cannot_be_used_is_explained_without_its_password(
    postgres_database,
):
    from urllib.parse import urlsplit

    from byoi_bot.config import ConfigError
    from byoi_bot.wiring import open_store as open_configured

    parts = urlsplit(postgres_database)
    wrong = postgres_database.replace(f":{parts.password}@", ":wrong-S3CRET@")
    with pytest.raises(ConfigError) as info:
        open_configured(wrong)
    message = str(info.value)
    assert "wrong-S3CRET" not in message and ":***@" in message
    assert "password authentication failed" in message


def test_a_leader_that_loses_its_session_steps_down_and_campaigns_again(postgres_dsn):
    import psycopg

    from byoi_bot.store.postgres import LEADER_SPACE, PostgresStore

    store = PostgresStore(postgres_dsn)
    leader = store.leadership()
    events = []
    leader.start(lambda: events.append("elected"), lambda: events.append("deposed"))
    assert events == ["elected"]
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        (pid,) = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = %s "
            "AND objid::bigint = hashtext(current_schema())::bigint & 4294967295",
            [LEADER_SPACE],
        ).fetchone()
        conn.execute("SELECT pg_terminate_backend(%s)", [pid])  # e.g. a database restart
    wait = threading.Event()
    for _ in range(100):
        if events[-2:] == ["deposed", "elected"]:
            break
        wait.wait(0.05)
    assert events == ["elected", "deposed", "elected"]
    leader.stop()
    store.close()


def test_posts_queued_on_any_replica_wake_the_leaders_sender(postgres_dsn):
    from byoi_bot.core.posts import Post
    from byoi_bot.store.postgres import PostgresStore

    leader_store, other = PostgresStore(postgres_dsn), PostgresStore(postgres_dsn)
    woken = threading.Event()
    leader = leader_store.leadership()
    leader.start(lambda: None, lambda: None, woken.set)
    r = request()
    other.create(r, None)
    other.enqueue([Post.reply(r, "hello")])
    assert woken.wait(5), "NOTIFY reached the leader's connection"
    assert [q.post.text for q in leader_store.heads()] == ["hello"]
    leader.stop()
    leader_store.close()
    other.close()


def test_the_store_survives_its_connections_being_cut(postgres_dsn):
    import psycopg

    from byoi_bot.store.postgres import PostgresStore

    store = PostgresStore(postgres_dsn)
    store.create(request(), None)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:  # e.g. a database restart
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE usename = current_user AND pid <> pg_backend_pid() AND application_name = ''"
        )
    assert store.get("r-aaaaaa").state is State.PENDING_APPROVAL
    store.close()


def test_stream_yields_requests_of_the_states_oldest_first_page_by_page(store):
    for i in range(5):
        r = request(f"r-s{i}", server=f"ns{i}.example.net")
        r.created_at = T0 + timedelta(seconds=5 - i)  # created in reverse id order
        store.create(r, None)
    store.transition("r-s2", State.PENDING_APPROVAL, State.CANCELLED, "U100")
    streamed = store.stream([State.PENDING_APPROVAL], page=2)
    assert [r.id for r in streamed] == ["r-s4", "r-s3", "r-s1", "r-s0"]
    assert [r.id for r in store.stream([State.CANCELLED], page=2)] == ["r-s2"]
    assert list(store.stream([State.DEPLOYING])) == []


def test_list_status_and_poll_queries_use_indexes(store):
    if isinstance(store, Store):
        names = ("idx_requests_state_created_at_id", "idx_requests_created_at",
                 "idx_requests_server_created_at")  # fmt: skip
        sorted_apart = "TEMP B-TREE"

        def plan(sql: str, params: list) -> str:
            return " ".join(r[3] for r in execute(store, f"EXPLAIN QUERY PLAN {sql}", params))
    else:
        names = ("requests_state_age", "requests_age", "requests_server_age")
        sorted_apart = "Sort"

        def plan(sql: str, params: list) -> str:
            with store.pool.connection() as conn, conn.transaction():
                conn.execute("SET LOCAL enable_seqscan = off")  # an empty table, no statistics
                rows = conn.execute(f"EXPLAIN {sql.replace('?', '%s')}", params).fetchall()
            return " ".join(r["QUERY PLAN"] for r in rows)

    by_state = plan(
        "SELECT * FROM requests WHERE state = ? AND (created_at, id) > (?, ?) "
        "ORDER BY created_at, id LIMIT 10",
        ["deploying", T0.isoformat(), ""],
    )
    assert names[0] in by_state and sorted_apart not in by_state
    recent = plan("SELECT * FROM requests ORDER BY created_at DESC LIMIT 20", [])
    assert names[1] in recent and sorted_apart not in recent
    history = plan(
        "SELECT * FROM requests WHERE server = ? ORDER BY created_at DESC LIMIT 10", ["ns1"]
    )
    assert names[2] in history and sorted_apart not in history


def test_the_wal_is_checkpointed_only_when_secrets_were_deleted(tmp_path, monkeypatch):
    store = Store(str(tmp_path / "byoi.db"))  # SQLite only: PostgreSQL has no WAL to trim
    checkpoints = []
    monkeypatch.setattr(store, "_checkpoint", lambda: checkpoints.append(1))
    store.create(request("r-nosecret"), None)
    store.transition("r-nosecret", State.PENDING_APPROVAL, State.CANCELLED, "U100")
    assert checkpoints == [], "a final transition with no secret to delete"
    store.create(request("r-secret", server="ns2.example.net"), spec().secrets())
    store.transition("r-secret", State.PENDING_APPROVAL, State.REJECTED, "U2")
    assert checkpoints == [1]
    store.close()


def test_a_fleet_and_its_servers_are_stored_together_and_approved_together(store):
    from byoi_bot.core.fleet import Fleet, FleetState, Rollout

    members = [request(f"r-f{i}", server=f"ns{i}.example.net") for i in range(2)]
    for m in members:
        m.fleet_id = "f-aaaaaa"
    fleet = Fleet("f-aaaaaa", "U100", "C1", FleetState.PENDING_APPROVAL, T0,
                  T0 + timedelta(hours=1), "default", ("ns1.example.net", "ns0.example.net"),
                  Rollout(1, 0))  # fmt: skip
    store.create_fleet(fleet, [(m, spec().secrets()) for m in members])
    assert [m.id for m in store.fleet_members(fleet)] == ["r-f1", "r-f0"], "rollout order"
    assert store.secrets("r-f0") is not None
    ids = [m.id for m in members]
    assert store.add_fleet_approval(fleet, "U2", ids)
    assert not store.add_fleet_approval(fleet, "U2", ids)
    assert all(store.approvals(m.id, m.fingerprint) == ["U2"] for m in members)
    assert store.add_fleet_approval(fleet, "U3", ["r-f1"]), "only the servers it counts for"
    assert sorted(store.approvals("r-f1", members[1].fingerprint)) == ["U2", "U3"]
    assert store.approvals("r-f0", members[0].fingerprint) == ["U2"]
    assert store.fleet_transition(fleet.id, FleetState.PENDING_APPROVAL, FleetState.RUNNING,
                                  "U2", "quorum")  # fmt: skip
    assert not store.fleet_transition(fleet.id, FleetState.PENDING_APPROVAL,
                                      FleetState.CANCELLED, "U100", "late")  # fmt: skip
    assert store.fleet(fleet.id).state is FleetState.RUNNING
    busy = request("r-busy", server="ns1.example.net")
    with pytest.raises(ServerBusy):
        store.create_fleet(
            Fleet(
                "f-bbbbbb",
                "U100",
                "C1",
                FleetState.PENDING_APPROVAL,
                T0,
                T0,
                "default",
                ("ns1.example.net",),
                Rollout(),
            ),
            [(busy, None)],
        )
    assert store.fleet("f-bbbbbb") is None, "nothing of a refused fleet is stored"


def test_a_fleet_card_is_found_by_message_and_its_fields_and_approvals_change(store):
    from byoi_bot.core.fleet import Fleet, FleetState, Rollout

    members = [request(f"r-g{i}", server=f"ns{i}.example.net") for i in range(2)]
    members.append(request("r-g2", server="ns2.example.net", hostname="web-2"))
    for m in members:
        m.fleet_id = "f-cccccc"
    fleet = Fleet("f-cccccc", "U100", "C1", FleetState.PENDING_APPROVAL, T0,
                  T0 + timedelta(hours=1), "default", tuple(m.spec.server for m in members),
                  Rollout(2, 1), refused=(("ns9.example.net", "not ours"),))  # fmt: skip
    store.create_fleet(fleet, [(m, None) for m in members])
    assert store.fleet(fleet.id) == fleet
    assert store.fleet_by_message("C1", "1.2") is None
    store.update_fleet(fleet.id, message_ts="1.2", announced={"r-g0": "started"}, waves_announced=1)
    found = store.fleet_by_message("C1", "1.2")
    assert (
        found.id == fleet.id
        and found.announced == {"r-g0": "started"}
        and found.waves_announced == 1
    )
    assert [f.id for f in store.fleets_in_states([FleetState.PENDING_APPROVAL])] == [fleet.id]
    assert store.fleets_in_states([FleetState.RUNNING]) == []
    assert [r.fleet_id for r in store.fleet_members(fleet)] == [fleet.id] * 3
    assert store.add_fleet_approval(fleet, "U2", [m.id for m in members])
    fingerprints = sorted(execute(store, "SELECT request_id, fingerprint FROM approvals"))
    assert fingerprints == sorted((m.id, m.fingerprint) for m in members), "one per server"
    assert store.remove_fleet_approval(fleet, "U2") and not store.remove_fleet_approval(fleet, "U2")
    assert all(store.approvals(m.id, m.fingerprint) == [] for m in members)
    assert [a["action"] for a in store.audit(fleet.id)] == ["created", "approval", "withdrawal"]
    finished = T0 + timedelta(hours=2)
    assert store.fleet_transition(fleet.id, FleetState.PENDING_APPROVAL, FleetState.CANCELLED,
                                  "U100", "changed my mind", finished_at=finished)  # fmt: skip
    assert store.fleet(fleet.id).finished_at == finished
    assert store.audit(fleet.id)[-1]["reason"].endswith("changed my mind")


def test_a_database_of_the_release_before_fleets_migrates_and_keeps_its_requests(db_location):
    """Fleets and the query indexes came after main's migrations: a database left at main's
    last schema (SQLite m006_versions, PostgreSQL 2) takes them on top of its requests."""
    r = request()
    row = {k: v for k, v in to_row(r).items() if k not in ("fleet_id", "boot")}
    older_schema_with(db_location, row, postgres=slice(2), sqlite_before="m007_query_indexes")
    store = open_store(db_location)
    try:
        assert store.get(r.id) == r and store.get(r.id).fleet_id is None
        assert [x.id for x in store.stream([State.PENDING_APPROVAL])] == [r.id]
        assert store.fleets_in_states(list(FleetState)) == []
    finally:
        store.close()


def test_recent_pages_cover_every_request_once_even_when_created_at_the_same_time(store):
    for i in range(7):  # one created_at for all: the order must still be total
        store.create(request(f"r-p{i:05d}", state=State.DONE, server=f"ns{i}.example.net"), None)
    pages = [[r.id for r in store.recent(3, offset=offset)] for offset in (0, 3, 6)]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sorted(i for page in pages for i in page) == [f"r-p{i:05d}" for i in range(7)]
    assert pages[0][0] == "r-p00006", "newest (last created) first"
    assert store.count() == 7

"""The SQLite store: compare-and-set transitions, audit, secrets, busy servers, durability."""

import sqlite3
import threading
from datetime import timedelta

import pytest
from core_fixtures import T0, request, spec

from byoi_bot.core.ports import ServerBusy
from byoi_bot.core.states import IllegalTransition, State
from byoi_bot.store import SCHEMA_VERSION, Store, new_request_id


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "byoi.db"))
    yield s
    s.close()


def test_schema_version_is_recorded_and_migrations_are_idempotent(tmp_path):
    path = str(tmp_path / "byoi.db")
    Store(path).close()
    again = Store(path)
    assert again.schema_version() == SCHEMA_VERSION >= 3
    assert again.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


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


def test_two_store_objects_on_one_file_race_safely(tmp_path):
    path = str(tmp_path / "byoi.db")
    first, second = Store(path), Store(path)
    first.create(request(), None)
    first.transition("r-aaaaaa", State.PENDING_APPROVAL, State.APPROVED, "U2")
    with pytest.raises(IllegalTransition):
        second.transition("r-aaaaaa", State.PENDING_APPROVAL, State.APPROVED, "U3")


def test_request_reopened_from_a_fresh_store_keeps_its_history(tmp_path):
    path = str(tmp_path / "byoi.db")
    first = Store(path)
    r = request()
    first.create(r, spec().secrets())
    first.add_approval(r.id, "U2", r.fingerprint)
    first.transition(r.id, State.PENDING_APPROVAL, State.APPROVED, "U2", "quorum")
    first.close()
    fresh = Store(path)
    again = fresh.get(r.id)
    assert again.state is State.APPROVED and again.spec == r.spec
    assert fresh.approvals(r.id, r.fingerprint) == ["U2"]
    assert [a["action"] for a in fresh.audit(r.id)] == ["created", "approval", "transition"]


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
    dump = "\n".join(store.db.iterdump())
    assert "s3cr3t-token" not in dump and "hunter2" not in dump


def test_secrets_are_dropped_when_a_request_ends_before_submission(store):
    r = request()
    store.create(r, spec().secrets())
    store.transition(r.id, State.PENDING_APPROVAL, State.EXPIRED, "byoi-bot")
    assert store.secrets(r.id) is None


def test_audit_log_is_append_only(store):
    store.create(request(), None)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.db.execute("UPDATE audit SET actor = 'someone else'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.db.execute("DELETE FROM audit")


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


def test_approvals_audit_rows_and_delivery_ids_are_stamped_by_the_bots_clock(tmp_path):
    class Clock:
        now = staticmethod(lambda: T0)

    store = Store(str(tmp_path / "byoi.db"), clock=Clock())
    r = request()
    store.create(r, None)
    store.add_approval(r.id, "U2", "f")
    assert store.first_delivery("Ev1")
    assert {row["at"] for row in store.audit(r.id)} == {T0.isoformat()}
    assert store.db.execute("SELECT at FROM approvals").fetchone()[0] == T0.isoformat()
    assert store.forget_events(T0) == 0 and store.forget_events(T0 + timedelta(seconds=1)) == 1


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
    def plan(sql: str, params: list) -> str:
        return " ".join(r["detail"] for r in store.db.query(f"EXPLAIN QUERY PLAN {sql}", params))

    by_state = plan(
        "SELECT * FROM requests WHERE state IN (?) AND (created_at, id) > (?, ?) "
        "ORDER BY created_at, id LIMIT 10",
        ["deploying", "", ""],
    )
    assert "USING INDEX idx_requests_state_created_at_id" in by_state
    assert "TEMP B-TREE" not in by_state
    recent = plan("SELECT * FROM requests ORDER BY created_at DESC LIMIT 20", [])
    assert "idx_requests_created_at" in recent and "TEMP B-TREE" not in recent
    history = plan(
        "SELECT * FROM requests WHERE server = ? ORDER BY created_at DESC LIMIT 10", ["ns1"]
    )
    assert "idx_requests_server_created_at" in history and "TEMP B-TREE" not in history


def test_the_wal_is_checkpointed_only_when_secrets_were_deleted(store, monkeypatch):
    checkpoints = []
    monkeypatch.setattr(store, "_checkpoint", lambda: checkpoints.append(1))
    store.create(request("r-nosecret"), None)
    store.transition("r-nosecret", State.PENDING_APPROVAL, State.CANCELLED, "U100")
    assert checkpoints == [], "a final transition with no secret to delete"
    store.create(request("r-secret", server="ns2.example.net"), spec().secrets())
    store.transition("r-secret", State.PENDING_APPROVAL, State.REJECTED, "U2")
    assert checkpoints == [1]


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
    assert store.add_fleet_approval(fleet, "U2") and not store.add_fleet_approval(fleet, "U2")
    assert all(store.approvals(m.id, m.fingerprint) == ["U2"] for m in members)
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

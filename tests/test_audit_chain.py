"""The audit trail proves itself (both stores): a hash chain, its export and its check;
freezes and reviews of emergency overrides are stored and audited."""

from __future__ import annotations

import io
import json
import sqlite3
import threading
from datetime import datetime, timedelta
from itertools import pairwise

import pytest
from core_fixtures import T0, request, spec
from raw_sql import execute

from byoi_bot.core.change_control import Freeze
from byoi_bot.core.posts import Post
from byoi_bot.core.states import State
from byoi_bot.store import Store, open_store
from byoi_bot.store.audit_chain import GENESIS, export, read_export, verify


class Clock:
    """The stores' clock in these tests: T0, one second later at every reading."""

    def __init__(self) -> None:
        self.at = T0

    def now(self):
        self.at += timedelta(seconds=1)
        return self.at


@pytest.fixture
def store(db_location):
    s = open_store(db_location, Clock())
    yield s
    s.close()


def some_history(store, n: int = 3) -> list[str]:
    ids = []
    for k in range(n):
        r = request(f"r-{k:06d}", server=f"ns{k}.example.net")
        store.create(r, spec().secrets())
        store.transition(r.id, State.PENDING_APPROVAL, State.APPROVED, "U2", "quorum")
        store.note(r.id, "U3", "approval_refused", "not an approver")
        ids.append(r.id)
    return ids


def test_every_row_carries_the_hash_of_the_row_before_it(store):
    some_history(store)
    rows = list(store.audit_chain())
    assert len(rows) == 9
    assert rows[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in pairwise(rows))
    assert verify(rows).ok


def unguard(store) -> None:
    """Remove the append-only guard, as someone with the database's keys could."""
    if isinstance(store, Store):
        execute(store, "DROP TRIGGER audit_no_update")
        execute(store, "DROP TRIGGER audit_no_delete")
    else:
        execute(store, "DROP TRIGGER audit_no_change ON audit")


def test_one_row_edited_in_the_database_is_named(store):
    some_history(store)
    unguard(store)
    fifth = [r["id"] for r in store.audit_chain()][4]
    execute(store, "UPDATE audit SET reason = 'nothing to see' WHERE id = ?", [fifth])
    verdict = verify(store.audit_chain())
    assert not verdict.ok
    assert verdict.first_bad == fifth and verdict.rows == 4
    assert "edited" in verdict.describe()


def test_one_row_deleted_from_the_database_is_named(store):
    some_history(store)
    unguard(store)
    ids = [r["id"] for r in store.audit_chain()]
    execute(store, "DELETE FROM audit WHERE id = ?", [ids[2]])
    verdict = verify(store.audit_chain())
    assert verdict.first_bad == ids[3]
    assert "removed" in verdict.why


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_export_verifies_and_one_edited_line_is_caught(store, fmt):
    some_history(store)
    out = io.StringIO()
    assert export(store.audit_chain(), out, fmt) == 9
    text = out.getvalue()
    assert verify(read_export(text)).ok
    lines = text.splitlines()
    target = 2 if fmt == "jsonl" else 3  # the CSV has a header line
    lines[target] = lines[target].replace("approval_refused", "approved", 1)
    assert lines[target] != text.splitlines()[target]
    verdict = verify(read_export("\n".join(lines) + "\n"))
    assert not verdict.ok and verdict.first_bad == 3


def test_an_export_of_a_time_range_is_checked_from_its_first_row(store):
    some_history(store, 2)
    rows = list(store.audit_chain())
    third = datetime.fromisoformat(rows[2]["at"])
    assert len(list(store.audit_chain(until=third))) == 2
    tail = list(store.audit_chain(since=third))
    assert len(tail) == 4
    assert not verify(tail).ok  # its first row does not chain to the start
    assert verify(tail, anchor=None).ok
    assert list(store.audit_chain(since=T0 + timedelta(days=1))) == []


def test_concurrent_writers_never_fork_the_chain(store):
    def write(k: int) -> None:
        for _ in range(10):
            store.note(f"r-{k}", "U1", "note", "parallel")

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = list(store.audit_chain())
    assert len(rows) == 40
    assert verify(rows).ok


def test_freezes_are_stored_listed_lifted_and_audited(store):
    freeze = Freeze("fz-1", T0, T0 + timedelta(days=3), "year end", ("prod",), "U1")
    store.add_freeze(freeze)
    assert store.freezes(ending_after=T0) == [freeze]
    assert store.freezes(ending_after=T0 + timedelta(days=3)) == []
    assert store.lift_freeze("fz-1", "U2") == freeze
    assert store.lift_freeze("fz-1", "U2") is None
    assert store.freezes(ending_after=T0) == []
    actions = [(r["request_id"], r["action"], r["actor"]) for r in store.audit_chain()]
    assert actions == [("fz-1", "freeze", "U1"), ("fz-1", "unfreeze", "U2")]


def test_a_review_is_opened_flagged_done_once_and_reminded_once(store):
    r = request()
    store.create(r, spec().secrets())
    store.open_review(r.id, "prod", T0 + timedelta(hours=24), "emergency: disk failing")
    assert [x["request_id"] for x in store.unreviewed()] == [r.id]
    post = Post.reply(r, "please review")
    assert store.remind_review(r.id, [post])
    assert not store.remind_review(r.id, [post])
    assert store.review(r.id, "U2", [post])
    assert not store.review(r.id, "U3", [post])
    assert store.unreviewed() == []
    flagged = [row for row in store.audit(r.id) if row["action"].startswith("emergency")]
    assert [(row["action"], row["actor"]) for row in flagged] == [
        ("emergency_override", "byoi-bot"),
        ("emergency_review", "U2"),
    ]


def test_a_store_of_the_previous_schema_gets_its_rows_sealed_in_order(tmp_path):
    path = str(tmp_path / "old.db")
    Store(path).close()
    conn = sqlite3.connect(path)  # as the previous version left it: rows without hashes
    name = "m_change_01_audit_chain_freezes_reviews"
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = ?", [name])
    conn.execute("DROP TABLE freezes")
    conn.execute("DROP TABLE reviews")
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    conn.execute("ALTER TABLE audit DROP COLUMN prev_hash")
    conn.execute("ALTER TABLE audit DROP COLUMN hash")
    for k in range(3):
        conn.execute(
            "INSERT INTO audit (request_id, at, actor, action, reason) VALUES (?, ?, ?, ?, ?)",
            [f"r-{k}", T0.isoformat(), "U1", "created", json.dumps({"k": k})],
        )
    conn.commit()
    conn.close()
    store = Store(path)
    rows = list(store.audit_chain())
    assert [r["request_id"] for r in rows] == ["r-0", "r-1", "r-2"]
    assert verify(rows).ok
    store.note("r-3", "U1", "note", "after the upgrade")
    assert verify(store.audit_chain()).ok
    store.close()


# -- byoi-bot audit export / verify -------------------------------------------------------


@pytest.fixture
def cli_store(tmp_path, monkeypatch):
    path = str(tmp_path / "byoi.db")
    monkeypatch.setenv("BYOI_DB", path)
    store = Store(path, clock=Clock())
    some_history(store)
    yield store
    store.close()


def run_cli(*argv: str) -> int:
    from byoi_bot.cli import main

    return main(["audit", *argv])


def test_cli_verifies_the_store_and_names_the_row_someone_edited(cli_store, capsys):
    assert run_cli("verify") == 0
    assert "audit chain intact: 9 row(s)" in capsys.readouterr().out
    unguard(cli_store)
    execute(cli_store, "UPDATE audit SET actor = 'U9' WHERE id = 7")
    assert run_cli("verify") == 1
    assert "broken at row 7" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_cli_exports_a_range_and_verifies_the_export(cli_store, tmp_path, capsys, fmt):
    out = tmp_path / f"audit.{fmt}"
    third = list(cli_store.audit_chain())[2]["at"]
    assert run_cli("export", "--since", third, "--format", fmt, "--output", str(out)) == 0
    assert "7 audit row(s) written" in capsys.readouterr().err
    assert run_cli("verify", str(out)) == 0
    assert "7 row(s)" in capsys.readouterr().out
    text = out.read_text()
    out.write_text(text.replace("approval_refused", "approved", 1))
    assert run_cli("verify", str(out)) == 1
    assert "edited" in capsys.readouterr().out


def test_cli_refuses_what_is_not_an_export_or_a_time(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BYOI_DB", str(tmp_path / "none.db"))
    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"no": "hashes"}\n')
    assert run_cli("verify", str(junk)) == 2
    assert "row 1 has no at, action, prev_hash, hash" in capsys.readouterr().err
    junk.write_text("{not json\n")
    assert run_cli("verify", str(junk)) == 2
    assert "is not an audit export" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_cli("export", "--since", "yesterday")
    assert "is not an ISO 8601 date or time" in capsys.readouterr().err


def test_two_replicas_appending_at_once_keep_one_chain(postgres_dsn):
    replicas = [open_store(postgres_dsn, Clock()) for _ in range(2)]
    try:

        def write(store, k: int) -> None:
            for i in range(15):
                store.note(f"r-{k}-{i}", "U1", "note", "from one replica")

        threads = [
            threading.Thread(target=write, args=(store, k)) for k, store in enumerate(replicas * 2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rows = list(replicas[0].audit_chain())
        assert len(rows) == 60
        assert verify(rows).ok
    finally:
        for store in replicas:
            store.close()

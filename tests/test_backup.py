"""`byoi-bot backup` while a deploy is in flight, and `byoi-bot restore` (issue 22)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
from process_harness import APPROVER, ProcessBot

from byoi_bot.cli import main
from byoi_bot.store import Store

pytestmark = pytest.mark.timeout(120)


def cli(bot: ProcessBot, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "byoi_bot.cli", *args],
        env=bot.env,
        cwd=bot.tmp,
        capture_output=True,
        text=True,
        timeout=60,
    )


def states(path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return [row[0] for row in conn.execute("SELECT state FROM requests")]
    finally:
        conn.close()


def test_backup_while_deploying_then_restore_once_stopped_and_resume(tmp_path):
    bot = ProcessBot(tmp_path, deploy_seconds=12.0)
    copy = tmp_path / "backups" / "byoi-1.db"
    copy.parent.mkdir()
    try:
        bot.start()
        card = bot.deploy()
        bot.react(APPROVER, card["ts"])
        bot.wait_state("deploying")

        done = cli(bot, "backup", str(copy))
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"backed up 1 requests to {copy} ({copy.stat().st_size} bytes)\n"
        assert states(copy) == ["deploying"]

        refused = cli(bot, "restore", str(copy))
        assert refused.returncode == 1
        assert "is open in a running byoi-bot" in refused.stderr
        assert "systemctl stop byoi-bot" in refused.stderr

        assert bot.terminate()[0] == 0
        assert bot.state() == "deploying"
        restored = cli(bot, "restore", str(copy))
        assert restored.returncode == 0, restored.stderr
        assert restored.stdout.startswith(f"restored 1 requests into {bot.db}\n")
        assert "the store it replaced is kept as " in restored.stdout

        bot.start()
        assert bot.wait_state("done", timeout=40)["state"] == "done"
        assert bot.starts() == 1
    finally:
        bot.close()


@pytest.fixture
def store_file(tmp_path, monkeypatch):
    path = tmp_path / "byoi.db"
    Store(str(path)).close()
    monkeypatch.setenv("BYOI_DB", str(path))
    return path


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("exists.db", "exists already; give a new file name (nothing was written)"),
        ("no/such/folder/b.db", "no folder"),
        ("byoi.db", "the backup cannot be the store itself"),
    ],
)
def test_a_backup_that_cannot_be_written_says_why(store_file, capsys, target, says):
    (store_file.parent / "exists.db").write_text("keep me")
    assert main(["backup", str(store_file.parent / target)]) == 1
    assert says in capsys.readouterr().err
    assert (store_file.parent / "exists.db").read_text() == "keep me"


def test_no_store_nothing_to_back_up(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BYOI_DB", str(tmp_path / "none.db"))
    assert main(["backup", str(tmp_path / "b.db")]) == 1
    assert "nothing to back up" in capsys.readouterr().err


def test_postgresql_is_backed_up_with_pg_dump(monkeypatch, capsys):
    monkeypatch.setenv("BYOI_DB", "postgresql://byoi:s3cret@db.example/byoi")
    for command in ("backup", "restore"):
        assert main([command, "x.db"]) == 1
        err = capsys.readouterr().err
        assert "pg_dump --format=custom" in err and "pg_restore" in err and "s3cret" not in err


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"not a database at all" * 100, "is not a byoi-bot backup (file is not a database)"),
        (None, "is not a byoi-bot backup (no requests table)"),
    ],
)
def test_restore_refuses_what_is_not_a_backup(store_file, capsys, content, says):
    bad = store_file.parent / "bad.db"
    if content is None:
        sqlite3.connect(bad).execute("CREATE TABLE other (x)").connection.close()
    else:
        bad.write_bytes(content)
    before = store_file.read_bytes()
    assert main(["restore", str(bad)]) == 1
    assert says in capsys.readouterr().err
    assert store_file.read_bytes() == before


def test_restore_of_a_missing_file(store_file, capsys):
    assert main(["restore", str(store_file.parent / "missing.db")]) == 1
    assert "no backup file" in capsys.readouterr().err

"""`byoi-bot backup PATH` and `byoi-bot restore PATH` for the SQLite store.

A backup is SQLite's online backup API (`sqlite3.Connection.backup`): a consistent copy
while the bot runs and writes, WAL included, with no `sqlite3` program (the image has
none). It is written next to PATH and renamed into place once whole and checked, so a PATH
that exists is always a complete backup. A restore checks the backup, refuses while anything
has the store open (`store.lockfile`), keeps the current store beside it, then copies the
backup in with the same API. PostgreSQL stores are backed up with `pg_dump` (the messages
say how).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .clock import SystemClock
from .store import is_postgres, shown
from .store.lockfile import hold_exclusive

PAGES_PER_STEP = 1024  # the bot may write between two steps of a large copy
PG_DUMP = (
    "BYOI_DB is a PostgreSQL database: back it up with pg_dump, e.g. "
    '`pg_dump --format=custom --file=byoi.dump "$BYOI_DB"`, and restore it with '
    '`pg_restore --clean --if-exists --dbname="$BYOI_DB" byoi.dump` (docs/operations.md)'
)


class BackupError(Exception):
    """Why a backup or restore was not done; says what to do instead."""


@dataclass(frozen=True)
class Copied:
    """What a backup or restore copied."""

    path: Path
    requests: int
    size: int


def backup(db: str, target: str) -> Copied:
    """Copy the store at `db` to `target` (a new file) while the bot may run."""
    if is_postgres(db):
        raise BackupError(PG_DUMP)
    source, path = _existing_store(db), Path(target)
    if path.resolve() == source.resolve():
        raise BackupError("the backup cannot be the store itself; give another file name")
    if path.exists():
        raise BackupError(f"{path} exists already; give a new file name (nothing was written)")
    if not path.parent.is_dir():
        raise BackupError(f"no folder {path.parent}; create it or give another path")
    partial = path.with_name(f".{path.name}.partial")
    try:
        _copy(source, partial)
        requests = _check(partial)
        os.replace(partial, path)
    except (OSError, sqlite3.Error) as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise BackupError(f"could not write {path}: {_reason(exc)}") from None
    return Copied(path, requests, path.stat().st_size)


def restore(db: str, backup_file: str) -> tuple[Copied, Path | None]:
    """Replace the store at `db` with `backup_file`; returns what was copied and where the
    store it replaced was kept (None when there was none)."""
    if is_postgres(db):
        raise BackupError(PG_DUMP)
    source = Path(backup_file)
    if not source.is_file():
        raise BackupError(f"no backup file {source}")
    try:
        requests = _check(source)
    except sqlite3.Error as exc:
        raise BackupError(f"{source} is not a byoi-bot backup ({_reason(exc)})") from None
    store = Path(db)
    if not store.parent.is_dir():
        raise BackupError(f"no folder {store.parent} for BYOI_DB={db}")
    holder = hold_exclusive(db)
    if holder is None:
        raise BackupError(
            f"{shown(db)} is open in a running byoi-bot (or another byoi-bot command); stop "
            "it first (systemctl stop byoi-bot, docker stop <container>, or kubectl scale "
            "deployment byoi-bot --replicas=0), then run the restore again"
        )
    with holder:
        kept = None
        if store.exists():
            kept = store.with_name(f"{store.name}.before-restore-{_stamp()}")
            _copy(store, kept)
        _copy(source, store)
    return Copied(store, requests, store.stat().st_size), kept


def _existing_store(db: str) -> Path:
    path = Path(db)
    if db == ":memory:" or not path.is_file():
        raise BackupError(f"no store at {db} (BYOI_DB): nothing to back up")
    return path


def _copy(source: Path, target: Path) -> None:
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst, pages=PAGES_PER_STEP)
        finally:
            dst.close()
    finally:
        src.close()


def _check(path: Path) -> int:
    """The number of requests in the store file `path`, once SQLite finds it whole."""
    conn = sqlite3.connect(path)
    try:
        (verdict,) = conn.execute("PRAGMA quick_check").fetchone()
        if verdict != "ok":
            raise sqlite3.DatabaseError(f"damaged: {verdict}")
        try:
            return conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
        except sqlite3.OperationalError:
            raise sqlite3.DatabaseError("no requests table") from None
    finally:
        conn.close()


def _stamp() -> str:
    return SystemClock().now().strftime("%Y%m%dT%H%M%SZ")


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__

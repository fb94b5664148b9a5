"""Who has a SQLite store open: a shared `flock` on ``<store>.lock`` for as long as a `Store`
is open (the bot, `byoi-bot audit`…); `byoi-bot restore` takes it exclusively, so it never
overwrites a store in use.

A file of its own, not the store: SQLite locks the store with POSIX record locks, which
another descriptor on the same file, once closed, would silently drop.
"""

from __future__ import annotations

import fcntl
from typing import IO


def lock_path(store: str) -> str:
    return f"{store}.lock"


def hold_shared(store: str) -> IO | None:
    """Hold a shared lock on the store's lock file until the returned file is closed; None
    for an in-memory store or when the file cannot be made (a read-only folder)."""
    if store == ":memory:":
        return None
    try:
        holder = open(lock_path(store), "a")  # noqa: SIM115 (held open on purpose)
    except OSError:
        return None
    fcntl.flock(holder, fcntl.LOCK_SH)
    return holder


def hold_exclusive(store: str) -> IO | None:
    """The exclusive lock (close the file to release it), or None while anyone holds it."""
    holder = open(lock_path(store), "a")  # noqa: SIM115 (held open on purpose)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder.close()
        return None
    return holder

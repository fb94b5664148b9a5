"""The request store's adapters: SQLite (the embedded default) and PostgreSQL (replicas).

`open_store(BYOI_DB)` picks one: a ``postgresql://`` URL selects PostgreSQL, anything else
is a SQLite file. Both implement the core's `RequestStore` port with the same rules.
"""

from __future__ import annotations

from ..core.ports import Clock, RequestStore
from .rows import new_request_id
from .sqlite import SCHEMA_VERSION, Store

POSTGRES_SCHEMES = ("postgresql://", "postgres://")

__all__ = ["SCHEMA_VERSION", "Store", "is_postgres", "new_request_id", "open_store", "shown"]


def is_postgres(location: str) -> bool:
    """True when BYOI_DB names a PostgreSQL database rather than a SQLite file."""
    return location.startswith(POSTGRES_SCHEMES)


def shown(location: str) -> str:
    """BYOI_DB as it may be printed: a PostgreSQL URL without its password."""
    if not is_postgres(location):
        return location
    from .postgres import redact

    return redact(location)


def open_store(location: str, clock: Clock | None = None) -> RequestStore:
    """The store at `location`: PostgreSQL for a ``postgresql://`` URL, else a SQLite file.
    `clock` stamps approvals, audit rows and delivery ids (the system clock by default)."""
    if is_postgres(location):
        from .postgres import PostgresStore

        return PostgresStore(location, clock=clock)
    return Store(location, clock=clock)

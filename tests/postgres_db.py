"""PostgreSQL for the tests: one database per test run, one schema per test.

Set `BYOI_TEST_POSTGRES_DSN` to a role that may create databases on 127.0.0.1 (`.ci/postgres`
starts a cluster and prints one). Without it the PostgreSQL tests skip, or fail under
`BYOI_TEST_REQUIRE_TOOLS=1` as `.ci/run` sets.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from tools import REQUIRE_ENV

DSN_ENV = "BYOI_TEST_POSTGRES_DSN"


def require_postgres() -> str:
    """The admin DSN; skips the test without one (fails under BYOI_TEST_REQUIRE_TOOLS=1)."""
    dsn = os.environ.get(DSN_ENV, "")
    if dsn:
        return dsn
    reason = (
        f"needs PostgreSQL: set {DSN_ENV}=postgresql://USER:PASSWORD@127.0.0.1:5432/postgres "
        "(a role that may create databases; `.ci/postgres` starts a cluster and prints one)"
    )
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}; {REQUIRE_ENV}=1 makes it a failure", pytrace=False)
    pytest.skip(reason)


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


def with_schema(dsn: str, schema: str) -> str:
    """`dsn` with `schema` first on the search path (the bot's tables go there)."""
    parts = urlsplit(dsn)
    option = "options=" + quote(f"-csearch_path={schema}")
    query = f"{parts.query}&{option}" if parts.query else option
    return urlunsplit(parts._replace(query=query))


@contextmanager
def run_database(admin_dsn: str) -> Iterator[str]:
    """A new database for this run; dropped (connections and all) at the end."""
    import psycopg

    name = f"byoi_test_{secrets.token_hex(4)}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield with_database(admin_dsn, name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def new_schema(database_dsn: str) -> str:
    """A fresh schema in the run's database; the DSN that puts the bot's tables in it."""
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(database_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return with_schema(database_dsn, schema)

"""What every test needs: traffic to 127.0.0.1 never goes through a proxy; the wall clock
may be moved (BYOI_TEST_SHIFT_DAYS) to prove no test depends on today's date; property
tests draw fixed examples unless BYOI_HYPOTHESIS_PROFILE=long (tests/properties.py)."""

import os
from datetime import UTC, datetime, timedelta

import properties  # noqa: F401  (loads the Hypothesis profile before any test module)
import pytest

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")


@pytest.fixture(autouse=True, scope="session")
def no_proxy():
    """WebClient, SocketModeClient and requests read HTTP(S)_PROXY: drop them for the session."""
    with pytest.MonkeyPatch.context() as mp:
        for name in PROXY_VARS:
            mp.delenv(name, raising=False)
        yield


@pytest.fixture(autouse=True, scope="session")
def wall_clock_moved():
    """With BYOI_TEST_SHIFT_DAYS=N, the wall clock of the whole session runs N days ahead.

    `.ci/run` runs the time-sensitive tests a year ahead this way: a test that reads today's
    date instead of the bot's (fake) clock fails there. time-machine moves `time.time()`,
    `datetime.now()` and friends in every thread, and keeps them ticking.
    """
    days = int(os.environ.get("BYOI_TEST_SHIFT_DAYS") or 0)
    if not days:
        yield
        return
    import time_machine

    with time_machine.travel(datetime.now(UTC) + timedelta(days=days), tick=True):
        yield


@pytest.fixture(scope="session")
def postgres_database():
    """A PostgreSQL database for this test run (tests/postgres_db.py)."""
    from postgres_db import require_postgres, run_database

    with run_database(require_postgres()) as dsn:
        yield dsn


@pytest.fixture
def postgres_dsn(postgres_database):
    """A `postgresql://` BYOI_DB of an empty schema of its own."""
    from postgres_db import new_schema

    return new_schema(postgres_database)


@pytest.fixture(params=["sqlite", "postgres"])
def db_location(request, tmp_path):
    """BYOI_DB for each store: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "byoi.db")
    return request.getfixturevalue("postgres_dsn")

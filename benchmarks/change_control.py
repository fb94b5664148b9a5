"""Change control's costs: `audit verify` over a long trail, and the start decision.

1. `audit verify` over N audit rows (default 100,000) on SQLite, and on PostgreSQL when a DSN
   is given: the rows are written once, chained, in one transaction; then, alternately, best
   of `--runs`: reading the whole trail page by page the way verify does (`audit_chain()`,
   no hashing: the reference) and verifying it (`verify(audit_chain())`).
2. The start decision added to each submission: `Deployments.start_decision()` (the policy's
   two windows, the freezes in force read from the store — `--freezes` of them — and
   `decide()`), against the store read every submission already makes (`store.get(id)`),
   median of `--calls`, in one process on one SQLite store.

Run: `python benchmarks/change_control.py [--rows 100000] [--postgres DSN] [--runs 3]`
(`--smoke`: a few hundred rows, seconds). Without `--postgres`, `BYOI_TEST_POSTGRES_DSN` is
used when set; otherwise PostgreSQL is left out and the table says so.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import psycopg
from benchlib import table

from byoi_bot.clock import SystemClock
from byoi_bot.config import Settings
from byoi_bot.core.change_control import Freeze
from byoi_bot.core.request import DeploySpec, Request
from byoi_bot.core.service import Deployments
from byoi_bot.core.states import State
from byoi_bot.store import open_store
from byoi_bot.store.audit_chain import GENESIS, seal, verify

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def chained_rows(count: int) -> list[dict]:
    """`count` audit rows like a busy bot's, sealed into one chain."""
    rows, prev = [], GENESIS
    actions = ("created", "approval", "transition", "transition", "approval_refused")
    for i in range(count):
        row = seal(
            {
                "request_id": f"r-{i // 5:06d}",
                "at": (T0 + timedelta(seconds=i)).isoformat(),
                "actor": "U0BOB",
                "action": actions[i % 5],
                "from_state": "pending_approval" if i % 5 == 2 else None,
                "to_state": "approved" if i % 5 == 2 else None,
                "reason": "quorum reached: U0BOB, U0CAROL" if i % 5 == 2 else "approved",
            },
            prev,
        )
        rows.append(row)
        prev = row["hash"]
    return rows


def fill(store, rows: list[dict]) -> None:
    """Write the rows in one transaction, outside the store's methods (setup, not measured)."""
    columns = list(rows[0])
    if hasattr(store, "db"):
        store.db.conn.executemany(
            f"INSERT INTO audit ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [list(r.values()) for r in rows],
        )
        store.db.conn.commit()
        return
    copy_sql = f"COPY audit ({', '.join(columns)}) FROM STDIN"
    with store.pool.connection() as conn, conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
        for row in rows:
            copy.write_row(list(row.values()))


def best_of(runs: int, work) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def verify_rows(location: str, name: str, rows: list[dict], runs: int) -> list[object]:
    store = open_store(location)
    try:
        fill(store, rows)
        verdicts = []
        read = verify_time = float("inf")
        for _ in range(runs):  # alternately, so both see the same machine
            read = min(read, best_of(1, lambda: sum(1 for _ in store.audit_chain())))
            verify_time = min(
                verify_time, best_of(1, lambda: verdicts.append(verify(store.audit_chain())))
            )
        assert all(v.ok and v.rows == len(rows) for v in verdicts), verdicts
    finally:
        store.close()
    return [
        name,
        f"{len(rows):,}",
        f"{read:.2f}",
        f"{verify_time:.2f}",
        f"{verify_time / read:.2f}×",
        f"{len(rows) / verify_time:,.0f}",
    ]


def postgres_database(dsn: str) -> tuple[str, str]:
    """A fresh database on `dsn`'s server and the DSN that uses it (`drop_database` ends it)."""
    name = f"byoi_bench_{secrets.token_hex(4)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return name, urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def drop_database(dsn: str, name: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def decision_cost(folder: Path, calls: int, freezes: int) -> list[list[object]]:
    config = folder / "byoi.toml"
    config.write_text(
        '[[policy]]\nname = "production"\npattern = "ns*"\napprovers = ["U0BOB"]\n'
        'windows = ["Tue 22:00-02:00 Europe/Paris", "Thu 22:00-02:00 Europe/Paris"]\n'
    )
    settings = Settings.load({"BYOI_CONFIG": str(config), "BYOI_APPROVERS": "U0BOB"})
    store = open_store(str(folder / "decide.db"))
    d = Deployments(  # only what the decision reads: the store, the policies, the clock
        store=store,
        provider=None,  # type: ignore[arg-type]
        inspector=None,
        chat=SimpleNamespace(group_members=lambda group: frozenset()),  # type: ignore[arg-type]
        policies=settings.policies,
        clock=SystemClock(),
        explain=str,  # type: ignore[arg-type]
        new_id=lambda: "r-bench1",
    )
    now = d.clock.now()
    for i in range(freezes):
        start = now + timedelta(days=30 + 7 * i)
        store.add_freeze(Freeze(f"fz-{i:04d}", start, start + timedelta(days=2), "bench"))
    spec = DeploySpec("ns1.example.net", "https://images.example.net/a.qcow2", "qcow2")
    request = Request("r-bench1", spec, "U0ALICE", "C1", State.APPROVED, now, now, "production")
    store.create(request, None)
    timings: dict[str, list[float]] = {"get": [], "decide": []}
    for _ in range(calls):
        for name, work in (("get", lambda: store.get(request.id)),
                           ("decide", lambda: d.start_decision(request))):  # fmt: skip
            start = time.perf_counter()
            work()
            timings[name].append(time.perf_counter() - start)
    store.close()
    get, decide = (statistics.median(timings[k]) * 1e6 for k in ("get", "decide"))
    return [
        ["`store.get(id)` (reference)", f"{get:.0f}", "1.00×"],
        [
            f"`start_decision()`: 2 windows, {freezes} freezes",
            f"{decide:.0f}",
            f"{decide / get:.2f}×",
        ],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--freezes", type=int, default=10)
    parser.add_argument("--postgres", default=os.environ.get("BYOI_TEST_POSTGRES_DSN", ""))
    parser.add_argument("--smoke", action="store_true", help="a few hundred rows, seconds")
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.runs, args.calls = 500, 1, 50
    rows = chained_rows(args.rows)
    with tempfile.TemporaryDirectory(prefix="byoi-change-") as folder:
        results = [verify_rows(str(Path(folder) / "audit.db"), "SQLite", rows, args.runs)]
        if args.postgres:
            name, dsn = postgres_database(args.postgres)
            try:
                results.append(verify_rows(dsn, "PostgreSQL", rows, args.runs))
            finally:
                drop_database(args.postgres, name)
        print(f"`audit verify`, best of {args.runs} (seconds)")
        headers = ["store", "rows", "read the trail", "verify it", "verify / read", "rows/s"]
        print(table(headers, results))
        if not args.postgres:
            print("(PostgreSQL left out: no --postgres and no BYOI_TEST_POSTGRES_DSN)")
        print()
        print(f"The start decision per submission, median of {args.calls} (µs)")
        print(table(["what", "µs", "ratio"], decision_cost(Path(folder), args.calls, args.freezes)))


if __name__ == "__main__":
    main()

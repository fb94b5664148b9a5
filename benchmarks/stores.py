"""SQLite next to PostgreSQL in one run: ack latency, the poll cycle, the leader's take-over.

1. Ack latency: a real `byoi-bot run --http` per store, both running; N signed `/byoi list`
   (a store read) and N ✅ reactions on an unknown message, each a new event id (a store
   write: Slack's delivery ids are de-duplicated in the store), one client alternating
   between the two bots; p50/p99/max.
2. Poll cycle: `Poller.poll_all()` over N deployments per store (the production wiring
   in this process, the simulators and fake Slacks in child processes, as poll_cycle.py);
   each cycle runs on one store right after the other.
3. Take-over: two replicas on PostgreSQL following one deployment, polling every second; the
   leader is SIGKILLed; timed until the other holds the leader lock and until its first poll
   reaches OVHcloud. Repeated `--takeovers` times, killing whichever replica leads.

Run: `python benchmarks/stores.py --postgres postgresql://USER:PASSWORD@127.0.0.1:5432/postgres
[--requests 1000] [--deployments 1000] [--takeovers 5]` (a few minutes; the role must be
allowed to create databases: the script makes `byoi_bench_…` and drops it at the end).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from benchlib import (
    APPROVER,
    BOT_TOKEN,
    CHANNEL,
    REQUESTER,
    SECRET,
    FrozenClock,
    Services,
    bot_env,
    free_port,
    inventory,
    machine,
    parse_args,
    percentile,
    seed_deploying,
    server_names,
    start_bot,
    stop,
    table,
    wait_healthy,
    without_proxies,
)
from fakes.signing import event_body, post_signed, reaction_event, slash_command_body
from fakes.slack_api import FakeSlack

from byoi_bot.config import Settings
from byoi_bot.ovhcloud.client import make_client
from byoi_bot.ovhcloud.provider import ReinstallProvider
from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator
from byoi_bot.slack.modes import build_slack_bot
from byoi_bot.store.postgres import LEADER_SPACE

STEP = 100.0  # seconds per install step of the simulated deployments (7 steps)


@contextmanager
def bench_database(admin_dsn: str) -> Iterator[str]:
    """A fresh database for this run, dropped at the end."""
    name = f"byoi_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield urlunsplit(urlsplit(admin_dsn)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def with_query(dsn: str, option: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(query=f"{parts.query}&{option}" if parts.query else option))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def timed_post(url: str, body: str) -> float:
    began = time.perf_counter()
    status, _ = post_signed(url, body, SECRET)
    assert status == 200, status
    return time.perf_counter() - began


def ack_latency(stores: dict[str, str], n: int) -> list[list[object]]:
    """Per store: p50/p99/max of `/byoi list` and of a reaction event (new event id each).
    One bot per store, both running; requests alternate between them, so load on the
    machine weighs on both alike."""
    slack = FakeSlack(bot_token=BOT_TOKEN).start()
    simulator = Simulator(credentials=DEMO_CREDENTIALS)
    ovh_url = simulator.start("127.0.0.1", 0)
    bots, urls = [], {}
    try:
        for store, db in stores.items():
            port = free_port()
            bots.append(start_bot(bot_env(db, slack.base_url, ovh_url), port))
            wait_healthy(port, bots[-1])
            urls[store] = f"http://127.0.0.1:{port}/slack/events"

        def slash() -> str:
            return slash_command_body(
                "list", user_id=REQUESTER, channel_id=CHANNEL,
                response_url=slack.response_url(REQUESTER),
            )  # fmt: skip

        def reaction() -> str:
            return event_body(reaction_event(user=APPROVER, channel=CHANNEL, ts="1.000001"))

        rows = []
        for what, body in (("`/byoi list`", slash), ("✅ reaction", reaction)):
            latencies: dict[str, list[float]] = {store: [] for store in urls}
            for i in range(50 + n):  # the first 50 warm up
                for store, url in urls.items():
                    took = timed_post(url, body())
                    if i >= 50:
                        latencies[store].append(took)
            for store, lat in latencies.items():
                rows.append([store, what, n, ms(percentile(lat, 50)), ms(percentile(lat, 99)),
                             ms(max(lat))])  # fmt: skip
    finally:
        for bot in bots:
            stop(bot)
        simulator.stop()
        slack.stop()
    return rows


def poll_cycles(stores: dict[str, str], n: int) -> list[list[object]]:
    """Three poll cycles over `n` deployments per store (all new, unchanged, one step on),
    each store's cycle right after the other's."""
    with ExitStack() as stack:
        bots = {}
        for store, db in stores.items():
            services = stack.enter_context(Services(servers=n, deploy_seconds=7 * STEP))
            clock = FrozenClock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
            settings = Settings.load(
                {"BYOI_DB": db, "BYOI_APPROVERS": APPROVER, "SLACK_BOT_TOKEN": BOT_TOKEN,
                 "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": services.slack_url}
            )  # fmt: skip
            client = make_client(services.ovh_url, timeout=(5, 30), **DEMO_CREDENTIALS)
            provider = ReinstallProvider(client)
            bot, _ = build_slack_bot(
                settings, provider=provider, clock=clock, boot_ports=services.boot_ports().get
            )
            stack.callback(bot.store.close)
            began = time.perf_counter()
            seed_deploying(bot.deployments, provider, server_names(inventory(n)), clock)
            bots[store] = (bot, clock, services, time.perf_counter() - began)
        rows = [[store, "setup: store, card and start call each", f"{setup:.2f}"]
                for store, (_, _, _, setup) in bots.items()]  # fmt: skip
        for label, advance in (("every status new", 20), ("nothing changed", 0),
                               ("every deployment one step further", STEP)):  # fmt: skip
            for store, (bot, clock, services, _) in bots.items():
                clock.advance(advance)
                services.advance(advance)
                began = time.perf_counter()
                bot.poller.poll_all()
                rows.append([store, f"poll cycle: {label}", f"{time.perf_counter() - began:.2f}"])
    return rows


def leader(dsn: str) -> str | None:
    """The application_name of the replica holding the leader lock, if any."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.classid::bigint = %s AND l.granted",
            [LEADER_SPACE],
        ).fetchone()
    return row[0] if row else None


def wait_for(predicate: Callable[[], object], timeout: float = 30) -> float:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("gave up waiting")
        time.sleep(0.005)
    return time.perf_counter()


def takeovers(db: str, count: int) -> list[list[object]]:
    """Kill the leader `count` times; how long until the survivor leads and polls."""
    slack = FakeSlack(bot_token=BOT_TOKEN).start()
    simulator = Simulator(credentials=DEMO_CREDENTIALS, deploy_seconds=7 * STEP)
    ovh_url = simulator.start("127.0.0.1", 0)
    clock = FrozenClock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
    settings = Settings.load(
        {"BYOI_DB": db, "BYOI_APPROVERS": APPROVER, "SLACK_BOT_TOKEN": BOT_TOKEN,
         "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.base_url}
    )  # fmt: skip
    provider = ReinstallProvider(make_client(ovh_url, timeout=(5, 30), **DEMO_CREDENTIALS))
    bot, _ = build_slack_bot(
        settings, provider=provider, clock=clock, boot_ports=simulator.boots.port_of
    )
    server = "ns1001.ip-51-75-1.eu"
    seed_deploying(bot.deployments, provider, [server], clock)
    bot.store.close()
    replicas: dict[str, object] = {}

    def launch(name: str) -> None:
        env = bot_env(with_query(db, f"application_name={name}"), slack.base_url, ovh_url)
        port = free_port()
        replicas[name] = start_bot(env | {"BYOI_POLL_SECONDS": "1"}, port)
        wait_healthy(port, replicas[name])

    def polls() -> int:
        return sum(c["method"] == "GET" and server in c["path"] for c in simulator.calls())

    rows = []
    try:
        launch("replica-a")
        launch("replica-b")
        for i in range(count):
            name = wait_for_value(lambda: leader(db))
            other = "replica-b" if name == "replica-a" else "replica-a"
            replicas[name].send_signal(signal.SIGKILL)
            killed = time.perf_counter()
            replicas[name].wait()
            before = polls()
            led = wait_for(lambda other=other: leader(db) == other)
            polled = wait_for(lambda before=before: polls() > before)
            rows.append([i + 1, name, ms(led - killed), ms(polled - killed)])
            launch(name)
    finally:
        for proc in replicas.values():
            stop(proc)
        simulator.stop()
        slack.stop()
    return rows


def wait_for_value(read: Callable[[], str | None], timeout: float = 30) -> str:
    deadline = time.perf_counter() + timeout
    while (value := read()) is None:
        if time.perf_counter() > deadline:
            raise TimeoutError("gave up waiting")
        time.sleep(0.005)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("BYOI_TEST_POSTGRES_DSN", ""),
                        help="admin DSN of a role that may create databases")  # fmt: skip
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--takeovers", type=int, default=5)
    args = parse_args(parser, requests=5, deployments=10, takeovers=1)
    if not args.postgres:
        parser.error("--postgres (or BYOI_TEST_POSTGRES_DSN) is required")
    without_proxies()
    with bench_database(args.postgres) as pg, tempfile.TemporaryDirectory() as tmp:
        schemas = iter(f"s{i}" for i in range(10))

        def fresh() -> dict[str, str]:
            schema = next(schemas)
            with psycopg.connect(pg, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            sqlite = str(Path(tmp) / f"{schema}.db")
            postgres = with_query(pg, f"options=-csearch_path%3D{schema}")
            return {"SQLite": sqlite, "PostgreSQL": postgres}

        acks = ack_latency(fresh(), args.requests)
        cycles = poll_cycles(fresh(), args.deployments)
        handovers = takeovers(fresh()["PostgreSQL"], args.takeovers)

    print(f"## Ack latency by store ({args.requests} signed requests a run, one client)\n")
    print(table(["store", "request", "n", "p50 ms", "p99 ms", "max ms"], acks))
    print(f"\n## Poll cycle of {args.deployments} deployments by store\n")
    print(table(["store", "step", "wall s"], cycles))
    print("\n## Take-over: the leader SIGKILLed, the other replica leads and polls\n")
    print(table(["run", "killed", "leader lock taken after ms", "first poll after ms"], handovers))
    print()
    print(machine())


if __name__ == "__main__":
    main()

"""`/metrics` scrape time and size with N active deployments (default 1,000).

The bot's routes (`ops_http.bot_routes`: the store read at each scrape, the process's
counters) are served by the health and metrics server (`ops_http.serve`, waitress) in this
process; the store holds N requests in `deploying` (plus N finished ones) and the counters
hold what a day of such work leaves (every OVHcloud route and status, Slack errors, deploy
and poll histograms). The script GETs /metrics over one keep-alive connection, plain and
gzip, and reports the median and p95 time and the page size. Reference: the same server
serving the same counters without the store and process collector (what prometheus-client
alone costs), so the ratio is the price of the figures read from the store.

Run: `python benchmarks/metrics_scrape.py [--deployments 1000] [--scrapes 200]
[--postgres postgresql://…]` (a fresh database is made and dropped).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import tempfile
import time
from datetime import UTC, datetime, timedelta

from benchlib import (
    APPROVER,
    CHANNEL,
    IMAGE_URL,
    REQUESTER,
    machine,
    median,
    parse_args,
    percentile,
    table,
)

from byoi_bot.config import Settings
from byoi_bot.core.request import DeploySpec, Request
from byoi_bot.core.states import State
from byoi_bot.health import SlackToken
from byoi_bot.metrics import ovhcloud_route
from byoi_bot.ops_http import OpsRoutes, bot_routes, serve
from byoi_bot.slack.modes import serve_in_thread
from byoi_bot.wiring import build_bot

STEPS = (
    (State.PENDING_APPROVAL, State.APPROVED),
    (State.APPROVED, State.SUBMITTING),
    (State.SUBMITTING, State.DEPLOYING),
)


class _Idle:
    """A provider, chat and inspector that are never called: the bot is not started (the
    wiring only takes hold of the chat's group lookup)."""

    def group_members(self, group: str) -> frozenset[str]:
        return frozenset()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument(
        "--postgres", help="PostgreSQL instead of SQLite: a role that may create a database"
    )
    args = parse_args(parser, deployments=20, scrapes=5)
    with contextlib.ExitStack() as stack:
        db = f"{stack.enter_context(tempfile.TemporaryDirectory())}/byoi.db"
        if args.postgres:
            from stores import bench_database

            db = stack.enter_context(bench_database(args.postgres))
        settings = Settings.load({"BYOI_DB": db, "BYOI_APPROVERS": APPROVER})
        bot = build_bot(settings, _Idle(), provider=_Idle(), inspector=_Idle())
        seed(bot, args.deployments)
        routes = bot_routes(bot, SlackToken(), serving=lambda: True)
        reference = OpsRoutes(routes.health, _counters_only(bot))
        rows = []
        for label, app in (("prometheus-client alone (reference)", reference), ("bot", routes)):
            plain, size = scrape(app, args.scrapes, gzip=False)
            zipped, zsize = scrape(app, args.scrapes, gzip=True)
            rows.append((label, plain, size, zipped, zsize))
        bot.store.close()
    base = median(rows[0][1])
    print(f"`/metrics` with {args.deployments} deployments deploying and {args.deployments} "
          f"finished, {args.scrapes} scrapes, store "
          f"{'PostgreSQL' if args.postgres else 'SQLite'}\n")  # fmt: skip
    headers = ["served", "median ms", "p95 ms", "× reference", "bytes", "gzip median ms",
               "gzip bytes"]  # fmt: skip
    print(table(headers, [_row(*row, base) for row in rows]))
    print(f"\n{machine()}")


def _row(label, plain, size, zipped, zsize, base) -> tuple:
    ms = [f"{median(plain) * 1000:.2f}", f"{percentile(plain, 95) * 1000:.2f}"]
    return (label, *ms, f"{median(plain) / base:.2f}", size, f"{median(zipped) * 1000:.2f}", zsize)


def seed(bot, count: int) -> None:
    """`count` requests deploying and `count` done, and the counters of a day's work."""
    store, metrics = bot.store, bot.metrics
    now = datetime.now(UTC)
    for i in range(2 * count):
        request = Request(
            id=f"r-m{i:05d}",
            spec=DeploySpec(f"ns{100000 + i}.example.net", IMAGE_URL, "qcow2"),
            requester=REQUESTER,
            channel=CHANNEL,
            state=State.PENDING_APPROVAL,
            created_at=now,
            expires_at=now + timedelta(hours=1),
        )
        store.create(request, None)
        for was, to in STEPS:
            request, _ = store.transition(request.id, was, to, APPROVER, "bench", submitted_at=now)
        if i >= count:
            finished = now + timedelta(seconds=600 + i % 1200)
            request, _ = store.transition(
                request.id, State.DEPLOYING, State.DONE, "byoi-bot", "bench", finished_at=finished
            )
            metrics.deploy_finished(request)
    for route in {ovhcloud_route(f"/1.0{p}") for p in _paths()}:
        for status in ("200", "404", "429", "500", "503"):
            metrics.ovhcloud_calls.labels("GET", route, status).inc(count)
            metrics.ovhcloud_seconds.labels("GET", route).observe(0.08)
    for method in ("chat.postMessage", "chat.update", "reactions.add", "views.publish"):
        for error in ("ratelimited", "not_in_channel", "connection"):
            metrics.slack_error(method, error)
    for _ in range(count):
        metrics.preflight_bytes.observe(65536)
        metrics.preflights.labels("ok").inc()
        metrics.poll_cycles.observe(1.2)


def _paths() -> list[str]:
    from byoi_bot.ovhcloud.schema import document

    return [p.replace("{serviceName}", "ns1.example.net").replace("{taskId}", "7")
            for p in document()["paths"]]  # fmt: skip


def _counters_only(bot):
    """The bot's registry without the collector that reads the store and the process."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    for metric in (bot.metrics.deploys, bot.metrics.preflights, bot.metrics.preflight_bytes,
                   bot.metrics.slack_errors, bot.metrics.ovhcloud_calls,
                   bot.metrics.ovhcloud_seconds, bot.metrics.poll_cycles):  # fmt: skip
        registry.register(metric)
    return registry


def scrape(app, count: int, *, gzip: bool) -> tuple[list[float], int]:
    """Serve `app` and GET /metrics `count` times on one connection: times and size."""
    server = serve(app, 0, host="127.0.0.1")
    serve_in_thread(server)
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    times, size = [], 0
    try:
        for _ in range(count):
            started = time.perf_counter()
            conn.request("GET", "/metrics", headers=headers)
            answer = conn.getresponse()
            body = answer.read()
            times.append(time.perf_counter() - started)
            assert answer.status == 200
            size = len(body)
    finally:
        conn.close()
        server.stop(grace=1)
    return times, size


if __name__ == "__main__":
    main()

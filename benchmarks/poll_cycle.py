"""One poll cycle (`Poller.poll_all()`) over N active deployments (default 1,000).

The bot is the production wiring (`build_slack_bot`: store, `ReinstallProvider` over the real
`ovh.Client`, `SlackChat` over slack_sdk, the poller's pool of `BYOI_POLL_WORKERS`) in this
process; the OVHcloud simulator (N servers, a frozen clock moved by the script, each answer
held `--ovh-latency-ms` like a real round trip) and the fake Slack run in a child process,
so the wall time and memory figures are the bot's own. Counts: OVHcloud calls from the
simulator's call log, Slack calls from the fake Slack. Goals (issues 7 and 14): one OVHcloud
call per deployment, no Slack call when nothing changed, 1,000 deployments at 80 ms in
≤ 10 s, and one server answering 503 delays the others' cycle by < 1 s.

Since issue 13 the cycle only queues its posts in the outbox; the script sends them right
after each cycle, unpaced, so the Slack counts and the wall time still cover them.

Run: `python benchmarks/poll_cycle.py [--deployments 1000] [--ovh-latency-ms 80]
[--workers 16] [--json]` (`--json`: one JSON object on stdout instead of the tables).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

from benchlib import (
    APPROVER,
    BOT_TOKEN,
    SECRET,
    FrozenClock,
    Services,
    inventory,
    machine,
    ovh_calls_by_kind,
    parse_args,
    seed_deploying,
    server_names,
    table,
    vm_rss_kib,
    without_proxies,
)

from byoi_bot.config import Settings
from byoi_bot.core.states import State
from byoi_bot.ovhcloud.client import make_client
from byoi_bot.ovhcloud.provider import ReinstallProvider
from byoi_bot.simulator import DEMO_CREDENTIALS
from byoi_bot.slack.modes import build_slack_bot

DEPLOY_SECONDS = 700.0  # 7 install steps of 100 s
STEP = DEPLOY_SECONDS / 7


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument(
        "--task-check-every",
        type=int,
        default=10,
        help="ReinstallProvider's task_check_every (1: read the task at every poll, as before)",
    )
    parser.add_argument("--ovh-latency-ms", type=float, default=0.0)
    parser.add_argument("--workers", type=int, default=16, help="BYOI_POLL_WORKERS")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parse_args(parser, deployments=10)
    n = args.deployments
    without_proxies()
    with (
        Services(servers=n, deploy_seconds=DEPLOY_SECONDS) as services,
        tempfile.TemporaryDirectory(prefix="byoi-bench-") as tmp,
    ):
        clock = FrozenClock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
        settings = Settings.load(
            {
                "BYOI_DB": str(Path(tmp) / "byoi.db"),
                "BYOI_APPROVERS": APPROVER,
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": services.slack_url,
                "BYOI_POLL_WORKERS": str(args.workers),
            }
        )
        client = make_client(
            services.ovh_url, timeout=(5, 30), connections=args.workers, **DEMO_CREDENTIALS
        )
        provider = ReinstallProvider(client, task_check_every=args.task_check_every)
        bot, _ = build_slack_bot(
            settings, provider=provider, clock=clock, boot_ports=services.boot_ports().get
        )
        deployments = bot.deployments

        start = time.perf_counter()
        seed_deploying(deployments, provider, server_names(inventory(n)), clock)
        seeded = time.perf_counter() - start
        services.latency(args.ovh_latency_ms)  # after the setup: the cycles pay it
        rss_before = vm_rss_kib_self()

        figures: dict[str, dict] = {}

        def cycle(label: str, advance: float, traced: bool = False) -> list[object]:
            if advance:
                clock.advance(advance)
                services.advance(advance)
            ovh_before = len(services.ovh_calls())
            slack_before = services.slack_counts()
            if traced:
                tracemalloc.start()
            began = time.perf_counter()
            bot.poller.poll_all()
            bot.courier.drain()  # the outbox's posts, unpaced (outbox_drain.py paces them)
            wall = time.perf_counter() - began
            peak = ""
            if traced:
                peak = f"{tracemalloc.get_traced_memory()[1] / 2**20:.1f}"
                tracemalloc.stop()
            ovh = ovh_calls_by_kind(services.ovh_calls()[ovh_before:])
            slack_after = services.slack_counts()
            slack = {
                m: c - slack_before.get(m, 0)
                for m, c in slack_after.items()
                if c - slack_before.get(m, 0)
            }
            figures[label] = {
                "wall_s": round(wall, 3),
                "ovh_calls": sum(ovh.values()),
                "slack_calls": sum(slack.values()),
            }
            return [
                label + (" (under tracemalloc)" if traced else ""),
                sum(ovh.values()),
                f"{sum(ovh.values()) / n:.2f}",
                ", ".join(f"{k} {v}" for k, v in sorted(ovh.items())) or "-",
                sum(slack.values()),
                ", ".join(f"{k} {v}" for k, v in sorted(slack.items())) or "-",
                f"{wall:.2f}",
                f"{wall / n * 1000:.2f}",
                peak or "",
            ]

        failing = server_names(inventory(1))[0]
        rows = [
            cycle("1. first cycle, every status new", 20),
            cycle("2. nothing changed", 0),
        ]
        services.inject({"read_errors": {"status": 503, "count": 10**6}, "server": failing})
        rows.append(cycle("2b. nothing changed, one server answering 503", 0))
        services.clear_faults()
        rows.append(cycle("2c. nothing changed (again, for the drift)", 0))
        rows += [
            cycle("3. nothing changed", 0, traced=True),
            cycle("4. every deployment one step further", STEP),
            cycle("5. every deployment one step further", STEP, traced=True),
            cycle("6. every deployment done", DEPLOY_SECONDS),
        ]
        done = len(bot.store.in_states([State.DONE]))
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss_after = vm_rss_kib_self()
        bot.store.close()

    if args.json:
        quiet = figures["2. nothing changed"]
        again = figures["2c. nothing changed (again, for the drift)"]["wall_s"]
        failing_cycle = figures["2b. nothing changed, one server answering 503"]
        print(
            json.dumps(
                {
                    "deployments": n,
                    "ovh_latency_ms": args.ovh_latency_ms,
                    "workers": args.workers,
                    **quiet,
                    "one_server_503_wall_s": failing_cycle["wall_s"],
                    "one_server_503_delay_s": round(
                        failing_cycle["wall_s"] - (quiet["wall_s"] + again) / 2, 3
                    ),
                    "first_cycle": figures["1. first cycle, every status new"],
                }
            )
        )
        return
    print(
        f"## Poll cycle over {n} active deployments (reinstall API, "
        f"task_check_every={args.task_check_every}, {args.workers} poll workers, "
        f"{args.ovh_latency_ms:g} ms per OVHcloud answer)\n"
    )
    print(
        table(
            [
                "cycle",
                "OVHcloud calls",
                "per deployment",
                "by kind",
                "Slack calls",
                "Slack by method",
                "wall s",
                "ms per deployment",
                "peak traced MiB",
            ],
            rows,
        )
    )
    print()
    print(
        f"Setup (store, {n} cards, {n} start calls): {seeded:.1f} s. Deployments done after "
        f"cycle 6: {done}/{n}. Bot process RSS: {rss_before / 1024:.0f} MiB after setup, "
        f"{rss_after / 1024:.0f} MiB at the end, max RSS {maxrss / 1024:.0f} MiB. "
        "The simulator and the fake Slack run in a child process (not counted)."
    )
    print(machine())


def vm_rss_kib_self() -> int:
    import os

    return vm_rss_kib(os.getpid())


if __name__ == "__main__":
    main()

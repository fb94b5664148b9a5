"""One poll cycle (`Deployments.poll_all()`) over N active deployments (default 1,000).

The bot is the production wiring (`build_slack_bot`: store, `ReinstallProvider` over the real
`ovh.Client`, `SlackChat` over slack_sdk) in this process; the OVHcloud simulator (N servers,
a frozen clock moved by the script) and the fake Slack run in a child process, so the wall
time and memory figures are the bot's own. Counts: OVHcloud calls from the simulator's call
log, Slack calls from the fake Slack. Goals (issue 7): one OVHcloud call per deployment, no
Slack call when nothing changed.

Since issue 13 the cycle only queues its posts in the outbox; the script sends them right
after each cycle, unpaced, so the Slack counts and the wall time still cover them.

Run: `python benchmarks/poll_cycle.py [--deployments 1000] [--task-check-every 10]` (about a
minute for 1,000; `--task-check-every 1` reads the task at every poll: the provider's former
two calls per deployment).
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()
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
            }
        )
        client = make_client(services.ovh_url, timeout=(5, 30), **DEMO_CREDENTIALS)
        provider = ReinstallProvider(client, task_check_every=args.task_check_every)
        bot, _ = build_slack_bot(settings, provider=provider, clock=clock)
        deployments = bot.deployments

        start = time.perf_counter()
        seed_deploying(deployments, provider, server_names(inventory(n)), clock)
        seeded = time.perf_counter() - start
        rss_before = vm_rss_kib_self()

        def cycle(label: str, advance: float, traced: bool = False) -> list[object]:
            if advance:
                clock.advance(advance)
                services.advance(advance)
            ovh_before = len(services.ovh_calls())
            slack_before = services.slack_counts()
            if traced:
                tracemalloc.start()
            began = time.perf_counter()
            deployments.poll_all()
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

        rows = [
            cycle("1. first cycle, every status new", 20),
            cycle("2. nothing changed", 0),
            cycle("3. nothing changed", 0, traced=True),
            cycle("4. every deployment one step further", STEP),
            cycle("5. every deployment one step further", STEP, traced=True),
            cycle("6. every deployment done", DEPLOY_SECONDS),
        ]
        done = len(bot.store.in_states([State.DONE]))
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss_after = vm_rss_kib_self()
        bot.store.close()

    print(
        f"## Poll cycle over {n} active deployments (reinstall API, "
        f"task_check_every={args.task_check_every})\n"
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

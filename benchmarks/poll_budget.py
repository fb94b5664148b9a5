"""Polling within OVHcloud's API budget: calls in any 60-s window, and the delay from a step
change to its post, step timings against uniform round-robin on the same budget, in one run.

N deployments (`--deployments 100,1000`) start evenly over the first `--spread` seconds; each
installs through the 21 steps of `PROFILE` (~11 min, uneven like OVHcloud's: a few seconds to
two minutes each; a model, not a measurement). The simulator runs in this process on the
script's fake clock, which moves one second per tick; each tick runs the poller's budgeted
job once (`Poller.retry_due()`, a job every second in production) and lets its polls finish
(real time: a simulated hour takes a minute or two). The bot is the production wiring
(SQLite store, `ReinstallProvider` over the real `ovh.Client` whose every call takes a slot
of a `CallBudget` of `--budget` calls/min on the fake clock, the `Poller`). The deployments
are started through an unbudgeted client before the budget applies (setup, not measured),
with their servers' facts read as preflight does, so the boot gate knows each server's IP.

Measured per strategy: every OVHcloud call on the fake clock (the most in any 60-s window);
the delay from each step change in the simulator (its exact time, from the profile) to the
end of the first poll after which the bot holds that step or a later one, i.e. the moment
its thread reply and card edit are queued in the outbox (the outbox's own pace to Slack is
`outbox_drain.py`'s measure). `round-robin`: the least recently polled first, as many as the
budget allows; `step timings`: where a step is likely to have ended first (`core.poll_plan`).

Run: `python benchmarks/poll_budget.py [--deployments 100,1000] [--budget 60] [--json]`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from concurrent.futures import wait
from datetime import UTC, datetime
from pathlib import Path

from benchlib import (
    APPROVER,
    BOT_TOKEN,
    SECRET,
    FrozenClock,
    inventory,
    machine,
    parse_args,
    percentile,
    seed_deploying,
    server_names,
    table,
    without_proxies,
)
from fakes.slack_api import FakeSlack

from byoi_bot.config import Settings
from byoi_bot.core.budget import WINDOW, CallBudget
from byoi_bot.core.states import State
from byoi_bot.core.step_timings import position
from byoi_bot.ovhcloud.client import make_client, with_budget
from byoi_bot.ovhcloud.provider import ReinstallProvider, RoutingProvider
from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator
from byoi_bot.slack.modes import build_slack_bot

PROFILE = (
    ("Preparing installation", 5), ("Checking server hardware", 20),
    ("Configuring BIOS settings", 30), ("Rebooting into the installer", 90),
    ("Checking disks", 10), ("Cleaning disks", 45), ("Configuring hardware RAID", 15),
    ("Partitioning disks", 10), ("Downloading image", 120), ("Checking image checksum", 15),
    ("Converting image", 30), ("Writing image to disk", 90), ("Resizing partitions", 10),
    ("Creating config drive", 5), ("Writing config drive", 5), ("Setting up EFI boot entry", 5),
    ("Configuring boot loader", 10), ("Checking boot configuration", 5),
    ("Rebooting server", 90), ("Waiting for first boot", 45), ("Finishing installation", 5),
)  # fmt: skip
ENDS = list(itertools.accumulate(seconds for _, seconds in PROFILE))


def start_times(n: int, spread: float) -> list[float]:
    """When each of `n` deployments starts, in seconds: evenly over the first `spread`."""
    return [spread * i / n for i in range(n)]


def workload_arguments(parser: argparse.ArgumentParser) -> None:
    """The workload's options, shared with `poll_bound.py` (which bounds the same one)."""
    parser.add_argument("--deployments", default="100,1000", help="comma-separated sizes")
    parser.add_argument("--budget", type=int, default=60, help="calls per minute")
    parser.add_argument("--spread", type=float, default=300.0, help="seconds over which they start")


def run(n: int, budget_per_minute: int, spread: float, round_robin: bool) -> dict:
    """One strategy over `n` deployments; the measures as a dict."""
    clock = FrozenClock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
    start = clock.monotonic()
    servers = server_names(inventory(n))
    simulator = Simulator(
        inventory(n), clock=clock.monotonic, credentials=DEMO_CREDENTIALS, install_steps=PROFILE
    )
    url = simulator.start("127.0.0.1", 0)
    slack = FakeSlack(bot_token=BOT_TOKEN).start()
    calls: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="byoi-bench-") as tmp:
            settings = Settings.load(
                {"BYOI_DB": str(Path(tmp) / "byoi.db"), "BYOI_APPROVERS": APPROVER,
                 "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SECRET,
                 "SLACK_API_URL": slack.base_url}
            )  # fmt: skip
            budget = CallBudget(budget_per_minute, monotonic=clock.monotonic, recheck=0.005)
            client = with_budget(make_client(url, timeout=(5, 30), **DEMO_CREDENTIALS), budget)
            logged = client.call

            def counted(method, path, data=None, need_auth=True):
                calls.append(clock.monotonic() - start)
                return logged(method, path, data, need_auth)

            client.call = counted
            provider = RoutingProvider(ReinstallProvider(client), budget=budget)
            bot, _ = build_slack_bot(settings, provider=provider, clock=clock)
            bot.poller.round_robin = round_robin
            setup = ReinstallProvider(make_client(url, timeout=(5, 30), **DEMO_CREDENTIALS))
            began = time.perf_counter()
            delays = follow(bot, setup, servers, clock, start, spread, budget)
            wall = time.perf_counter() - began
            bot.poller.close()
            bot.store.close()
    finally:
        simulator.stop()
        slack.stop()
    window = max_in_window(calls)
    return {
        "deployments": n,
        "strategy": "round-robin" if round_robin else "step timings",
        "budget": budget_per_minute,
        "calls": len(calls),
        "max_calls_in_60s": window,
        "changes": len(delays),
        "median_s": percentile(delays, 50),
        "p95_s": percentile(delays, 95),
        "wall_s": round(wall, 1),
    }


def follow(
    bot, setup, servers: list[str], clock, start: float, spread: float, budget: CallBudget
) -> list[float]:
    """Tick until every deployment is seen done; the delay of every step change. Each tick
    waits for its polls to end, unless the budget is full (a poll then waits for time to
    pass, which only the next tick brings)."""
    n = len(servers)
    starts = start_times(n, spread)
    seen = [0] * n  # the bot's step index per deployment (len(PROFILE): done)
    delays: list[float] = []
    seeded, pending = 0, {}  # future -> request id
    while min(seen) < len(PROFILE):
        now = clock.monotonic() - start
        due = [i for i in range(seeded, n) if starts[i] <= now]
        if due:
            batch = servers[due[0] : due[-1] + 1]
            seed_deploying(bot.deployments, setup, batch, clock, due[0], facts=True)
            seeded = due[-1] + 1
        pending |= {f: i for i, f in bot.poller.retry_due().items()}
        done = settled(pending, budget)
        now = clock.monotonic() - start
        for future in done:
            request_id = pending.pop(future)
            i = int(request_id.removeprefix("r-b"))
            request = bot.store.get(request_id)
            ended = request.state is not State.DEPLOYING  # done, or on to the boot gate
            held = len(PROFILE) if ended else _index(request.progress)
            for step in range(seen[i] + 1, held + 1):  # each change now shown, with its delay
                delays.append(now - (starts[i] + ENDS[step - 1]))
            seen[i] = max(seen[i], held)
        clock.advance(1)
    return delays


def settled(pending: dict, budget: CallBudget) -> set:
    """The polls that end this tick: all of them, unless the budget is full (a poll waiting
    for a slot goes on when the clock has moved)."""
    for _ in range(500):
        done, running = wait(pending, timeout=0.01)
        if not running or budget.headroom() <= 0:
            break
    return done


def _index(progress: dict | None) -> int:
    where = position(progress)
    return where[0] if where else 0


def max_in_window(times: list[float]) -> int:
    """The most calls in any 60-s window (times sorted, as recorded)."""
    most, first = 0, 0
    for last, at in enumerate(times):
        while times[first] <= at - WINDOW:
            first += 1
        most = max(most, last - first + 1)
    return most


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    workload_arguments(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per run")
    args = parse_args(parser, deployments="5", spread=10.0)
    without_proxies()
    rows = []
    for n in (int(x) for x in args.deployments.split(",")):
        pair = [run(n, args.budget, args.spread, rr) for rr in (True, False)]
        rows += pair
        if args.json:
            for result in pair:
                print(json.dumps(result))
    if args.json:
        return
    headers = ["deployments", "strategy", "budget /min", "OVHcloud calls", "most in any 60 s",
               "step changes", "delay median s", "delay p95 s", "wall s"]  # fmt: skip
    print(table(headers, [[f"{v:,.0f}" if isinstance(v, float) else v for v in r.values()]
                          for r in rows]))  # fmt: skip
    print()
    for rr, smart in zip(rows[::2], rows[1::2], strict=True):
        ratio = smart["median_s"] / rr["median_s"] if rr["median_s"] else float("nan")
        most = max(rr["max_calls_in_60s"], smart["max_calls_in_60s"])
        print(
            f"{smart['deployments']} deployments: median delay, step timings / round-robin: "
            f"{ratio:.2f}× (goal ≤ 0.5×); most calls in any 60 s: {most} (budget {args.budget})"
        )
    print(machine())


if __name__ == "__main__":
    main()

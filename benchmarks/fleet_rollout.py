"""A deploy to many servers (issue 14): N servers, `parallel=P canary=K`, in the simulator.

The bot is the production wiring (`build_slack_bot`: store, `ReinstallProvider` over the
real `ovh.Client`, `SlackChat` over slack_sdk, the HTTP image inspector) in this process,
with the OVHcloud simulator (N servers, 7 install steps of 100 s), the fake Slack and the
demo image server on 127.0.0.1. Time is a frozen clock the script moves by `--step`
seconds; after each step the poller and the rollout job run once, as the scheduler would,
and the outbox is sent (unpaced).

Measured: Slack posts in the fleet's thread (goal: at most 2 per server plus 1 per wave),
peak concurrent installations (never above `parallel`), and the rollout's duration in
simulated time against the ideal (canary waves, then ceil(rest / parallel) waves, each one
installation long).

Run: `python benchmarks/fleet_rollout.py [--servers 200] [--parallel 20] [--canary 1]
[--json]`.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections import Counter
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
    table,
)
from fakes.slack_api import FakeSlack

from byoi_bot import commands
from byoi_bot.config import Settings
from byoi_bot.console.image_server import ImageServer
from byoi_bot.console.images import demo_images
from byoi_bot.core.fleet import RUNNING_STATES, FleetState
from byoi_bot.dispatch import run_command
from byoi_bot.ovhcloud.client import make_client
from byoi_bot.ovhcloud.provider import ReinstallProvider
from byoi_bot.preflight.inspector import HttpImageInspector
from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator
from byoi_bot.slack.modes import build_slack_bot

DEPLOY_SECONDS = 700.0
REQUESTER, CHANNEL = "U0ALICE", "C0OPS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--canary", type=int, default=1)
    parser.add_argument("--step", type=float, default=10.0, help="simulated seconds per tick")
    parser.add_argument("--json", action="store_true")
    args = parse_args(parser, servers=6, parallel=3)
    n = args.servers
    clock = FrozenClock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
    simulator = Simulator(inventory(n), DEPLOY_SECONDS, clock.monotonic, DEMO_CREDENTIALS)
    simulator.start("127.0.0.1", 0)
    slack = FakeSlack(bot_token=BOT_TOKEN).start()
    images = ImageServer(demo_images()).start()
    with tempfile.TemporaryDirectory(prefix="byoi-fleet-") as tmp:
        settings = Settings.load(
            {
                "BYOI_DB": str(Path(tmp) / "byoi.db"),
                "BYOI_APPROVERS": APPROVER,
                "BYOI_FLEET_LIMIT": str(n),
                "BYOI_URL_ALLOWLIST": "127.0.0.1/32",
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": slack.base_url,
            }
        )
        client = make_client(simulator.url, timeout=(5, 30), connections=16, **DEMO_CREDENTIALS)
        bot, _ = build_slack_bot(
            settings,
            provider=ReinstallProvider(client),
            inspector=HttpImageInspector(allowlist=("127.0.0.1/32",)),
            clock=clock,
            boot_ports=simulator.boots.port_of,
        )
        text = (
            f'deploy servers="ns*" {images.base_url}/debian-12.qcow2 efi-bootloader=x.efi '
            f"parallel={args.parallel} canary={args.canary}"
        )
        began = time.perf_counter()
        answer = run_command(
            bot.deployments, commands.parse(text, now=clock.now()), REQUESTER, CHANNEL
        )
        requested = time.perf_counter() - began
        fleet = bot.store.fleets_in_states([FleetState.PENDING_APPROVAL])[0]
        before = len(slack.calls)
        bot.fleets.approve(fleet.id, APPROVER)
        bot.courier.drain()  # the outbox's posts, unpaced (outbox_drain.py paces them)
        start, peak, ticks = clock.now(), 0, 0
        while bot.store.fleet(fleet.id).state is FleetState.RUNNING and ticks < 100_000:
            clock.advance(args.step)
            bot.poller.poll_all()
            bot.fleets.advance_all()
            bot.courier.drain()
            members = bot.store.fleet_members(fleet)
            peak = max(peak, sum(1 for m in members if m.state in RUNNING_STATES))
            ticks += 1
        took = (clock.now() - start).total_seconds()
        wall = time.perf_counter() - began
        fleet = bot.store.fleet(fleet.id)
        calls = slack.calls[before:]
        posts = [c for c in calls if c.method == "chat.postMessage"]
        by_kind = Counter(_kind(c.args.get("text", "")) for c in posts)
        waves = (
            1 + math.ceil((n - args.canary) / args.parallel)
            if args.canary
            else math.ceil(n / args.parallel)
        )
        ideal = waves * DEPLOY_SECONDS
        starts = sum(
            1
            for c in simulator.calls()
            if c["method"] == "POST" and c["path"].endswith("/reinstall")
        )
        figures = {
            "servers": n,
            "parallel": args.parallel,
            "canary": args.canary,
            "state": str(fleet.state),
            "start_calls": starts,
            "slack_posts": len(posts),
            "posts_by_kind": dict(by_kind),
            "post_goal": 2 * n + waves,
            "card_edits": sum(1 for c in calls if c.method == "chat.update"),
            "peak_installs": peak,
            "rollout_s": took,
            "ideal_s": ideal,
            "ratio_to_ideal": round(took / ideal, 3),
            "request_wall_s": round(requested, 2),
            "benchmark_wall_s": round(wall, 1),
        }
        bot.stop()
    simulator.stop()
    slack.stop()
    images.stop()
    if args.json:
        print(json.dumps(figures))
        return
    print(f"## A deploy to {n} servers, parallel={args.parallel} canary={args.canary}\n")
    print(table(["figure", "value"], [[k, v] for k, v in figures.items()]))
    print()
    print(answer.splitlines()[0])
    print(machine())


def _kind(text: str) -> str:
    for prefix, kind in (("▶️", "started"), ("✅ `", "done"), ("🔥", "failed"), ("🌊", "wave")):
        if text.startswith(prefix):
            return kind
    if text.startswith(("🏁", "🛑")):
        return "summary"
    return "approval"


if __name__ == "__main__":
    main()

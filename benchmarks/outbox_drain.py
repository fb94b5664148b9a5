"""1,000 active deployments on one channel, every one changing each poll cycle, against a
fake Slack that takes one `chat.postMessage` (and one `chat.update`) per channel per second
and answers 429 with `Retry-After` beyond that.

Measures what the outbox promises: 0 updates lost (every thread ends on its deployment's
latest step), 0 posts twice (outbox ids in message metadata), at most one post per channel
per second, and how long until the last thread is current. Time is scaled by `--scale`
(default 20: Slack's 1 s becomes 50 ms for both the fake's limit and the bot's pace, and the
20 s poll interval 1 s), so the run takes about a minute; figures are given in real seconds
and in Slack seconds (× scale). Everything runs in this process (bot, sender thread, fake
Slack, OVHcloud simulator), on the production wiring (`build_slack_bot`).

Run: `python benchmarks/outbox_drain.py [--deployments 1000] [--cycles 3] [--scale 20]
[--bot-pace 1.0]` (`--bot-pace 0.5`: the sender tries twice Slack's pace, so the fake answers
429 and the sender waits out each `Retry-After`).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from benchlib import (
    APPROVER,
    BOT_TOKEN,
    CHANNEL,
    SECRET,
    FrozenClock,
    inventory,
    machine,
    parse_args,
    seed_deploying,
    server_names,
    table,
    without_proxies,
)
from fakes.slack_api import FakeSlack

from byoi_bot.config import Settings
from byoi_bot.core.states import State
from byoi_bot.ovhcloud.client import make_client
from byoi_bot.ovhcloud.provider import ReinstallProvider
from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator
from byoi_bot.slack.modes import build_slack_bot

DEPLOY_SECONDS = 7 * 100.0  # 7 install steps of 100 s: each cycle moves every one a step
STEP = 100.0
POLL_SECONDS = 20.0
METHODS = ("chat.postMessage", "chat.update")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--scale", type=float, default=20.0)
    parser.add_argument(
        "--bot-pace",
        type=float,
        default=1.0,
        help="the bot's pace as a share of Slack's (0.5: it tries twice as fast and meets 429s)",
    )
    args = parse_args(parser, deployments=10, cycles=1)
    n, interval = args.deployments, 1.0 / args.scale
    without_proxies()
    clock = FrozenClock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
    servers = inventory(n)
    simulator = Simulator(servers, DEPLOY_SECONDS, clock.monotonic, DEMO_CREDENTIALS)
    ovh_url = simulator.start("127.0.0.1", 0)
    slack = FakeSlack(bot_token=BOT_TOKEN).start()
    with tempfile.TemporaryDirectory(prefix="byoi-bench-") as tmp:
        settings = Settings.load(
            {
                "BYOI_DB": str(Path(tmp) / "byoi.db"),
                "BYOI_APPROVERS": APPROVER,
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": slack.base_url,
            }
        )
        provider = ReinstallProvider(make_client(ovh_url, timeout=(5, 30), **DEMO_CREDENTIALS))
        bot, _ = build_slack_bot(
            settings,
            provider=provider,
            clock=clock,
            post_interval=interval * args.bot_pace,
            boot_ports=simulator.boots.port_of,
        )
        print(f"seeding {n} deploying requests…", flush=True)
        seed_deploying(bot.deployments, provider, server_names(servers), clock)
        slack.limit_per_channel(interval, METHODS)
        since = len(slack.calls)
        began = time.time()
        bot.sender.start()
        cycle_seconds = []
        for _ in range(args.cycles):
            start = time.monotonic()
            clock.advance(STEP)
            bot.poller.poll_all()
            cycle_seconds.append(time.monotonic() - start)
            time.sleep(max(0.0, POLL_SECONDS * interval - (time.monotonic() - start)))
        polled = time.time()
        backlog_at_end = bot.store.backlog()
        bot.sender.wait_empty(timeout=3 * n * interval + 120)
        current = time.time()
        bot.sender.stop()

        calls = slack.calls[since:]
        accepted = {m: [c for c in calls if c.method == m and c.ok] for m in METHODS}
        refused = Counter(c.method for c in calls if c.status == 429)
        ids = [c.args["metadata"]["event_payload"]["post"] for c in accepted["chat.postMessage"]]
        requests = bot.store.in_states([State.DEPLOYING])
        lost = 0
        for request in requests:
            doing = next(s["name"] for s in request.progress["steps"] if s["status"] == "doing")
            thread = slack.messages(CHANNEL, thread_ts=request.message_ts)
            if not thread or f"{doing} (doing)" not in thread[-1]["text"]:
                lost += 1
            card = slack.message(CHANNEL, request.message_ts)
            if doing not in str(card["blocks"]) and request.last_status not in str(card):
                lost += 1
        gaps = {
            m: min((b.time - a.time for a, b in itertools.pairwise(v)), default=float("inf"))
            for m, v in accepted.items()
        }
        bot.store.close()
    simulator.stop()
    slack.stop()

    drain = current - polled
    rows = [
        ["deployments on one channel", f"{n:,}"],
        ["poll cycles (every deployment changed in each)", args.cycles],
        ["poll cycle wall time (s, no Slack call in it)", f"{max(cycle_seconds):.2f} max"],
        ["posts waiting when the last cycle ended", f"{backlog_at_end:,}"],
        ["thread posts sent (after coalescing)", f"{len(accepted['chat.postMessage']):,}"],
        ["card edits sent (after coalescing)", f"{len(accepted['chat.update']):,}"],
        ["429 answers (Retry-After honoured)", dict(refused) or 0],
        ["updates lost (thread or card not on the latest step)", lost],
        ["posts sent twice (same outbox id)", len(ids) - len(set(ids))],
        [
            "max posts per channel per Slack second",
            f"{1 if gaps['chat.postMessage'] >= interval * 0.999 else '>1'} "
            f"(closest two: {gaps['chat.postMessage'] / interval:.2f} Slack s apart)",
        ],
        [
            "last thread current, after the last cycle",
            f"{drain:.1f} s real = {drain * args.scale / 60:.1f} Slack min",
        ],
        ["whole run from the first cycle", f"{current - began:.1f} s real"],
    ]
    print(
        f"## Outbox: {n:,} deployments on one channel, time scale 1:{args.scale:g}, "
        f"bot pace {args.bot_pace:g}× Slack's\n"
    )
    print(table(["measure", "value"], rows))
    print()
    print(machine())


if __name__ == "__main__":
    main()

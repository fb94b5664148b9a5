"""Load cases of issue 7, sized to run in seconds: they assert counts, never times.

The benchmarks in benchmarks/ measure the same scenarios at full size (1,000 requests,
1,000 deployments); these tests run them small and reuse the benchmarks' own helpers
(`benchmarks/benchlib.py`), so the benchmarks cannot rot unnoticed. No sleeps: the bot and
the simulator share a clock that only the test moves.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bot_harness import CHANNEL, REQUESTER, SECRET, BotHarness, ack_answer
from fakes.signing import post_signed, slash_command_body
from fakes.slack_api import FakeSlack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from benchlib import (
    APPROVER,
    FrozenClock,
    inventory,
    ovh_calls_by_kind,
    seed_deploying,
    server_names,
)

from byoi_bot.config import Settings
from byoi_bot.core.states import State
from byoi_bot.ovhcloud.client import make_client
from byoi_bot.ovhcloud.provider import ReinstallProvider
from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator
from byoi_bot.slack.modes import build_slack_bot

COMMANDS = 300
CLIENTS = 6
DEPLOYMENTS = 200
DEPLOY_SECONDS = 700.0  # 7 steps of 100 s
TEXTS = (
    "help",
    "list",
    "list all",
    "status r-zzzzzz",
    "deploy ns1001.ip-51-75-1.eu ftp://images.example.net/debian-12.qcow2",
    "deploy not_a_server! https://images.example.net/debian-12.qcow2",
    "deploy ns1001.ip-51-75-1.eu https://images.example.net/a.qcow2 checksum=nope",
)


def test_300_signed_slash_commands_are_all_acked_and_answered_once(tmp_path):
    h = BotHarness(tmp_path)
    try:
        statuses: list[int] = []
        in_acks: list[str] = []
        lock = threading.Lock()
        numbers = iter(range(COMMANDS))

        def client() -> None:
            for i in numbers:
                body = slash_command_body(
                    TEXTS[i % len(TEXTS)],
                    user_id=REQUESTER,
                    channel_id=CHANNEL,
                    response_url=h.slack.response_url(f"load-{i}"),
                )
                status, text = post_signed(h.url, body, SECRET)
                with lock:
                    statuses.append(status)
                    if ack_answer(text):  # help and command errors: answered in the ack
                        in_acks.append(f"load-{i}")

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [200] * COMMANDS

        def answered() -> Counter:
            return Counter([*(c.name for c in h.slack.calls_to("response_url")), *in_acks])

        h.slack.wait_for(lambda: len(answered()) == COMMANDS, timeout=30)
        assert answered() == Counter({f"load-{i}": 1 for i in range(COMMANDS)})
        assert all(c.ok for c in h.slack.calls_to("response_url"))
        assert h.slack.calls_to("chat.postMessage") == [], "nothing posted in a channel"
        assert [c for c in h.simulator.calls() if c["path"] != "/1.0/auth/time"] == []
        assert h.bot.store.recent(1) == []
    finally:
        h.close()


@pytest.fixture
def fleet(tmp_path):
    """DEPLOYMENTS requests deploying on the simulator, a bot over the fake Slack."""
    clock = FrozenClock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
    servers = inventory(DEPLOYMENTS)
    simulator = Simulator(servers, DEPLOY_SECONDS, clock.monotonic, DEMO_CREDENTIALS)
    simulator.start("127.0.0.1", 0)
    slack = FakeSlack().start()
    settings = Settings.load(
        {
            "BYOI_DB": str(tmp_path / "byoi.db"),
            "BYOI_APPROVERS": APPROVER,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.base_url,
        }
    )
    provider = ReinstallProvider(make_client(simulator.url, timeout=(2, 5), **DEMO_CREDENTIALS))
    bot, _ = build_slack_bot(
        settings, provider=provider, clock=clock, boot_ports=simulator.boots.port_of
    )
    seed_deploying(bot.deployments, provider, server_names(servers), clock)
    try:
        yield bot, simulator, slack, clock
    finally:
        bot.store.close()
        simulator.stop()
        slack.stop()


def test_a_poll_cycle_costs_one_ovhcloud_call_per_deployment_and_no_post_unchanged(fleet):
    bot, simulator, slack, clock = fleet
    assert len(bot.store.in_states([State.DEPLOYING])) == DEPLOYMENTS

    def cycle(advance: float) -> tuple[dict[str, int], Counter]:
        clock.advance(advance)
        ovh_before, slack_before = len(simulator.calls()), len(slack.calls)
        bot.poller.poll_all()
        bot.courier.drain()  # what the outbox's sender does next, paced
        ovh = ovh_calls_by_kind(simulator.calls()[ovh_before:])
        return ovh, Counter(c.method for c in slack.calls[slack_before:])

    ovh, posts = cycle(20)  # every deployment has a first status to tell
    assert ovh == {"GET install/status": DEPLOYMENTS}
    assert posts == {"chat.postMessage": DEPLOYMENTS, "chat.update": DEPLOYMENTS}

    ovh, posts = cycle(0)  # the clock stands still: nothing changed
    assert ovh == {"GET install/status": DEPLOYMENTS}
    assert posts == Counter(), "no Slack call when nothing changed"

    ovh, posts = cycle(DEPLOY_SECONDS / 7)  # every deployment one step further
    assert ovh == {"GET install/status": DEPLOYMENTS}
    assert posts == {"chat.postMessage": DEPLOYMENTS, "chat.update": DEPLOYMENTS}

    ovh, posts = cycle(DEPLOY_SECONDS)  # all done: the task tells how each one ended, and
    assert ovh == {  # the boot gate reads each server's IP once (its facts: 2 reads)
        "GET install/status": DEPLOYMENTS,
        "GET task/{id}": DEPLOYMENTS,
        "GET server": DEPLOYMENTS,
        "GET specifications/hardware": DEPLOYMENTS,
    }
    assert posts == {"chat.postMessage": DEPLOYMENTS, "chat.update": DEPLOYMENTS}
    assert len(bot.store.in_states([State.DONE])) == DEPLOYMENTS

    ovh, posts = cycle(60)  # nothing left to follow
    assert ovh == {} and posts == Counter()

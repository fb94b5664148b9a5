"""A card's first post goes through the outbox (issue 18): paced per channel with the thread
replies, never cancelled because Slack asked to wait, never posted twice after a lost answer,
and given up only when the channel refuses it (the requester told by DM when nobody waits)."""

from __future__ import annotations

import dataclasses
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from core_fixtures import request as stored_request
from fakes.slack_api import FakeSlack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import itertools

from benchlib import APPROVER, CHANNEL, REQUESTER, FrozenClock, inventory, server_names

from byoi_bot.config import Settings
from byoi_bot.console.image_server import ImageServer
from byoi_bot.console.images import demo_images
from byoi_bot.core.outbox import NEW, Post
from byoi_bot.core.request import DeploySpec
from byoi_bot.core.service import Refused
from byoi_bot.core.states import State
from byoi_bot.ovhcloud.client import make_client
from byoi_bot.ovhcloud.provider import ReinstallProvider
from byoi_bot.preflight.inspector import HttpImageInspector
from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator
from byoi_bot.slack.modes import build_slack_bot

pytestmark = pytest.mark.timeout(90)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_PACE = 0.1  # Slack's 1 post/s per channel, scaled down 10×
EFI = "\\efi\\debian\\grubx64.efi"


class Paced:
    """A bot whose outbox sender runs for real against a fake Slack pacing one channel."""

    def __init__(self, db: str, servers: int, sender_interval: float) -> None:
        self.clock = FrozenClock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
        world = inventory(servers)
        self.servers = server_names(world)
        self.simulator = Simulator(world, 700.0, self.clock.monotonic, DEMO_CREDENTIALS)
        self.simulator.start("127.0.0.1", 0)
        self.images = ImageServer(demo_images()).start()
        self.slack = FakeSlack().start()
        env = {
            "BYOI_DB": db,
            "BYOI_APPROVERS": APPROVER,
            "SLACK_BOT_TOKEN": self.slack.bot_token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": self.slack.base_url,
        }
        client = make_client(self.simulator.url, timeout=(2, 5), **DEMO_CREDENTIALS)
        self.bot, _ = build_slack_bot(
            Settings.load(env),
            provider=ReinstallProvider(client),
            inspector=HttpImageInspector(allowlist=("127.0.0.1/32",)),
            clock=self.clock,
            post_interval=sender_interval,
        )

    def spec(self, server: str) -> DeploySpec:
        url = f"{self.images.base_url}/debian-12.qcow2"
        return DeploySpec(server, url, "qcow2", efi_bootloader=EFI)

    def deploy_at_once(self, count: int) -> list[object]:
        """`count` deploys requested at the same moment; each one's request or `Refused`."""
        results: list[object] = [None] * count
        start = threading.Barrier(count)

        def ask(i: int) -> None:
            start.wait()
            try:
                results[i] = self.bot.deployments.request(
                    self.spec(self.servers[i]), REQUESTER, CHANNEL
                )
            except Refused as exc:
                results[i] = exc

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return results

    def cards(self) -> list[dict]:
        return [m for m in self.slack.messages(CHANNEL) if m["blocks"] and not m["thread_ts"]]

    def close(self) -> None:
        self.bot.sender.stop()
        self.bot.store.close()
        self.simulator.stop()
        self.images.stop()
        self.slack.stop()


@pytest.fixture
def paced(db_location):
    made: list[Paced] = []

    def make(servers: int, sender_interval: float = SLACK_PACE) -> Paced:
        made.append(Paced(db_location, servers, sender_interval))
        return made[-1]

    yield make
    for p in made:
        p.close()


@pytest.mark.parametrize("count", [5, 10, 20])
def test_deploys_at_once_in_one_channel_are_all_posted_at_slacks_pace(paced, count):
    """Slack takes 1 post/s (scaled); the sender tries 5× faster: 429s, nothing cancelled."""
    p = paced(count, sender_interval=SLACK_PACE / 5)
    p.slack.limit_per_channel(SLACK_PACE)
    p.bot.sender.start()
    results = p.deploy_at_once(count)
    assert not [r for r in results if isinstance(r, Refused)], results
    p.bot.sender.wait_empty(timeout=30)
    requests = [p.bot.store.get(r.id) for r in results]
    assert all(r.state is State.PENDING_APPROVAL and r.message_ts for r in requests)
    cards = p.cards()
    assert len(cards) == count, "one card per request, none twice"
    assert sorted(c["ts"] for c in cards) == sorted(r.message_ts for r in requests)
    assert all(len(p.slack.reactions(CHANNEL, c["ts"])) == 2 for c in cards), "✅ ❌ offered"
    posted = [c.time for c in p.slack.accepted("chat.postMessage", CHANNEL)]
    assert all(b - a >= SLACK_PACE * 0.9 for a, b in itertools.pairwise(posted))
    if count >= 10:
        assert [c for c in p.slack.calls_to("chat.postMessage") if c.status == 429]


def test_a_card_posted_but_answered_5xx_is_found_in_the_channel_not_posted_twice(paced):
    p = paced(1)
    p.slack.fail_next("chat.postMessage", error="internal_error", status=500, after_handling=True)
    p.bot.sender.first_probe = 0.01
    p.bot.sender.start()
    (request,) = p.deploy_at_once(1)
    assert not isinstance(request, Refused), request
    assert p.bot.sender.wait_empty(timeout=20)
    (card,) = p.cards()
    assert p.bot.store.get(request.id).message_ts == card["ts"]
    assert len(p.slack.calls_to("conversations.history")) == 1
    assert len(p.slack.reactions(CHANNEL, card["ts"])) == 2


@pytest.mark.parametrize("error", ["not_in_channel", "is_archived", "channel_not_found"])
def test_a_card_the_channel_refuses_after_nobody_waits_is_told_by_dm(paced, error):
    p = paced(1)
    request = dataclasses.replace(stored_request("r-dm0001"), channel=CHANNEL)
    request_id = request.id
    p.bot.store.create(request, None)
    p.slack.fail_next("chat.postMessage", error=error, status=200)
    p.bot.store.on_enqueue = lambda: None
    p.bot.store.enqueue([Post.new_card(request)])
    (head,) = p.bot.store.heads()
    assert head.post.kind == NEW and head.lane == (CHANNEL, "reply")
    p.bot.courier.drain()  # nobody waits: the requester is told by DM
    assert p.bot.store.get(request_id).state is State.CANCELLED
    (dm,) = p.slack.dms(request.requester)
    assert request_id in dm and "cancelled" in dm

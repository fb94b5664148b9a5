"""The outbox: posts stored with their change, coalesced, paced, never lost, never doubled."""

from __future__ import annotations

import itertools
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakes.slack_api import FakeSlack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from benchlib import APPROVER, CHANNEL, FrozenClock, inventory, seed_deploying, server_names

from byoi_bot.config import Settings
from byoi_bot.core.posts import Post
from byoi_bot.core.states import IllegalTransition, State
from byoi_bot.ovhcloud.client import make_client
from byoi_bot.ovhcloud.provider import ReinstallProvider
from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator
from byoi_bot.slack.modes import build_slack_bot
from byoi_bot.store import Store, open_store

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DEPLOY_SECONDS = 700.0  # 7 steps of 100 s
STEP = DEPLOY_SECONDS / 7
PACE = 0.05  # one post per channel every 50 ms: Slack's 1 s, scaled down 20×


@pytest.fixture
def fleet(db_location):
    """Deployments on one channel, a bot whose sender runs for real against a paced fake Slack."""

    def make(count: int):
        clock = FrozenClock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
        servers = inventory(count)
        simulator = Simulator(servers, DEPLOY_SECONDS, clock.monotonic, DEMO_CREDENTIALS)
        simulator.start("127.0.0.1", 0)
        slack = FakeSlack().start()
        env = {
            "BYOI_DB": db_location,
            "BYOI_APPROVERS": APPROVER,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.base_url,
        }
        provider = ReinstallProvider(make_client(simulator.url, timeout=(2, 5), **DEMO_CREDENTIALS))
        bot, _ = build_slack_bot(
            Settings.load(env), provider=provider, clock=clock, post_interval=PACE
        )
        seed_deploying(bot.deployments, provider, server_names(servers), clock)
        parts.append((bot, simulator, slack))
        return bot, slack, clock

    parts: list = []
    yield make
    for bot, simulator, slack in parts:
        bot.sender.stop()
        bot.store.close()
        simulator.stop()
        slack.stop()


def post_ids(slack: FakeSlack) -> list[int]:
    return [
        c.args["metadata"]["event_payload"]["post"]
        for c in slack.accepted("chat.postMessage")
        if c.args.get("thread_ts")
    ]


def test_every_thread_ends_current_at_one_post_per_channel_pace_none_twice(fleet):
    bot, slack, clock = fleet(12)
    slack.limit_per_channel(PACE, methods=("chat.postMessage", "chat.update"))
    start = time.time()
    bot.sender.start()
    for _ in range(3):  # every deployment changes each cycle, faster than the posts drain
        clock.advance(STEP)
        bot.poller.poll_all()

    assert bot.sender.wait_empty(timeout=20)
    for request in bot.store.in_states([State.DEPLOYING]):
        thread = [m["text"] for m in slack.messages(CHANNEL, thread_ts=request.message_ts)]
        doing = next(s["name"] for s in request.progress["steps"] if s["status"] == "doing")
        assert thread and f"{doing} (doing)" in thread[-1], "the thread shows the latest step"
    ids = post_ids(slack)
    assert len(ids) == len(set(ids)), "a post went out twice"
    assert len(ids) < 3 * 12, "waiting progress posts were coalesced"
    for method in ("chat.postMessage", "chat.update"):
        times = [c.time for c in slack.accepted(method, CHANNEL) if c.time >= start]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= PACE * 0.9, (method, min(gaps))


def test_a_lost_answer_is_not_posted_again(fleet):
    bot, slack, clock = fleet(1)
    bot.store.on_enqueue = lambda: None  # the test drains by hand
    slack.fail_next("chat.postMessage", error="internal_error", status=500, after_handling=True)
    clock.advance(STEP)
    bot.poller.poll_all()
    bot.courier.drain()  # posted, but the answer is a 500: maybe posted
    assert bot.store.backlog() == 1  # the post, unsure (the card edit went out)
    bot.courier.drain()  # reads the thread, finds its outbox id, does not post again
    (request,) = bot.store.in_states([State.DEPLOYING])
    thread = slack.messages(CHANNEL, thread_ts=request.message_ts)
    assert len(thread) == 1 and "🚧" in thread[0]["text"]
    assert bot.store.backlog() == 0
    assert len(slack.calls_to("conversations.replies")) == 1


def test_a_post_cut_short_by_a_crash_is_checked_before_it_is_sent_again(fleet, db_location):
    bot, _, clock = fleet(1)
    bot.store.on_enqueue = lambda: None
    clock.advance(STEP)
    bot.poller.poll_all()
    (head, *_) = bot.store.heads()
    bot.store.claim(head.id)  # the process dies while this post is on its way
    reopened = open_store(db_location)
    reopened.resume_sending()  # what the next sender does first (here or on another replica)
    try:
        (again, *_) = reopened.heads()
        assert again.id == head.id and again.unsure and again.attempts == 1
    finally:
        reopened.close()


def test_waiting_progress_posts_and_card_edits_keep_only_the_latest(db_location, make_request):
    store = open_store(db_location)
    request = make_request(store)
    for i in range(3):
        store.update(
            request.id,
            [Post.reply(request, f"progress {i}", latest_only=True), Post.card(request)],
            last_status=f"step {i}",
        )
    store.enqueue([Post.reply(request, "done")])
    queued = store.heads()
    assert [(q.post.kind, q.post.text) for q in queued] == [("reply", "progress 2"), ("card", "")]
    assert store.backlog() == 3  # progress 2, the card, "done"
    store.close()


def test_posts_are_written_with_their_change_or_not_at_all(db_location, make_request):
    store = open_store(db_location)
    request = make_request(store)
    with pytest.raises(IllegalTransition):
        store.transition(
            request.id, State.APPROVED, State.SUBMITTING, "x", posts=lambda r: [Post.card(r)]
        )
    assert store.backlog() == 0

    def broken(changed):
        raise RuntimeError("cannot say it")

    with pytest.raises(RuntimeError):
        store.transition(request.id, State.PENDING_APPROVAL, State.CANCELLED, "x", posts=broken)
    assert store.get(request.id).state is State.PENDING_APPROVAL, "no change without its post"
    store.transition(
        request.id, State.PENDING_APPROVAL, State.CANCELLED, "x", posts=lambda r: [Post.card(r)]
    )
    assert store.backlog() == 1
    store.close()


@pytest.fixture
def make_request():
    from core_fixtures import request as new_request

    def make(store: Store):
        r = new_request()
        store.create(r, None)
        store.update(r.id, message_ts="1.000100")
        return store.get(r.id)

    return make

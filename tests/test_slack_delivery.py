"""Nothing lost on Slack (issue 18): a refused token, Slack's events about it, health."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import threading

import pytest
from bot_harness import APPROVER, CHANNEL, REQUESTER, SECRET, BotHarness
from fakes.signing import event_body, post_signed

from byoi_bot.core import messages
from byoi_bot.core.states import State

pytestmark = pytest.mark.timeout(60)

DONE_CARD = "✅ *done*"
EFI = 'efi-bootloader="\\efi\\debian\\grubx64.efi"'
SERVER = "ns1001.ip-51-75-1.eu"


@pytest.fixture
def h(tmp_path):
    harness = BotHarness(tmp_path, approvers=(APPROVER,))
    yield harness
    harness.close()


def deploying(h: BotHarness) -> dict:
    h.simulator.world.deploy_seconds = 70.0
    assert h.slash(f"deploy {SERVER} {h.images.base_url}/debian-12.qcow2 {EFI}") == 200
    card = h.wait_card()
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "started at OVHcloud")
    return card


def refusals(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_refused_token_keeps_every_post_until_it_works_again(h, caplog):
    card = deploying(h)
    thread_before = h.thread(card["ts"])
    h.slack.token_error = "token_revoked"
    h.poll(advance=30)
    h.poll(advance=60)  # the deployment ends while Slack refuses the token
    assert h.bot.store.recent(1)[0].state is State.DONE
    assert h.thread(card["ts"]) == thread_before
    assert h.bot.store.backlog() >= 2, "the end and the card's redraw wait in the outbox"
    (line,) = refusals(caplog)  # one line, however many posts were refused
    assert "SLACK_BOT_TOKEN" in line and "token_revoked" in line
    state = h.bot.courier.health.state()
    assert not state.ok and "SLACK_BOT_TOKEN" in state.reason

    h.slack.token_error = None  # an operator fixed it: the sender's probe finds out
    h.bot.sender.first_probe = 0.01
    h.bot.store.on_enqueue = h.bot.sender.wake
    h.bot.sender.start()
    assert h.bot.sender.wait_empty(timeout=10)
    assert h.bot.courier.health.ok
    h.wait_thread(card["ts"], "is done in")
    assert DONE_CARD in str(h.slack.message(CHANNEL, card["ts"])["blocks"])
    assert [r for r in refusals(caplog)] == [line], "no more errors"
    assert h.slack.calls_to("auth.test"), "the token was probed"


def test_posts_queued_under_a_refused_token_go_out_after_a_restart(h):
    card = deploying(h)
    h.slack.token_error = "invalid_auth"
    h.poll(advance=90)
    assert h.bot.store.recent(1)[0].state is State.DONE and h.bot.store.backlog() >= 2
    h.slack.token_error = None  # the new token, and a restart
    h.restart()
    h.bot.courier.drain()
    h.wait_thread(card["ts"], "is done in")
    assert DONE_CARD in str(h.slack.message(CHANNEL, card["ts"])["blocks"])
    assert h.bot.store.backlog() == 0


@pytest.mark.parametrize("kind", ["tokens_revoked", "app_uninstalled"])
def test_slack_saying_the_token_is_gone_is_logged_and_turns_health_red(h, caplog, kind):
    event = {"type": kind}
    if kind == "tokens_revoked":
        event["tokens"] = {"bot": ["UBOT"]}
    assert post_signed(h.url, event_body(event), SECRET)[0] == 200
    h.slack.wait_for(lambda: not h.bot.courier.health.ok)
    (line,) = [r.getMessage() for r in caplog.records if kind in r.getMessage()]
    assert "SLACK_BOT_TOKEN" in line
    assert readiness_of_slack(h) is False, "not ready while the token is refused"
    h.bot.courier.health.accepted()
    assert readiness_of_slack(h) is True


def readiness_of_slack(h) -> bool:
    """`/readyz`'s Slack check on the harness's HTTP server."""
    conn = http.client.HTTPConnection("127.0.0.1", h.server.server_port, timeout=5)
    try:
        conn.request("GET", "/readyz")
        return json.loads(conn.getresponse().read())["checks"]["slack"]["ok"]
    finally:
        conn.close()


def test_the_app_home_shows_a_refused_token(h):
    h.bot.courier.health.refused("Slack refused SLACK_BOT_TOKEN (token_revoked)")
    event = {"type": "app_home_opened", "user": APPROVER, "channel": "D0HOME", "tab": "home"}
    assert post_signed(h.url, event_body(event), SECRET)[0] == 200
    call = h.slack.wait_for_call("views.publish")
    health = str(call.args["view"]["blocks"][-1])
    assert "Slack token:* ⛔ refused" in health and "SLACK_BOT_TOKEN" in health


class _Seen(logging.Handler):
    def __init__(self, needle: str) -> None:
        super().__init__()
        self.needle, self.event = needle, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.event.set()


@contextlib.contextmanager
def logged(needle: str):
    """Expect a log line containing `needle` from what the block starts (on any thread);
    the root logger's last handler, so pytest's own has the line once this one saw it."""
    seen = _Seen(needle)
    logging.getLogger().addHandler(seen)
    try:
        yield
        assert seen.event.wait(10), f"no log line with {needle!r}"
    finally:
        logging.getLogger().removeHandler(seen)


def test_log_lines_about_failed_slack_calls_carry_slacks_error_code(h):
    h.slack.fail_next("views.publish", error="invalid_blocks", status=200)
    event = {"type": "app_home_opened", "user": APPROVER, "channel": "D0HOME", "tab": "home"}
    with logged("slack views.publish failed: invalid_blocks"):
        assert post_signed(h.url, event_body(event), SECRET)[0] == 200

    deploying(h)
    h.slack.fail_next("chat.update", error="channel_not_found", status=200)
    with logged("slack chat.update failed: channel_not_found"):
        h.poll(advance=20)


@pytest.mark.parametrize("error", ["is_archived", "not_in_channel", "channel_not_found"])
def test_a_channel_that_refuses_the_bot_mid_deploy_is_told_to_the_requester_by_dm(h, caplog, error):
    deploying(h)
    h.slack.channel_errors[CHANNEL] = error  # archived, or the bot removed, mid-deploy
    with logged(f"told {REQUESTER} about"):
        h.poll(advance=30)
    (first,) = h.slack.dms(REQUESTER)
    assert "can no longer post" in first and "outcome will be sent here" in first
    with logged("by DM (outcome)"):
        h.poll(advance=60)
    assert h.bot.store.recent(1)[0].state is State.DONE
    h.bot.courier.drain()
    h.bot.courier.drain()  # every later refusal: no more messages
    dms = h.slack.dms(REQUESTER)
    assert len(dms) == 2 and "is done" in dms[1], dms
    assert caplog.text.count(f"told {REQUESTER} about") == 2


def test_a_card_asked_for_while_the_token_is_refused_is_posted_once_it_works(h):
    """A command acked just before the token went: its card waits, it is not cancelled."""
    from byoi_bot.core.request import DeploySpec

    h.bot.deployments.card_wait = 0.2
    spec = DeploySpec(SERVER, f"{h.images.base_url}/debian-12.qcow2", "qcow2", efi_bootloader="x")
    h.slack.token_error = "account_inactive"
    request = h.bot.deployments.request(spec, "U0ALICE", CHANNEL)
    assert "its card appears" in messages.requested(request)
    assert h.bot.store.get(request.id).state is State.PENDING_APPROVAL
    assert not h.bot.courier.health.ok and h.cards() == []
    h.slack.token_error = None
    assert h.bot.courier.probe()
    h.bot.courier.drain()
    card = h.wait_card()
    assert h.bot.store.get(request.id).message_ts == card["ts"]

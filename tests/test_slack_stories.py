"""Whole stories through signed HTTP requests to /slack/events (SPEC section 2, step by step)."""

import pytest
from bot_harness import (
    APPROVER,
    APPROVER_2,
    CHANNEL,
    OUTSIDER,
    REQUESTER,
    BotHarness,
)

from byoi_bot.core.states import State

SERVER = "ns1001.ip-51-75-1.eu"


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def harness(tmp_path):
    h = BotHarness(tmp_path)
    yield h
    h.close()


def deploy(h: BotHarness, server: str = SERVER, image: str = "debian-12.qcow2", extra: str = ""):
    efi = 'efi-bootloader="\\efi\\debian\\grubx64.efi"'
    text = f"deploy {server} {h.images.base_url}/{image} {efi} {extra}"
    assert h.slash(text.strip()) == 200
    return h.wait_card()


def state_of(h: BotHarness) -> State:
    return h.bot.store.recent(1)[0].state


def test_request_card_approval_deploy_and_done(harness):
    h = harness
    card = deploy(h)
    text = str(card["blocks"])
    assert "ERASES ALL DATA" in text and "EFI partition: found" in text
    assert h.slack.reactions(CHANNEL, card["ts"]).keys() >= {"white_check_mark", "x"}
    assert any(b["type"] == "actions" for b in card["blocks"])

    h.react(REQUESTER, ts=card["ts"])
    h.slack.wait_for_call("chat.postEphemeral", where=lambda c: c.args["user"] == REQUESTER)
    h.react(OUTSIDER, ts=card["ts"])
    h.slack.wait_for_call("chat.postEphemeral", where=lambda c: c.args["user"] == OUTSIDER)
    assert state_of(h) is State.PENDING_APPROVAL

    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "started at OVHcloud")
    assert h.starts() == 1
    assert state_of(h) is State.DEPLOYING

    h.poll(advance=15)
    posts = len(h.thread(card["ts"]))
    h.poll(advance=0)
    assert len(h.thread(card["ts"])) == posts, "no post when nothing changed"
    h.poll(advance=60)
    thread = h.wait_thread(card["ts"], "is done in")
    assert f"<@{REQUESTER}>" in thread[-1]
    assert any("🚧" in t for t in thread), "progress was posted in the thread"
    assert state_of(h) is State.DONE and h.starts() == 1
    final = h.slack.message(CHANNEL, card["ts"])
    assert "done" in str(final["blocks"]) and not any(
        b["type"] == "actions" for b in final["blocks"]
    )


def test_rejection_ends_the_request_without_any_call(harness):
    h = harness
    card = deploy(h)
    h.react(APPROVER, "x", ts=card["ts"])
    h.wait_thread(card["ts"], "rejected")
    assert state_of(h) is State.REJECTED and h.starts() == 0


def test_expiry(harness):
    h = harness
    card = deploy(h)
    h.clock.advance(31 * 60)
    h.bot.jobs.sweep()
    h.wait_thread(card["ts"], "expired")
    assert state_of(h) is State.EXPIRED


def test_withdrawal_by_removing_the_reaction(tmp_path):
    h = BotHarness(tmp_path, required=2)
    try:
        card = deploy(h)
        h.react(APPROVER, ts=card["ts"])
        h.wait_thread(card["ts"], "approved (1/2)")
        h.react(APPROVER, ts=card["ts"], added=False)
        h.wait_thread(card["ts"], "withdrew")
        h.react(APPROVER_2, ts=card["ts"])
        h.wait_thread(card["ts"], f"<@{APPROVER_2}> approved (1/2)")
        assert state_of(h) is State.PENDING_APPROVAL and h.starts() == 0
    finally:
        h.close()


def test_a_retried_event_delivery_counts_once(tmp_path):
    h = BotHarness(tmp_path, required=2)
    try:
        card = deploy(h)
        for _ in range(3):
            assert h.react(APPROVER, ts=card["ts"], event_id="Ev0SAME") == 200
        h.react(APPROVER_2, ts=card["ts"], event_id="Ev0OTHER")
        h.wait_thread(card["ts"], "started at OVHcloud")
        approvals = [t for t in h.thread(card["ts"]) if f"<@{APPROVER}> approved" in t]
        assert len(approvals) == 1 and h.starts() == 1
    finally:
        h.close()


def test_a_second_request_for_a_busy_server_is_refused(harness):
    h = harness
    deploy(h)
    h.slash(f"deploy {SERVER} {h.images.base_url}/debian-12.raw")
    answer = h.wait_answer("already has an active request")
    assert "/byoi cancel" in answer
    assert len(h.cards()) == 1


def test_preflight_refusal_posts_no_card(harness):
    h = harness
    h.slash(f"deploy {SERVER} {h.images.base_url}/rescue.iso type=raw")
    h.wait_answer("format")
    assert h.cards() == [] and h.bot.store.recent(1) == []


def test_invalid_command_gets_a_precise_ephemeral_error(harness):
    h = harness
    h.slash(f"deploy {SERVER} ftp://example.net/a.qcow2")
    answer = h.wait_answer("http")
    assert "Example" in answer or "example" in answer
    assert h.bot.store.recent(1) == []


def test_a_restart_in_the_middle_resumes_with_one_start_call(harness):
    h = harness
    card = deploy(h)
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "started at OVHcloud")
    h.poll(advance=10)
    h.restart()
    h.poll(advance=120)
    h.wait_thread(card["ts"], "is done in")
    assert state_of(h) is State.DONE and h.starts() == 1


def test_help_status_and_list_are_ephemeral(harness):
    h = harness
    h.slash("help")
    h.wait_answer("deploy")
    card = deploy(h)
    h.slash("list")
    listing = h.wait_answer("Active requests")
    assert SERVER in listing
    h.slash(f"status {SERVER}")
    h.wait_answer("pending_approval")
    assert h.slack.messages(channel=CHANNEL, thread_ts=card["ts"]) == []


def test_socket_mode_delivers_a_slash_command_and_a_reaction(harness):
    from fakes.signing import event_payload, reaction_event, slash_command_payload
    from fakes.socket_mode import FakeSocketMode
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    h = harness
    with FakeSocketMode() as fsm:
        h.slack.attach_socket_mode(fsm)
        handler = SocketModeHandler(h.app, app_token=h.slack.app_token)
        try:
            handler.connect()
            fsm.wait_connected()
            text = f"deploy {SERVER} {h.images.base_url}/debian-12.qcow2 efi-bootloader=x.efi"
            command = slash_command_payload(
                text, user_id=REQUESTER, channel_id=CHANNEL, response_url=h.slack.response_url()
            )
            assert fsm.wait_ack(fsm.send_envelope("slash_commands", command)) == {}
            card = h.wait_card()
            event = reaction_event(user=APPROVER, channel=CHANNEL, ts=card["ts"])
            fsm.wait_ack(fsm.send_envelope("events_api", event_payload(event)))
            h.wait_thread(card["ts"], "started at OVHcloud")
            assert h.starts() == 1
        finally:
            fsm.close_handler(handler)

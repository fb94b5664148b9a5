"""Whole stories through signed HTTP requests to /slack/events (SPEC section 2, step by step)."""

from datetime import timedelta

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


@pytest.fixture
def harness(tmp_path, db_location):
    h = BotHarness(tmp_path, db=db_location)
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
            ack = fsm.wait_ack(fsm.send_envelope("slash_commands", command))
            assert ack["text"].startswith(f"Checking `{SERVER}`")  # the ack says it is on it
            card = h.wait_card()
            event = reaction_event(user=APPROVER, channel=CHANNEL, ts=card["ts"])
            fsm.wait_ack(fsm.send_envelope("events_api", event_payload(event)))
            h.wait_thread(card["ts"], "started at OVHcloud")
            assert h.starts() == 1
        finally:
            fsm.close_handler(handler)


def approve_and_start(h: BotHarness, card: dict) -> None:
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "started at OVHcloud")


def test_an_installer_failure_ends_in_a_readable_error(harness):
    h = harness
    h.simulator.inject(
        server=SERVER,
        install_error=f"Could not download image located: {h.images.base_url}/debian-12.qcow2",
        at_step=1,
    )
    card = deploy(h)
    approve_and_start(h, card)
    h.poll(advance=30)
    failure = h.wait_thread(card["ts"], "failed")[-1]
    assert f"<@{REQUESTER}>" in failure
    assert "Likely cause:" in failure and "What to do:" in failure
    assert "> Could not download image located:" in failure
    assert state_of(h) is State.FAILED and h.starts() == 1
    audit = h.bot.store.audit(h.bot.store.recent(1)[0].id)
    assert audit[-1]["to_state"] == "failed" and "download_failed" in audit[-1]["reason"]


def test_deploy_without_arguments_opens_the_form_and_its_submission_posts_a_card(harness):
    from fakes.signing import post_signed as post
    from fakes.signing import view_submission_body

    h = harness
    h.slash("deploy")
    opened = h.slack.wait_for_call("views.open")
    view = opened.args["view"]
    assert view["callback_id"] == "byoi_deploy_form"
    assert {b["block_id"] for b in view["blocks"]} >= {"server", "url", "user-data", "header"}
    values = {
        "server": {"value": SERVER},
        "url": {"value": f"{h.images.base_url}/debian-12.qcow2"},
        "efi-bootloader": {"value": "\\efi\\debian\\grubx64.efi"},
        "user-data": {"value": "#cloud-config\nruncmd: [echo hi]\n"},
    }
    body = view_submission_body(
        "byoi_deploy_form", values, user_id=REQUESTER, private_metadata=view["private_metadata"]
    )
    status, text = post(h.url, body, "8f742231b10e8888abcd99aaabbb85a5")
    assert status == 200 and "errors" not in text
    card = h.wait_card()
    request = h.bot.store.recent(1)[0]
    assert request.requester == REQUESTER and request.spec.server == SERVER
    assert h.bot.store.secrets(request.id)["user_data"].startswith("#cloud-config")
    assert card["ts"] == request.message_ts


def test_an_invalid_form_is_answered_on_the_field(harness):
    from fakes.signing import post_signed as post
    from fakes.signing import view_submission_body

    h = harness
    body = view_submission_body(
        "byoi_deploy_form",
        {"server": {"value": SERVER}, "url": {"value": "ftp://nope/a.qcow2"}},
        user_id=REQUESTER,
        private_metadata='{"channel": "C0OPS"}',
    )
    status, text = post(h.url, body, "8f742231b10e8888abcd99aaabbb85a5")
    assert status == 200
    assert '"response_action":"errors"' in text.replace(" ", "") and '"url"' in text


def test_buttons_count_like_reactions(harness):
    from fakes.signing import block_action_body
    from fakes.signing import post_signed as post

    h = harness
    card = deploy(h)
    request_id = h.bot.store.recent(1)[0].id
    body = block_action_body(
        "byoi_approve", request_id, user_id=APPROVER, channel_id=CHANNEL, message_ts=card["ts"]
    )
    assert post(h.url, body, "8f742231b10e8888abcd99aaabbb85a5")[0] == 200
    h.wait_thread(card["ts"], "started at OVHcloud")
    assert h.starts() == 1


def test_a_scheduled_deploy_starts_at_its_time(harness):
    h = harness
    at = h.clock.now() + timedelta(hours=3)  # relative to the bot's clock, never to today
    card = deploy(h, extra=f"at={at:%Y-%m-%dT%H:%M:%SZ}")
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "Scheduled: the deployment starts at <!date^")
    assert f"|{at:%Y-%m-%d %H:%M} UTC>" in h.thread(card["ts"])[-1]  # each reader: local time
    assert state_of(h) is State.APPROVED and h.starts() == 0
    job = h.bot.jobs.scheduler.get_job(f"submit:{h.bot.store.recent(1)[0].id}")
    assert job is not None
    h.clock.advance(3 * 3600)
    job.func(*job.args)  # what APScheduler runs at 12:00
    h.wait_thread(card["ts"], "started at OVHcloud")
    assert h.starts() == 1


def test_checks_run_again_at_submission_and_stop_the_deploy(harness):
    h = harness
    card = deploy(h)
    h.images.images.pop("/debian-12.qcow2")  # the image disappeared after the request
    h.react(APPROVER, ts=card["ts"])
    failure = h.wait_thread(card["ts"], "failed")[-1]
    assert "nothing was sent" in failure and "reachable" in failure
    assert h.starts() == 0 and state_of(h) is State.FAILED


def test_heartbeat_while_nothing_changes_then_a_stall_warning(harness):
    h = harness
    card = deploy(h)
    approve_and_start(h, card)
    h.poll(advance=1)
    quiet = len(h.thread(card["ts"]))
    h.clock.advance(4 * 60)  # the installer makes no progress: only the bot's time moves
    h.bot.poller.poll_all()
    assert len(h.thread(card["ts"])) == quiet, "no heartbeat before 5 minutes"
    h.clock.advance(61)
    h.bot.poller.poll_all()
    assert "Still running" in h.thread(card["ts"])[-1]
    h.clock.advance(30 * 60)
    h.bot.poller.poll_all()
    assert "far beyond the usual" in h.thread(card["ts"])[-1]
    h.clock.advance(60)
    h.bot.poller.poll_all()
    h.sim_clock.advance(9)  # the installer moves on a step: a new status post …
    h.bot.poller.poll_all()
    h.clock.advance(60)
    h.bot.poller.poll_all()
    assert sum("far beyond" in t for t in h.thread(card["ts"])) == 1, "… but one stall warning"
    assert state_of(h) is State.DEPLOYING

"""Who may request, approve and cancel (SPEC section 2, step 4), through the running bot.

Policies come from a TOML file (`BYOI_CONFIG`) and the environment. Every refusal is an
answer to the person alone (ephemeral or response_url), and nothing is stored or counted.
"""

from __future__ import annotations

import textwrap

import pytest
from bot_harness import (
    APPROVER,
    APPROVER_2,
    CHANNEL,
    OUTSIDER,
    REQUESTER,
    SECRET,
    BotHarness,
)
from fakes.signing import block_action_body, post_signed, slash_command_body
from raw_sql import execute

from byoi_bot.core.states import State
from byoi_bot.slack.app import NOT_THIS_CARD
from byoi_bot.slack.cards import APPROVE_ACTION, REJECT_ACTION

PROD = "ns1001.ip-51-75-1.eu"  # policy "prod": channel, requesters, requester listed as approver
TEAMS = "ns2002.ip-51-75-2.eu"  # policy "teams": one approver from each of two groups
LEGACY = "ns3003.ip-51-75-3.eu"  # policy "legacy": the /bringYourOwnImage API
IMPOSSIBLE = "ns5005.ip-149-56-5.net"  # policy "impossible": can never be met by ALICE
DEPLOYER, NET_1, NET_2, SYS_1 = "U0ERIN", "U0NET1", "U0NET2", "U0SYS1"
OTHER_CHANNEL = "C0ELSEWHERE"
EFI = 'efi-bootloader="\\efi\\debian\\grubx64.efi"'
POLICIES = f"""
    [[policy]]
    name = "prod"
    pattern = "ns1001*"
    approvers = ["{APPROVER}", "{APPROVER_2}", "{REQUESTER}"]
    required_approvals = 1
    allowed_channels = ["{CHANNEL}"]
    requesters = ["{REQUESTER}", "S0DEPLOY"]

    [[policy]]
    name = "teams"
    pattern = "ns2002*"
    approvers = ["S0NET", "S0SYS"]
    required_approvals = 2
    one_from_each_group = true

    [[policy]]
    name = "legacy"
    pattern = "ns3003*"
    api = "legacy"

    [[policy]]
    name = "impossible"
    pattern = "ns5005*"
    approvers = ["{REQUESTER}", "{APPROVER}"]
    required_approvals = 2
"""


@pytest.fixture
def h(tmp_path, db_location):
    config = tmp_path / "byoi.toml"
    config.write_text(textwrap.dedent(POLICIES))
    harness = BotHarness(tmp_path, extra_env={"BYOI_CONFIG": str(config)}, db=db_location)
    harness.slack.set_usergroup("S0DEPLOY", [DEPLOYER])
    harness.slack.set_usergroup("S0NET", [NET_1, NET_2])
    harness.slack.set_usergroup("S0SYS", [SYS_1])
    yield harness
    harness.close()


@pytest.fixture
def quorum_of_two(tmp_path, db_location):
    """No policy file: the environment's default policy, BOB and CAROL, quorum 2."""
    harness = BotHarness(tmp_path, required=2, db=db_location)
    yield harness
    harness.close()


# ----------------------------------------------------------------------------- helpers


def slash(h: BotHarness, text: str, user: str = REQUESTER, channel: str = CHANNEL) -> None:
    body = slash_command_body(
        text, user_id=user, channel_id=channel, response_url=h.slack.response_url(user)
    )
    assert post_signed(h.url, body, SECRET)[0] == 200


def deploy(h: BotHarness, server: str, user: str = REQUESTER, count: int = 1) -> tuple[dict, str]:
    legacy = h.bot.deployments.policies.for_server(server).api == "legacy"
    efi = "" if legacy else EFI  # the legacy API has no efiBootloaderPath
    slash(h, f"deploy {server} {h.images.base_url}/debian-12.qcow2 {efi}", user=user)
    card = h.wait_card(count)
    request = h.bot.store.by_message(CHANNEL, card["ts"])
    return card, request.id


def press(h: BotHarness, action: str, request_id: str, user: str, on_ts: str) -> None:
    body = block_action_body(
        action,
        request_id,
        user_id=user,
        channel_id=CHANNEL,
        message_ts=on_ts,
        response_url=h.slack.response_url(user),
    )
    assert post_signed(h.url, body, SECRET)[0] == 200


def ephemeral_to(h: BotHarness, user: str, needle: str) -> str:
    call = h.slack.wait_for_call(
        "chat.postEphemeral", where=lambda c: c.args["user"] == user and needle in c.args["text"]
    )
    return call.args["text"]


def approvals(h: BotHarness, request_id: str) -> list[str]:
    return h.bot.store.approvals(request_id, h.bot.store.get(request_id).fingerprint)


def state(h: BotHarness, request_id: str) -> State:
    return h.bot.store.get(request_id).state


def card_text(h: BotHarness, ts: str) -> str:
    return str(h.slack.message(CHANNEL, ts)["blocks"])


def assert_ephemeral_answers(h: BotHarness, user: str) -> None:
    for body in h.slack.responses(user):
        assert body.get("response_type") != "in_channel"


# ----------------------------------------------------------------------------- requesting


def test_a_request_from_another_channel_is_refused_and_not_stored(h):
    slash(h, f"deploy {PROD} {h.images.base_url}/debian-12.qcow2 {EFI}", channel=OTHER_CHANNEL)
    answer = h.wait_answer("not requested in this channel")
    assert "ns1001*" in answer
    assert_ephemeral_answers(h, REQUESTER)
    assert h.cards() == [] and h.bot.store.recent(5) == []
    assert h.slack.calls_to("chat.postMessage") == []


def test_only_listed_requesters_and_group_members_may_request(h):
    slash(h, f"deploy {PROD} {h.images.base_url}/debian-12.qcow2 {EFI}", user=OUTSIDER)
    answer = h.wait_answer("not allowed to request", user=OUTSIDER)
    assert "`prod`" in answer
    assert_ephemeral_answers(h, OUTSIDER)
    assert h.cards() == [] and h.bot.store.recent(5) == []

    _, request_id = deploy(h, PROD, user=DEPLOYER)  # a member of the S0DEPLOY group
    assert h.bot.store.get(request_id).requester == DEPLOYER
    assert "is posted" in h.wait_answer("is posted", user=DEPLOYER)


def test_servers_under_the_default_policy_accept_anyone_anywhere(h):
    slash(
        h,
        f"deploy {LEGACY} {h.images.base_url}/debian-12.qcow2",
        user=OUTSIDER,
        channel=CHANNEL,
    )
    h.wait_card()
    assert h.bot.store.recent(1)[0].requester == OUTSIDER


# ----------------------------------------------------------------------------- approving


def test_only_approvers_approve_by_reaction_or_button(h):
    card, request_id = deploy(h, PROD)
    h.react(OUTSIDER, ts=card["ts"])
    assert "not an approver" in ephemeral_to(h, OUTSIDER, "not counted")
    press(h, APPROVE_ACTION, request_id, OUTSIDER, card["ts"])
    h.slack.wait_for(lambda: len(h.slack.calls_to("chat.postEphemeral")) >= 2)
    press(h, REJECT_ACTION, request_id, OUTSIDER, card["ts"])
    assert "rejection was not counted" in ephemeral_to(h, OUTSIDER, "rejection")
    h.react(OUTSIDER, "x", ts=card["ts"])
    h.slack.wait_for(lambda: len(h.slack.calls_to("chat.postEphemeral")) >= 4)
    assert approvals(h, request_id) == [] and state(h, request_id) is State.PENDING_APPROVAL
    refusals = [a for a in h.bot.store.audit(request_id) if a["action"].endswith("_refused")]
    assert {a["actor"] for a in refusals} == {OUTSIDER} and len(refusals) == 4
    assert h.starts() == 0

    press(h, APPROVE_ACTION, request_id, APPROVER, card["ts"])
    h.wait_thread(card["ts"], "started at OVHcloud")
    assert h.starts() == 1


def test_the_requesters_own_approval_never_counts_even_when_listed_as_approver(h):
    card, request_id = deploy(h, PROD)
    h.react(REQUESTER, ts=card["ts"])
    assert "someone else has to approve" in ephemeral_to(h, REQUESTER, "not counted")
    press(h, APPROVE_ACTION, request_id, REQUESTER, card["ts"])
    h.slack.wait_for(
        lambda: (
            sum(c.args["user"] == REQUESTER for c in h.slack.calls_to("chat.postEphemeral")) >= 2
        )
    )
    assert approvals(h, request_id) == [] and state(h, request_id) is State.PENDING_APPROVAL
    assert h.starts() == 0
    h.react(APPROVER_2, ts=card["ts"])
    h.wait_thread(card["ts"], "started at OVHcloud")
    assert h.starts() == 1


def test_an_approval_on_one_card_never_counts_for_another(quorum_of_two):
    h = quorum_of_two
    card_a, a = deploy(h, PROD)
    card_b, b = deploy(h, LEGACY, count=2)
    h.react(APPROVER, ts=card_a["ts"])
    h.wait_thread(card_a["ts"], "approved (1/2)")
    assert approvals(h, a) == [APPROVER] and approvals(h, b) == []

    # A press on card A whose value names request B (a forged or stale payload): the safe
    # behaviour is that it counts for neither, and the presser is told why.
    press(h, APPROVE_ACTION, b, APPROVER_2, card_a["ts"])
    answer = h.slack.wait_for(lambda: h.slack.responses(APPROVER_2))[0]
    assert answer["text"] == NOT_THIS_CARD and answer["replace_original"] is False
    press(h, REJECT_ACTION, a, APPROVER_2, card_b["ts"])
    h.slack.wait_for(lambda: len(h.slack.responses(APPROVER_2)) == 2)
    assert approvals(h, a) == [APPROVER] and approvals(h, b) == []
    assert state(h, a) is State.PENDING_APPROVAL and state(h, b) is State.PENDING_APPROVAL
    assert h.thread(card_b["ts"]) == []

    press(h, APPROVE_ACTION, a, APPROVER_2, card_a["ts"])  # on its own card, it counts
    h.wait_thread(card_a["ts"], "started at OVHcloud")
    assert state(h, b) is State.PENDING_APPROVAL and h.starts() == 1


def test_approvals_are_bound_to_what_was_shown(quorum_of_two):
    """An approval is of one fingerprint: if the request's content changed, it is void."""
    h = quorum_of_two
    card, request_id = deploy(h, PROD)
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "approved (1/2)")
    # what an edited request would look like in the store
    execute(h.bot.store, "UPDATE requests SET fingerprint = ? WHERE id = ?", ["0" * 64, request_id])
    assert approvals(h, request_id) == []
    h.react(APPROVER_2, ts=card["ts"])
    h.wait_thread(card["ts"], f"<@{APPROVER_2}> approved (1/2)")
    assert state(h, request_id) is State.PENDING_APPROVAL and h.starts() == 0


def test_one_approver_from_each_group_is_needed(h):
    card, request_id = deploy(h, TEAMS)
    assert "<!subteam^S0NET>" in card_text(h, card["ts"])
    h.react(NET_1, ts=card["ts"])
    h.wait_thread(card["ts"], f"<@{NET_1}> approved (1/2)")
    h.react(NET_2, ts=card["ts"])
    second = h.wait_thread(card["ts"], f"<@{NET_2}> approved (2/2)")[-1]
    assert "Still needed: one approver from <!subteam^S0SYS>" in second
    assert state(h, request_id) is State.PENDING_APPROVAL and h.starts() == 0
    h.slack.wait_for(lambda: "Still needed" in card_text(h, card["ts"]))
    h.react(SYS_1, ts=card["ts"])
    h.wait_thread(card["ts"], "started at OVHcloud")
    assert h.starts() == 1


def test_a_policy_that_can_never_be_met_says_so_on_the_card(h):
    card, _ = deploy(h, IMPOSSIBLE)
    text = card_text(h, card["ts"])
    assert "This request can never be approved" in text
    assert "needs 2 approval(s) but only 1 approver(s) besides the requester" in text


# ----------------------------------------------------------------------------- cancelling


def start(h: BotHarness, server: str) -> tuple[dict, str]:
    card, request_id = deploy(h, server)
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "started at OVHcloud")
    assert state(h, request_id) is State.DEPLOYING
    return card, request_id


def test_a_running_reinstall_past_its_image_write_cannot_be_cancelled_and_says_why(h):
    _, request_id = start(h, PROD)
    slash(h, f"cancel {request_id}")
    assert "needs an approver other than the requester" in h.wait_answer("already deploying")
    h.sim_clock.advance(30)  # "Write image to disk": the simulator refuses to cancel now
    slash(h, f"cancel {request_id}", user=APPROVER)
    answer = h.wait_answer("refused to cancel", user=APPROVER)
    assert "What to do" in answer and "rescue" in answer
    assert state(h, request_id) is State.DEPLOYING
    cancels = [c for c in h.simulator.calls() if c["path"].endswith("/cancel")]
    assert [c["status"] for c in cancels] == [400]


def test_a_running_legacy_deploy_is_cancelled_by_an_approver_only(h):
    card, request_id = start(h, LEGACY)
    assert any(
        c["method"] == "POST" and c["path"].endswith("/bringYourOwnImage")
        for c in h.simulator.calls()
    )
    slash(h, f"cancel {request_id}", user=OUTSIDER)
    h.wait_answer("already deploying", user=OUTSIDER)
    slash(h, f"cancel {request_id}")
    h.wait_answer("already deploying")
    assert not [c for c in h.simulator.calls() if c["method"] == "DELETE"]

    slash(h, f"cancel {request_id}", user=APPROVER_2)
    assert "is cancelled" in h.wait_answer("cancelled", user=APPROVER_2)
    deletes = [c for c in h.simulator.calls() if c["method"] == "DELETE"]
    assert [(c["path"], c["status"]) for c in deletes] == [
        (f"/1.0/dedicated/server/{LEGACY}/bringYourOwnImage", 200)
    ]
    assert state(h, request_id) is State.CANCELLED
    h.wait_thread(card["ts"], f"was cancelled by <@{APPROVER_2}>")

"""A fleet is approved server by server: each server's own policy (approvers, quorum, one per
group, channel, requesters, TTL) must be met, through the same decision as a single request.

The issue-18 story: policy `production` (server A: its own approvers, channel, requesters)
and `lab` (server B, approver BOB). ALICE may not ask for A alone; asking for B and A
together must not let BOB's ✅ wipe A.
"""

from __future__ import annotations

import textwrap

import pytest
from bot_harness import APPROVER, APPROVER_2, CHANNEL, OUTSIDER, REQUESTER, BotHarness

from byoi_bot.core.fleet import FleetState
from byoi_bot.core.states import State

BOB, CAROL, DAVE, ALICE = APPROVER, APPROVER_2, OUTSIDER, REQUESTER
ERIN, FRANK, NET_1, SYS_1 = "U0ERIN", "U0FRANK", "U0NET1", "U0SYS1"
A = "ns1001.ip-51-75-1.eu"  # production
B = "ns3003.ip-51-75-3.eu"  # lab
C = "ns5005.ip-149-56-5.net"  # teams: one approver from each of two groups
D = "ns2002.ip-51-75-2.eu"  # no policy names it: the catch-all default (BOB, CAROL)
POLICIES = f"""
    [[policy]]
    name = "production"
    pattern = "ns1001*"
    approvers = ["{CAROL}", "{DAVE}"]
    allowed_channels = ["{CHANNEL}"]
    requesters = ["{ERIN}"]
    approval_ttl = "60m"

    [[policy]]
    name = "lab"
    pattern = "ns3003*"
    approvers = ["{BOB}", "{ERIN}"]
    approval_ttl = "10m"

    [[policy]]
    name = "teams"
    pattern = "ns5005*"
    approvers = ["S0NET", "S0SYS"]
    required_approvals = 2
    one_from_each_group = true
"""


@pytest.fixture
def h(tmp_path, db_location):
    config = tmp_path / "byoi.toml"
    config.write_text(textwrap.dedent(POLICIES))
    harness = BotHarness(tmp_path, extra_env={"BYOI_CONFIG": str(config)}, db=db_location)
    harness.slack.set_usergroup("S0NET", [NET_1, BOB])
    harness.slack.set_usergroup("S0SYS", [SYS_1])
    yield harness
    harness.close()


def ask(h: BotHarness, servers: str, user: str = ERIN, extra: str = "") -> str:
    """`/byoi deploy` of the demo image to `servers`; the answer `user` got."""
    url = f"{h.images.base_url}/debian-12.qcow2"
    before = len(final_answers(h, user))
    h.slash(f"deploy {servers} {url} efi-bootloader=x.efi {extra}", user=user)
    h.slack.wait_for(lambda: len(final_answers(h, user)) > before)
    return final_answers(h, user)[-1]


def final_answers(h: BotHarness, user: str) -> list[str]:
    return [a for a in h.answers(user) if not a.startswith("Checking")]


def fleet(h: BotHarness):
    return h.bot.store.fleets_in_states(list(FleetState))[-1]


def members(h: BotHarness) -> dict[str, State]:
    return {m.spec.server: m.state for m in h.bot.store.fleet_members(fleet(h))}


# -- the story ---------------------------------------------------------------------


def test_a_server_its_policy_refuses_is_not_reached_through_a_fleet(h):
    assert "not allowed to request deployments under policy `production`" in ask(h, A, ALICE)
    answer = ask(h, f"{B},{A}", ALICE)
    assert f"`{A}` (policy `production`)" in answer
    assert "not allowed to request deployments under policy `production`" in answer
    assert h.cards() == [] and h.bot.store.fleets_in_states(list(FleetState)) == []
    assert h.starts() == 0


def test_bobs_vote_starts_only_what_his_policy_covers(h):
    """Even asked by someone both policies let ask, BOB (lab) cannot approve A."""
    assert "Fleet request" in ask(h, f"{B},{A}", ERIN)
    card = h.wait_card()
    h.react(BOB, ts=card["ts"])
    h.wait_thread(card["ts"], "approved")
    h.bot.fleets.advance_all()
    assert members(h) == {A: State.PENDING_APPROVAL, B: State.PENDING_APPROVAL}
    assert fleet(h).state is FleetState.PENDING_APPROVAL and h.starts() == 0
    h.react(CAROL, ts=card["ts"])
    h.wait_thread(card["ts"], "Started:")
    assert fleet(h).state is FleetState.RUNNING and h.starts() >= 1


# -- votes count per server ----------------------------------------------------------------


def card_text(h: BotHarness, ts: str, needle: str) -> str:
    """The card's text once it shows `needle` (redraws are queued after thread posts)."""
    h.slack.wait_for(lambda: needle in str(h.slack.message(CHANNEL, ts)["blocks"]))
    return str(h.slack.message(CHANNEL, ts)["blocks"])


def told(h: BotHarness, user: str) -> list[str]:
    return [m["text"] for m in h.slack.messages(CHANNEL) if m.get("to_user") == user]


def approvals(h: BotHarness) -> dict[str, list[str]]:
    store = h.bot.store
    return {
        m.spec.server: sorted(store.approvals(m.id, m.fingerprint))
        for m in store.fleet_members(fleet(h))
    }


def test_a_voter_in_two_policies_counts_for_both_and_each_policy_says_what_it_needs(h):
    ask(h, f"{B},{C}")
    card = h.wait_card()
    text = str(card["blocks"])
    assert "every server's own policy must be met" in text
    assert f"• `lab` (`{B}`): 0/1" in text and f"• `teams` (`{C}`): 0/2" in text
    h.react(BOB, ts=card["ts"])  # lab lists BOB; teams lists his group S0NET
    thread = h.wait_thread(card["ts"], "approved:")
    assert approvals(h) == {B: [BOB], C: [BOB]}
    assert "`lab` 1/1 ✔, `teams` 1/2" in thread[-1]
    assert "one approver from <!subteam^S0SYS>" in thread[-1]
    redrawn = card_text(h, card["ts"], f"• `lab` (`{B}`): 1/1 from <@{BOB}>, <@{ERIN}> ✔")
    assert "still needed: one approver from <!subteam^S0SYS>" in redrawn
    h.react(SYS_1, ts=card["ts"])
    h.wait_thread(card["ts"], "Started:")
    assert fleet(h).state is FleetState.RUNNING


def test_a_server_no_policy_names_follows_the_catch_all_default(h):
    ask(h, f"{B},{D}")
    card = h.wait_card()
    assert f"• `default` (`{D}`): 0/1 from <@{BOB}>, <@{CAROL}>" in str(card["blocks"])
    h.react(CAROL, ts=card["ts"])  # the default policy's, not lab's
    h.wait_thread(card["ts"], "approved:")
    assert approvals(h) == {B: [], D: [CAROL]} and h.starts() == 0
    h.react(BOB, ts=card["ts"])
    h.wait_thread(card["ts"], "Started:")


def test_the_requester_never_counts_even_where_her_policy_lists_her(h):
    """ERIN asks (production lets her) and is an approver of lab: her ✅ counts nowhere."""
    ask(h, f"{B},{A}")
    card = h.wait_card()
    h.react(ERIN, ts=card["ts"])
    h.slack.wait_for(lambda: told(h, ERIN))
    assert "you asked for this deployment" in told(h, ERIN)[-1]
    h.react(DAVE, ts=card["ts"])  # production's approver
    h.wait_thread(card["ts"], "approved:")
    assert approvals(h) == {A: [DAVE], B: []} and fleet(h).state is FleetState.PENDING_APPROVAL
    h.react(FRANK, ts=card["ts"])  # in no policy of this fleet
    h.slack.wait_for(lambda: told(h, FRANK))
    assert "not an approver for policy `lab`" in told(h, FRANK)[-1]
    assert approvals(h) == {A: [DAVE], B: []} and h.starts() == 0


def test_an_approver_of_any_server_rejects_the_whole_fleet_an_outsider_cannot(h):
    ask(h, f"{B},{A}")
    card = h.wait_card()
    h.react(FRANK, "x", ts=card["ts"])
    h.slack.wait_for(lambda: told(h, FRANK))
    assert "Your rejection was not counted" in told(h, FRANK)[-1]
    h.react(DAVE, "x", ts=card["ts"])  # production's approver: A can never be approved now
    h.wait_thread(card["ts"], "rejected")
    assert fleet(h).state is FleetState.REJECTED
    assert members(h) == {A: State.REJECTED, B: State.REJECTED} and h.starts() == 0


# -- approval windows per policy -----------------------------------------------------------


def test_a_policy_met_in_its_window_stays_met_after_it_closes(h):
    ask(h, f"{B},{A}")  # lab: 10 minutes; production: 60
    card = h.wait_card()
    h.clock.advance(5 * 60)
    h.react(BOB, ts=card["ts"])
    h.wait_thread(card["ts"], "approved:")
    h.clock.advance(20 * 60)  # lab's window is over, but lab was met in it
    h.bot.fleets.advance_all()
    assert fleet(h).state is FleetState.PENDING_APPROVAL
    h.react(CAROL, ts=card["ts"])
    h.wait_thread(card["ts"], "Started:")


def test_one_policys_window_closing_unmet_expires_the_fleet_saying_which(h):
    ask(h, f"{B},{A}")
    card = h.wait_card()
    h.react(CAROL, ts=card["ts"])  # production met; lab never is
    h.wait_thread(card["ts"], "approved:")
    h.clock.advance(11 * 60)
    h.react(BOB, ts=card["ts"])  # too late for lab
    thread = h.wait_thread(card["ts"], "expired")
    assert f"the approval window of policy `lab` (`{B}`) closed with 0/1 approvals" in thread[-1]
    assert fleet(h).state is FleetState.EXPIRED and h.starts() == 0
    assert members(h) == {A: State.EXPIRED, B: State.EXPIRED}
    assert approvals(h)[B] == [], "the late vote was not recorded"


def test_a_fleets_servers_are_not_expired_one_by_one_by_the_sweep(h):
    ask(h, f"{B},{A}")
    card = h.wait_card()
    h.react(BOB, ts=card["ts"])
    h.wait_thread(card["ts"], "approved:")
    h.clock.advance(15 * 60)  # lab's own window is over; lab is met
    h.bot.deployments.expire_due()
    assert members(h) == {A: State.PENDING_APPROVAL, B: State.PENDING_APPROVAL}


# -- a server of a fleet never acts alone --------------------------------------------------


def test_a_server_of_a_pending_fleet_cannot_be_cancelled_by_its_own_id(h):
    ask(h, f"{B},{D}", extra="parallel=2")
    card = h.wait_card()
    f = fleet(h)
    member = h.bot.store.fleet_members(f)[0]
    h.slash(f"cancel {member.id}", user=ERIN)
    answer = h.wait_answer("cancelled as a whole", user=ERIN)
    assert f"one server of the fleet request `{f.id}`" in answer
    assert f"`/byoi cancel {f.id}`" in answer
    h.slash(f"cancel {member.id}", user=BOB)  # an approver neither
    assert "cancelled as a whole" in h.wait_answer("cancelled as a whole", user=BOB)
    h.react(BOB, ts=card["ts"])
    h.react(CAROL, ts=card["ts"])
    h.wait_thread(card["ts"], "Started:")
    assert sorted(started_servers(h)) == sorted([B, D]), "every server installs"


def started_servers(h: BotHarness) -> list[str]:
    return [
        c["path"].split("/")[4]
        for c in h.simulator.calls()
        if c["method"] == "POST" and c["path"].endswith("/reinstall")
    ]


def test_a_stopped_rollout_says_why(h):
    ask(h, f"{D},{B}", extra="parallel=1")  # D's installation fails (simulator inventory)
    card = h.wait_card()
    h.react(BOB, ts=card["ts"])
    h.react(CAROL, ts=card["ts"])
    h.wait_thread(card["ts"], "Started:")
    for _ in range(4):
        h.poll(advance=100)
        h.bot.fleets.advance_all()
    thread = h.wait_thread(card["ts"], "Rollout stopped")
    assert f"1 not started. Why: `{D}` failed: " in thread[-1]


def test_an_approver_stops_running_installs_only_on_servers_their_policy_lists(h):
    ask(h, f"{B},{A}", extra="parallel=2")
    card = h.wait_card()
    h.react(BOB, ts=card["ts"])
    h.react(CAROL, ts=card["ts"])
    h.wait_thread(card["ts"], "Started:")
    h.slash(f"cancel {fleet(h).id}", user=BOB)
    answer = h.wait_answer("is cancelled", user=BOB)
    assert f"Cancelled at OVHcloud: `{B}`" in answer and A not in answer.split("\n")[1]
    cancels = [c["path"] for c in h.simulator.calls() if c["path"].endswith("/cancel")]
    assert len(cancels) == 1 and B in cancels[0]


def test_an_emergency_fleet_needs_each_servers_emergency_requesters(h):
    answer = ask(h, f"{B},{A}", ERIN, extra='emergency="disk failing"')
    assert f"`{B}` (policy `lab`): policy `lab` does not let you declare an emergency" in answer
    assert h.cards() == [] and h.bot.store.fleets_in_states(list(FleetState)) == []

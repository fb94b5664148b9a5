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

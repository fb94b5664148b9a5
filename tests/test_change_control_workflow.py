"""Change control through the chat: windows hold approved deploys, freezes hold them too,
an emergency skips both (loudly, reviewed afterwards), and fleets wait for windows.

The bot's clock starts on Friday 2026-11-27 09:00 UTC (tests/bot_harness.py); the policy's
window opens on Tuesdays at 22:00 Paris time (21:00 UTC in winter).
"""

from __future__ import annotations

import json
import textwrap
import urllib.parse
from datetime import UTC, datetime

import pytest
from bot_harness import APPROVER, APPROVER_2, OUTSIDER, REQUESTER, SECRET, BotHarness
from fakes.signing import block_action_payload, post_signed
from test_app_home import open_home

from byoi_bot.core.fleet import FleetState
from byoi_bot.core.service import Refused
from byoi_bot.core.states import State
from byoi_bot.store.audit_chain import verify

SERVER = "ns1001.ip-51-75-1.eu"
OTHER = "ns1002.ip-51-75-2.eu"
TUESDAY_22_PARIS = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)
POLICIES = f"""
[[policy]]
name = "production"
pattern = "ns100*"
approvers = ["{APPROVER}", "{APPROVER_2}"]
required_approvals = 2
windows = ["Tue 22:00-02:00 Europe/Paris"]
emergency_requesters = ["{REQUESTER}"]
emergency_required_approvals = 1
emergency_review_within = "4h"
freeze_admins = ["{APPROVER}"]
"""


@pytest.fixture
def h(tmp_path, db_location):
    config = tmp_path / "byoi.toml"
    config.write_text(textwrap.dedent(POLICIES))
    env = {"BYOI_CONFIG": str(config), "BYOI_FREEZE_ADMINS": APPROVER}
    harness = BotHarness(tmp_path, extra_env=env, db=db_location)
    yield harness
    harness.close()


def url(h) -> str:
    return f"{h.images.base_url}/debian-12.qcow2"


def ask(h, extra: str = "", server: str = SERVER) -> dict:
    h.slash(f"deploy {server} {url(h)} efi-bootloader=x.efi {extra}")
    return h.wait_card()


def request_on(h, card):
    return h.bot.store.by_message("C0OPS", card["ts"])


def approve_both(h, card) -> None:
    h.react(APPROVER, ts=card["ts"])
    h.react(APPROVER_2, ts=card["ts"])
    settled(h, card)


def settled(h, card, state: State = State.PENDING_APPROVAL):
    """The request once the votes have been counted (reactions are handled after the ack)."""
    h.slack.wait_for(lambda: request_on(h, card).state is not state)
    return request_on(h, card)


def until(h, when: datetime) -> None:
    """The bot's clock moves to `when`; the scheduler's sweep runs once."""
    h.clock.advance((when - h.clock.now()).total_seconds())
    h.bot.jobs.sweep()


def card_text(h, card) -> str:
    return str(h.slack.message("C0OPS", card["ts"])["blocks"])


def test_an_approved_deploy_outside_its_window_waits_for_it_and_says_when(h):
    card = ask(h)
    approve_both(h, card)
    request = request_on(h, card)
    assert request.state is State.APPROVED and h.starts() == 0
    said = h.wait_thread(card["ts"], "starts at")[-1]
    assert "the next maintenance window" in said
    assert "<!date^1796158800^" in said, "Tuesday 22:00 Paris, in each reader's own zone"
    assert "{ago}" in said, "a countdown Slack keeps current"
    assert "approved — starts at" in card_text(h, card)

    until(h, TUESDAY_22_PARIS.replace(hour=20, minute=59))
    assert h.starts() == 0
    until(h, TUESDAY_22_PARIS)
    assert h.starts() == 1
    assert request_on(h, card).state is State.DEPLOYING
    assert "maintenance window closes at" in card_text(h, card)
    assert "never stopped midway" in card_text(h, card)


def test_at_inside_a_window_is_honoured_and_outside_it_is_refused_naming_the_next(h):
    h.slash(f"deploy {SERVER} {url(h)} efi-bootloader=x.efi at=2026-11-28T10:00Z")
    answer = h.wait_answer("outside the maintenance windows")
    assert "production" in answer and "<!date^1796158800^" in answer
    assert "at=2026-12-01T21:00Z" in answer
    assert h.bot.store.active() == []

    card = ask(h, "at=2026-12-01T21:30Z")
    approve_both(h, card)
    assert "its scheduled time" in h.wait_thread(card["ts"], "starts at")[-1]
    until(h, datetime(2026, 12, 1, 21, 15, tzinfo=UTC))
    assert h.starts() == 0, "inside the window, but before at="
    until(h, datetime(2026, 12, 1, 21, 30, tzinfo=UTC))
    assert h.starts() == 1


def test_a_freeze_blocks_starting_not_requesting_or_approving_and_lifting_it_starts(h):
    until(h, TUESDAY_22_PARIS)
    h.slash('freeze now 2026-12-20 "datacenter migration"', user=OUTSIDER)
    assert "not a freeze admin of policy `production`" in h.wait_answer("freeze", OUTSIDER)
    h.slash('freeze now 2026-12-20 "datacenter migration"', user=APPROVER)
    answer = h.wait_answer("Freeze", APPROVER)
    freeze_id = answer.split("`")[1]
    assert freeze_id.startswith("fz-") and "datacenter migration" in answer

    card = ask(h)
    approve_both(h, card)
    assert request_on(h, card).state is State.APPROVED and h.starts() == 0
    said = h.wait_thread(card["ts"], "starts at")[-1]
    assert f"the end of freeze `{freeze_id}` (datacenter migration)" in said

    h.slash("freezes")
    assert "datacenter migration" in h.wait_answer("*Freezes*")
    h.slash(f"unfreeze {freeze_id}", user=APPROVER)
    h.wait_answer("lifted", APPROVER)
    h.bot.jobs.sweep()
    assert h.starts() == 1
    actions = [r["action"] for r in h.bot.store.audit(freeze_id)]
    assert actions == ["freeze", "unfreeze"]


def test_a_configured_freeze_holds_deploys_and_cannot_be_lifted_by_command(tmp_path, db_location):
    config = tmp_path / "byoi.toml"
    config.write_text(
        textwrap.dedent(POLICIES)
        + '\n[[freeze]]\nfrom = 2026-11-01T00:00:00Z\nto = 2026-12-10\nreason = "peak season"\n'
    )
    h = BotHarness(tmp_path, extra_env={"BYOI_CONFIG": str(config)}, db=db_location)
    try:
        card = ask(h)
        approve_both(h, card)
        assert "peak season" in h.wait_thread(card["ts"], "starts at")[-1]
        assert "peak season" in card_text(h, card)
        until(h, TUESDAY_22_PARIS)
        assert h.starts() == 0
        with pytest.raises(Refused, match="in the configuration file"):
            h.bot.deployments.unfreeze(APPROVER, "config-1")
        until(h, datetime(2026, 12, 15, 21, 0, tzinfo=UTC))  # the next Tuesday window
        assert h.starts() == 1
    finally:
        h.close()


def test_an_emergency_is_refused_to_anyone_not_named_for_it(h):
    h.slash(f'deploy {SERVER} {url(h)} efi-bootloader=x.efi emergency="disk dying"', user=OUTSIDER)
    answer = h.wait_answer("emergency", OUTSIDER)
    assert "does not let you declare an emergency" in answer
    assert h.bot.store.active() == []


def test_an_emergency_skips_window_and_freeze_with_its_reduced_quorum_loudly_and_is_reviewed(h):
    h.bot.deployments.freeze(APPROVER, h.clock.now(), TUESDAY_22_PARIS, "quiet week", ())
    card = ask(h, 'emergency="RAID controller failing"')
    assert "EMERGENCY OVERRIDE" in card_text(h, card)
    assert "RAID controller failing" in card_text(h, card)
    h.react(APPROVER, ts=card["ts"])  # one approval: the policy's emergency quorum
    said = h.wait_thread(card["ts"], "emergency override")[-1]
    request = request_on(h, card)
    assert request.state is State.DEPLOYING and h.starts() == 1
    assert "it skipped: window and freeze" in said and f"/byoi review {request.id}" in said
    flagged = [r for r in h.bot.store.audit(request.id) if r["action"] == "emergency_override"]
    assert len(flagged) == 1 and "skipped: window, freeze" in flagged[0]["reason"]
    assert [r["request_id"] for r in h.bot.store.unreviewed()] == [request.id]

    h.clock.advance(4 * 3600 + 1)
    h.bot.jobs.sweep()
    h.bot.jobs.sweep()
    thread = h.wait_thread(card["ts"], "was due for review")
    reminders = [t for t in thread if "was due for review" in t]
    assert len(reminders) == 1

    with pytest.raises(Refused, match="someone else has to approve"):
        h.bot.deployments.review(request.id, REQUESTER)
    h.slash(f"review {request.id}", user=APPROVER_2)
    assert "marked reviewed" in h.wait_answer("review", APPROVER_2)
    assert h.bot.store.unreviewed() == []
    h.wait_thread(card["ts"], "reviewed this emergency override")
    assert verify(h.bot.store.audit_chain()).ok


def test_a_normal_request_still_needs_the_full_quorum(h):
    until(h, TUESDAY_22_PARIS)
    card = ask(h)
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "1/2")
    assert request_on(h, card).state is State.PENDING_APPROVAL
    h.react(APPROVER_2, ts=card["ts"])
    h.wait_thread(card["ts"], "started at OVHcloud")
    assert h.starts() == 1


def test_fleet_waves_start_only_inside_the_window(h):
    h.slash(f"deploy {SERVER},{OTHER} {url(h)} efi-bootloader=x.efi parallel=1")
    h.wait_answer("Fleet request")
    card = h.wait_card()
    for approver in (APPROVER, APPROVER_2):  # votes counted here, not on a worker thread
        h.bot.deployments.react("C0OPS", card["ts"], approver, "white_check_mark", True)
    fleet = h.bot.store.fleet_by_message("C0OPS", card["ts"])
    assert fleet.state is FleetState.RUNNING
    h.bot.fleets.advance_all()
    assert h.starts() == 0
    h.bot.fleets.redraw(fleet)
    assert "next wave starts at" in card_text(h, card)
    until(h, TUESDAY_22_PARIS)
    h.bot.fleets.advance_all()
    assert h.starts() == 1, "one wave of one server: parallel=1"


def test_the_app_home_lists_overrides_to_review_and_its_button_marks_one_reviewed(h):
    card = ask(h, 'emergency="RAID controller failing"')
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "emergency override")
    request = request_on(h, card)
    view = open_home(h, APPROVER_2)
    assert "Emergency overrides to review" in json.dumps(view["blocks"])
    (button,) = [
        e for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]
        if e["action_id"] == "byoi_review"
    ]  # fmt: skip
    assert button["value"] == request.id
    assert "Emergency overrides" not in json.dumps(open_home(h, REQUESTER)["blocks"])

    payload = block_action_payload("byoi_review", request.id, user_id=APPROVER_2)
    payload["container"] = {"type": "view", "view_id": "V0HOME"}
    del payload["message"], payload["channel"], payload["response_url"]
    body = urllib.parse.urlencode({"payload": json.dumps(payload)})
    assert post_signed(h.url, body, SECRET)[0] == 200
    h.wait_thread(card["ts"], "reviewed this emergency override")
    assert h.bot.store.unreviewed() == []

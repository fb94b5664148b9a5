"""The App Home: requests to approve (with buttons), mine, deployments, history, health."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from bot_harness import APPROVER, REQUESTER, SECRET, BotHarness
from fakes.signing import block_action_payload, event_body, post_signed


@pytest.fixture
def h(tmp_path):
    harness = BotHarness(tmp_path)
    yield harness
    harness.close()


def open_home(h: BotHarness, user: str) -> dict:
    """Open `user`'s App Home; return the view the bot published."""
    before = len(h.slack.calls_to("views.publish"))
    event = {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"}
    assert post_signed(h.url, event_body(event), SECRET)[0] == 200
    call = h.slack.wait_for_call("views.publish", count=before + 1)
    assert call.args["user_id"] == user
    return call.args["view"]


def texts(view: dict) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


def pending(h: BotHarness) -> str:
    h.slash(f"deploy ns1001.ip-51-75-1.eu {h.images.base_url}/debian-12.qcow2 efi-bootloader=x.efi")
    h.wait_card()
    return h.bot.store.recent(1)[0].id


def test_an_approver_sees_the_request_with_buttons_and_the_bots_health(h):
    request_id = pending(h)
    view = open_home(h, APPROVER)
    assert view["type"] == "home"
    buttons = [b for b in view["blocks"] if b["type"] == "actions"]
    assert [e["value"] for e in buttons[0]["elements"]] == [request_id, request_id]
    assert "Scheduler" in texts(view) and "Posts waiting to be sent:* 0" in texts(view)


def test_the_requester_sees_it_as_theirs_not_to_approve(h):
    request_id = pending(h)
    view = open_home(h, REQUESTER)
    assert not [b for b in view["blocks"] if b["type"] == "actions"]
    assert request_id in texts(view) and "Nothing waits for you." in texts(view)


def test_approve_on_the_home_counts_like_a_reaction_and_redraws_the_home(h):
    request_id = pending(h)
    open_home(h, APPROVER)
    payload = block_action_payload("byoi_approve", request_id, user_id=APPROVER)
    payload["container"] = {"type": "view", "view_id": "V0HOME"}
    del payload["message"], payload["channel"], payload["response_url"]
    body = urllib.parse.urlencode({"payload": json.dumps(payload)})
    assert post_signed(h.url, body, SECRET)[0] == 200
    card = h.cards()[-1]
    h.wait_thread(card["ts"], "started at OVHcloud")
    h.slack.wait_for_call("views.publish", count=2)
    assert "Deploying now" in texts(h.slack.calls_to("views.publish")[-1].args["view"])

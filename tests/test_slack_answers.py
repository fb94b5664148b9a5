"""Answers that fit and say what to do: paging, summaries, plain-words errors, votes."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from bot_harness import APPROVER, APPROVER_2, CHANNEL, REQUESTER, SECRET, BotHarness
from core_fixtures import request as stored_request
from fakes.signing import post_signed, slash_command_body, view_submission_body

from byoi_bot.core.messages import listing
from byoi_bot.core.states import State
from byoi_bot.dispatch import ANSWER_LIMIT

SERVER = "ns1001.ip-51-75-1.eu"
EFI = 'efi-bootloader="\\efi\\debian\\grubx64.efi"'


@pytest.fixture
def h(tmp_path):
    harness = BotHarness(tmp_path, required=2)
    yield harness
    harness.close()


def ask(h: BotHarness, text: str, channel: str = CHANNEL, name: str | None = None) -> str:
    name = name or f"ask-{len(h.slack.calls)}"
    body = slash_command_body(
        text, user_id=REQUESTER, channel_id=channel, response_url=h.slack.response_url(name)
    )
    assert post_signed(h.url, body, SECRET)[0] == 200
    h.slack.wait_for(lambda: h.slack.responses(name))
    (answer,) = h.slack.responses(name)
    return answer["text"]


def seed(h: BotHarness, count: int, state: State, channel: str = CHANNEL) -> None:
    for i in range(count):
        r = stored_request(f"r-s{i:05d}", state=state, server=f"ns{i}.example.net")
        r = dataclasses.replace(r, channel=channel, spec=dataclasses.replace(r.spec, image_url=(
            f"https://images.example.net/{'very-long-name-' * 12}{i}.qcow2")))  # fmt: skip
        h.bot.store.create(r, None)


def test_form_values_are_raw_text(h):
    values = {
        "server": {"value": SERVER},
        "url": {"value": f"{h.images.base_url}/debian-12.qcow2"},
        "efi-bootloader": {"value": "\\efi\\debian\\grubx64.efi"},
        "description": {"value": "R&D <prod> a&b"},
        "header": {"value": "X-Team: R&D <prod> a&b"},
    }
    metadata = json.dumps({"channel": CHANNEL})
    body = view_submission_body(
        "byoi_deploy_form", values, user_id=REQUESTER, private_metadata=metadata
    )
    status, text = post_signed(h.url, body, SECRET)
    assert status == 200 and "errors" not in text, text
    h.wait_card()
    request = h.bot.store.recent(1)[0]
    assert request.spec.description == "R&D <prod> a&b"
    assert h.bot.store.secrets(request.id)["headers"] == [["X-Team", "R&D <prod> a&b"]]


@pytest.mark.parametrize(
    ("error", "advice"),
    [
        ("not_in_channel", "/invite @byoi-bot"),
        ("channel_not_found", "in a channel byoi-bot is in"),
        ("is_archived", "archived"),
        ("restricted_action", "admin"),
    ],
)
def test_a_channel_the_bot_cannot_post_in_is_explained(h, error, advice):
    h.slack.fail_next("chat.postMessage", error=error, status=200)
    answer = ask(h, f"deploy {SERVER} {h.images.base_url}/debian-12.qcow2 {EFI}")
    assert advice in answer and "Try again in a minute" not in answer
    assert h.bot.store.recent(1)[0].state is State.CANCELLED


@pytest.mark.parametrize("error", ["invalid_blocks", "msg_too_long"])
def test_a_card_slack_refuses_for_good_says_no_retry_would_help(h, error):
    h.slack.fail_next("chat.postMessage", error=error, status=200)
    answer = ask(h, f"deploy {SERVER} {h.images.base_url}/debian-12.qcow2 {EFI}")
    assert "would fail the same way" in answer
    assert f"`{error}`" in answer and "Try again" not in answer
    assert h.bot.store.recent(1)[0].state is State.CANCELLED


def vote_reply(h: BotHarness) -> tuple[dict, str]:
    """A card with one approval, and the ts of the bot's thread reply saying so."""
    ask(h, f"deploy {SERVER} {h.images.base_url}/debian-12.qcow2 {EFI}")
    card = h.wait_card()
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "approved")
    reply = h.slack.messages(channel=CHANNEL, thread_ts=card["ts"])[-1]
    # the outbox records the reply's ts just after Slack answered: wait for it
    h.slack.wait_for(lambda: h.bot.store.by_reply(CHANNEL, reply["ts"]))
    return card, reply["ts"]


def test_a_vote_on_a_thread_reply_is_not_counted_and_its_author_is_told(h):
    _, reply_ts = vote_reply(h)
    assert h.react(APPROVER_2, ts=reply_ts) == 200
    h.slack.wait_for(lambda: [m for m in h.slack.messages(CHANNEL) if m["ephemeral"]])
    (hint,) = [m for m in h.slack.messages(CHANNEL) if m["ephemeral"]]
    assert hint["to_user"] == APPROVER_2 and "react there" in hint["text"]
    assert h.bot.store.recent(1)[0].state is State.PENDING_APPROVAL


@pytest.mark.parametrize("reaction", ["white_check_mark::skin-tone-4", "ballot_box_with_check"])
def test_skin_toned_and_ballot_box_check_marks_approve(h, reaction):
    card, _ = vote_reply(h)
    h.react(APPROVER_2, reaction, ts=card["ts"])
    h.wait_thread(card["ts"], "is approved.")


def test_status_of_a_server_without_requests_says_so(h):
    answer = ask(h, "status ns9.example.net")
    assert "No request for server `ns9.example.net`" in answer


def test_list_and_status_show_this_channel_unless_all(h):
    seed(h, 3, State.DEPLOYING, channel="C0OTHER")
    assert "Nothing is active here" in ask(h, "list")
    assert "No deployment is running here" in ask(h, "status")
    assert ask(h, "status all").count("r-s0000") == 3
    assert ask(h, "list", channel="C0OTHER").count("r-s0000") == 3


def test_list_all_pages_and_every_answer_fits(h):
    seed(h, 45, State.DONE)
    first, third = ask(h, "list all"), ask(h, "list all page 3")
    assert "`/byoi list all page 2`" in first and len(first) <= ANSWER_LIMIT
    assert "page 1 of 3" in first and "page 3 of 3" in third
    assert third.count("r-s") == 5 and "page 4" not in third
    assert "the last is `/byoi list all page 3`" in ask(h, "list all page 4")


def test_list_all_shows_every_request_on_exactly_one_page_however_long_its_url(h):
    """33 requests with ~150-character URLs: 2 pages of at most 20, all within the limit."""
    seed(h, 33, State.DONE)
    answers = [ask(h, f"list all page {page}") for page in (1, 2)]
    ids = re.findall(r"`(r-s\d{5})`", "\n".join(answers))
    assert sorted(ids) == [f"r-s{i:05d}" for i in range(33)], "each request once"
    assert [a.count("`r-s") for a in answers] == [20, 13]
    assert ["page 1 of 2" in answers[0], "page 2 of 2" in answers[1]] == [True, True]
    assert all(len(a) <= ANSWER_LIMIT and "cut to fit" not in a for a in answers)
    assert "…" in answers[0], "long URLs are shortened to fit"


def test_a_listing_keeps_every_request_even_with_huge_urls():
    requests = [
        dataclasses.replace(
            stored_request(f"r-u{i:05d}", server=f"{'n' * 60}{i}.example.net"),
            spec=dataclasses.replace(
                stored_request().spec, image_url=f"https://x.example/{'a' * 2000}{i}.qcow2"
            ),
        )
        for i in range(20)
    ]
    text = listing("Recent requests, page 1 of 1", requests, "none", ANSWER_LIMIT)
    assert len(text) <= ANSWER_LIMIT
    assert all(f"`r-u{i:05d}`" in text for i in range(20))


def test_status_with_many_active_deployments_counts_them_per_state(h):
    seed(h, 40, State.DEPLOYING)
    answer = ask(h, "status")
    assert "Active deployments: 40" in answer and "deploying: 40" in answer
    assert "App Home" in answer and len(answer) <= ANSWER_LIMIT

"""Hostile input through signed HTTP requests to /slack/events of a whole running bot.

Whatever arrives (arbitrary command text, events and button payloads with missing or oddly
typed fields, garbage form submissions, forged, stale or replayed requests) the bot:

- never answers with a 5xx (Slack would retry, then flag the app);
- refuses forged and stale requests with 401 before anything runs;
- never calls the OVHcloud start API without a legitimate approval;
- answers a person who waits (slash commands) in plain words, never a stack trace;
- never lets user text ping (`<!channel>`, `<!here>`, `<@U…>`) or fake a link in anything
  it posts: every such sequence reaches Slack escaped (`&lt;!channel&gt;`) or unwrapped.

One bot serves the whole module (hypothesis examples reuse it); the replay stories that
need approvals get a bot of their own.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import time
from urllib.parse import urlencode

import pytest
from bot_harness import (
    APPROVER,
    APPROVER_2,
    CHANNEL,
    OUTSIDER,
    REQUESTER,
    SECRET,
    BotHarness,
    ack_answer,
)
from fakes.signing import (
    block_action_body,
    block_action_payload,
    event_body,
    event_payload,
    post_signed,
    reaction_event,
    signed_headers,
    slash_command_body,
    view_submission_body,
    view_submission_payload,
)
from hypothesis import assume, event, given
from hypothesis import strategies as st
from properties import examples

from byoi_bot.core.request import Request
from byoi_bot.core.states import State
from byoi_bot.slack.app import INTERNAL_ERROR
from byoi_bot.slack.cards import APPROVE_ACTION, REJECT_ACTION
from byoi_bot.slack.form import CALLBACK_ID

SERVER = "ns1001.ip-51-75-1.eu"
UNKNOWN_SERVER = "ns9.example.invalid"  # not in the simulator: preflight stops before any fetch
EFI = 'efi-bootloader="\\efi\\debian\\grubx64.efi"'
KNOWN_USERS = {REQUESTER, APPROVER, APPROVER_2, OUTSIDER}
POSTING_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral", "response_url")

# What a user could paste to ping everyone, impersonate, or plant a link.
INJECTIONS = (
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!here|here>",
    "<!channel|@channel>",
    "<@U0EVIL>",
    "<@U0EVIL|boss>",
    "<@W0EVIL>",
    "<#C0EVIL|ops>",
    "<!subteam^S0EVIL>",
    "<!subteam^S0EVIL|@oncall>",
    "<https://evil.example.invalid/x|click here>",
    "<http://evil.example.invalid>",
    "<mailto:boss@evil.example.invalid|mail>",
    "&lt;!channel&gt;",
    "&lt;https://evil.example.invalid|x&gt;",
    "&amp;lt;!here&amp;gt;",
    "<<!channel>>",
    "<!channel",
    "\u202e",
    "\x00",
    "\x1b[31m",
    "\r\n",
    "`",
    "```",
    "*bold*",
    '"',
    "'",
    "“",
    "=",
    "key=",
    "https://user:pw@127.0.0.1:9/y.qcow2?token=t",
    "\\",
    "é" * 30,
)
LIVE_MARKUP = (
    re.compile(r"<!(?:channel|here|everyone|subteam)", re.IGNORECASE),
    re.compile(r"<(?:https?|mailto|ftp|file|slack)\s*:", re.IGNORECASE),
    re.compile(r"<#"),
)
STACK_TRACE = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")

_names = itertools.count(1)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    """One bot for the module: approvers BOB and CAROL, quorum 1."""
    h = BotHarness(tmp_path_factory.mktemp("hostile"))
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def own_bot(tmp_path):
    """A bot of its own (quorum 2) for stories that need real approvals."""
    h = BotHarness(tmp_path, required=2)
    try:
        yield h
    finally:
        h.close()


class ErrorLog(logging.Handler):
    """Collects ERROR records from every logger while installed on the root logger."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self.seen = threading.Event()  # set on the first record

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.seen.set()

    def __enter__(self) -> ErrorLog:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)


# ----------------------------------------------------------------------------- helpers


def strings(value: object):
    """Every string inside a JSON-like value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from strings(v)


def posted_texts(h: BotHarness, since: int = 0) -> list[str]:
    """Every string the bot sent to Slack for people to read, since call number `since`."""
    with h.slack._cond:
        calls = list(h.slack.calls[since:])
    return [s for c in calls if c.method in POSTING_METHODS for s in strings(c.args)]


def assert_no_live_markup(h: BotHarness, since: int = 0) -> None:
    for text in posted_texts(h, since):
        for pattern in LIVE_MARKUP:
            assert not pattern.search(text), f"live markup {pattern.pattern!r} in {text!r}"
        for user in re.findall(r"<@([^>|]*)", text):
            assert user in KNOWN_USERS, f"injected mention <@{user}> in {text!r}"


def assert_plain_answer(text: str) -> None:
    assert text.strip(), "an empty answer"
    assert not STACK_TRACE.search(text), f"a stack trace in {text!r}"
    assert text != INTERNAL_ERROR, "the bot hit an internal error"


def deploys_started(h: BotHarness) -> int:
    return h.starts()


def settle(h: BotHarness) -> None:
    """Free every server again (cancel what a previous example left pending)."""
    for request in h.bot.store.active():
        h.bot.deployments.cancel(request.id, request.requester)


def slash(h: BotHarness, text: str, user: str = REQUESTER, channel: str = CHANNEL) -> str:
    """Send `/byoi text`; return the final answer (or "" when the form was opened)."""
    name = f"hostile-{next(_names)}"
    views = len(h.slack.calls_to("views.open"))
    body = slash_command_body(
        text, user_id=user, channel_id=channel, response_url=h.slack.response_url(name)
    )
    status, answer = post_signed(h.url, body, SECRET)
    assert status == 200, (status, answer)
    if in_ack := ack_answer(answer):  # help and command errors come with the ack
        assert '"in_channel"' not in answer, "answers go to the requester alone"
        return in_ack

    def final():
        texts = [r.get("text", "") for r in h.slack.responses(name)]
        done = [t for t in texts if not t.startswith("Checking `")]
        return done or len(h.slack.calls_to("views.open")) > views

    found = h.slack.wait_for(final, timeout=10)
    if found is True:
        return ""
    for body in h.slack.responses(name):
        assert body.get("response_type") != "in_channel", "answers go to the requester alone"
    return found[-1]


def post(h: BotHarness, body: str, **kwargs) -> int:
    status, _ = post_signed(h.url, body, SECRET, **kwargs)
    return status


def form_body(payload: dict) -> str:
    return urlencode({"payload": json.dumps(payload)})


def new_card(h: BotHarness) -> tuple[dict, str]:
    """Post a fresh pending request; return its card and request id."""
    settle(h)
    answer = slash(h, f"deploy {SERVER} {h.images.base_url}/debian-12.qcow2 {EFI}")
    assert "is posted" in answer, answer
    request = h.bot.store.active(SERVER)[0]
    card = h.slack.message(CHANNEL, request.message_ts)
    assert card is not None
    return card, request.id


def pending_request(h: BotHarness) -> Request:
    """The request waiting on SERVER, after posting one if there is none."""
    if not h.bot.store.active(SERVER):
        new_card(h)
    return h.bot.store.active(SERVER)[0]


# ----------------------------------------------------------------------------- slash commands

SUBCOMMAND_PREFIXES = st.sampled_from(
    [
        "",
        "deploy ",
        "deploy " + UNKNOWN_SERVER + " ",
        "status ",
        "cancel ",
        "history ",
        "list ",
        "help ",
        "HELP ",
        "bogus ",
        "deploy server=",
    ]
)
PIECES = st.one_of(st.text(max_size=30), st.sampled_from(INJECTIONS))
COMMAND_TEXTS = st.one_of(
    st.builds(
        lambda p, parts: p + " ".join(parts), SUBCOMMAND_PREFIXES, st.lists(PIECES, max_size=6)
    ),
    st.text(max_size=200),
    st.sampled_from(
        [
            "x" * 9000,
            "deploy " + "a" * 8100,
            "status " + "é" * 4000,
            "<!channel>" * 500,
            "help " + "<@U0EVIL>" * 300,
            "cancel " + "r-" + "z" * 3000,
            "deploy " + UNKNOWN_SERVER + " http://127.0.0.1:9/" + "a/" * 1500 + "x.qcow2",
        ]
    ),
)


@examples(100)
@given(text=COMMAND_TEXTS)
def test_any_command_text_gets_a_plain_answer_and_starts_nothing(bot, text):
    h = bot
    since = len(h.slack.calls)
    with ErrorLog() as errors:
        answer = slash(h, text)
    if answer:
        assert_plain_answer(answer)
    assert_no_live_markup(h, since)
    assert deploys_started(h) == 0
    assert not errors.records, [r.getMessage() for r in errors.records]
    settle(h)


FIELD_TEMPLATES = (
    'description="{v}"',
    "description={v}",
    'efi-bootloader="{v}"',
    'header="X-Token: {v}"',
    'header="{v}: value"',
    "hostname={v}",
    "checksum=sha256:{v}",
    "type={v}",
    "disk-group={v}",
    "config-drive={v}",
    'ssh-key="ssh-ed25519 {v}"',
    "{v}=1",
)


@examples(60)
@given(
    template=st.sampled_from(FIELD_TEMPLATES),
    value=st.one_of(
        st.sampled_from(INJECTIONS),
        st.lists(st.sampled_from(INJECTIONS), min_size=2, max_size=5).map(" ".join),
        st.text(max_size=40).map(lambda t: f"{t}<!channel>{t}<@U0EVIL>"),
    ),
)
def test_injected_mentions_and_links_are_escaped_everywhere(bot, template, value):
    """Valid deploys reach the card, the thread and the answers; errors echo the value."""
    h = bot
    if template.startswith('header="X-Token'):
        assume(_latin1(value))  # see test_a_header_value_outside_latin1_is_refused_in_plain_words
    since = len(h.slack.calls)
    option = template.format(v=value)
    answer = slash(h, f"deploy {SERVER} {h.images.base_url}/debian-12.qcow2 {EFI} {option}")
    assert_plain_answer(answer)
    posted = h.bot.store.active(SERVER)
    event("a card was posted" if posted else "refused")
    if posted:
        request = posted[0]
        assert "is posted" in answer
        assert_plain_answer(slash(h, f"status {request.id}"))
        assert_plain_answer(slash(h, "list all"))
        assert "is cancelled" in slash(h, f"cancel {request.id}")
        h.wait_thread(request.message_ts, "was cancelled")
    assert_no_live_markup(h, since)
    assert deploys_started(h) == 0
    settle(h)


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


@pytest.mark.parametrize("value", ["“x”", "ключ", "token✓"])
def test_a_header_value_outside_latin1_is_refused_in_plain_words(bot, value):
    h = bot
    settle(h)
    answer = slash(
        h, f'deploy {SERVER} {h.images.base_url}/debian-12.qcow2 {EFI} header="X-Token: {value}"'
    )
    assert_plain_answer(answer)
    assert "header" in answer.lower()
    settle(h)


@pytest.mark.parametrize("value", ["<!channel>", "<!here|here>", "&lt;!everyone&gt;"])
def test_an_injected_broadcast_shows_escaped_on_the_card(bot, value):
    """A `<` that reaches the card is `&lt;`: Slack shows it, nobody is pinged."""
    h = bot
    settle(h)
    text = f'deploy {SERVER} {h.images.base_url}/debian-12.qcow2 {EFI} description="&lt;{value}"'
    assert "is posted" in slash(h, text)
    card = h.slack.message(CHANNEL, h.bot.store.active(SERVER)[0].message_ts)
    options = next(s for s in strings(card["blocks"]) if s.startswith("*Why and when*"))
    assert "&lt;" in options and "<!" not in options
    settle(h)


def test_the_help_shows_its_placeholders_escaped(bot):
    answer = slash(bot, "help deploy")
    assert "deploy" in answer
    assert not re.search(r"<(?![@!])", answer), "a raw `<` that Slack would parse"


def test_the_deploy_form_opens_for_a_bare_deploy_even_with_odd_spacing(bot):
    h = bot
    since = len(h.slack.calls_to("views.open"))
    assert slash(h, " \t deploy \u3000 ") == ""
    assert len(h.slack.calls_to("views.open")) == since + 1


def test_a_command_without_user_or_channel_is_answered_not_run(bot):
    h = bot
    name = f"hostile-{next(_names)}"
    fields = {
        "command": "/byoi",
        "text": f"deploy {SERVER} {h.images.base_url}/debian-12.qcow2",
        "response_url": h.slack.response_url(name),
        "team_id": "T1",
    }
    assert post(h, urlencode(fields)) == 200
    answer = h.slack.wait_for(lambda: h.slack.responses(name))[0]["text"]
    assert "could not tell who ran the command" in answer
    assert h.bot.store.active(SERVER) == []


def test_another_slash_command_is_acknowledged(bot):
    h = bot
    name = f"hostile-{next(_names)}"
    body = slash_command_body("deploy", command="/other", response_url=h.slack.response_url(name))
    assert post(h, body) == 200
    assert "/byoi help" in h.slack.wait_for(lambda: h.slack.responses(name))[0]["text"]


# ----------------------------------------------------------------------------- events

ODD_VALUES = st.one_of(
    st.none(),
    st.integers(),
    st.booleans(),
    st.text(max_size=12),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
)
# Bolt reads `user`, `channel`, `team` and `enterprise` while building its request, before
# the signature check: there an int or a bool was a 500 (see the malformed-body test).
BOLT_SAFE_ODD_VALUES = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
)
NON_APPROVERS = st.one_of(st.sampled_from([REQUESTER, OUTSIDER, "UBOT", ""]), BOLT_SAFE_ODD_VALUES)
REACTIONS = st.one_of(
    st.sampled_from(["white_check_mark", "heavy_check_mark", "x", "no_entry", "+1", ""]),
    ODD_VALUES,
)
MISSING = object()


def _maybe(draw, value_strategy):
    value = draw(st.one_of(st.just(MISSING), value_strategy))
    return value


@st.composite
def reaction_events(draw, ts: str):
    event: dict = {"type": draw(st.sampled_from(["reaction_added", "reaction_removed"]))}
    fields = {
        "user": NON_APPROVERS,
        "reaction": REACTIONS,
        "item_user": ODD_VALUES,
        "event_ts": ODD_VALUES,
        "item": st.one_of(
            BOLT_SAFE_ODD_VALUES,
            st.fixed_dictionaries(
                {},
                optional={
                    "type": st.one_of(
                        st.sampled_from(["message", "file", "file_comment"]), ODD_VALUES
                    ),
                    "channel": st.one_of(st.just(CHANNEL), BOLT_SAFE_ODD_VALUES),
                    "ts": st.one_of(st.just(ts), ODD_VALUES),
                },
            ),
        ),
    }
    for key, strategy in fields.items():
        value = _maybe(draw, strategy)
        if value is not MISSING:
            event[key] = value
    return event


@examples(60)
@given(data=st.data())
def test_odd_reaction_events_never_fail_nor_approve(bot, data):
    h = bot
    request = pending_request(h)
    event = data.draw(reaction_events(request.message_ts))
    envelope = event_payload(event)
    event_id = data.draw(st.one_of(st.just(MISSING), ODD_VALUES))
    if event_id is not MISSING:
        envelope["event_id"] = event_id
    else:
        del envelope["event_id"]
    handled = threading.Event()
    original = h.bot.deployments.react

    def spy(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        finally:
            handled.set()

    since = len(h.slack.calls)
    with ErrorLog() as errors:
        h.bot.deployments.react = spy
        try:
            assert post(h, json.dumps(envelope)) == 200
            if _would_reach_the_workflow(event) and envelope.get("event_id") is None:
                assert handled.wait(5), "a well-formed reaction reaches the workflow"
        finally:
            del h.bot.deployments.react
    assert not errors.records, [r.getMessage() for r in errors.records]
    assert deploys_started(h) == 0
    assert h.bot.store.get(request.id).state in (State.PENDING_APPROVAL, State.CANCELLED)
    assert_no_live_markup(h, since)


def _would_reach_the_workflow(event: dict) -> bool:
    item = event.get("item")
    return (
        isinstance(item, dict)
        and item.get("type") == "message"
        and all(isinstance(item.get(k), str) and item.get(k) for k in ("channel", "ts"))
        and all(isinstance(event.get(k), str) and event.get(k) for k in ("user", "reaction"))
    )


@pytest.mark.parametrize(
    "event",
    [
        {"type": "message", "text": "<!channel> deploy now", "user": OUTSIDER, "channel": CHANNEL},
        {"type": "app_mention", "text": "<@UBOT> approve", "user": OUTSIDER},
        {"type": "team_join", "user": {"id": "U0NEW"}},
        {"type": "member_joined_channel", "user": OUTSIDER, "channel": CHANNEL},
        {"type": "reaction_added"},
        {"type": "reaction_added", "item": {"type": "file", "file": "F1"}, "user": APPROVER,
         "reaction": "white_check_mark"},
        {"type": ""},
        {"type": None},
        {},
    ],
    ids=lambda e: str(e.get("type", "no type")) or "empty type",
)  # fmt: skip
def test_unknown_or_empty_events_are_acknowledged(bot, event):
    h = bot
    with ErrorLog() as errors:
        status = post(h, event_body(event))
    if isinstance(event.get("type"), str):
        assert status == 200, "acknowledged, so that Slack does not retry it"
    else:
        assert status < 500  # no event type at all: Bolt answers 404 "unhandled request"
    assert not errors.records
    assert deploys_started(h) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"type": "event_callback"},
        {"type": "event_callback", "event": None},
        {"type": "event_callback", "event": "reaction_added"},
        {"type": "event_callback", "event": [], "event_id": 5},
        {"type": "nonsense"},
        {"type": "url_verification", "challenge": "abc"},
        {"type": 7, "event": {"type": "reaction_added"}},
    ],
)
def test_odd_event_envelopes_are_never_a_server_error(bot, body):
    h = bot
    status = post(h, json.dumps(body))
    assert status < 500
    assert deploys_started(h) == 0


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        '{"type": "event_callback", "event": {',
        "payload=%7Bbad",
        "payload=" + "%7B" * 10,
        "[]",
        '{"type": "event_callback", "event": {"type": "reaction_added", "user": 5}}',
        '{"type": "event_callback", "event": {"type": "reaction_added", "item": {"channel": 1}}}',
        'payload={"type": "block_actions", "user": 5, "actions": []}',
        'payload={"type": "view_submission", "team": true, "view": {}}',
    ],
    ids=["json", "truncated json", "payload", "nested payload", "json array", "event user int",
         "item channel int", "action user int", "team bool"],
)  # fmt: skip
def test_malformed_bodies_are_refused_without_a_server_error(bot, body):
    h = bot
    kind = "application/json" if body[0] in "[{" else "application/x-www-form-urlencoded"
    forged = {"X-Slack-Signature": "v0=" + "0" * 64, "Content-Type": kind}
    assert post(h, body, headers={"Content-Type": kind}) < 500
    assert post(h, body, headers=forged) == 401


def test_json_that_is_not_an_object_is_not_a_server_error(bot):
    h = bot
    for body in ('{"type": "event_callback", "event": {"type": "reaction_added", "item": 5}}',):
        assert post(h, body) < 500
    assert deploys_started(h) == 0


# ----------------------------------------------------------------------------- buttons


@st.composite
def block_actions(draw, request_id: str, ts: str):
    action_id = draw(
        st.one_of(
            st.sampled_from([APPROVE_ACTION, REJECT_ACTION, "byoi_other", ""]), st.text(max_size=10)
        )
    )
    value = draw(st.one_of(st.sampled_from([request_id, "r-nope22", "", "<!channel>"]), ODD_VALUES))
    payload = block_action_payload(
        action_id if isinstance(action_id, str) else "x",
        channel_id=draw(st.sampled_from([CHANNEL, "C0ELSE"])),
        message_ts=draw(st.sampled_from([ts, "1.000000", ""])),
        response_url="http://127.0.0.1:9/nowhere",
    )
    payload["actions"][0]["value"] = value
    user = draw(st.one_of(st.just(MISSING), NON_APPROVERS))
    if user is MISSING:
        del payload["user"]
    elif draw(st.booleans()):
        payload["user"]["id"] = user
    else:
        payload["user"] = user
    for key in ("container", "channel", "message", "response_url", "trigger_id"):
        choice = draw(st.sampled_from(["keep", "drop", "odd"]))
        if choice == "drop":
            del payload[key]
        elif choice == "odd":
            payload[key] = draw(BOLT_SAFE_ODD_VALUES if key == "channel" else ODD_VALUES)
    return payload


@examples(60)
@given(data=st.data())
def test_odd_button_presses_never_fail_nor_approve(bot, data):
    h = bot
    request = pending_request(h)
    payload = data.draw(block_actions(request.id, request.message_ts))
    with ErrorLog() as errors:
        status = post(h, form_body(payload))
    assert status < 500
    assert deploys_started(h) == 0
    assert h.bot.store.get(request.id).state in (State.PENDING_APPROVAL, State.CANCELLED)
    assert h.bot.store.approvals(request.id, request.fingerprint) == []
    # A bad response_url must not crash the listener either (it is logged as a warning).
    assert not [r for r in errors.records if r.name.startswith("byoi_bot")]


def test_a_button_naming_a_request_that_does_not_exist_is_explained(bot):
    h = bot
    card, _ = new_card(h)
    name = f"hostile-{next(_names)}"
    for action in (APPROVE_ACTION, REJECT_ACTION):
        body = block_action_body(
            action,
            "r-<!channel>",
            user_id=APPROVER,
            channel_id=CHANNEL,
            message_ts=card["ts"],
            response_url=h.slack.response_url(name),
        )
        assert post(h, body) == 200
    answers = h.slack.wait_for(
        lambda: len(h.slack.responses(name)) == 2 and h.slack.responses(name)
    )
    for answer in answers:
        assert answer["text"].startswith("No request `r-&lt;!channel&gt;`")
        assert answer["replace_original"] is False
    assert deploys_started(h) == 0
    settle(h)


def test_unknown_buttons_are_acknowledged(bot):
    h = bot
    for action_id in ("byoi_approve_v0", "approve", "x" * 300):
        body = block_action_body(action_id, "r-abc", user_id=APPROVER, channel_id=CHANNEL)
        assert post(h, body) == 200
    assert deploys_started(h) == 0


# ----------------------------------------------------------------------------- the form

FORM_KEYS = st.sampled_from(
    ["server", "url", "type", "checksum", "header", "user-data", "at", "hostname", "other", ""]
)
FORM_VALUES = st.one_of(
    st.sampled_from(INJECTIONS),
    st.text(max_size=30),
    st.sampled_from([UNKNOWN_SERVER, "http://127.0.0.1:9/a.qcow2", "X-A: b\nX-B: c"]),
)


@st.composite
def form_payloads(draw):
    values = {}
    for key in draw(st.lists(FORM_KEYS, max_size=6, unique=True)):
        shape = draw(st.sampled_from(["plain", "odd-entry", "odd-value", "no-value"]))
        if shape == "plain":
            values[key] = {"value": {"type": "plain_text_input", "value": draw(FORM_VALUES)}}
        elif shape == "odd-entry":
            values[key] = draw(ODD_VALUES)
        elif shape == "odd-value":
            values[key] = {"value": {"type": "plain_text_input", "value": draw(ODD_VALUES)}}
        else:
            values[key] = {"value": {}}
    if "server" in values and draw(st.booleans()):
        values["server"] = {"value": {"type": "plain_text_input", "value": UNKNOWN_SERVER}}
    metadata = draw(
        st.one_of(
            st.just(json.dumps({"channel": CHANNEL})),
            st.text(max_size=20),
            st.builds(lambda v: json.dumps({"channel": v}), ODD_VALUES),
            st.builds(json.dumps, ODD_VALUES),
        )
    )
    payload = view_submission_payload(
        draw(st.sampled_from([CALLBACK_ID, CALLBACK_ID, "other_form"])),
        {},
        user_id=draw(st.sampled_from([REQUESTER, OUTSIDER])),
        private_metadata=metadata,
    )
    payload["view"]["state"]["values"] = values
    for key in draw(st.lists(st.sampled_from(["state", "user", "private_metadata"]), max_size=2)):
        if key == "user":
            payload["user"] = draw(BOLT_SAFE_ODD_VALUES)
        else:
            payload["view"][key] = draw(ODD_VALUES)
    return payload


@examples(60)
@given(payload=form_payloads())
def test_garbage_form_submissions_never_fail_nor_store(bot, payload):
    h = bot
    settle(h)
    before = len(h.bot.store.recent(1000))
    with ErrorLog() as errors:
        status, text = post_signed(h.url, form_body(payload), SECRET)
    assert status < 500, text
    if text:
        answer = json.loads(text)
        for message in strings(answer.get("errors", {})):
            assert_plain_answer(message)
            assert len(message) <= 150
    assert len(h.bot.store.recent(1000)) == before, "an unknown server is never stored"
    assert deploys_started(h) == 0
    assert not [r for r in errors.records if r.name.startswith("byoi_bot")]


def test_an_empty_form_is_answered_on_a_field(bot):
    h = bot
    body = view_submission_body(CALLBACK_ID, {}, user_id=REQUESTER)
    status, text = post_signed(h.url, body, SECRET)
    assert status == 200
    assert json.loads(text)["response_action"] == "errors"


def test_a_form_that_lost_its_channel_is_answered_on_a_field(bot):
    h = bot
    settle(h)
    values = {
        "server": {"value": SERVER},
        "url": {"value": f"{h.images.base_url}/debian-12.qcow2"},
    }
    for metadata in ("", "not json", '{"channel": 5}', "[]"):
        body = view_submission_body(
            CALLBACK_ID, values, user_id=REQUESTER, private_metadata=metadata
        )
        status, text = post_signed(h.url, body, SECRET)
        assert status == 200 and json.loads(text)["response_action"] == "errors", metadata
    assert h.bot.store.active(SERVER) == []


# ----------------------------------------------------------------------------- unexpected errors


def _boom(*args, **kwargs):
    raise RuntimeError("a bug")


def _one_logged_traceback(errors: ErrorLog) -> None:
    [record] = [r for r in errors.records if r.name.startswith("byoi_bot")]
    assert record.exc_info and record.exc_info[0] is RuntimeError


def test_a_command_whose_listener_fails_gets_the_plain_answer_not_a_500(bot, monkeypatch):
    h = bot
    monkeypatch.setattr("byoi_bot.commands.parse", _boom)
    with ErrorLog() as errors:
        status, answer = post_signed(h.url, slash_command_body("list", **_who()), SECRET)
    assert (status, answer) == (200, INTERNAL_ERROR)
    _one_logged_traceback(errors)


def test_a_form_whose_listener_fails_gets_the_plain_answer_on_a_field(bot, monkeypatch):
    h = bot
    from byoi_bot.slack import app

    calls = itertools.count()

    def fails_once(view):  # in the listener, before the form's `try`; not in the answer
        return _boom() if next(calls) == 0 else form_blocks(view)

    form_blocks = app._form_blocks
    monkeypatch.setattr(app, "_form_blocks", fails_once)
    body = view_submission_body(CALLBACK_ID, {"server": {"value": SERVER}}, user_id=REQUESTER)
    with ErrorLog() as errors:
        status, text = post_signed(h.url, body, SECRET)
    assert status == 200
    answer = json.loads(text)
    assert answer["response_action"] == "errors"
    assert answer["errors"]["server"].startswith("Sorry, byoi-bot could not handle that")
    _one_logged_traceback(errors)


def test_a_button_whose_listener_fails_after_its_ack_is_answered_in_plain_words(bot, monkeypatch):
    h = bot
    name = f"hostile-{next(_names)}"
    monkeypatch.setattr("byoi_bot.slack.app.Work.submit", _boom)
    body = block_action_body(
        APPROVE_ACTION,
        "r-abcdef",
        user_id=APPROVER,
        channel_id=CHANNEL,
        response_url=h.slack.response_url(name),
    )
    with ErrorLog() as errors:
        assert post(h, body) == 200
        [answer] = h.slack.wait_for(lambda: h.slack.responses(name))
    assert answer["text"] == INTERNAL_ERROR
    _one_logged_traceback(errors)


def test_an_app_home_event_whose_listener_fails_is_acknowledged(bot, monkeypatch):
    h = bot
    monkeypatch.setattr("byoi_bot.slack.app.Work.submit", _boom)
    event = {"type": "app_home_opened", "user": REQUESTER, "tab": "home"}
    with ErrorLog() as errors:
        assert post(h, event_body(event)) == 200
        assert errors.seen.wait(timeout=10)
    _one_logged_traceback(errors)


def _who() -> dict:
    return {"user_id": REQUESTER, "channel_id": CHANNEL}


# ----------------------------------------------------------------------------- signatures


def _bodies(h: BotHarness, card_ts: str, request_id: str) -> dict[str, str]:
    return {
        "slash": slash_command_body(
            f"deploy {SERVER} {h.images.base_url}/debian-12.qcow2 {EFI}",
            user_id=REQUESTER,
            channel_id=CHANNEL,
            response_url=h.slack.response_url("forged"),
        ),
        "reaction": event_body(reaction_event(user=APPROVER, channel=CHANNEL, ts=card_ts)),
        "button": block_action_body(
            APPROVE_ACTION, request_id, user_id=APPROVER, channel_id=CHANNEL, message_ts=card_ts
        ),
        "form": view_submission_body(
            CALLBACK_ID,
            {"server": {"value": "ns2002.ip-51-75-2.eu"}, "url": {"value": "http://x/a.qcow2"}},
            user_id=REQUESTER,
            private_metadata=json.dumps({"channel": CHANNEL}),
        ),
    }


def test_forged_stale_and_unsigned_requests_are_refused_before_anything_runs(bot):
    h = bot
    card, request_id = new_card(h)
    calls, stored = len(h.slack.calls), len(h.bot.store.recent(1000))
    now = int(time.time())
    for kind, body in _bodies(h, card["ts"], request_id).items():
        attempts = {
            "forged": {"headers": {"X-Slack-Signature": "v0=" + "0" * 64}},
            "wrong secret": {"headers": signed_headers("not-the-secret", body)},
            "no signature": {"headers": {"X-Slack-Signature": ""}},
            "stale": {"timestamp": now - 301},
            "far future": {"timestamp": now + 3600},
        }
        for what, kwargs in attempts.items():
            status, text = post_signed(h.url, body, SECRET, **kwargs)
            assert status == 401, (kind, what, status, text)
    assert len(h.slack.calls) == calls, "nothing was posted, answered or looked up"
    assert len(h.bot.store.recent(1000)) == stored
    assert h.bot.store.approvals(request_id, h.bot.store.get(request_id).fingerprint) == []
    assert deploys_started(h) == 0
    settle(h)


@pytest.mark.parametrize("stamp", ["soon", "", "1e9", " "])
def test_a_timestamp_that_is_not_a_number_is_refused_like_a_forgery(bot, stamp):
    h = bot
    body = slash_command_body("help", response_url=h.slack.response_url("stamp"))
    status, _ = post_signed(h.url, body, SECRET, headers={"X-Slack-Request-Timestamp": stamp})
    assert status == 401


def test_a_tampered_body_under_a_valid_signature_is_refused(bot):
    h = bot
    card, request_id = new_card(h)
    body = block_action_body(
        APPROVE_ACTION, request_id, user_id=OUTSIDER, channel_id=CHANNEL, message_ts=card["ts"]
    )
    headers = signed_headers(SECRET, body)
    tampered = body.replace(OUTSIDER, APPROVER)
    status, _ = post_signed(h.url, tampered, SECRET, headers=headers)
    assert status == 401
    assert deploys_started(h) == 0
    settle(h)


# ----------------------------------------------------------------------------- replays


def _replay(h: BotHarness, body: str) -> None:
    """Send exactly the same body, timestamp and signature twice (Bolt accepts both)."""
    stamp = int(time.time())
    assert post(h, body, timestamp=stamp) == 200
    assert post(h, body, timestamp=stamp) == 200


def _own_card(h: BotHarness) -> tuple[dict, str]:
    assert h.slash(f"deploy {SERVER} {h.images.base_url}/debian-12.qcow2 {EFI}") == 200
    card = h.wait_card()
    return card, h.bot.store.active(SERVER)[0].id


def _watch(h: BotHarness, method: str) -> tuple[threading.Semaphore, list]:
    """Count completed calls of `h.bot.deployments.<method>` (patched on the instance)."""
    done, results = threading.Semaphore(0), []
    original = getattr(h.bot.deployments, method)

    def spy(*args, **kwargs):
        try:
            results.append(original(*args, **kwargs))
        finally:
            done.release()

    setattr(h.bot.deployments, method, spy)
    return done, results


def _watch_deliveries(h: BotHarness) -> tuple[threading.Semaphore, list]:
    done, seen = threading.Semaphore(0), []
    original = h.bot.store.first_delivery

    def spy(event_id):
        first = original(event_id)
        seen.append((event_id, first))
        done.release()
        return first

    h.bot.store.first_delivery = spy
    return done, seen


def test_a_replayed_reaction_event_counts_once(own_bot):
    h = own_bot
    card, request_id = _own_card(h)
    delivered, seen = _watch_deliveries(h)
    body = event_body(
        reaction_event(user=APPROVER, channel=CHANNEL, ts=card["ts"]), event_id="Ev0R1"
    )
    _replay(h, body)
    assert delivered.acquire(timeout=5) and delivered.acquire(timeout=5)
    assert sorted(first for _, first in seen) == [False, True]
    h.wait_thread(card["ts"], "approved (1/2)")
    assert [t for t in h.thread(card["ts"]) if "approved" in t] == [
        f"✅ <@{APPROVER}> approved (1/2)."
    ]
    assert h.bot.store.approvals(request_id, h.bot.store.get(request_id).fingerprint) == [APPROVER]
    assert deploys_started(h) == 0


def test_a_replayed_approval_cannot_come_back_after_its_withdrawal(own_bot):
    h = own_bot
    card, request_id = _own_card(h)
    delivered, seen = _watch_deliveries(h)
    added = event_body(
        reaction_event(user=APPROVER, channel=CHANNEL, ts=card["ts"]), event_id="Ev0A"
    )
    removed = event_body(
        reaction_event("reaction_removed", user=APPROVER, channel=CHANNEL, ts=card["ts"]),
        event_id="Ev0B",
    )
    stamp = int(time.time())
    assert post(h, added, timestamp=stamp) == 200
    h.wait_thread(card["ts"], "approved (1/2)")
    assert post(h, removed) == 200
    h.wait_thread(card["ts"], "withdrew")
    assert post(h, added, timestamp=stamp) == 200  # the attacker's replay of the old ✅
    for _ in range(3):
        assert delivered.acquire(timeout=5)
    assert seen[-1] == ("Ev0A", False)
    assert h.bot.store.approvals(request_id, h.bot.store.get(request_id).fingerprint) == []
    assert sum("approved (1/2)" in t for t in h.thread(card["ts"])) == 1
    assert deploys_started(h) == 0


def test_a_replayed_approve_button_press_counts_once(own_bot):
    h = own_bot
    card, request_id = _own_card(h)
    approved, _ = _watch(h, "approve")
    body = block_action_body(
        APPROVE_ACTION, request_id, user_id=APPROVER, channel_id=CHANNEL, message_ts=card["ts"]
    )
    _replay(h, body)
    assert approved.acquire(timeout=5) and approved.acquire(timeout=5)
    request = h.bot.store.get(request_id)
    assert request.state is State.PENDING_APPROVAL
    assert h.bot.store.approvals(request_id, request.fingerprint) == [APPROVER]
    assert sum("approved (1/2)" in t for t in h.thread(card["ts"])) == 1
    assert deploys_started(h) == 0
    h.react(APPROVER_2, ts=card["ts"])  # the second, real approval reaches the quorum
    h.wait_thread(card["ts"], "started at OVHcloud")
    assert deploys_started(h) == 1

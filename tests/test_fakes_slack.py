"""The Slack test harness (tests/fakes) exercised with the real slack_sdk and Bolt code."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator

import pytest
from fakes import (
    FakeSlack,
    FakeSocketMode,
    block_action_body,
    block_action_payload,
    event_body,
    event_payload,
    post_signed,
    reaction_event,
    serve_bolt_app,
    slash_command_body,
    slash_command_payload,
    view_submission_body,
)
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

SECRET = "test-signing-secret"
APP_TOKEN = "xapp-1-test-token"
BOT_TOKEN = "xoxb-test-token"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as f:
        yield f


def make_app(fake: FakeSlack) -> App:
    """A Bolt app whose Web API calls all go to ``fake``."""
    return App(
        client=WebClient(token=BOT_TOKEN, base_url=fake.base_url),
        signing_secret=SECRET,
        logger=logging.getLogger("test-bolt"),
    )


# --------------------------------------------------------------------------- Web API


def test_web_client_post_update_react(fake: FakeSlack) -> None:
    client = WebClient(token=BOT_TOKEN, base_url=fake.base_url)
    assert client.auth_test()["user_id"] == "UBOT"

    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    first = client.chat_postMessage(channel="C1", text="hello", blocks=blocks)
    second = client.chat_postMessage(channel="C1", text="reply", thread_ts=first["ts"])
    assert first["ok"] and first["channel"] == "C1"
    assert float(second["ts"]) > float(first["ts"])
    assert first["message"]["blocks"] == blocks

    client.chat_update(channel="C1", ts=first["ts"], text="edited")
    client.reactions_add(channel="C1", timestamp=first["ts"], name="white_check_mark")
    with pytest.raises(SlackApiError) as err:
        client.reactions_add(channel="C1", timestamp=first["ts"], name="white_check_mark")
    assert err.value.response["error"] == "already_reacted"
    client.chat_postEphemeral(channel="C1", user="U9", text="psst")

    assert fake.reactions("C1", first["ts"]) == {"white_check_mark": ["UBOT"]}
    assert [m["text"] for m in fake.messages(channel="C1")] == ["edited", "reply", "psst"]
    assert fake.messages(thread_ts=first["ts"])[0]["text"] == "reply"
    assert fake.messages()[-1]["ephemeral"] is True
    post = fake.calls_to("chat.postMessage")[0]
    assert post.token == BOT_TOKEN and post.args["blocks"] == blocks

    link = client.chat_getPermalink(channel="C1", message_ts=first["ts"])["permalink"]
    assert link.endswith(first["ts"].replace(".", ""))
    with pytest.raises(SlackApiError) as err:
        client.api_call("no.such.method")
    assert err.value.response["error"] == "unknown_method"


def test_auth_users_groups_views(fake: FakeSlack) -> None:
    bad = WebClient(token="xoxb-wrong", base_url=fake.base_url)
    with pytest.raises(SlackApiError) as err:
        bad.chat_postMessage(channel="C1", text="x")
    assert err.value.response["error"] == "invalid_auth"

    client = WebClient(token=BOT_TOKEN, base_url=fake.base_url)
    fake.add_user("U2", real_name="Alice", profile={"display_name": "alice"})
    assert client.users_info(user="U2")["user"]["profile"]["display_name"] == "alice"
    fake.set_usergroup("S1", ["U2", "U3"])
    assert client.usergroups_users_list(usergroup="S1")["users"] == ["U2", "U3"]
    fake.usergroups_error = "plan_upgrade_required"
    with pytest.raises(SlackApiError) as err:
        client.usergroups_users_list(usergroup="S1")
    assert err.value.response["error"] == "plan_upgrade_required"
    assert client.conversations_info(channel="C1")["channel"]["is_member"] is True

    view = {"type": "modal", "callback_id": "req", "title": {"type": "plain_text", "text": "T"}}
    opened = client.views_open(trigger_id="1.2.3", view=view)["view"]
    updated = client.views_update(view_id=opened["id"], view={**view, "callback_id": "req2"})
    assert updated["view"]["id"] == opened["id"]
    assert fake.views()[0]["callback_id"] == "req2"


def test_rate_limit_retry_and_server_error(fake: FakeSlack) -> None:
    client = WebClient(
        token=BOT_TOKEN,
        base_url=fake.base_url,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=1),
            ServerErrorRetryHandler(max_retry_count=1),
        ],
    )
    fake.fail_next("chat.postMessage", retry_after=0)
    assert client.chat_postMessage(channel="C1", text="hi")["ok"]
    calls = fake.calls_to("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[0].response == {"ok": False, "error": "ratelimited"}

    fake.fail_next("chat.update", error="internal_error", status=503)
    client.chat_update(channel="C1", ts=calls[1].response["ts"], text="x")
    assert [c.status for c in fake.calls_to("chat.update")] == [503, 200]

    fake.fail_next("reactions.add", error="channel_not_found", status=200, count=2)
    for _ in range(2):
        with pytest.raises(SlackApiError):
            client.reactions_add(channel="C1", timestamp="1.1", name="x")
    client.reactions_add(channel="C1", timestamp="1.1", name="x")

    # Without a retry handler the 429 surfaces to the caller.
    fake.fail_next("users.info", retry_after=7)
    with pytest.raises(SlackApiError) as err:
        WebClient(token=BOT_TOKEN, base_url=fake.base_url).users_info(user="U1")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7"


def test_wait_for_and_response_url(fake: FakeSlack) -> None:
    url = fake.response_url("cmd")
    client = WebClient(token=BOT_TOKEN, base_url=fake.base_url)
    threading.Thread(target=lambda: client.chat_postMessage(channel="C2", text="later")).start()
    call = fake.wait_for_call("chat.postMessage", timeout=5)
    assert call.args["channel"] == "C2"

    resp = WebhookClient(url).send(text="only you", response_type="ephemeral")
    assert resp.status_code == 200
    assert fake.responses("cmd") == [{"text": "only you", "response_type": "ephemeral"}]
    fake.reset()
    assert fake.calls == [] and fake.messages() == []
    with pytest.raises(TimeoutError):
        fake.wait_for(lambda: fake.calls, timeout=0.05)


# --------------------------------------------------------------------------- Bolt over HTTP


def test_bolt_http_mode(fake: FakeSlack) -> None:
    app = make_app(fake)
    reacted = threading.Event()
    seen: dict[str, object] = {}

    @app.command("/byoi")
    def on_command(ack, respond, command):  # type: ignore[no-untyped-def]
        ack(text=f"got {command['text']}")
        respond(text="working on it")

    @app.event("reaction_added")
    def on_reaction(event, say):  # type: ignore[no-untyped-def]
        seen["event"] = event
        say(text="noted")
        reacted.set()

    @app.action("approve")
    def on_approve(ack, body):  # type: ignore[no-untyped-def]
        ack()
        seen["action"] = body["actions"][0]["value"]

    @app.view("req")
    def on_submit(ack, view):  # type: ignore[no-untyped-def]
        seen["view"] = view["state"]["values"]["b"]["a"]["value"]
        ack(response_action="errors", errors={"b": "nope"})

    with serve_bolt_app(app) as server:
        body = slash_command_body("deploy img", response_url=fake.response_url("cmd"))
        status, text = post_signed(server.url, body, SECRET)
        assert (status, text) == (200, "got deploy img")
        fake.wait_for(lambda: fake.responses("cmd"))
        assert fake.responses("cmd")[0]["text"] == "working on it"

        assert post_signed(server.url, body, "wrong-secret")[0] == 401
        assert post_signed(server.url, body, SECRET, timestamp=1)[0] == 401  # replay

        event = reaction_event(user="U1", reaction="x", channel="C7", ts="1700000000.000100")
        assert post_signed(server.url, event_body(event), SECRET)[0] == 200
        assert reacted.wait(5)
        assert seen["event"]["item"]["channel"] == "C7"
        fake.wait_for(lambda: fake.messages(channel="C7"))

        assert post_signed(server.url, block_action_body("approve", "R42"), SECRET)[0] == 200
        assert seen["action"] == "R42"
        status, text = post_signed(
            server.url, view_submission_body("req", {"b": {"a": "typed"}}), SECRET
        )
        assert status == 200 and json.loads(text)["response_action"] == "errors"
        assert seen["view"] == "typed"

        unhandled = event_body({"type": "app_mention", "user": "U1", "text": "hi"})
        assert post_signed(server.url, unhandled, SECRET)[0] == 404
    assert len(fake.calls_to("auth.test")) == 1


# --------------------------------------------------------------------------- Socket Mode


def test_bolt_socket_mode_end_to_end(fake: FakeSlack) -> None:
    app = make_app(fake)
    ran = {"command": threading.Event(), "reaction": threading.Event()}
    retry_num: list[str] = []

    @app.command("/byoi")
    def on_command(ack, command):  # type: ignore[no-untyped-def]
        ack(text=f"ack {command['text']}")
        ran["command"].set()

    @app.event("reaction_added")
    def on_reaction(ack, event, request, say):  # type: ignore[no-untyped-def]
        ack()
        retry_num.extend(request.headers.get("x-slack-retry-num", []))
        say(text=f"saw :{event['reaction']}:")
        ran["reaction"].set()

    @app.action("approve")
    def on_approve(ack):  # type: ignore[no-untyped-def]
        ack()

    with FakeSocketMode() as fsm:
        fake.attach_socket_mode(fsm)
        handler = SocketModeHandler(app, app_token=APP_TOKEN, ping_interval=1)
        try:
            handler.connect()
            fsm.wait_connected()
            assert fake.calls_to("apps.connections.open")[0].token == APP_TOKEN

            env = fsm.send_envelope("slash_commands", slash_command_payload("status R1"))
            assert fsm.wait_ack(env) == {"text": "ack status R1"}
            assert ran["command"].is_set()

            event = reaction_event(reaction="rocket", channel="C5")
            env = fsm.send_envelope("events_api", event_payload(event), retry_attempt=1)
            assert fsm.wait_ack(env) == {}
            assert ran["reaction"].wait(5)
            assert retry_num == ["1"]
            assert fake.wait_for(lambda: fake.messages(channel="C5"))[0]["text"] == "saw :rocket:"

            env = fsm.send_envelope("interactive", block_action_payload("approve", "R1"))
            assert fsm.wait_ack(env) == {}

            # Slack asks clients to reconnect: the built-in client opens a new connection.
            fsm.send_disconnect()
            fsm.wait_connections_opened(2)
            fsm.wait_for(lambda: fsm.connected == 1)
            env = fsm.send_envelope("slash_commands", slash_command_payload("again"))
            assert fsm.wait_ack(env) == {"text": "ack again"}
        finally:
            fsm.close_handler(handler)
    assert fsm.received[0]["envelope_id"]


def test_apps_connections_open_requires_app_token(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as err:
        WebClient(token=BOT_TOKEN, base_url=fake.base_url).apps_connections_open(
            app_token=BOT_TOKEN
        )
    assert err.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as err:
        WebClient(base_url=fake.base_url).apps_connections_open(app_token=APP_TOKEN)
    assert err.value.response["error"] == "socket_mode_not_attached"


def test_group_members_keep_the_last_list_read_when_slack_fails(fake: FakeSlack) -> None:
    from byoi_bot.slack.chat import SlackChat, make_web_client

    fake.set_usergroup("S0OPS", ["U1", "U2"])
    chat = SlackChat(make_web_client(BOT_TOKEN, fake.base_url))
    assert chat.group_members("S0OPS") == {"U1", "U2"}
    chat._groups["S0OPS"] = (0.0, chat._groups["S0OPS"][1])  # the cache has aged
    fake.usergroups_error = "fatal_error"
    assert chat.group_members("S0OPS") == {"U1", "U2"}, "a failure never means nobody"
    assert chat.group_members("S0NEW") == frozenset()

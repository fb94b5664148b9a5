"""Signed Slack HTTP requests and realistic Slack payload builders for tests.

Slack signs every HTTP request it sends to an app: ``X-Slack-Signature`` is
``v0=`` + hex HMAC-SHA256(signing secret, ``v0:{timestamp}:{raw body}``) and
``X-Slack-Request-Timestamp`` is the Unix time (Bolt refuses timestamps older
than 5 minutes and answers 401).

The ``*_payload`` builders return the dicts Slack delivers (these are what a
Socket Mode envelope carries); the ``*_body`` builders return the raw HTTP body
Slack POSTs in HTTP mode (form-encoded for slash commands and interactivity,
JSON for the Events API).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode, urlsplit

from slack_bolt import App, BoltRequest

from .serving import BackgroundServer

__all__ = [
    "BoltHTTPServer",
    "block_action_body",
    "block_action_payload",
    "event_body",
    "event_payload",
    "post_signed",
    "reaction_event",
    "serve_bolt_app",
    "sign",
    "signed_headers",
    "slash_command_body",
    "slash_command_payload",
    "view_submission_body",
    "view_submission_payload",
]

_counter = itertools.count(1)

DEFAULT_TEAM_ID = "T1"
DEFAULT_APP_ID = "A1"
DEFAULT_BOT_USER_ID = "UBOT"
VERIFICATION_TOKEN = "legacy-verification-token"


def _next_id(prefix: str) -> str:
    return f"{prefix}{next(_counter):08d}"


def sign(secret: str, body: str, timestamp: str | int) -> str:
    """Return Slack's ``v0=<hex>`` signature of ``body`` at ``timestamp``."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str,
    body: str,
    timestamp: str | int | None = None,
    content_type: str | None = None,
) -> dict[str, str]:
    """Headers Slack sends with ``body``: signature, timestamp and Content-Type.

    ``timestamp`` defaults to now (pass an old one to test replay refusal).
    ``content_type`` defaults to JSON when the body starts with ``{``, form otherwise.
    """
    ts = str(int(time.time()) if timestamp is None else timestamp)
    if content_type is None:
        content_type = (
            "application/json"
            if body.lstrip().startswith("{")
            else "application/x-www-form-urlencoded"
        )
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sign(secret, body, ts),
    }


# --------------------------------------------------------------------------- slash commands


def slash_command_payload(
    text: str = "",
    user_id: str = "U1",
    channel_id: str = "C1",
    command: str = "/byoi",
    response_url: str = "https://hooks.slack.com/commands/T1/1/fake",
    trigger_id: str | None = None,
    *,
    team_id: str = DEFAULT_TEAM_ID,
    user_name: str | None = None,
    channel_name: str = "general",
    api_app_id: str = DEFAULT_APP_ID,
) -> dict[str, str]:
    """The fields of a slash command invocation, as Slack sends them (all strings)."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": "test",
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name or user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or _next_id("1337.42."),
    }


def slash_command_body(
    text: str = "",
    user_id: str = "U1",
    channel_id: str = "C1",
    command: str = "/byoi",
    response_url: str = "https://hooks.slack.com/commands/T1/1/fake",
    trigger_id: str | None = None,
    **kwargs: Any,
) -> str:
    """Form-encoded slash command body (HTTP mode); see :func:`slash_command_payload`."""
    return urlencode(
        slash_command_payload(
            text, user_id, channel_id, command, response_url, trigger_id, **kwargs
        )
    )


# --------------------------------------------------------------------------- Events API


def event_payload(
    event: dict[str, Any],
    event_id: str | None = None,
    team_id: str = DEFAULT_TEAM_ID,
    *,
    api_app_id: str = DEFAULT_APP_ID,
    bot_user_id: str = DEFAULT_BOT_USER_ID,
    event_time: int | None = None,
) -> dict[str, Any]:
    """An ``event_callback`` envelope around ``event`` (HTTP body / Socket Mode payload)."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or _next_id("Ev"),
        "event_time": int(time.time()) if event_time is None else event_time,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": _next_id("4-ctx-"),
    }


def event_body(
    event: dict[str, Any],
    event_id: str | None = None,
    team_id: str = DEFAULT_TEAM_ID,
    **kwargs: Any,
) -> str:
    """JSON ``event_callback`` body (HTTP mode); see :func:`event_payload`."""
    return json.dumps(event_payload(event, event_id, team_id, **kwargs))


def reaction_event(
    kind: str = "reaction_added",
    user: str = "U1",
    reaction: str = "white_check_mark",
    channel: str = "C1",
    ts: str = "1700000000.000100",
    item_user: str = DEFAULT_BOT_USER_ID,
    event_ts: str | None = None,
) -> dict[str, Any]:
    """A ``reaction_added`` / ``reaction_removed`` event (wrap it with :func:`event_body`)."""
    return {
        "type": kind,
        "user": user,
        "reaction": reaction,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "item_user": item_user,
        "event_ts": event_ts or f"{time.time():.6f}",
    }


# --------------------------------------------------------------------------- interactivity


def _user(user_id: str, team_id: str) -> dict[str, str]:
    return {
        "id": user_id,
        "username": user_id.lower(),
        "name": user_id.lower(),
        "team_id": team_id,
    }


def block_action_payload(
    action_id: str,
    value: str = "",
    user_id: str = "U1",
    channel_id: str = "C1",
    message_ts: str = "1700000000.000100",
    *,
    block_id: str = "actions",
    response_url: str = "https://hooks.slack.com/actions/T1/1/fake",
    trigger_id: str | None = None,
    message: dict[str, Any] | None = None,
    team_id: str = DEFAULT_TEAM_ID,
    api_app_id: str = DEFAULT_APP_ID,
) -> dict[str, Any]:
    """A ``block_actions`` payload for a button click on a channel message."""
    msg = {
        "type": "message",
        "user": DEFAULT_BOT_USER_ID,
        "ts": message_ts,
        "text": "",
        "blocks": [],
    }
    msg.update(message or {})
    return {
        "type": "block_actions",
        "user": _user(user_id, team_id),
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": trigger_id or _next_id("1337.43."),
        "team": {"id": team_id, "domain": "test"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": "general"},
        "message": msg,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": action_id, "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def block_action_body(
    action_id: str,
    value: str = "",
    user_id: str = "U1",
    channel_id: str = "C1",
    message_ts: str = "1700000000.000100",
    **kwargs: Any,
) -> str:
    """Form-encoded ``payload=<json>`` body of a button click (HTTP mode)."""
    payload = block_action_payload(action_id, value, user_id, channel_id, message_ts, **kwargs)
    return urlencode({"payload": json.dumps(payload)})


def _state_values(values: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for block_id, actions in values.items():
        out[block_id] = {}
        for action_id, v in actions.items():
            if isinstance(v, dict):
                out[block_id][action_id] = v
            else:
                out[block_id][action_id] = {"type": "plain_text_input", "value": v}
    return out


def view_submission_payload(
    callback_id: str,
    values: dict[str, dict[str, Any]],
    user_id: str = "U1",
    private_metadata: str = "",
    *,
    view_id: str = "V1",
    team_id: str = DEFAULT_TEAM_ID,
    api_app_id: str = DEFAULT_APP_ID,
) -> dict[str, Any]:
    """A ``view_submission`` payload.

    ``values`` is Slack's ``{block_id: {action_id: {...}}}``; a plain string value is
    expanded to ``{"type": "plain_text_input", "value": s}``.
    """
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": "test"},
        "user": _user(user_id, team_id),
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "trigger_id": _next_id("1337.44."),
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "blocks": [],
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": _state_values(values)},
            "hash": _next_id("hash."),
            "title": {"type": "plain_text", "text": "Modal"},
            "app_id": api_app_id,
            "bot_id": "B1",
            "external_id": "",
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def view_submission_body(
    callback_id: str,
    values: dict[str, dict[str, Any]],
    user_id: str = "U1",
    private_metadata: str = "",
    **kwargs: Any,
) -> str:
    """Form-encoded ``payload=<json>`` body of a modal submission (HTTP mode)."""
    payload = view_submission_payload(callback_id, values, user_id, private_metadata, **kwargs)
    return urlencode({"payload": json.dumps(payload)})


# --------------------------------------------------------------------------- HTTP client

# No proxy handler: tests talk to 127.0.0.1 only, whatever HTTP(S)_PROXY says.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post_signed(
    url: str,
    body: str,
    secret: str,
    headers: dict[str, str] | None = None,
    timestamp: str | int | None = None,
    timeout: float = 10,
) -> tuple[int, str]:
    """POST ``body`` signed with ``secret`` to ``url``; return ``(status, response text)``.

    ``headers`` override the signed ones (e.g. a forged ``X-Slack-Signature``).
    Never uses a proxy; HTTP errors are returned, not raised.
    """
    all_headers = signed_headers(secret, body, timestamp)
    all_headers.update(headers or {})
    req = urllib.request.Request(url, data=body.encode(), headers=all_headers, method="POST")
    try:
        with _opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


# --------------------------------------------------------------------------- Bolt HTTP server


class _BoltHandler(BaseHTTPRequestHandler):
    server: _BoltServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr logging
        pass

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        # Bolt verifies the signature over the raw body: pass it as str, untouched.
        body = self.rfile.read(length).decode("utf-8") if length else ""
        if parts.path != self.server.path:
            status, headers, data = 404, {}, b"Not Found"
        else:
            headers_in: dict[str, str | list[str]] = {}
            for key, value in self.headers.items():
                headers_in.setdefault(key.lower(), []).append(value)  # type: ignore[union-attr]
            req = BoltRequest(body=body, query=parts.query, headers=headers_in)
            resp = self.server.app.dispatch(req)
            status, headers, data = resp.status, resp.headers, (resp.body or "").encode()
        self.send_response(status)
        for key, values in headers.items():
            if key.lower() == "content-length":
                continue
            for value in values:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = _serve
    do_GET = _serve


class _BoltServer(ThreadingHTTPServer):
    daemon_threads = True
    app: App
    path: str


class BoltHTTPServer(BackgroundServer):
    """Serve a Bolt ``App`` over HTTP on 127.0.0.1:0, like Slack's HTTP mode sees it.

    Each request is fed to ``app.dispatch(BoltRequest(body=raw_str, query, headers))``
    and Bolt's ``BoltResponse`` is written back (200 ack, 401 bad signature, 404
    unhandled). ``url`` is the events endpoint (``base_url`` + ``path``).
    """

    def __init__(self, app: App, path: str = "/slack/events") -> None:
        super().__init__()
        self.app = app
        self.path = path

    def _make_server(self) -> _BoltServer:
        server = _BoltServer(("127.0.0.1", 0), _BoltHandler)
        server.app, server.path = self.app, self.path
        return server

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The endpoint to POST signed Slack requests to."""
        return self.base_url + self.path

    def post(self, body: str, secret: str, **kwargs: Any) -> tuple[int, str]:
        """Shortcut for :func:`post_signed` to :attr:`url`."""
        return post_signed(self.url, body, secret, **kwargs)


def serve_bolt_app(app: App, path: str = "/slack/events") -> BoltHTTPServer:
    """Start a :class:`BoltHTTPServer` for ``app``; use it as a context manager or ``.stop()``."""
    return BoltHTTPServer(app, path).start()

"""A fake Slack Web API: a real local HTTP server that slack_sdk's WebClient talks to.

Point a client at it with ``WebClient(token=fake.bot_token, base_url=fake.base_url)``
(Bolt copies ``base_url`` into the WebClient it builds for every request, so an
``App(client=WebClient(base_url=fake.base_url, token=...))`` uses the fake too).

Every request is recorded as a :class:`Call`; :meth:`FakeSlack.wait_for` blocks on a
condition notified on every call (no polling). Faults are injected per method with
:meth:`FakeSlack.fail_next`.
"""

from __future__ import annotations

import contextlib
import copy
import email.parser
import email.policy
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from .serving import BackgroundServer

if TYPE_CHECKING:
    from .socket_mode import FakeSocketMode

__all__ = ["Call", "FakeSlack", "Fault"]

# Fields slack_sdk sends as JSON strings inside form bodies.
_JSON_FIELDS = ("blocks", "attachments", "view", "metadata", "user_auth_blocks")


@dataclass
class Call:
    """One request received by the fake.

    ``method`` is the Web API method (``"chat.postMessage"``) or ``"response_url"``
    for a POST to a URL from :meth:`FakeSlack.response_url` (then ``name`` is set).
    ``args`` holds the parsed form or JSON body (token removed, JSON fields decoded).
    ``status`` / ``response`` are what the fake answered.
    """

    method: str
    args: dict[str, Any]
    token: str | None
    time: float
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200
    response: dict[str, Any] | None = None
    name: str | None = None

    @property
    def ok(self) -> bool:
        """True when the fake answered HTTP 200 with ``"ok": true``."""
        return self.status == 200 and bool(self.response and self.response.get("ok"))


@dataclass
class Fault:
    """A planned failure for the next ``count`` calls to ``method``."""

    method: str
    error: str
    status: int
    retry_after: int | None
    count: int
    after_handling: bool = False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeSlack


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr logging
        pass

    def do_POST(self) -> None:
        self.server.fake._handle_http(self)

    do_GET = do_POST


class FakeSlack(BackgroundServer):
    """Local fake of the Slack Web API (``http://127.0.0.1:PORT/api/``).

    Args:
        bot_token: the only ``xoxb-`` token accepted (others get ``invalid_auth``).
        app_token: the only ``xapp-`` token accepted (for ``apps.connections.open``).
        bot_user_id / bot_id / team_id / team: identity answered by ``auth.test``.
        socket_mode: a :class:`FakeSocketMode` whose URL ``apps.connections.open``
            returns (or call :meth:`attach_socket_mode` later).
        check_auth: set False to accept any token.

    Use as a context manager or call :meth:`start` / :meth:`stop`.
    Mutable knobs: ``users`` (id -> users.info ``user``), ``channels`` (id ->
    conversations.info ``channel``), ``usergroups`` (id -> member ids),
    ``usergroups_error`` (e.g. ``"plan_upgrade_required"``), ``token_error`` (e.g.
    ``"token_revoked"``: every call with the bot token is refused so until reset to None),
    ``channel_errors`` (channel id -> error, e.g. ``"is_archived"`` or ``"not_in_channel"``:
    posts and edits in that channel are refused so).
    """

    def __init__(
        self,
        bot_token: str = "xoxb-test-token",
        app_token: str = "xapp-1-test-token",
        *,
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        team_id: str = "T1",
        team: str = "Test Team",
        app_id: str = "A1",
        socket_mode: FakeSocketMode | None = None,
        check_auth: bool = True,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.team_id = team_id
        self.team = team
        self.app_id = app_id
        self.check_auth = check_auth
        self.socket_mode = socket_mode
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.usergroups_error: str | None = None
        self.token_error: str | None = None
        self.channel_errors: dict[str, str] = {}
        self.calls: list[Call] = []
        self._cond = threading.Condition(threading.RLock())
        self._faults: list[Fault] = []
        self._pace: tuple[float, frozenset[str]] | None = None
        self._last_accepted: dict[tuple[str, str], float] = {}
        super().__init__()
        self._init_state()
        self._handlers: dict[str, Callable[[dict[str, Any], str | None], dict[str, Any]]] = {
            "api.test": lambda a, t: {"ok": True, "args": a},
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "chat.postMessage": self._chat_post_message,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.getPermalink": self._chat_get_permalink,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "reactions.get": self._reactions_get,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroups_users_list,
            "conversations.info": self._conversations_info,
            "conversations.replies": self._conversations_replies,
            "conversations.history": self._conversations_history,
            "conversations.open": self._conversations_open,
        }

    def _init_state(self) -> None:
        self._ts_seq = itertools.count(1)
        self._id_seq = itertools.count(1)
        self._messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._posted: list[dict[str, Any]] = []
        self._views: dict[str, dict[str, Any]] = {}
        self._response_names: dict[str, str] = {}

    # ------------------------------------------------------------------ lifecycle

    def _make_server(self) -> _Server:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        return server

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The ``base_url`` to give WebClient: ``http://127.0.0.1:PORT/api/``."""
        return f"{self.url}/api/"

    def attach_socket_mode(self, socket_mode: FakeSocketMode) -> None:
        """Make ``apps.connections.open`` return ``socket_mode``'s ws:// URL."""
        self.socket_mode = socket_mode

    def response_url(self, name: str = "default") -> str:
        """A ``response_url`` on this server; POSTs to it are recorded as ``response_url`` calls."""
        with self._cond:
            rid = f"R{next(self._id_seq):06d}"
            self._response_names[rid] = name
        return f"{self.url}/response/{rid}"

    # ------------------------------------------------------------------ inspection

    def calls_to(self, method: str) -> list[Call]:
        """Recorded calls to ``method`` (oldest first), including failed ones."""
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def responses(self, name: str | None = None) -> list[dict[str, Any]]:
        """Bodies POSTed to response URLs (optionally only those of ``name``)."""
        with self._cond:
            return [
                c.args
                for c in self.calls
                if c.method == "response_url" and (name is None or c.name == name)
            ]

    def messages(self, channel: str | None = None, thread_ts: str | None = None) -> list[dict]:
        """Messages posted so far (current state after updates), oldest first.

        Each has ``channel``, ``ts``, ``text``, ``blocks``, ``thread_ts``, ``reactions``
        and ``ephemeral`` (True for chat.postEphemeral, with ``to_user`` the recipient);
        deleted messages are left out. Returns copies.
        """
        with self._cond:
            return [
                copy.deepcopy(m)
                for m in self._posted
                if not m.get("deleted")
                and (channel is None or m["channel"] == channel)
                and (thread_ts is None or m.get("thread_ts") == thread_ts)
            ]

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The stored message at ``(channel, ts)``, or None."""
        with self._cond:
            return copy.deepcopy(self._messages.get((channel, ts)))

    def reactions(self, channel: str, ts: str) -> dict[str, list[str]]:
        """``{reaction name: [user ids]}`` on the message at ``(channel, ts)``."""
        with self._cond:
            msg = self._messages.get((channel, ts))
            return {r["name"]: list(r["users"]) for r in (msg or {}).get("reactions", [])}

    def views(self) -> list[dict[str, Any]]:
        """Views opened / pushed / updated / published so far (current state)."""
        with self._cond:
            return copy.deepcopy(list(self._views.values()))

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5) -> Any:
        """Block until ``predicate()`` is truthy; re-checked on every call received.

        Returns the truthy value; raises ``TimeoutError`` listing the calls seen.
        """
        with self._cond:
            result = self._cond.wait_for(predicate, timeout=timeout)
            if not result:
                seen = [(c.method, c.status) for c in self.calls]
                raise TimeoutError(f"condition not met within {timeout}s; calls: {seen}")
            return result

    def wait_for_call(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5,
        where: Callable[[Call], bool] | None = None,
    ) -> Call:
        """Wait for ``count`` calls to ``method`` (matching ``where``); return the last of them."""

        def matching() -> list[Call]:
            return [c for c in self.calls_to(method) if where is None or where(c)]

        self.wait_for(lambda: len(matching()) >= count, timeout)
        return matching()[count - 1]

    def reset(self) -> None:
        """Forget calls, messages, views and pending faults (keeps users/channels/groups)."""
        with self._cond:
            self.calls.clear()
            self._faults.clear()
            self._init_state()

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        status: int = 429,
        retry_after: int | None = 1,
        count: int = 1,
        after_handling: bool = False,
    ) -> None:
        """Make the next ``count`` calls to ``method`` fail.

        ``status=429``: HTTP 429 with ``Retry-After: retry_after`` and
        ``{"ok": false, "error": error}``. ``status=500/503``: that status with the same
        JSON body. ``status=200``: a plain API error (``{"ok": false, "error": error}``).
        ``after_handling``: the call takes effect (a message is posted) and *then* fails, as
        when a response is lost: the caller cannot know it went through.
        """
        with self._cond:
            self._faults.append(Fault(method, error, status, retry_after, count, after_handling))

    def limit_per_channel(
        self, interval: float = 1.0, methods: tuple[str, ...] = ("chat.postMessage",)
    ) -> None:
        """Enforce Slack's pace: one accepted call of `methods` per channel per `interval`
        seconds; faster calls get HTTP 429 with ``Retry-After`` (seconds, fractional when
        `interval` < 1 so scaled-down runs stay scaled)."""
        with self._cond:
            self._pace = (interval, frozenset(methods))

    def accepted(self, method: str, channel: str | None = None) -> list[Call]:
        """Successful calls to `method` (optionally in one channel), oldest first."""
        return [
            c
            for c in self.calls_to(method)
            if c.ok and (channel is None or c.args.get("channel") == channel)
        ]

    def _take_fault(self, method: str) -> Fault | None:
        for f in self._faults:
            if f.method == method and f.count > 0:
                f.count -= 1
                if f.count == 0:
                    self._faults.remove(f)
                return f
        return None

    # ------------------------------------------------------------------ HTTP plumbing

    def _handle_http(self, h: _Handler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in h.headers.items()}
        args = _parse_body(raw, headers.get("content-type", ""))
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            args.setdefault(k, v)
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        body_token = args.pop("token", None)
        token = token or body_token

        path = parts.path
        extra_headers: dict[str, str] = {}
        if path.startswith("/api/"):
            method = path[len("/api/") :]
            call = Call(method, args, token, time.time(), headers)
            with self._cond:
                status, resp, extra_headers = self._dispatch(call)
                call.status, call.response = status, resp
                self.calls.append(call)
                self._cond.notify_all()
        elif path.startswith("/response/"):
            rid = path[len("/response/") :]
            with self._cond:
                name = self._response_names.get(rid)
                call = Call("response_url", args, token, time.time(), headers, name=name)
                if name is None:
                    status, resp = 404, {"ok": False, "error": "no_such_response_url"}
                else:
                    fault = self._take_fault("response_url")
                    if fault is not None:
                        status, resp = fault.status, {"ok": False, "error": fault.error}
                    else:
                        status, resp = 200, {"ok": True}
                call.status, call.response = status, resp
                self.calls.append(call)
                self._cond.notify_all()
        else:
            status, resp = 404, {"ok": False, "error": "not_found"}

        data = json.dumps(resp).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        for k, v in extra_headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def _dispatch(self, call: Call) -> tuple[int, dict[str, Any], dict[str, str]]:
        handler = self._handlers.get(call.method)
        if self.check_auth:
            error = self._auth_error(call)
            if error:
                return 200, {"ok": False, "error": error}, {}
        fault = self._take_fault(call.method)
        if fault is not None and fault.after_handling and handler is not None:
            with contextlib.suppress(_ApiError):
                handler(call.args, call.token)
            return fault.status, {"ok": False, "error": fault.error}, {}
        if fault is None and (limited := self._rate_limited(call)) is not None:
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": limited}
        if fault is not None:
            headers = {}
            if fault.status == 429 and fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            return fault.status, {"ok": False, "error": fault.error}, headers
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        try:
            return 200, handler(call.args, call.token), {}
        except _ApiError as e:
            return 200, {"ok": False, "error": str(e)}, {}

    def _rate_limited(self, call: Call) -> str | None:
        """The Retry-After to answer when `call` comes too soon after the last one, else None."""
        if self._pace is None or call.method not in self._pace[1]:
            return None
        interval, key = self._pace[0], (call.method, str(call.args.get("channel")))
        wait = self._last_accepted.get(key, float("-inf")) + interval - call.time
        if wait > 0:
            return f"{wait:.3f}" if interval < 1 else str(max(1, round(wait + 0.5)))
        self._last_accepted[key] = call.time
        return None

    def _auth_error(self, call: Call) -> str | None:
        if not call.token:
            return "not_authed"
        if call.token not in (self.bot_token, self.app_token):
            return "invalid_auth"
        if call.token == self.bot_token and self.token_error:
            return self.token_error
        if call.method == "apps.connections.open":
            return None if call.token == self.app_token else "not_allowed_token_type"
        if call.token == self.app_token:
            return "not_allowed_token_type"
        return None

    # ------------------------------------------------------------------ helpers

    def _new_ts(self) -> str:
        n = next(self._ts_seq) * 100
        return f"{1700000000 + n // 1_000_000}.{n % 1_000_000:06d}"

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._id_seq):08d}"

    @staticmethod
    def _require(args: dict[str, Any], *names: str) -> None:
        for n in names:
            if args.get(n) in (None, ""):
                raise _ApiError("no_text" if n == "text" else "invalid_arguments")

    def _public(self, msg: dict[str, Any]) -> dict[str, Any]:
        """The message as Slack returns it: no bookkeeping keys, no null/empty extras."""
        hidden = ("channel", "ephemeral", "deleted", "to_user")
        return {
            k: v
            for k, v in msg.items()
            if k not in hidden and v is not None and (v != [] or k == "blocks")
        }

    # ------------------------------------------------------------------ API methods

    def _auth_test(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://test.slack.com/",
            "team": self.team,
            "user": "byoi-bot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        if self.socket_mode is None:
            raise _ApiError("socket_mode_not_attached")
        if not self.socket_mode.running:
            raise _ApiError("socket_mode_not_running")
        return {"ok": True, "url": self.socket_mode.connection_url()}

    def _store_message(self, channel: str, args: dict[str, Any], **extra: Any) -> dict[str, Any]:
        ts = self._new_ts()
        msg: dict[str, Any] = {
            "type": "message",
            "channel": channel,
            "ts": ts,
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": args.get("text", ""),
            "blocks": args.get("blocks") or [],
            "attachments": args.get("attachments") or [],
            "thread_ts": args.get("thread_ts"),
            "metadata": args.get("metadata"),
            "reactions": [],
            "ephemeral": False,
        }
        msg.update(extra)
        self._posted.append(msg)
        if not msg["ephemeral"]:
            self._messages[(channel, ts)] = msg
        return msg

    def _refuse_channel(self, args: dict[str, Any]) -> None:
        if error := self.channel_errors.get(args.get("channel")):
            raise _ApiError(error)

    def _chat_post_message(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        self._require(args, "channel")
        self._refuse_channel(args)
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            raise _ApiError("no_text")
        msg = self._store_message(args["channel"], args)
        return {
            "ok": True,
            "channel": msg["channel"],
            "ts": msg["ts"],
            "message": self._public(msg),
        }

    def _chat_post_ephemeral(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        self._require(args, "channel", "user")
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            raise _ApiError("no_text")
        msg = self._store_message(args["channel"], args, ephemeral=True, to_user=args["user"])
        return {"ok": True, "message_ts": msg["ts"]}

    def _find(self, args: dict[str, Any], ts_key: str = "ts") -> dict[str, Any]:
        self._require(args, "channel", ts_key)
        msg = self._messages.get((args["channel"], args[ts_key]))
        if msg is None or msg.get("deleted"):
            raise _ApiError("message_not_found")
        return msg

    def _chat_update(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        self._refuse_channel(args)
        msg = self._find(args)
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in args:
                msg[key] = args[key]
        msg["edited"] = {"user": self.bot_user_id, "ts": self._new_ts()}
        return {
            "ok": True,
            "channel": msg["channel"],
            "ts": msg["ts"],
            "text": msg["text"],
            "message": self._public(msg),
        }

    def _chat_delete(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        msg = self._find(args)
        msg["deleted"] = True
        return {"ok": True, "channel": msg["channel"], "ts": msg["ts"]}

    def _chat_get_permalink(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        self._require(args, "channel", "message_ts")
        channel, ts = args["channel"], args["message_ts"]
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"https://test.slack.com/archives/{channel}/p{ts.replace('.', '')}",
        }

    def _reaction_target(self, args: dict[str, Any]) -> dict[str, Any]:
        self._require(args, "channel", "timestamp", "name")
        key = (args["channel"], args["timestamp"])
        msg = self._messages.get(key)
        if msg is None:  # a message posted by someone else: track its reactions anyway
            msg = {"channel": key[0], "ts": key[1], "type": "message", "reactions": []}
            self._messages[key] = msg
        return msg

    def _reactions_add(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        msg = self._reaction_target(args)
        name = args["name"].strip(":")
        for r in msg["reactions"]:
            if r["name"] == name:
                if self.bot_user_id in r["users"]:
                    raise _ApiError("already_reacted")
                r["users"].append(self.bot_user_id)
                r["count"] += 1
                break
        else:
            msg["reactions"].append({"name": name, "users": [self.bot_user_id], "count": 1})
        return {"ok": True}

    def _reactions_remove(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        msg = self._reaction_target(args)
        name = args["name"].strip(":")
        for r in msg["reactions"]:
            if r["name"] == name and self.bot_user_id in r["users"]:
                r["users"].remove(self.bot_user_id)
                r["count"] -= 1
                if not r["users"]:
                    msg["reactions"].remove(r)
                return {"ok": True}
        raise _ApiError("no_reaction")

    def _reactions_get(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        msg = self._find(args, "timestamp")
        return {
            "ok": True,
            "type": "message",
            "channel": msg["channel"],
            "message": self._public(msg),
        }

    def _store_view(self, view: Any, view_id: str | None = None) -> dict[str, Any]:
        if not isinstance(view, dict):
            raise _ApiError("invalid_arguments")
        stored = dict(view)
        stored["id"] = view_id or self._new_id("V")
        stored["hash"] = self._new_id("h.")
        stored.setdefault("private_metadata", "")
        stored.setdefault("callback_id", "")
        stored.setdefault("external_id", "")
        stored.setdefault("state", {"values": {}})
        stored.update({"team_id": self.team_id, "app_id": self.app_id, "bot_id": self.bot_id})
        self._views[stored["id"]] = stored
        return stored

    def _views_open(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        if not (args.get("trigger_id") or args.get("interactivity_pointer")):
            raise _ApiError("invalid_arguments")
        if str(args.get("trigger_id", "")).startswith("expired"):
            raise _ApiError("expired_trigger_id")
        return {"ok": True, "view": self._store_view(args.get("view"))}

    def _views_update(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        view_id = args.get("view_id")
        if not view_id and args.get("external_id"):
            for v in self._views.values():
                if v.get("external_id") == args["external_id"]:
                    view_id = v["id"]
        if not view_id or view_id not in self._views:
            raise _ApiError("not_found")
        if args.get("hash") and args["hash"] != self._views[view_id]["hash"]:
            raise _ApiError("hash_conflict")
        return {"ok": True, "view": self._store_view(args.get("view"), view_id)}

    def _views_publish(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        self._require(args, "user_id")
        return {"ok": True, "view": self._store_view(args.get("view"))}

    def _users_info(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        self._require(args, "user")
        uid = args["user"]
        user = self.users.get(uid) or _default_user(uid, self.team_id)
        return {"ok": True, "user": user}

    def _usergroups_users_list(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        if self.usergroups_error:
            raise _ApiError(self.usergroups_error)
        self._require(args, "usergroup")
        group = args["usergroup"]
        if group not in self.usergroups:
            raise _ApiError("no_such_subteam")
        return {"ok": True, "users": list(self.usergroups[group])}

    def _conversations_replies(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        """The parent and its thread (one page); metadata only with include_all_metadata."""
        self._require(args, "channel", "ts")
        channel, ts = args["channel"], args["ts"]
        if (channel, ts) not in self._messages:
            raise _ApiError("thread_not_found")
        with_meta = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        thread = [
            self._public({k: v for k, v in m.items() if with_meta or k != "metadata"})
            for m in self._posted
            if m["channel"] == channel
            and not m["ephemeral"]
            and not m.get("deleted")
            and (m["ts"] == ts or m.get("thread_ts") == ts)
        ]
        return {"ok": True, "messages": thread, "has_more": False}

    def _conversations_history(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        """The channel's top-level messages, newest first (one page); metadata only with
        include_all_metadata."""
        self._require(args, "channel")
        with_meta = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        messages = [
            self._public({k: v for k, v in m.items() if with_meta or k != "metadata"})
            for m in reversed(self._posted)
            if m["channel"] == args["channel"]
            and not m["ephemeral"]
            and not m.get("deleted")
            and not m.get("thread_ts")
        ]
        return {"ok": True, "messages": messages, "has_more": False}

    def _conversations_open(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        """A direct message channel with `users` (one user): ``D`` + the user id."""
        self._require(args, "users")
        users = str(args["users"]).split(",")
        if len(users) != 1:
            raise _ApiError("not_implemented")
        return {"ok": True, "channel": {"id": f"D{users[0]}", "is_im": True}}

    def dms(self, user: str) -> list[str]:
        """Texts of the direct messages sent to `user` (via conversations.open), oldest first."""
        return [m["text"] for m in self.messages(channel=f"D{user}")]

    def _conversations_info(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        self._require(args, "channel")
        cid = args["channel"]
        channel = self.channels.get(cid) or _default_channel(cid)
        return {"ok": True, "channel": channel}

    # ------------------------------------------------------------------ seeding

    def add_user(self, user_id: str, **fields: Any) -> dict[str, Any]:
        """Register a user for users.info (fields override the default profile)."""
        user = _default_user(user_id, self.team_id)
        profile = fields.pop("profile", None)
        user.update(fields)
        if profile:
            user["profile"].update(profile)
        self.users[user_id] = user
        return user

    def set_usergroup(self, group_id: str, members: list[str]) -> None:
        """Set the members usergroups.users.list returns for ``group_id``."""
        self.usergroups[group_id] = list(members)


class _ApiError(Exception):
    """Raised by method handlers to answer ``{"ok": false, "error": ...}``."""


def _default_user(uid: str, team_id: str) -> dict[str, Any]:
    name = uid.lower()
    return {
        "id": uid,
        "team_id": team_id,
        "name": name,
        "deleted": False,
        "real_name": f"User {uid}",
        "tz": "Europe/Paris",
        "tz_offset": 3600,
        "is_admin": False,
        "is_owner": False,
        "is_bot": False,
        "is_restricted": False,
        "is_ultra_restricted": False,
        "profile": {
            "real_name": f"User {uid}",
            "display_name": name,
            "email": f"{name}@example.com",
            "team": team_id,
        },
    }


def _default_channel(cid: str) -> dict[str, Any]:
    is_im = cid.startswith("D")
    return {
        "id": cid,
        "name": None if is_im else cid.lower(),
        "is_channel": cid.startswith("C"),
        "is_group": cid.startswith("G"),
        "is_im": is_im,
        "is_private": not cid.startswith("C"),
        "is_archived": False,
        "is_member": True,
        "created": 1700000000,
    }


def _parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    ctype = content_type.split(";")[0].strip().lower()
    args: dict[str, Any]
    if not raw:
        args = {}
    elif ctype == "application/json":
        parsed = json.loads(raw.decode("utf-8"))
        args = parsed if isinstance(parsed, dict) else {"_json": parsed}
    elif ctype == "multipart/form-data":
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
        )
        args = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            if part.get_filename():
                args[name] = payload
            else:
                args[name] = payload.decode("utf-8", "replace")
    else:
        args = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    for key in _JSON_FIELDS:
        value = args.get(key)
        if isinstance(value, str) and value[:1] in ("[", "{"):
            with contextlib.suppress(ValueError):
                args[key] = json.loads(value)
    return args

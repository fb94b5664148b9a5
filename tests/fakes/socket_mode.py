"""A fake Slack Socket Mode endpoint: a local WebSocket server (websockets.sync).

slack_sdk's built-in ``SocketModeClient`` (used by Bolt's ``SocketModeHandler``) gets
its URL from ``apps.connections.open`` (called with the ``xapp-`` token through the
Web API ``base_url``), so attach this fake to a :class:`~tests.fakes.slack_api.FakeSlack`
(``FakeSlack(socket_mode=fsm)`` or ``fake.attach_socket_mode(fsm)``). The built-in
client accepts a plain ``ws://127.0.0.1:PORT/...`` URL: it only uses TLS when the
port is 443 (it ignores the scheme).

On connection the fake sends ``hello``; the test then pushes envelopes with
:meth:`FakeSocketMode.send_envelope` and waits for the client's ack with
:meth:`FakeSocketMode.wait_ack`.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from .serving import BackgroundServer

__all__ = ["FakeSocketMode"]


class FakeSocketMode(BackgroundServer):
    """Local Socket Mode server on ``ws://127.0.0.1:PORT/link/``.

    Args:
        app_id: reported in the ``hello`` message.
        send_hello: set False to test a client that never gets ``hello``.

    Attributes:
        acks: ``{envelope_id: ack message}`` as sent by the client.
        received: every JSON message received from clients (acks included).
        sent: every envelope sent, oldest first.
    """

    def __init__(self, app_id: str = "A1", *, send_hello: bool = True) -> None:
        super().__init__()
        self.app_id = app_id
        self.send_hello = send_hello
        self.acks: dict[str, dict[str, Any]] = {}
        self.received: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.connections_opened = 0
        self._cond = threading.Condition(threading.RLock())
        self._conns: list[ServerConnection] = []
        self._retiring: list[ServerConnection] = []  # to close once a new one opens
        self._leaving: set[ServerConnection] = set()  # got "disconnect": no more envelopes
        self._send_lock = threading.Lock()
        self._seq = itertools.count(1)
        self._rr = itertools.count()

    # ------------------------------------------------------------------ lifecycle

    # websockets' serve_forever() takes no options. Note: stop() closes every connection,
    # so close the Socket Mode client/handler first, otherwise it reconnects.
    serve_options: ClassVar[dict[str, Any]] = {}

    def _make_server(self) -> Server:
        return serve(
            self._handler,
            "127.0.0.1",
            0,
            ping_interval=None,  # the client pings us; websockets answers pongs
            close_timeout=1,
            compression=None,
        )

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    def connection_url(self) -> str:
        """A fresh connection URL, as ``apps.connections.open`` returns (server must run)."""
        return f"ws://127.0.0.1:{self.port}/link/?ticket={uuid.uuid4()}&app_id={self.app_id}"

    # ------------------------------------------------------------------ server side

    def _handler(self, ws: ServerConnection) -> None:
        with self._cond:
            self._conns.append(ws)
            self.connections_opened += 1
            n = len(self._conns)
            retiring, self._retiring = self._retiring, []
            self._cond.notify_all()
        for old in retiring:
            # Close in the background: close() waits for the peer, and hello must not wait.
            threading.Thread(target=old.close, daemon=True).start()
        try:
            if self.send_hello:
                self._send(
                    ws,
                    {
                        "type": "hello",
                        "num_connections": n,
                        "debug_info": {
                            "host": "fake-socket-mode",
                            "build_number": 1,
                            "approximate_connection_time": 18060,
                        },
                        "connection_info": {"app_id": self.app_id},
                    },
                )
            for raw in ws:
                try:
                    msg = json.loads(raw)
                except (TypeError, ValueError):
                    continue
                with self._cond:
                    self.received.append(msg)
                    if isinstance(msg, dict) and "envelope_id" in msg:
                        self.acks[msg["envelope_id"]] = msg
                    self._cond.notify_all()
        except ConnectionClosed:
            pass
        finally:
            with self._cond:
                if ws in self._conns:
                    self._conns.remove(ws)
                self._leaving.discard(ws)
                self._cond.notify_all()

    def _send(self, ws: ServerConnection, message: dict[str, Any]) -> None:
        with self._send_lock:
            ws.send(json.dumps(message))

    # ------------------------------------------------------------------ test API

    @property
    def connected(self) -> int:
        """Number of currently open client connections."""
        with self._cond:
            return len(self._conns)

    def wait_connected(self, count: int = 1, timeout: float = 5) -> None:
        """Block until at least ``count`` clients are connected (``TimeoutError`` otherwise)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._conns) >= count, timeout):
                raise TimeoutError(f"{len(self._conns)} Socket Mode connection(s) after {timeout}s")

    def send_envelope(
        self,
        type: str,
        payload: dict[str, Any],
        envelope_id: str | None = None,
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        timeout: float = 5,
    ) -> str:
        """Send one envelope to a connected client (round robin); return its envelope_id.

        ``type`` is ``"slash_commands"``, ``"events_api"`` or ``"interactive"``; ``payload``
        is what Slack would POST in HTTP mode, as a dict (see ``signing.*_payload``).
        ``accepts_response_payload`` defaults to False for events, True otherwise.
        Events carry ``retry_attempt``/``retry_reason`` (default 0 / ""), which Bolt
        exposes as ``x-slack-retry-num`` / ``x-slack-retry-reason``. Waits up to
        ``timeout`` for a connection.
        """
        self.wait_connected(1, timeout)
        envelope_id = envelope_id or f"env-{next(self._seq):06d}-{uuid.uuid4().hex[:8]}"
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": type,
            "accepts_response_payload": (
                type != "events_api"
                if accepts_response_payload is None
                else accepts_response_payload
            ),
        }
        if type == "events_api" or retry_attempt is not None:
            envelope["retry_attempt"] = retry_attempt or 0
            envelope["retry_reason"] = retry_reason or ""
        with self._cond:
            conns = [c for c in self._conns if c not in self._leaving] or list(self._conns)
            self.sent.append(envelope)
        ws = conns[next(self._rr) % len(conns)]
        self._send(ws, envelope)
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 5) -> dict[str, Any]:
        """Wait for the client's ack of ``envelope_id``; return its ``payload`` (``{}`` if none).

        The whole ack message is in ``self.acks[envelope_id]``. Raises ``TimeoutError``.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: envelope_id in self.acks, timeout):
                raise TimeoutError(f"envelope {envelope_id} not acknowledged within {timeout}s")
            return self.acks[envelope_id].get("payload") or {}

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5) -> Any:
        """Block until ``predicate()`` is truthy, re-checked on every connection change and
        message received; returns its value or raises ``TimeoutError``."""
        with self._cond:
            result = self._cond.wait_for(predicate, timeout)
            if not result:
                raise TimeoutError(f"condition not met within {timeout}s")
            return result

    def acked(self, envelope_id: str) -> bool:
        """True if the client has acknowledged ``envelope_id``."""
        with self._cond:
            return envelope_id in self.acks

    def wait_connections_opened(self, count: int, timeout: float = 5) -> None:
        """Block until ``count`` connections have been opened in total (reconnects count)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.connections_opened >= count, timeout):
                raise TimeoutError(
                    f"{self.connections_opened} Socket Mode connection(s) opened after {timeout}s"
                )

    def send_disconnect(self, reason: str = "refresh_requested", close_old: bool = True) -> None:
        """Send Slack's ``disconnect`` message to every client; they open a new connection.

        With ``close_old`` the fake closes the old connections as soon as a new one opens
        (Slack waits a few seconds; the built-in client then blocks ~3 s in a socket read
        before it lets the old connection go). Follow with ``wait_connections_opened``.
        """
        with self._cond:
            conns = list(self._conns)
            self._leaving.update(conns)
            if close_old:
                self._retiring.extend(conns)
        for ws in conns:
            self._send(ws, {"type": "disconnect", "reason": reason, "debug_info": {}})

    def close_connections(self) -> None:
        """Close every open connection from the server side (clients may reconnect)."""
        with self._cond:
            conns = list(self._conns)
        for ws in conns:
            ws.close()

    def close_handler(self, handler: Any) -> None:
        """Close a Bolt ``SocketModeHandler`` (or slack_sdk ``SocketModeClient``) quickly.

        ``handler.close()`` alone takes up to ~4 s: the client's reader thread holds the
        socket lock in a ``recv`` with a 3 s timeout, and its message thread waits up to
        1 s on its queue. This turns auto-reconnect off, closes the connections from the
        server side (the reader wakes up on the close frame), wakes the message thread,
        then calls ``close()``.
        """
        client = getattr(handler, "client", handler)
        client.auto_reconnect_enabled = False
        client.default_auto_reconnect_enabled = False
        self.close_connections()
        client.closed = True
        client.message_queue.put(None)  # unblocks process_messages() at once
        handler.close()

    def reset(self) -> None:
        """Forget acks, received and sent messages."""
        with self._cond:
            self.acks.clear()
            self.received.clear()
            self.sent.clear()

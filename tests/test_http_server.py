"""The HTTP mode's server: HTTP/1.1 keep-alive, /healthz, a graceful stop (SIGTERM too)."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest
from bot_harness import CHANNEL, REQUESTER, SECRET, BotHarness
from fakes.signing import post_signed, signed_headers, slash_command_body
from process_harness import ProcessBot

from byoi_bot.slack.http import BODY_LIMIT, HttpServer
from byoi_bot.slack.modes import serve_in_thread


@pytest.fixture
def harness(tmp_path):
    h = BotHarness(tmp_path)
    yield h
    h.close()


def test_one_keep_alive_connection_carries_many_acks(harness):
    h = harness
    h.bot.start()  # /healthz: the scheduler runs
    conn = http.client.HTTPConnection("127.0.0.1", h.server.server_port, timeout=5)
    conn.connect()
    first_socket = conn.sock
    for i in range(5):
        body = slash_command_body(
            "help",
            user_id=REQUESTER,
            channel_id=CHANNEL,
            response_url=h.slack.response_url(f"k{i}"),
        )
        conn.request("POST", "/slack/events", body, signed_headers(SECRET, body))
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 200 and answer.version == 11
    assert conn.sock is first_socket, "the connection was kept open"
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    conn.close()


def test_stop_answers_the_requests_in_hand_and_refuses_new_ones():
    entered, release = threading.Event(), threading.Event()

    def slow(environ, start_response):
        entered.set()
        release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"acked"]

    server = HttpServer(slow, "127.0.0.1", 0)
    serving = serve_in_thread(server)
    port = server.server_port
    answers: list[tuple[int, bytes]] = []

    def in_flight() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/slack/events", b"x")
        answer = conn.getresponse()
        answers.append((answer.status, answer.read()))

    client = threading.Thread(target=in_flight)
    client.start()
    assert entered.wait(5)
    stopping = threading.Thread(target=server.stop)
    stopping.start()
    refused = False
    for _ in range(200):  # the listener closes within a loop turn
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            refused = True
            break
        stopping.join(0.01)
    release.set()
    client.join(10)
    stopping.join(10)
    serving.join(10)
    assert refused, "new connections are refused once stopping"
    assert answers == [(200, b"acked")], "the request in hand was answered"
    assert not serving.is_alive()


def test_sigterm_stops_the_bot_cleanly(tmp_path):
    bot = ProcessBot(tmp_path)
    try:
        bot.start()
        bot.proc.send_signal(signal.SIGTERM)
        assert bot.proc.wait(timeout=20) == 0, bot.log()
        assert "Traceback" not in bot.log()
    finally:
        bot.close()


# -- bodies over the cap, Slack's ssl_check, payloads that only need an ack (issue 18) ----


def raw_exchange(port: int, head: bytes, body_chunks=(), timeout: float = 5) -> bytes:
    """Send `head`, then `body_chunks` while the server reads; return what it answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except OSError:  # the server answered and closed while the body was on its way
            pass
        answer = b""
        while data := sock.recv(65536):
            answer += data
            if b"\r\n\r\n" in answer:
                break
        return answer


def post_head(length: int | str | None, *, chunked: bool = False) -> bytes:
    lines = ["POST /slack/events HTTP/1.1", "Host: 127.0.0.1", "Content-Type: text/plain"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_body_over_the_cap_is_refused_before_it_is_read(harness):
    port = harness.server.server_port
    answer = raw_exchange(port, post_head(64 * 1024 * 1024))  # no body sent at all
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    answer = raw_exchange(port, post_head(BODY_LIMIT + 1))
    assert answer.startswith(b"HTTP/1.1 413")


def test_a_chunked_body_is_refused_once_it_passes_the_cap(harness):
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
    chunks = (chunk for _ in range(4 * BODY_LIMIT // (64 * 1024)))  # 4 MiB offered
    answer = raw_exchange(harness.server.server_port, post_head(None, chunked=True), chunks)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]


@pytest.mark.parametrize("length", ["-1", "12abc", "1e9", " "])
def test_an_odd_content_length_is_a_plain_400(harness, length):
    answer = raw_exchange(harness.server.server_port, post_head(length))
    assert answer.startswith(b"HTTP/1.1 400"), answer[:80]


def test_a_body_at_the_cap_is_read_and_checked(harness):
    body = "x" * BODY_LIMIT
    status, _ = post_signed(harness.url, body, SECRET, headers={"X-Slack-Signature": "v0=0"})
    assert status == 401


def test_slacks_unsigned_ssl_check_is_answered_200_and_does_nothing(harness):
    h = harness
    body = "ssl_check=1&token=legacy-verification-token&command=/byoi&text=list"
    request = urllib.request.Request(
        h.url, data=body.encode(), method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=5) as answer:
        assert answer.status == 200
    assert h.slack.calls_to("response_url") == []
    status, _ = post_signed(h.url, "ssl_check=0&x=1", SECRET, headers={"X-Slack-Signature": ""})
    assert status == 401, "only ssl_check=1 skips the signature"


def test_a_closed_modal_and_a_menu_asking_for_options_are_acknowledged(harness):
    h = harness
    closed = {
        "type": "view_closed",
        "team": {"id": "T1"},
        "user": {"id": REQUESTER},
        "view": {"id": "V1", "callback_id": "byoi_deploy_form", "type": "modal"},
        "is_cleared": False,
    }
    suggestion = {
        "type": "block_suggestion",
        "team": {"id": "T1"},
        "user": {"id": REQUESTER},
        "action_id": "byoi_server",
        "block_id": "server",
        "value": "ns1",
    }
    for payload in (closed, suggestion):
        body = urllib.parse.urlencode({"payload": json.dumps(payload)})
        status, text = post_signed(h.url, body, SECRET)
        assert status == 200, (payload["type"], text)
        if payload["type"] == "block_suggestion":
            assert json.loads(text) == {"options": []}


@pytest.mark.parametrize(
    "body",
    [b"ssl_check=1&ssl_check=1", b"SSL_CHECK=1", b"ssl_check=true", b"\xff\xfessl_check=1",
     b'{"ssl_check": 1}', b"ssl_check=1\x00"],
)  # fmt: skip
def test_anything_but_slacks_own_ssl_check_still_needs_a_signature(harness, body):
    request = urllib.request.Request(
        harness.url, data=body, method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(request, timeout=5)
    assert refused.value.code == 401

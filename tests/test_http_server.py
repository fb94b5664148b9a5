"""The HTTP mode's server: HTTP/1.1 keep-alive, /healthz, a graceful stop (SIGTERM too)."""

from __future__ import annotations

import http.client
import signal
import socket
import threading

import pytest
from bot_harness import CHANNEL, REQUESTER, SECRET, BotHarness
from fakes.signing import signed_headers, slash_command_body
from process_harness import ProcessBot

from byoi_bot.slack.http import HttpServer
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

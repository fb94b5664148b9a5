"""Ack first: slow preflights never delay an ack, and every request is answered once."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from bot_harness import APPROVER, CHANNEL, REQUESTER, SECRET, BotHarness
from fakes.signing import (
    block_action_body,
    event_body,
    post_signed,
    reaction_event,
    slash_command_body,
    view_submission_body,
)

from byoi_bot.slack.app import build_app
from byoi_bot.slack.modes import http_server, serve_in_thread
from byoi_bot.slack.work import BUSY, Work

SERVER = "ns1001.ip-51-75-1.eu"
ACK_LIMIT = 3.0


class HeldImages:
    """An image server that holds every request until `release()` (then answers 404)."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.arrived = threading.Semaphore(0)
        held = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                held.arrived.release()
                held.released.wait(30)
                self.send_error(404)

            do_HEAD = do_GET

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def wait_arrivals(self, count: int) -> None:
        for _ in range(count):
            assert self.arrived.acquire(timeout=10), "preflights did not reach the image server"

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def held():
    images = HeldImages()
    yield images
    images.close()


@pytest.fixture
def harness(tmp_path):
    h = BotHarness(tmp_path)
    yield h
    h.close()


def timed_post(url: str, body: str) -> tuple[float, int, str]:
    start = time.monotonic()
    status, text = post_signed(url, body, SECRET)
    return time.monotonic() - start, status, text


def deploy_body(h: BotHarness, images: HeldImages, name: str) -> str:
    text = f"deploy {SERVER} {images.url}/{name}.qcow2 efi-bootloader=x.efi"
    return slash_command_body(
        text, user_id=REQUESTER, channel_id=CHANNEL, response_url=h.slack.response_url(name)
    )


def test_slow_preflights_delay_no_ack_and_every_request_is_answered_once(harness, held):
    h, slow = harness, 16  # more than Bolt's 5 listener threads, as many as preflight threads
    with ThreadPoolExecutor(slow) as pool:
        deploys = list(
            pool.map(lambda i: timed_post(h.url, deploy_body(h, held, f"d{i}")), range(slow))
        )
    held.wait_arrivals(slow)  # every preflight hangs on the image server

    others = {
        "help": slash_command_body(
            "help", user_id=REQUESTER, channel_id=CHANNEL, response_url=h.slack.response_url("help")
        ),
        "list": slash_command_body(
            "list", user_id=REQUESTER, channel_id=CHANNEL, response_url=h.slack.response_url("list")
        ),
        "button": block_action_body(
            "byoi_approve",
            "r-unknwn",
            user_id=APPROVER,
            channel_id=CHANNEL,
            response_url=h.slack.response_url("button"),
        ),
        "reaction": event_body(reaction_event(user=APPROVER, channel=CHANNEL, ts="1.000001")),
        "form": view_submission_body(
            "byoi_deploy_form",
            {"server": {"value": SERVER}, "url": {"value": f"{held.url}/form.qcow2"}},
            user_id=REQUESTER,
            private_metadata=json.dumps({"channel": CHANNEL}),
        ),
        "open form": slash_command_body(
            "deploy", user_id=REQUESTER, channel_id=CHANNEL, response_url=h.slack.response_url("o")
        ),
    }
    acks = {name: timed_post(h.url, body) for name, body in others.items()}
    opened = h.slack.wait_for_call("views.open", timeout=ACK_LIMIT)

    for name, (seconds, status, text) in [*acks.items(), *enumerate(deploys)]:
        assert status == 200 and seconds < ACK_LIMIT, (name, seconds, status, text)
    assert all("Checking `" in text for _, _, text in deploys)  # the ack itself says so
    assert opened.ok
    assert "/byoi commands" in acks["help"][2]  # answered in the ack, while preflights hang
    assert h.wait_answer("r-unknwn", user="button")

    held.released.set()
    names = [f"d{i}" for i in range(slow)]
    h.slack.wait_for(lambda: all(h.slack.responses(n) for n in names), timeout=20)
    h.slack.wait_for(
        lambda: any(m["ephemeral"] for m in h.slack.messages(channel=CHANNEL)), timeout=10
    )  # the form's refusal, told to its author alone
    assert h.slack.responses("help") == [], "help was answered once, in its ack"
    for name in [*names, "list", "button"]:
        answers = [r.get("text", "") for r in h.slack.responses(name)]
        assert len(answers) == 1, (name, answers)
        assert "only knows" not in answers[0]
    assert h.slack.responses("o") == []  # the form opened; nothing else said
    assert len([m for m in h.slack.messages(channel=CHANNEL) if m["ephemeral"]]) == 1


def test_a_full_preflight_queue_answers_busy_at_once(harness, held):
    h = harness
    app = build_app(
        h.bot.deployments.chat.client,
        SECRET,
        h.bot.deployments,
        h.bot.store,
        preflights=Work(workers=1, queue=1),
    )
    server = http_server(app, "127.0.0.1", 0, lambda *_: None, SECRET)
    serve_in_thread(server)
    url = f"http://127.0.0.1:{server.server_port}/slack/events"
    try:
        for name in ("first", "second"):
            assert timed_post(url, deploy_body(h, held, name))[1] == 200
        held.wait_arrivals(1)
        seconds, status, _ = timed_post(url, deploy_body(h, held, "third"))
        assert status == 200 and seconds < ACK_LIMIT
        assert h.wait_answer("busy", user="third") == BUSY
        assert h.slack.responses("first") == h.slack.responses("second") == []
    finally:
        held.released.set()
        server.shutdown()
        server.server_close()


def test_app_rate_limited_is_answered_200(harness):
    notice = {
        "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
        "type": "app_rate_limited",
        "team_id": "T1",
        "minute_rate_limited": 1518467820,
        "api_app_id": "A1",
    }
    assert post_signed(harness.url, json.dumps(notice), SECRET)[0] == 200

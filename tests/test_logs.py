"""Logs an operator can live with (issue 22): quiet libraries, request ids, JSON, one start-up
line, and an idle bot that says nothing."""

from __future__ import annotations

import io
import json
import logging

import pytest
from process_harness import ProcessBot, wait_until
from slack_bolt import App
from slack_sdk import WebClient

from byoi_bot import __version__, logs


@pytest.fixture
def captured():
    """The root logger configured by `logs.configure`, into a buffer; restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("byoi_bot").level)
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    logging.getLogger("byoi_bot").setLevel(saved[2])


def test_libraries_log_warnings_only_unless_asked(captured):
    logs.configure("INFO", "WARNING", "text", captured)
    logging.getLogger("apscheduler.executors.default").info('Running job "poll"')
    logging.getLogger("slack_sdk.socket_mode").info("A new session has been established")
    logging.getLogger("waitress").warning("queue depth 10")
    logging.getLogger("byoi_bot.poller").info("ours")
    lines = captured.getvalue().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "WARNING waitress: queue depth 10",
        "INFO byoi_bot.poller: ours",
    ]

    logs.configure("WARNING", "INFO", "text", captured)
    logging.getLogger("apscheduler.executors.default").info("asked for")
    logging.getLogger("byoi_bot.poller").info("not asked for")
    assert "asked for" in captured.getvalue() and "not asked for" not in captured.getvalue()


def test_a_line_about_a_request_carries_its_id(captured):
    logs.configure("INFO", "WARNING", "text", captured)
    log = logging.getLogger("byoi_bot.test")
    with logs.about("r-abc234"):
        log.warning("OVHcloud did not answer")  # says nothing of the request itself
    log.info("poll %s: failed", "r-xyz789")  # names it: not repeated
    log.info("fleet %s rolled out", "f-mnp456")
    log.info("no request here: %s", "r-not-an-id")
    lines = captured.getvalue().splitlines()
    assert lines[0].endswith("byoi_bot.test: [r-abc234] OVHcloud did not answer")
    assert lines[1].endswith("byoi_bot.test: poll r-xyz789: failed")
    assert lines[2].endswith("byoi_bot.test: fleet f-mnp456 rolled out")
    assert "[" not in lines[3]


def test_json_lines_are_one_object_each_with_the_request_id(captured):
    logs.configure("INFO", "WARNING", "json", captured)
    log = logging.getLogger("byoi_bot.test")
    with logs.about("r-abc234"):
        log.info('quote " and newline\nkept in one line')
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed %s", "r-xyz789")
    first, second = (json.loads(line) for line in captured.getvalue().splitlines())
    assert first["level"] == "INFO" and first["logger"] == "byoi_bot.test"
    assert first["message"] == 'quote " and newline\nkept in one line'
    assert first["request_id"] == "r-abc234" and first["time"].startswith("20")
    assert second["request_id"] == "r-xyz789" and "ValueError: boom" in second["exc_info"]


def test_bolt_does_not_warn_that_the_token_from_the_environment_is_unused(captured, monkeypatch):
    logs.configure("INFO", "WARNING", "text", captured)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-the-environment")
    App(
        client=WebClient(token="xoxb-given", base_url="http://127.0.0.1:9/api/"),
        signing_secret="x" * 32,
        token_verification_enabled=False,
    )
    assert captured.getvalue() == ""


def test_a_running_bot_says_who_it_is_once_and_nothing_while_idle(tmp_path):
    bot = ProcessBot(tmp_path, socket_mode=True)
    bot.env |= {"BYOI_LOG_FORMAT": "json", "BYOI_POLL_SECONDS": "1"}
    policies = len(bot.simulator.boots.ports()) + 1  # one per server (its SSH port), the default
    try:
        bot.start()
        # idle: ten poll cycles (one a second), expiry sweeps, rollout and retry checks run
        wait_until(lambda: _poll_cycles(bot) >= 10, 30, "ten poll cycles")
        status, _ = bot.terminate()
        assert status == 0
    finally:
        bot.close()
    lines = [json.loads(line) for line in bot.log_path(1).read_text().splitlines()]
    messages = [line["message"] for line in lines]
    (startup,) = [m for m in messages if " starting: " in m]
    assert startup.startswith(f"byoi-bot {__version__} starting: mode=socket store=sqlite:")
    assert "slack_team='Test Team (T1)'" in startup
    assert f"policies={policies} approvers=1" in startup
    assert bot.slack.bot_token not in startup and "SECRET" not in startup.upper()
    assert messages == [
        startup,
        messages[1],  # where health and metrics are served
        "connected to Slack in Socket Mode",
        "SIGTERM: stopping (at most 10 s)",
        "stopped",
    ], "an idle bot logs nothing between start-up and stop"
    assert messages[1].startswith("health and metrics on http://0.0.0.0:")


def _poll_cycles(bot: ProcessBot) -> float:
    for line in bot.get("/metrics")[1].decode().splitlines():
        if line.startswith("byoi_poll_cycle_duration_seconds_count"):
            return float(line.split()[-1])
    return 0.0

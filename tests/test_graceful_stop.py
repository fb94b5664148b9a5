"""SIGTERM to a real `byoi-bot run` mid-deploy: a clean, bounded stop, and a next process that
resumes the deployment without a second start call (issue 22).

The bot runs as a child process against the fake Slack (Web API, and Socket Mode through a
FakeSocketMode) and the OVHcloud simulator, which counts the start calls; a datagram socket
plays systemd's NOTIFY_SOCKET (READY=1, STOPPING=1).
"""

from __future__ import annotations

import signal
import socket
import time

import pytest
from process_harness import APPROVER, SERVER, ProcessBot, wait_until

pytestmark = pytest.mark.timeout(120)

STOP_TIMEOUT = 10.0  # BYOI_STOP_TIMEOUT's default


@pytest.mark.parametrize("socket_mode", [False, True], ids=["http", "socket-mode"])
def test_sigterm_mid_deploy_stops_within_the_timeout_and_the_next_run_resumes(
    tmp_path, socket_mode
):
    bot = ProcessBot(tmp_path, deploy_seconds=12.0, socket_mode=socket_mode)
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # as systemd's for Type=notify
    systemd.bind(str(tmp_path / "notify"))
    systemd.settimeout(10)
    bot.env["NOTIFY_SOCKET"] = str(tmp_path / "notify")
    try:
        bot.start()
        assert systemd.recv(100) == b"READY=1"
        card = bot.deploy()
        bot.react(APPROVER, card["ts"])
        bot.wait_state("deploying")
        wait_until(lambda: bot.api_calls("GET", "/install/status"), what="a poll")

        status, seconds = bot.terminate()
        log = bot.log()
        assert status == 0, log
        assert seconds < STOP_TIMEOUT, f"stopped in {seconds:.1f} s"
        assert "SIGTERM: stopping" in log and log.rstrip().endswith("stopped"), log
        assert "Traceback" not in log
        assert bot.state() == "deploying"
        assert systemd.recv(100) == b"STOPPING=1"

        bot.start()
        assert bot.wait_state("done", timeout=40)["state"] == "done"
        assert bot.starts() == 1, "the next process resumed the deployment, not restarted it"
    finally:
        bot.close()
        systemd.close()


def deploying_with_a_poll_held(bot: ProcessBot) -> None:
    """Start the bot, approve a deploy, and have OVHcloud hold its next poll for 30 s."""
    bot.start()
    card = bot.deploy()
    bot.react(APPROVER, card["ts"])
    bot.wait_state("deploying")
    bot.simulator.inject(delay_seconds=30, method="GET", paths=f"/dedicated/server/{SERVER}/*")
    calls = len(bot.simulator.calls())
    wait_until(lambda: len(bot.simulator.calls()) > calls, what="a poll held by OVHcloud")


def test_a_poll_that_outlives_the_stop_timeout_is_left_to_the_next_run(tmp_path):
    bot = ProcessBot(tmp_path, deploy_seconds=12.0)
    bot.env["BYOI_STOP_TIMEOUT"] = "2s"
    try:
        deploying_with_a_poll_held(bot)

        status, seconds = bot.terminate()
        assert status == 1 and seconds < 2 + 2, (status, seconds, bot.log())
        assert "not stopped after 2 s (still running: " in bot.log()
        bot.simulator.clear_faults()
        bot.start()
        assert bot.wait_state("done", timeout=40)["state"] == "done"
        assert bot.starts() == 1
    finally:
        bot.close()


def test_postgresql_leadership_is_given_up_at_once_on_sigterm(tmp_path, postgres_dsn):
    a = ProcessBot(tmp_path, db=postgres_dsn)
    a.name = "a"
    b = a.replica("b")
    try:
        a.start()
        b.start()
        assert b"byoi_leader 1.0" in a.get("/metrics")[1]
        assert b"byoi_leader 0.0" in b.get("/metrics")[1]
        started = time.monotonic()
        status, _ = a.terminate()
        assert status == 0, a.log()
        wait_until(lambda: b"byoi_leader 1.0" in b.get("/metrics")[1], 5, "b leads")
        took = time.monotonic() - started
        assert took < 2.5, f"b led {took:.1f} s after a's SIGTERM (it tries every second)"
    finally:
        b.close()
        a.close()


def test_a_second_signal_during_a_stop_exits_at_once(tmp_path):
    bot = ProcessBot(tmp_path, deploy_seconds=12.0)
    try:
        deploying_with_a_poll_held(bot)
        bot.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "SIGTERM: stopping" in bot.log(), what="the stop")
        started = time.monotonic()
        bot.proc.send_signal(signal.SIGINT)
        assert bot.proc.wait(timeout=STOP_TIMEOUT) == 1
        assert time.monotonic() - started < 2
        assert "SIGINT again: exiting now" in bot.log()
    finally:
        bot.close()

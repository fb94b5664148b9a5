"""The bot as a real subprocess (`byoi-bot run --http`, or `run` in Socket Mode), for crash,
restart and stop tests.

The test process runs the fakes the bot talks to: a FakeSlack (SLACK_API_URL), the OVHcloud
simulator (OVH_ENDPOINT) and the demo image server. The bot process is started, killed with
SIGKILL (or stopped with SIGTERM) and started again on the same database; the test drives it
with signed requests to /slack/events (Socket Mode: envelopes through a FakeSocketMode) and
reads its state from the database, as an operator would. `replica()`
adds another bot process on the same database and fakes (PostgreSQL only).

Everything binds 127.0.0.1. Waits poll an observable condition with a deadline.
"""

from __future__ import annotations

import copy
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot_harness import CHANNEL, ChannelView
from fakes.signing import (
    event_body,
    event_payload,
    post_signed,
    reaction_event,
    slash_command_body,
    slash_command_payload,
)
from fakes.slack_api import FakeSlack
from fakes.socket_mode import FakeSocketMode

from byoi_bot.console.image_server import ImageServer
from byoi_bot.console.images import demo_images
from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator

SECRET = "8f742231b10e8888abcd99aaabbb85a5"
REQUESTER, APPROVER = "U0ALICE", "U0BOB"
SERVER = "ns1001.ip-51-75-1.eu"
EVENTS = "/slack/events"
ROOT = Path(__file__).resolve().parents[1]  # the checkout, so the child imports this code
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_DROPPED_ENV = ("BYOI_", "SLACK_", "OVH_")
_PROXIES = {"http_proxy", "https_proxy", "all_proxy"}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    predicate: Callable[[], Any], timeout: float = 10, what: str = "", step: float = 0.05
) -> Any:
    """Poll `predicate` until it is truthy or `timeout` seconds pass (then AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(step)


class ProcessBot(ChannelView):
    """FakeSlack + simulator + image server here, the bot in a child process; `close()` all."""

    wait_seconds = 15.0  # a child process answers more slowly than an in-process bot

    def __init__(
        self,
        tmp_path: Path,
        *,
        deploy_seconds: float = 70.0,
        db: str | None = None,
        socket_mode: bool = False,
        simulator_clock: Callable[[], float] | None = None,
    ) -> None:
        self.tmp = tmp_path
        self.name = "bot"
        self.owns_services = True
        self.slack = FakeSlack().start()
        self.socket_mode = FakeSocketMode().start() if socket_mode else None
        if self.socket_mode:
            self.slack.attach_socket_mode(self.socket_mode)
        self.simulator = Simulator(
            deploy_seconds=deploy_seconds, clock=simulator_clock, credentials=DEMO_CREDENTIALS
        )
        self.endpoint = self.simulator.start(host="127.0.0.1", port=0)
        self.images = ImageServer(demo_images()).start()
        self.db = db or str(tmp_path / "byoi.db")  # a SQLite file or a PostgreSQL URL
        self.proc: subprocess.Popen | None = None
        self.runs = 0
        self.url = ""
        self.ops_url = ""  # /healthz, /readyz and /metrics on BYOI_METRICS_PORT
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(_DROPPED_ENV) and k.lower() not in _PROXIES
        }
        self.env = env | {
            "BYOI_CONFIG": self._boot_ports(),
            "BYOI_DB": self.db,
            "BYOI_APPROVERS": APPROVER,
            "BYOI_POLL_SECONDS": "1",
            "BYOI_URL_ALLOWLIST": "127.0.0.1/32",
            "BYOI_LOG_LEVEL": "INFO",
            "SLACK_BOT_TOKEN": self.slack.bot_token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_APP_TOKEN": self.slack.app_token,
            "SLACK_API_URL": self.slack.base_url,
            "OVH_ENDPOINT": self.endpoint,
            **{f"OVH_{k.upper()}": v for k, v in DEMO_CREDENTIALS.items()},
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        }

    def _boot_ports(self) -> str:
        """A policy file giving each simulated server's SSH port to the boot gate (the
        production way: the IP from OVHcloud, the port from the server's policy)."""
        path = self.tmp / "boot-ports.toml"
        path.write_text("".join(
            f'[[policy]]\npattern = "{name}"\nboot_ssh_port = {port}\n\n'
            for name, port in self.simulator.boots.ports().items()
        ))  # fmt: skip
        return str(path)

    # -- the process ----------------------------------------------------------------

    def start(self, timeout: float = 20) -> None:
        """Start `byoi-bot run --http` on a free port (Socket Mode: `run`, health and metrics
        on a free BYOI_METRICS_PORT); return once /healthz answers 200."""
        assert self.proc is None or self.proc.poll() is not None, "the bot is already running"
        for _attempt in range(3):
            self.runs += 1
            port, ops_port = free_port(), free_port()
            log = open(self.log_path(self.runs), "wb")  # noqa: SIM115 (closed by the child's end)
            command = [sys.executable, "-m", "byoi_bot.cli", "run"]
            if not self.socket_mode:
                command += ["--http", "--host", "127.0.0.1", "--port", str(port)]
            self.proc = subprocess.Popen(
                command,
                env=self.env | {"BYOI_METRICS_PORT": str(ops_port)},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.tmp,
            )
            log.close()
            self.url = f"http://127.0.0.1:{port}{EVENTS}"
            self.ops_url = f"http://127.0.0.1:{ops_port}"
            health = f"{self.ops_url if self.socket_mode else self.url[: -len(EVENTS)]}/healthz"
            if self._healthy(health, timeout):
                if self.socket_mode:
                    wait_until(self._connected, timeout, "the Socket Mode connection")
                return
            if b"Address already in use" not in self.log_path(self.runs).read_bytes():
                break
        raise AssertionError(f"the bot did not start:\n{self.log()}")

    def _healthy(self, url: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with _NO_PROXY.open(url, timeout=1) as answer:
                    if answer.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        return False

    def _connected(self) -> bool:
        return bool(self.socket_mode.connected)

    def get(self, path: str) -> tuple[int, bytes]:
        """GET `path` on the health and metrics port: status and body."""
        try:
            with _NO_PROXY.open(self.ops_url + path, timeout=5) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def terminate(self, timeout: float = 30) -> tuple[int, float]:
        """SIGTERM the bot; its exit status and how many seconds it took to exit."""
        assert self.proc is not None and self.proc.poll() is None, "the bot is not running"
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        status = self.proc.wait(timeout=timeout)
        return status, time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL the bot (no clean-up runs in it) and reap it."""
        assert self.proc is not None and self.proc.poll() is None, "the bot is not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def restart(self) -> None:
        """A fresh process on the same SQLite file."""
        self.start()

    def replica(self, name: str) -> ProcessBot:
        """Another bot process on the same database and fakes; its `close()` stops it alone."""
        other = copy.copy(self)
        other.name, other.owns_services = name, False
        other.proc, other.runs, other.url = None, 0, ""
        return other

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        if not self.owns_services:
            return
        self.images.stop()
        self.simulator.stop()
        if self.socket_mode:
            self.socket_mode.stop()
        self.slack.stop()

    def log_path(self, run: int) -> Path:
        return self.tmp / f"{self.name}-{run}.log"

    def log(self) -> str:
        """Every run's output, for failure messages."""
        parts = []
        for run in range(1, self.runs + 1):
            path = self.log_path(run)
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {self.name} run {run} ---\n{text[-6000:]}")
        return "\n".join(parts)

    # -- what users do --------------------------------------------------------------

    def slash(self, text: str, user: str = REQUESTER) -> int:
        if self.socket_mode:
            payload = slash_command_payload(
                text, user_id=user, channel_id=CHANNEL, response_url=self.slack.response_url(user)
            )
            self.socket_mode.wait_ack(self.socket_mode.send_envelope("slash_commands", payload))
            return 200
        body = slash_command_body(
            text, user_id=user, channel_id=CHANNEL, response_url=self.slack.response_url(user)
        )
        status, _ = post_signed(self.url, body, SECRET)
        return status

    def react(
        self, user: str, ts: str, reaction: str = "white_check_mark", event_id: str | None = None
    ) -> int:
        event = reaction_event(user=user, reaction=reaction, channel=CHANNEL, ts=ts)
        if self.socket_mode:
            envelope = self.socket_mode.send_envelope("events_api", event_payload(event, event_id))
            self.socket_mode.wait_ack(envelope)
            return 200
        status, _ = post_signed(self.url, event_body(event, event_id=event_id), SECRET)
        return status

    def deploy(self, image: str = "debian-12.qcow2", server: str = SERVER, count: int = 1) -> dict:
        """`/byoi deploy` of `server`; returns the card (the `count`th) once it offers ✅ and ❌."""
        efi = 'efi-bootloader="\\efi\\debian\\grubx64.efi"'
        assert self.slash(f"deploy {server} {self.images.base_url}/{image} {efi}") == 200
        return self.wait_card(count)

    # -- what tests look at ---------------------------------------------------------

    def rows(self) -> list[dict]:
        """The requests table, read from the database by another connection."""
        return self._query("SELECT * FROM requests ORDER BY created_at")

    def audit(self) -> list[dict]:
        """The audit log, oldest first."""
        return self._query("SELECT * FROM audit ORDER BY id")

    def _query(self, sql: str) -> list[dict]:
        if self.db.startswith("postgresql://"):
            import psycopg
            from psycopg.rows import dict_row

            with psycopg.connect(self.db, row_factory=dict_row) as conn:
                return conn.execute(sql).fetchall()
        conn = sqlite3.connect(self.db, timeout=5)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql)]
        finally:
            conn.close()

    def state(self) -> str | None:
        rows = self.rows()
        return rows[-1]["state"] if rows else None

    def wait_state(self, *states: str, timeout: float = 15) -> dict:
        wait_until(lambda: self.state() in states, timeout, f"state in {states}; {self.rows()}")
        return self.rows()[-1]

    def api_calls(self, method: str, path_end: str) -> list[dict]:
        return [
            c
            for c in self.simulator.calls()
            if c["method"] == method and c["path"].endswith(path_end)
        ]

    def starts(self) -> int:
        """How many deployment start calls reached the simulator."""
        return len(self.api_calls("POST", "/reinstall")) + len(
            self.api_calls("POST", "/bringYourOwnImage")
        )

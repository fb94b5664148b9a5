"""A newcomer never sees a traceback: every sub-command, run as a real process with an empty
environment or with bogus values, answers in one line naming what to fix.

Every address below is on 127.0.0.1 (port 9 is closed): nothing leaves the machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

CLOSED = "http://127.0.0.1:9"
TOKENS = {
    "SLACK_BOT_TOKEN": "xoxb-1-newcomer",
    "SLACK_APP_TOKEN": "xapp-1-newcomer",
    "SLACK_SIGNING_SECRET": "0123456789abcdef0123456789abcdef",
    "SLACK_API_URL": f"{CLOSED}/api/",
}
OVH_KEYS = {
    "OVH_ENDPOINT": f"{CLOSED}/1.0",
    "OVH_APPLICATION_KEY": "ak",
    "OVH_APPLICATION_SECRET": "as",
    "OVH_CONSUMER_KEY": "ck",
}
IMAGE = f"{CLOSED}/debian-12.qcow2"


@dataclass(frozen=True)
class Case:
    """One command line, its environment, and the answer a newcomer must get."""

    argv: tuple[str, ...]
    env: dict = field(default_factory=dict)
    code: int = 2
    says: str = ""

    def __str__(self) -> str:
        return (
            " ".join(f"{k}={v}" for k, v in self.env.items()) + " byoi-bot " + " ".join(self.argv)
        )


def _port_in_use() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, sock.getsockname()[1]


HOLDER, BUSY_PORT = _port_in_use()
RUN_HTTP = ("run", "--http", "--host", "127.0.0.1", "--port", "0")
READY = TOKENS | OVH_KEYS

CASES = [
    # Nothing set at all.
    Case(("run",), says="SLACK_BOT_TOKEN: not set (expected xoxb-"),
    Case(RUN_HTTP, says="SLACK_BOT_TOKEN: not set"),
    Case(("inspect", IMAGE, "--server", "ns1.example.net"), says="OVH_ENDPOINT is not set"),
    Case(("audit",), code=1, says="no store at ./byoi.db (BYOI_DB): nothing recorded yet"),
    Case(("audit", "r-abcdef"), code=1, says="no store at"),
    Case(("config-reference",), code=0),
    Case(("simulator", "--inventory", "/nonexistent.json"), says="--inventory /nonexistent.json"),
    Case(("shell", "--inventory", "/nonexistent.json"), says="No such file or directory"),
    # Bogus values.
    Case(RUN_HTTP, TOKENS | {"OVH_ENDPOINT": "bogus"}, says="OVH_ENDPOINT: `bogus` is not an"),
    Case(
        ("inspect", IMAGE, "--server", "ns1.example.net"),
        {"OVH_ENDPOINT": "ovh-moon"},
        says="OVH_ENDPOINT: `ovh-moon` is not an OVHcloud endpoint",
    ),
    Case(RUN_HTTP, TOKENS | {"OVH_ENDPOINT": f"{CLOSED}/api"}, says="must end with /1.0"),
    Case(RUN_HTTP, TOKENS | {"OVH_ENDPOINT": f"{CLOSED}/1.0"}, says="credentials: none are set"),
    Case(
        RUN_HTTP,
        TOKENS | {"OVH_ENDPOINT": f"{CLOSED}/1.0", "OVH_APPLICATION_KEY": "ak"},
        says="OVH_APPLICATION_KEY and OVH_APPLICATION_SECRET must be set together",
    ),
    Case(RUN_HTTP, READY | {"BYOI_DB": "/nonexistent/dir/byoi.db"}, says="BYOI_DB: cannot open"),
    Case(RUN_HTTP, READY | {"BYOI_APPROVAL_TTL": "0m"}, says="BYOI_APPROVAL_TTL: `0m` is no time"),
    Case(RUN_HTTP, READY | {"BYOI_APPROVERS": "alice,@bob"}, says="are not Slack IDs"),
    Case(RUN_HTTP, READY | {"SLACK_BOT_TOKEN": "bogus"}, says="does not look like xoxb-"),
    Case(("run",), READY | {"SLACK_APP_TOKEN": ""}, says="SLACK_APP_TOKEN: not set"),
    Case(("run", "--http"), READY | {"SLACK_SIGNING_SECRET": "x"}, says="32 hex digits"),
    Case(("run",), READY, code=1, says="cannot reach Slack at http://127.0.0.1:9/api/"),
    Case(
        ("run", "--http", "--host", "127.0.0.1", "--port", str(BUSY_PORT)),
        READY,
        code=1,
        says=f"cannot listen on 127.0.0.1:{BUSY_PORT}",
    ),
    Case(("simulator", "--port", str(BUSY_PORT)), code=1, says="cannot listen"),
    Case(RUN_HTTP, READY | {"BYOI_DB": ":memory:"}, says="BYOI_DB: `:memory:` would keep"),
    Case(("audit",), {"BYOI_DB": ":memory:"}, says="only until the bot stops"),
    # Values argparse refuses (exit 2, its usage line and one error line).
    Case(("simulator", "--port", "99999"), says="'99999' is not a port: expected a whole"),
    Case(("run", "--http", "--port", "99999"), READY, says="'99999' is not a port"),
    Case(("run", "--http", "--port", "http"), READY, says="'http' is not a port"),
    Case(("shell", "--deploy-seconds", "nan"), says="'nan' is not a duration"),
    Case(("shell", "--deploy-seconds", "inf"), says="'inf' is not a duration"),
    Case(("demo", "--deploy-seconds", "-5"), says="'-5' is not a duration"),
    Case(("simulator", "--deploy-seconds", "0"), says="'0' is not a duration"),
]
ARGPARSE_REFUSED = ("is not a port", "is not a duration")


def run_case(case: Case, home) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": str(home)} | case.env
    if "PYTHONPATH" in os.environ:  # the code under test, when it is not the installed one
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    if case.argv[0] == "run" and "BYOI_DB" not in env:
        # `run` may create its store: one file per case, as cases run in parallel (two
        # first-time migrations of one file would race).
        env["BYOI_DB"] = f"run-{CASES.index(case)}.db"
    return subprocess.run(
        [sys.executable, "-m", "byoi_bot.cli", *case.argv],
        cwd=home,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def answers(tmp_path_factory):
    """Every case, run as a real process in an empty home folder (in parallel)."""
    home = tmp_path_factory.mktemp("newcomer")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda c: run_case(c, home), CASES))
    return home, dict(zip(map(str, CASES), results, strict=True))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_sub_command_answers_bad_configuration_in_one_line(case, answers):
    _, results = answers
    result = results[str(case)]
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode == case.code, result.stderr
    assert case.says in result.stderr, result.stderr
    last = (result.stderr.strip().splitlines() or [""])[-1]
    if any(words in case.says for words in ARGPARSE_REFUSED):
        assert last.startswith(f"byoi-bot {case.argv[0]}: error: argument ")
    elif case.code == 2:
        assert last.startswith("byoi-bot: configuration error: ")


def test_secrets_given_on_the_command_line_environment_are_never_echoed(answers):
    _, results = answers
    for result in results.values():
        for secret in ("xoxb-1-newcomer", "xapp-1-newcomer", "0123456789abcdef0123456789abcdef"):
            assert secret not in result.stderr + result.stdout


def test_check_says_what_it_did_and_creates_no_store(tmp_path):
    result = run_case(Case(("check",)), tmp_path)
    assert "Traceback" not in result.stderr and result.returncode == 1
    report = result.stdout
    assert "SKIP  slack auth.test        not called: SLACK_BOT_TOKEN is not usable" in report
    assert "unreachable" not in report
    assert "FAIL  ovhcloud credentials   nothing was sent: OVH_ENDPOINT is not set" in report
    assert "refused" not in report
    assert "WARN  store                  ./byoi.db does not exist yet" in report
    assert not (tmp_path / "byoi.db").exists()


def test_check_and_audit_leave_no_store_behind(answers):
    home, _ = answers
    assert not (home / "byoi.db").exists()

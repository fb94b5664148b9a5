"""The README's quick start, run as a new user would: its commands verbatim, in order, in an
empty folder, against the OVHcloud simulator and the fake Slack (Web API and Socket Mode),
until `byoi-bot check` passes and `byoi-bot run` answers `/byoi help`.

What a person does by hand is done here the way the README says: the install (this suite
runs where byoi-bot is installed: `byoi-bot` on PATH runs this checkout), and filling in
`byoi.env` with the tokens and keys the Slack app and OVHcloud give. The only line a real
user never writes is `SLACK_API_URL`, which points the bot at the fake Slack.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fakes.signing import slash_command_payload
from fakes.slack_api import FakeSlack
from fakes.socket_mode import FakeSocketMode

from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
START, END = "<!-- --8<-- [start:quickstart] -->", "<!-- --8<-- [end:quickstart] -->"
# The install step: done once for the whole suite, not in each test.
INSTALL = ("python3 -m venv .venv && . .venv/bin/activate", "python3 -m pip install .")


def quick_start_commands() -> list[str]:
    """The shell lines of the quick start's ```bash blocks, in the README's order."""
    section = README[README.index(START) : README.index(END)]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_quick_start_is_the_install_then_init_manifest_load_check_run():
    commands = quick_start_commands()
    assert commands == [
        *INSTALL,
        "byoi-bot init",
        "byoi-bot manifest",
        "set -a; . ./byoi.env; set +a",
        "byoi-bot check",
        "byoi-bot run",
    ]


@pytest.fixture
def new_user(tmp_path):
    """An empty folder, an environment with nothing of the bot's, `byoi-bot` on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "byoi-bot"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m byoi_bot.cli "$@"\n')
    shim.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "LANG": "C.UTF-8",
    }
    return home, env


def shell(lines: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """Run `lines` in one bash session, as typed one after the other."""
    return subprocess.run(
        ["bash", "-c", "\n".join(lines)],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def fill_in(env_file: Path, values: dict[str, str]) -> None:
    """What the user does in step 2 to 4: replace each placeholder of byoi.env."""
    text = env_file.read_text()
    for name, value in values.items():
        text, count = re.subn(rf"^{name}=.*$", f"{name}={value}", text, flags=re.MULTILINE)
        assert count == 1, f"byoi.env has no {name}= line to fill in"
    env_file.write_text(text)


def test_following_the_quick_start_ends_with_byoi_bot_check_passing(new_user):
    home, env = new_user
    commands = quick_start_commands()
    assert commands[:2] == list(INSTALL)
    init, manifest, load, check, run = commands[2:]
    began = time.monotonic()

    # 1. byoi-bot init writes the two files and says what comes next.
    result = shell([init], home, env)
    assert result.returncode == 0, result.stderr
    assert "Next steps" in result.stdout
    assert (home / "byoi.env").exists() and (home / "byoi.toml").exists()

    # 2. byoi-bot manifest prints what to paste in Slack's "From an app manifest".
    result = shell([manifest], home, env)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["settings"]["socket_mode_enabled"] is True

    # Before anything is filled in, check names every placeholder left (exit 2).
    result = shell([load, check], home, env)
    assert result.returncode == 2, result.stdout + result.stderr
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "OVH_APPLICATION_KEY", "BYOI_APPROVERS"):
        assert re.search(rf"FAIL  {name} +still `REPLACE-ME`", result.stdout), name

    with (
        FakeSocketMode() as socket_mode,
        FakeSlack(socket_mode=socket_mode) as slack,
        Simulator(credentials=DEMO_CREDENTIALS) as sim,
    ):
        # 2-4. The tokens the Slack app gives, the OVHcloud keys, the approvers.
        fill_in(
            home / "byoi.env",
            {
                "SLACK_BOT_TOKEN": slack.bot_token,
                "SLACK_APP_TOKEN": slack.app_token,
                "OVH_ENDPOINT": sim.url,
                "OVH_APPLICATION_KEY": DEMO_CREDENTIALS["application_key"],
                "OVH_APPLICATION_SECRET": DEMO_CREDENTIALS["application_secret"],
                "OVH_CONSUMER_KEY": DEMO_CREDENTIALS["consumer_key"],
                "BYOI_APPROVERS": "U0BOB,U0CAROL",
            },
        )
        with (home / "byoi.env").open("a") as out:
            out.write(f"SLACK_API_URL={slack.base_url}\n")  # the fake Slack, for this test
        # 5. byoi-bot check passes.
        result = shell([load, check], home, env)
        checked = time.monotonic() - began
        assert result.returncode == 0, result.stdout + result.stderr
        assert not (home / "byoi.db").exists(), "nothing is created before `run`"
        # 6. byoi-bot run connects over Socket Mode and answers /byoi help in a channel.
        bot = subprocess.Popen(
            ["bash", "-c", f"{load}\nexec {run}"],
            cwd=home,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            help_ = slash_command_payload("help", user_id="U0ALICE", channel_id="C0OPS")
            answer = socket_mode.wait_ack(
                socket_mode.send_envelope("slash_commands", help_, timeout=30)
            )
            answered = time.monotonic() - began
        finally:
            bot.kill()
            log = bot.communicate(timeout=30)[1]
    assert "FAIL" not in result.stdout
    for line in ("slack auth.test", "ovhcloud credentials", "ovhcloud rights", "policy default"):
        assert f"PASS  {line}" in result.stdout, result.stdout
    assert "*/byoi commands*" in answer.get("text", ""), log
    assert (home / "byoi.db").exists(), "run made its store"
    print(f"\nquick start: init to a passing check {checked:.1f} s, to /byoi help {answered:.1f} s")

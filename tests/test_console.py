"""`byoi-bot demo` and `byoi-bot shell --script` as a user runs them: subprocesses, transcripts."""

import io
import logging
import subprocess
import sys

import pytest

from byoi_bot.console import shell as console_shell
from byoi_bot.console.chat import ConsoleChat

SERVER = "ns1001.ip-51-75-1.eu"


def byoi(*args: str, stdin: str | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "byoi_bot.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def shell(script: str, *extra: str) -> subprocess.CompletedProcess:
    return byoi(
        "shell", "--no-color", "--deploy-seconds", "3", *extra, "--script", "-", stdin=script
    )


def test_demo_tells_the_whole_story_and_exits_zero():
    run = byoi("demo", "--no-color")
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert "Servers: ns1001.ip-51-75-1.eu" in out
    assert "ERASES ALL DATA on ns1001.ip-51-75-1.eu" in out
    assert "(only alice sees this) Your approval was not counted: you asked" in out
    assert "(only dave sees this) Your approval was not counted: you are not an approver" in out
    assert "@bob approved (1/1)" in out and "started at OVHcloud" in out
    assert "is done in" in out
    assert "Not posted: the deploy would fail" in out and "download_size" in out
    assert "failed." in out and "Likely cause:" in out and "What to do:" in out
    assert "> Can not move backup GPT data structures to the end of disk." in out
    assert "\033[" not in out, "--no-color output has no escape codes"


def test_shell_script_story_with_rejection():
    script = f"""
# a rejected request never reaches OVHcloud
alice: /byoi deploy {SERVER} {{images}}/debian-12.qcow2 efi-bootloader=x.efi
carol reacts :x:
wait until rejected within 10
alice: /byoi status {SERVER}
"""
    run = shell(script)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "rejected by @carol" in run.stdout
    assert "🚫" in run.stdout


def test_shell_deploy_then_cancel_a_second_request():
    script = f"""
alice: /byoi deploy {SERVER} {{images}}/debian-12.qcow2 efi-bootloader=x.efi
bob reacts :white_check_mark:
wait until done within 30
alice: /byoi deploy {SERVER} {{images}}/debian-12.raw efi-bootloader=x.efi
alice: /byoi list
alice: /byoi cancel {{latest}}
wait until cancelled within 5
alice: /byoi history {SERVER}
"""
    run = shell(script, "--approvers", "bob")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("new card") == 2
    assert "Active requests" in run.stdout and "is cancelled" in run.stdout
    history = run.stdout.split("History of")[1]
    assert "done" in history and "cancelled" in history


def test_wait_until_times_out_with_a_non_zero_exit():
    script = f"""
alice: /byoi deploy {SERVER} {{images}}/debian-12.qcow2 efi-bootloader=x.efi
wait until done within 0.5
"""
    run = shell(script)
    assert run.returncode == 1
    assert "script line 3: timed out after 0.5s waiting for" in run.stdout


def test_a_request_ending_otherwise_fails_the_wait():
    script = f"""
alice: /byoi deploy {SERVER} {{images}}/debian-12.qcow2 efi-bootloader=x.efi
bob reacts :x:
wait until done within 10
"""
    run = shell(script)
    assert run.returncode == 1 and "ended rejected, not done" in run.stdout


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("gibberish", "cannot read `gibberish`"),
        ("wait soon", "expected a number of seconds"),
        ("wait inf", "expected a number of seconds"),
        ("wait until finished", "`finished` is not a state"),
        ("bob reacts :white_check_mark:", "no request yet"),
    ],
)
def test_bad_script_lines_are_explained(line, message):
    run = shell(line + "\n")
    assert run.returncode == 1 and message in run.stdout


def test_command_errors_are_shown_to_the_user_alone():
    run = shell("alice: /byoi deploy ns1001 ftp://x/y.qcow2\nalice: /byoi help cancel\n")
    assert run.returncode == 0
    assert "(only alice sees this) `url`" in run.stdout
    assert "cancel" in run.stdout


def _broken_session() -> console_shell.Session:
    """A session whose bot is missing: every command hits an unexpected AttributeError."""
    chat = ConsoleChat(io.StringIO())
    return console_shell.Session(None, chat, "http://images.invalid", [], ("bob",))


def test_an_unexpected_error_is_one_plain_line_and_one_logged_traceback(caplog):
    out = io.StringIO()
    session = _broken_session()
    session.chat = ConsoleChat(out)
    with caplog.at_level(logging.ERROR, logger="byoi_bot.console.shell"):
        assert console_shell.run_script(session, io.StringIO("alice: /byoi status ns1\n")) == 1
    assert f"script line 1: {console_shell.INTERNAL_ERROR}" in out.getvalue()
    assert "Traceback" not in out.getvalue()
    [record] = caplog.records
    assert record.exc_info and record.exc_info[0] is AttributeError


def test_the_interactive_shell_survives_an_unexpected_error(monkeypatch, caplog):
    out = io.StringIO()
    session = _broken_session()
    session.chat = ConsoleChat(out)
    lines = iter(["alice: /byoi status ns1", "alice: /byoi list"])

    def typed(prompt: str) -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", typed)
    with caplog.at_level(logging.ERROR, logger="byoi_bot.console.shell"):
        assert console_shell._interactive(session) == 0
    assert out.getvalue().count(console_shell.INTERNAL_ERROR) == 2
    assert len(caplog.records) == 2

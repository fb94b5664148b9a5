"""The command line a new user meets first: `init`, the shipped examples, `--help` and
`--version`, `manifest`, a closed pipe, and nothing written to disk before the
configuration is known to work. Real processes where the process is the point."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from byoi_bot import __version__, cli
from byoi_bot.starter import PLACEHOLDER, STARTER_FILES, example, filled

ROOT = Path(__file__).resolve().parents[1]
CLOSED = "http://127.0.0.1:9"
# What each placeholder of the examples becomes once the user has filled it in.
FILLED = {
    "SLACK_BOT_TOKEN": "xoxb-1-filled-in",
    "SLACK_APP_TOKEN": "xapp-1-filled-in",
    "OVH_APPLICATION_KEY": "ak",
    "OVH_APPLICATION_SECRET": "as",
    "OVH_CONSUMER_KEY": "ck",
    "BYOI_APPROVERS": "U0BOB,S0OPS",
}


def byoi_bot(*argv: str, cwd: Path, env: dict | None = None, stdout=subprocess.PIPE):
    environ = {"PATH": os.environ["PATH"], "HOME": str(cwd), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "byoi_bot.cli", *argv],
        cwd=cwd,
        env=environ | (env or {}),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )


def sourced(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """`command` after `set -a; . ./byoi.env; set +a`, as the quick start loads the file."""
    return subprocess.run(
        ["bash", "-c", f"set -a; . ./byoi.env; set +a; exec {sys.executable} -m {command}"],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], "HOME": str(cwd), "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- init and the examples ---------------------------------------------------------------


def test_init_writes_the_commented_examples_and_the_next_steps(tmp_path, capsys):
    assert cli.main(["init", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Next steps" in out and "byoi-bot check" in out and "byoi-bot manifest" in out
    for name in STARTER_FILES:
        assert (tmp_path / name).read_text() == example(name)
    assert stat.S_IMODE((tmp_path / "byoi.env").stat().st_mode) == 0o600, "it holds tokens"


def test_init_never_overwrites_without_force(tmp_path, capsys):
    (tmp_path / "byoi.toml").write_text("# mine\n")
    assert cli.main(["init", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "already exist" in err and "--force" in err
    assert (tmp_path / "byoi.toml").read_text() == "# mine\n"
    assert not (tmp_path / "byoi.env").exists(), "nothing is written when one file exists"
    assert cli.main(["init", "--dir", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "byoi.toml").read_text() == example("byoi.toml")


def test_init_refuses_a_folder_that_is_not_one(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    for folder in (tmp_path / "file", tmp_path / "missing"):
        assert cli.main(["init", "--dir", str(folder)]) == 1
        assert "is not a directory" in capsys.readouterr().err


def test_init_fills_in_what_the_environment_already_has():
    text = filled(
        example("byoi.env"),
        {"OVH_ENDPOINT": "ovh-ca", "SLACK_BOT_TOKEN": "xoxb-9", "BYOI_APPROVERS": "a\nb=c"},
    )
    assert "\nOVH_ENDPOINT=ovh-ca\n" in text and "\nSLACK_BOT_TOKEN=xoxb-9\n" in text
    assert f"\nBYOI_APPROVERS={PLACEHOLDER}\n" in text, "a value with a newline is not written"
    assert "\n# BYOI_DB=byoi.db\n" in text, "comments are left alone"


def test_init_leaves_the_ovhcloud_keys_to_an_existing_ovh_conf(tmp_path, capsys):
    (tmp_path / "ovh.conf").write_text("[default]\nendpoint=ovh-eu\n")
    assert cli.main(["init", "--dir", str(tmp_path)]) == 0
    env = (tmp_path / "byoi.env").read_text()
    for name in ("OVH_ENDPOINT", "OVH_APPLICATION_KEY", "OVH_CONSUMER_KEY"):
        assert f"\n# {name}=" in env and f"\n{name}=" not in env, name
    assert f"(read from {tmp_path / 'ovh.conf'})" in env


def test_the_examples_pass_check_offline_once_their_placeholders_are_filled(tmp_path):
    for name in STARTER_FILES:
        (tmp_path / name).write_text((ROOT / "docs" / "examples" / name).read_text())
    result = sourced("byoi_bot.cli check --offline", tmp_path)
    assert result.returncode == 2, result.stdout
    assert len(re.findall(rf"FAIL .* still `{PLACEHOLDER}`", result.stdout)) == len(FILLED)
    lines = result.stdout.splitlines()
    for name in FILLED:  # said once, not again as "not set" or as a policy nobody can meet
        assert len([line for line in lines if line.split()[1:2] == [name]]) == 1, name
    assert "policy default" not in result.stdout
    env = (tmp_path / "byoi.env").read_text()
    for name, value in FILLED.items():
        env = re.sub(rf"^{name}=.*{PLACEHOLDER}$", f"{name}={value}", env, flags=re.MULTILINE)
    assert not re.search(rf"^\w+=.*{PLACEHOLDER}", env, flags=re.MULTILINE)
    (tmp_path / "byoi.env").write_text(env)
    result = sourced("byoi_bot.cli check --offline", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout and not (tmp_path / "byoi.db").exists()


# -- help, version, manifest, pipes ------------------------------------------------------


def test_every_sub_command_has_a_summary_and_a_description(capsys):
    parser = cli.build_parser()
    (commands,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    summaries = {c.dest: c.help for c in commands._choices_actions}
    assert {"init", "manifest", "check", "run", "demo"} <= set(commands.choices)
    for name, sub in commands.choices.items():
        assert summaries[name], name
        assert sub.description and len(sub.description) > len(summaries[name]), name
        with pytest.raises(SystemExit):
            cli.main([name, "--help"])
        assert sub.description.splitlines()[0] in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"byoi-bot {__version__}"


def test_help_imports_neither_the_bot_nor_slack_nor_the_store(tmp_path):
    probe = (
        "import sys; from byoi_bot import cli; cli.build_parser().format_help(); "
        "print('\\n'.join(sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    loaded = set(result.stdout.split())
    for module in (
        "byoi_bot.wiring", "byoi_bot.scheduler", "byoi_bot.store", "byoi_bot.slack.app",
        "slack_bolt", "apscheduler", "sqlite_utils", "ovh", "requests",
    ):  # fmt: skip
        assert module not in loaded, module


@pytest.mark.parametrize("url", ["http://bot.example.net", "bot.example.net/slack/events"])
def test_manifest_refuses_an_http_mode_url_slack_cannot_call(url, capsys):
    assert cli.main(["manifest", "--http", url]) == 2
    err = capsys.readouterr().err
    assert "byoi-bot: manifest:" in err and "https://" in err


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`byoi-bot config-reference | head`: the reader has gone before anything is written."""
    read, write = os.pipe()
    os.close(read)
    try:
        result = byoi_bot("config-reference", cwd=tmp_path, stdout=write)
    finally:
        os.close(write)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
    assert result.returncode == cli.CLOSED_PIPE


# -- nothing on disk before the configuration works --------------------------------------


def test_run_creates_no_store_when_slack_cannot_be_reached(tmp_path):
    env = {
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_APP_TOKEN": "xapp-1",
        "SLACK_API_URL": f"{CLOSED}/api/",
        "OVH_ENDPOINT": f"{CLOSED}/1.0",
        "OVH_APPLICATION_KEY": "ak",
        "OVH_APPLICATION_SECRET": "as",
        "OVH_CONSUMER_KEY": "ck",
        "BYOI_APROVERS": "U0BOB",
    }
    result = byoi_bot("run", cwd=tmp_path, env=env)
    assert result.returncode == 1 and "cannot reach Slack" in result.stderr
    assert list(tmp_path.iterdir()) == [], "no ./byoi.db, nothing else"
    assert "BYOI_APROVERS: unknown variable, ignored; did you mean BYOI_APPROVERS?" in (
        result.stderr
    ), "run says it too"


def test_run_lists_every_configuration_problem_and_creates_nothing(tmp_path):
    env = {"BYOI_APPROVAL_TTL": "30", "BYOI_REQUIRED_APPROVALS": "two", "BYOI_POLL_SECONDS": "0"}
    result = byoi_bot("run", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "configuration error: 3 problems:" in result.stderr
    for name in env:
        assert f"\n  {name}: " in result.stderr, name
    assert list(tmp_path.iterdir()) == []


def test_check_reports_every_problem_on_its_report_with_exit_status_2(tmp_path):
    result = byoi_bot(
        "check", "--offline", cwd=tmp_path, env={"BYOI_APPROVAL_TTL": "30", "BYOI_API": "v9"}
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "BYOI_APPROVAL_TTL" in result.stdout and "`30` has no unit" in result.stdout
    assert "BYOI_API" in result.stdout and "`v9` is not an API generation" in result.stdout

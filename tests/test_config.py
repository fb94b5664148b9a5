"""Settings from the environment and the TOML policy file."""

from datetime import timedelta
from pathlib import Path

import pytest

from byoi_bot.config import (
    SETTINGS,
    ConfigError,
    Settings,
    parse_duration,
    reference_markdown,
    survey,
)

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_defaults():
    s = Settings.load({})
    assert s.db == "./byoi.db"
    assert s.required_approvals == 1
    assert s.approval_ttl == timedelta(minutes=30)
    assert s.poll_seconds == 20 and s.heartbeat_minutes == 5
    default = s.policies.for_server("anything")
    assert default.name == "default" and default.api == "reinstall"


def test_environment_builds_the_default_policy():
    s = Settings.load(
        {
            "BYOI_APPROVERS": "U1, U2,S3",
            "BYOI_REQUIRED_APPROVALS": "2",
            "BYOI_APPROVAL_TTL": "1h30m",
        }
    )
    policy = s.policies.for_server("ns1.example.net")
    assert policy.approvers == frozenset({"U1", "U2", "S3"})
    assert policy.required == 2 and policy.ttl == timedelta(minutes=90)


def test_toml_policies_per_pattern_and_settings(tmp_path):
    config = tmp_path / "byoi.toml"
    config.write_text(
        """
[settings]
poll_seconds = 10
approvers = ["U1"]

[[policy]]
name = "production"
pattern = "*.prod.example.net"
approvers = ["SPROD", "SDBA"]
required_approvals = 2
one_from_each_group = true
approval_ttl = "2h"
api = "legacy"
"""
    )
    s = Settings.load({"BYOI_CONFIG": str(config), "BYOI_POLL_SECONDS": "30"})
    assert s.poll_seconds == 30, "the environment wins over the file"
    prod = s.policies.for_server("db1.prod.example.net")
    assert prod.name == "production" and prod.api == "legacy" and prod.one_from_each_group
    assert prod.required == 2 and prod.ttl == timedelta(hours=2)
    assert s.policies.for_server("lab1.example.net").approvers == frozenset({"U1"})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"BYOI_REQUIRED_APPROVALS": "two"},
            "BYOI_REQUIRED_APPROVALS: `two` is not a whole number",
        ),
        ({"BYOI_REQUIRED_APPROVALS": "0"}, "must be at least 1"),
        ({"BYOI_APPROVAL_TTL": "soon"}, "expected e.g. 90s, 30m"),
        ({"BYOI_APPROVAL_TTL": "0m"}, "BYOI_APPROVAL_TTL: `0m` is no time at all"),
        ({"BYOI_APPROVAL_TTL": "30"}, "BYOI_APPROVAL_TTL: `30` has no unit"),
        (
            {"BYOI_APPROVERS": "alice,@bob"},
            r"BYOI_APPROVERS: `@bob`, `alice` are not Slack IDs; expected user IDs like U",
        ),
        ({"BYOI_APPROVERS": "U0BOB,bob"}, r"`bob` is not a Slack ID.*Copy member ID"),
        ({"BYOI_REQUESTERS": "u0alice"}, "BYOI_REQUESTERS: `u0alice` is not a Slack ID"),
        ({"BYOI_ALLOWED_CHANNELS": "#ops"}, "BYOI_ALLOWED_CHANNELS: `#ops`: expected channel IDs"),
        ({"BYOI_API": "v2"}, "expected one of"),
        ({"BYOI_CONFIG": "/nonexistent/byoi.toml"}, "no such file"),
        ({"BYOI_LOG_FORMAT": "logfmt"}, "BYOI_LOG_FORMAT: `logfmt` is neither `text` nor `json`"),
        ({"BYOI_LIBRARY_LOG_LEVEL": "verbose"}, "BYOI_LIBRARY_LOG_LEVEL: `verbose` is not a log"),
        ({"BYOI_METRICS_PORT": "http"}, r"BYOI_METRICS_PORT: `http` is not a port number; .*9090"),
        ({"BYOI_METRICS_PORT": "65536"}, "expected 1 to 65535 \\(0: off\\)"),
        ({"BYOI_METRICS_PORT": "-1"}, "expected 1 to 65535"),
        ({"BYOI_STOP_TIMEOUT": "10"}, "BYOI_STOP_TIMEOUT: `10` has no unit"),
        ({"BYOI_STOP_TIMEOUT": "0s"}, "no time at all"),
    ],
)
def test_bad_values_name_the_setting_and_what_is_expected(environ, message):
    with pytest.raises(ConfigError, match=message):
        Settings.load(environ)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[[policy]]\nname = 'x'\n", "`pattern` is required"),
        ("[[policy]]\npattern = '*'\nquorum = 2\n", "unknown key"),
        (
            "[settings]\npol_seconds = 3\n",
            r"\[settings\] pol_seconds: unknown key; did you mean poll_seconds\?",
        ),
        ("[[policy\n", "not valid TOML"),
        ("[[policy]]\nname = 'default'\npattern = '*'\n", "reserved"),
        (
            "[[policy]]\nname = 'a'\npattern = 'x*'\n[[policy]]\nname = 'a'\npattern = 'y*'\n",
            "twice",
        ),
        ("[[policy]]\npattern = '*'\none_from_each_group = 'false'\n", "not true or false"),
        ("[settings]\nlog_level = 'LOUD'\n", "not a log level"),
        ("[settings]\napproval_ttl = 30\n", r"c.toml: \[settings\] approval_ttl: `30` has no unit"),
        (
            "[[policy]]\npattern = '*'\napprovers = ['alice']\n",
            r"#1 approvers: `alice` is not a Slack",
        ),
        ("[[policy]]\npattern = '*'\napproval_ttl = '0s'\n", r"#1 approval_ttl: `0s` is no time"),
    ],
)
def test_bad_toml_is_explained(tmp_path, toml, message):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        Settings.load({"BYOI_CONFIG": str(path)})


def test_durations():
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration("1h 30m") == timedelta(minutes=90)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("30", "`30` has no unit; write 30s, 30m or 30h"),
        (45, "`45` has no unit"),
        ("0m", "no time at all"),
        ("0s0m", "no time at all"),
    ],
)
def test_durations_that_can_never_work_are_refused(value, message):
    with pytest.raises(ConfigError, match=message):
        parse_duration(value)


def test_the_docs_reference_is_generated_from_the_settings():
    reference = reference_markdown()
    assert all(f"`{s.env}`" in reference for s in SETTINGS)
    for name in ("OVH_APPLICATION_KEY", "OVH_CONSUMER_KEY", "OVH_CLIENT_ID", "OVH_CLIENT_SECRET"):
        assert f"| `{name}` |" in reference
    assert reference in REFERENCE.read_text(), "run `byoi-bot config-reference` and paste it"


def test_every_problem_is_found_at_once_and_warnings_do_not_stop_the_bot(tmp_path):
    path = tmp_path / "byoi.toml"
    path.write_text('[settings]\napproval_ttl = "REPLACE-ME"\nrequired_approvals = 0\n')
    environ = {"BYOI_CONFIG": str(path), "BYOI_API": "v2", "SLACK_BOT_TOKN": "xoxb-1"}
    _, problems = survey(environ)
    assert [(p.where, p.fatal) for p in problems] == [
        ("SLACK_BOT_TOKN", False),
        (f"{path}: [settings] required_approvals", True),
        (f"{path}: [settings] approval_ttl", True),
        ("BYOI_API", True),
    ]
    message = r"^3 problems:\n  .*approvals: `0` must be at least 1\n  .*_ttl: `REPLACE-ME` is not"
    with pytest.raises(ConfigError, match=message):
        Settings.load(environ)
    settings = Settings.load({"SLACK_BOT_TOKN": "xoxb-1"})
    assert [str(w) for w in settings.warnings] == [
        "SLACK_BOT_TOKN: unknown variable, ignored; did you mean SLACK_BOT_TOKEN?"
    ]


@pytest.mark.parametrize("toml", ["settings = 3\n", "settings = [1, 2]\n"])
def test_a_settings_key_that_is_no_table_is_explained(tmp_path, toml):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=r"`settings` must be a table"):
        Settings.load({"BYOI_CONFIG": str(path)})

"""`byoi-bot check`: configuration, store, Slack and OVHcloud, as a pass/fail list."""

import io

import pytest
from fakes.slack_api import FakeSlack
from tools import require_tool

from byoi_bot.checkup import run_check
from byoi_bot.config import Settings, survey
from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator
from byoi_bot.store import Store

GOOD_SECRET = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def services():
    with FakeSlack() as slack, Simulator(credentials=DEMO_CREDENTIALS) as sim:
        slack.set_usergroup("S0OPS", ["U0BOB", "U0CAROL"])
        yield slack, sim


def env(tmp_path, slack, sim, **changes):
    values = {
        "BYOI_DB": str(tmp_path / "byoi.db"),
        "BYOI_APPROVERS": "S0OPS",
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_APP_TOKEN": slack.app_token,
        "SLACK_SIGNING_SECRET": GOOD_SECRET,
        "SLACK_API_URL": slack.base_url,
        "OVH_ENDPOINT": sim.url,
        "OVH_APPLICATION_KEY": DEMO_CREDENTIALS["application_key"],
        "OVH_APPLICATION_SECRET": DEMO_CREDENTIALS["application_secret"],
        "OVH_CONSUMER_KEY": DEMO_CREDENTIALS["consumer_key"],
    }
    values.update(changes)
    return values


def check(monkeypatch, environ, offline=False):
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    out = io.StringIO()
    code = run_check(Settings.load(environ), offline=offline, out=out)
    return code, out.getvalue()


def test_a_good_configuration_passes_every_check(tmp_path, services, monkeypatch):
    slack, sim = services
    code, report = check(monkeypatch, env(tmp_path, slack, sim))
    assert code == 0, report
    assert "FAIL" not in report
    for line in ("slack auth.test", "ovhcloud credentials", "ovhcloud rights", "policy default"):
        assert f"PASS  {line}" in report
    assert slack.bot_token not in report and GOOD_SECRET not in report


def test_bad_tokens_and_an_unmeetable_policy_fail(tmp_path, services, monkeypatch):
    slack, sim = services
    environ = env(
        tmp_path, slack, sim, SLACK_SIGNING_SECRET="nothex", BYOI_APPROVERS="U0BOB",
        BYOI_REQUIRED_APPROVALS="2",
    )  # fmt: skip
    code, report = check(monkeypatch, environ)
    assert code == 1
    assert "FAIL  SLACK_SIGNING_SECRET" in report and "32 hex digits" in report
    assert "FAIL  policy default" in report and "needs 2 approval(s)" in report
    assert "set BYOI_APPROVERS" in report, "which setting to change"


def test_wrong_ovh_secret_and_unreachable_slack_fail(tmp_path, services, monkeypatch):
    slack, sim = services
    environ = env(
        tmp_path,
        slack,
        sim,
        OVH_APPLICATION_SECRET="Zq-not-the-secret-7",
        SLACK_API_URL="http://127.0.0.1:9/api/",
    )
    code, report = check(monkeypatch, environ)
    assert code == 1
    assert "FAIL  slack auth.test" in report
    assert "cannot reach Slack at http://127.0.0.1:9/api/ (SLACK_API_URL)" in report
    assert "Connection refused" in report, "the reason, not only the exception's type"
    assert "FAIL  ovhcloud credentials" in report
    assert "Zq-not-the-secret-7" not in report


def test_missing_api_rights_are_listed(tmp_path, monkeypatch):
    read_only = DEMO_CREDENTIALS | {"rules": [{"method": "GET", "path": "/*"}]}
    with FakeSlack() as slack, Simulator(credentials=read_only) as sim:
        code, report = check(monkeypatch, env(tmp_path, slack, sim, BYOI_APPROVERS="U0BOB"))
    assert code == 1
    assert "FAIL  ovhcloud rights" in report and "POST /dedicated/server/*/reinstall" in report
    assert "bringYourOwnImage" not in report, "no policy uses the legacy API"


@pytest.mark.parametrize(
    ("rules", "api", "verdict", "says"),
    [
        (
            ["GET /*", "POST /dedicated/server/*/reinstall"],
            "reinstall",
            "WARN",
            "cannot be cancelled",
        ),
        (["GET /*", "POST /dedicated/server/*"], "reinstall", "PASS", "every call"),
        (["GET /*", "POST /dedicated/server/*/reinstall"], "legacy", "FAIL", "DELETE /dedicated"),
        (["GET /*", "POST /*", "DELETE /*"], "legacy", "PASS", "every call"),
    ],
)
def test_rights_follow_the_api_in_use(tmp_path, monkeypatch, rules, api, verdict, says):
    parsed = [dict(zip(("method", "path"), rule.split(" "), strict=True)) for rule in rules]
    with FakeSlack() as slack, Simulator(credentials=DEMO_CREDENTIALS | {"rules": parsed}) as sim:
        environ = env(tmp_path, slack, sim, BYOI_APPROVERS="U0BOB", BYOI_API=api)
        _, report = check(monkeypatch, environ)
    line = next(line for line in report.splitlines() if "ovhcloud rights" in line)
    assert line.startswith(verdict) and says in line, line


def test_offline_checks_configuration_and_store_only(tmp_path, monkeypatch):
    environ = {"BYOI_DB": str(tmp_path / "byoi.db"), "BYOI_APPROVERS": "U0BOB"}
    code, report = check(monkeypatch, environ, offline=True)
    assert code == 0, report
    assert "WARN  store" in report and "does not exist yet" in report
    assert not (tmp_path / "byoi.db").exists(), "check never creates the store"
    Store(environ["BYOI_DB"]).close()
    code, report = check(monkeypatch, environ, offline=True)
    assert "PASS  store" in report and "schema version" in report
    assert "WARN  SLACK_BOT_TOKEN" in report and "slack auth.test" not in report


def test_an_unwritable_store_fails(tmp_path, monkeypatch):
    code, report = check(monkeypatch, {"BYOI_DB": str(tmp_path / "missing" / "x.db")}, True)
    assert code == 1 and "FAIL  store" in report


def catalog_config(tmp_path):
    (tmp_path / "keys.gpg").write_bytes(b"\x99")
    config = tmp_path / "byoi.toml"
    config.write_text(
        '[[image]]\nname = "debian-12"\nurl = "https://x.example/d.qcow2"\n'
        'checksum_url = "https://x.example/SHA512SUMS"\n'
        'signature_url = "https://x.example/SHA512SUMS.sign"\nkeyring = "keys.gpg"\n'
    )
    return {"BYOI_DB": str(tmp_path / "byoi.db"), "BYOI_CONFIG": str(config)}


def test_the_catalog_is_listed_and_gpgv_found(tmp_path, monkeypatch):
    require_tool("gpgv")
    _, report = check(monkeypatch, catalog_config(tmp_path), offline=True)
    assert "PASS  image catalog" in report and "PASS  gpgv" in report


def test_a_missing_gpgv_fails_when_an_image_needs_it(tmp_path, monkeypatch):
    environ = catalog_config(tmp_path)
    code, report = check(monkeypatch, environ | {"PATH": str(tmp_path)}, offline=True)
    assert "PASS  image catalog" in report and "1 images: debian-12" in report
    assert code == 1 and "FAIL  gpgv" in report and "Debian package `gpgv`" in report


def test_a_postgres_database_is_checked_without_a_change(postgres_dsn, monkeypatch):
    import psycopg

    from byoi_bot.store.postgres import SCHEMA_VERSION, PostgresStore

    environ = {"BYOI_DB": postgres_dsn, "BYOI_APPROVERS": "U0BOB"}
    code, report = check(monkeypatch, environ, offline=True)
    assert code == 0, report
    assert "WARN  store" in report and "no tables yet" in report
    with psycopg.connect(postgres_dsn) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchone()[0]
    assert tables == 0, "check never creates the tables"
    PostgresStore(postgres_dsn).close()
    code, report = check(monkeypatch, environ, offline=True)
    assert "PASS  store" in report and f"schema version {SCHEMA_VERSION}" in report
    password = postgres_dsn.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password not in report and ":***@" in report


def test_an_unreachable_or_missing_postgres_database_fails_without_its_password(
    postgres_database, monkeypatch
):
    missing = postgres_database.rsplit("/", 1)[0] + "/no_such_database"
    code, report = check(monkeypatch, {"BYOI_DB": missing, "BYOI_APPROVERS": "U0BOB"}, True)
    assert code == 1 and "FAIL  store" in report and "no_such_database" in report
    password = missing.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password not in report


def check_all(monkeypatch, environ, offline=False):
    """As `byoi-bot check` does: every configuration problem, then the services."""
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    settings, problems = survey(environ)
    out = io.StringIO()
    return run_check(settings, offline=offline, out=out, problems=problems), out.getvalue()


def test_every_problem_is_listed_at_once_named_where_it_is_written(tmp_path, services, monkeypatch):
    slack, sim = services
    toml = tmp_path / "byoi.toml"
    toml.write_text(
        '[settings]\nrequired_approvals = "two"\npol_seconds = 3\n'
        '[[policy]]\nname = "prod"\npattern = "*.prod"\napprovers = ["bob"]\n'
        '[[policy]]\npattern = "*.dev"\nquorum = 2\n'
        '[[image]]\nname = "debian-12"\n'
    )
    environ = env(
        tmp_path, slack, sim, BYOI_CONFIG=str(toml), BYOI_APPROVAL_TTL="30",
        BYOI_APROVERS="U0BOB", SLACK_BOT_TOKEN="xoxb-REPLACE-ME",
    )  # fmt: skip
    code, report = check_all(monkeypatch, environ)
    assert code == 2, report
    for line in (
        f"FAIL  {toml}: [settings] required_approvals: `two` is not a whole number",
        f"FAIL  {toml}: [settings] pol_seconds: unknown key; did you mean poll_seconds?",
        f"{toml}: [[policy]] #1 approvers: `bob` is not a Slack ID",
        f"{toml}: [[policy]] #2: unknown key(s) quorum",
        f"{toml}: [[image]] #1 `debian-12`: `url` is required",
        f"FAIL  {'BYOI_APPROVAL_TTL':<22} `30` has no unit",
        "unknown variable, ignored; did you mean BYOI_APPROVERS?",
        f"FAIL  {'SLACK_BOT_TOKEN':<22} still `REPLACE-ME`",
    ):
        assert line in report, line
    # The services are checked all the same (Slack refuses the placeholder token).
    assert "slack auth.test" in report and "PASS  ovhcloud credentials" in report


def test_an_unknown_variable_only_warns_and_the_bots_own_test_variables_are_known(
    tmp_path, monkeypatch
):
    environ = {
        "BYOI_DB": str(tmp_path / "byoi.db"),
        "BYOI_APPROVERS": "U0BOB",
        "SLACK_BOT_TOKN": "xoxb-1",
        "OVH_APLICATION_KEY": "k",
        "BYOI_TEST_SHIFT_DAYS": "366",
        "SLACK_WEBHOOK": "elsewhere",
    }
    code, report = check_all(monkeypatch, environ, offline=True)
    assert code == 0, report
    assert "SLACK_BOT_TOKN" in report and "did you mean SLACK_BOT_TOKEN?" in report
    assert "did you mean OVH_APPLICATION_KEY?" in report
    assert "BYOI_TEST_SHIFT_DAYS" not in report
    line = next(line for line in report.splitlines() if "SLACK_WEBHOOK" in line)
    assert line.startswith("WARN") and "did you mean" not in line
    Settings.load(environ)  # the bot starts with them

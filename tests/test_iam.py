"""Service accounts: OAuth2 client credentials, IAM actions, the policy, denials, `check`."""

from __future__ import annotations

import io
import json
import re

import pytest
from fakes.slack_api import FakeSlack
from ovh_fixtures import BIG, UEFI, spec

from byoi_bot.checkup import run_check
from byoi_bot.cli import main
from byoi_bot.config import ConfigError, Settings
from byoi_bot.core.ports import ProviderError
from byoi_bot.ovhcloud import iam
from byoi_bot.ovhcloud.client import make_client, token_url
from byoi_bot.ovhcloud.provider import ReinstallProvider, RetryPolicy
from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator

CLIENT_ID, CLIENT_SECRET = "byoi-sa-0001", "sa-secret-Zq7x"
ALL_ACTIONS = {
    "dedicatedServer:apiovh:get",
    "dedicatedServer:apiovh:specifications/hardware/get",
    "dedicatedServer:apiovh:reinstall",
    "dedicatedServer:apiovh:task/get",
    "dedicatedServer:apiovh:task/cancel",
    "dedicatedServer:apiovh:install/status/get",
}


def simulator(allow=("*",)) -> Simulator:
    account = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "allow": list(allow)}
    return Simulator(credentials=DEMO_CREDENTIALS, service_account=account, deploy_seconds=70)


def provider(sim: Simulator, secret: str = CLIENT_SECRET) -> ReinstallProvider:
    client = make_client(sim.url, timeout=(2, 5), client_id=CLIENT_ID, client_secret=secret)
    return ReinstallProvider(client, retry=RetryPolicy(sleep=lambda _: None))


def test_the_policy_lists_exactly_the_actions_of_the_routes_the_bot_calls():
    assert set(iam.needed_actions()) == ALL_ACTIONS
    with simulator() as sim:
        reinstall = provider(sim)
        reinstall.list_servers()
        reinstall.server_facts(UEFI)
        handle = reinstall.start(spec(UEFI))
        reinstall.progress(UEFI, handle)
        reinstall.find_active(UEFI)
        reinstall.cancel(UEFI, handle)
        reinstall.task_check_every = 1
        reinstall.progress(UEFI, handle)
        called = {(c["method"], _template(c["path"])) for c in sim.calls()}
    called.discard(("POST", "/auth/oauth2/token"))
    assert called == set(iam.ROUTES), "iam.ROUTES is every route the provider calls"


def _template(path: str) -> str:
    path = path.removeprefix("/1.0")
    path = re.sub(r"^/dedicated/server/[^/]+", "/dedicated/server/{serviceName}", path)
    return re.sub(r"/task/\d+", "/task/{taskId}", path)


def test_a_service_account_works_end_to_end_through_the_token_endpoint():
    with simulator() as sim:
        reinstall = provider(sim)
        assert reinstall.server_facts(BIG).name == BIG
        assert reinstall.start(spec(BIG))
        tokens = [c for c in sim.calls() if c["path"] == "/auth/oauth2/token"]
    assert len(tokens) == 1, "one token, reused for every call"


def test_a_wrong_client_secret_is_explained_without_echoing_it():
    with simulator() as sim, pytest.raises(ProviderError) as caught:
        provider(sim, secret="not-the-secret-123").server_facts(UEFI)
    e = caught.value.explanation
    assert e.code == "oauth2_failed" and "OVH_CLIENT_SECRET" in e.action
    assert "not-the-secret-123" not in f"{e.summary} {e.cause} {e.action} {e.raw}"


def test_an_iam_denial_names_the_missing_action_and_the_fix():
    allowed = sorted(ALL_ACTIONS - {"dedicatedServer:apiovh:reinstall"})
    with simulator(allow=allowed) as sim:
        reinstall = provider(sim)
        reinstall.server_facts(UEFI)  # reads are allowed
        with pytest.raises(ProviderError) as caught:
            reinstall.start(spec(UEFI))
    e = caught.value.explanation
    assert e.code == "iam_denied"
    assert "`dedicatedServer:apiovh:reinstall`" in e.summary
    assert "byoi-bot iam-policy" in e.action and "unauthorizedActionsByIAM" not in e.summary


@pytest.mark.parametrize(
    ("body", "actions"),
    [
        ({"details": {"unauthorizedActionsByIAM": "vps:apiovh:reboot"}}, ["vps:apiovh:reboot"]),
        ({"details": {"unauthorizedActionsByIAM": "a:apiovh:x, b:apiovh:y"}}, ["a:apiovh:x",
                                                                               "b:apiovh:y"]),
        ({"details": {"unauthorizedActionsByIAM": ["a:apiovh:x"]}}, ["a:apiovh:x"]),
        ({"details": {"unauthorizedActionsByIAM": ""}}, []),
        ({"details": {"unauthorizedActionsByIAM": "<!channel> *pwn*"}}, []),
        ({"details": {"unauthorizedActionsByIAM": "a:b:" + "x" * 500}}, []),
        ({"details": {"unauthorizedActionsByIAM": 42}}, []),
        ({"details": "nope"}, []),
        ([], []),
        (None, []),
    ],
)  # fmt: skip
def test_denied_actions_are_read_from_hostile_bodies_safely(body, actions):
    assert iam.denied_actions(body) == actions


# -- iam-policy -----------------------------------------------------------------------------


def test_iam_policy_prints_ovhclouds_policy_json_scoped_to_the_servers(monkeypatch, capsys):
    monkeypatch.setenv("OVH_ENDPOINT", "ovh-ca")
    monkeypatch.setenv("OVH_CLIENT_ID", CLIENT_ID)
    assert main(["iam-policy", "--server", BIG, "--server", UEFI]) == 0
    policy = json.loads(capsys.readouterr().out)
    assert policy["identities"] == [
        f"urn:v1:ca:identity:credential:<account id>/oauth2-{CLIENT_ID}"
    ]
    assert policy["resources"] == [
        {"urn": f"urn:v1:ca:resource:dedicatedServer:{UEFI}"},
        {"urn": f"urn:v1:ca:resource:dedicatedServer:{BIG}"},
    ]
    assert {a["action"] for a in policy["permissions"]["allow"]} == ALL_ACTIONS


def test_iam_policy_without_servers_has_a_placeholder_and_refuses_bad_names(monkeypatch, capsys):
    monkeypatch.delenv("OVH_CLIENT_ID", raising=False)
    monkeypatch.setenv("OVH_ENDPOINT", "https://api.us.ovhcloud.com/1.0")
    assert main(["iam-policy"]) == 0
    policy = json.loads(capsys.readouterr().out)
    assert policy["resources"] == [{"urn": "urn:v1:us:resource:dedicatedServer:<server name>"}]
    assert main(["iam-policy", "--server", "ns1;rm -rf /"]) == 2
    assert "is not a server name" in capsys.readouterr().err


def test_token_urls_follow_the_endpoint():
    assert token_url("https://eu.api.ovh.com/1.0") == "https://www.ovh.com/auth/oauth2/token"
    assert token_url("http://127.0.0.1:9/1.0") == "http://127.0.0.1:9/auth/oauth2/token"


# -- byoi-bot check -------------------------------------------------------------------------


def check(tmp_path, monkeypatch, sim) -> str:
    environ = {
        "BYOI_DB": str(tmp_path / "byoi.db"),
        "BYOI_APPROVERS": "U0BOB",
        "OVH_ENDPOINT": sim.url,
        "OVH_CLIENT_ID": CLIENT_ID,
        "OVH_CLIENT_SECRET": CLIENT_SECRET,
    }
    for name in ("OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY"):
        monkeypatch.delenv(name, raising=False)
    with FakeSlack() as slack:
        environ |= {"SLACK_BOT_TOKEN": slack.bot_token, "SLACK_API_URL": slack.base_url}
        for key, value in environ.items():
            monkeypatch.setenv(key, value)
        out = io.StringIO()
        run_check(Settings.load(environ), out=out)
    return out.getvalue()


def test_check_verifies_a_service_account_read_only(tmp_path, monkeypatch):
    with simulator() as sim:
        report = check(tmp_path, monkeypatch, sim)
        methods = {c["method"] for c in sim.calls() if c["path"].startswith("/1.0")}
    line = next(line for line in report.splitlines() if "ovhcloud IAM" in line)
    assert line.startswith("PASS") and "dedicatedServer:apiovh:reinstall" in line, line
    assert methods == {"GET"}, "check never acts"
    assert CLIENT_SECRET not in report


def test_check_names_the_reads_iam_denies(tmp_path, monkeypatch):
    allowed = sorted(ALL_ACTIONS - {"dedicatedServer:apiovh:install/status/get"})
    with simulator(allow=allowed) as sim:
        report = check(tmp_path, monkeypatch, sim)
    line = next(line for line in report.splitlines() if "ovhcloud IAM" in line)
    assert line.startswith("FAIL") and "install/status/get" in line and "iam-policy" in line


def test_a_half_given_service_account_is_a_configuration_error():
    with pytest.raises(ConfigError, match="OVH_CLIENT_ID and OVH_CLIENT_SECRET"):
        make_client("ovh-eu", client_id=CLIENT_ID)

"""Several OVHcloud accounts and regions: `[[account]]`, servers found per account, a fleet
across two simulators (two accounts: application keys on one, a service account on the other)."""

from __future__ import annotations

import copy
import json

import pytest
from bot_harness import APPROVER, BotHarness

from byoi_bot.config import ConfigError, Settings, survey
from byoi_bot.core.ports import ProviderError
from byoi_bot.ovhcloud.accounts import AccountsProvider
from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator
from byoi_bot.simulator.world import load_inventory
from byoi_bot.wiring import make_provider

EU, CA = "ns1001.ip-51-75-1.eu", "ns9001.ip-158-69-9.net"
CA_ID, CA_SECRET = "ca-sa-0001", "ca-secret-Zq7x"
CA_ACCOUNT = """
[[account]]
name = "ca"
endpoint = "{url}"
client_id_env = "BYOI_CA_ID"
client_secret_env = "BYOI_CA_SECRET"
"""


def ca_inventory() -> dict:
    """The built-in inventory's first server under another name (another account's)."""
    inventory = copy.deepcopy(load_inventory(None))
    first = inventory["servers"][0]
    first["server"]["name"] = CA
    inventory["servers"] = [first]
    return inventory


def settings_file(tmp_path, text: str) -> dict:
    path = tmp_path / "byoi.toml"
    path.write_text(text)
    return {"BYOI_CONFIG": str(path), "BYOI_APPROVERS": "U0BOB"}


# -- configuration --------------------------------------------------------------------------


def test_accounts_are_read_from_the_file(tmp_path):
    text = CA_ACCOUNT.format(url="ovh-ca") + "calls_per_minute = 30\n"
    text += '[[policy]]\npattern = "*"\naccounts = ["ca"]\n'
    settings = Settings.load(settings_file(tmp_path, text))
    (account,) = settings.accounts
    assert (account.name, account.endpoint, account.calls_per_minute) == ("ca", "ovh-ca", 30)
    assert dict(account.credential_env) == {
        "client_id": "BYOI_CA_ID",
        "client_secret": "BYOI_CA_SECRET",
    }
    policy = settings.policies.policies[0]
    assert policy.matches(CA, "ca") and not policy.matches(CA, "default")


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ('name = "ca"\nendpoint = "ovh-ca"\nclient_id_env = "X"\nclient_secret = "s3cr3t"',
         "stays out of this file"),
        ('name = "default"\nendpoint = "ovh-ca"\nclient_id_env = "A"\nclient_secret_env = "B"',
         "not \"default\""),
        ('name = "CA prod"\nendpoint = "ovh-ca"\nclient_id_env = "A"\nclient_secret_env = "B"',
         "short lower-case name"),
        ('name = "ca"\nendpoint = "ovh-mars"\nclient_id_env = "A"\nclient_secret_env = "B"',
         "ovh-eu, ovh-ca, ovh-us or an API URL"),
        ('name = "ca"\nendpoint = "ftp://x/1.0"\nclient_id_env = "A"\nclient_secret_env = "B"',
         "ovh-eu, ovh-ca, ovh-us or an API URL"),
        ('name = "ca"\nendpoint = "ovh-ca"\nclient_id_env = "A"\napplication_key_env = "B"',
         "one kind of credentials"),
        ('name = "ca"\nendpoint = "ovh-ca"\nclient_id_env = "a b"\nclient_secret_env = "B"',
         "not an environment variable name"),
        ('name = "ca"\nendpoint = "ovh-ca"\nclient_id_env = "A"\nclient_secret_env = "B"\n'
         'calls_per_minute = 0', "calls_per_minute"),
        ('name = "ca"\nendpoint = "ovh-ca"\nclient_id_env = "A"\nclient_secret_env = "B"\n'
         'calls_per_minute = true', "calls_per_minute"),
        ('name = "ca"\nendpoint = "ovh-ca"\nclient_id_env = "A"\nclient_secret_env = "B"\n'
         'region = "ca"', "unknown key(s) region"),
    ],
)  # fmt: skip
def test_hostile_account_tables_are_refused_with_an_example(tmp_path, table, words):
    with pytest.raises(ConfigError) as caught:
        Settings.load(settings_file(tmp_path, f"[[account]]\n{table}\n"))
    assert words in str(caught.value) and "[[account]]" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_duplicate_accounts_and_policies_naming_unknown_ones_are_refused(tmp_path):
    twice = CA_ACCOUNT.format(url="ovh-ca") * 2
    with pytest.raises(ConfigError, match="used twice"):
        Settings.load(settings_file(tmp_path, twice))
    unknown = CA_ACCOUNT.format(url="ovh-ca") + '[[policy]]\npattern = "*"\naccounts = ["us"]\n'
    with pytest.raises(ConfigError, match="no \\[\\[account\\]\\] is named `us`"):
        Settings.load(settings_file(tmp_path, unknown))


def test_a_missing_credential_variable_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("BYOI_CA_ID", raising=False)
    settings = Settings.load(settings_file(tmp_path, CA_ACCOUNT.format(url="ovh-ca")))
    with pytest.raises(ConfigError, match="BYOI_CA_ID is not set"):
        make_provider(settings)


# -- the provider ---------------------------------------------------------------------------


class Counting:
    """A provider whose server list can change, counting how often it is read."""

    def __init__(self, servers):
        self.servers, self.reads = list(servers), 0

    def list_servers(self):
        self.reads += 1
        return list(self.servers)


def test_servers_are_found_per_account_cached_refreshed_and_never_guessed():
    now = [0.0]
    eu, ca = Counting([EU, "shared.example.net"]), Counting([CA, "shared.example.net"])
    accounts = AccountsProvider({"default": eu, "ca": ca}, monotonic=lambda: now[0])
    assert accounts.account_of(EU) == "default" and accounts.account_of(CA) == "ca"
    assert (eu.reads, ca.reads) == (1, 1), "read once, then cached"
    with pytest.raises(ProviderError, match=r"both list shared\.example\.net"):
        accounts.account_of("shared.example.net")
    with pytest.raises(ProviderError, match=r"No configured OVHcloud account lists new\.example"):
        accounts.account_of("new.example.net")
    assert eu.reads == 1, "an unknown server is looked for again only after a while"
    ca.servers.append("new.example.net")
    now[0] = 31.0
    assert accounts.account_of("new.example.net") == "ca"
    assert accounts.accounts() == {"default": 1, "ca": 2}


# -- the whole bot over two simulators ------------------------------------------------------


class TwoAccounts(BotHarness):
    """The story harness with a second simulator, the `ca` account (a service account)."""

    def __init__(self, tmp_path, monkeypatch):
        self.ca = Simulator(
            ca_inventory(),
            deploy_seconds=60.0,
            credentials=DEMO_CREDENTIALS,
            service_account={"client_id": CA_ID, "client_secret": CA_SECRET},
        )
        self.monkeypatch = monkeypatch
        config = tmp_path / "byoi.toml"
        config.write_text(
            CA_ACCOUNT.format(url=self.ca.start("127.0.0.1", 0))
            + '[[policy]]\nname = "canada"\npattern = "*"\naccounts = ["ca"]\n'
            "keep_disks = [2]\n"
        )
        super().__init__(tmp_path, extra_env={"BYOI_CONFIG": str(config)})

    def _start_bot(self) -> None:
        env = {
            "OVH_ENDPOINT": self.endpoint,
            "BYOI_CA_ID": CA_ID,
            "BYOI_CA_SECRET": CA_SECRET,
            **{f"OVH_{k.upper()}": v for k, v in DEMO_CREDENTIALS.items()},
        }
        for key, value in env.items():
            self.monkeypatch.setenv(key, value)
        super()._start_bot()

    def close(self):
        super().close()
        self.ca.stop()


@pytest.fixture
def h(tmp_path, monkeypatch):
    import bot_harness

    # the bot's provider from its settings (every account), not over the harness's one client
    monkeypatch.setattr(bot_harness, "make_provider", lambda settings, _: make_provider(settings))
    harness = TwoAccounts(tmp_path, monkeypatch)
    yield harness
    harness.close()


def started(sim: Simulator) -> list[str]:
    return [c["path"].split("/")[4] for c in sim.calls() if c["path"].endswith("/reinstall")]


def test_a_fleet_across_two_accounts_goes_to_each_servers_own_account(h):
    url = f"{h.images.base_url}/debian-12.qcow2"
    h.slash(f"deploy {EU},{CA} {url} efi-bootloader=x.efi parallel=2")
    h.wait_answer("Fleet request")
    card = h.wait_card()
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "Started:")
    assert started(h.simulator) == [EU] and started(h.ca) == [CA]
    requests = {r.spec.server: r for r in h.bot.store.recent(5)}
    assert requests[CA].server_facts["account"] == "ca"
    assert requests[EU].server_facts["account"] == "default"
    assert requests[CA].spec.keep_disks == (2,) and requests[EU].spec.keep_disks == (), (
        "each server's own policy (the ca account's keeps disk group 2)"
    )


def test_the_card_and_status_and_images_show_the_account(h):
    h.slash(f"deploy {CA} {h.images.base_url}/debian-12.qcow2 efi-bootloader=x.efi")
    card = h.wait_card()
    text = json.dumps(card["blocks"], ensure_ascii=False)
    assert "account `ca`" in text
    assert "KEEPS disk group 2" in text, "the policy scoped to the ca account applies"
    h.slash(f"status {CA}")
    assert "account `ca`" in h.wait_answer("account")
    h.slash("images")
    default = len(load_inventory(None)["servers"])
    assert f"`default` ({default} servers), `ca` (1 server)" in h.wait_answer("OVHcloud accounts")


def test_an_accounts_credential_variables_are_not_reported_as_unknown(tmp_path):
    environ = settings_file(tmp_path, CA_ACCOUNT.format(url="ovh-ca"))
    environ |= {"BYOI_CA_ID": CA_ID, "BYOI_CA_SECRET": CA_SECRET, "OVH_CA_TYPO": "x"}
    _, problems = survey(environ)
    named = {p.where for p in problems}
    assert "OVH_CA_TYPO" in named and not named & {"BYOI_CA_ID", "BYOI_CA_SECRET"}

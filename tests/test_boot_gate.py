"""The boot gate: `done` only once the server answers, over real TCP to the simulator's servers.

The bot under test is the whole production one (`BotHarness`); the simulator plays the
servers' side (`simulator.boots`). Time is the harness's fake clock, shared with the
simulator; each `h.poll()` is one poll cycle.
"""

from __future__ import annotations

import email
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest
from bot_harness import APPROVER, CHANNEL, REQUESTER, BotHarness
from core_fixtures import T0
from test_fleet import ask, fleet, started, tick

from byoi_bot.core.boot_gate import BootTarget, Gate, ProbeResult
from byoi_bot.core.fleet import FleetState
from byoi_bot.core.request import DeploySpec
from byoi_bot.core.states import State
from byoi_bot.probes import NetworkProbe
from byoi_bot.simulator.boots import SSH_BANNER, Behaviour

SERVER = "ns1001.ip-51-75-1.eu"
INSTALL = 61  # seconds: the simulator's install (60 s) is over
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3Xj0m4cT0bq0CqGvB2Yw1KxZ5u9sB1sq2Zk0zq4rVb"


@pytest.fixture
def h(tmp_path, db_location):
    harness = BotHarness(tmp_path, db=db_location)
    yield harness
    harness.close()


def deploy(h: BotHarness, server: str = SERVER, **spec) -> str:
    """Ask for and approve a deploy of `server`; its id."""
    r = h.bot.deployments.request(
        DeploySpec(server=server, image_url=f"{h.images.base_url}/debian-12.qcow2",
                   image_type="qcow2", efi_bootloader="\\EFI\\debian\\grubx64.efi", **spec),
        REQUESTER, CHANNEL,
    )  # fmt: skip
    h.bot.deployments.approve(r.id, APPROVER)
    return r.id


def state(h: BotHarness, request_id: str) -> State:
    return h.bot.store.get(request_id).state


def gate(h: BotHarness, request_id: str) -> Gate:
    return Gate.from_dict(h.bot.store.get(request_id).boot)


def card_text(h: BotHarness, request_id: str) -> str:
    ts = h.bot.store.get(request_id).message_ts
    return str(h.slack.message(CHANNEL, ts)["blocks"])


def thread(h: BotHarness, request_id: str) -> list[str]:
    return h.thread(h.bot.store.get(request_id).message_ts)


def test_a_server_that_answers_at_once_is_done_in_the_same_poll(h):
    r = deploy(h)
    h.poll(advance=INSTALL)
    assert state(h, r) is State.DONE
    done = thread(h, r)[-1]
    assert "is done in" in done and f"the server answered ({SSH_BANNER})" in done
    g = gate(h, r)
    assert g.probes == 1 and g.ip == "127.0.0.1" and g.ssh_port == 22
    assert not any("waiting for the server" in t for t in thread(h, r)), "no noise when at once"
    audit = [(a["from_state"], a["to_state"]) for a in h.bot.store.audit(r) if a["to_state"]]
    assert audit[-2:] == [("deploying", "booting"), ("booting", "done")]


def test_the_gate_probes_the_ip_preflight_read_without_asking_ovhcloud_again(h):
    """A server keeps its IP through a reinstall: the API budget is not spent re-reading it."""
    r = deploy(h)
    assert h.bot.store.get(r).server_facts["ip"] == "127.0.0.1"
    before = len(h.simulator.calls())
    h.poll(advance=INSTALL)
    assert state(h, r) is State.DONE and gate(h, r).ip == "127.0.0.1"
    read = [c["path"] for c in h.simulator.calls()[before:]]
    assert not [p for p in read if p.endswith(f"/dedicated/server/{SERVER}")], read


def test_a_server_that_never_answers_fails_with_a_runbook_and_never_a_check_mark(h):
    h.simulator.boots.set(SERVER, Behaviour("never"))
    r = deploy(h)
    h.poll(advance=INSTALL)
    assert state(h, r) is State.BOOTING
    assert "booting" in card_text(h, r) and "waiting for the server to answer" in card_text(h, r)
    waiting = h.wait_thread(h.bot.store.get(r).message_ts, "waiting for the server")[-1]
    assert "SSH on `127.0.0.1:22`" in waiting and "reset the connection" in waiting
    for _ in range(44):  # 15 minutes of probes every 20 s
        h.poll(advance=20)
        assert state(h, r) is State.BOOTING
    h.poll(advance=40)
    assert state(h, r) is State.FAILED
    posts = thread(h, r)
    assert sum("waiting for the server" in t for t in posts) == 1, "told once"
    failed = posts[-1]
    assert "✅" not in failed and "is done" not in failed
    assert "the install finished at OVHcloud, but the server did not come back within 15m" in (
        failed
    )
    for needle in (
        "*What is known*", "`\\EFI\\debian\\grubx64.efi` (given in the request)",
        "Server boot mode: uefi", "*Likely causes*", "cloud-init", "Secondary disks",
        "*How to look*", f"GET /dedicated/server/{SERVER}/boot?bootType=rescue",
        f'PUT /dedicated/server/{SERVER} {{"bootId": N}}',
        f"POST /dedicated/server/{SERVER}/reboot", "kvmipHtml5URL",
    ):  # fmt: skip
        assert needle in failed, needle
    assert gate(h, r).probes == 46
    reason = h.bot.store.audit(r)[-1]["reason"]
    assert reason.startswith("the install finished but the server did not come back")


def test_probes_are_paced_whatever_the_poll_rate(h):
    h.simulator.boots.set(SERVER, Behaviour("never"))
    r = deploy(h)
    h.poll(advance=INSTALL)
    for _ in range(5):
        h.poll(advance=3)
    assert gate(h, r).probes == 1
    h.poll(advance=5)  # 20 s after the first probe
    assert gate(h, r).probes == 2


def test_a_late_server_passes_the_gate_when_it_answers(h):
    h.simulator.boots.set(SERVER, Behaviour("late", after=100))
    r = deploy(h)
    h.poll(advance=INSTALL)
    for _ in range(4):
        h.poll(advance=20)
    assert state(h, r) is State.BOOTING
    h.poll(advance=20)
    assert state(h, r) is State.DONE and gate(h, r).probes == 6


def test_something_that_is_not_ssh_does_not_pass(h):
    h.simulator.boots.set(SERVER, Behaviour("banner", text="HTTP/1.1 400 Bad Request"))
    r = deploy(h)
    h.poll(advance=INSTALL)
    assert state(h, r) is State.BOOTING
    assert "answered, but not SSH: HTTP/1.1 400 Bad Request" in gate(h, r).last


def test_a_restart_resumes_the_gate_and_never_passes_it(h):
    h.simulator.boots.set(SERVER, Behaviour("never"))
    r = deploy(h)
    h.poll(advance=INSTALL)
    h.restart()
    h.poll(advance=20)
    assert state(h, r) is State.BOOTING and gate(h, r).probes == 2
    h.restart()
    h.simulator.boots.set(SERVER, Behaviour("ssh"))
    h.poll(advance=20)
    assert state(h, r) is State.DONE and gate(h, r).probes == 3


def test_a_bot_down_past_the_deadline_probes_once_more_before_failing(h):
    h.simulator.boots.set(SERVER, Behaviour("never"))
    r = deploy(h)
    h.poll(advance=INSTALL)
    h.restart()
    h.simulator.boots.set(SERVER, Behaviour("ssh"))
    h.poll(advance=3600)
    assert state(h, r) is State.DONE


def test_the_policys_port_is_probed_on_the_ip_ovhcloud_gives(tmp_path):
    """Production semantics, no override: the IP from GET /dedicated/server/{sn}, the port
    from BYOI_BOOT_SSH_PORT."""
    h = BotHarness(tmp_path)
    try:
        port = h.simulator.boots.port_of(SERVER)
        h.env["BYOI_BOOT_SSH_PORT"] = str(port)
        h.restart()
        h.bot.deployments.probe = NetworkProbe()  # the production probe, no port override
        r = deploy(h)
        h.poll(advance=INSTALL)
        assert state(h, r) is State.DONE and gate(h, r).ssh_port == port
    finally:
        h.close()


def test_a_policy_without_the_gate_says_the_boot_was_not_checked(tmp_path):
    h = BotHarness(tmp_path, extra_env={"BYOI_BOOT_GATE": "off"})
    try:
        r = deploy(h)
        h.poll(advance=INSTALL)
        assert state(h, r) is State.DONE and h.bot.store.get(r).boot is None
        assert "its boot was not checked (the boot gate is off" in thread(h, r)[-1]
    finally:
        h.close()


def test_a_canary_that_does_not_come_back_stops_the_rollout(tmp_path):
    h = BotHarness(tmp_path, extra_env={"BYOI_FLEET_LIMIT": "4", "BYOI_BOOT_TIMEOUT": "2m"})
    try:
        ok1, ok3, ok5 = SERVER, "ns3003.ip-51-75-3.eu", "ns5005.ip-149-56-5.net"
        h.simulator.boots.set(ok1, Behaviour("never"))
        card = ask(h, f"{ok1},{ok3},{ok5}", "parallel=2 canary=1")
        h.react(APPROVER, ts=card["ts"])
        h.wait_thread(card["ts"], "Started:")
        tick(h, INSTALL)
        member = h.bot.store.fleet_members(fleet(h))[0]
        assert member.state is State.BOOTING
        tick(h, 60)
        assert started(h) == [ok1], "a canary waiting for its server is not done"
        tick(h, 70)
        tick(h, 0)
        f = fleet(h)
        assert f.state is FleetState.STOPPED and started(h) == [ok1]
        posts = h.thread(card["ts"])
        assert any("did not come back" in t and ok1 in t for t in posts)
        assert "Rollout stopped" in posts[-1] and "2 not started" in posts[-1]
    finally:
        h.close()


def test_a_wave_is_finished_only_once_its_servers_answer(tmp_path):
    h = BotHarness(tmp_path, extra_env={"BYOI_FLEET_LIMIT": "4"})
    try:
        ok1, ok3 = SERVER, "ns3003.ip-51-75-3.eu"
        h.simulator.boots.set(ok3, Behaviour("late", after=30))
        card = ask(h, f"{ok1},{ok3}", "parallel=2")
        h.react(APPROVER, ts=card["ts"])
        h.wait_thread(card["ts"], "Started:")
        tick(h, INSTALL)
        assert not any("Wave" in t for t in h.thread(card["ts"]))
        tick(h, 40)
        tick(h, 0)
        assert fleet(h).state is FleetState.DONE
        assert any("Wave 1/1 finished: 2 done" in t for t in h.thread(card["ts"]))
    finally:
        h.close()


# -- phone-home (HTTP mode with a public URL) ----------------------------------------------


@pytest.fixture
def phoning(tmp_path):
    h = BotHarness(tmp_path, extra_env={"BYOI_PUBLIC_URL": "https://bot.example.net/"})
    sent = []
    start = h.bot.deployments.provider.start
    h.bot.deployments.provider.start = lambda spec: sent.append(spec) or start(spec)
    h.sent = sent
    yield h
    h.close()


def phone_url(h: BotHarness) -> str:
    """The phone-home URL in the user data sent, pointed at the bot's HTTP server."""
    message = email.message_from_string(h.sent[-1].user_data)
    config = message.get_payload()[0].get_payload()
    url = config.split('"url": "')[1].split('"')[0]
    assert url.startswith("https://bot.example.net/boot/")
    return h.url.replace("/slack/events", url.removeprefix("https://bot.example.net"))


def post(url: str, form: dict | bytes | None, method: str = "POST") -> int:
    data = urlencode(form).encode() if isinstance(form, dict) else form
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, method=method), timeout=5):
            return 200
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_users_user_data_is_kept_whole_beside_the_phone_home_part(phoning):
    h = phoning
    own = "#cloud-config\npackages: [nginx]\n# é, and a line that looks like a boundary\n--x\n"
    deploy(h, user_data=own)
    message = email.message_from_string(h.sent[-1].user_data)
    first, second = message.get_payload()
    assert first.get_content_type() == "text/cloud-config"
    assert '"post": ["pub_key_rsa", "pub_key_ecdsa", "pub_key_ed25519"' in first.get_payload()
    assert second.get_payload(decode=True).decode() == own
    assert h.bot.store.recent(1)[0].state is State.DEPLOYING, "the approval's check held"


def test_a_phone_home_passes_the_gate_and_shows_the_host_keys(phoning, caplog):
    h = phoning
    h.simulator.boots.set(SERVER, Behaviour("never"))  # SSH is not reachable from the bot
    r = deploy(h)
    url = phone_url(h)
    token = url.rsplit("/", 1)[1]
    h.poll(advance=INSTALL)
    assert state(h, r) is State.BOOTING
    assert post(url.replace(token, "x" * len(token)), {"pub_key_ed25519": ED25519}) == 404
    assert post(url, {"pub_key_ed25519": ED25519 + " root@web-1", "pub_key_rsa": "<!here>",
                      "hostname": "web-1"}) == 200  # fmt: skip
    assert state(h, r) is State.DONE
    done = thread(h, r)[-1]
    assert "the server answered (it phoned home (cloud-init))" in done
    assert f"• `ed25519`: `{ED25519}`" in done and "root@web-1" not in done
    assert "<!here>" not in done and "rsa" not in done.split("Host keys")[1]
    assert post(url, {"pub_key_ed25519": ED25519}) == 404, "one time only"
    assert token not in caplog.text
    with open(h.db, "rb") as db:
        assert token.encode() not in db.read()


def test_a_phone_home_before_ovhclouds_done_passes_the_gate_then(phoning):
    h = phoning
    h.simulator.boots.set(SERVER, Behaviour("never"))
    r = deploy(h)
    assert post(phone_url(h), {"hostname": "web-1"}) == 200
    assert state(h, r) is State.DEPLOYING
    h.poll(advance=INSTALL)
    assert state(h, r) is State.DONE


@pytest.mark.parametrize(
    ("path", "body", "method", "status"),
    [
        ("/boot/r-nope22/abc", b"a=b", "POST", 404),
        ("/boot/only-one-part", b"", "POST", 404),
        ("/boot/r-nope22/abc", b"a=b", "GET", 405),
        ("/boot/r-nope22/abc", b"x" * (64 * 1024 + 1), "POST", 413),
        ("/boot/r-nope22/abc", b"&".join(b"k%d=v" % i for i in range(40)), "POST", 400),
    ],
)
def test_hostile_phone_home_calls(phoning, path, body, method, status):
    url = phoning.url.replace("/slack/events", path)
    assert post(url, body if method == "POST" else None, method) == status


def test_a_store_before_the_gate_upgrades_and_booting_holds_its_server(db_location):
    """A database at the schema before the boot gate (its migrations are the last) takes the
    `boot` column, keeps its deploying request, and then one server has one active request
    whether it is deploying or booting."""
    from core_fixtures import request
    from raw_sql import older_schema_with

    from byoi_bot.core.ports import ServerBusy
    from byoi_bot.store import open_store
    from byoi_bot.store.rows import to_row

    old = request("r-oldone", state=State.DEPLOYING)
    row = {k: v for k, v in to_row(old).items() if k != "boot"}
    # every migration but the gate's, the last
    older_schema_with(db_location, row, postgres=slice(-1), sqlite_before="m_gate_01_boot_gate")
    store = open_store(db_location)
    try:
        assert store.get(old.id) == old and store.get(old.id).boot is None
        gate = Gate(ip="127.0.0.1", probes=2)
        store.transition(old.id, State.DEPLOYING, State.BOOTING, "byoi-bot", boot=gate.to_dict())
        assert Gate.from_dict(store.get(old.id).boot) == gate
        with pytest.raises(ServerBusy):
            store.create(request("r-second"), None)
    finally:
        store.close()


# -- a health URL named by the request (or by its catalog image) ----------------------------


def test_a_health_url_option_is_parsed_approved_and_shown():
    from byoi_bot.commands import Deploy, parse

    base = "deploy ns1.example.net https://images.example.net/a.qcow2"
    url = "health-url=https://web-1.example.net:8443/healthz?deep=1"
    command = parse(f"{base} {url}", now=T0)
    assert isinstance(command, Deploy)
    spec = command.spec
    assert spec.health_url == "https://web-1.example.net:8443/healthz?deep=1"
    assert DeploySpec.from_public_dict(spec.public_dict()) == spec
    other = DeploySpec(**{**spec.__dict__, "health_url": "https://web-1.example.net/other"})
    assert other.fingerprint() != spec.fingerprint(), "the approval binds the health URL"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("http://web.example/healthz", "must start with https://"),
        ("https://bob:pw@web.example/", "no user:password@"),
        ("https://web.example:70000/", "port"),
        ('"https://web.example/a b"', "spaces or control characters"),
        ("healthz", "must start with https://"),
    ],
)
def test_health_urls_the_option_refuses(value, problem):
    from byoi_bot.commands import CommandError, parse

    with pytest.raises(CommandError) as caught:
        parse(f"deploy ns1.example.net https://images.example.net/a.qcow2 health-url={value}",
              now=T0)  # fmt: skip
    assert caught.value.argument == "health-url" and problem in str(caught.value)


def test_a_spec_without_a_health_url_keeps_the_fingerprint_it_had_before_the_gate():
    from core_fixtures import spec

    # spec().fingerprint() on main before the boot gate: approvals stored then still count
    assert (
        spec().fingerprint() == "c9eff469f9d6246ba7d5299d24e3e274effbfd9cd1d62551aabd7ac0afb34f11"
    )


def test_the_health_url_is_asked_of_the_servers_ip_and_shown_on_the_card(h, monkeypatch):
    seen = []
    probe = h.bot.deployments.probe
    monkeypatch.setattr(probe, "probe", lambda target: seen.append(target) or ProbeResult(
        True, "SSH-2.0-x; the health URL answered 204"))  # fmt: skip
    r = deploy(h, health_url="https://web-1.example.net/healthz")
    assert "done once https://web-1.example.net/healthz answers 2xx" in card_text(h, r)
    h.poll(advance=INSTALL)
    assert state(h, r) is State.DONE
    assert seen == [BootTarget(SERVER, "127.0.0.1", 22, "https://web-1.example.net/healthz")]


# -- settings, policies and catalog keys -----------------------------------------------------


def test_the_gates_settings_policy_and_catalog_keys(tmp_path):
    from byoi_bot.config import Settings, load_catalog

    config = tmp_path / "byoi.toml"
    config.write_text(
        '[[policy]]\npattern = "ns9*"\nboot_gate = false\nboot_timeout = "30m"\n'
        "boot_ssh_port = 2222\n\n"
        '[[image]]\nname = "web"\nurl = "https://images.example.net/web.qcow2"\n'
        'checksum = "sha256:' + "ab" * 32 + '"\nssh_port = 2200\n'
        'health_url = "https://web.example.net/healthz"\n'
    )
    settings = Settings.load({"BYOI_CONFIG": str(config), "BYOI_BOOT_TIMEOUT": "5m"})
    ns9, other = settings.policies.for_server("ns9.example"), settings.policies.for_server("x")
    assert (ns9.boot_gate, ns9.boot_timeout.seconds, ns9.boot_ssh_port) == (False, 1800, 2222)
    assert (other.boot_gate, other.boot_timeout.seconds, other.boot_ssh_port) == (True, 300, 22)
    [image] = load_catalog(str(config))
    assert image.boot() == {"ssh_port": 2200}
    assert image.health_url == "https://web.example.net/healthz"


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"BYOI_BOOT_SSH_PORT": "70000"}, "BYOI_BOOT_SSH_PORT: `70000` is no TCP port"),
        ({"BYOI_BOOT_SSH_PORT": "ssh"}, "BYOI_BOOT_SSH_PORT: `ssh` is not a whole number"),
        ({"BYOI_BOOT_TIMEOUT": "15"}, "BYOI_BOOT_TIMEOUT: `15` has no unit"),
        ({"BYOI_BOOT_GATE": "maybe"}, "BYOI_BOOT_GATE: `maybe` is not on or off"),
        ({"BYOI_PUBLIC_URL": "http://bot.example.net"}, "BYOI_PUBLIC_URL: not an https://"),
        ({"BYOI_PUBLIC_URL": "https://u:p@bot.example.net"}, "without credentials"),
        ({"BYOI_PUBLIC_URL": "https://bot.example.net/?x=1"}, "or query"),
        ({"BYOI_ALERTMANAGER_URL": "alertmanager:9093"}, "BYOI_ALERTMANAGER_URL: not an http"),
        ({"BYOI_ALERTMANAGER_URL": "http://u:p@am:9093"}, "without credentials"),
    ],
)
def test_settings_the_gate_refuses(env, problem):
    from byoi_bot.config import ConfigError, Settings

    with pytest.raises(ConfigError) as caught:
        Settings.load(env)
    assert problem in str(caught.value) and "u:p" not in str(caught.value)


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ("ssh_port = 0", "`ssh_port`: `0` must be at least 1"),
        ('ssh_port = "22a"', "`ssh_port`: `22a` is not a whole number"),
        ('health_url = "http://web.example.net/"', "`health_url` cannot be used: it must start"),
        ("health_url = 443", "`health_url` cannot be used: it is not a string"),
    ],
)
def test_catalog_keys_the_gate_refuses(tmp_path, keys, problem):
    from byoi_bot.config import ConfigError, load_catalog

    config = tmp_path / "byoi.toml"
    config.write_text(
        '[[image]]\nname = "web"\nurl = "https://images.example.net/web.qcow2"\n'
        'checksum = "sha256:' + "ab" * 32 + f'"\n{keys}\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_catalog(str(config))
    assert str(caught.value).startswith("[[image]] #1 `web`: ") and problem in str(caught.value)


def test_the_card_is_redrawn_when_the_servers_answer_changes_not_at_every_probe(h):
    h.simulator.boots.set(SERVER, Behaviour("never"))
    r = deploy(h)
    h.poll(advance=INSTALL)
    ts = h.bot.store.get(r).message_ts
    edits = len([c for c in h.slack.calls_to("chat.update") if c.args.get("ts") == ts])
    for _ in range(5):
        h.poll(advance=20)
    assert gate(h, r).probes == 6
    same = len([c for c in h.slack.calls_to("chat.update") if c.args.get("ts") == ts])
    assert same == edits, "the same answer: no redraw"
    h.simulator.boots.set(SERVER, Behaviour("banner", text="HTTP/1.1 400 Bad Request"))
    h.poll(advance=20)
    assert "last probe: 127.0.0.1:" in card_text(h, r) and "not SSH" in card_text(h, r)


def test_a_users_multipart_user_data_is_attached_whole():
    from byoi_bot.core import phone_home

    own = (
        'Content-Type: multipart/mixed; boundary="XYZ"\nMIME-Version: 1.0\n\n'
        "--XYZ\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho hi\n"
        "--XYZ\nContent-Type: text/cloud-config\n\n#cloud-config\npackages: [nginx]\n--XYZ--\n"
    )
    message = email.message_from_string(phone_home.user_data(own, "https://bot.example/boot/x"))
    mine, theirs = message.get_payload()
    assert mine.get_content_type() == "text/cloud-config"
    assert theirs.get_content_type() == "multipart/mixed"
    assert [p.get_payload() for p in theirs.get_payload()] == [
        "#!/bin/sh\necho hi",
        "#cloud-config\npackages: [nginx]",
    ]


@pytest.mark.parametrize(
    ("extra", "spec"),
    [
        ({"BYOI_BOOT_GATE": "off"}, {"user_data": "#cloud-config\n{}\n"}),  # no gate
        ({}, {"config_drive": False}),  # the user wants no config drive
    ],
)
def test_no_phone_home_without_a_config_drive_or_the_gate(tmp_path, extra, spec):
    h = BotHarness(tmp_path, extra_env={"BYOI_PUBLIC_URL": "https://bot.example.net", **extra})
    try:
        sent = []
        start = h.bot.deployments.provider.start
        h.bot.deployments.provider.start = lambda s: sent.append(s) or start(s)
        r = deploy(h, **spec)
        assert sent[-1].user_data == spec.get("user_data")
        assert h.bot.store.get(r).boot is None
    finally:
        h.close()

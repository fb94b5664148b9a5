"""Keeping data disk groups: the guide's rules, the body, the card, the simulator, the policy."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import ovh.exceptions as E
import pytest
from bot_harness import APPROVER, BotHarness
from ovh_fixtures import BIG, UEFI, client_for, providers, simulator_fixtures, spec

from byoi_bot.commands import CommandError, Deploy, parse
from byoi_bot.commands.deploy import catalog_spec
from byoi_bot.config import ConfigError, Settings, load_catalog
from byoi_bot.core.catalog import CatalogImage
from byoi_bot.core.messages import catalog
from byoi_bot.core.ports import DiskGroup, ServerFacts
from byoi_bot.core.sent import disk_plan, resolve, sent_fields
from byoi_bot.ovhcloud import schema
from byoi_bot.ovhcloud.provider import reinstall_body

GiB = 1024**3
SERVER = ServerFacts(
    UEFI,
    "gra3",
    "ok",
    "uefi",
    64 * GiB,
    (DiskGroup(1, 480 * 10**9, "SSD", 2), DiskGroup(2, 8 * 10**12, "HDD", 4)),
)
REINSTALL = ("POST", "/dedicated/server/{serviceName}/reinstall")

running, sim, clock = simulator_fixtures(70.0)


def kept(**changes):
    return resolve(spec(**changes), "reinstall", {}, SERVER)


def test_the_os_group_is_named_and_each_kept_group_gets_its_own_entry():
    resolved, problems = kept(keep_disks=(2,))
    assert problems == [] and resolved.disk_group == 1, "the OS group is sent, never automatic"
    body = reinstall_body(resolved)
    assert body["storage"] == [{"diskGroupId": 1}, {"diskGroupId": 2, "erase": False}]
    assert schema.errors(body, schema.request_schema(*REINSTALL)) == []
    shown = dict(sent_fields(resolved))
    assert shown["storage[1].diskGroupId"] == "2" and shown["storage[1].erase"] == "false"


def test_the_card_says_exactly_what_is_erased_and_what_is_kept():
    resolved, _ = kept(keep_disks=(2,))
    facts = SERVER.to_dict()
    assert disk_plan(resolved, facts) == (
        "ERASES disk group 1 (2× 480 GB SSD); KEEPS disk group 2 (4× 8 TB HDD)"
    )
    assert disk_plan(replace(resolved, keep_disks=()), facts) is None, "all data: as before"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"keep_disks": (2, 2)}, "disk group 2 more than once"),
        ({"keep_disks": (3,)}, "has no disk group 3 (its groups: 1, 2)"),
        ({"keep_disks": (1,)}, "put the OS on another group with `disk-group=2`"),
        ({"keep_disks": (2,), "disk_group": 2}, "disk group 2 receives the operating system"),
        ({"keep_disks": (1, 2)}, "leave one group out of `keep-disks=` for the OS"),
    ],
)
def test_what_the_guide_refuses_is_refused_in_plain_words(changes, words):
    _, problems = kept(**changes)
    assert len(problems) == 1 and words in problems[0], problems


def test_the_legacy_api_and_an_unread_server_cannot_keep_disks():
    _, problems = resolve(spec(keep_disks=(2,), efi_bootloader=None), "legacy", {}, SERVER)
    assert any("`keep-disks=` cannot be sent" in p and "legacy" in p for p in problems)
    _, problems = resolve(spec(keep_disks=(2,)), "reinstall", {}, None)
    assert problems and "could not be read" in problems[0]


def test_the_policy_default_applies_unless_the_request_says_otherwise():
    resolved, _ = resolve(spec(), "reinstall", {}, SERVER, keep_default=(2,))
    assert resolved.keep_disks == (2,)
    resolved, _ = resolve(spec(keep_disks=()), "reinstall", {}, SERVER, keep_default=(2,))
    assert resolved.keep_disks == () and "storage" not in reinstall_body(resolved)


def test_the_approval_hash_covers_the_kept_groups_and_old_hashes_still_hold():
    base = spec()
    assert replace(base, keep_disks=()).fingerprint() == base.fingerprint()
    assert replace(base, keep_disks=(2,)).fingerprint() != base.fingerprint()
    stored = replace(base, keep_disks=(2,)).with_secrets(None)
    again = type(stored).from_public_dict(json.loads(json.dumps(stored.public_dict())))
    assert again.keep_disks == (2,) and again.fingerprint() == stored.fingerprint()


# -- the simulator learns the field ---------------------------------------------------------


def test_the_simulator_keeps_what_it_is_asked_to_keep(sim):
    reinstall, _ = providers(client_for(sim))
    resolved, _ = resolve(spec(BIG, keep_disks=(2,)), "reinstall", {}, reinstall.server_facts(BIG))
    assert reinstall.start(resolved)


@pytest.mark.parametrize(
    ("storage", "words"),
    [
        ([{"diskGroupId": 1}, {"diskGroupId": 1, "erase": False}], "more than once"),
        ([{"diskGroupId": 1, "erase": False}], "receives the operating system"),
        ([{"diskGroupId": 2}, {"diskGroupId": 2, "erase": False}], "more than once"),
        ([{"diskGroupId": 1}, {"diskGroupId": 9, "erase": False}], "could not be found"),
        ([{"diskGroupId": 1}, {"diskGroupId": 2}], "Multiple (2) disk groups"),
        ([{"diskGroupId": 1}, {"diskGroupId": 2, "erase": False, "hardwareRaid": []}], "only"),
        ([{"diskGroupId": 1}, {"diskGroupId": 2, "erase": "no"}], "erase"),
    ],
)
def test_the_simulator_refuses_what_the_guide_refuses(sim, storage, words):
    body = reinstall_body(spec(UEFI)) | {"storage": storage}
    with pytest.raises(E.APIError) as caught:
        client_for(sim).post(f"/dedicated/server/{UEFI}/reinstall", **body)
    assert words in str(caught.value)


# -- configuration and the whole bot --------------------------------------------------------


def config(tmp_path, policy: str) -> dict:
    path = tmp_path / "byoi.toml"
    path.write_text(f'[[policy]]\npattern = "ns1001*"\n{policy}\n')
    return {"BYOI_CONFIG": str(path), "BYOI_APPROVERS": "U0BOB"}


def test_a_policy_names_the_disk_groups_its_servers_keep(tmp_path):
    policies = Settings.load(config(tmp_path, "keep_disks = [2]")).policies
    assert policies.for_server(UEFI).keep_disks == (2,)
    assert policies.for_server(BIG).keep_disks == ()


@pytest.mark.parametrize(
    "value", ["2", "[0]", "[-1]", "[2, 2]", '["2"]', "[true]", "[1.5]", "{a = 1}"]
)
def test_hostile_keep_disks_settings_are_refused_with_an_example(tmp_path, value):
    with pytest.raises(ConfigError) as caught:
        Settings.load(config(tmp_path, f"keep_disks = {value}"))
    assert "keep_disks" in str(caught.value) and "[[policy]]" in str(caught.value)


@pytest.fixture
def h(tmp_path):
    path = tmp_path / "byoi.toml"
    path.write_text('[[policy]]\nname = "data"\npattern = "ns1001*"\nkeep_disks = [2]\n')
    harness = BotHarness(tmp_path, extra_env={"BYOI_CONFIG": str(path)})
    yield harness
    harness.close()


def test_the_bot_keeps_the_policys_disk_groups_says_so_and_sends_it(h):
    bodies = []
    original = h.simulator.world.reinstall
    h.simulator.world.reinstall = lambda server, body: bodies.append(body) or original(server, body)
    h.slash(f"deploy {UEFI} {h.images.base_url}/debian-12.qcow2 efi-bootloader=\\EFI\\BOOT\\X.EFI")
    card = h.wait_card()
    text = json.dumps(card["blocks"], ensure_ascii=False)
    assert "ERASES disk group 1 (2× 480 GB NVME); KEEPS disk group 2 (2× 4 TB HDD)" in text
    assert "ERASES ALL DATA" not in text
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "started at OVHcloud")
    assert [b["storage"] for b in bodies] == [
        [{"diskGroupId": 1}, {"diskGroupId": 2, "erase": False}]
    ]


# -- the option -----------------------------------------------------------------------------

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
BASE = f"deploy {UEFI} https://images.example.net/debian-12.qcow2"


@pytest.mark.parametrize(
    ("option", "groups"),
    [("keep-disks=2", (2,)), ("keep-disks=2,3", (2, 3)), ('keep-disks="3, 2"', (3, 2)),
     ("keep-disks=NONE", ()), ("", None)],
)  # fmt: skip
def test_keep_disks_parses(option, groups):
    command = parse(f"{BASE} {option}", now=NOW)
    assert isinstance(command, Deploy) and command.spec.keep_disks == groups


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2,2", "disk group 2 is listed more than once"),
        ("0", "positive whole numbers"),
        ("-1", "positive whole numbers"),
        ("2,", "positive whole numbers"),
        ("two", "positive whole numbers"),
        ("1e3", "positive whole numbers"),
        ("9" * 12, "positive whole numbers"),
        ("２", "positive whole numbers"),  # a full-width digit
        ("2;rm -rf /", "positive whole numbers"),
    ],
)
def test_hostile_keep_disks_values_are_refused_with_an_example(value, words):
    with pytest.raises(CommandError) as caught:
        parse(f'{BASE} keep-disks="{value}"', now=NOW)
    assert caught.value.argument == "keep-disks" and words in caught.value.problem
    assert parse(caught.value.example.removeprefix("/byoi "), now=NOW)


def test_keep_disks_twice_is_refused():
    with pytest.raises(CommandError) as caught:
        parse(f"{BASE} keep-disks=2 keep-disks=3", now=NOW)
    assert caught.value.argument == "keep-disks"


def test_a_user_keeps_a_disk_group_and_a_kept_os_group_is_refused_before_any_card(h):
    h.slash(f"deploy {BIG} {h.images.base_url}/debian-12.qcow2 keep-disks=1")
    answer = h.wait_answer("receives the operating system")
    assert "disk-group=2" in answer and h.cards() == []


# -- the catalog ------------------------------------------------------------------------------

IMAGE = '[[image]]\nname = "web"\nurl = "https://images.example.net/web.qcow2"\n'
IMAGE += 'checksum = "sha256:' + "ab" * 32 + '"\n'


@pytest.mark.parametrize(("line", "kept"), [("keep_disks = [2, 3]", (2, 3)),
                                            ("keep_disks = []", ()), ("", None)])  # fmt: skip
def test_a_catalog_image_names_the_disk_groups_it_keeps(tmp_path, line, kept):
    path = tmp_path / "byoi.toml"
    path.write_text(f"{IMAGE}{line}\n")
    [image] = load_catalog(str(path))
    assert image.keep_disks == kept
    listed = catalog((image,))
    assert ("keeps disk groups 2, 3" in listed) == (kept == (2, 3))
    assert ("keeps no disk group" in listed) == (kept == ())


@pytest.mark.parametrize("value", ["2", "[0]", "[2, 2]", '["2"]', "[true]", "{a = 1}"])
def test_hostile_catalog_keep_disks_are_refused_naming_the_image(tmp_path, value):
    path = tmp_path / "byoi.toml"
    path.write_text(f"{IMAGE}keep_disks = {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_catalog(str(path))
    assert str(caught.value).startswith("[[image]] #1 `web`: keep_disks ")
    assert "e.g. keep_disks = [2, 3]" in str(caught.value) or "more than once" in str(caught.value)


@pytest.mark.parametrize(
    ("image_keeps", "typed", "spec_keeps"),
    [((2,), "", (2,)), ((), "", ()), (None, "", None), ((2,), "keep-disks=3", (3,)),
     ((2,), "keep-disks=none", ())],
)  # fmt: skip
def test_the_request_wins_over_the_image_and_the_image_over_the_policy(
    image_keeps, typed, spec_keeps
):
    image = CatalogImage("web", "https://images.example.net/web.qcow2", keep_disks=image_keeps)
    command = parse(f"deploy {UEFI} web {typed}", now=NOW)
    built = catalog_spec(command.catalog, image, None)
    assert built.keep_disks == spec_keeps
    resolved, _ = resolve(built, "reinstall", {}, SERVER, keep_default=(1,))
    assert resolved.keep_disks == ((1,) if spec_keeps is None else spec_keeps), "None: policy's"


def test_a_catalog_image_that_keeps_nothing_erases_all_on_a_policy_that_keeps(h):
    bodies = []
    original = h.simulator.world.reinstall
    h.simulator.world.reinstall = lambda server, body: bodies.append(body) or original(server, body)
    path = Path(h.env["BYOI_CONFIG"])  # the policy keeps disk group 2; the image nothing
    url = f"{h.images.base_url}/debian-12.qcow2"
    path.write_text(
        path.read_text() + f'[[image]]\nname = "fresh"\nurl = "{url}"\nkeep_disks = []\n'
        f'checksum = "sha256:{"ab" * 32}"\nefi_bootloader = "\\\\EFI\\\\BOOT\\\\X.EFI"\n'
    )
    h.slash(f"deploy {UEFI} fresh")
    card = h.wait_card()
    assert "ERASES ALL DATA" in json.dumps(card["blocks"], ensure_ascii=False)
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "started at OVHcloud")
    assert [b.get("storage") for b in bodies] == [None]

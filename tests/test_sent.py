"""What is shown is what is sent: the API, the OS, the EFI path and its origin, refusals."""

import json
from dataclasses import replace

import pytest
from bot_harness import APPROVER, BotHarness
from core_fixtures import spec

from byoi_bot.core.ports import DiskGroup, ImageReport, ServerFacts
from byoi_bot.core.sent import resolve, sent_fields

FOUND = "\\EFI\\debian\\shimx64.efi"
GiB = 1024**3
RAID_SERVER = ServerFacts(
    "ns5005.ip-149-56-5.net",
    "bhs1",
    "ok",
    "uefi",
    256 * GiB,
    (
        DiskGroup(1, 960 * 10**9, "SSD", 2, raid_controller="LSI MegaRAID 9361-8i"),
        DiskGroup(2, 7680 * 10**9, "NVME", 4),
    ),
)


def test_a_given_efi_path_is_sent_and_shown_as_given():
    resolved, problems = resolve(spec(), "reinstall", {"efi_bootloader": FOUND}, None)
    assert problems == [] and resolved.efi_source == "given" and resolved.api == "reinstall"
    assert resolved.efi_bootloader == "\\efi\\debian\\grubx64.efi", "the user's path wins"


def test_the_path_found_in_the_image_is_used_and_shown_as_found():
    resolved, problems = resolve(
        spec(efi_bootloader=None), "reinstall", {"efi_bootloader": FOUND}, None
    )
    assert problems == [] and (resolved.efi_bootloader, resolved.efi_source) == (FOUND, "image")
    shown = dict(sent_fields(resolved))
    assert shown["customizations.efiBootloaderPath"] == f"{FOUND} (found in the image)"


@pytest.mark.parametrize("facts", [{}, {"efi_bootloader": None}])
def test_no_efi_path_anywhere_refuses_with_how_to_find_it(facts):
    _, problems = resolve(spec(efi_bootloader=None), "reinstall", facts, None)
    (problem,) = problems
    assert "efiBootloaderPath" in problem and "efi-bootloader=" in problem
    assert "BOOTX64.EFI" in problem


def test_byolinux_needs_no_efi_path():
    linux = spec(efi_bootloader=None, os="byolinux")
    resolved, problems = resolve(linux, "reinstall", {}, None)
    assert problems == [] and resolved.efi_bootloader is None
    assert dict(sent_fields(resolved))["operatingSystem"] == "byolinux_64"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"efi_bootloader": "x.efi"}, "`efi-bootloader=` cannot be sent"),
        ({"efi_bootloader": None, "os": "byolinux"}, "`os=byolinux` cannot be sent"),
        ({"efi_bootloader": None, "raid": 1}, "`raid=` cannot be sent"),
    ],
)
def test_the_legacy_api_refuses_what_it_has_no_field_for(changes, words):
    _, problems = resolve(spec(**changes), "legacy", {}, None)
    assert len(problems) == 1 and words in problems[0] and "legacy" in problems[0]
    ok, none = resolve(spec(efi_bootloader=None), "legacy", {}, None)
    assert none == [] and ok.efi_source is None


def test_config_drive_off_is_honest_per_api():
    _, problems = resolve(spec(config_drive=False), "reinstall", {}, None)
    assert "`config-drive=off` cannot be honoured" in problems[0] and "`hostname=`" in problems[0]
    bare = spec(config_drive=False, hostname=None, user_data=None, ssh_key=None)
    assert resolve(bare, "reinstall", {}, None)[1] == []
    _, problems = resolve(spec(config_drive=False, efi_bootloader=None), "legacy", {}, None)
    assert "only inside a config drive" in problems[0], "never dropped silently"
    old, problems = resolve(replace(bare, efi_bootloader=None), "legacy", {}, None)
    assert problems == [] and not any(n.startswith("configdrive") for n, _ in sent_fields(old))


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"raid": 1}, None),
        ({"raid": 1, "disk_group": 1}, None),
        ({"raid": 5}, "needs at least 3 disks"),
        ({"raid": 1, "disk_group": 2}, "no hardware RAID controller"),
    ],
)
def test_raid_is_checked_against_the_servers_disk_groups(changes, words):
    _, problems = resolve(spec(RAID_SERVER.name, **changes), "reinstall", {}, RAID_SERVER)
    assert len(problems) == (0 if words is None else 1)
    if words:
        assert words in problems[0]


def test_the_card_names_api_and_os_and_masks_secrets():
    resolved, _ = resolve(spec(metadata=(("role", "web"),)), "reinstall", {}, None)
    shown = dict(sent_fields(resolved.with_secrets(None)))
    assert shown["operatingSystem"] == "byoi_64"
    assert shown["customizations.httpHeaders"] == "Authorization: (hidden)"
    assert shown["customizations.configDriveUserData"] == "(hidden)"
    assert shown["customizations.configDriveMetadata"] == "role=web"
    legacy, _ = resolve(replace(spec(efi_bootloader=None)), "legacy", {}, None)
    assert "URL" in dict(sent_fields(legacy)) and "operatingSystem" not in dict(sent_fields(legacy))


# -- through the bot ------------------------------------------------------------------------


class EfiFindingInspector:
    """The real inspector, plus the ESP fact the preflight's FAT reader will provide."""

    def __init__(self, real, path: str | None) -> None:
        self.real, self.path = real, path

    def inspect(self, spec, server):
        report = self.real.inspect(spec, server)
        return ImageReport(report.checks, dict(report.facts) | {"efi_bootloader": self.path})


@pytest.fixture
def h(tmp_path):
    harness = BotHarness(tmp_path)
    yield harness
    harness.close()


def test_the_bot_sends_and_shows_the_path_found_in_the_image(h):
    d = h.bot.deployments
    d.inspector = EfiFindingInspector(d.inspector, FOUND)
    bodies = []
    original = h.simulator.world.reinstall
    h.simulator.world.reinstall = lambda server, body: bodies.append(body) or original(server, body)
    h.slash(f"deploy ns1001.ip-51-75-1.eu {h.images.base_url}/debian-12.qcow2")
    card = h.wait_card()
    text = json.dumps(card["blocks"])
    assert "reinstall API" in text and "byoi_64" in text
    assert "shimx64.efi (found in the image)" in text
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "started at OVHcloud")
    assert [b["customizations"]["efiBootloaderPath"] for b in bodies] == [FOUND]


def test_the_bot_refuses_before_any_card_when_no_path_is_known(h):
    h.bot.deployments.inspector = EfiFindingInspector(h.bot.deployments.inspector, None)
    h.slash(f"deploy ns1001.ip-51-75-1.eu {h.images.base_url}/debian-12.qcow2")
    answer = h.wait_answer("efiBootloaderPath")
    assert "efi-bootloader=" in answer and h.cards() == [] and h.bot.store.recent(5) == []

"""Will this image boot on this server? Loaders for the server's CPU, 4Kn sectors, deep
loaders, ESPs past the first read budget and servers that ignore Range, end to end."""

from __future__ import annotations

import image_factory
import pytest
from bot_harness import REQUESTER, BotHarness
from ovh_fixtures import ARM64 as ARM
from ovh_fixtures import UEFI, client_for, providers
from test_preflight_inspector import BLOCKING, OK, WARNING, GiB, facts, inspect, verdicts

from byoi_bot.core import sent
from byoi_bot.core.request import DeploySpec
from byoi_bot.core.service import Refused
from byoi_bot.preflight import HttpImageInspector, formats
from byoi_bot.preflight.esp import EspContents
from byoi_bot.preflight.formats import ImageAnalysis
from byoi_bot.preflight.hardware_fit import hardware_checks
from byoi_bot.preflight.http_range import NO_RANGE_HEAD, NoRangeSupport, RangeReader
from byoi_bot.preflight.url_safety import UrlGuard
from byoi_bot.simulator import Simulator
from byoi_bot.simulator.world import load_inventory

SHIM = "\\EFI\\debian\\shimx64.efi"
WINDOWS = "\\EFI\\Microsoft\\Boot\\bootmgfw.efi"
FIRST_PASS = (formats.ESP_MAX_REQUESTS, formats.ESP_MAX_BYTES)
BOTH_PASSES = (
    formats.ESP_MAX_REQUESTS + formats.ESP_MORE_REQUESTS,
    formats.ESP_MAX_BYTES + formats.ESP_MORE_BYTES,
)


@pytest.fixture(scope="session")
def server() -> image_factory.ImageServer:
    return image_factory.image_server()


@pytest.fixture
def inspector() -> HttpImageInspector:
    return HttpImageInspector(allowlist="127.0.0.1/32")


def message(report, name: str) -> str:
    return " ".join(c.message for c in report.checks if c.name == name)


# The server's CPU architecture --------------------------------------------------------


def test_the_provider_reads_the_servers_architecture():
    with Simulator() as simulator:
        reinstall, _ = providers(client_for(simulator))
        assert reinstall.server_facts(ARM).architecture == "arm64"
        assert reinstall.server_facts(UEFI).architecture == "x86_64"


@pytest.mark.parametrize("hostile", [None, "", "sparc`<@U0ADMIN>`*bold*", 64, ["x86_64"]])
def test_an_unexpected_architecture_is_unknown_and_not_judged(inspector, server, hostile):
    inventory = load_inventory(None)
    inventory["servers"][0]["hardware"]["processorArchitecture"] = hostile
    with Simulator(inventory=inventory) as simulator:
        reinstall, _ = providers(client_for(simulator))
        host = reinstall.server_facts(UEFI)
    assert host.architecture == ("" if hostile in (None, "") else str(hostile))
    url = server.url("/img/raw_esp_arm64_only")
    report = inspector.inspect(DeploySpec(UEFI, url, "raw"), host)
    assert "architecture" not in verdicts(report)
    assert report.facts["efi_bootloader"] == "\\EFI\\BOOT\\BOOTAA64.EFI"


def test_an_arm64_only_esp_is_refused_on_an_x86_64_server(inspector, server):
    report = inspect(inspector, server, "/img/raw_esp_arm64_only", "raw", facts(efi=None))
    assert verdicts(report)["architecture"] == BLOCKING
    assert message(report, "architecture").startswith(
        "The image's ESP holds only \\EFI\\BOOT\\BOOTAA64.EFI (arm64); server ns1.example is "
        "x86_64 and needs e.g. \\EFI\\BOOT\\BOOTX64.EFI"
    )
    assert report.facts["efi_bootloader"] is None  # never sent as efiBootloaderPath
    spec = DeploySpec("ns1.example", "http://x/a.raw", "raw")
    _, problems = sent.resolve(spec, "reinstall", report.facts, facts(efi=None))
    assert problems and "found none in the image" in problems[0]


def test_a_refusal_names_at_most_four_loaders():
    loaders = [f"\\EFI\\vendor{i}\\grubaa64.efi" for i in range(6)]
    esp = EspContents("FAT32", loaders)
    analysis = ImageAnalysis("raw", GiB, esp=esp)
    (check,) = hardware_checks(analysis, DeploySpec("ns1.example", "http://x/a", "raw"), facts())
    assert check.severity == BLOCKING and loaders[3] in check.message
    assert loaders[4] not in check.message and "and 2 more; server ns1.example" in check.message


def test_an_arm64_only_esp_is_only_a_warning_on_a_legacy_boot_server(inspector, server):
    report = inspect(inspector, server, "/img/raw_esp_arm64_only", "raw", facts("legacy"))
    assert verdicts(report)["architecture"] == WARNING


def test_an_arm64_only_esp_fits_an_arm64_server(inspector, server):
    report = inspect(inspector, server, "/img/raw_esp_arm64_only", "raw", facts(arch="arm64"))
    assert verdicts(report)["architecture"] == OK
    assert report.facts["efi_bootloader"] == "\\EFI\\BOOT\\BOOTAA64.EFI"


def test_with_both_architectures_the_servers_comes_before_the_kind(inspector, server):
    url = server.url("/img/raw_esp_both_arches")
    specs = [DeploySpec(name, url, "raw") for name in ("ns1.example", "ns2.example")]
    x86, arm = inspector.inspect_many(specs, [facts(efi=None), facts(efi=None, arch="arm64")])
    assert x86.facts["efi_bootloader"] == "\\EFI\\BOOT\\BOOTX64.EFI"  # not the aa64 shim
    assert arm.facts["efi_bootloader"] == "\\EFI\\debian\\shimaa64.efi"
    assert verdicts(x86)["architecture"] == verdicts(arm)["architecture"] == OK


@pytest.mark.parametrize(
    ("given", "arch", "severity"),
    [
        ("\\EFI\\BOOT\\BOOTAA64.EFI", "x86_64", BLOCKING),
        ("\\efi\\debian\\shimx64.efi", "arm64", BLOCKING),
        ("\\EFI\\BOOT\\BOOTX64.EFI", "x86_64", OK),
        ("\\EFI\\custom\\loader.efi", "arm64", None),  # the name says no CPU: not judged
    ],
)
def test_a_given_loader_for_another_cpu_is_refused(inspector, server, given, arch, severity):
    host = facts(arch=arch)
    report = inspect(inspector, server, "/img/raw_gpt_esp", "raw", host, efi_bootloader=given)
    given_checks = [c for c in report.checks if c.name == "architecture" and given in c.message]
    assert [c.severity for c in given_checks] == ([severity] if severity is BLOCKING else [])
    if severity is BLOCKING:
        assert f"ns1.example is {arch} and needs one for {arch}" in given_checks[0].message


def test_an_unknown_architecture_is_not_judged(inspector, server):
    report = inspect(inspector, server, "/img/raw_esp_arm64_only", "raw", facts(arch=""))
    assert "architecture" not in verdicts(report)


def test_the_bot_refuses_an_x86_image_for_the_arm64_server(tmp_path):
    h = BotHarness(tmp_path)
    try:
        spec = DeploySpec(ARM, f"{h.images.base_url}/debian-12.qcow2", "qcow2")
        with pytest.raises(Refused) as refused:
            h.bot.deployments.request(spec, REQUESTER, "C0OPS")
        text = " ".join(refused.value.reasons)
        assert "is arm64 and needs e.g. \\EFI\\BOOT\\BOOTAA64.EFI" in text
        assert h.starts() == 0
    finally:
        h.close()


# Sector size ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "disk", "severity"),
    [
        ("raw_gpt_4kn", None, WARNING),
        ("raw_gpt_4kn", 512, BLOCKING),
        ("raw_gpt_4kn", 4096, OK),
        ("raw_gpt_esp", 4096, BLOCKING),
        ("raw_gpt_esp", 512, OK),
        ("raw_gpt_esp", None, None),  # the common case says nothing
    ],
)
def test_a_4kn_gpt_against_the_disks_sector_size(inspector, server, image, disk, severity):
    report = inspect(inspector, server, f"/img/{image}", "raw", facts(sector=disk))
    assert verdicts(report).get("sector_size") == severity
    if severity is not OK and severity is not None:
        size = disk or 512
        assert f"on a {size}-byte-sector disk this image has no partition table: it will not " \
            "boot" in message(report, "sector_size")  # fmt: skip
    if disk is None and severity is WARNING:
        assert "OVHcloud does not say the sector size" in message(report, "sector_size")


# The whole \EFI tree --------------------------------------------------------------------


def test_a_windows_loader_two_folders_deep_is_found(inspector, server):
    report = inspect(inspector, server, "/img/raw_esp_windows", "raw", facts(efi=None))
    assert report.facts["efi_bootloader"] == WINDOWS
    assert verdicts(report)["efi_bootloader"] == OK
    # the 36 language and font folders beside it do not fit the first pass, and as a loader
    # was found, no second pass is made for them
    unlisted = "36 directories below \\EFI not listed: it would take more than 64 KiB in all"
    assert report.facts["esp_unreadable"] == unlisted
    assert report.facts["requests"] <= FIRST_PASS[0]
    assert report.facts["bytes_read"] <= FIRST_PASS[1]


@pytest.mark.parametrize(
    ("given", "severity", "words"),
    [
        (WINDOWS, OK, "is in the image's ESP"),
        ("\\efi\\microsoft\\boot\\BOOTMGFW.EFI", OK, "is in the image's ESP"),
        ("\\EFI\\Microsoft\\Boot\\zh-TW\\x.efi", WARNING, "not found in the part"),
    ],
)
def test_a_given_deep_path_is_verified(inspector, server, given, severity, words):
    report = inspect(inspector, server, "/img/raw_esp_windows", "raw", None, efi_bootloader=given)
    assert verdicts(report)["efi_bootloader"] == severity
    assert words in message(report, "efi_bootloader")


# The ESP past the first read budget ------------------------------------------------------

PAST_FIRST_BUDGET = [
    "qcow2_esp_last",  # its L2 table is another one than the partition table's
    "raw_entries_moved",  # `sgdisk --move-main-table=2048`: one more request for the entries
    "qcow2_entries_moved",
    "raw_gpt_512_entries",  # 64 KiB of entries, all needed for the CRC
    "qcow2_fat32_c9",  # 512 B clusters: one more L2 round trip per level
    "qcow2_fat32_c12",
]
WITHIN_FIRST_BUDGET = ["raw_esp_last", "qcow2_2m_zlib", "qcow2_2m_zstd", "qcow2_zstd"]


@pytest.mark.parametrize("name", PAST_FIRST_BUDGET + WITHIN_FIRST_BUDGET)
def test_the_esp_is_found_within_two_bounded_passes(inspector, server, name):
    server.reset()
    report = inspect(inspector, server, f"/img/{name}", None, facts(efi=None))
    assert report.facts["efi_bootloader"] == SHIM, report.facts.get("esp_unreadable")
    assert verdicts(report)["efi_bootloader"] == OK
    requests, bytes_read = report.facts["requests"], report.facts["bytes_read"]
    assert requests <= BOTH_PASSES[0] and bytes_read <= BOTH_PASSES[1]
    assert server.bytes_served == bytes_read
    second_pass = requests > FIRST_PASS[0] or bytes_read > FIRST_PASS[1]
    assert second_pass == (name in PAST_FIRST_BUDGET)


@pytest.mark.parametrize("name", PAST_FIRST_BUDGET)
def test_without_the_second_pass_the_esp_would_not_be_read(inspector, server, monkeypatch, name):
    monkeypatch.setattr(formats, "ESP_MORE_REQUESTS", 0)
    monkeypatch.setattr(formats, "ESP_MORE_BYTES", 0)
    report = inspect(inspector, server, f"/img/{name}", None, facts(efi=None))
    assert report.facts.get("efi_bootloader") is None
    assert "not read: it would take more than" in report.facts["esp_unreadable"]
    assert "could not be searched" in message(report, "efi_bootloader")


# A server that ignores Range ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt", "words"),
    [
        ("vmdk", "vmdk", "a VMDK disk image"),
        ("vmdk_stream", "vmdk", "a VMDK disk image"),
        ("iso", "iso9660", "an ISO 9660 (CD/DVD) image"),
        ("gzip", "gzip", "an archive (gzip)"),
    ],
)
def test_without_range_support_the_format_is_named_from_the_first_bytes(
    inspector, server, name, fmt, words
):
    report = inspect(inspector, server, f"/norange/{name}", "qcow2", facts())
    assert report.facts["range_support"] is False and report.facts["format"] == fmt
    assert verdicts(report)["format"] == BLOCKING and words in message(report, "format")
    assert report.facts["requests"] == 1 and report.facts["bytes_read"] <= NO_RANGE_HEAD


def test_without_range_support_a_raw_gpt_is_read_from_the_first_bytes(inspector, server):
    report = inspect(inspector, server, "/norange/raw_gpt_esp", "raw", facts(efi=None))
    found = verdicts(report)
    assert found["format"] == OK and found["partition_table"] == OK and found["esp"] == OK
    assert "ignores range requests" in report.facts["esp_unreadable"]
    assert "could not be searched" in message(report, "efi_bootloader")


def test_without_range_support_the_connection_is_closed_after_the_first_bytes(server):
    reader = RangeReader(server.url("/norange/qcow2_big"), guard=UrlGuard("127.0.0.1/32"))
    with pytest.raises(NoRangeSupport) as caught:
        reader.open()
    assert len(caught.value.head) == NO_RANGE_HEAD == reader.bytes_read
    assert caught.value.head[:4] == b"QFI\xfb"
    assert reader._conn is None  # closed: the 112 MiB body is never read


def test_without_range_support_a_short_body_is_read_whole(inspector, server):
    report = inspect(inspector, server, "/norange/empty", "raw", None)
    assert report.facts["format"] == "empty" and report.facts["download_size"] == 0
    assert verdicts(report)["format"] == BLOCKING

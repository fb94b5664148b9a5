"""HttpImageInspector end to end: real images over a local range-capable HTTP server."""

from __future__ import annotations

import socket

import image_factory
import pytest

from byoi_bot.core.checks import Severity
from byoi_bot.core.ports import DiskGroup, ServerFacts
from byoi_bot.core.request import DeploySpec
from byoi_bot.preflight import HttpImageInspector, server_checks, url_safety
from byoi_bot.preflight.formats import (
    ESP_MAX_BYTES,
    ESP_MAX_REQUESTS,
    ESP_MORE_BYTES,
    ESP_MORE_REQUESTS,
)
from byoi_bot.preflight.http_range import NO_RANGE_HEAD, RangeReader
from byoi_bot.preflight.url_safety import UrlGuard

GiB, MiB = image_factory.GiB, image_factory.MiB
LOCAL = "127.0.0.1/32"


@pytest.fixture(scope="session")
def server() -> image_factory.ImageServer:
    return image_factory.image_server()


@pytest.fixture
def inspector() -> HttpImageInspector:
    return HttpImageInspector(allowlist=LOCAL)


def facts(
    boot_mode="uefi",
    ram=32 * GiB,
    disk=480 * 10**9,
    state="ok",
    efi="\\efi\\boot\\x.efi",
    arch="x86_64",
    sector=None,
):
    groups = (
        DiskGroup(0, disk, "SSD", 2, sector_size=sector),
        DiskGroup(1, 4 * 10**12, "HDD", 2, sector_size=sector),
    )
    return ServerFacts("ns1.example", "gra3", state, boot_mode, ram, groups, efi, architecture=arch)


def inspect(inspector, server, path, image_type="raw", host=None, **spec):
    spec = DeploySpec("ns1.example", server.url(path), image_type, **spec)
    return inspector.inspect(spec, host)


def verdicts(report) -> dict[str, Severity]:
    return {c.name: c.severity for c in report.checks}


def worst(report) -> Severity:
    order = [Severity.OK, Severity.WARNING, Severity.BLOCKING]
    return max((c.severity for c in report.checks), key=order.index)


OK, WARNING, BLOCKING = Severity.OK, Severity.WARNING, Severity.BLOCKING


@pytest.mark.parametrize(
    ("name", "image_type", "boot", "expected", "blocking_check"),
    [
        ("raw_gpt_esp", "raw", "uefi", OK, None),
        ("qcow2_gpt_esp", "qcow2", "uefi", OK, None),
        ("qcow2_compressed", "qcow2", "uefi", OK, None),
        ("qcow2_mbr_esp", "qcow2", "uefi", OK, None),
        ("raw_mbr", "raw", "legacy", OK, None),
        ("raw_gpt_noesp", "raw", "uefi", BLOCKING, "esp"),
        ("qcow2_gpt_noesp", "qcow2", "uefi", BLOCKING, "esp"),
        ("raw_mbr", "raw", "uefi", BLOCKING, "esp"),
        ("raw_gpt_noesp", "raw", "uefi-legacy", WARNING, None),
        ("raw_none", "raw", "legacy", BLOCKING, "partition_table"),
        ("qcow2_none", "qcow2", "legacy", BLOCKING, "partition_table"),
        ("qcow2_gpt_esp", "raw", "uefi", BLOCKING, "format"),
        ("raw_gpt_esp", "qcow2", "uefi", BLOCKING, "format"),
        ("qcow2_backing", "qcow2", "uefi", BLOCKING, "qcow2"),
        ("qcow2_data_file", "qcow2", "uefi", BLOCKING, "qcow2"),
        ("qcow2_luks", "qcow2", "uefi", BLOCKING, "qcow2"),
        ("qcow2_extended_l2", "qcow2", "uefi", WARNING, None),
        ("qcow2_zstd", "qcow2", "legacy", WARNING, None),
        ("raw_gpt_bad_header_crc", "raw", "legacy", WARNING, None),
        ("raw_gpt_bad_entries_crc", "raw", "uefi", WARNING, None),
        ("raw_gpt_bad_both_crc", "raw", "uefi", BLOCKING, "gpt"),
        ("raw_gpt_truncated", "raw", "uefi", BLOCKING, "gpt"),
        ("raw_gpt_2t", "raw", "uefi", OK, None),
        ("raw_gpt_4kn", "raw", "uefi", WARNING, None),
        ("qcow2_zstd", "qcow2", "uefi", WARNING, None),
        ("iso_hybrid_gpt", "raw", "uefi", BLOCKING, "format"),
        ("iso_hybrid_mbr", "raw", "uefi", BLOCKING, "format"),
        ("udf", "raw", "uefi", BLOCKING, "format"),
        ("qed", "qcow2", "uefi", BLOCKING, "format"),
        ("luks", "raw", "uefi", BLOCKING, "format"),
        ("iso", "raw", "uefi", BLOCKING, "format"),
        ("vmdk", "qcow2", "uefi", BLOCKING, "format"),
        ("vhd", "raw", "uefi", BLOCKING, "format"),
        ("vhd_fixed", "raw", "uefi", BLOCKING, "format"),
        ("vhdx", "qcow2", "uefi", BLOCKING, "format"),
        ("gzip", "raw", "uefi", BLOCKING, "format"),
        ("tar", "raw", "uefi", BLOCKING, "format"),
        ("empty", "raw", "uefi", BLOCKING, "format"),
    ],
)
def test_verdicts(inspector, server, name, image_type, boot, expected, blocking_check):
    report = inspect(inspector, server, f"/img/{name}", image_type, facts(boot_mode=boot))
    assert worst(report) == expected, report.checks
    if blocking_check:
        assert verdicts(report)[blocking_check] == BLOCKING
    assert report.facts["requests"] <= ESP_MAX_REQUESTS + ESP_MORE_REQUESTS
    assert report.facts["bytes_read"] <= ESP_MAX_BYTES + ESP_MORE_BYTES


def test_facts_of_a_qcow2(inspector, server):
    report = inspect(inspector, server, "/img/qcow2_gpt_esp", "qcow2", facts())
    f = report.facts
    assert f["format"] == "qcow2" and f["declared_type"] == "qcow2"
    assert f["download_size"] == image_factory.build_images()["qcow2_gpt_esp"].stat().st_size
    assert f["virtual_size"] == 64 * MiB == f["gpt_disk_size"]
    assert f["partition_table"] == "gpt" and f["has_esp"] is True
    assert f["qcow2_version"] == 3 and f["qcow2_encrypted"] is False
    assert f["efi_bootloader"] == "\\EFI\\debian\\shimx64.efi"
    assert f["requests"] == 6 and f["bytes_read"] <= 64 * 1024
    assert f["range_support"] is True


def test_bytes_read_stay_small_for_a_20_gib_qcow2_with_real_content(inspector, server):
    images = image_factory.build_images()
    assert images["qcow2_big"].stat().st_size > 100 * MiB
    server.reset()
    report = inspect(inspector, server, "/img/qcow2_big", "qcow2", facts(disk=2 * 10**12))
    assert worst(report) == OK, report.checks
    assert report.facts["virtual_size"] == 20 * GiB
    assert server.bytes_served < 1 * MiB
    assert server.bytes_served == report.facts["bytes_read"]
    assert server.requests == report.facts["requests"] == 6


def test_image_larger_than_the_target_disk(inspector, server):
    report = inspect(inspector, server, "/img/qcow2_big", "qcow2", facts(disk=10 * GiB))
    assert verdicts(report)["disk_size"] == BLOCKING
    assert verdicts(report)["gpt"] == BLOCKING
    assert "disk-group" in next(c.message for c in report.checks if c.name == "disk_size")
    # disk group 1 (4 TB) fits
    report = inspect(
        inspector, server, "/img/qcow2_big", "qcow2", facts(disk=10 * GiB), disk_group=1
    )
    assert worst(report) == OK


def test_gpt_built_for_a_larger_disk_than_the_target(inspector, server):
    # A 48 MiB image whose GPT says 64 MiB, on a 56 MiB disk: fits, but the GPT does not.
    report = inspect(inspector, server, "/img/raw_gpt_truncated", "raw", facts(disk=56 * MiB))
    assert verdicts(report)["disk_size"] == OK
    assert verdicts(report)["gpt"] == BLOCKING


def test_unknown_disk_group(inspector, server):
    report = inspect(inspector, server, "/img/raw_gpt_esp", "raw", facts(), disk_group=7)
    check = next(c for c in report.checks if c.name == "disk_size")
    assert check.is_blocking and "groups: 0, 1" in check.message


def test_download_size_against_ram(inspector, server):
    report = inspect(inspector, server, "/img/qcow2_big", "qcow2", facts(ram=3 * GiB + 50 * MiB))
    check = next(c for c in report.checks if c.name == "download_size")
    assert check.is_blocking and "RAM" in check.message


def test_efi_bootloader_found_in_the_esp_is_the_default(inspector, server):
    report = inspect(inspector, server, "/img/raw_gpt_esp", "raw", facts(efi=None))
    assert verdicts(report)["efi_bootloader"] == OK
    assert report.facts["efi_bootloader"] == "\\EFI\\debian\\shimx64.efi"
    assert report.facts["efi_bootloaders"] == [
        "\\EFI\\BOOT\\BOOTX64.EFI",
        "\\EFI\\debian\\shimx64.efi",
        "\\EFI\\debian\\grubx64.efi",
    ]


def test_efi_bootloader_warning_when_none_set_nor_found(inspector, server):
    report = inspect(inspector, server, "/img/raw_gpt_empty_esp", "raw", facts(efi=None))
    assert verdicts(report)["efi_bootloader"] == WARNING
    assert report.facts["efi_bootloader"] is None and report.facts["efi_bootloaders"] == []


@pytest.mark.parametrize("given", ["\\efi\\debian\\grubx64.efi", "/EFI/DEBIAN/GRUBX64.EFI"])
def test_given_efi_bootloader_in_the_esp(inspector, server, given):
    report = inspect(
        inspector, server, "/img/raw_gpt_esp", "raw", facts(efi=None), efi_bootloader=given
    )
    assert verdicts(report)["efi_bootloader"] == OK


def test_given_efi_bootloader_missing_from_the_esp_is_a_warning(inspector, server):
    for server_facts in (facts(efi=None), None):
        report = inspect(
            inspector,
            server,
            "/img/qcow2_gpt_esp",
            "qcow2",
            server_facts,
            efi_bootloader="\\efi\\ubuntu\\shimx64.efi",
        )
        check = next(c for c in report.checks if c.name == "efi_bootloader")
        assert check.severity == WARNING
        assert "\\efi\\ubuntu\\shimx64.efi is not in the image's" in check.message
        assert "efi-bootloader=\\EFI\\debian\\shimx64.efi" in check.message


def test_without_server_only_image_checks(inspector, server):
    report = inspect(inspector, server, "/img/raw_gpt_noesp", "raw", None)
    assert set(verdicts(report)) == {"reachable", "format", "partition_table"}
    assert worst(report) == OK


def test_no_range_support_reads_only_the_first_bytes(inspector, server):
    server.reset()
    report = inspect(inspector, server, "/norange/qcow2_big", "qcow2", facts(ram=3 * GiB))
    assert report.facts["range_support"] is False
    assert report.facts["bytes_read"] == NO_RANGE_HEAD and report.facts["requests"] == 1
    assert report.facts["download_size"] == image_factory.build_images()["qcow2_big"].stat().st_size
    assert report.facts["format"] == "qcow2" and report.facts["virtual_size"] == 20 * GiB
    found = verdicts(report)
    assert found["reachable"] == WARNING
    assert "ignores HTTP range requests" in report.checks[0].message
    assert found["format"] == OK and found["qcow2"] == OK
    assert found["partition_table"] == WARNING and found["download_size"] == BLOCKING


def test_redirect_is_followed(inspector, server):
    report = inspect(inspector, server, "/redirect/qcow2_gpt_esp", "qcow2", facts())
    assert worst(report) == OK
    assert report.facts["redirects"] == 1 and report.facts["requests"] == 7


def test_endless_redirects_stop(inspector, server):
    report = inspect(inspector, server, "/loop", "raw", None)
    assert verdicts(report)["reachable"] == WARNING
    assert "redirects" in report.checks[0].message


@pytest.mark.parametrize(
    ("path", "severity", "words"),
    [
        ("/status/404", BLOCKING, "check the URL"),
        ("/status/403", BLOCKING, "access is denied"),
        ("/auth/raw_gpt_esp", BLOCKING, "needs credentials"),
        ("/status/503", WARNING, "retry later"),
    ],
)
def test_http_errors_explained(inspector, server, path, severity, words):
    report = inspect(inspector, server, path, "raw", None)
    (check,) = report.checks
    assert check.name == "reachable" and check.severity == severity
    assert words in check.message


def test_headers_are_sent_and_never_shown(inspector, server):
    secret = "Bearer s3cret"
    report = inspect(
        inspector,
        server,
        "/auth/raw_gpt_esp?token=abc",
        "raw",
        None,
        headers=(("Authorization", secret),),
    )
    assert worst(report) == OK
    assert server.last_headers["Authorization"] == secret
    wrong = inspect(
        inspector,
        server,
        "/auth/raw_gpt_esp?token=abc",
        "raw",
        None,
        headers=(("Authorization", "Bearer wrong-secret"),),
    )
    shown = repr(report) + repr(wrong)
    assert "s3cret" not in shown and "wrong-secret" not in shown and "token=abc" not in shown


def test_headers_dropped_on_cross_origin_redirect(monkeypatch, server):
    def getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(url_safety.socket, "getaddrinfo", getaddrinfo)
    guard = UrlGuard([LOCAL, "images.example"])
    # images.example (pinned to 127.0.0.1) redirects to 127.0.0.1: another origin.
    other_origin = server.url("/img/raw_mbr")
    url = server.url("/to?url=" + other_origin).replace("127.0.0.1", "images.example", 1)
    with RangeReader(url, [("X-Secret", "v")], guard=guard) as reader:
        reader.open()
    assert reader.redirects == 1 and "X-Secret" not in server.last_headers
    with RangeReader(server.url("/redirect/raw_mbr"), [("X-Secret", "v")], guard=guard) as r:
        r.open()
    assert r.redirects == 1 and server.last_headers["X-Secret"] == "v"


def test_byte_budget_is_enforced(server):
    inspector = HttpImageInspector(allowlist=LOCAL, byte_budget=8 * 1024)
    report = inspect(inspector, server, "/img/qcow2_gpt_esp", "qcow2", None)
    check = next(c for c in report.checks if c.name == "format")
    assert check.severity == WARNING and "budget" in check.message
    assert report.facts["bytes_read"] <= 8 * 1024


@pytest.mark.parametrize(
    ("state", "severity"),
    [("ok", OK), ("error", BLOCKING), ("hacked", BLOCKING), ("hackedBlocked", BLOCKING)],
)
def test_server_checks(state, severity):
    (check,) = server_checks(facts(state=state))
    assert check.name == "server_state" and check.severity == severity

"""Images qemu-img, sgdisk and OpenStack's format inspector judge differently from a naive
reader: hybrid ISOs, truncated or oversized GPTs, inconsistent qcow2 headers, 4Kn disks,
zstd clusters, small clusters within the read budget, and every other format named."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import image_factory
import pytest
from test_preflight_inspector import BLOCKING, OK, WARNING, facts, inspect, verdicts
from tools import require_tool

from byoi_bot.preflight import HttpImageInspector, qcow2
from byoi_bot.preflight.formats import ESP_MORE_BYTES, ESP_MORE_REQUESTS, analyse

MiB, GiB = image_factory.MiB, image_factory.GiB
TiB = 1024 * GiB


@pytest.fixture(scope="session")
def images() -> dict[str, Path]:
    return image_factory.build_images()


@pytest.fixture(scope="session")
def server() -> image_factory.ImageServer:
    return image_factory.image_server()


@pytest.fixture
def inspector() -> HttpImageInspector:
    return HttpImageInspector(allowlist="127.0.0.1/32")


def bytes_analysis(data: bytes):
    return analyse(lambda o, n: data[o : o + n], len(data))


def file_analysis(path: Path):
    return bytes_analysis(path.read_bytes()) if path.stat().st_size < 128 * MiB else None


def message(report, name: str) -> str:
    return " ".join(c.message for c in report.checks if c.name == name)


# Hybrid ISOs and UDF: named whatever partition table they also carry -----------------


@pytest.mark.parametrize(
    ("name", "fmt", "table"),
    [
        ("iso_hybrid_gpt", "iso9660", "gpt"),
        ("iso_hybrid_mbr", "iso9660", "mbr"),
        ("udf", "udf", None),
    ],
)
def test_hybrid_isos_and_udf_are_named(images, name, fmt, table):
    result = file_analysis(images[name])
    assert result.format == fmt and result.hybrid_of == table
    assert result.table is None  # never judged as a deployable disk


def test_hybrid_iso_refusal_says_it_is_an_installer(inspector, server):
    report = inspect(inspector, server, "/img/iso_hybrid_gpt", "raw", facts())
    assert verdicts(report)["format"] == BLOCKING
    assert "hybrid" in message(report, "format") and "GPT partition table" in message(
        report, "format"
    )


# GPT against the file and against the target disk ------------------------------------


def test_truncated_gpt_image_is_refused_without_a_server(inspector, server):
    # gpt_esp.raw cut from 64 to 48 MiB: `sgdisk -p` says "Disk size is smaller than the
    # main header indicates"; its last partition ends past the end of the file.
    report = inspect(inspector, server, "/img/raw_gpt_truncated", "raw", None)
    assert verdicts(report)["gpt"] == BLOCKING
    assert "truncated" in message(report, "gpt") and "50331648 bytes" in message(report, "gpt")


def test_gpt_built_for_2_tib_with_small_partitions_fits_a_smaller_disk(inspector, server):
    report = inspect(inspector, server, "/img/raw_gpt_2t", "raw", facts(disk=480 * 10**9))
    assert verdicts(report)["gpt"] == OK, report.checks
    assert "2199023255552-byte disk" in message(report, "gpt")
    assert report.facts["gpt_disk_size"] == 2 * TiB
    assert report.facts["partitions_end"] < 64 * MiB


def test_sgdisk_e_keeps_the_partitions_of_a_2_tib_gpt_on_a_small_disk(images, tmp_path):
    require_tool("sgdisk")
    copy = shutil.copy(images["raw_gpt_2t"], tmp_path / "disk.raw")
    assert subprocess.run(["sgdisk", "-e", copy], capture_output=True).returncode == 0
    shown = subprocess.run(["sgdisk", "-p", copy], capture_output=True, text=True).stdout
    assert "EF00" in shown and "8300" in shown


def test_partition_past_the_target_disk_is_refused(inspector, server):
    report = inspect(inspector, server, "/img/raw_gpt_2t", "raw", facts(disk=32 * MiB))
    assert verdicts(report)["gpt"] == BLOCKING
    assert "last partition ends at" in message(report, "gpt")


@pytest.mark.parametrize("name", ["raw_gpt_bad_header_crc", "raw_gpt_bad_entries_crc"])
def test_damaged_primary_gpt_with_intact_backup_is_a_warning(inspector, server, name):
    report = inspect(inspector, server, f"/img/{name}", "raw", None)
    assert verdicts(report)["gpt"] == WARNING
    assert "restores the table from it" in message(report, "gpt")
    assert report.facts["requests"] <= 6


@pytest.mark.parametrize("name", ["raw_gpt_bad_header_crc", "raw_gpt_bad_entries_crc"])
def test_sgdisk_e_restores_a_damaged_primary_gpt_from_its_backup(images, tmp_path, name):
    require_tool("sgdisk")
    copy = shutil.copy(images[name], tmp_path / "disk.raw")
    assert subprocess.run(["sgdisk", "-e", copy], capture_output=True).returncode == 0
    verify = subprocess.run(["sgdisk", "-v", copy], capture_output=True, text=True).stdout
    assert "No problems found" in verify


def test_damaged_primary_and_backup_gpt_block(inspector, server):
    report = inspect(inspector, server, "/img/raw_gpt_bad_both_crc", "raw", None)
    assert verdicts(report)["gpt"] == BLOCKING
    assert "backup GPT is damaged too" in message(report, "gpt")


def test_4kn_gpt_is_read_with_4096_byte_sectors(images, inspector, server):
    table = file_analysis(images["raw_gpt_4kn"]).table
    assert table.problem is None and table.sector_size == 4096
    esp, root = table.partitions
    assert (esp.start, esp.size, esp.esp) == (MiB, 32 * MiB, True)
    assert root.end == 64 * MiB - 5 * 4096
    report = inspect(inspector, server, "/img/raw_gpt_4kn", "raw", facts())
    assert verdicts(report)["esp"] == OK and "gpt" not in verdicts(report)


def test_4kn_gpt_as_fdisk_reads_it(images):
    require_tool("fdisk")
    out = subprocess.run(
        ["fdisk", "-b", "4096", "-l", "-o", "Start,Sectors", images["raw_gpt_4kn"]],
        capture_output=True,
        text=True,
    ).stdout
    rows = out.split("Start Sectors\n")[1].split()
    table = file_analysis(images["raw_gpt_4kn"]).table
    assert [int(n) * 4096 for n in rows] == [x for p in table.partitions for x in (p.start, p.size)]


def test_gpt_with_512_entries_is_read_without_refetching(inspector, server, images):
    server.reset()
    report = inspect(inspector, server, "/img/raw_gpt_512_entries", "raw", None)
    assert file_analysis(images["raw_gpt_512_entries"]).table.problem is None
    assert "gpt" not in verdicts(report) and report.facts["partition_table"] == "gpt"
    # MBR + header + 64 KiB of entries (all needed for the CRC), each byte once, pass the
    # first ESP budget: the second pass reads the ESP.
    table = 2 * 512 + 512 * 128
    assert server.bytes_served == report.facts["bytes_read"] <= table + ESP_MORE_BYTES
    assert report.facts["requests"] <= 3 + ESP_MORE_REQUESTS
    assert report.facts["efi_bootloader"] == "\\EFI\\debian\\shimx64.efi"


# qcow2 headers qemu refuses ----------------------------------------------------------


def patched(images, *fields: tuple[int, str, int]) -> bytes:
    data = bytearray(images["qcow2_gpt_esp"].read_bytes())
    for offset, fmt, value in fields:
        struct.pack_into(fmt, data, offset, value)
    return bytes(data)


QEMU_REFUSES = [
    ((36, ">I", 0), "L1 table is too small", "L1 table is too small"),
    ((24, ">Q", 2**62), "Image is too big", "Image is too big"),
    ((40, ">Q", 10 * GiB), "past the end of the file", None),
    ((40, ">Q", 65536 + 512), "not cluster-aligned", "Active L1 table offset invalid"),
    ((96, ">I", 7), "refcount order 7", "Reference count entry width too large"),
    ((48, ">Q", 10 * GiB), "refcount table", None),
]


@pytest.mark.parametrize(("field", "words", "qemu_says"), QEMU_REFUSES)
def test_qcow2_header_inconsistency_is_refused(images, field, words, qemu_says):
    result = bytes_analysis(patched(images, field))
    assert any(words in p for p in result.qcow2_problems), result.qcow2_problems
    assert result.table is None


@pytest.mark.parametrize(("field", "words", "qemu_says"), QEMU_REFUSES)
def test_qemu_img_refuses_the_same_headers(images, tmp_path, field, words, qemu_says):
    require_tool("qemu-img")
    path = tmp_path / "bad.qcow2"
    path.write_bytes(patched(images, field))
    info = subprocess.run(["qemu-img", "info", path], capture_output=True, text=True)
    if qemu_says:
        assert info.returncode != 0 and qemu_says in info.stderr, info.stderr
    elif field[0] == 40:  # qemu reads an L1 table past the end as zeros: an empty disk
        out = tmp_path / "out.raw"
        image_factory.run("qemu-img", "convert", "-O", "raw", path, out)
        assert not any(out.read_bytes()[: 64 * 1024])
    else:  # the refcount table past the end: `qemu-img check` finds the image broken
        assert subprocess.run(["qemu-img", "check", path], capture_output=True).returncode


def test_good_header_has_no_problem(images):
    assert bytes_analysis(images["qcow2_gpt_esp"].read_bytes()).qcow2_problems == []
    header = qcow2.parse_header(images["qcow2_gpt_esp"].read_bytes()[:4096])
    assert header.refcount_order == 4 and header.refcount_table_clusters == 1


# Read budget: every cluster size -----------------------------------------------------


@pytest.mark.parametrize("bits", range(9, 22))
def test_every_cluster_size_finds_the_loader_within_both_esp_passes(inspector, server, bits):
    server.reset()
    report = inspect(inspector, server, f"/img/qcow2_c{bits}", "qcow2", facts())
    assert verdicts(report)["esp"] == OK and verdicts(report)["disk_size"] == OK
    assert report.facts["virtual_size"] == 64 * MiB
    assert report.facts["efi_bootloader"] == "\\EFI\\debian\\shimx64.efi"
    assert report.facts["requests"] <= 6 + ESP_MORE_REQUESTS, report.facts["requests"]
    assert report.facts["bytes_read"] <= 64 * 1024 + ESP_MORE_BYTES
    assert server.bytes_served == report.facts["bytes_read"]


# Every recognised format named -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt", "words"),
    [
        ("qed", "qed", "a QED disk image"),
        ("qcow", "qcow", "a qcow (version 1) disk image"),
        ("luks", "luks", "LUKS-encrypted container"),
        ("vdi", "vdi", "a VDI disk image"),
        ("parallels", "parallels", "a Parallels disk image"),
    ],
)
def test_other_formats_are_named(inspector, server, images, name, fmt, words):
    assert file_analysis(images[name]).format == fmt
    for declared in ("qcow2", "raw"):
        report = inspect(inspector, server, f"/img/{name}", declared, None)
        assert verdicts(report)["format"] == BLOCKING and words in message(report, "format")


@pytest.mark.parametrize("fmt", ["qed", "qcow", "vdi", "parallels"])
def test_qemu_img_created_formats_are_named(tmp_path, fmt):
    require_tool("qemu-img")
    path = tmp_path / f"image.{fmt}"
    image_factory.run("qemu-img", "create", "-q", "-f", fmt, path, "64M")
    assert bytes_analysis(path.read_bytes()[: 1 * MiB]).format == fmt

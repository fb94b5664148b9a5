"""The pure-Python test images against the real tools, and the tools' images against preflight.

Each test needs Debian tools (see `require_tool`): it skips without them, and fails when
BYOI_TEST_REQUIRE_TOOLS=1.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import image_factory
import pytest
from tools import require_tool

from byoi_bot.preflight.formats import analyse

MiB = image_factory.MiB


@pytest.fixture(scope="session")
def images() -> dict[str, Path]:
    return image_factory.build_images()


def tool(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True)


def analysis_of(path: Path):
    with open(path, "rb") as f:

        def read(offset: int, length: int) -> bytes:
            f.seek(offset)
            return f.read(length)

        return analyse(read, path.stat().st_size)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("qcow2_gpt_esp", "raw_gpt_esp"),
        ("qcow2_mbr_esp", "raw_mbr_esp"),
        ("qcow2_none", "raw_none"),
        ("qcow2_compressed", "raw_gpt_esp"),
        ("qcow2_zstd", "raw_gpt_esp"),
        ("qcow2_v2", "raw_gpt_esp"),
        ("qcow2_4k_clusters", "raw_gpt_esp"),
        ("qcow2_2m_clusters", "raw_gpt_esp"),
        ("qcow2_extended_l2", "raw_gpt_esp"),
        ("qcow2_prealloc", "raw_gpt_esp"),
        ("qcow2_2m_zlib", "raw_gpt_esp"),
        ("qcow2_2m_zstd", "raw_gpt_esp"),
        ("qcow2_esp_last", "raw_esp_last"),
        ("qcow2_entries_moved", "raw_entries_moved"),
    ],
)
def test_python_qcow2_passes_qemu_img_check_and_matches_its_raw_disk(images, name, raw):
    require_tool("qemu-img")
    check = tool("qemu-img", "check", images[name])
    assert check.returncode == 0, check.stdout + check.stderr
    compare = tool("qemu-img", "compare", "-f", "qcow2", "-F", "raw", images[name], images[raw])
    assert compare.returncode == 0, compare.stdout + compare.stderr


@pytest.mark.parametrize("name", ["qcow2_backing", "qcow2_data_file"])
def test_python_unsafe_qcow2_headers_read_as_qemu_reads_them(images, name):
    require_tool("qemu-img")
    info = json.loads(tool("qemu-img", "info", "--output=json", images[name]).stdout)
    facts = analysis_of(images[name]).facts()
    if name == "qcow2_backing":
        assert info["backing-filename"] == facts["qcow2_backing_file"]
    else:
        assert info["format-specific"]["data"]["data-file"] == facts["qcow2_data_file"]


@pytest.mark.parametrize(
    "name", ["raw_gpt_esp", "raw_gpt_noesp", "raw_big", "raw_esp_last", "raw_entries_moved"]
)
def test_python_gpt_passes_sgdisk_verify(images, name):
    require_tool("sgdisk")
    verify = tool("sgdisk", "-v", images[name])
    assert "No problems found" in verify.stdout, verify.stdout + verify.stderr


@pytest.mark.parametrize(
    "name", ["raw_gpt_esp", "raw_mbr_esp", "raw_mbr", "raw_esp_last", "raw_entries_moved"]
)
def test_python_partitions_as_sfdisk_reads_them(images, name):
    require_tool("sfdisk")
    dump = json.loads(tool("sfdisk", "--json", images[name]).stdout)["partitiontable"]
    table = analysis_of(images[name]).table
    assert [(p["start"] * 512, p["size"] * 512) for p in dump["partitions"]] == [
        (p.start, p.size) for p in table.partitions
    ]


@pytest.mark.parametrize(
    ("name", "files"),
    [
        ("raw_gpt_esp", image_factory.ESP_FILES),
        ("raw_esp_windows", image_factory.WINDOWS_ESP),
        ("raw_esp_both_arches", image_factory.BOTH_ARCHES_ESP),
    ],
)
def test_python_esp_passes_fsck_and_holds_its_files(images, tmp_path, name, files):
    require_tool("fsck.vfat", "mtype")
    esp = tmp_path / "esp.img"
    with open(images[name], "rb") as f:
        f.seek(MiB)
        esp.write_bytes(f.read(32 * MiB))
    fsck = tool("fsck.vfat", "-n", esp)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    for path, data in files.items():
        shown = subprocess.run(["mtype", "-i", str(esp), f"::/{path}"], capture_output=True)
        assert shown.stdout == data, path


@pytest.mark.parametrize(
    "name",
    [
        "raw_gpt_esp",
        "raw_gpt_noesp",
        "raw_mbr_esp",
        "raw_mbr",
        "raw_none",
        "qcow2_gpt_esp",
        "qcow2_none",
        "qcow2_compressed",
        "qcow2_zstd",
        "qcow2_v2",
        "qcow2_4k_clusters",
        "qcow2_2m_clusters",
        "qcow2_extended_l2",
        "qcow2_prealloc",
        "qcow2_backing",
        "qcow2_data_file",
        "qcow2_luks",
        "vmdk",
        "vmdk_stream",
        "vhd",
        "vhd_fixed",
        "vhdx",
    ],
)
def test_tool_built_twin_gets_the_same_analysis(images, name):
    require_tool("qemu-img", "sfdisk", "mkfs.vfat")
    ours, theirs = analysis_of(images[name]), analysis_of(image_factory.tool_images()[name])
    assert (theirs.format, theirs.virtual_size) == (ours.format, ours.virtual_size)
    assert bool(theirs.qcow2_problems) == bool(ours.qcow2_problems)
    assert (theirs.unreadable is None) == (ours.unreadable is None)
    if ours.table is not None:
        assert theirs.table.kind == ours.table.kind
        assert theirs.table.has_esp == ours.table.has_esp
        assert theirs.table.problem is None

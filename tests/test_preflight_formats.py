"""Format detection, qcow2 header/guest reads and MBR/GPT parsing on real images (no HTTP)."""

from __future__ import annotations

import struct
from pathlib import Path

import image_factory
import pytest

from byoi_bot.preflight import qcow2
from byoi_bot.preflight.formats import analyse, sniff
from byoi_bot.preflight.partitions import ESP_GUID, read_partition_table
from byoi_bot.preflight.read_cache import CachedReads


@pytest.fixture(scope="session")
def images() -> dict[str, Path]:
    return image_factory.build_images()


def file_reader(path: Path):
    data = path.read_bytes() if path.stat().st_size < 256 * 1024 * 1024 else None

    def read(offset: int, length: int) -> bytes:
        if data is not None:
            return data[offset : offset + length]
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(length)

    return read


def analysis_of(path: Path):
    return analyse(file_reader(path), path.stat().st_size)


@pytest.mark.parametrize(
    ("name", "fmt", "table", "esp"),
    [
        ("raw_gpt_esp", "raw", "gpt", True),
        ("raw_gpt_noesp", "raw", "gpt", False),
        ("raw_mbr_esp", "raw", "mbr", True),
        ("raw_mbr", "raw", "mbr", False),
        ("raw_none", "raw", None, None),
        ("qcow2_gpt_esp", "qcow2", "gpt", True),
        ("qcow2_gpt_noesp", "qcow2", "gpt", False),
        ("qcow2_mbr_esp", "qcow2", "mbr", True),
        ("qcow2_mbr", "qcow2", "mbr", False),
        ("qcow2_none", "qcow2", None, None),
        ("qcow2_compressed", "qcow2", "gpt", True),
        ("qcow2_v2", "qcow2", "gpt", True),
        ("qcow2_4k_clusters", "qcow2", "gpt", True),
        ("qcow2_2m_clusters", "qcow2", "gpt", True),
        ("qcow2_extended_l2", "qcow2", "gpt", True),
        ("qcow2_prealloc", "qcow2", "gpt", True),
        ("qcow2_big", "qcow2", "gpt", True),
    ],
)
def test_deployable_formats_and_partition_tables(images, name, fmt, table, esp):
    result = analysis_of(images[name])
    assert result.format == fmt
    assert result.table is not None and result.table.kind == table
    assert result.table.facts()["has_esp"] is esp
    assert result.table.problem is None


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("iso", "iso9660"),
        ("vmdk", "vmdk"),
        ("vmdk_stream", "vmdk"),
        ("vhd", "vhd"),
        ("vhd_fixed", "vhd"),
        ("vhdx", "vhdx"),
        ("gzip", "gzip"),
        ("xz", "xz"),
        ("bzip2", "bzip2"),
        ("zstd", "zstd"),
        ("zip", "zip"),
        ("tar", "tar"),
        ("empty", "empty"),
    ],
)
def test_wrong_formats_are_recognised(images, name, fmt):
    assert analysis_of(images[name]).format == fmt


@pytest.mark.parametrize(
    "name",
    [
        "qcow2_gpt_esp",
        "qcow2_compressed",
        "qcow2_4k_clusters",
        "qcow2_2m_clusters",
        "qcow2_extended_l2",
        "qcow2_v2",
        "qcow2_prealloc",
    ],
)
def test_qcow2_guest_reads_match_the_raw_source(images, name):
    raw = images["raw_gpt_esp"].read_bytes()
    read = file_reader(images[name])
    header = qcow2.parse_header(read(0, 4096))
    reader = qcow2.Qcow2Reader(header, CachedReads(read, images[name].stat().st_size))
    for offset, length in [(0, 34 * 512), (1024 * 1024, 70_000), (60 * 1024 * 1024, 4096)]:
        assert reader.read(offset, length) == raw[offset : offset + length]


def test_qcow2_header_facts(images):
    result = analysis_of(images["qcow2_big"])
    facts = result.facts()
    assert facts["virtual_size"] == 20 * image_factory.GiB
    assert facts["qcow2_version"] == 3
    assert facts["qcow2_cluster_size"] == 65536
    assert facts["qcow2_backing_file"] is None
    assert facts["qcow2_encrypted"] is False
    assert facts["qcow2_compression_type"] == "zlib"
    assert facts["gpt_disk_size"] == 20 * image_factory.GiB
    assert result.download_size < 200 * image_factory.MiB  # real data inside, sparse rest


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("qcow2_backing", "backing file"),
        ("qcow2_data_file", "external data file"),
        ("qcow2_luks", "encrypted (LUKS)"),
    ],
)
def test_unsafe_qcow2_refused_from_header(images, name, words):
    result = analysis_of(images[name])
    assert any(words in p for p in result.qcow2_problems)
    assert result.table is None  # nothing read beyond the header


def test_qcow2_backing_and_data_file_names_reported(images):
    backing = analysis_of(images["qcow2_backing"]).facts()["qcow2_backing_file"]
    assert backing == str(images["qcow2_gpt_esp"])
    data_file = analysis_of(images["qcow2_data_file"]).facts()["qcow2_data_file"]
    assert data_file.endswith("datafile.data")


def _patched_header(images, offset: int, fmt: str, value: int) -> bytes:
    head = bytearray(images["qcow2_gpt_esp"].read_bytes()[:4096])
    struct.pack_into(fmt, head, offset, value)
    return bytes(head)


def test_unknown_and_corrupt_incompatible_bits_refused(images):
    header = qcow2.parse_header(_patched_header(images, 72, ">Q", 1 << 9 | 2))
    found = " ".join(qcow2.problems(header))
    assert "unknown incompatible features (bits [9])" in found
    assert "marked corrupt" in found


def test_bad_qcow2_versions_and_cluster_bits(images):
    with pytest.raises(qcow2.Qcow2Error, match="version 4"):
        qcow2.parse_header(_patched_header(images, 4, ">I", 4))
    with pytest.raises(qcow2.Qcow2Error, match="cluster_bits 30"):
        qcow2.parse_header(_patched_header(images, 20, ">I", 30))


def test_zstd_compressed_clusters_are_decoded(images):
    result = analysis_of(images["qcow2_zstd"])
    assert result.facts()["qcow2_compression_type"] == "zstd"
    assert result.unreadable is None
    assert result.table.kind == "gpt" and result.table.has_esp


def test_gpt_partitions_and_crcs(images):
    table = read_partition_table(file_reader(images["raw_gpt_esp"]))
    assert table.gpt_header_crc_ok and table.gpt_entries_crc_ok
    esp, linux = table.partitions
    assert esp.type == str(ESP_GUID).upper() and esp.esp
    assert (esp.start, esp.size) == (1024 * 1024, 32 * 1024 * 1024)
    assert not linux.esp
    assert table.gpt_disk_size == 64 * 1024 * 1024


def test_gpt_crc_failures(images):
    bad_header = read_partition_table(file_reader(images["raw_gpt_bad_header_crc"]))
    assert bad_header.gpt_header_crc_ok is False and "header CRC32" in bad_header.problem
    bad_entries = read_partition_table(file_reader(images["raw_gpt_bad_entries_crc"]))
    assert bad_entries.gpt_entries_crc_ok is False and "entries CRC32" in bad_entries.problem


def test_mbr_types_and_superfloppy(images):
    table = read_partition_table(file_reader(images["raw_mbr_esp"]))
    assert [p.type for p in table.partitions] == ["0xef", "0x83"]
    # A FAT filesystem without partition table also ends sector 0 with 0x55AA.
    assert read_partition_table(file_reader(images["raw_none"])).kind is None


def test_protective_mbr_without_gpt_header_is_a_damaged_gpt(images):
    data = bytearray(images["raw_gpt_esp"].read_bytes()[: 34 * 512])
    data[512:520] = bytes(8)
    table = read_partition_table(lambda o, n: bytes(data[o : o + n]))
    assert table.kind == "gpt" and "protective MBR" in table.problem


def test_sniff_on_magic_only():
    assert sniff(b"QFI\xfb" + bytes(100)) == "qcow2"
    assert sniff(b"# Disk DescriptorFile\n") == "vmdk"
    assert sniff(bytes(512)) is None

"""MBR and GPT: partition table kind, partitions, EFI System Partition, GPT CRCs and disk size.

Reads guest sectors 0..33 (17 KiB) through a `read(offset, length)` callable; more only
when a GPT puts its entry array elsewhere.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

SECTOR = 512
FIRST_SECTORS = 34 * SECTOR
ESP_GUID = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
MBR_ESP = 0xEF
MBR_PROTECTIVE = 0xEE
MAX_ENTRY_ARRAY = 64 * 1024

Read = Callable[[int, int], bytes]


@dataclass(frozen=True)
class Partition:
    """One partition: `type` is a GUID (GPT) or a hex byte like `0x83` (MBR)."""

    number: int
    type: str
    start: int
    size: int
    esp: bool
    name: str = ""


@dataclass
class PartitionTable:
    """What the first sectors say. `kind` is "gpt", "mbr" or None (no partition table)."""

    kind: str | None
    partitions: list[Partition] = field(default_factory=list)
    gpt_disk_size: int | None = None
    gpt_header_crc_ok: bool | None = None
    gpt_entries_crc_ok: bool | None = None
    problem: str | None = None

    @property
    def has_esp(self) -> bool:
        return any(p.esp for p in self.partitions)

    def facts(self) -> dict:
        """The partition facts for an ImageReport."""
        return {
            "partition_table": self.kind,
            "has_esp": self.has_esp if self.kind and self.gpt_header_crc_ok is not False else None,
            "gpt_disk_size": self.gpt_disk_size,
            "gpt_header_crc_ok": self.gpt_header_crc_ok,
            "gpt_entries_crc_ok": self.gpt_entries_crc_ok,
            "partitions": [asdict(p) for p in self.partitions],
        }


def read_partition_table(read: Read) -> PartitionTable:
    """Read the MBR and, when present, the GPT (primary header at LBA 1)."""
    first = read(0, FIRST_SECTORS)
    mbr = _mbr_partitions(first[:SECTOR])
    if first[SECTOR : SECTOR + 8] == b"EFI PART" and len(first) >= 2 * SECTOR:
        return _gpt(first, read)
    if mbr is None:
        return PartitionTable(None)
    if any(p.type == f"0x{MBR_PROTECTIVE:02x}" for p in mbr):
        return PartitionTable(
            "gpt",
            gpt_header_crc_ok=False,
            problem="the protective MBR announces a GPT but there is no GPT header at LBA 1",
        )
    return PartitionTable("mbr", mbr)


def _mbr_partitions(sector: bytes) -> list[Partition] | None:
    """The MBR's non-empty primary partitions, or None when sector 0 is no MBR."""
    if len(sector) < SECTOR or sector[510:512] != b"\x55\xaa":
        return None
    partitions = []
    for i in range(4):
        entry = sector[446 + 16 * i : 462 + 16 * i]
        status, ptype = entry[0], entry[4]
        start, count = struct.unpack("<II", entry[8:16])
        if status not in (0x00, 0x80):
            return None
        if ptype == 0:
            continue
        if count == 0:
            return None
        esp = ptype == MBR_ESP
        partitions.append(Partition(i + 1, f"0x{ptype:02x}", start * SECTOR, count * SECTOR, esp))
    return partitions or None


def _gpt(first: bytes, read: Read) -> PartitionTable:
    header = first[SECTOR : 2 * SECTOR]
    header_size, header_crc = struct.unpack("<II", header[12:20])
    if not 92 <= header_size <= SECTOR:
        return _bad_gpt(f"the GPT header size {header_size} is invalid")
    zeroed = header[:16] + b"\0\0\0\0" + header[20:header_size]
    alternate, entries_lba, count, entry_size, entries_crc = struct.unpack(
        "<8xQ32xQIII", header[24:92]
    )
    header_ok = zlib.crc32(zeroed) == header_crc
    if not header_ok:
        return _bad_gpt("the GPT header CRC32 does not match: the header is corrupted")
    length = count * entry_size
    if entry_size < 128 or length > MAX_ENTRY_ARRAY:
        return _bad_gpt(f"the GPT entry array ({count} × {entry_size} bytes) is invalid")
    offset = entries_lba * SECTOR
    if offset + length <= len(first):
        entries = first[offset : offset + length]
    else:
        entries = read(offset, length)
    table = PartitionTable("gpt", gpt_disk_size=(alternate + 1) * SECTOR, gpt_header_crc_ok=True)
    table.gpt_entries_crc_ok = zlib.crc32(entries) == entries_crc
    if not table.gpt_entries_crc_ok:
        table.problem = "the GPT partition entries CRC32 does not match: the table is corrupted"
    table.partitions = list(_gpt_partitions(entries, entry_size))
    return table


def _gpt_partitions(entries: bytes, entry_size: int):
    for i in range(len(entries) // entry_size):
        entry = entries[i * entry_size : (i + 1) * entry_size]
        type_guid = uuid.UUID(bytes_le=entry[:16])
        if type_guid.int == 0:
            continue
        first_lba, last_lba = struct.unpack("<QQ", entry[32:48])
        name = entry[56:128].decode("utf-16-le", "replace").rstrip("\0")
        yield Partition(
            i + 1,
            str(type_guid).upper(),
            first_lba * SECTOR,
            (last_lba - first_lba + 1) * SECTOR,
            type_guid == ESP_GUID,
            name,
        )


def _bad_gpt(problem: str) -> PartitionTable:
    return PartitionTable("gpt", gpt_header_crc_ok=False, problem=problem)

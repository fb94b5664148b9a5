"""MBR and GPT: partitions, EFI System Partition, GPT CRCs, sector size, and the GPT
checked against the disk it lies on.

Reads the first 24 KiB of the guest (MBR, GPT header at LBA 1 and 128 entries, for 512-
or 4096-byte sectors: the sector size is where the GPT header is) through a
`read(offset, length)` callable; more only when a GPT puts its entry array elsewhere,
and the backup GPT header when asked to.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

SECTOR = 512
SECTOR_SIZES = (512, 4096)
TABLE_BYTES = 6 * 4096  # 4Kn: LBA 0..5 (MBR, header, 16 KiB of entries); 512: LBA 0..47
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

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass
class PartitionTable:
    """What the first sectors say. `kind` is "gpt", "mbr" or None (no partition table).

    `problem` makes the GPT unusable; `backup_intact` tells whether `sgdisk -e` can
    restore a damaged primary GPT from the backup; `notes` are harmless oddities.
    """

    kind: str | None
    partitions: list[Partition] = field(default_factory=list)
    gpt_disk_size: int | None = None
    gpt_header_crc_ok: bool | None = None
    gpt_entries_crc_ok: bool | None = None
    sector_size: int = SECTOR
    problem: str | None = None
    backup_intact: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def has_esp(self) -> bool:
        return any(p.esp for p in self.partitions)

    @property
    def partitions_end(self) -> int | None:
        """The byte where the last partition ends (the disk must be at least this big)."""
        return max((p.end for p in self.partitions), default=None)

    def facts(self) -> dict:
        """The partition facts for an ImageReport."""
        return {
            "partition_table": self.kind,
            "has_esp": self.has_esp if self.kind and self.gpt_header_crc_ok is not False else None,
            "gpt_disk_size": self.gpt_disk_size,
            "gpt_header_crc_ok": self.gpt_header_crc_ok,
            "gpt_entries_crc_ok": self.gpt_entries_crc_ok,
            "sector_size": self.sector_size,
            "partitions_end": self.partitions_end,
            "partitions": [asdict(p) for p in self.partitions],
        }


def read_partition_table(read: Read, disk_size: int | None = None) -> PartitionTable:
    """Read the MBR and, when present, the GPT (primary header at LBA 1).

    With `disk_size` (the image's size, or a qcow2's virtual size) every partition's end
    is checked against it, and a damaged primary GPT's backup is read (is it intact?).
    A healthy primary's backup is not read: `sgdisk -e` rewrites it anyway.
    """
    first = read(0, TABLE_BYTES)
    for sector in SECTOR_SIZES:
        if first[sector : sector + 8] == b"EFI PART" and len(first) >= sector + 92:
            return _gpt(first, read, sector, disk_size)
    mbr = _mbr_partitions(first[:SECTOR])
    if mbr is None:
        return PartitionTable(None)
    if any(p.type == f"0x{MBR_PROTECTIVE:02x}" for p in mbr):
        table = _bad_gpt("the protective MBR announces a GPT but there is no GPT header at LBA 1")
        if disk_size:
            _check_backup_of_damaged(table, read, disk_size)
        return table
    table = PartitionTable("mbr", mbr)
    _check_ends(table, disk_size)
    return table


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


@dataclass(frozen=True)
class _Header:
    my_lba: int
    alternate: int
    last_usable: int
    entries_lba: int
    count: int
    entry_size: int
    entries_crc: int


def _parse_header(sector_bytes: bytes) -> tuple[_Header | None, str | None]:
    """The GPT header in `sector_bytes`, or None and why it is unusable."""
    if sector_bytes[:8] != b"EFI PART":
        return None, "there is no GPT header signature"
    header_size, header_crc = struct.unpack("<II", sector_bytes[12:20])
    if not 92 <= header_size <= SECTOR:
        return None, f"the GPT header size {header_size} is invalid"
    zeroed = sector_bytes[:16] + b"\0\0\0\0" + sector_bytes[20:header_size]
    if zlib.crc32(zeroed) != header_crc:
        return None, "the GPT header CRC32 does not match: the header is corrupted"
    my_lba, alternate, _, last_usable = struct.unpack("<QQQQ", sector_bytes[24:56])
    entries_lba, count, entry_size, entries_crc = struct.unpack("<QIII", sector_bytes[72:92])
    if entry_size < 128 or count * entry_size > MAX_ENTRY_ARRAY:
        return None, f"the GPT entry array ({count} × {entry_size} bytes) is invalid"
    fields = (my_lba, alternate, last_usable, entries_lba, count, entry_size, entries_crc)
    return _Header(*fields), None


def _gpt(first: bytes, read: Read, sector: int, disk_size: int | None) -> PartitionTable:
    header, why = _parse_header(first[sector : sector + SECTOR])
    if header is None:
        table = _bad_gpt(why or "")
        table.sector_size = sector
        if disk_size:
            _check_backup_of_damaged(table, read, disk_size)
        return table
    table = PartitionTable(
        "gpt",
        gpt_disk_size=(header.alternate + 1) * sector,
        gpt_header_crc_ok=True,
        sector_size=sector,
    )
    entries = _entries(first, read, header, sector)
    table.gpt_entries_crc_ok = zlib.crc32(entries) == header.entries_crc
    table.partitions = list(_gpt_partitions(entries, header.entry_size, sector))
    if not table.gpt_entries_crc_ok:
        table.problem = "the GPT partition entries CRC32 does not match: the table is corrupted"
        if disk_size:
            _check_backup_of_damaged(table, read, disk_size, header.alternate * sector)
        return table
    beyond = [p for p in table.partitions if p.end > (header.last_usable + 1) * sector]
    if beyond:
        table.problem = (
            f"partition {beyond[0].number} ends past the GPT's last usable sector "
            f"({header.last_usable})"
        )
        return table
    _check_ends(table, disk_size)
    if table.problem is None and disk_size and (header.alternate + 1) * sector > disk_size:
        table.notes.append(
            f"the GPT was made for a {table.gpt_disk_size}-byte disk, so its backup lies past "
            "the image's end; `sgdisk -e` writes a new one at the end of the target disk"
        )
    return table


def _entries(first: bytes, read: Read, header: _Header, sector: int) -> bytes:
    offset, length = header.entries_lba * sector, header.count * header.entry_size
    if offset + length <= len(first):
        return first[offset : offset + length]
    return read(offset, length)


def _check_ends(table: PartitionTable, disk_size: int | None) -> None:
    """A partition that ends past the image's end: the image was cut (truncated)."""
    if disk_size is None:
        return
    cut = [p for p in table.partitions if p.end > disk_size]
    if cut:
        p = cut[0]
        table.problem = (
            f"partition {p.number} ends at byte {p.end}, past the end of the image "
            f"({disk_size} bytes): the image is truncated and the installer would write a "
            "partition missing its tail"
        )


def _check_backup_of_damaged(
    table: PartitionTable, read: Read, disk_size: int, at: int | None = None
) -> None:
    """Whether a damaged primary GPT has an intact backup `sgdisk -e` restores it from."""
    sector = table.sector_size
    at = disk_size - sector if at is None or at + SECTOR > disk_size else at
    header, _ = _parse_header(read(at, SECTOR))
    if header is None:
        table.backup_intact = False
        return
    entries = read(header.entries_lba * sector, header.count * header.entry_size)
    table.backup_intact = zlib.crc32(entries) == header.entries_crc


def _gpt_partitions(entries: bytes, entry_size: int, sector: int):
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
            first_lba * sector,
            (last_lba - first_lba + 1) * sector,
            type_guid == ESP_GUID,
            name,
        )


def _bad_gpt(problem: str) -> PartitionTable:
    return PartitionTable("gpt", gpt_header_crc_ok=False, problem=problem)

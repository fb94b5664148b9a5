"""MBR and GPT partition tables written the way sfdisk/sgdisk write them.

A partition is `Part(start_lba, last_lba, kind)`: `kind` is a GPT type GUID for a GPT, a
type byte for an MBR. The GPT gets its protective MBR, primary header and entries, and the
backup entries and header in the disk's last sectors; `sector` may be 512 or 4096.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass

from .sparse import SparseImage

ESP_TYPE = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
LINUX_TYPE = uuid.UUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
ENTRY_SIZE = 128


@dataclass(frozen=True)
class Part:
    """A partition from `first` to `last` (LBAs, inclusive)."""

    first: int
    last: int
    kind: uuid.UUID | int
    name: str = ""


def protective_mbr(sectors: int, sector: int = 512) -> bytes:
    """Sector 0 of a GPT disk: one 0xEE partition covering the disk."""
    mbr = bytearray(sector)
    mbr[446:462] = struct.pack("<B3sB3sII", 0, b"\0\x02\0", 0xEE, b"\xff\xff\xff", 1,
                               min(sectors - 1, 0xFFFFFFFF))  # fmt: skip
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr)


def mbr(image: SparseImage, parts: list[Part], bootable: int | None = None) -> SparseImage:
    """Write an MBR with up to four primary partitions (`kind` is the type byte)."""
    sector = bytearray(image.pread(0, 512))
    for i, p in enumerate(parts):
        status = 0x80 if bootable == i else 0
        sector[446 + 16 * i : 462 + 16 * i] = struct.pack(
            "<B3sB3sII", status, b"\xfe\xff\xff", int(p.kind), b"\xfe\xff\xff",
            p.first, p.last - p.first + 1,
        )  # fmt: skip
    sector[440:444] = struct.pack("<I", 0x1234ABCD)
    sector[510:512] = b"\x55\xaa"
    image.put(0, bytes(sector))
    return image


def gpt(
    image: SparseImage,
    parts: list[Part],
    sector: int = 512,
    disk_size: int | None = None,
    entries_count: int = 128,
    entries_lba: int = 2,
) -> SparseImage:
    """Write a GPT (protective MBR, both headers and entry arrays of `entries_count`
    entries) for a disk of `disk_size` bytes (default: the image's size; larger makes a
    GPT "built for" a bigger disk, whose backup lies past the image's end and is left out).
    `entries_lba` moves the primary entry array, as `sgdisk --move-main-table` does."""
    disk_size = disk_size or image.size
    sectors = disk_size // sector
    entry_sectors = -(-entries_count * ENTRY_SIZE // sector)
    first_usable, last_usable = entries_lba + entry_sectors, sectors - 2 - entry_sectors
    entries = bytearray(entries_count * ENTRY_SIZE)
    for i, p in enumerate(parts):
        assert isinstance(p.kind, uuid.UUID) and first_usable <= p.first <= p.last <= last_usable
        entries[i * ENTRY_SIZE : (i + 1) * ENTRY_SIZE] = (
            p.kind.bytes_le
            + uuid.uuid5(uuid.NAMESPACE_OID, f"part{i}").bytes_le
            + struct.pack("<QQQ", p.first, p.last, 0)
            + (p.name or f"part{i + 1}").encode("utf-16-le").ljust(72, b"\0")
        )
    entries_crc = zlib.crc32(entries)
    disk_guid = uuid.uuid5(uuid.NAMESPACE_OID, "byoi-test-disk").bytes_le

    def header(current: int, backup: int, entries_lba: int) -> bytes:
        fields = struct.pack(
            "<8sIIIIQQQQ16sQIII", b"EFI PART", 0x00010000, 92, 0, 0, current, backup,
            first_usable, last_usable, disk_guid, entries_lba, entries_count, ENTRY_SIZE,
            entries_crc,
        )  # fmt: skip
        fields = fields[:16] + struct.pack("<I", zlib.crc32(fields)) + fields[20:]
        return fields.ljust(sector, b"\0")

    image.put(0, protective_mbr(sectors, sector))
    image.put(sector, header(1, sectors - 1, entries_lba))
    image.put(entries_lba * sector, bytes(entries))
    if disk_size <= image.size:
        image.put((sectors - 1 - entry_sectors) * sector, bytes(entries))
        image.put((sectors - 1) * sector, header(sectors - 1, 1, sectors - 1 - entry_sectors))
    return image

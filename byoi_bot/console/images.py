"""Demo disk images built in memory, so the shell works with nothing installed.

Only the first sectors carry data (partition tables); an image's tail reads as zeros, so a
"20 GiB" raw image costs a few KiB. Written by hand because no library builds GPT or qcow2
images without external tools (qemu-img, sgdisk), and the demo must run without them.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass

SECTOR = 512
ESP_TYPE = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
LINUX_TYPE = uuid.UUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
MiB = 1024**2
GiB = 1024**3


@dataclass(frozen=True)
class SparseImage:
    """An image of `size` bytes whose first `len(head)` bytes are `head`, the rest zeros."""

    head: bytes
    size: int

    def read(self, start: int, end: int) -> bytes:
        """Bytes `start`..`end` inclusive, as a range request returns them."""
        end = min(end, self.size - 1)
        data = self.head[start : end + 1]
        return data + bytes(max(0, end + 1 - start - len(data)))


def gpt_disk(size: int, with_esp: bool = True) -> bytes:
    """The first 34 sectors of a GPT disk of `size` bytes: ESP (optional) and a Linux root."""
    sectors = size // SECTOR
    parts = []
    start = 2048
    if with_esp:
        parts.append((ESP_TYPE, start, start + 512 * MiB // SECTOR - 1, "EFI System"))
        start += 512 * MiB // SECTOR
    parts.append((LINUX_TYPE, start, sectors - 34, "root"))
    entries = bytearray(128 * 128)
    for i, (kind, first, last, name) in enumerate(parts):
        entries[i * 128 : (i + 1) * 128] = (
            kind.bytes_le
            + uuid.uuid5(uuid.NAMESPACE_OID, f"part{i}").bytes_le
            + struct.pack("<QQQ", first, last, 0)
            + name.encode("utf-16-le").ljust(72, b"\0")
        )
    header = struct.pack(
        "<8sIIIIQQQQ16sQIII",
        b"EFI PART", 0x00010000, 92, 0, 0, 1, sectors - 1, 34, sectors - 34,
        uuid.uuid5(uuid.NAMESPACE_OID, "demo-disk").bytes_le, 2, 128, 128,
        zlib.crc32(entries),
    )  # fmt: skip
    header = header[:16] + struct.pack("<I", zlib.crc32(header)) + header[20:]
    mbr = bytearray(SECTOR)
    mbr[446:462] = struct.pack("<B3sB3sII", 0, b"\0\x02\0", 0xEE, b"\xff\xff\xff", 1,
                               min(sectors - 1, 0xFFFFFFFF))  # fmt: skip
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr) + header.ljust(SECTOR, b"\0") + bytes(entries)


def qcow2_of(guest_head: bytes, virtual_size: int) -> bytes:
    """A minimal valid qcow2 v3 file (64 KiB clusters) whose guest starts with `guest_head`."""
    cluster = 64 * 1024
    l1_entries = -(-virtual_size // (cluster * (cluster // 8)))
    copied = 1 << 63
    header = struct.pack(
        ">4sIQIIQIIQQIIQQQQII",
        b"QFI\xfb", 3, 0, 0, 16, virtual_size, 0, l1_entries, 1 * cluster,
        2 * cluster, 1, 0, 0, 0, 0, 0, 4, 104,
    )  # fmt: skip
    l1 = struct.pack(">Q", 4 * cluster | copied).ljust(cluster, b"\0")
    refcount_table = struct.pack(">Q", 3 * cluster).ljust(cluster, b"\0")
    refcount_block = struct.pack(">6H", *[1] * 6).ljust(cluster, b"\0")
    l2 = struct.pack(">Q", 5 * cluster | copied).ljust(cluster, b"\0")
    data = guest_head[:cluster].ljust(cluster, b"\0")
    return header.ljust(cluster, b"\0") + l1 + refcount_table + refcount_block + l2 + data


def iso_head() -> bytes:
    """The start of an ISO 9660 image (a primary volume descriptor at sector 16)."""
    return bytes(0x8001) + b"CD001\x01"


def demo_images() -> dict[str, SparseImage]:
    """The images the shell serves, by path."""
    debian = gpt_disk(4 * GiB)
    return {
        "/debian-12.qcow2": SparseImage(qcow2_of(debian, 4 * GiB), 6 * 64 * 1024),
        "/debian-12.raw": SparseImage(debian, 4 * GiB),
        "/no-esp.raw": SparseImage(gpt_disk(4 * GiB, with_esp=False), 4 * GiB),
        "/huge.raw": SparseImage(gpt_disk(40 * GiB), 40 * GiB),
        "/rescue.iso": SparseImage(iso_head(), 700 * MiB),
    }

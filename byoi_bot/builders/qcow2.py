"""A qcow2 file (QEMU's docs/interop/qcow2.txt) of a guest disk, as `qemu-img convert` makes it.

Only clusters holding data are stored. Options: cluster size, v2 or v3, zlib or zstd
compression, extended L2 entries, metadata preallocation, and header fields a safety
check looks at (backing file, external data file, encryption method, incompatible bits).
Refcounts are exact, so `qemu-img check` finds no error.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import zstandard

from .sparse import SparseImage

COPIED = 1 << 63
COMPRESSED = 1 << 62
DATA_FILE_EXTENSION = 0x44415441
INCOMPATIBLE_DATA_FILE, INCOMPATIBLE_COMPRESSION, INCOMPATIBLE_EXTENDED_L2 = 4, 8, 16


@dataclass(frozen=True)
class Qcow2Options:
    """How to write the file (defaults: what `qemu-img convert -O qcow2` does)."""

    cluster_bits: int = 16
    version: int = 3
    compression: str | None = None  # "zlib" or "zstd"
    extended_l2: bool = False
    preallocate: bool = False
    backing_file: str | None = None
    data_file: str | None = None
    crypt_method: int = 0
    incompatible: int = 0


def compress(data: bytes, kind: str) -> bytes:
    """A cluster compressed the way qemu does: raw deflate (window 2^12) or a zstd frame."""
    if kind == "zlib":
        packer = zlib.compressobj(6, zlib.DEFLATED, -12)
        return packer.compress(data) + packer.flush()
    return zstandard.ZstdCompressor().compress(data)


def qcow2_image(guest: SparseImage, options: Qcow2Options | None = None) -> SparseImage:
    """The qcow2 file holding `guest` (whose size is the virtual size)."""
    o = options or Qcow2Options()
    cs = 1 << o.cluster_bits
    entry_size = 16 if o.extended_l2 else 8
    l2_entries = cs // entry_size
    l1_size = -(-guest.size // (cs * l2_entries))
    clusters = _guest_clusters(guest, cs, o.preallocate and not o.data_file)
    header = _header(o, guest.size, l1_size)
    # Metadata first (header, refcount table and blocks), then L1, then L2s and data.
    body_clusters = _Body(guest, o, l1_size, clusters, 0).clusters
    meta = 1
    while True:
        blocks = -(-(meta + body_clusters) // (cs // 2))
        table = -(-blocks * 8 // cs)
        if 1 + table + blocks == meta:
            break
        meta = 1 + table + blocks
    body = _Body(guest, o, l1_size, clusters, meta * cs)
    total = meta + body.clusters
    image = SparseImage(total * cs)
    table_offset = cs
    image.put(0, header(l1_table=meta * cs, refcount_table=table_offset, refcount_clusters=table))
    refcounts = {i: 1 for i in range(meta)} | body.refcounts
    table_bytes = bytearray(table * cs)
    for b in range(blocks):
        block_offset = (1 + table + b) * cs
        struct.pack_into(">Q", table_bytes, 8 * b, block_offset)
        block = bytearray(cs)
        for i in range(cs // 2):
            struct.pack_into(">H", block, 2 * i, refcounts.get(b * (cs // 2) + i, 0))
        image.put(block_offset, bytes(block))
    image.put(table_offset, bytes(table_bytes))
    for offset, data in body.extents:
        image.put(offset, data)
    return image


def _guest_clusters(guest: SparseImage, cs: int, every: bool) -> list[int]:
    if every:
        return list(range(-(-guest.size // cs)))
    found: set[int] = set()
    for offset, data in guest.extents:
        for index in range(offset // cs, -(-(offset + len(data)) // cs)):
            if index not in found and any(guest.pread(index * cs, cs)):
                found.add(index)
    return sorted(found)


class _Body:
    """L1 table, L2 tables and data clusters laid out from `base`, with their refcounts."""

    def __init__(self, guest, o: Qcow2Options, l1_size: int, clusters: list[int], base: int):
        self.cs = cs = 1 << o.cluster_bits
        entry_size = 16 if o.extended_l2 else 8
        per_l2 = cs // entry_size
        self.extents: list[tuple[int, bytes]] = []
        self.refcounts: dict[int, int] = {}
        l1 = bytearray(-(-l1_size * 8 // cs) * cs)
        pos = base + len(l1)
        self._own(base, len(l1))
        groups: dict[int, list[int]] = {}
        for c in [] if o.data_file else clusters:
            groups.setdefault(c // per_l2, []).append(c)
        for l1_index, members in sorted(groups.items()):
            l2_offset, l2 = pos, bytearray(cs)
            struct.pack_into(">Q", l1, 8 * l1_index, l2_offset | COPIED)
            self._own(pos, cs)
            pos += cs
            stream = bytearray()
            for c in members:
                data = guest.pread(c * cs, cs).ljust(cs, b"\0")
                packed = compress(data, o.compression) if o.compression and any(data) else None
                slot = (c % per_l2) * entry_size
                if packed is not None and len(packed) < cs:
                    host = pos + len(stream)
                    stream += packed
                    x = 62 - (o.cluster_bits - 8)
                    sectors = (host + len(packed) - 1) // 512 - host // 512
                    struct.pack_into(">Q", l2, slot, COMPRESSED | sectors << x | host)
                    for h in range(host // cs, (host + len(packed) - 1) // cs + 1):
                        self.refcounts[h] = self.refcounts.get(h, 0) + 1
                    continue
                stream += bytes(-len(stream) % cs)
                host = pos + len(stream)
                stream += data
                self._own(host, cs)
                struct.pack_into(">Q", l2, slot, host | COPIED)
                if o.extended_l2:
                    struct.pack_into(">Q", l2, slot + 8, 0xFFFFFFFF)
            self.extents.append((l2_offset, bytes(l2)))
            stream += bytes(-len(stream) % cs)
            if any(stream):
                self.extents.append((pos, bytes(stream)))
            pos += len(stream)
        self.extents.append((base, bytes(l1)))
        self.clusters = (pos - base) // cs

    def _own(self, offset: int, length: int) -> None:
        for c in range(offset // self.cs, (offset + length - 1) // self.cs + 1):
            self.refcounts[c] = 1


def _header(o: Qcow2Options, virtual_size: int, l1_size: int):
    incompatible = o.incompatible
    if o.data_file:
        incompatible |= INCOMPATIBLE_DATA_FILE
    if o.compression == "zstd":
        incompatible |= INCOMPATIBLE_COMPRESSION
    if o.extended_l2:
        incompatible |= INCOMPATIBLE_EXTENDED_L2

    def build(l1_table: int, refcount_table: int, refcount_clusters: int) -> bytes:
        length = 112 if o.version == 3 else 72
        extensions = b""
        if o.data_file:
            name = o.data_file.encode()
            extensions += struct.pack(">II", DATA_FILE_EXTENSION, len(name))
            extensions += name.ljust(-(-len(name) // 8) * 8, b"\0")
        extensions += bytes(8)
        backing = (o.backing_file or "").encode()
        backing_offset = length + len(extensions) if backing else 0
        fields = struct.pack(
            ">4sIQIIQIIQQIIQ", b"QFI\xfb", o.version, backing_offset, len(backing),
            o.cluster_bits, virtual_size, o.crypt_method, l1_size, l1_table, refcount_table,
            refcount_clusters, 0, 0,
        )  # fmt: skip
        if o.version == 3:
            compression = 1 if o.compression == "zstd" else 0
            fields += struct.pack(">QQQIIB7x", incompatible, 0, 0, 4, length, compression)
        return fields + extensions + backing

    return build

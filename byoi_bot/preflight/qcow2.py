"""qcow2: header facts, safety problems, and reading guest bytes through L1 → L2 → cluster.

Layout: QEMU's docs/interop/qcow2.txt. Only what preflight needs: the header (first
4 KiB), one L1 entry, one L2 entry and one data cluster to see the partition table.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

MAGIC = b"QFI\xfb"
OFFSET_MASK = 0x00FFFFFFFFFFFE00
COMPRESSED = 1 << 62
ZERO = 1
DATA_FILE_EXTENSION = 0x44415441
COMPRESSED_CHUNK = 16 * 1024  # compressed bytes read at first; more only if needed

INCOMPATIBLE_FEATURES = {
    0: "dirty",
    1: "corrupt",
    2: "external_data_file",
    3: "compression_type",
    4: "extended_l2",
}
KNOWN_INCOMPATIBLE = sum(1 << bit for bit in INCOMPATIBLE_FEATURES)
COMPRESSION_TYPES = {0: "zlib", 1: "zstd"}

Read = Callable[[int, int], bytes]


class Qcow2Error(ValueError):
    """The qcow2 structure cannot be read (corrupt, or a feature this reader lacks)."""


@dataclass(frozen=True)
class Qcow2Header:
    """The facts of a qcow2 header that preflight reports and checks."""

    version: int
    virtual_size: int
    cluster_bits: int
    backing_file_offset: int
    backing_file_size: int
    crypt_method: int
    l1_size: int
    l1_table_offset: int
    incompatible_features: int = 0
    compression_type: int = 0
    backing_file: str | None = None
    data_file: str | None = None
    unknown_incompatible: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "unknown_incompatible", self.incompatible_features & ~KNOWN_INCOMPATIBLE
        )

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits

    @property
    def has_backing_file(self) -> bool:
        return self.backing_file_offset != 0 and self.backing_file_size != 0

    @property
    def has_data_file(self) -> bool:
        return bool(self.incompatible_features & 4)

    @property
    def extended_l2(self) -> bool:
        return bool(self.incompatible_features & 16)

    def feature_names(self) -> list[str]:
        """Names of the incompatible feature bits set (unknown ones as `bit<N>`)."""
        bits = self.incompatible_features
        return [INCOMPATIBLE_FEATURES.get(b, f"bit{b}") for b in range(64) if bits >> b & 1]

    def facts(self) -> dict:
        """The header facts for an ImageReport (keys prefixed `qcow2_`)."""
        return {
            "qcow2_version": self.version,
            "qcow2_cluster_size": self.cluster_size,
            "qcow2_backing_file": self.backing_file or (True if self.has_backing_file else None),
            "qcow2_data_file": self.data_file or (True if self.has_data_file else None),
            "qcow2_encrypted": self.crypt_method != 0,
            "qcow2_compression_type": COMPRESSION_TYPES.get(
                self.compression_type, str(self.compression_type)
            ),
            "qcow2_incompatible_features": self.feature_names(),
        }


def parse_header(head: bytes) -> Qcow2Header:
    """Parse the qcow2 header from the file's first bytes (4 KiB is enough)."""
    if len(head) < 72 or head[:4] != MAGIC:
        raise Qcow2Error("not a qcow2 header")
    (version, bf_offset, bf_size, cluster_bits, size, crypt, l1_size, l1_offset) = struct.unpack(
        ">IQIIQIIQ", head[4:48]
    )
    if version not in (2, 3):
        raise Qcow2Error(f"qcow2 version {version} is not supported (only 2 and 3)")
    if not 9 <= cluster_bits <= 21:
        raise Qcow2Error(f"qcow2 cluster_bits {cluster_bits} is out of range (9..21)")
    incompatible, header_length, compression = 0, 72, 0
    if version == 3:
        if len(head) < 104:
            raise Qcow2Error("qcow2 v3 header is truncated")
        (incompatible,) = struct.unpack(">Q", head[72:80])
        (header_length,) = struct.unpack(">I", head[100:104])
        if header_length > 104 and len(head) >= 105:
            compression = head[104]
    backing = _string_at(head, bf_offset, bf_size) if bf_offset and bf_size else None
    return Qcow2Header(
        version=version,
        virtual_size=size,
        cluster_bits=cluster_bits,
        backing_file_offset=bf_offset,
        backing_file_size=bf_size,
        crypt_method=crypt,
        l1_size=l1_size,
        l1_table_offset=l1_offset,
        incompatible_features=incompatible,
        compression_type=compression,
        backing_file=backing,
        data_file=_data_file_name(head, header_length),
    )


def problems(header: Qcow2Header) -> list[str]:
    """Why this qcow2 may not be deployed, in plain words (empty when it is safe)."""
    found = []
    if header.has_backing_file:
        name = f" ({header.backing_file})" if header.backing_file else ""
        found.append(
            f"it depends on a backing file{name} that the installer cannot fetch; "
            "flatten it with `qemu-img convert -O qcow2 in.qcow2 out.qcow2`"
        )
    if header.has_data_file:
        found.append(
            "its data lives in an external data file that the installer cannot fetch; "
            "rebuild it with `qemu-img convert -O qcow2 in.qcow2 out.qcow2`"
        )
    if header.crypt_method:
        kind = {1: "AES", 2: "LUKS"}.get(header.crypt_method, f"method {header.crypt_method}")
        found.append(
            f"it is encrypted ({kind}); the installer has no key: "
            "deploy an unencrypted image (encrypt the disk from inside the OS instead)"
        )
    if header.incompatible_features & 2:
        found.append("it is marked corrupt; repair it with `qemu-img check -r all`")
    if header.unknown_incompatible:
        bits = [b for b in range(64) if header.unknown_incompatible >> b & 1]
        found.append(
            f"it uses unknown incompatible features (bits {bits}) that the installer may not "
            "read; rebuild it with `qemu-img convert -O qcow2 -o compat=1.1`"
        )
    return found


class Qcow2Reader:
    """Reads guest bytes through the L1 and L2 tables (unallocated and zero clusters read as 0)."""

    def __init__(self, header: Qcow2Header, read: Read) -> None:
        self.header = header
        self._read = read
        self._l2_entry_size = 16 if header.extended_l2 else 8

    def read(self, offset: int, length: int) -> bytes:
        """`length` guest bytes at guest `offset` (clipped to the virtual size)."""
        length = max(0, min(length, self.header.virtual_size - offset))
        out = bytearray()
        cluster_size = self.header.cluster_size
        while len(out) < length:
            pos = offset + len(out)
            in_cluster = pos % cluster_size
            count = min(length - len(out), cluster_size - in_cluster)
            out += self._read_in_cluster(pos - in_cluster, in_cluster, count)
        return bytes(out)

    def _read_in_cluster(self, guest_cluster: int, start: int, count: int) -> bytes:
        h = self.header
        l2_entries = h.cluster_size // self._l2_entry_size
        cluster_index = guest_cluster >> h.cluster_bits
        l1_index, l2_index = divmod(cluster_index, l2_entries)
        if l1_index >= h.l1_size:
            return bytes(count)
        l2_table = self._u64(h.l1_table_offset + 8 * l1_index) & OFFSET_MASK
        if not l2_table:
            return bytes(count)
        raw = self._exact(l2_table + l2_index * self._l2_entry_size, self._l2_entry_size)
        entry = int.from_bytes(raw[:8], "big")
        if entry & COMPRESSED:
            return self._compressed(entry, start, count)
        if h.extended_l2:
            bitmap = int.from_bytes(raw[8:], "big")
            return self._subclusters(entry & OFFSET_MASK, bitmap, start, count)
        host = entry & OFFSET_MASK
        if entry & ZERO or not host:
            return bytes(count)
        return self._exact(host + start, count)

    def _compressed(self, entry: int, start: int, count: int) -> bytes:
        h = self.header
        if h.compression_type != 0:
            name = COMPRESSION_TYPES.get(h.compression_type, str(h.compression_type))
            raise Qcow2Error(f"the first cluster is {name}-compressed; this reader only has zlib")
        shift = 62 - (h.cluster_bits - 8)
        host = entry & ((1 << shift) - 1)
        sectors = ((entry >> shift) & ((1 << (h.cluster_bits - 8)) - 1)) + 1
        remaining = sectors * 512 - (host & 511)
        inflate, plain, chunk = zlib.decompressobj(-12), b"", COMPRESSED_CHUNK
        try:
            while remaining > 0 and len(plain) < start + count:
                data = self._read(host, min(chunk, remaining))
                if not data:
                    break
                host, remaining, chunk = host + len(data), remaining - len(data), chunk * 4
                plain += inflate.decompress(inflate.unconsumed_tail + data, start + count)
        except zlib.error as exc:
            raise Qcow2Error(f"a compressed cluster does not decompress ({exc})") from None
        return plain[start : start + count].ljust(count, b"\0")

    def _subclusters(self, host: int, bitmap: int, start: int, count: int) -> bytes:
        sub = self.header.cluster_size // 32
        first, last = start // sub, (start + count - 1) // sub
        allocated = [
            bool(bitmap >> i & 1) and not bitmap >> (32 + i) & 1 for i in range(first, last + 1)
        ]
        if not any(allocated) or not host:
            return bytes(count)
        data = bytearray(self._exact(host + start, count))
        for i, is_allocated in enumerate(allocated, start=first):
            if not is_allocated:
                lo, hi = max(i * sub, start) - start, min((i + 1) * sub, start + count) - start
                data[lo:hi] = bytes(hi - lo)
        return bytes(data)

    def _u64(self, offset: int) -> int:
        return int.from_bytes(self._exact(offset, 8), "big")

    def _exact(self, offset: int, length: int) -> bytes:
        data = self._read(offset, length)
        if len(data) != length:
            raise Qcow2Error(f"the file ends before offset {offset + length} (truncated?)")
        return data


def _string_at(head: bytes, offset: int, size: int) -> str | None:
    if offset + size > len(head) or size > 1023:
        return None
    return head[offset : offset + size].decode("utf-8", "replace")


def _data_file_name(head: bytes, pos: int) -> str | None:
    """The external data file name from the header extensions, when within `head`."""
    while pos + 8 <= len(head):
        ext_type, ext_len = struct.unpack(">II", head[pos : pos + 8])
        if ext_type == 0:
            return None
        if ext_type == DATA_FILE_EXTENSION:
            return head[pos + 8 : pos + 8 + ext_len].decode("utf-8", "replace") or None
        pos += 8 + (ext_len + 7) // 8 * 8
    return None

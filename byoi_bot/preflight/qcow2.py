"""qcow2: header facts, safety problems, and reading guest bytes through L1 → L2 → cluster.

Layout: QEMU's docs/interop/qcow2.txt. Only what preflight needs: the header (first
4 KiB), checked for consistency the way qemu checks it before opening the image, then
guest reads through the few L1/L2 entries they need (read by the block, cached) and the
data clusters (adjacent ones in one request).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import zstandard

from .read_cache import CachedReads

MAGIC = b"QFI\xfb"
OFFSET_MASK = 0x00FFFFFFFFFFFE00
COMPRESSED = 1 << 62
ZERO = 1
DATA_FILE_EXTENSION = 0x44415441
COMPRESSED_CHUNK = 16 * 1024  # compressed bytes read at first; more only if needed
L1_BLOCK = 4096  # L1 and L2 entries are read by aligned blocks of this many bytes, cached
L2_BLOCK = 4096  # 2048 from 64 KiB clusters on: 256 entries then cover 16 MiB of guest
MAX_L1_BYTES = 32 * 1024 * 1024  # qemu's QCOW_MAX_L1_SIZE
MAX_REFCOUNT_TABLE_BYTES = 8 * 1024 * 1024  # qemu's QCOW_MAX_REFTABLE_SIZE
INT_MAX = 2**31 - 1

INCOMPATIBLE_FEATURES = {
    0: "dirty",
    1: "corrupt",
    2: "external_data_file",
    3: "compression_type",
    4: "extended_l2",
}
KNOWN_INCOMPATIBLE = sum(1 << bit for bit in INCOMPATIBLE_FEATURES)
COMPRESSION_TYPES = {0: "zlib", 1: "zstd"}


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
    refcount_table_offset: int = 0
    refcount_table_clusters: int = 0
    refcount_order: int = 4
    header_length: int = 72
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
    refcount_offset, refcount_clusters = struct.unpack(">QI", head[48:60])
    incompatible, header_length, compression, refcount_order = 0, 72, 0, 4
    if version == 3:
        if len(head) < 104:
            raise Qcow2Error("qcow2 v3 header is truncated")
        (incompatible,) = struct.unpack(">Q", head[72:80])
        refcount_order, header_length = struct.unpack(">II", head[96:104])
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
        refcount_table_offset=refcount_offset,
        refcount_table_clusters=refcount_clusters,
        refcount_order=refcount_order,
        header_length=header_length,
        backing_file=backing,
        data_file=_data_file_name(head, header_length),
    )


def problems(header: Qcow2Header, file_size: int | None = None) -> list[str]:
    """Why this qcow2 may not be deployed, in plain words (empty when it is safe)."""
    found = consistency_problems(header, file_size)
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


def consistency_problems(h: Qcow2Header, file_size: int | None) -> list[str]:
    """What qemu refuses when it opens the image (qcow2_do_open), in plain words."""
    found = []
    rebuild = "; rebuild it with `qemu-img convert -O qcow2`"
    cs = h.cluster_size
    if h.version == 3 and h.header_length < 104:
        found.append(f"its header length {h.header_length} is too short (qemu: at least 104)")
    if h.refcount_order > 6:
        found.append(f"its refcount order {h.refcount_order} is too large (qemu: at most 6)")
    l2_entries = cs // (16 if h.extended_l2 else 8)
    needed = -(-h.virtual_size // (cs * l2_entries))
    if needed > INT_MAX:
        found.append(f"its virtual size {h.virtual_size} is too big for qemu ('Image is too big')")
    elif h.l1_size < needed:
        found.append(
            f"its L1 table has {h.l1_size} entries, fewer than the {needed} its virtual size "
            "needs (qemu: 'L1 table is too small')"
        )
    if h.l1_size * 8 > MAX_L1_BYTES:
        found.append(f"its L1 table ({h.l1_size} entries) is larger than qemu allows (32 MiB)")
    if h.refcount_table_clusters * cs > MAX_REFCOUNT_TABLE_BYTES:
        found.append("its refcount table is larger than qemu allows (8 MiB)")
    for name, offset, length in (
        ("L1 table", h.l1_table_offset, h.l1_size * 8),
        ("refcount table", h.refcount_table_offset, h.refcount_table_clusters * cs),
    ):
        if offset % cs:
            found.append(f"its {name} offset {offset} is not cluster-aligned (qemu refuses it)")
        elif file_size is not None and length and offset + length > file_size:
            found.append(
                f"its {name} ({offset}..{offset + length}) lies past the end of the file "
                f"({file_size} bytes): the file is truncated and a deploy would write an "
                "empty or partial disk"
            )
    return [p + rebuild for p in found]


class Qcow2Reader:
    """Reads guest bytes through the L1 and L2 tables (unallocated and zero clusters read as 0).

    L1 and L2 entries are read by aligned blocks and cached; the data of adjacent clusters
    is fetched in one request; nothing already read is fetched again.
    """

    def __init__(self, header: Qcow2Header, reads: CachedReads) -> None:
        self.header = header
        self._reads = reads
        self._entry_size = 16 if header.extended_l2 else 8

    def read(self, offset: int, length: int) -> bytes:
        """`length` guest bytes at guest `offset` (clipped to the virtual size)."""
        return self.read_many([(offset, length)])[0]

    def read_many(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Several guest ranges at once: their metadata and data fetched together."""
        h = self.header
        cs = h.cluster_size
        pieces = []  # (range index, guest offset, count, guest cluster)
        for i, (offset, length) in enumerate(ranges):
            length = max(0, min(length, h.virtual_size - offset))
            pos = offset
            while pos < offset + length:
                cluster = pos >> h.cluster_bits
                count = min(offset + length, (cluster + 1) * cs) - pos
                pieces.append((i, pos, count, cluster))
                pos += count
        entries = self._l2_entries(sorted({p[3] for p in pieces}))
        spans, plans = [], []
        for _, pos, count, cluster in pieces:
            entry, bitmap = entries[cluster]
            start = pos - cluster * cs
            if entry & COMPRESSED:
                host, size = self._compressed_range(entry)
                plans.append(("compressed", len(spans), start, count, host, size))
                spans.append((host, min(size, COMPRESSED_CHUNK)))
            elif (
                (h.extended_l2 and not bitmap & 0xFFFFFFFF)
                or entry & ZERO
                or not (entry & OFFSET_MASK)
            ):
                plans.append(("zero", None, start, count, 0, 0))
            else:
                plans.append(("data", len(spans), start, count, bitmap, 0))
                spans.append(((entry & OFFSET_MASK) + start, count))
        fetched = self._reads.read_many(spans)
        out = [bytearray() for _ in ranges]
        for piece, (kind, span, start, count, extra, size) in zip(pieces, plans, strict=True):
            i = piece[0]
            if kind == "zero":
                out[i] += bytes(count)
            elif kind == "compressed":
                out[i] += self._inflate(spans[span][0], size, fetched[span], start, count)
            else:
                data = fetched[span]
                if len(data) != count:
                    end = spans[span][0] + count
                    raise Qcow2Error(f"the file ends before offset {end} (truncated?)")
                out[i] += self._subclusters(extra, data, start) if h.extended_l2 else data
        return [bytes(b) for b in out]

    def _l2_entries(self, clusters: list[int]) -> dict[int, tuple[int, int]]:
        """(entry, subcluster bitmap) of each guest cluster, by cached block reads."""
        h, es = self.header, self._entry_size
        per_table = h.cluster_size // es
        l1_indexes = sorted({c // per_table for c in clusters if c // per_table < h.l1_size})
        l1 = self._entries_of(h.l1_table_offset, l1_indexes, 8, L1_BLOCK, h.l1_size * 8)
        tables = {i: l1[i] & OFFSET_MASK for i in l1_indexes}
        wanted: dict[int, list[int]] = {}
        for c in clusters:
            if tables.get(c // per_table):
                wanted.setdefault(c // per_table, []).append(c % per_table)
        blocks, where = [], {}
        for index, slots in wanted.items():
            base = tables[index]
            step = L2_BLOCK if h.cluster_bits < 16 else L2_BLOCK // 2
            lo = min(slots) * es // step * step
            hi = min(-(-(max(slots) + 1) * es // step) * step, h.cluster_size)
            where[index] = (len(blocks), lo)
            blocks.append((base + lo, hi - lo))
        data = self._reads.read_many(blocks)
        found = {}
        for c in clusters:
            index, slot = divmod(c, per_table)
            if index not in where:
                found[c] = (0, 0)
                continue
            block, lo = where[index]
            raw = data[block][slot * es - lo : slot * es - lo + es]
            if len(raw) != es:
                raise Qcow2Error("the file ends inside an L2 table (truncated?)")
            found[c] = (int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big"))
        return found

    def _entries_of(self, table: int, indexes: list[int], es: int, block: int, size: int):
        ranges = sorted({i * es // block * block for i in indexes})
        data = self._reads.read_many([(table + lo, min(block, size - lo)) for lo in ranges])
        entries = {}
        for i in indexes:
            lo = i * es // block * block
            raw = data[ranges.index(lo)][i * es - lo : i * es - lo + es]
            if len(raw) != es:
                raise Qcow2Error("the file ends inside the L1 table (truncated?)")
            entries[i] = int.from_bytes(raw, "big")
        return entries

    def _compressed_range(self, entry: int) -> tuple[int, int]:
        h = self.header
        if h.compression_type not in COMPRESSION_TYPES:
            raise Qcow2Error(f"unknown compression type {h.compression_type}")
        shift = 62 - (h.cluster_bits - 8)
        host = entry & ((1 << shift) - 1)
        sectors = ((entry >> shift) & ((1 << (h.cluster_bits - 8)) - 1)) + 1
        return host, sectors * 512 - (host & 511)

    def _inflate(self, host: int, size: int, data: bytes, start: int, count: int) -> bytes:
        """Decompress a cluster's first `start + count` bytes, fetching more if needed."""
        zstd = self.header.compression_type == 1
        engine = zstandard.ZstdDecompressor().decompressobj() if zstd else zlib.decompressobj(-12)
        plain, read, chunk = b"", 0, COMPRESSED_CHUNK
        try:
            while True:
                read += len(data)
                plain += engine.decompress(data)
                if len(plain) >= start + count or read >= size or not data:
                    break
                chunk *= 4
                data = self._reads.read(host + read, min(chunk, size - read))
        except (zlib.error, zstandard.ZstdError) as exc:
            raise Qcow2Error(f"a compressed cluster does not decompress ({exc})") from None
        return plain[start : start + count].ljust(count, b"\0")

    def _subclusters(self, bitmap: int, data: bytes, start: int) -> bytes:
        sub = self.header.cluster_size // 32
        out = bytearray(data)
        for i in range(start // sub, (start + len(data) - 1) // sub + 1):
            if not bitmap >> i & 1 or bitmap >> (32 + i) & 1:
                lo, hi = max(i * sub, start) - start, min((i + 1) * sub, start + len(data)) - start
                out[lo:hi] = bytes(hi - lo)
        return bytes(out)


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

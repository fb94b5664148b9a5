"""FAT12/16/32 read over range reads: the boot sector, directory clusters, FAT blocks only
when a directory spans more than one cluster; long file names; names matched ignoring case.

Layout: Microsoft's "FAT: General Overview of On-Disk Format" (fatgen103).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

ReadMany = Callable[[list[tuple[int, int]]], list[bytes]]
DIRECTORY, VOLUME_LABEL, LFN = 0x10, 0x08, 0x0F
LOWER_BASE, LOWER_EXT = 0x08, 0x10
ROOT_STEP = 1024  # a FAT12/16 root directory is read by this many bytes at a time
MAX_DIRECTORY_CLUSTERS = 64
FAT_BLOCK = 4096  # the FAT is read by aligned blocks of this many bytes
# Bytes of the data region read along with the root: the first directories live there.
SPECULATIVE = {12: 8192, 16: 8192, 32: 16384}


class FatError(ValueError):
    """The partition holds no FAT file system this reader understands."""


@dataclass(frozen=True)
class FatEntry:
    """A file or directory: its name as stored (long name when there is one)."""

    name: str
    is_dir: bool
    cluster: int
    size: int


class FatVolume:
    """A FAT file system at byte `offset` of a disk read through `read_many`."""

    def __init__(self, read_many: ReadMany, offset: int) -> None:
        self._read_many = read_many
        self.offset = offset
        (boot,) = read_many([(offset, 512)])
        if len(boot) < 512:
            raise FatError("the partition ends before its boot sector")
        (bps, spc, reserved, fats, root_entries, total16, _, fat16) = struct.unpack(
            "<HBHBHHBH", boot[11:24]
        )
        (total32, fat32, _, _, root_cluster) = struct.unpack("<IIHHI", boot[32:48])
        if bps not in (512, 1024, 2048, 4096) or spc == 0 or spc & (spc - 1) or not fats:
            raise FatError("the partition's boot sector is not a FAT boot sector")
        fat_sectors = fat16 or fat32
        total = total16 or total32
        root_sectors = -(-root_entries * 32 // bps)
        data_sector = reserved + fats * fat_sectors + root_sectors
        if not fat_sectors or total <= data_sector:
            raise FatError("the partition's FAT boot sector gives an impossible layout")
        self.cluster_size = bps * spc
        self.clusters = (total - data_sector) // spc
        self.bits = 12 if self.clusters < 4085 else 16 if self.clusters < 65525 else 32
        self.fat_offset = offset + reserved * bps
        self.root_offset = offset + (reserved + fats * fat_sectors) * bps
        self.root_size = root_entries * 32
        self.data_offset = offset + data_sector * bps
        self.root_cluster = root_cluster if self.bits == 32 else 0

    @property
    def kind(self) -> str:
        return f"FAT{self.bits}"

    def root(self) -> list[FatEntry]:
        """The root directory (with the first data clusters read alongside, to spare a
        round trip when the next directories lie there, as they do on most ESPs)."""
        if self.bits == 32:
            return self.directories([self.root_cluster], speculate=True)[0]
        data = b""
        for start in range(0, self.root_size, ROOT_STEP):
            length = min(ROOT_STEP, self.root_size - start)
            ranges = [(self.root_offset + start, length)]
            if start == 0:
                ranges.append((self.data_offset, SPECULATIVE[self.bits]))
            data += self._read_many(ranges)[0]
            entries, ended = _parse(data)
            if ended:
                return entries
        return _parse(data)[0]

    def directories(self, clusters: list[int], speculate: bool = False) -> list[list[FatEntry]]:
        """Several directories' entries: their first clusters read in one go, then the rest
        of the chains of those that span more (FAT blocks, then clusters, in one go each)."""
        ranges = [(self._cluster_offset(c), self.cluster_size) for c in clusters]
        if speculate:
            ranges.append((self.data_offset, SPECULATIVE[self.bits]))
        firsts = self._read_many(ranges)[: len(clusters)]
        chains = [
            [] if _parse(first)[1] else self._chain(c)[1:]
            for c, first in zip(clusters, firsts, strict=True)
        ]
        wanted = [(self._cluster_offset(c), self.cluster_size) for chain in chains for c in chain]
        rest = iter(self._read_many(wanted) if wanted else [])
        return [
            _parse(first + b"".join(next(rest) for _ in chain))[0]
            for first, chain in zip(firsts, chains, strict=True)
        ]

    def _chain(self, cluster: int) -> list[int]:
        """The clusters of the chain starting at `cluster`, at most MAX_DIRECTORY_CLUSTERS."""
        chain = [cluster]
        while len(chain) < MAX_DIRECTORY_CLUSTERS:
            following = self._next_cluster(chain[-1])
            if following is None or following in chain:
                break
            chain.append(following)
        return chain

    def _cluster_offset(self, cluster: int) -> int:
        if not 2 <= cluster < self.clusters + 2:
            raise FatError(f"a directory points to cluster {cluster}, outside the file system")
        return self.data_offset + (cluster - 2) * self.cluster_size

    def _next_cluster(self, cluster: int) -> int | None:
        pos = cluster * self.bits // 8
        start = pos - pos % FAT_BLOCK  # the whole block: the next entries come from the cache
        (block,) = self._read_many([(self.fat_offset + start, FAT_BLOCK + 4)])
        raw = block[pos - start : pos - start + 4]
        value = int.from_bytes(raw[: 2 if self.bits < 32 else 4].ljust(4, b"\0"), "little")
        if self.bits == 12:
            value = value >> 4 if cluster % 2 else value & 0xFFF
        elif self.bits == 32:
            value &= 0x0FFFFFFF
        end = {12: 0xFF7, 16: 0xFFF7, 32: 0x0FFFFFF7}[self.bits]
        return value if 2 <= value < end else None


def _parse(data: bytes) -> tuple[list[FatEntry], bool]:
    """The entries in directory bytes, and whether the end-of-directory mark was seen."""
    entries, long_parts, checksum = [], {}, None
    for pos in range(0, len(data) - 31, 32):
        raw = data[pos : pos + 32]
        if raw[0] == 0:
            return entries, True
        attr = raw[11]
        if raw[0] == 0xE5:
            long_parts = {}
            continue
        if attr == LFN:
            chars = raw[1:11] + raw[14:26] + raw[28:32]
            long_parts[raw[0] & 0x1F] = chars
            checksum = raw[13]
            continue
        if attr & VOLUME_LABEL or raw[:2] in (b". ", b".."):
            long_parts = {}
            continue
        name = _long_name(long_parts) if long_parts and checksum == _checksum(raw[:11]) else None
        long_parts = {}
        cluster = struct.unpack("<H", raw[20:22])[0] << 16 | struct.unpack("<H", raw[26:28])[0]
        entries.append(
            FatEntry(name or _short_name(raw), bool(attr & DIRECTORY), cluster, _size(raw))
        )
    return entries, False


def _size(raw: bytes) -> int:
    return struct.unpack("<I", raw[28:32])[0]


def _long_name(parts: dict[int, bytes]) -> str:
    units = b"".join(parts[i] for i in sorted(parts))
    name = units.decode("utf-16-le", "replace")
    return name.split("\0", 1)[0]


def _short_name(raw: bytes) -> str:
    base = raw[:8].decode("latin-1").rstrip()
    ext = raw[8:11].decode("latin-1").rstrip()
    if raw[12] & LOWER_BASE:
        base = base.lower()
    if raw[12] & LOWER_EXT:
        ext = ext.lower()
    return f"{base}.{ext}" if ext else base


def _checksum(short: bytes) -> int:
    total = 0
    for byte in short:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


def find(entries: list[FatEntry], name: str) -> FatEntry | None:
    """The entry called `name`, ignoring case (FAT names are case-insensitive)."""
    return next((e for e in entries if e.name.lower() == name.lower()), None)

"""A FAT12/16/32 file system holding a few files, laid out as mkfs.fat and mcopy would.

Names that are not plain upper-case 8.3 get long-file-name (VFAT) entries; all-lower-case
8.3 names use the Windows NT lower-case flags instead, as Linux writes them.
"""

from __future__ import annotations

import struct

from .sparse import SparseImage

SECTOR = 512
MAX_CLUSTERS = {12: 4084, 16: 65524, 32: 0x0FFFFFF5}
MIN_CLUSTERS = {12: 1, 16: 4085, 32: 65525}
END_OF_CHAIN = {12: 0xFFF, 16: 0xFFFF, 32: 0x0FFFFFFF}
ROOT_ENTRIES = 512
DIRECTORY, ARCHIVE, LFN = 0x10, 0x20, 0x0F
LOWER_BASE, LOWER_EXT = 0x08, 0x10


def fat_filesystem(size: int, files: dict[str, bytes], fat_bits: int | None = None) -> SparseImage:
    """A FAT file system of `size` bytes with `files` (path "EFI/BOOT/BOOTX64.EFI" → data)."""
    bits = fat_bits or (12 if size < 8 * 2**20 else 16 if size < 512 * 2**20 else 32)
    layout = _Layout(size // SECTOR, bits)
    tree: dict = {}
    for path, data in files.items():
        *dirs, name = path.strip("/").split("/")
        node = tree
        for d in dirs:
            node = node.setdefault(d, {})
        node[name] = data
    return _Writer(layout).write(tree)


class _Layout:
    """Sectors per cluster, FAT size and region offsets for `sectors` sectors of `bits`."""

    def __init__(self, sectors: int, bits: int) -> None:
        self.bits, self.sectors = bits, sectors
        self.reserved = 32 if bits == 32 else 1
        self.root_sectors = 0 if bits == 32 else ROOT_ENTRIES * 32 // SECTOR
        self.cluster_sectors = _fat32_cluster_sectors(sectors * SECTOR) if bits == 32 else 1
        while True:
            self.fat_sectors = 1
            for _ in range(8):  # converges in a few steps
                clusters = self._clusters()
                self.fat_sectors = -(-((clusters + 2) * bits // 8 + 1) // SECTOR)
            self.clusters = self._clusters()
            if self.clusters <= MAX_CLUSTERS[bits]:
                break
            self.cluster_sectors *= 2
        if self.clusters < MIN_CLUSTERS[bits]:
            raise ValueError(f"{sectors} sectors are too few for FAT{bits}")

    def _clusters(self) -> int:
        meta = self.reserved + 2 * self.fat_sectors + self.root_sectors
        return (self.sectors - meta) // self.cluster_sectors

    @property
    def cluster_size(self) -> int:
        return self.cluster_sectors * SECTOR

    @property
    def root_offset(self) -> int:
        return (self.reserved + 2 * self.fat_sectors) * SECTOR

    @property
    def data_offset(self) -> int:
        return self.root_offset + self.root_sectors * SECTOR


def _fat32_cluster_sectors(size: int) -> int:
    """Sectors per cluster mkfs.fat picks for FAT32 (4 KiB clusters up to 8 GiB)."""
    for limit, sectors in ((260 * 2**20, 1), (8 * 2**30, 8), (16 * 2**30, 16), (32 * 2**30, 32)):
        if size <= limit:
            return sectors
    return 64


class _Writer:
    def __init__(self, layout: _Layout) -> None:
        self.layout = layout
        self.fat = {0: 0x0FFFFFF8 & END_OF_CHAIN[layout.bits], 1: END_OF_CHAIN[layout.bits]}
        self.next_cluster = 2
        self.data = bytearray()

    def write(self, tree: dict) -> SparseImage:
        """Every directory's clusters first (breadth first, as `mmd` before `mcopy` leaves
        them), then the files' clusters, then the entries."""
        lay = self.layout
        image = SparseImage(lay.sectors * SECTOR)
        order = _breadth_first(tree)
        self.clusters = {id(tree): 0}
        for node in order:
            if node is not tree or lay.bits == 32:
                self.clusters[id(node)] = self._allocate(bytes(self._directory_size(node)))
        parents = {id(child): node for node in order for child in node.values() if _is_dir(child)}
        for node in order:
            own = self.clusters[id(node)]
            parent = parents.get(id(node))
            # ".." of the root's children is 0, whatever cluster a FAT32 root is in.
            up = None if parent is None else 0 if parent is tree else self.clusters[id(parent)]
            entries = self._entries(node, up, own)
            if node is tree and lay.bits != 32:
                image.put(lay.root_offset, entries)
            else:
                start = (own - 2) * lay.cluster_size
                self.data[start : start + len(entries)] = entries
        boot = self._boot_sector(self.clusters[id(tree)])
        image.put(0, boot)
        if lay.bits == 32:
            image.put(SECTOR, self._fsinfo())
            image.put(6 * SECTOR, boot)
            image.put(7 * SECTOR, self._fsinfo())
        fat = self._fat_bytes()  # only its used start: the rest of each FAT reads as zeros
        image.put(lay.reserved * SECTOR, fat)
        image.put((lay.reserved + lay.fat_sectors) * SECTOR, fat)
        if self.data:
            image.put(lay.data_offset, bytes(self.data))
        return image

    def _directory_size(self, node: dict) -> int:
        slots = 2 + sum(1 + _lfn_count(n) for n in node)
        return max(1, -(-slots * 32 // self.layout.cluster_size)) * self.layout.cluster_size

    def _allocate(self, data: bytes) -> int:
        """Store `data` in a new cluster chain; returns its first cluster (0 when empty)."""
        size = self.layout.cluster_size
        count = -(-len(data) // size)
        if not count:
            return 0
        first = self.next_cluster
        if first + count - 2 > self.layout.clusters:
            raise ValueError("the FAT file system is full")
        for i in range(count):
            c = first + i
            self.fat[c] = c + 1 if i < count - 1 else END_OF_CHAIN[self.layout.bits]
        self.next_cluster += count
        self.data += data.ljust(count * size, b"\0")
        return first

    def _entries(self, tree: dict, parent: int | None, own: int) -> bytes:
        """A directory's entries; `own` is its first cluster (0 for a FAT12/16 root)."""
        out = bytearray()
        if parent is not None:
            out += _entry(b".          ", DIRECTORY, own, 0, 0)
            out += _entry(b"..         ", DIRECTORY, parent, 0, 0)
        used: set[bytes] = set()
        for name, child in tree.items():
            if _is_dir(child):
                cluster, attr, size = self.clusters[id(child)], DIRECTORY, 0
            else:
                cluster, attr, size = self._allocate(child), ARCHIVE, len(child)
            short, flags, lfn = _short_name(name, used)
            used.add(short)
            out += _lfn_entries(name, short) if lfn else b""
            out += _entry(short, attr, cluster, size, flags)
        return bytes(out)

    def _fat_bytes(self) -> bytes:
        lay = self.layout
        used = (max(self.fat) + 1) * lay.bits // 8 + 2
        fat = bytearray(-(-used // SECTOR) * SECTOR)
        for n, value in self.fat.items():
            if lay.bits == 12:
                pos = n * 3 // 2
                old = int.from_bytes(fat[pos : pos + 2], "little")
                new = (old & 0xF000) | value if n % 2 == 0 else (old & 0x000F) | value << 4
                fat[pos : pos + 2] = new.to_bytes(2, "little")
            else:
                fat[n * lay.bits // 8 : (n + 1) * lay.bits // 8] = value.to_bytes(
                    lay.bits // 8, "little"
                )
        return bytes(fat)

    def _boot_sector(self, root_cluster: int) -> bytes:
        lay = self.layout
        total16 = lay.sectors if lay.sectors < 0x10000 and lay.bits != 32 else 0
        bpb = struct.pack(
            "<3s8sHBHBHHBHHHII", b"\xeb\x58\x90" if lay.bits == 32 else b"\xeb\x3c\x90",
            b"mkfs.fat", SECTOR, lay.cluster_sectors, lay.reserved, 2,
            lay.root_sectors * SECTOR // 32, total16, 0xF8,
            0 if lay.bits == 32 else lay.fat_sectors, 32, 64, 0, 0 if total16 else lay.sectors,
        )  # fmt: skip
        if lay.bits == 32:
            bpb += struct.pack("<IHHIHH12x", lay.fat_sectors, 0, 0, root_cluster, 1, 6)
        bpb += struct.pack("<BBBI11s8s", 0x80, 0, 0x29, 0x1234ABCD, b"NO NAME    ",
                           f"FAT{lay.bits}".ljust(8).encode())  # fmt: skip
        return bpb.ljust(510, b"\0") + b"\x55\xaa"

    def _fsinfo(self) -> bytes:
        free = self.layout.clusters - (self.next_cluster - 2)
        info = bytearray(SECTOR)
        info[0:4], info[484:488] = b"RRaA", b"rrAa"
        info[488:496] = struct.pack("<II", free, self.next_cluster)
        info[508:512] = b"\x00\x00\x55\xaa"
        return bytes(info)


def _is_dir(node) -> bool:
    return isinstance(node, dict)


def _breadth_first(tree: dict) -> list[dict]:
    order = [tree]
    for node in order:
        order += [child for child in node.values() if _is_dir(child)]
    return order


def _entry(short: bytes, attr: int, cluster: int, size: int, flags: int) -> bytes:
    return struct.pack("<11sBBB6xH4xHI", short, attr, flags, 0, cluster >> 16, cluster & 0xFFFF,
                       size)  # fmt: skip


def _split(name: str) -> tuple[str, str]:
    base, dot, ext = name.rpartition(".")
    return (base, ext) if dot and base else (name, "")


def _plain_83(part: str, limit: int) -> bool:
    return 0 < len(part) <= limit and all(c.isalnum() or c in "_-~$" for c in part)


def _short_name(name: str, used: set[bytes]) -> tuple[bytes, int, bool]:
    """The 8.3 name, its NT lower-case flags, and whether long-name entries are needed."""
    base, ext = _split(name)
    if _plain_83(base, 8) and (not ext or _plain_83(ext, 3)):
        flags = 0
        for part, flag in ((base, LOWER_BASE), (ext, LOWER_EXT)):
            if part.islower():
                flags |= flag
            elif not part.isupper() and any(c.isalpha() for c in part):
                break
        else:
            short = base.upper().ljust(8).encode() + ext.upper().ljust(3).encode()
            if short not in used:
                return short, flags, False
    clean = "".join(c for c in base.upper() if c.isalnum()) or "FILE"
    clean_ext = "".join(c for c in ext.upper() if c.isalnum())[:3]
    for n in range(1, 1000):
        tail = f"~{n}"
        short = (clean[: 8 - len(tail)] + tail).ljust(8).encode() + clean_ext.ljust(3).encode()
        if short not in used:
            return short, 0, True
    raise ValueError(f"too many names like {name!r}")


def _lfn_count(name: str) -> int:
    return -(-(len(name) + 1) // 13)


def _lfn_entries(name: str, short: bytes) -> bytes:
    checksum = 0
    for byte in short:
        checksum = (((checksum & 1) << 7) + (checksum >> 1) + byte) & 0xFF
    units = name.encode("utf-16-le") + b"\0\0"
    count = _lfn_count(name)
    units = units.ljust(count * 26, b"\xff")
    out = bytearray()
    for seq in range(count, 0, -1):
        part = units[(seq - 1) * 26 : seq * 26]
        order = seq | (0x40 if seq == count else 0)
        out += struct.pack("<B10sBBB12sH4s", order, part[:10], LFN, 0, checksum, part[10:22], 0,
                           part[22:26])  # fmt: skip
    return bytes(out)

"""Real image format from content, and the analysis preflight builds its checks on.

qcow2 and raw (with MBR/GPT) are deployable; ISO 9660, VMDK, VHD, VHDX, VDI and
archives are recognised so that the refusal can say what to do instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import qcow2
from .partitions import PartitionTable, read_partition_table

Read = Callable[[int, int], bytes]
HEAD = 4096
ISO_MAGIC_OFFSET = 0x8001

# (format, offset, magic) checked on the first 4 KiB, first match wins.
MAGICS: tuple[tuple[str, int, bytes], ...] = (
    ("qcow2", 0, qcow2.MAGIC),
    ("vmdk", 0, b"KDMV"),
    ("vmdk", 0, b"# Disk DescriptorFile"),
    ("vhd", 0, b"conectix"),
    ("vhdx", 0, b"vhdxfile"),
    ("vdi", 64, b"\x7f\x10\xda\xbe"),
    ("gzip", 0, b"\x1f\x8b"),
    ("xz", 0, b"\xfd7zXZ\x00"),
    ("zstd", 0, b"\x28\xb5\x2f\xfd"),
    ("bzip2", 0, b"BZh"),
    ("zip", 0, b"PK\x03\x04"),
    ("tar", 257, b"ustar"),
)
ARCHIVES = frozenset({"gzip", "xz", "zstd", "bzip2", "zip", "tar"})
DEPLOYABLE = frozenset({"qcow2", "raw"})


@dataclass
class ImageAnalysis:
    """What the image's bytes say. `table` is None when the partition table was not read."""

    format: str
    download_size: int | None
    virtual_size: int | None = None
    qcow2: qcow2.Qcow2Header | None = None
    qcow2_problems: list[str] = field(default_factory=list)
    table: PartitionTable | None = None
    unreadable: str | None = None

    def facts(self) -> dict:
        """The analysis as ImageReport facts."""
        facts = {
            "format": self.format,
            "download_size": self.download_size,
            "virtual_size": self.virtual_size,
        }
        if self.qcow2:
            facts |= self.qcow2.facts()
        if self.table:
            facts |= self.table.facts()
        if self.unreadable:
            facts["partition_table_unreadable"] = self.unreadable
        return facts


def sniff(head: bytes) -> str | None:
    """The format named by magic bytes in the first 4 KiB, or None (raw or unknown)."""
    for name, offset, magic in MAGICS:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


def analyse(read: Read, size: int | None) -> ImageAnalysis:
    """Detect the format and read what preflight needs: qcow2 header, partition table."""
    head = read(0, HEAD)
    if not head:
        return ImageAnalysis("empty", size, 0)
    kind = sniff(head)
    if kind == "qcow2":
        return _analyse_qcow2(head, read, size)
    if kind:
        return ImageAnalysis(kind, size)
    table = read_partition_table(read)
    if table.kind is None:
        other = _sniff_beyond_head(read, size)
        if other:
            return ImageAnalysis(other, size)
    return ImageAnalysis("raw", size, size, table=table)


def _analyse_qcow2(head: bytes, read: Read, size: int | None) -> ImageAnalysis:
    try:
        header = qcow2.parse_header(head)
    except qcow2.Qcow2Error as exc:
        return ImageAnalysis("qcow2", size, qcow2_problems=[str(exc)])
    analysis = ImageAnalysis("qcow2", size, header.virtual_size, header, qcow2.problems(header))
    if analysis.qcow2_problems:
        return analysis
    try:
        analysis.table = read_partition_table(qcow2.Qcow2Reader(header, read).read)
    except qcow2.Qcow2Error as exc:
        analysis.unreadable = str(exc)
    return analysis


def _sniff_beyond_head(read: Read, size: int | None) -> str | None:
    """ISO 9660 (`CD001` at 0x8001) or a fixed VHD (`conectix` footer in the last sector)."""
    big_enough = size is None or size > ISO_MAGIC_OFFSET + 5
    if big_enough and read(ISO_MAGIC_OFFSET, 5) == b"CD001":
        return "iso9660"
    if size is not None and size >= 1024 and read(size - 512, 8) == b"conectix":
        return "vhd"
    return None

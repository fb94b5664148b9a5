"""Real image format from content, and the analysis preflight builds its checks on.

qcow2 and raw (with MBR/GPT) are deployable; qcow (v1), QED, VMDK, VHD, VHDX, VDI,
Parallels, LUKS, ISO 9660 / UDF (hybrid ones too, whatever partition table they also
carry) and archives are recognised so that the refusal can say what to do instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import qcow2
from .esp import EspContents, read_esp
from .fat import FatError
from .http_range import RangeError
from .partitions import TABLE_BYTES, PartitionTable, read_partition_table
from .read_cache import CachedReads, ReadLimit

Read = Callable[[int, int], bytes]
HEAD = 4096
ESP_MAX_REQUESTS = 6  # first pass: the ESP is read if the whole inspection stays within these
ESP_MAX_BYTES = 64 * 1024
ESP_MORE_REQUESTS = 4  # the second pass, when the first found no loader: this much more
ESP_MORE_BYTES = 64 * 1024
ISO_DESCRIPTOR = 0x8000  # the first ISO 9660 / UDF volume descriptor (2 KiB sector 16)

# (format, offset, magic) checked on the first 4 KiB, first match wins.
MAGICS: tuple[tuple[str, int, bytes], ...] = (
    ("qcow2", 0, qcow2.MAGIC),
    ("qed", 0, b"QED\x00"),
    ("luks", 0, b"LUKS\xba\xbe"),
    ("parallels", 0, b"WithoutFreeSpace"),
    ("parallels", 0, b"WithouFreSpacExt"),
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
    hybrid_of: str | None = None  # "gpt"/"mbr": an ISO that also carries a partition table
    esp: EspContents | None = None
    esp_unreadable: str | None = None

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
        if self.hybrid_of:
            facts["iso_hybrid"] = self.hybrid_of
        if self.esp:
            facts |= self.esp.facts()
        if self.esp_unreadable:
            facts["esp_unreadable"] = self.esp_unreadable
        return facts


class PastHead(RangeError):
    """A read past the first bytes of an image whose server ignores ranges."""


def head_reader(head: bytes, size: int | None) -> Read:
    """A `read(offset, length)` over the first bytes of an image (`head`) only."""

    def read(offset: int, length: int) -> bytes:
        if offset + length > len(head) and len(head) != size:
            raise PastHead(
                f"the image server ignores range requests and byte {offset + length} lies "
                f"past the first {len(head)} bytes read"
            )
        return head[offset : offset + length]

    return read


def sniff(head: bytes) -> str | None:
    """The format named by magic bytes in the first 4 KiB, or None (raw or unknown)."""
    for name, offset, magic in MAGICS:
        if head[offset : offset + len(magic)] == magic:
            if name == "qcow2" and head[4:8] == b"\0\0\0\x01":
                return "qcow"
            return name
    return None


def sniff_optical(descriptor: bytes) -> str | None:
    """ISO 9660 (`CD001`) or UDF (`BEA01`, `NSR02`, `NSR03`) from the first volume
    descriptor's identifier (a UDF disc with an ISO 9660 bridge is named ISO 9660)."""
    ident = descriptor[1:6]
    if ident == b"CD001":
        return "iso9660"
    if ident in (b"BEA01", b"NSR02", b"NSR03"):
        return "udf"
    return None


def analyse(read: Read, size: int | None) -> ImageAnalysis:
    """Detect the format and read what preflight needs: qcow2 header, partition table."""
    reads = CachedReads(read, size)
    head = reads.read(0, HEAD)
    if not head:
        return ImageAnalysis("empty", size, 0)
    kind = sniff(head)
    if kind == "qcow2":
        return _analyse_qcow2(head, reads, size)
    if kind:
        return ImageAnalysis(kind, size)
    analysis = ImageAnalysis("raw", size, size)
    try:
        _read_guest(analysis, reads, reads.read_many, reads.read)
        no_table = analysis.table is not None and analysis.table.kind is None
        if no_table and _fixed_vhd_footer(reads, size):
            return ImageAnalysis("vhd", size)
    except PastHead as exc:
        analysis.unreadable = str(exc)
    return analysis


def _fixed_vhd_footer(reads: CachedReads, size: int | None) -> bool:
    return size is not None and size >= 1024 and reads.read(size - 512, 8) == b"conectix"


def _read_guest(analysis: ImageAnalysis, reads: CachedReads, read_many, read: Read) -> None:
    """Partition table and optical-disc descriptors of the guest disk (in one round trip),
    then the bootloaders in its ESP if that fits within ESP_MAX_REQUESTS/ESP_MAX_BYTES."""
    _, descriptor = read_many([(0, TABLE_BYTES), (ISO_DESCRIPTOR, 8)])
    table = read_partition_table(read, analysis.virtual_size)
    optical = sniff_optical(descriptor)
    if optical:
        analysis.format, analysis.hybrid_of = optical, table.kind
        analysis.virtual_size = analysis.qcow2 = None
        return
    analysis.table = table
    esp = next((p for p in table.partitions if p.esp), None)
    if esp is None or (table.problem and not table.backup_intact):
        return
    analysis.esp, analysis.esp_unreadable = _read_esp(reads, read_many, esp.start)


def _read_esp(reads: CachedReads, read_many, offset: int) -> tuple[EspContents | None, str | None]:
    """The ESP's bootloaders, read within ESP_MAX_REQUESTS/ESP_MAX_BYTES for the whole
    inspection; when that stops before finding any, one more pass of at most
    ESP_MORE_REQUESTS requests and ESP_MORE_BYTES bytes (the first pass's bytes are not
    fetched again)."""
    esp, why = None, None
    reads.limit(ESP_MAX_REQUESTS, ESP_MAX_BYTES)
    try:
        for second in (False, True):
            if second:
                reads.limit(reads.fetches + ESP_MORE_REQUESTS, reads.fetched + ESP_MORE_BYTES)
            try:
                esp = read_esp(read_many, offset)
            except ReadLimit as exc:
                why = f"not read: {exc}"
                continue
            if esp.stopped is None or esp.bootloaders:
                break
        return esp, (None if esp else why)
    except (FatError, qcow2.Qcow2Error, RangeError) as exc:
        return None, str(exc)
    finally:
        reads.limit(None, None)


def _analyse_qcow2(head: bytes, reads: CachedReads, size: int | None) -> ImageAnalysis:
    try:
        header = qcow2.parse_header(head)
    except qcow2.Qcow2Error as exc:
        return ImageAnalysis("qcow2", size, qcow2_problems=[str(exc)])
    analysis = ImageAnalysis(
        "qcow2", size, header.virtual_size, header, qcow2.problems(header, size)
    )
    if analysis.qcow2_problems:
        return analysis
    guest = qcow2.Qcow2Reader(header, reads)
    try:
        _read_guest(analysis, reads, guest.read_many, guest.read)
    except (qcow2.Qcow2Error, PastHead) as exc:
        analysis.unreadable = str(exc)
    return analysis

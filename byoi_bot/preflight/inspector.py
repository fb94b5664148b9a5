"""The HTTP image inspector: a few range reads of the image, then checks in plain words."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from ..core.checks import Check, Severity
from ..core.ports import GiB, ImageReport, ServerFacts
from ..core.request import DeploySpec
from .esp import example_paths
from .formats import ARCHIVES, DEPLOYABLE, ImageAnalysis, Read, analyse, head_reader
from .hardware_fit import UEFI_MODES, hardware_checks
from .http_range import HttpStatusError, MiB, NoRangeSupport, RangeError, RangeReader
from .partitions import PartitionTable
from .url_safety import AllowList, UrlGuard, UrlRefused

RAM_RESERVE = 3 * GiB
# Partition types (GPT GUIDs, MBR bytes) of a Linux file system that can hold BYOLinux's root,
# and of Linux containers (LVM, software RAID) that cannot be its root partition directly.
LINUX_ROOT_TYPES = frozenset(
    {
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4",  # Linux filesystem data
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",  # Linux root (x86-64)
        "B921B045-1DF0-41C3-AF44-4C6F280D3FAE",  # Linux root (ARM64)
        "0X83",
    }
)
LINUX_CONTAINER_TYPES = frozenset(
    {
        "E6D6D379-F507-44C2-A23C-238F2A3DF928",  # Linux LVM
        "A19D880F-05FC-4D3B-A006-743F0F84911E",  # Linux RAID
        "0X8E",
        "0XFD",
    }
)
OK, WARNING, BLOCKING = Severity.OK, Severity.WARNING, Severity.BLOCKING

FORMAT_NAMES = {"qcow": "qcow (version 1)", "qed": "QED", "parallels": "Parallels"}
_STATUS_HINTS = {
    401: 'it needs credentials: add header="Authorization: …" (or fix the one given)',
    403: "access is denied: check the token or header given, or whether a signed URL expired",
    404: "nothing is there: check the URL (path and file name)",
    410: "the file was removed: check the URL",
}


def format_size(n: int | None) -> str:
    """Bytes in a short human form: `20.0 GiB`, `4.5 KiB`, `512 B`."""
    if n is None:
        return "unknown"
    for unit, scale in (("TiB", 1024**4), ("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


class HttpImageInspector:
    """Implements core.ports.ImageInspector with a handful of HTTP range requests."""

    def __init__(
        self,
        allowlist: str | Iterable[str] | AllowList | None = None,
        byte_budget: int = MiB,
        timeout: float = 10.0,
    ) -> None:
        self.guard = UrlGuard(allowlist)
        self.byte_budget = byte_budget
        self.timeout = timeout

    def inspect(self, spec: DeploySpec, server: ServerFacts | None) -> ImageReport:
        """Read the image's first KiBs and check it against the declared type and the server."""
        return self.inspect_many([spec], [server])[0]

    def inspect_many(
        self, specs: Sequence[DeploySpec], servers: Sequence[ServerFacts | None]
    ) -> list[ImageReport]:
        """One read of the image the `specs` share (a deploy to many), checked against each
        spec and server."""
        facts, checks, analysis = self._inspect_image(specs[0])
        reports = []
        for spec, server in zip(specs, servers, strict=True):
            own, own_facts = list(checks), dict(facts)
            if analysis is not None:
                own += efi_bootloader_checks(analysis, spec, server)
            if analysis is not None and analysis.esp and server is not None:
                own_facts["efi_bootloader"] = analysis.esp.choose(server.architecture)
            own += server_image_checks(analysis, facts.get("download_size"), spec, server)
            reports.append(ImageReport(tuple(own), own_facts))
        return reports

    def _inspect_image(self, spec: DeploySpec) -> tuple[dict, list[Check], ImageAnalysis | None]:
        facts: dict = {"url": spec.display_url, "declared_type": spec.image_type or None}
        reader = RangeReader(
            spec.image_url,
            spec.headers,
            guard=self.guard,
            byte_budget=self.byte_budget,
            timeout=self.timeout,
        )
        with reader:
            checks, analysis = self._read(reader, facts)
        facts |= {
            "requests": reader.requests,
            "bytes_read": reader.bytes_read,
            "redirects": reader.redirects,
        }
        if analysis is not None:
            facts |= analysis.facts()
            checks += image_checks(analysis, spec.image_type, spec.os)
        return facts, checks, analysis

    @staticmethod
    def _read(reader: RangeReader, facts: dict) -> tuple[list[Check], ImageAnalysis | None]:
        try:
            reader.open()
        except UrlRefused as exc:
            return [Check("reachable", BLOCKING, str(exc))], None
        except NoRangeSupport as exc:
            facts |= {"range_support": False, "download_size": exc.size}
            check = Check(
                "reachable",
                WARNING,
                f"{reader.display_url} answers but ignores HTTP range requests (it sends the "
                f"whole file): the bot read its first {format_size(len(exc.head))} and closed "
                "the connection, so what lies further (a qcow2's partition table, the EFI "
                "System Partition) was not checked. Serve it from a server that supports "
                "ranges to get those checks.",
            )
            return _analysed([check], head_reader(exc.head, exc.size), exc.size)
        except HttpStatusError as exc:
            hint = _STATUS_HINTS.get(exc.status)
            severity = WARNING if exc.status >= 500 else BLOCKING
            text = f"{exc}: " + (hint or "the installer's download would fail the same way")
            if severity is WARNING:
                text += "; this may be temporary, retry later"
            return [Check("reachable", severity, text + ".")], None
        except RangeError as exc:
            return [
                Check(
                    "reachable",
                    WARNING,
                    f"Could not read the image from the bot: {exc}. The installer downloads it "
                    "from OVHcloud's network; if it cannot either, the deploy fails with "
                    "'Could not download image located'.",
                )
            ], None
        facts |= {"range_support": True, "download_size": reader.size}
        checks = [Check("reachable", OK, f"{reader.display_url} answers with range support.")]
        return _analysed(checks, reader.read, reader.size)


def _analysed(
    checks: list[Check], read: Read, size: int | None
) -> tuple[list[Check], ImageAnalysis | None]:
    """`checks` and the image's analysis through `read`, or a warning why there is none."""
    try:
        return checks, analyse(read, size)
    except RangeError as exc:
        return [*checks, Check("format", WARNING, f"Inspection stopped: {exc}.")], None
    except (ValueError, struct.error) as exc:
        return [*checks, Check("format", WARNING, f"Unreadable image structures: {exc}.")], None


def image_checks(analysis: ImageAnalysis, declared: str | None, os: str = "byoi") -> list[Check]:
    """Checks that depend on the image alone: format, qcow2 safety, partition table, GPT,
    and for BYOLinux (`os="byolinux"`) qcow2 only with one Linux root partition."""
    checks = [_format_check(analysis, declared, os)]
    if analysis.format not in DEPLOYABLE:
        return checks
    if analysis.format == "qcow2":
        checks.append(_qcow2_check(analysis))
    table = analysis.table
    if table is None:
        if analysis.unreadable:
            checks.append(
                Check(
                    "partition_table",
                    WARNING,
                    f"Could not read the partition table: {analysis.unreadable}. "
                    "The EFI partition and GPT checks were skipped.",
                )
            )
        return checks
    if table.kind is None:
        checks.append(
            Check(
                "partition_table",
                BLOCKING,
                "No partition table (MBR or GPT) was found in the image: the installer refuses "
                "it ('no partition table was found'). Build the image from a partitioned disk "
                "(e.g. `sgdisk -n1:0:+512M -t1:EF00 -n2:0:0` before installing the OS).",
            )
        )
        return checks
    esp = "an EFI System Partition" if table.has_esp else "no EFI System Partition"
    count = len(table.partitions)
    checks.append(
        Check("partition_table", OK, f"{table.kind.upper()} with {count} partition(s), {esp}.")
    )
    checks += _gpt_checks(table)
    if os == "byolinux":
        checks.append(byolinux_root_check(table))
    return checks


def byolinux_root_check(table: PartitionTable) -> Check:
    """BYOLinux installs one Linux root partition (ext4, XFS or Btrfs): exactly one Linux
    data partition besides the ESP, BIOS boot and swap partitions."""
    roots = [p for p in table.partitions if p.type.upper() in LINUX_ROOT_TYPES]
    others = [p for p in table.partitions if p.type.upper() in LINUX_CONTAINER_TYPES]
    if len(roots) == 1 and not others:
        return Check(
            "byolinux_root",
            OK,
            f"One Linux partition (#{roots[0].number}) for BYOLinux's root file system.",
        )
    if not roots:
        found = " (only LVM or RAID members)" if others else ""
        return Check(
            "byolinux_root",
            BLOCKING,
            f"BYOLinux needs one Linux root partition (ext4, XFS or Btrfs) and none was "
            f"found{found}. Build the image with a plain root partition, or deploy it with "
            "os=byoi.",
        )
    numbers = ", ".join(f"#{p.number}" for p in [*roots, *others])
    return Check(
        "byolinux_root",
        WARNING,
        f"BYOLinux expects one Linux root partition; this image has {len(roots) + len(others)}"
        f" Linux partitions ({numbers}), and OVHcloud's installer may pick the wrong one or "
        "refuse it. Keep one root partition, or deploy it with os=byoi.",
    )


def _gpt_checks(table) -> list[Check]:
    if table.problem and table.backup_intact:
        return [
            Check(
                "gpt",
                WARNING,
                f"The primary GPT is damaged ({table.problem}) but the backup GPT at the end "
                "of the image is intact: the installer's `sgdisk -e` restores the table from "
                "it. Repair the image anyway (`sgdisk -e image.raw`, then `sgdisk -v`).",
            )
        ]
    if table.problem and "truncated" in table.problem:
        return [
            Check(
                "gpt",
                BLOCKING,
                f"The image is cut short: {table.problem}. Upload the complete image "
                "(compare its size with the original).",
            )
        ]
    if table.problem:
        backup = (
            "its backup GPT is damaged too"
            if table.backup_intact is False
            else "no intact backup GPT was found"
        )
        return [
            Check(
                "gpt",
                BLOCKING,
                f"The GPT is damaged: {table.problem}, and {backup}: the installer's "
                "`sgdisk -e` cannot restore the partitions and the server would not boot. "
                "Rebuild the image, or repair it with `sgdisk -v` / `gdisk` and upload it again.",
            )
        ]
    return [Check("gpt", OK, note[0].upper() + note[1:] + ".") for note in table.notes]


def server_image_checks(
    analysis: ImageAnalysis | None,
    download_size: int | None,
    spec: DeploySpec,
    server: ServerFacts | None,
) -> list[Check]:
    """Checks of the image against the server: RAM, target disk, boot mode, ESP, CPU
    architecture and sector size."""
    if server is None:
        return []
    checks = [_ram_check(download_size, server)]
    checks += _disk_checks(analysis, spec, server)
    checks += _boot_checks(analysis, spec, server)
    checks += hardware_checks(analysis, spec, server)
    return checks


def _format_check(analysis: ImageAnalysis, declared: str | None, os: str) -> Check:
    real = analysis.format
    if os == "byolinux" and real == "raw":
        return Check(
            "format",
            BLOCKING,
            "The image is raw, and BYOLinux takes qcow2 only. Convert it: "
            "`qemu-img convert -O qcow2 image.raw image.qcow2` (or deploy it with os=byoi "
            "type=raw).",
        )
    if real in DEPLOYABLE:
        if not declared or declared == real:
            suffix = " as declared." if declared else "."
            return Check("format", OK, f"The image is {real}{suffix}")
        return Check(
            "format",
            BLOCKING,
            f"The image is {real} but was declared {declared}: the installer would refuse it "
            f"('image provided format is {real} which does not match expected {declared} "
            f"format'). Set type={real}.",
        )
    if real in ARCHIVES:
        why = (
            f"an archive ({real}), not a disk image. Unpack it and serve the .qcow2 or .img inside"
        )
    elif real in ("iso9660", "udf"):
        kind = "an ISO 9660" if real == "iso9660" else "a UDF"
        hybrid = (
            f" (a hybrid one: it also carries an {analysis.hybrid_of.upper()} partition table, "
            "as distribution installer ISOs do, but it is an installer, not an installed disk)"
            if analysis.hybrid_of
            else ""
        )
        why = (
            f"{kind} (CD/DVD) image{hybrid}; BYOI writes a disk image, it does not run "
            "installers. Install the OS into a disk image (qcow2 or raw) and serve that"
        )
    elif real == "luks":
        why = (
            "a LUKS-encrypted container; the installer has no key. Deploy an unencrypted "
            "image (encrypt the disk from inside the OS instead)"
        )
    elif real == "empty":
        why = "empty (0 bytes). Check the URL and the upload"
    else:
        name = FORMAT_NAMES.get(real, real.upper())
        why = (
            f"a {name} disk image; the installer takes only qcow2 or raw. Convert it: "
            f"`qemu-img convert -O qcow2 image.{real} image.qcow2`"
        )
    return Check("format", BLOCKING, f"The image is {why}.")


def _qcow2_check(analysis: ImageAnalysis) -> Check:
    if analysis.qcow2_problems:
        text = "; ".join(analysis.qcow2_problems)
        return Check("qcow2", BLOCKING, f"This qcow2 cannot be deployed: {text}.")
    header = analysis.qcow2
    assert header is not None
    notes = []
    if header.incompatible_features & 1:
        notes.append("it is marked dirty (not cleanly closed): run `qemu-img check -r all`")
    if header.extended_l2:
        notes.append("it uses extended L2 entries, which need qemu ≥ 5.2 on the installer")
    if header.compression_type:
        notes.append("it uses zstd compression, which needs qemu ≥ 5.1 with zstd on the installer")
    if notes:
        return Check(
            "qcow2",
            WARNING,
            "; ".join(notes) + ". To be safe, rebuild it with `qemu-img convert -O qcow2`.",
        )
    return Check(
        "qcow2",
        OK,
        f"qcow2 v{header.version}: no backing file, no external data file, not encrypted.",
    )


def _ram_check(size: int | None, server: ServerFacts) -> Check:
    limit = server.ram_bytes - RAM_RESERVE
    if size is None:
        return Check(
            "download_size",
            WARNING,
            "The image's download size is unknown (no Content-Range or Content-Length); "
            f"it must be smaller than {format_size(limit)} (RAM − 3 GiB) on {server.name}.",
        )
    if size >= limit:
        return Check(
            "download_size",
            BLOCKING,
            f"The image is {format_size(size)}; {server.name} downloads it into RAM and can "
            f"take at most {format_size(limit)} (RAM {format_size(server.ram_bytes)} − 3 GiB). "
            "Shrink it (qcow2 with `qemu-img convert -c`, or fewer unused blocks).",
        )
    return Check(
        "download_size",
        OK,
        f"Download {format_size(size)} fits in RAM − 3 GiB ({format_size(limit)}).",
    )


def _disk_checks(
    analysis: ImageAnalysis | None, spec: DeploySpec, server: ServerFacts
) -> list[Check]:
    group = server.disk_group(spec.disk_group)
    if group is None:
        if spec.disk_group is None:
            return [Check("disk_size", WARNING, f"{server.name} reports no disk group.")]
        ids = ", ".join(str(g.id) for g in server.disk_groups) or "none"
        return [
            Check(
                "disk_size",
                BLOCKING,
                f"{server.name} has no disk group {spec.disk_group} (groups: {ids}). "
                "Set disk-group= to one of them.",
            )
        ]
    disk = group.disk_size_bytes
    checks = []
    virtual = analysis.virtual_size if analysis else None
    where = f"the first disk of disk group {group.id} ({format_size(disk)})"
    if virtual is None:
        checks.append(Check("disk_size", WARNING, f"Virtual size unknown; {where} not compared."))
    elif virtual > disk:
        checks.append(
            Check(
                "disk_size",
                BLOCKING,
                f"The image's virtual size {format_size(virtual)} is larger than {where}: "
                "the installer would refuse it ('larger than device'). Choose a disk group "
                "with larger disks (disk-group=<id>) or shrink the image.",
            )
        )
    else:
        checks.append(
            Check("disk_size", OK, f"Virtual size {format_size(virtual)} fits on {where}.")
        )
    table = analysis.table if analysis else None
    end = table.partitions_end if table and table.kind == "gpt" else None
    if end and end > disk:
        built_for = f"the GPT was built for a {format_size(table.gpt_disk_size)} disk and "
        checks.append(
            Check(
                "gpt",
                BLOCKING,
                f"The image's last partition ends at {format_size(end)}, past the end of "
                f"{where}: {built_for}the installer's `sgdisk -e` cannot fit the partitions "
                "on this disk ('Can not move backup GPT data structures'). Choose a disk "
                "group with larger disks, or shrink the last partition.",
            )
        )
    return checks


def _boot_checks(
    analysis: ImageAnalysis | None, spec: DeploySpec, server: ServerFacts
) -> list[Check]:
    if server.boot_mode not in UEFI_MODES:
        return []
    checks = []
    table = analysis.table if analysis else None
    if table is None or table.kind is None or table.gpt_header_crc_ok is False:
        checks.append(
            Check(
                "esp",
                WARNING,
                f"{server.name} boots UEFI but the image's partitions could not be checked "
                "for an EFI System Partition.",
            )
        )
    elif not table.has_esp:
        severity = BLOCKING if server.boot_mode == "uefi" else WARNING
        fallback = "" if severity is BLOCKING else " (it may fall back to legacy boot)"
        checks.append(
            Check(
                "esp",
                severity,
                f"{server.name} boots {server.boot_mode} but the image has no EFI System "
                f"Partition, so it cannot boot{fallback}. Add one (GPT type EF00 / MBR type "
                "0xEF, FAT32, with the bootloader in it) and rebuild the image.",
            )
        )
    else:
        checks.append(Check("esp", OK, "The image has an EFI System Partition for UEFI boot."))
    if spec.efi_bootloader or server.efi_bootloader_path:
        return checks
    esp = analysis.esp if analysis else None
    found = esp.choose(server.architecture) if esp else None
    if found:
        checks.append(
            Check(
                "efi_bootloader",
                OK,
                f"No efi-bootloader= given: the image's ESP holds {found}, the default "
                "EFI bootloader path.",
            )
        )
    elif not (esp and esp.bootloaders):  # loaders for another CPU: `architecture` says so
        why = (
            f"the image's ESP could not be searched ({analysis.esp_unreadable})"
            if analysis and analysis.esp_unreadable and not esp
            else "none was found in the image's ESP"
        )
        checks.append(
            Check(
                "efi_bootloader",
                WARNING,
                f"{server.name} boots UEFI, no EFI bootloader path is set and {why}: give "
                f"efi-bootloader= (e.g. {example_paths(server.architecture)}).",
            )
        )
    return checks


def efi_bootloader_checks(
    analysis: ImageAnalysis, spec: DeploySpec, server: ServerFacts | None = None
) -> list[Check]:
    """A given efi-bootloader= against the bootloaders found in the image's ESP."""
    esp, given = analysis.esp, spec.efi_bootloader
    if not given or esp is None:
        return []
    if esp.holds(given):
        return [Check("efi_bootloader", OK, f"efi-bootloader= {given} is in the image's ESP.")]
    held = ", ".join(esp.bootloaders) or "no bootloader under \\EFI"
    if esp.unlisted:
        return [
            Check(
                "efi_bootloader",
                WARNING,
                f"efi-bootloader= {given} was not found in the part of the image's EFI System "
                f"Partition listed ({esp.unlisted_note}), which holds {held}: check that the "
                "path is right.",
            )
        ]
    chosen = esp.choose(server.architecture if server else "")
    advice = f"set efi-bootloader={chosen}" if chosen else "check the image's ESP"
    return [
        Check(
            "efi_bootloader",
            WARNING,
            f"efi-bootloader= {given} is not in the image's EFI System Partition "
            f"({esp.filesystem}), which holds {held}: the server would not find its "
            f"bootloader. {advice[0].upper() + advice[1:]}.",
        )
    ]

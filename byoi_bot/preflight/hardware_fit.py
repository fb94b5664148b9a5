"""Will this image boot on this server's hardware? Its EFI loaders against the server's CPU
architecture, and its GPT's sector size against the server's disks."""

from __future__ import annotations

from ..core.checks import Check, Severity
from ..core.ports import ServerFacts
from ..core.request import DeploySpec
from .esp import architecture_of, needed_example, runs_on
from .formats import ImageAnalysis

OK, WARNING, BLOCKING = Severity.OK, Severity.WARNING, Severity.BLOCKING
UEFI_MODES = ("uefi", "uefi-legacy")
NAMED = 4  # loaders named in a refusal; a card shows 400 characters of a check
SECTOR_NAMES = {512: "512-byte sectors", 4096: "4096-byte sectors (4Kn)"}


def hardware_checks(
    analysis: ImageAnalysis | None, spec: DeploySpec, server: ServerFacts
) -> list[Check]:
    """The `architecture` and `sector_size` checks (none when there is nothing to compare)."""
    return _architecture_checks(analysis, spec, server) + _sector_checks(analysis, spec, server)


def _architecture_checks(
    analysis: ImageAnalysis | None, spec: DeploySpec, server: ServerFacts
) -> list[Check]:
    arch, needs = server.architecture, needed_example(server.architecture)
    if needs is None:
        return []  # unknown (or without UEFI loaders, like ppc64): nothing to compare
    checks = []
    given = spec.efi_bootloader
    if given and runs_on(given, arch) is False:
        better = analysis.esp.choose(arch) if analysis and analysis.esp else None
        checks.append(
            Check(
                "architecture",
                BLOCKING,
                f"efi-bootloader= {given} is an {architecture_of(given)} loader (by its name); "
                f"{server.name} is {arch} and needs one for {arch}, e.g. {better or needs}.",
            )
        )
    esp = analysis.esp if analysis else None
    if esp is None or not esp.bootloaders:
        return checks
    chosen = esp.choose(arch)
    if chosen:
        checks.append(
            Check("architecture", OK, f"{server.name} is {arch}; the image's ESP holds {chosen}.")
        )
        return checks
    held = ", ".join(f"{p} ({architecture_of(p)})" for p in esp.bootloaders[:NAMED])
    if len(esp.bootloaders) > NAMED:
        held += f" and {len(esp.bootloaders) - NAMED} more"
    only = "only " if len(esp.bootloaders) == 1 else "only loaders for another architecture: "
    unlisted = f" ({esp.unlisted_note})" if esp.unlisted else ""
    uefi = server.boot_mode in UEFI_MODES
    severity = BLOCKING if uefi and not esp.unlisted else WARNING
    checks.append(
        Check(
            "architecture",
            severity,
            f"The image's ESP holds {only}{held}{unlisted}; server {server.name} is {arch} "
            f"and needs e.g. {needs}: the image is built for another CPU and will not boot "
            f"there. Deploy the image built for {arch}.",
        )
    )
    return checks


def _sector_checks(
    analysis: ImageAnalysis | None, spec: DeploySpec, server: ServerFacts
) -> list[Check]:
    table = analysis.table if analysis else None
    if table is None or table.kind != "gpt" or not table.gpt_header_crc_ok:
        return []
    group = server.disk_group(spec.disk_group)
    image, disk = table.sector_size, group.sector_size if group else None
    if image == disk:
        return [Check("sector_size", OK, f"The GPT and the disks both use {image}-byte sectors.")]
    if disk is None and image == 512:
        return []  # the common case: 512-byte logical sectors (512n and 512e disks)
    if disk is None:
        disks = f"{server.name}'s disks"
        if group:
            disks += f" (disk group {group.id}: {group.description or group.disk_type})"
        return [
            Check(
                "sector_size",
                WARNING,
                f"The image's GPT is laid out for {SECTOR_NAMES.get(image, image)}: on a "
                f"512-byte-sector disk this image has no partition table: it will not boot. "
                f"OVHcloud does not say the sector size of {disks}; deploy an image built for "
                "512-byte sectors unless they are 4Kn (check in rescue mode: "
                "`lsblk -o NAME,LOG-SEC`).",
            )
        ]
    return [
        Check(
            "sector_size",
            BLOCKING,
            f"The image's GPT is laid out for {SECTOR_NAMES.get(image, image)} and the disks "
            f"of disk group {group.id} of {server.name} have {disk}-byte sectors: on a "
            f"{disk}-byte-sector disk this image has no partition table: it will not boot. "
            f"Rebuild the image for {disk}-byte sectors (e.g. partition it with "
            f"`sfdisk --sector-size {disk}`).",
        )
    ]

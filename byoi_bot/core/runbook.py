"""The runbook posted when a server did not come back after its install (the boot gate).

Three parts, from what the bot knows of the request: what is known (image, the loader path
sent, the boot mode), the likely causes for that image, and the exact steps to look (the
KVM/IPMI console, rescue mode via `bootId` + `reboot`, with the API calls, and back).
"""

from __future__ import annotations

from .boot_gate import Gate
from .request import Request
from .text import duration, esc, truncate


def runbook(request: Request, gate: Gate) -> str:
    """The whole runbook, Slack mrkdwn; server-sent and user-typed text is escaped."""
    return "\n".join([*_known(request, gate), *_causes(request), *_steps(request)])


def _known(request: Request, gate: Gate) -> list[str]:
    spec, server = request.spec, request.server_facts or {}
    image = request.image_facts or {}
    catalog = (image.get("catalog") or {}).get("image")
    shown = f"`{esc(catalog)}` ({esc(spec.display_url)})" if catalog else esc(spec.display_url)
    loader = "none: the installer makes the image bootable (os=byolinux)"
    if spec.os == "byoi":
        where = {"given": "given in the request", "image": "found in the image's ESP"}
        loader = f"`{esc(spec.efi_bootloader or '?')}` ({where.get(spec.efi_source or '', '?')})"
    found = image.get("efi_bootloaders")
    waited = duration(gate.deadline - gate.opened_at) if gate.deadline and gate.opened_at else "?"
    lines = [
        "*What is known*",
        f"• Image: {shown}, {esc(spec.image_type)}, os={esc(spec.os)}",
        f"• Loader path sent (`efiBootloaderPath`): {loader}",
        f"• Server boot mode: {esc(server.get('boot_mode') or 'unknown')}",
        f"• Probed: SSH on `{esc(gate.ip or '?')}:{gate.ssh_port}`"
        + (f" and {esc(gate.health_url)}" if gate.health_url else "")
        + f", {gate.probes} times over {waited}; last: {esc(truncate(gate.last, 300))}",
    ]
    if found:
        loaders = ", ".join(f"`{esc(p)}`" for p in found[:8])
        lines.append(f"• EFI loaders in the image: {loaders}")
    return lines


def _causes(request: Request) -> list[str]:
    spec, server = request.spec, request.server_facts or {}
    groups = server.get("disk_groups") or []
    lines = ["*Likely causes*"]
    if spec.os == "byoi":
        lines.append(
            "• The firmware did not find the loader: the path sent is not in the image's ESP, is "
            "for another CPU architecture, or needs Secure Boot keys the server lacks."
        )
    if (server.get("boot_mode") or "").startswith("legacy"):
        lines.append(
            "• The server boots in legacy (BIOS) mode: the image needs a BIOS boot loader "
            "(GRUB in the MBR or a BIOS boot partition), not only an ESP."
        )
    lines.append(
        "• The image has no cloud-init, or it does not read the config drive (datasource "
        "ConfigDrive): the system is up but without network or SSH key, so nothing answers."
    )
    disks = sum(int(g.get("number_of_disks") or 1) for g in groups)
    if len(groups) > 1 or disks > 1:
        lines.append(
            f"• Secondary disks ({disks} disks, {len(groups)} group(s)): an old system or "
            "leftover RAID members on another disk may boot first or stop the boot waiting "
            "for a RAID to assemble."
        )
    lines.append("• A firewall in the image (or SSH on another port) hides a running system.")
    return lines


def _steps(request: Request) -> list[str]:
    sn = esc(request.spec.server)
    base = f"/dedicated/server/{sn}"
    return [
        "*How to look*",
        f"1. The console: Control Panel → {sn} → IPMI/KVM, or "
        f'`POST {base}/features/ipmi/access {{"type": "kvmipHtml5URL", "ttl": 15}}`, then '
        f"`GET {base}/features/ipmi/access?type=kvmipHtml5URL` for its URL.",
        f"2. Rescue mode: `GET {base}/boot?bootType=rescue` (a `bootId` N), "
        f'`PUT {base} {{"bootId": N}}`, `POST {base}/reboot`; log in with the rescue '
        "credentials OVHcloud sends, then `lsblk -f`, mount the ESP and the root file system, "
        "check the loader path and `/etc/cloud`, and read the installed system's logs.",
        f"3. Back to the disk: `GET {base}/boot?bootType=harddisk` (N), `PUT {base} "
        f'{{"bootId": N}}`, `POST {base}/reboot`.',
    ]

"""What will be sent to OVHcloud, decided once when a request is created, and shown as sent.

`resolve` fixes the API generation, the EFI bootloader path and the disk groups kept of a
spec and refuses what the chosen API, operating system and server cannot carry (never
dropping it silently); `sent_fields` lists every field of the body the provider will send,
secret values masked, for the card; `disk_plan` says which disk groups are erased and which
kept. A test keeps `sent_fields` equal to the provider's real bodies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import replace

from .ports import DiskGroup, ServerFacts
from .request import HIDDEN, OPERATING_SYSTEMS, DeploySpec
from .text import esc, truncate

# Fewest disks each hardware RAID level needs (RAID 50/60: two RAID 5/6 arrays).
RAID_MIN_DISKS = {0: 2, 1: 2, 5: 3, 6: 4, 10: 4, 50: 6, 60: 8}
EFI_HELP = (
    "List the image's EFI System Partition (e.g. `guestfish --ro -a image.qcow2 -m /dev/sda1 "
    "find /EFI`, or mount it) and pass the bootloader's path with backslashes, e.g. "
    "`efi-bootloader=\\EFI\\debian\\shimx64.efi` (a distribution's shimx64.efi or grubx64.efi, "
    "else `\\EFI\\BOOT\\BOOTX64.EFI`)."
)


def resolve(
    spec: DeploySpec,
    api: str,
    image_facts: dict,
    server: ServerFacts | None,
    keep_default: tuple[int, ...] = (),
) -> tuple[DeploySpec, list[str]]:
    """`spec` with its API, EFI path and kept disk groups fixed, and the reasons it cannot be
    sent (if any). `keep_default` (the policy's) applies when the spec says nothing."""
    keep = keep_default if spec.keep_disks is None else spec.keep_disks
    spec = replace(spec, api=api, keep_disks=tuple(keep))
    problems = _api_problems(spec) + _raid_problems(spec, server)
    if spec.keep_disks and api == "reinstall":
        spec, kept = _keep_problems(spec, server)
        problems += kept
    if api == "reinstall" and spec.os == "byoi":
        if spec.efi_bootloader:
            spec = replace(spec, efi_source="given")
        elif image_facts.get("efi_bootloader"):
            found = str(image_facts["efi_bootloader"])
            spec = replace(spec, efi_bootloader=found, efi_source="image")
        else:
            problems.append(
                "OVHcloud needs the path of the image's EFI bootloader (`efiBootloaderPath`) "
                "for a BYOI deploy, and byoi-bot found none in the image. " + EFI_HELP
            )
    return spec, problems


def _api_problems(spec: DeploySpec) -> list[str]:
    drive = _config_drive_options(spec)
    off = []
    if spec.config_drive is False and drive:
        why = (
            "the legacy API carries them only inside a config drive"
            if spec.api == "legacy"
            else "the reinstall API always writes those into a config drive"
        )
        off = [
            "`config-drive=off` cannot be honoured with "
            + ", ".join(f"`{name}=`" for name in drive)
            + f": {why}. Leave out `config-drive=off`, or those options."
        ]
    if spec.api == "legacy":
        refused = [
            ("`os=byolinux`", spec.os == "byolinux"),
            ("`efi-bootloader=`", bool(spec.efi_bootloader)),
            ("`raid=`", spec.raid is not None),
            ("`keep-disks=`", bool(spec.keep_disks)),
        ]
        return [
            f"{what} cannot be sent: this server's policy uses the legacy /bringYourOwnImage "
            "API, which has no such field. Leave it out, or ask for the policy to use the "
            "reinstall API."
            for what, given in refused
            if given
        ] + off
    return off


def _config_drive_options(spec: DeploySpec) -> list[str]:
    given = {
        "hostname": spec.hostname,
        "ssh-key": spec.ssh_key,
        "user data": spec.user_data,
        "metadata": spec.metadata,
    }
    return [name for name, value in given.items() if value]


def _raid_problems(spec: DeploySpec, server: ServerFacts | None) -> list[str]:
    if spec.raid is None or server is None:
        return []
    group = server.disk_group(spec.disk_group or None)
    if group is None:
        return []
    if not group.raid_controller:
        return [
            f"`raid={spec.raid}` cannot be used: disk group {group.id} of {server.name} has no "
            "hardware RAID controller. Leave out `raid=` (software RAID belongs in the image), "
            "or choose a disk group with a controller."
        ]
    needed = RAID_MIN_DISKS.get(spec.raid, 2)
    if group.number_of_disks < needed:
        return [
            f"`raid={spec.raid}` needs at least {needed} disks; disk group {group.id} of "
            f"{server.name} has {group.number_of_disks}."
        ]
    return []


def _keep_problems(spec: DeploySpec, server: ServerFacts | None) -> tuple[DeploySpec, list[str]]:
    """The rules of OVHcloud's partitioning guide for kept disk groups; the spec then names
    the OS disk group itself (the first one when not given), so that OVHcloud never chooses
    one that is kept."""
    keep = spec.keep_disks or ()
    twice = sorted({g for g in keep if keep.count(g) > 1})
    if twice:
        return spec, [
            f"`keep-disks=` lists disk group {twice[0]} more than once; OVHcloud takes one "
            "entry per disk group. List each group once, e.g. `keep-disks=2,3`."
        ]
    if server is None or not server.disk_groups:
        return spec, [
            "`keep-disks=` needs the server's disk groups, and they could not be read; "
            "try again when the server answers."
        ]
    ids = ", ".join(str(g.id) for g in server.disk_groups)
    unknown = [g for g in keep if server.disk_group(g) is None]
    if unknown:
        return spec, [
            f"{server.name} has no disk group {unknown[0]} (its groups: {ids}); "
            "`keep-disks=` takes the ids of the groups to leave untouched."
        ]
    os_group = server.disk_group(spec.disk_group or None)
    if os_group is None:  # an unknown disk-group= is refused by preflight already
        return spec, []
    spec = replace(spec, disk_group=os_group.id)
    if os_group.id in keep:
        others = [g.id for g in server.disk_groups if g.id not in keep]
        hint = (
            f"put the OS on another group with `disk-group={others[0]}`"
            if others
            else "leave one group out of `keep-disks=` for the OS"
        )
        return spec, [
            f"disk group {os_group.id} receives the operating system, so it cannot be kept: "
            f"OVHcloud erases the disk group it installs on. Either {hint}, or leave "
            f"{os_group.id} out of `keep-disks=`."
        ]
    return spec, []


def disk_plan(spec: DeploySpec, server_facts: dict | None) -> str | None:
    """What the deploy erases and keeps, e.g. "ERASES disk group 1 (2× 480 GB SSD); KEEPS
    disk group 2 (4× 8 TB HDD)"; None when nothing is kept (every disk is erased)."""
    if not spec.keep_disks:
        return None
    groups = {g["id"]: DiskGroup(**g) for g in (server_facts or {}).get("disk_groups") or []}
    erased = [g for i, g in groups.items() if i not in spec.keep_disks] if groups else []
    erased_text = "; ".join(_group(g) for g in erased) or f"disk group {spec.disk_group}"
    kept = "; ".join(_group(groups[i]) if i in groups else f"disk group {i}"
                     for i in spec.keep_disks)  # fmt: skip
    return f"ERASES {erased_text}; KEEPS {kept}"


def _group(group: DiskGroup) -> str:
    disks = f"{group.number_of_disks}× {disk_size(group.disk_size_bytes)} {group.disk_type}"
    return f"disk group {group.id} ({esc(disks.rstrip())})"


def disk_size(num_bytes: int) -> str:
    """A disk's size in its maker's decimal units, as OVHcloud lists it: ``480 GB``, ``8 TB``."""
    if num_bytes >= 10**12 and num_bytes % 10**11 == 0:
        return f"{num_bytes / 10**12:g} TB"
    return f"{num_bytes / 10**9:g} GB"


def sent_fields(spec: DeploySpec) -> list[tuple[str, str]]:
    """(field path in the body, value as shown) for every field the provider sends."""
    if spec.api == "legacy":
        return _legacy_fields(spec)
    return _reinstall_fields(spec)


def _reinstall_fields(spec: DeploySpec) -> list[tuple[str, str]]:
    custom = "customizations."
    fields = [("operatingSystem", OPERATING_SYSTEMS[spec.os])]
    fields.append((custom + "imageURL", spec.display_url))
    if spec.os == "byoi":
        fields.append((custom + "imageType", spec.image_type))
    fields += _checksum(spec, custom + "imageCheckSum", custom + "imageCheckSumType")
    if spec.headers:
        fields.append((custom + "httpHeaders", _header_names(spec)))
    if spec.os == "byoi" and spec.efi_bootloader:
        where = {"given": "given", "image": "found in the image"}.get(spec.efi_source or "")
        shown = esc(spec.efi_bootloader) + (f" ({where})" if where else "")
        fields.append((custom + "efiBootloaderPath", shown))
    fields += _drive(spec, custom, "hostname", "sshKey", "configDriveUserData")
    if spec.metadata:
        fields.append((custom + "configDriveMetadata", _metadata(spec)))
    if spec.disk_group is not None or spec.raid is not None:
        group = spec.disk_group or 0
        fields.append(
            ("storage[0].diskGroupId", f"{group}" + (" (automatic)" if not group else ""))
        )
    if spec.raid is not None:
        fields.append(("storage[0].hardwareRaid[0].raidLevel", str(spec.raid)))
    for n, group in enumerate(spec.keep_disks or (), 1):
        fields += [(f"storage[{n}].diskGroupId", str(group)), (f"storage[{n}].erase", "false")]
    return fields


def _legacy_fields(spec: DeploySpec) -> list[tuple[str, str]]:
    fields = [("URL", spec.display_url), ("type", spec.image_type)]
    fields += _checksum(spec, "checkSum", "checkSumType")
    drive = _drive(spec, "configdrive.", "hostname", "sshKey", "userData")
    if spec.metadata:
        drive.append(("configdrive.userMetadatas", _metadata(spec)))
    if spec.config_drive or (spec.config_drive is None and drive):
        fields += [("configdrive.enable", "true"), *drive]
    if spec.description:
        fields.append(("description", esc(spec.description)))
    if spec.disk_group:
        fields.append(("diskGroupId", str(spec.disk_group)))
    if spec.headers:
        fields.append(("httpHeader", _header_names(spec)))
    return fields


def _checksum(spec: DeploySpec, value: str, kind: str) -> list[tuple[str, str]]:
    if not spec.checksum:
        return []
    return [(value, spec.checksum.value[:12] + "…"), (kind, spec.checksum.type)]


def _drive(spec: DeploySpec, prefix: str, host: str, key: str, data: str) -> list[tuple[str, str]]:
    fields = []
    if spec.hostname:
        fields.append((prefix + host, esc(spec.hostname)))
    if spec.ssh_key:
        fields.append((prefix + key, ssh_key_shown(spec.ssh_key)))
    if spec.user_data:
        fields.append((prefix + data, HIDDEN))
    return fields


def ssh_key_shown(key: str) -> str:
    """A public key as `ssh-keygen -l` names it: type, SHA256 fingerprint, comment.

    >>> ssh_key_shown("ssh-ed25519 AAAA alice@laptop")
    'ssh-ed25519 SHA256:cJ6AyISHokEeHuTfufIqhhSS0gxHZRUMDHlKvXD4FHw alice@laptop'
    """
    kind, _, rest = key.partition(" ")
    blob, _, comment = rest.partition(" ")
    try:
        digest = hashlib.sha256(base64.b64decode(blob, validate=True)).digest()
    except (binascii.Error, ValueError):
        return f"{esc(kind)} (not a valid key: its base64 part does not decode)"
    shown = "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
    return " ".join(p for p in (esc(kind), shown, truncate(esc(comment), 60)) if p)


def _header_names(spec: DeploySpec) -> str:
    return ", ".join(f"{esc(name)}: {HIDDEN}" for name, _ in spec.headers)


def _metadata(spec: DeploySpec) -> str:
    return ", ".join(f"{esc(k)}={esc(v)}" for k, v in spec.metadata)

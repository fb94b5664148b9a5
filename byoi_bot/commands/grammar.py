"""The grammar as data: the sub-commands and the deploy options, read by the parser and the help."""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

from ..core.request import CHECKSUM_LENGTHS, IMAGE_TYPES, OPERATING_SYSTEMS, RAID_LEVELS

EXAMPLE_SERVER = "ns1.example.net"
EXAMPLE_URL = "https://images.example.net/debian-12.qcow2"
EXAMPLE_ID = "r-7kq2mx"
EXAMPLE_IMAGE = "debian-12"
MAX_TEXT = 8000  # Slack sends at most 4000; the form may add more
SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


def _example_ssh_key() -> str:
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + bytes(range(32))
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} alice@laptop"


@dataclass(frozen=True)
class Option:
    """One ``key=value`` option of ``/byoi deploy``.

    `field` is the `DeploySpec` attribute it sets (several keys may set one field: a
    checksum is given once, by ``checksum=`` or by ``sha256=``…); `positional` options may
    also be given without their key; `example` is a ``key=value`` that parses.
    """

    name: str
    field: str
    value_syntax: str
    help: str
    example: str
    aliases: tuple[str, ...] = ()
    repeatable: bool = False
    positional: bool = False

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key that selects this option: its name, then its aliases."""
        return (self.name, *self.aliases)

    def example_command(self) -> str:
        """A complete, valid ``/byoi deploy`` command showing this option."""
        if self.field == "server":
            return f"/byoi deploy {self.example} {EXAMPLE_URL}"
        if self.field in ("image_url", "image"):
            return f"/byoi deploy {EXAMPLE_SERVER} {self.example}"
        if self.field == "fleet_pattern":
            return f"/byoi deploy {self.example} {EXAMPLE_URL}"
        if self.field.startswith("fleet_"):
            return f"/byoi deploy ns1.example.net,ns2.example.net {EXAMPLE_URL} {self.example}"
        return f"/byoi deploy {EXAMPLE_SERVER} {EXAMPLE_URL} {self.example}"


@dataclass(frozen=True)
class SubCommand:
    """One sub-command of ``/byoi``: its argument syntax, what it does, an example."""

    name: str
    args: str
    help: str
    example: str

    @property
    def usage(self) -> str:
        """``/byoi <name> <args>``."""
        return f"/byoi {self.name} {self.args}".rstrip()


SUBCOMMANDS: tuple[SubCommand, ...] = (
    SubCommand(
        "deploy",
        "<server> <image-url>|<image> [key=value…]",
        "request a deployment (erases the server) of an image URL or of a catalog image; "
        "with no arguments, opens a form",
        f"/byoi deploy {EXAMPLE_SERVER} {EXAMPLE_URL}",
    ),
    SubCommand(
        "images",
        "",
        "the image catalog: names to deploy by, with their checksum source",
        "/byoi images",
    ),
    SubCommand(
        "status",
        "[<server>|<id>|all]",
        "state of one deployment, or of those active here (all: in every channel)",
        f"/byoi status {EXAMPLE_SERVER}",
    ),
    SubCommand(
        "list",
        "[all [page <n>]]",
        "active requests here (all: every channel's history, by pages)",
        "/byoi list",
    ),
    SubCommand(
        "cancel",
        "<id>",
        "withdraw a pending request; on a running deploy, needs approval too",
        f"/byoi cancel {EXAMPLE_ID}",
    ),
    SubCommand(
        "history",
        "<server>",
        "past deployments of one server",
        f"/byoi history {EXAMPLE_SERVER}",
    ),
    SubCommand(
        "freeze",
        '<from> <to> "<reason>" [policy=<name>…]',
        "hold every deployment (or one policy's) from starting between two times, e.g. "
        "`now` or `2026-12-20` or `2026-12-20T18:00+01:00` (freeze admins only)",
        '/byoi freeze now 2027-01-04 "year-end change freeze"',
    ),
    SubCommand(
        "unfreeze",
        "<freeze-id>",
        "lift a freeze now (freeze admins only)",
        "/byoi unfreeze fz-3k9q2m",
    ),
    SubCommand("freezes", "", "the freezes in force or to come", "/byoi freezes"),
    SubCommand(
        "review",
        "<id>",
        "acknowledge an emergency override after the fact (an approver of its policy)",
        f"/byoi review {EXAMPLE_ID}",
    ),
    SubCommand("help", "[command]", "this help, or help on one command or option", "/byoi help"),
)

_CHECKSUM_KEYS = tuple(
    Option(
        name=kind,
        field="checksum",
        value_syntax=f"<{length} hex digits>",
        help=f"{kind} checksum of the image",
        example=f"{kind}={hashlib.new(kind, b'').hexdigest()}",
    )
    for kind, length in CHECKSUM_LENGTHS.items()
)

OPTIONS: tuple[Option, ...] = (
    Option(
        "server",
        "server",
        "<server>",
        "the dedicated server to reinstall (first positional argument)",
        f"server={EXAMPLE_SERVER}",
        positional=True,
    ),
    Option(
        "url",
        "image_url",
        "<https://…>",
        "where the image is downloaded from, http or https (second positional argument)",
        f"url={EXAMPLE_URL}",
        aliases=("image-url",),
        positional=True,
    ),
    Option(
        "servers",
        "fleet_pattern",
        '"<pattern>"',
        "deploy to every server of the account whose name matches (`*`, `?`), instead of one "
        "server; a list `ns1,ns2,ns3` in place of the server does the same",
        'servers="web-*"',
    ),
    Option(
        "parallel",
        "fleet_parallel",
        "<N>",
        "deploy to many: at most N installations at once (default 1)",
        "parallel=5",
    ),
    Option(
        "canary",
        "fleet_canary",
        "<K>",
        "deploy to many: the first K servers must be done before the others start (default 0)",
        "canary=1",
    ),
    Option(
        "stop-on-failure",
        "fleet_stop",
        "yes|no",
        "deploy to many: after a failure, start no new installation (default yes; running "
        "ones finish)",
        "stop-on-failure=no",
    ),
    Option(
        "image",
        "image",
        "<name>",
        "a catalog image (`/byoi images`) instead of a URL: its URL, checksum and defaults, "
        "which the other keys override (second positional argument)",
        f"image={EXAMPLE_IMAGE}",
        positional=True,
    ),
    Option(
        "type",
        "image_type",
        "|".join(IMAGE_TYPES),
        "image format; by default from the URL's extension (.qcow2; .img or .raw)",
        "type=qcow2",
        aliases=("image-type",),
    ),
    Option(
        "checksum",
        "checksum",
        "[<type>:]<hex>",
        "image checksum; without a type, inferred from the length ("
        + ", ".join(f"{n} {kind}" for kind, n in CHECKSUM_LENGTHS.items())
        + ")",
        f"checksum=sha256:{hashlib.sha256(b'').hexdigest()}",
    ),
    *_CHECKSUM_KEYS,
    Option(
        "os",
        "os",
        "|".join(OPERATING_SYSTEMS),
        "the operating system OVHcloud installs: byoi (byoi_64, the default: any qcow2 or raw "
        "image) or byolinux (byolinux_64, Bring Your Own Linux: qcow2 only)",
        "os=byolinux",
    ),
    Option(
        "disk-group",
        "disk_group",
        "<id>",
        "the disk group to install on (a number; 0 or none: automatic, the API's choice)",
        "disk-group=1",
    ),
    Option(
        "keep-disks",
        "keep_disks",
        "<id>,<id>…|none",
        "disk groups whose data OVHcloud leaves untouched (reinstall API; not the group that "
        "receives the OS); `none` erases every group, whatever the policy's default",
        "keep-disks=2",
    ),
    Option(
        "raid",
        "raid",
        "|".join(map(str, RAID_LEVELS)),
        "hardware RAID level on the disk group (reinstall API; the group needs a RAID "
        "controller and enough disks)",
        "raid=1",
    ),
    Option(
        "hostname",
        "hostname",
        "<name>",
        "host name of the installed system",
        "hostname=web-1",
    ),
    Option(
        "ssh-key",
        "ssh_key",
        '"<public key>"',
        "SSH public key for the installed system (the .pub file, in quotes)",
        f'ssh-key="{_example_ssh_key()}"',
    ),
    Option(
        "efi-bootloader",
        "efi_bootloader",
        "<path>",
        "path of the EFI bootloader inside the image (byoi); default: the one found in the "
        "image's EFI partition",
        r"efi-bootloader=\efi\debian\grubx64.efi",
    ),
    Option(
        "health-url",
        "health_url",
        "<https://…>",
        "the deploy is done only once this HTTPS URL answers 2xx too, asked of the installed "
        "server's own IP (its host name only names the TLS server)",
        "health-url=https://web-1.example.net/healthz",
    ),
    Option(
        "description",
        "description",
        '"<text>"',
        "why this deploy; shown on the request card",
        'description="monthly rebuild"',
    ),
    Option(
        "emergency",
        "emergency",
        '"<reason>"',
        "break-glass: start outside maintenance windows and freezes (only for the policy's "
        "`emergency_requesters`; still needs approval, reviewed afterwards)",
        'emergency="RAID controller failing, rebuild now"',
    ),
    Option(
        "header",
        "headers",
        '"Name: value"',
        "HTTP header sent when downloading the image; its value is never shown",
        'header="Authorization: Bearer s3cr3t"',
        repeatable=True,
    ),
    Option(
        "metadata",
        "metadata",
        '"key=value"',
        "config drive metadata for cloud-init (configDriveMetadata)",
        'metadata="role=web"',
        repeatable=True,
    ),
    Option(
        "config-drive",
        "config_drive",
        "on|off",
        "legacy API: attach a config drive (also yes/no, true/false); reinstall API: always "
        "one, so `off` is refused with a hostname, SSH key, user data or metadata",
        "config-drive=on",
    ),
    Option(
        "at",
        "at",
        "<ISO time>|<HH:MM>",
        "start once approved, not before this time (UTC unless a zone is given, e.g. "
        "`09:00+01:00`; HH:MM is the next such time)",
        "at=06:30",
    ),
)

BY_KEY: dict[str, Option] = {key: opt for opt in OPTIONS for key in opt.keys}
BY_NAME: dict[str, SubCommand] = {cmd.name: cmd for cmd in SUBCOMMANDS}
DEPLOY = BY_NAME["deploy"]

"""The API's error classes for the routes byoi-bot calls, by family, in plain words.

Each family: a code, the classes it covers (exact names, or a prefix ending in `*`), what
happened, the likely cause and what to do. The classes are those of the vendored schema
(`apischema/`); a test fails if any of them is left to a generic explanation.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """Error classes that call for the same advice."""

    code: str
    classes: tuple[str, ...]
    summary: str
    cause: str
    action: str

    def covers(self, api_class: str) -> bool:
        return any(
            api_class.startswith(c[:-1]) if c.endswith("*") else api_class == c
            for c in self.classes
        )


_BAD = "Client::BadRequest::"
_BUG = (
    "byoi-bot never sends this for a BYOI deploy, so the API changed or byoi-bot has a bug: "
    "report it with OVHcloud's message."
)

FAMILIES: tuple[Family, ...] = (
    Family(
        "invalid_customization",
        (_BAD + "CustomizationInvalidFormat",),
        "OVHcloud refused the value of one deploy option.",
        "The option the message names (image URL, type, checksum, header, EFI path…) has a "
        "value of the wrong form, or a mandatory one is missing.",
        "Fix the option the message names and submit a new request.",
    ),
    Family(
        "unknown_customization",
        (_BAD + "CustomizationName",),
        "OVHcloud does not take one of the options for this operating system.",
        "The option is not one the chosen OS accepts (byolinux_64, for instance, takes no "
        "image type and no EFI bootloader path).",
        "Leave that option out, or choose the other OS (`os=byoi` or `os=byolinux`).",
    ),
    Family(
        "customization_too_large",
        (_BAD + "CustomizationSizeExceeded",),
        "One deploy option is larger than OVHcloud accepts.",
        "Usually the cloud-init user data (or an SSH key list) is over the API's limit.",
        "Shorten it (e.g. let the user data fetch a bigger script) and submit a new request.",
    ),
    Family(
        "invalid_hostname",
        (_BAD + "HostnameInvalidFormat", _BAD + "HostnameSizeExceeded"),
        "OVHcloud refused the hostname.",
        "Each dot-separated part must start with a letter, end with a letter or a digit, "
        "hold only letters, digits and hyphens and be at most 63 characters (RFC 1035).",
        "Use a hostname like `web-1` or `web-1.example.net` and submit a new request.",
    ),
    Family(
        "incompatible_params",
        (_BAD + "IncompatibleParams",),
        "Two of the request's parameters cannot be used together.",
        "The message names them, e.g. a checksum without its type.",
        "Drop one of them (or give both halves of a pair) and submit a new request.",
    ),
    Family(
        "bad_property",
        (_BAD + "PropertyName",),
        "OVHcloud refused a config drive property name.",
        "A property name of the request is not one the API accepts.",
        "Rename or drop the property the message names. " + _BUG,
    ),
    Family(
        "task_already_exists",
        (_BAD + "TaskAlreadyExists",),
        "An installation task already runs on this server.",
        "Somebody (or something) started a reinstall that has not ended yet.",
        "Follow it in the control panel; once it has ended, submit a new request.",
    ),
    Family(
        "server_busy",
        ("Client::Conflict::DisturbAlreadyExists",),
        "The server is locked by another operation.",
        "Another installation, a reboot or an intervention holds the server.",
        "Wait until that operation ends (see the control panel), then try again.",
    ),
    Family(
        "bad_disk_group",
        (_BAD + "DiskGroup",),
        "OVHcloud cannot install on the chosen disk group.",
        "That disk group exists but is not installable (e.g. a storage-only group).",
        "Choose another disk group, or `disk-group=0` to let OVHcloud choose.",
    ),
    Family(
        "disk_group_not_found",
        ("Client::NotFound::DiskGroup",),
        "The server has no disk group with that id.",
        "The id does not match any disk group of this server's hardware.",
        "Pick a disk group shown on the card (or `disk-group=0`: automatic).",
    ),
    Family(
        "raid_not_supported",
        (
            "Client::Conflict::HardwareRaidIncompatibleOnController",
            "Client::Conflict::HardwareRaidIncompatibleOnDiskGroup",
            "Client::Conflict::HardwareRaidIncompatibleOnServer",
        ),
        "Hardware RAID is not available where it was asked for.",
        "The server, the disk group or its controller cannot do hardware RAID.",
        "Deploy without `raid=` (software RAID belongs in the image), or choose a disk "
        "group with a RAID controller.",
    ),
    Family(
        "raid_layout_refused",
        (
            _BAD + "HardwareRaidInvalidDisksArrays",
            _BAD + "HardwareRaidPartitioningDisks",
            "Client::Conflict::HardwareRaidTooManyDisks",
        ),
        "OVHcloud refused the hardware RAID layout.",
        "The RAID level needs more disks than the disk group has, or the disks do not "
        "split evenly into arrays.",
        "Choose a RAID level the disk group's disk count allows (e.g. `raid=1` on 2 disks), "
        "or deploy without `raid=`.",
    ),
    Family(
        "partitioning_refused",
        (
            _BAD + "Partition*",
            "Client::Conflict::PartitioningTooManyDisks*",
            "Client::NotFound::SchemeName",
        ),
        "OVHcloud refused a partitioning layout.",
        "A bring-your-own image brings its own partitions; a partitioning layout does not "
        "apply to it. " + _BUG,
        "Deploy without any partitioning option.",
    ),
    Family(
        "os_not_found",
        ("Client::NotFound::OperatingSystem",),
        "OVHcloud does not offer this operating system for the server.",
        "byoi_64 (or byolinux_64) is not in this server's catalogue of installable systems.",
        "Check the server's compatible templates in the control panel; the other OS "
        "(`os=byoi` / `os=byolinux`) may be available.",
    ),
    Family(
        "os_incompatible",
        ("Client::Conflict::OperatingSystemIncompatible",),
        "This server's model cannot install a bring-your-own image.",
        "OVHcloud marks the operating system as incompatible with this server's range or "
        "hardware; waiting will not change that.",
        "Deploy on another server, or ask OVHcloud support whether this range supports "
        "Bring Your Own Image.",
    ),
    Family(
        "license_missing",
        ("Client::Forbidden::OperatingSystemLicenseMissing",),
        "The operating system needs a license this server does not have.",
        "OVHcloud requires a license option on the server for this OS.",
        "Add the license option to the server in the control panel, then try again.",
    ),
    Family(
        "ovh_access_misconfigured",
        ("Client::Forbidden::BadAccess", "Client::Forbidden::RetrieveAccess"),
        "OVHcloud could not check access to the server on its side.",
        "OVHcloud reports a wrong configuration on its side, not a problem with the request "
        "or with byoi-bot's token.",
        "Try again later; if it persists, contact OVHcloud support with the query id.",
    ),
    Family(
        "ovh_internal_error",
        ("Server::InternalServerError*",),
        "OVHcloud had an internal error while preparing the installation.",
        "Something failed on OVHcloud's side (locking the server, reading its hardware or "
        "the OS, creating the task).",
        "Try again in a few minutes (byoi-bot checks the server's tasks first, so nothing "
        "runs twice); if it persists, contact OVHcloud support with the query id.",
    ),
    Family(
        "not_implemented",
        ("Server::NotImplemented*",),
        "OVHcloud cannot do several disk-group or RAID configurations in one installation.",
        "The request carried more than one storage configuration. " + _BUG,
        "Deploy with a single disk group and at most one RAID setting.",
    ),
)


def family_of(api_class: str) -> Family | None:
    """The family of an API error class, or None when byoi-bot does not know it."""
    return next((f for f in FAMILIES if f.covers(api_class)), None)

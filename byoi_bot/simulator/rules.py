"""What the simulated API accepts in a reinstall body, answered with the schema's error classes.

The body is first checked against the vendored schema (`ovhcloud.schema`), then against the
rules of the two bring-your-own operating systems (BYOI guide 2026-02, BYOLinux guide) and
the server's disk groups. Each refusal is the class and filled message template the API
documents for `POST /dedicated/server/{serviceName}/reinstall`.
"""

from __future__ import annotations

import re

from ..ovhcloud import schema
from .errors import ApiError, api_error

REINSTALL = ("POST", "/dedicated/server/{serviceName}/reinstall")
BYOI = "byoi_64"
BYOLINUX = "byolinux_64"
_COMMON = {
    "imageURL",
    "imageCheckSum",
    "imageCheckSumType",
    "httpHeaders",
    "configDriveUserData",
    "configDriveMetadata",
    "hostname",
    "sshKey",
}
# Customizations each OS accepts, and those it cannot do without.
CUSTOMIZATIONS = {BYOI: _COMMON | {"imageType", "efiBootloaderPath"}, BYOLINUX: set(_COMMON)}
MANDATORY = {BYOI: ("imageURL", "imageType", "efiBootloaderPath"), BYOLINUX: ("imageURL",)}
CUSTOMIZATION_LIMIT = 32 * 1024
HOSTNAME_LIMIT = 255  # RFC 1035, section 2.3.4, which the API's message cites
_LABEL = re.compile(r"[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def check_reinstall(body: dict, server: dict) -> dict:
    """Refuse `body` as the API would (raise ApiError); return the disk group it installs on.

    `server` is an inventory entry (`server` and `hardware`).
    """
    name = server["server"]["name"]
    _check_shape(body)
    os_name = body["operatingSystem"]
    if os_name not in CUSTOMIZATIONS:
        raise api_error("Client::NotFound::OperatingSystem", operatingSystem=os_name)
    custom = body.get("customizations") or {}
    for key in sorted(custom):
        if key not in CUSTOMIZATIONS[os_name]:
            raise api_error(
                "Client::BadRequest::CustomizationName",
                customizationName=key,
                operatingSystem=os_name,
            )
    for key in MANDATORY[os_name]:
        if not custom.get(key):
            raise _invalid(key, "string", f"mandatory for operating system {os_name}")
    if bool(custom.get("imageCheckSum")) != bool(custom.get("imageCheckSumType")):
        raise api_error(
            "Client::BadRequest::IncompatibleParams",
            paramName1="imageCheckSum",
            paramName2="imageCheckSumType",
        )
    if "hostname" in custom:
        _check_hostname(str(custom["hostname"]))
    for key in ("configDriveUserData", "sshKey"):
        size = len(str(custom.get(key) or "").encode())
        if size > CUSTOMIZATION_LIMIT:
            raise api_error(
                "Client::BadRequest::CustomizationSizeExceeded",
                length=size,
                limit=CUSTOMIZATION_LIMIT,
            )
    return _check_storage(body.get("storage") or [], server, os_name, name)


def _check_shape(body: dict) -> None:
    if not isinstance(body, dict) or not body.get("operatingSystem"):
        raise ApiError(400, "Client::BadRequest", "Missing parameter(s): operatingSystem")
    described = set(schema.model("dedicated.server.Reinstall")["properties"])
    extra = sorted(set(body) - described)
    if extra:
        raise ApiError(
            400,
            "Client::BadRequest",
            f"Received not described parameters: ({', '.join(extra)}) while calling "
            "creation handler",
        )
    problems = schema.errors(body, schema.request_schema(*REINSTALL))
    if not problems:
        return
    first = problems[0]
    where = list(first.absolute_path)
    if len(where) >= 2 and where[0] == "customizations":
        expected = schema.model("dedicated.server.reinstall.Customizations")["properties"]
        kind = expected.get(str(where[1]), {}).get("type", "string")
        raise _invalid(str(where[1]), kind, first.message)
    shown = ".".join(str(p) for p in where) or "body"
    raise ApiError(400, "Client::BadRequest", f"Invalid parameter {shown}: {first.message}")


def _invalid(name: str, kind: str, msg: str) -> ApiError:
    return api_error(
        "Client::BadRequest::CustomizationInvalidFormat", name=name, type=kind, msg=msg
    )


def _check_hostname(hostname: str) -> None:
    if len(hostname) > HOSTNAME_LIMIT:
        raise api_error(
            "Client::BadRequest::HostnameSizeExceeded", length=len(hostname), limit=HOSTNAME_LIMIT
        )
    for label in hostname.split("."):
        if not _LABEL.fullmatch(label):
            raise api_error("Client::BadRequest::HostnameInvalidFormat", label=label)


def _check_storage(storage: list, server: dict, os_name: str, name: str) -> dict:
    """The disk group to install on; diskGroupId 0 (or none) means automatic: the first.

    Entries `{"diskGroupId": N, "erase": false}` keep group N (partitioning guide,
    ovh/ovhcloud-docs PR #531): never the OS group, one entry per group; the other entries
    describe where the OS goes, and there is at most one of those.
    """
    groups = server["hardware"].get("diskGroups") or []
    kept = [c for c in storage if c.get("erase") is False]
    targets = [c for c in storage if c.get("erase") is not False]
    if len(targets) > 1:
        raise api_error(
            "Server::NotImplemented::DiskGroupMultipleConfigs", diskgroupsNumber=len(targets)
        )
    ids = [c.get("diskGroupId") for c in storage]
    twice = sorted({i for i in ids if ids.count(i) > 1}, key=str)
    if twice:
        raise ApiError(
            400, "Client::BadRequest", f"diskGroupId {twice[0]} is given more than once in storage"
        )
    config = targets[0] if targets else {}
    wanted = config.get("diskGroupId") or 0
    group = groups[0] if wanted == 0 and groups else None
    group = group or next((g for g in groups if g["diskGroupId"] == wanted), None)
    group_name = f"diskGroup {wanted}"
    if group is None:
        raise api_error("Client::NotFound::DiskGroup", diskGroupName=group_name, serverName=name)
    for entry in kept:
        _check_kept(entry, groups, group, name)
    if config.get("partitioning"):
        raise api_error(
            "Client::BadRequest::PartitionIncompatibleCustomPartitioning",
            operatingSystem=os_name,
            diskGroupName=group_name,
        )
    raids = config.get("hardwareRaid") or []
    if len(raids) > 1:
        raise api_error(
            "Server::NotImplemented::HardwareRaidMultipleConfigs", hwRaidConfigsNumber=len(raids)
        )
    if raids:
        _check_raid(raids[0], group, group_name, name)
    return group


def _check_kept(entry: dict, groups: list, os_group: dict, name: str) -> None:
    if set(entry) != {"diskGroupId", "erase"}:
        raise ApiError(
            400,
            "Client::BadRequest",
            "A storage entry with erase=false takes only diskGroupId and erase",
        )
    kept = entry["diskGroupId"]
    if not any(g["diskGroupId"] == kept for g in groups):
        raise api_error(
            "Client::NotFound::DiskGroup", diskGroupName=f"diskGroup {kept}", serverName=name
        )
    if kept == os_group["diskGroupId"]:
        raise ApiError(
            400,
            "Client::BadRequest",
            f"diskGroup {kept} receives the operating system: it cannot be kept (erase=false)",
        )


def _check_raid(raid: dict, group: dict, group_name: str, name: str) -> None:
    if not group.get("raidController"):
        raise api_error(
            "Client::Conflict::HardwareRaidIncompatibleOnDiskGroup",
            diskGroupName=group_name,
            serverName=name,
        )
    available = int(group.get("numberOfDisks") or 1)
    disks = raid.get("disks") or available
    if disks > available:
        raise api_error(
            "Client::Conflict::HardwareRaidTooManyDisks",
            disksNumber=disks,
            diskgroupName=group_name,
            maxDisksNumber=available,
            serverName=name,
        )
    arrays = raid.get("arrays") or 1
    if disks % arrays:
        raise api_error(
            "Client::BadRequest::HardwareRaidInvalidDisksArrays", disks=disks, arrays=arrays
        )

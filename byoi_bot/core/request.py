"""What a user asks for (`DeploySpec`) and the stored request that carries it (`Request`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from .states import State

IMAGE_TYPES = ("qcow2", "raw")
OPERATING_SYSTEMS = {"byoi": "byoi_64", "byolinux": "byolinux_64"}  # os= value: the API's name
APIS = ("reinstall", "legacy")
RAID_LEVELS = (0, 1, 5, 6, 10, 50, 60)  # the reinstall API's hardware RAID levels
HIDDEN = "(hidden)"  # stands for the user data in a spec stripped of its secrets
CHECKSUM_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}


@dataclass(frozen=True)
class Checksum:
    """An image checksum: `type` is one of md5, sha1, sha256, sha512; `value` is lower-case hex."""

    type: str
    value: str


@dataclass(frozen=True)
class DeploySpec:
    """Everything a BYOI deployment needs; immutable once approved.

    `headers` values, `user_data` and the image URL's `user:password@` and query string are
    secrets: they are kept only until submission, never shown, never logged, never written
    to the audit log. Without them (`with_secrets(None)`) the URL is masked.
    """

    server: str
    image_url: str
    image_type: str
    checksum: Checksum | None = None
    disk_group: int | None = None
    hostname: str | None = None
    ssh_key: str | None = None
    efi_bootloader: str | None = None
    description: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    user_data: str | None = None
    config_drive: bool | None = None
    at: datetime | None = None
    os: str = "byoi"
    metadata: tuple[tuple[str, str], ...] = ()
    raid: int | None = None
    api: str | None = None  # the API generation, fixed when the request is created
    efi_source: str | None = None  # "given" by the user or "image" (found in its ESP)
    keep_disks: tuple[int, ...] | None = None  # disk groups left untouched; None: the default
    health_url: str | None = None  # the boot gate also asks it of the server (core.boot_gate)
    emergency: str | None = None  # why this deploy overrides windows and freezes (break-glass)

    OPTIONAL_FIELDS = (
        "emergency",
        "health_url",
    )  # fields a spec leaves out of its fingerprint when unset

    def fingerprint(self) -> str:
        """A hash of exactly what was requested; an approval is bound to it.

        Secrets enter only as their own hashes, so the fingerprint reveals nothing.
        """
        canonical = self.public_dict()
        for name in self.OPTIONAL_FIELDS:  # fingerprints of specs without them stay as they were
            if canonical[name] is None:
                del canonical[name]
        canonical["image_url"] = _digest(self.image_url)
        canonical["headers"] = [[k, _digest(v)] for k, v in self.headers]
        canonical["user_data"] = _digest(self.user_data) if self.user_data else None
        if not self.keep_disks:  # as before keep-disks existed: stored approvals still hold
            del canonical["keep_disks"]
        payload = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()

    def public_dict(self) -> dict:
        """The spec as JSON-ready data without secret values (header names, masked URL)."""
        data = asdict(self)
        data["image_url"] = mask_url(self.image_url)
        data["headers"] = [name for name, _ in self.headers]
        data["user_data"] = bool(self.user_data)
        data["at"] = self.at.isoformat() if self.at else None
        return data

    def secrets(self) -> dict:
        """The secret part of the spec: header values, user data, a URL with credentials."""
        url = self.image_url if mask_url(self.image_url) != self.image_url else None
        return {
            "headers": [list(h) for h in self.headers],
            "user_data": self.user_data,
            "image_url": url,
        }

    def with_secrets(self, secrets: dict | None) -> DeploySpec:
        """A copy with the secret part put back (from `secrets()`), or stripped when None."""
        if not secrets:
            names = tuple((name, "") for name, _ in self.headers)  # names may be shown
            hidden = HIDDEN if self.user_data else None  # that there is user data may be shown
            return replace(
                self, headers=names, user_data=hidden, image_url=mask_url(self.image_url)
            )
        headers = tuple((str(k), str(v)) for k, v in secrets.get("headers") or ())
        return replace(
            self,
            headers=headers,
            user_data=secrets.get("user_data"),
            image_url=secrets.get("image_url") or self.image_url,
        )

    @classmethod
    def from_public_dict(cls, data: dict, secrets: dict | None = None) -> DeploySpec:
        """Rebuild a spec from `public_dict()` output and, optionally, its secrets."""
        checksum = Checksum(**data["checksum"]) if data.get("checksum") else None
        at = datetime.fromisoformat(data["at"]) if data.get("at") else None
        names = data.get("headers") or []
        spec = cls(
            server=data["server"],
            image_url=data["image_url"],
            image_type=data["image_type"],
            checksum=checksum,
            disk_group=data.get("disk_group"),
            hostname=data.get("hostname"),
            ssh_key=data.get("ssh_key"),
            efi_bootloader=data.get("efi_bootloader"),
            description=data.get("description"),
            headers=tuple((name, "") for name in names),
            user_data=HIDDEN if data.get("user_data") else None,
            config_drive=data.get("config_drive"),
            at=at,
            os=data.get("os") or "byoi",
            metadata=tuple((str(k), str(v)) for k, v in data.get("metadata") or ()),
            raid=data.get("raid"),
            api=data.get("api"),
            efi_source=data.get("efi_source"),
            keep_disks=_ints(data.get("keep_disks")),
            emergency=data.get("emergency"),
            health_url=data.get("health_url"),
        )
        return spec.with_secrets(secrets) if secrets else spec

    @property
    def display_url(self) -> str:
        """The image URL safe to show: `user:password@` and the query string masked."""
        return mask_url(self.image_url)


def mask_url(url: str) -> str:
    """Mask credentials and query string of a URL for display and logs.

    >>> mask_url("https://bob:pw@example.com/a.qcow2?token=abc")
    'https://***@example.com/a.qcow2?***'
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _ints(values: list | None) -> tuple[int, ...] | None:
    return None if values is None else tuple(int(v) for v in values)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class Request:
    """A stored deployment request: the spec plus who asked, where, and where it stands."""

    id: str
    spec: DeploySpec
    requester: str
    channel: str
    state: State
    created_at: datetime
    expires_at: datetime
    policy_name: str = "default"
    fingerprint: str = ""
    message_ts: str | None = None
    provider_handle: str | None = None
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    last_status: str | None = None
    checks: list[dict] = field(default_factory=list)
    server_facts: dict | None = None
    image_facts: dict | None = None
    progress: dict | None = None
    last_post_at: datetime | None = None
    start_mark: str | None = None
    fleet_id: str | None = None  # set when the request is one server of a fleet request
    boot: dict | None = None  # the boot gate (`core.boot_gate.Gate.to_dict()`), from approval
    version: int = 0  # bumped by every write; a card shows one version and never an older

    def __post_init__(self) -> None:
        if not self.fingerprint:
            self.fingerprint = self.spec.fingerprint()

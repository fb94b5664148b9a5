"""The boot gate's rules: what to probe, how often, until when (issue 19, "After").

A deploy is `done` only when the server proves it booted the image: after OVHcloud's
`done` the request is `booting`, and the bot probes the server's own IP (read from
OVHcloud, never typed by a user) until the probe passes or the policy's time is up. The
gate's progress is a `Gate` record stored with the request, so a restarted bot resumes it
where it stood; nothing passes it by default.

Pure rules here; the probes themselves are an adapter's (`byoi_bot.probes`), reached
through the `BootProbe` port.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

SSH_PORT = 22


@dataclass(frozen=True)
class BootTarget:
    """What one probe checks: SSH on `ip:ssh_port`, then `health_url` when there is one
    (its host names the TLS server and the Host header; the connection goes to `ip`)."""

    server: str
    ip: str
    ssh_port: int = SSH_PORT
    health_url: str | None = None


@dataclass(frozen=True)
class ProbeResult:
    """A probe's verdict; `detail` is what the server said (its SSH identification line) or
    why it did not pass. Server-sent text: escape it before showing it."""

    passed: bool
    detail: str


class BootProbe(Protocol):
    """Checks that a server answers (`byoi_bot.probes.NetworkProbe`)."""

    def probe(self, target: BootTarget) -> ProbeResult: ...


@dataclass(frozen=True)
class Gate:
    """A request's boot gate as stored (`Request.boot`): when it opened and closes, where
    it probes, how many probes were made and what the last one said."""

    opened_at: datetime | None = None  # OVHcloud's done (None: the install still runs)
    deadline: datetime | None = None
    ssh_port: int = SSH_PORT
    health_url: str | None = None
    ip: str | None = None  # read from OVHcloud at the first probe
    probes: int = 0
    next_at: datetime | None = None
    last: str = ""
    waiting_told: bool = False  # the thread was told the bot waits for the server
    token_hash: str | None = None  # the phone-home token's SHA-256 (the token is never kept)
    host_keys: tuple[tuple[str, str], ...] = field(default=())  # reported by phone-home
    phoned_home: bool = False  # the server's phone-home came (perhaps before OVHcloud's done)

    def due(self, now: datetime) -> bool:
        """Whether the next probe may run now."""
        return self.next_at is None or self.next_at <= now

    def probed(self, now: datetime, result: ProbeResult, every: timedelta) -> Gate:
        """The gate after one more probe."""
        return replace(self, probes=self.probes + 1, next_at=now + every, last=result.detail)

    def to_dict(self) -> dict:
        data = asdict(self)
        for key in ("opened_at", "deadline", "next_at"):
            data[key] = data[key].isoformat() if data[key] else None
        data["host_keys"] = [list(k) for k in self.host_keys]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Gate:
        def moment(key: str) -> datetime | None:
            return datetime.fromisoformat(data[key]) if data.get(key) else None

        return cls(
            opened_at=moment("opened_at"),
            deadline=moment("deadline"),
            ssh_port=int(data.get("ssh_port") or SSH_PORT),
            health_url=data.get("health_url"),
            ip=data.get("ip"),
            probes=int(data.get("probes") or 0),
            next_at=moment("next_at"),
            last=str(data.get("last") or ""),
            waiting_told=bool(data.get("waiting_told")),
            token_hash=data.get("token_hash"),
            host_keys=tuple((str(k), str(v)) for k, v in data.get("host_keys") or ()),
            phoned_home=bool(data.get("phoned_home")),
        )


def token_hash(token: str) -> str:
    """The stored form of a phone-home token."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(gate: Gate | None, token: str) -> bool:
    """Whether `token` is the gate's phone-home token (compared in constant time)."""
    if gate is None or not gate.token_hash:
        return False
    return hmac.compare_digest(gate.token_hash, token_hash(token))


def health_url_problem(url: str) -> str | None:
    """Why `url` cannot be a health URL (None when it can): https, a host, no credentials."""
    if len(url) > 2000:
        return "it is longer than 2,000 characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "it is not a URL (the port must be a number up to 65535)"
    if parts.scheme != "https":
        return "it must start with https://"
    if not parts.hostname or "@" in parts.netloc:
        return "it needs a host name and no user:password@"
    if port == 0:
        return "port 0 is no port"
    return None

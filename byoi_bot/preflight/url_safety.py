"""URL safety for image URLs that users type (SSRF guard).

Only http(s); the host name is resolved once, every address is vetted, and the caller
connects to the vetted address (no second DNS lookup, so no DNS-rebinding window).
Loopback, private, link-local, multicast, reserved, unspecified and cloud metadata
addresses are refused unless the allow-list (`BYOI_URL_ALLOWLIST`) names them.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..core.request import mask_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWLIST_ENV = "BYOI_URL_ALLOWLIST"

# Cloud instance-metadata and similar host-local services. They are only allowed by an
# allow-list entry naming exactly that address (a wide CIDR never opens them).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, OVHcloud Public Cloud
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.123",  # AWS time sync
        "168.63.129.16",  # Azure wire server (a public address)
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::123",
    )
)


class UrlRefused(ValueError):
    """The URL may not be fetched; the message says what was refused, why, and how to allow it."""


@dataclass(frozen=True)
class Target:
    """A vetted URL: connect to `address`, send `host` in Host / SNI."""

    scheme: str
    host: str
    port: int
    address: str
    path: str


class AllowList:
    """Networks (CIDRs or single addresses) and host names that lift the refusal.

    >>> allow = AllowList.parse("10.0.0.0/8, images.lan")
    >>> allow.allows("images.lan", ipaddress.ip_address("192.168.1.2"))
    True
    >>> allow.allows("other.lan", ipaddress.ip_address("192.168.1.2"))
    False
    """

    def __init__(self, networks: Iterable[IPNetwork] = (), hosts: Iterable[str] = ()) -> None:
        self.networks = tuple(networks)
        self.hosts = frozenset(h.lower().rstrip(".") for h in hosts)

    @classmethod
    def parse(cls, entries: str | Iterable[str] | AllowList | None) -> AllowList:
        """Build from a comma-separated string (the env var's format) or a list of entries."""
        if isinstance(entries, AllowList):
            return entries
        if entries is None:
            entries = ()
        if isinstance(entries, str):
            entries = entries.split(",")
        networks, hosts = [], []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.append(entry)
        return cls(networks, hosts)

    def allows(self, host: str, address: IPAddress) -> bool:
        """True when `host` is listed or `address` lies in a listed network."""
        if host.lower().rstrip(".") in self.hosts:
            return True
        if address in METADATA_ADDRESSES:
            return any(n.num_addresses == 1 and address in n for n in self.networks)
        return any(address in n for n in self.networks)


class UrlGuard:
    """Vets URLs against the address rules and the allow-list."""

    def __init__(self, allowlist: str | Iterable[str] | AllowList | None = None) -> None:
        self.allowlist = AllowList.parse(allowlist)

    def check(self, url: str) -> Target:
        """Resolve and vet `url`; returns the address to connect to, or raises UrlRefused."""
        shown = mask_url(url)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise UrlRefused(f"{shown} is not a valid URL ({exc}).") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise UrlRefused(
                f"{shown}: only http:// and https:// image URLs are allowed"
                f" (got {scheme or 'no scheme'!r})."
            )
        host = parts.hostname
        if not host:
            raise UrlRefused(f"{shown} has no host name.")
        port = port or (443 if scheme == "https" else 80)
        addresses = self._resolve(host, port, shown)
        for address in addresses:
            reason = refusal_reason(address)
            if reason and not self.allowlist.allows(host, address):
                literal = host == str(address)
                what = f"{host} is" if literal else f"{host} resolves to {address},"
                entry = _entry_for(address) + ("" if literal else f" or {host}")
                raise UrlRefused(
                    f"Refused to fetch {shown}: {what} {reason}. The bot only fetches images "
                    f"from public addresses. If this host is trusted, add {entry} to "
                    f"{ALLOWLIST_ENV}."
                )
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return Target(scheme, host, port, str(addresses[0]), path)

    @staticmethod
    def _resolve(host: str, port: int, shown: str) -> list[IPAddress]:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise UrlRefused(f"Cannot resolve the host of {shown}: {exc}.") from None
        addresses: list[IPAddress] = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise UrlRefused(f"Cannot resolve the host of {shown}: no address.")
        return addresses


def refusal_reason(address: IPAddress) -> str | None:
    """Why an address may not be fetched from by default, or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return refusal_reason(address.ipv4_mapped)
    checks = (
        (address in METADATA_ADDRESSES, "a cloud metadata address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for hit, reason in checks if hit), None)


def _entry_for(address: IPAddress) -> str:
    return f"{address}/{address.max_prefixlen}"

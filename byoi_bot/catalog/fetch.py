"""Fetch a small text file (a checksum file, its signature) under the image URL guard.

Every hop of a redirect is vetted by `UrlGuard` and the connection goes to the vetted
address (Host header and TLS name keep the host name), as for image reads. urllib3 makes
the connection; nothing is retried; at most `limit` bytes are read.
"""

from __future__ import annotations

from urllib.parse import urljoin

import urllib3
from urllib3.exceptions import HTTPError

from ..core.request import mask_url
from ..preflight.url_safety import UrlGuard

KiB = 1024
LIMIT = 1024 * KiB  # Debian's SHA512SUMS is ~2 KiB, Ubuntu's SHA256SUMS under 1 KiB
MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)


class FetchError(Exception):
    """The file could not be fetched; the message is safe to show."""


def fetch_small(url: str, guard: UrlGuard, *, limit: int = LIMIT, timeout: float = 10.0) -> bytes:
    """The body of `url` (HTTP 200), at most `limit` bytes; raises FetchError or UrlRefused."""
    for _ in range(MAX_REDIRECTS + 1):
        target = guard.check(url)
        default_port = 443 if target.scheme == "https" else 80
        host = target.host if target.port == default_port else f"{target.host}:{target.port}"
        if target.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                target.address,
                target.port,
                server_hostname=target.host,
                assert_hostname=target.host,
                timeout=timeout,
                retries=False,
            )
        else:
            pool = urllib3.HTTPConnectionPool(
                target.address, target.port, timeout=timeout, retries=False
            )
        with pool:
            try:
                response = pool.urlopen(
                    "GET",
                    target.path,
                    headers={"Host": host},
                    redirect=False,
                    preload_content=False,
                )
                try:
                    if response.status in REDIRECTS and response.headers.get("Location"):
                        url = urljoin(url, response.headers["Location"])
                        continue
                    if response.status != 200:
                        raise FetchError(f"{mask_url(url)} answered HTTP {response.status}.")
                    data = response.read(limit + 1)
                finally:
                    response.release_conn()
            except HTTPError as exc:
                raise FetchError(
                    f"{mask_url(url)} could not be read ({type(exc).__name__})."
                ) from None
        if len(data) > limit:
            raise FetchError(f"{mask_url(url)} is larger than {limit // KiB} KiB.")
        return data
    raise FetchError(f"{mask_url(url)} redirects more than {MAX_REDIRECTS} times.")

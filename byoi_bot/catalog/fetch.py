"""Fetch a small text file (a checksum file, its signature) under the image URL guard.

Every hop of a redirect is vetted by `UrlGuard` and the connection goes to the vetted
address (Host header and TLS name keep the host name), as for image reads. urllib3 makes
the connection; nothing is retried; at most `limit` bytes are read, within `time_limit`
seconds in all (a per-read time-out alone lets a server that drips a byte every few seconds
hold a request for as long as it likes).
"""

from __future__ import annotations

import time
from urllib.parse import urljoin

import urllib3
from urllib3.exceptions import HTTPError, ReadTimeoutError

from ..core.request import mask_url
from ..preflight.url_safety import UrlGuard

KiB = 1024
LIMIT = 1024 * KiB  # Debian's SHA512SUMS is ~2 KiB, Ubuntu's SHA256SUMS under 1 KiB
MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
TIME_LIMIT = 20.0  # seconds for the whole fetch, redirects included


class FetchError(Exception):
    """The file could not be fetched; the message is safe to show."""


def fetch_small(
    url: str,
    guard: UrlGuard,
    *,
    limit: int = LIMIT,
    timeout: float = 10.0,
    time_limit: float = TIME_LIMIT,
) -> bytes:
    """The body of `url` (HTTP 200), at most `limit` bytes, read within `time_limit`
    seconds; raises FetchError or UrlRefused."""
    deadline = time.monotonic() + time_limit
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
                    data = _read_by(response, limit + 1, deadline, timeout)
                    if data is None:
                        raise FetchError(f"{mask_url(url)} took more than {time_limit:g} s.")
                finally:
                    response.release_conn()
            except ReadTimeoutError:
                if time.monotonic() < deadline:
                    raise FetchError(f"{mask_url(url)} stopped sending (time-out).") from None
                raise FetchError(f"{mask_url(url)} took more than {time_limit:g} s.") from None
            except HTTPError as exc:
                raise FetchError(
                    f"{mask_url(url)} could not be read ({type(exc).__name__})."
                ) from None
        if len(data) > limit:
            raise FetchError(f"{mask_url(url)} is larger than {limit // KiB} KiB.")
        return data
    raise FetchError(f"{mask_url(url)} redirects more than {MAX_REDIRECTS} times.")


def _read_by(response: urllib3.BaseHTTPResponse, most: int, deadline: float, timeout: float):
    """Up to `most` bytes of the body, each read waiting no longer than the time left (and
    than `timeout`); None when the time is up first."""
    data = bytearray()
    while len(data) < most:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock = getattr(response.connection, "sock", None)
        if sock is not None:
            sock.settimeout(min(left, timeout))
        chunk = response.read1(most - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)

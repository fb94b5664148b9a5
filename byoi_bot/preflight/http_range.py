"""A small HTTP range reader: a few exact-size reads of a remote file, never the whole file.

The first request asks for `bytes=0-4095`: a 206 answer with `Content-Range` gives the
total size (no HEAD needed); a 200 answer means the server ignores ranges: the first
NO_RANGE_HEAD bytes of its body are kept (enough to name the format) and the connection is
closed without reading the rest. Redirects are followed here, each hop
vetted by the URL guard, and every connection goes to the address that was vetted.
Header values are secrets: they are sent, never logged nor put in exceptions.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import ssl
import time
from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

from ..core.request import mask_url
from .url_safety import Target, UrlGuard

MiB = 1024 * 1024
HEAD_SIZE = 4096
# Read from a 200 answer: every format's magic (an ISO 9660 descriptor at 32 KiB) and a GPT
# with 128 entries in 512- or 4096-byte sectors (24 KiB).
NO_RANGE_HEAD = 36 * 1024
MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")
_DROPPED_HEADERS = {"range", "host", "connection"}


class RangeError(Exception):
    """Reading the image over HTTP failed; the message is safe to show (no secrets)."""


class HttpStatusError(RangeError):
    """The server answered with an unexpected HTTP status."""

    def __init__(self, status: int, reason: str, url: str) -> None:
        super().__init__(f"{url} answered HTTP {status} {reason}".strip())
        self.status = status


class NoRangeSupport(RangeError):
    """The server answered 200 to a range request: it cannot serve parts of the file.
    `head` holds the first bytes of the body (all of it when shorter than NO_RANGE_HEAD)."""

    def __init__(self, url: str, size: int | None, head: bytes = b"") -> None:
        super().__init__(f"{url} does not support HTTP range requests (answered 200)")
        self.size = size
        self.head = head


class BudgetExceeded(RangeError):
    """The inspection would read more than its byte budget."""


class _PinnedMixin:
    """Connects to the vetted address while Host header and TLS SNI keep the host name."""

    def _pin(self, address: str) -> None:
        self._pinned_address = address
        self._create_connection = self._connect_pinned

    def _connect_pinned(self, address, timeout, source_address=None):
        return socket.create_connection((self._pinned_address, address[1]), timeout, source_address)


class _PinnedHTTPConnection(_PinnedMixin, http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._pin(target.address)


class _PinnedHTTPSConnection(_PinnedMixin, http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        context = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._pin(target.address)


class RangeReader:
    """Exact-size reads of a remote file, counting requests and bytes.

    Use `open()` first (it makes the first request and sets `size`), then `read()`.
    Bounds: `byte_budget` bytes and `max_requests` requests in all, `timeout` seconds
    per request.
    """

    def __init__(
        self,
        url: str,
        headers: Iterable[tuple[str, str]] = (),
        *,
        guard: UrlGuard | None = None,
        byte_budget: int = MiB,
        timeout: float = 10.0,
        max_requests: int = 32,
    ) -> None:
        self.url = url
        self.headers = [(k, v) for k, v in headers if k.lower() not in _DROPPED_HEADERS]
        self.guard = guard or UrlGuard()
        self.byte_budget = byte_budget
        self.timeout = timeout
        self.max_requests = max_requests
        self.size: int | None = None
        self.requests = 0
        self.bytes_read = 0
        self.redirects = 0
        self._head = b""
        self._conn: http.client.HTTPConnection | None = None
        self._target: Target | None = None
        self._send_headers = True

    @property
    def display_url(self) -> str:
        """The current (final, after redirects) URL, masked for display."""
        return mask_url(self.url)

    def open(self, head_on_200: int = NO_RANGE_HEAD) -> None:
        """Make the first request (`bytes=0-4095`), following redirects; sets `size`.
        A 200 answer raises NoRangeSupport with the body's first `head_on_200` bytes."""
        origin = _origin(self.url)
        for _ in range(MAX_REDIRECTS + 1):
            self._connect(self.guard.check(self.url))
            response = self._request(0, HEAD_SIZE - 1)
            if response.status in REDIRECTS and response.getheader("Location"):
                location = response.getheader("Location")
                self._drop_connection()
                self.url = urljoin(self.url, location)
                self.redirects += 1
                self._send_headers = _origin(self.url) == origin
                continue
            if response.status == 200:
                length = response.getheader("Content-Length") or ""
                size = int(length) if length.isdigit() else None
                head_on_200 = min(head_on_200, self.byte_budget)
                head = self._body(response, head_on_200) if head_on_200 else b""
                self._drop_connection()
                if len(head) < head_on_200:  # the whole body
                    size = len(head)
                raise NoRangeSupport(self.display_url, size, head)
            if response.status == 416:
                self.size = _total_size(response.getheader("Content-Range"))
                self._finish(response)
                return
            if response.status != 206:
                self._drop_connection()
                raise HttpStatusError(response.status, response.reason, self.display_url)
            self.size = _total_size(response.getheader("Content-Range"))
            self._head = self._body(response, HEAD_SIZE)
            return
        raise RangeError(f"{self.display_url}: more than {MAX_REDIRECTS} redirects")

    def read(self, offset: int, length: int) -> bytes:
        """Exactly `length` bytes at `offset` (fewer only at the end of the file)."""
        if self.size is not None:
            length = max(0, min(length, self.size - offset))
        if length <= 0:
            return b""
        head_part = b""
        if offset < len(self._head):
            head_part = self._head[offset : offset + length]
            if len(head_part) == length:
                return head_part
            offset, length = offset + len(head_part), length - len(head_part)
        if self.bytes_read + length > self.byte_budget:
            raise BudgetExceeded(
                f"reading {length} more bytes would pass the {self.byte_budget}-byte budget"
            )
        if self.requests >= self.max_requests:
            raise BudgetExceeded(f"the image needs more than {self.max_requests} requests")
        if self._conn is None and self._target is not None:
            self._connect(self._target)  # the address vetted by open(): no new DNS lookup
        response = self._request(offset, offset + length - 1)
        if response.status != 206:
            self._drop_connection()
            raise HttpStatusError(response.status, response.reason, self.display_url)
        if _range_start(response.getheader("Content-Range")) != offset:
            self._drop_connection()
            raise RangeError(f"{self.display_url} answered a different range than asked")
        return head_part + self._body(response, length)

    def stream(self) -> tuple[http.client.HTTPResponse, int | None]:
        """GET the whole file (redirects followed and vetted as by `open()`, which it
        calls): the response, to read the body from, and the file's size. No byte budget
        applies: for checksums only."""
        with contextlib.suppress(NoRangeSupport):  # a whole-file GET needs no ranges
            self.open(head_on_200=0)
        if self._conn is None and self._target is not None:
            self._connect(self._target)
        response = self._request(None, None)
        if response.status != 200:
            self._drop_connection()
            raise HttpStatusError(response.status, response.reason, self.display_url)
        length = response.getheader("Content-Length") or ""
        return response, int(length) if length.isdigit() else self.size

    def abort(self) -> None:
        """Shut the connection down now, waking a thread blocked reading from it."""
        sock = self._conn.sock if self._conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Close the connection."""
        self._drop_connection()

    def __enter__(self) -> RangeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self, target: Target) -> None:
        self._drop_connection()
        cls = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
        self._conn = cls(target, self.timeout)
        self._target = target

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _request(self, first: int | None, last: int | None) -> http.client.HTTPResponse:
        """A GET of bytes `first`..`last`, or of the whole file when `first` is None."""
        assert self._conn is not None and self._target is not None
        headers = dict(self.headers) if self._send_headers else {}
        if first is not None:
            headers["Range"] = f"bytes={first}-{last}"
        headers["Accept-Encoding"] = "identity"
        self.requests += 1
        try:
            self._conn.request("GET", self._target.path, headers=headers)
            return self._conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self._drop_connection()
            raise RangeError(f"{self.display_url}: {_describe(exc)}") from None

    def _body(self, response: http.client.HTTPResponse, limit: int) -> bytes:
        """Read at most `limit` bytes of the body within the per-request time bound."""
        deadline = time.monotonic() + self.timeout
        chunks, got = [], 0
        try:
            while got < limit:
                if time.monotonic() > deadline:
                    raise RangeError(f"{self.display_url}: too slow (over {self.timeout:g} s)")
                chunk = response.read1(limit - got)
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except (OSError, http.client.HTTPException) as exc:
            self._drop_connection()
            raise RangeError(f"{self.display_url}: {_describe(exc)}") from None
        finally:
            self.bytes_read += got
        self._finish(response)
        return b"".join(chunks)

    def _finish(self, response: http.client.HTTPResponse) -> None:
        """Keep the connection only when the whole body was consumed."""
        if response.length == 0:
            response.read()  # marks the response done so the connection can be reused
        else:
            self._drop_connection()


def _total_size(content_range: str | None) -> int | None:
    match = _CONTENT_RANGE.match(content_range or "")
    return int(match.group(3)) if match and match.group(3) != "*" else None


def _range_start(content_range: str | None) -> int | None:
    match = _CONTENT_RANGE.match(content_range or "")
    return int(match.group(1)) if match and match.group(1) else None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or ""), parts.port


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

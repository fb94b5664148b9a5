"""Verify an image's checksum before the deploy: stream the whole file once and hash it.

One thread receives into a few reused buffers while the caller's thread hashes them
(`hashlib` and socket reads both release the GIL), so hashing runs at nearly `hashlib`'s
own rate. Memory stays bounded (BUFFERS × CHUNK), progress is reported at most every
`progress_every` seconds, the whole stream has a time limit, and the URL goes through the
same guard (pinned address, vetted redirects, headers kept to the origin) as preflight.
"""

from __future__ import annotations

import hashlib
import http.client
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..core.checks import Check, Severity
from ..core.request import Checksum, DeploySpec
from .http_range import RangeError, RangeReader
from .inspector import format_size
from .url_safety import AllowList, UrlGuard, UrlRefused

CHUNK = 1024 * 1024  # small enough that the hashing thread finds the bytes still in cache
BUFFERS = 4
Progress = Callable[[int, int | None], None]
OK, WARNING, BLOCKING = Severity.OK, Severity.WARNING, Severity.BLOCKING


class ChecksumError(RangeError):
    """The image could not be streamed to the end (HTTP error, time limit, short body)."""


@dataclass(frozen=True)
class Verification:
    """The outcome: `found` is the hex digest of the `size` bytes streamed."""

    expected: Checksum
    found: str
    size: int
    seconds: float

    @property
    def matches(self) -> bool:
        return self.found == self.expected.value

    @property
    def rate(self) -> float:
        """Bytes per second."""
        return self.size / self.seconds if self.seconds else 0.0

    def facts(self) -> dict:
        return {
            "checksum_type": self.expected.type,
            "checksum_expected": self.expected.value,
            "checksum_found": self.found,
            "checksum_bytes": self.size,
            "checksum_seconds": round(self.seconds, 3),
        }


def verify_checksum(
    url: str,
    expected: Checksum,
    headers: Iterable[tuple[str, str]] = (),
    *,
    guard: UrlGuard | None = None,
    progress: Progress | None = None,
    progress_every: float = 3.0,
    time_limit: float = 3600.0,
    timeout: float = 30.0,
) -> Verification:
    """Stream `url` once and hash it with `expected.type`; raises ChecksumError when the
    whole file could not be read."""
    start = time.monotonic()
    deadline = start + time_limit
    with RangeReader(url, headers, guard=guard, timeout=timeout) as reader:
        response, size = reader.stream()
        hasher = hashlib.new(expected.type)
        done, last_report = 0, start
        for chunk in _pipelined(response, reader.abort, deadline, reader.display_url):
            hasher.update(chunk)
            done += len(chunk)
            now = time.monotonic()
            if progress and now - last_report >= progress_every:
                progress(done, size)
                last_report = now
    if size is not None and done != size:
        raise ChecksumError(f"{reader.display_url}: the body ended after {done} of {size} bytes")
    if progress:
        progress(done, size)
    return Verification(expected, hasher.hexdigest(), done, time.monotonic() - start)


class HttpChecksumVerifier:
    """Implements core.ports.ChecksumVerifier: `verify_checksum` behind the URL guard."""

    def __init__(
        self, allowlist: str | Iterable[str] | AllowList | None = None, time_limit: float = 3600.0
    ) -> None:
        self.guard = UrlGuard(allowlist)
        self.time_limit = time_limit

    def verify(self, spec: DeploySpec, progress: Progress) -> Check:
        """The `checksum` check of `spec`'s image (see `checksum_check`)."""
        return checksum_check(spec, self.guard, progress, self.time_limit)[0]


def checksum_check(
    spec: DeploySpec, guard: UrlGuard, progress: Progress | None, time_limit: float = 3600.0
) -> tuple[Check, dict]:
    """Stream and hash the image: the `checksum` check (ok: a match; blocking: a mismatch;
    warning: not streamed to its end) and its facts."""
    expected = spec.checksum
    assert expected is not None
    try:
        found = verify_checksum(
            spec.image_url,
            expected,
            spec.headers,
            guard=guard,
            progress=progress,
            time_limit=time_limit,
        )
    except (RangeError, UrlRefused) as exc:
        return Check("checksum", WARNING, f"The checksum was not verified: {exc}."), {}
    size, rate = format_size(found.size), format_size(int(found.rate))
    if found.matches:
        text = f"The {expected.type} of the {size} image matches ({found.seconds:.1f} s, {rate}/s)."
        return Check("checksum", OK, text), found.facts()
    return Check(
        "checksum",
        BLOCKING,
        f"The image's {expected.type} is {found.found}, but {expected.value} was expected "
        f"({size} streamed): the file changed, its upload was cut, or the checksum is wrong. "
        "The installer would refuse it; compute the checksum of the file served "
        f"(`{expected.type}sum`) or upload the file again.",
    ), found.facts()


def _pipelined(response, abort: Callable[[], None], deadline: float, shown_url: str):
    """The body as memoryviews: a thread fills reused buffers while the caller hashes."""
    free: queue.Queue = queue.Queue()
    full: queue.Queue = queue.Queue()
    for _ in range(BUFFERS):
        free.put(bytearray(CHUNK))
    stop = threading.Event()

    def receive() -> None:
        try:
            while not stop.is_set():
                buffer = free.get()
                if buffer is None:
                    return
                count = response.readinto(buffer)
                full.put((buffer, count))
                if not count:
                    return
        except (OSError, ValueError, http.client.HTTPException) as exc:
            full.put((None, exc))

    thread = threading.Thread(target=receive, name="checksum-receive", daemon=True)
    thread.start()
    try:
        while True:
            try:
                buffer, count = full.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise ChecksumError(
                    f"{shown_url}: hashing took longer than its time limit"
                ) from None
            if buffer is None:
                raise ChecksumError(f"{shown_url}: the download failed ({count})")
            if not count:
                return
            yield memoryview(buffer)[:count]
            free.put(buffer)
    finally:
        stop.set()
        free.put(None)
        abort()  # wakes the receiving thread if it waits on the socket
        thread.join()
        response.close()

"""Reads served from the bytes already fetched: only missing bytes are fetched, and nearby
missing ranges are fetched together in one range request."""

from __future__ import annotations

from collections.abc import Callable, Iterable

Read = Callable[[int, int], bytes]
GAP = 16 * 1024  # fetch through a gap this small rather than pay another round trip


class ReadLimit(Exception):
    """Reading more would pass the limits set with `limit()`."""


class CachedReads:
    """A `read(offset, length)` over `fetch` that never fetches a byte twice.

    `read_many()` takes several ranges at once and fetches what is missing in as few
    requests as possible (ranges at most `gap` bytes apart share one request).
    """

    def __init__(self, fetch: Read, size: int | None, gap: int = GAP) -> None:
        self._fetch = fetch
        self.size = size
        self.gap = gap
        self._have: list[tuple[int, bytes]] = []  # sorted, non-overlapping
        self.fetches = 0
        self.fetched = 0
        self._max_fetches: int | None = None
        self._max_bytes: int | None = None

    def limit(self, fetches: int | None, fetched_bytes: int | None) -> None:
        """From now on, refuse (ReadLimit) to pass `fetches` fetches or `fetched_bytes`
        bytes in all; None lifts a limit."""
        self._max_fetches, self._max_bytes = fetches, fetched_bytes

    def read(self, offset: int, length: int) -> bytes:
        """`length` bytes at `offset` (fewer at the end of the file)."""
        return self.read_many([(offset, length)])[0]

    def read_many(self, ranges: Iterable[tuple[int, int]]) -> list[bytes]:
        """The bytes of each (offset, length), fetching the missing ones together."""
        ranges = [(o, self._clip(o, n)) for o, n in ranges]
        missing = sorted(m for o, n in ranges for m in self._missing(o, o + n))
        merged: list[list[int]] = []
        for lo, hi in missing:
            if merged and lo - merged[-1][1] <= self.gap:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        if self._max_fetches is not None and self.fetches + len(merged) > self._max_fetches:
            raise ReadLimit(f"it would take more than {self._max_fetches} requests in all")
        wanted = sum(hi - lo for lo, hi in merged)
        if self._max_bytes is not None and self.fetched + wanted > self._max_bytes:
            raise ReadLimit(f"it would take more than {self._max_bytes // 1024} KiB in all")
        for lo, hi in merged:
            data = self._fetch(lo, hi - lo)
            self.fetches += 1
            self.fetched += len(data)
            self._store(lo, data)
        return [self._cached(o, n) for o, n in ranges]

    def _clip(self, offset: int, length: int) -> int:
        if self.size is not None:
            length = min(length, self.size - offset)
        return max(0, length)

    def _missing(self, lo: int, hi: int) -> list[tuple[int, int]]:
        gaps, pos = [], lo
        for start, data in self._have:
            end = start + len(data)
            if end <= pos or start >= hi:
                continue
            if start > pos:
                gaps.append((pos, start))
            pos = max(pos, end)
        if pos < hi:
            gaps.append((pos, hi))
        return gaps

    def _store(self, offset: int, data: bytes) -> None:
        if not data:
            return
        end = offset + len(data)
        near = [(s, d) for s, d in self._have if s <= end and s + len(d) >= offset]
        lo = min([offset] + [s for s, _ in near])
        hi = max([end] + [s + len(d) for s, d in near])
        buf = bytearray(hi - lo)
        for s, d in near:
            buf[s - lo : s - lo + len(d)] = d
        buf[offset - lo : end - lo] = data
        self._have = sorted(
            [(s, d) for s, d in self._have if not (s <= end and s + len(d) >= offset)]
            + [(lo, bytes(buf))]
        )

    def _cached(self, offset: int, length: int) -> bytes:
        out = bytearray()
        for start, data in self._have:
            if start <= offset + len(out) < start + len(data):
                pos = offset + len(out) - start
                out += data[pos : pos + length - len(out)]
            if len(out) == length:
                break
        return bytes(out)

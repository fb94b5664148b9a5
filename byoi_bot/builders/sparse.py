"""A disk as a few extents of data over zeros, so a "20 GiB" image costs a few KiB."""

from __future__ import annotations

import bisect
from pathlib import Path


class SparseImage:
    """`size` bytes, zero except where `put()` wrote data (later writes win)."""

    def __init__(self, size: int, extents: dict[int, bytes] | None = None) -> None:
        self.size = size
        self._extents: list[tuple[int, bytes]] = []
        for offset, data in sorted((extents or {}).items()):
            self.put(offset, data)

    @property
    def extents(self) -> list[tuple[int, bytes]]:
        """(offset, data) pairs, sorted and non-overlapping."""
        return list(self._extents)

    def put(self, offset: int, data: bytes) -> None:
        """Write `data` at `offset` (inside the image)."""
        if offset < 0 or offset + len(data) > self.size:
            raise ValueError(f"{len(data)} bytes at {offset} do not fit in {self.size} bytes")
        if not data:
            return
        end = offset + len(data)
        touching, kept = [], []
        for start, chunk in self._extents:
            near = start <= end and start + len(chunk) >= offset
            (touching if near else kept).append((start, chunk))
        lo = min([offset] + [s for s, _ in touching])
        hi = max([end] + [s + len(c) for s, c in touching])
        buf = bytearray(hi - lo)
        for start, chunk in touching:
            buf[start - lo : start - lo + len(chunk)] = chunk
        buf[offset - lo : end - lo] = data
        bisect.insort(kept, (lo, bytes(buf)))
        self._extents = kept

    def pread(self, offset: int, length: int) -> bytes:
        """`length` bytes at `offset` (fewer at the end of the image)."""
        length = max(0, min(length, self.size - offset))
        out = bytearray(length)
        for start, chunk in self._extents:
            lo, hi = max(start, offset), min(start + len(chunk), offset + length)
            if lo < hi:
                out[lo - offset : hi - offset] = chunk[lo - start : hi - start]
        return bytes(out)

    def read(self, start: int, end: int) -> bytes:
        """Bytes `start`..`end` inclusive, as a range request returns them."""
        return self.pread(start, end - start + 1)

    def to_bytes(self) -> bytes:
        """The whole image (only for small images)."""
        return self.pread(0, self.size)

    def write_to(self, path: Path) -> Path:
        """Write the image as a sparse file."""
        with open(path, "wb") as f:
            f.truncate(self.size)
            for offset, data in self._extents:
                f.seek(offset)
                f.write(data)
        return path

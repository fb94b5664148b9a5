"""Checksum verification rate against hashlib's own rate on the same bytes.

Writes a 2 GiB raw GPT image (512 MiB of random data in its Linux partition, the rest
sparse), serves it on 127.0.0.1 (sendfile), and for each checksum type measures in one run,
alternately, best of `--runs`: hashlib alone (the file read chunk by chunk, only
`update()` timed) and `verify_checksum()` streaming the image over HTTP (wall time,
everything included: HTTP, the receiving thread, hashing).
Run: `python benchmarks/checksum_rate.py [--size-gib 2] [--types sha256,md5] [--runs 3]`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from benchlib import parse_args
from image_factory import ImageServer, gpt_disk

from byoi_bot.core.request import Checksum
from byoi_bot.preflight.checksum import CHUNK, verify_checksum
from byoi_bot.preflight.url_safety import UrlGuard

MiB, GiB = 1024**2, 1024**3


def hashlib_rate(path: Path, kind: str) -> tuple[str, float]:
    """The digest and hashlib's rate (bytes/s of `update()` alone) over the file."""
    hasher, spent, buffer = hashlib.new(kind), 0.0, bytearray(CHUNK)
    with open(path, "rb") as f:
        while count := f.readinto(buffer):
            start = time.perf_counter()
            hasher.update(memoryview(buffer)[:count])
            spent += time.perf_counter() - start
    return hasher.hexdigest(), path.stat().st_size / spent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-gib", type=float, default=2)
    parser.add_argument("--types", default="sha256,md5,sha512,sha1")
    parser.add_argument("--runs", type=int, default=3)
    args = parse_args(parser, size_gib=0.0625, types="sha256", runs=1)
    d = Path(tempfile.mkdtemp(prefix="byoi-checksum-"))
    try:
        size = int(args.size_gib * GiB)
        image = gpt_disk(size)
        image.put(min(600 * MiB, size // 2), os.urandom(min(512 * MiB, size // 4)))
        path = image.write_to(d / "image.raw")
        server = ImageServer({"image": path})
        url = server.url("/img/image")
        print(f"{args.size_gib} GiB image, {os.cpu_count()} cores")
        print("| type | hashlib alone | verify_checksum over HTTP | ratio |")
        print("|---|---:|---:|---:|")
        guard = UrlGuard("127.0.0.1/32")
        for kind in args.types.split(","):
            alone = streamed = 0.0
            for _ in range(args.runs):
                expected, rate = hashlib_rate(path, kind)
                alone = max(alone, rate)
                found = verify_checksum(url, Checksum(kind, expected), guard=guard)
                assert found.matches
                streamed = max(streamed, found.rate)
            print(
                f"| {kind} | {alone / MiB:,.0f} MiB/s | {streamed / MiB:,.0f} MiB/s | "
                f"{streamed / alone:.0%} |"
            )
        server.shutdown()
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()

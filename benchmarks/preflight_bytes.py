"""Bytes and requests per preflight inspection, for 1 GiB and 20 GiB virtual images.

Builds sparse GPT disks (ESP + Linux partition with real random data), converts them to
qcow2 (plain and compressed), serves them on 127.0.0.1 and inspects each one.
Run: `python benchmarks/preflight_bytes.py` (needs qemu-utils, fdisk).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from image_factory import GiB, ImageServer, MiB, partitioned, qcow2

from byoi_bot.core.request import DeploySpec
from byoi_bot.preflight import HttpImageInspector
from byoi_bot.preflight.inspector import format_size


def disk(d: Path, name: str, size: int, data: int) -> Path:
    """A sparse GPT disk with `data` bytes of random content inside its Linux partition."""
    raw = partitioned(d / f"{name}.raw", size, "gpt", "start=2048, size=204800, type=U", "type=L")
    with open(raw, "r+b") as f:
        f.seek(300 * MiB)
        for _ in range(data // (8 * MiB)):
            f.write(os.urandom(8 * MiB))
    return raw


def main() -> None:
    d = Path(tempfile.mkdtemp(prefix="byoi-bench-"))
    try:
        files: dict[str, Path] = {}
        for label, size, data in (("1G", GiB, 64 * MiB), ("20G", 20 * GiB, 112 * MiB)):
            raw = disk(d, label, size, data)
            files[f"raw {label}"] = raw
            files[f"qcow2 {label}"] = qcow2(raw, d / f"{label}.qcow2")
            files[f"qcow2 -c {label}"] = qcow2(raw, d / f"{label}.c.qcow2", "-c")
        server = ImageServer({name.replace(" ", "_"): p for name, p in files.items()})
        inspector = HttpImageInspector(allowlist="127.0.0.1/32")
        print(f"{'image':<14} {'virtual':>9} {'file':>10} {'requests':>8} {'bytes':>8} {'ms':>6}")
        for name, path in files.items():
            kind = name.split()[0]
            url = server.url("/img/" + name.replace(" ", "_"))
            server.reset()
            start = time.perf_counter()
            report = inspector.inspect(DeploySpec("bench", url, kind), None)
            ms = (time.perf_counter() - start) * 1000
            assert not any(c.is_blocking for c in report.checks), report.checks
            f = report.facts
            print(
                f"{name:<14} {format_size(f['virtual_size']):>9} "
                f"{format_size(path.stat().st_size):>10} {server.requests:>8} "
                f"{server.bytes_served:>8} {ms:>6.1f}"
            )
        server.shutdown()
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()

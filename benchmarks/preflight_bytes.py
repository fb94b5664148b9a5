"""Bytes and requests per preflight inspection, per image kind.

Builds the images in pure Python (byoi_bot.builders; no qemu-img needed): GPT disks with a
FAT EFI System Partition holding a few files (`\\EFI\\BOOT\\BOOTX64.EFI`,
`\\EFI\\debian\\shimx64.efi`, `grubx64.efi`, `grub.cfg`) and random data in the Linux
partition, as raw and qcow2 (plain, zlib, zstd, every cluster size), a 4Kn disk, a GPT with
512 entries and a hybrid ISO; serves them on 127.0.0.1 and inspects each one.
Run: `python benchmarks/preflight_bytes.py` (prints a Markdown table).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from benchlib import parse_args
from image_factory import ESP_FILES, ImageServer, optical_descriptor, with_fat

from byoi_bot.builders import SparseImage
from byoi_bot.builders.partition_tables import ESP_TYPE, LINUX_TYPE, Part, gpt
from byoi_bot.builders.qcow2 import Qcow2Options, qcow2_image
from byoi_bot.core.request import DeploySpec
from byoi_bot.preflight import HttpImageInspector
from byoi_bot.preflight.inspector import format_size

MiB, GiB = 1024**2, 1024**3


def disk(size: int, esp: int, data: int, sector: int = 512, entries: int = 128) -> SparseImage:
    """A GPT disk: a FAT ESP of `esp` bytes at 1 MiB holding ESP_FILES, a Linux partition
    to the end with `data` random bytes 300 MiB in (FAT32 from 512 MiB, else FAT16)."""
    image = SparseImage(size)
    first, esp_sectors = MiB // sector, esp // sector
    with_fat(image, MiB, esp, ESP_FILES, 32 if esp >= 512 * MiB else 16)
    last = size // sector - 2 - entries * 128 // sector
    parts = [
        Part(first, first + esp_sectors - 1, ESP_TYPE),
        Part(first + esp_sectors, last, LINUX_TYPE),
    ]
    if data:
        image.put(esp + 300 * MiB, os.urandom(data))
    return gpt(image, parts, sector, entries_count=entries)


def images(smoke: bool) -> dict[str, tuple[str, SparseImage]]:
    """Row label → (declared type, image); only the first two when `smoke`."""
    one = disk(GiB, 100 * MiB, 64 * MiB)
    rows = {
        "raw 1G, FAT16 ESP": ("raw", one),
        "qcow2 1G": ("qcow2", qcow2_image(one)),
    }
    if smoke:
        return rows
    twenty = disk(20 * GiB, 512 * MiB, 112 * MiB)
    rows |= {
        "qcow2 -c (zlib) 1G": ("qcow2", qcow2_image(one, Qcow2Options(compression="zlib"))),
        "raw 20G, FAT32 ESP": ("raw", twenty),
        "qcow2 20G": ("qcow2", qcow2_image(twenty)),
        "qcow2 -c (zlib) 20G": ("qcow2", qcow2_image(twenty, Qcow2Options(compression="zlib"))),
        "qcow2 zstd 20G": ("qcow2", qcow2_image(twenty, Qcow2Options(compression="zstd"))),
    }
    small = disk(GiB, 512 * MiB, 0)
    for bits in (9, 12, 16, 21):
        label = f"qcow2 1G, {format_size(1 << bits).replace('.0', '')} clusters"
        rows[label] = ("qcow2", qcow2_image(small, Qcow2Options(cluster_bits=bits)))
    rows["raw 1G 4Kn"] = ("raw", disk(GiB, 512 * MiB, 0, sector=4096))
    rows["raw 1G, 512 GPT entries"] = ("raw", disk(GiB, 512 * MiB, 0, entries=512))
    rows["hybrid ISO (GPT + ESP)"] = ("raw", optical_descriptor(disk(GiB, 100 * MiB, 0)))
    return rows


def main() -> None:
    args = parse_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    d = Path(tempfile.mkdtemp(prefix="byoi-bench-"))
    try:
        built = images(args.smoke)
        files = {
            f"i{n}": img.write_to(d / f"i{n}") for n, (_, (_, img)) in enumerate(built.items())
        }
        server = ImageServer(files)
        inspector = HttpImageInspector(allowlist="127.0.0.1/32")
        print("| image | virtual | file | requests | bytes read | ms | EFI bootloader found |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for n, (label, (kind, _)) in enumerate(built.items()):
            server.reset()
            start = time.perf_counter()
            report = inspector.inspect(DeploySpec("bench", server.url(f"/img/i{n}"), kind), None)
            ms = (time.perf_counter() - start) * 1000
            f = report.facts
            found = f.get("efi_bootloader") or f.get("esp_unreadable") or f.get("format")
            print(
                f"| {label} | {format_size(f.get('virtual_size'))} | "
                f"{format_size(files[f'i{n}'].stat().st_size)} | {server.requests} | "
                f"{server.bytes_served:,} | {ms:.1f} | {found} |"
            )
        server.shutdown()
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()

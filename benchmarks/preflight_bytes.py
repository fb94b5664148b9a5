"""Bytes and requests per preflight inspection, per image kind, with and without the second
ESP pass.

Builds the images in pure Python (byoi_bot.builders; no qemu-img needed): GPT disks with a
FAT EFI System Partition holding a few files (`\\EFI\\BOOT\\BOOTX64.EFI`,
`\\EFI\\debian\\shimx64.efi`, `grubx64.efi`, `grub.cfg`) and random data in the Linux
partition, as raw and qcow2 (plain, zlib, zstd, every cluster size), a 4Kn disk, a GPT with
512 entries, a hybrid ISO, ESPs for arm64 and both CPUs, a Windows ESP (loader two folders
deep), the ESP as the last partition, a moved GPT entry array; serves them on 127.0.0.1
(with and without range support) and inspects each one for an x86_64 server.

The reference is the same inspection with the second ESP pass turned off (`first pass`):
the columns show what the second pass adds and whether it finds the loader.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import machine, parse_args, table
from image_factory import (
    ARM64_ONLY_ESP,
    BOTH_ARCHES_ESP,
    ESP_FILES,
    WINDOWS_ESP,
    ImageServer,
    optical_descriptor,
    with_fat,
)

from byoi_bot.builders import SparseImage
from byoi_bot.builders.partition_tables import ESP_TYPE, LINUX_TYPE, Part, gpt
from byoi_bot.builders.qcow2 import Qcow2Options, qcow2_image
from byoi_bot.core.ports import DiskGroup, ServerFacts
from byoi_bot.core.request import DeploySpec
from byoi_bot.preflight import HttpImageInspector, formats
from byoi_bot.preflight.inspector import format_size

MiB, GiB = 1024**2, 1024**3
SERVER = ServerFacts(
    "ns1.example", "gra3", "ok", "uefi", 1024 * GiB, (DiskGroup(1, 30 * 10**12),),
    architecture="x86_64",
)  # fmt: skip


def disk(
    size: int,
    esp: int,
    data: int,
    sector: int = 512,
    entries: int = 128,
    files: dict | None = None,
    esp_last: bool = False,
    entries_lba: int = 2,
) -> SparseImage:
    """A GPT disk: a FAT ESP of `esp` bytes holding `files` (ESP_FILES), at 1 MiB or last,
    a Linux partition with `data` random bytes 300 MiB in (FAT32 from 512 MiB, else FAT16)."""
    image = SparseImage(size)
    align = MiB // sector
    first = max(align, -(-(entries_lba + entries * 128 // sector) // align) * align)
    last = size // sector - 2 - entries * 128 // sector
    esp_sectors = esp // sector
    esp_first = (last + 1 - esp_sectors) // align * align if esp_last else first
    root = (first, esp_first - 1) if esp_last else (first + esp_sectors, last)
    with_fat(image, esp_first * sector, esp, files or ESP_FILES, 32 if esp >= 512 * MiB else 16)
    parts = [Part(esp_first, esp_first + esp_sectors - 1, ESP_TYPE), Part(*root, LINUX_TYPE)]
    if data:
        image.put(root[0] * sector + 300 * MiB, os.urandom(data))
    return gpt(image, sorted(parts, key=lambda p: p.first), sector, None, entries, entries_lba)


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
    for kind in ("zlib", "zstd"):
        options = Qcow2Options(cluster_bits=21, compression=kind)
        rows[f"qcow2 20G, 2 MiB clusters, {kind}"] = ("qcow2", qcow2_image(twenty, options))
    small = disk(GiB, 512 * MiB, 0)
    for bits in (9, 12, 16, 21):
        label = f"qcow2 1G, {format_size(1 << bits).replace('.0', '')} clusters"
        rows[label] = ("qcow2", qcow2_image(small, Qcow2Options(cluster_bits=bits)))
    last = disk(20 * GiB, 512 * MiB, 112 * MiB, esp_last=True)
    moved = disk(GiB, 100 * MiB, 0, entries_lba=2048)
    rows |= {
        "raw 20G, ESP last": ("raw", last),
        "qcow2 20G, ESP last": ("qcow2", qcow2_image(last)),
        "raw 1G, GPT entries moved": ("raw", moved),
        "qcow2 1G, GPT entries moved": ("qcow2", qcow2_image(moved)),
        "raw 1G 4Kn": ("raw", disk(GiB, 512 * MiB, 0, sector=4096)),
        "raw 1G, 512 GPT entries": ("raw", disk(GiB, 512 * MiB, 0, entries=512)),
        "raw 1G, arm64-only ESP": ("raw", disk(GiB, 100 * MiB, 0, files=ARM64_ONLY_ESP)),
        "raw 1G, ESP for both CPUs": ("raw", disk(GiB, 100 * MiB, 0, files=BOTH_ARCHES_ESP)),
        "raw 1G, Windows ESP": ("raw", disk(GiB, 100 * MiB, 0, files=WINDOWS_ESP)),
        "hybrid ISO (GPT + ESP)": ("raw", optical_descriptor(disk(GiB, 100 * MiB, 0))),
    }
    return rows


NO_RANGE = {"qcow2 20G": "qcow2", "raw 1G, FAT16 ESP": "raw", "hybrid ISO (GPT + ESP)": "raw"}


def inspect(inspector, server, path: str, kind: str) -> tuple[dict, float]:
    server.reset()
    start = time.perf_counter()
    report = inspector.inspect(DeploySpec("ns1.example", server.url(path), kind), SERVER)
    facts = report.facts | {"served": server.bytes_served}
    if any(c.name == "architecture" and c.severity.value != "ok" for c in report.checks):
        facts["efi_bootloader"] = "none for x86_64 (refused)"
    return facts, (time.perf_counter() - start) * 1000


def found(facts: dict) -> str:
    if facts.get("efi_bootloader"):
        return facts["efi_bootloader"]
    if facts.get("range_support") is False:
        return f"format {facts.get('format')}, ESP not read"
    return (facts.get("esp_unreadable") or "").split(":")[0] or str(facts.get("format"))


def main() -> None:
    args = parse_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    d = Path(tempfile.mkdtemp(prefix="byoi-bench-"))
    try:
        built = images(args.smoke)
        files = {f"i{n}": img.write_to(d / f"i{n}") for n, (_, img) in enumerate(built.values())}
        server = ImageServer(files)
        inspector = HttpImageInspector(allowlist="127.0.0.1/32")
        rows = []
        for n, (label, (kind, _)) in enumerate(built.items()):
            more = formats.ESP_MORE_REQUESTS, formats.ESP_MORE_BYTES
            formats.ESP_MORE_REQUESTS, formats.ESP_MORE_BYTES = 0, 0
            first, _ = inspect(inspector, server, f"/img/i{n}", kind)
            formats.ESP_MORE_REQUESTS, formats.ESP_MORE_BYTES = more
            both, ms = inspect(inspector, server, f"/img/i{n}", kind)
            second = any(both[k] > first[k] for k in ("requests", "bytes_read"))
            rows.append(
                (
                    label,
                    format_size(both.get("virtual_size")),
                    format_size(files[f"i{n}"].stat().st_size),
                    first["requests"],
                    f"{first['bytes_read']:,}",
                    found(first),
                    both["requests"],
                    f"{both['bytes_read']:,}",
                    f"{both['bytes_read'] / files[f'i{n}'].stat().st_size:.4%}",
                    "yes" if second else "",
                    f"{ms:.1f}",
                    found(both),
                )
            )
            if label in NO_RANGE:
                plain, ms = inspect(inspector, server, f"/norange/i{n}", NO_RANGE[label])
                rows.append(
                    (
                        f"{label}, server ignores Range",
                        format_size(plain.get("virtual_size")),
                        format_size(files[f"i{n}"].stat().st_size),
                        "",
                        "",
                        "",
                        plain["requests"],
                        f"{plain['bytes_read']:,}",
                        f"{plain['bytes_read'] / files[f'i{n}'].stat().st_size:.4%}",
                        "",
                        f"{ms:.1f}",
                        found(plain),
                    )
                )
        headers = ("image", "virtual", "file", "first pass: requests", "bytes",
                   "loader found", "requests", "bytes read", "of the file", "second pass",
                   "ms", "loader found (x86_64 server)")  # fmt: skip
        print(table(headers, rows))
        print()
        print(machine())
        server.shutdown()
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()

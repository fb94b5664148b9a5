"""Test images built in pure Python, the same images built with the real tools for the
cross-checks, and a range-capable HTTP server for them.

`build_images()` needs nothing but Python (byoi_bot.builders writes GPT/MBR, FAT and
qcow2). `tool_images()` builds twins with qemu-img, sfdisk and mkfs.vfat (Debian
qemu-utils, fdisk, dosfstools); tests call it after `require_tool()`. Images are sparse,
built once per process, in a temp dir removed at exit.
"""

from __future__ import annotations

import atexit
import bz2
import gzip
import io
import lzma
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from byoi_bot.builders import SparseImage
from byoi_bot.builders.fat import fat_filesystem
from byoi_bot.builders.partition_tables import ESP_TYPE, LINUX_TYPE, Part, gpt, mbr
from byoi_bot.builders.qcow2 import Qcow2Options, qcow2_image

MiB = 1024 * 1024
GiB = 1024 * MiB
SECTOR = 512
ESP_FILES = {
    "EFI/BOOT/BOOTX64.EFI": b"MZ fallback loader",
    "EFI/debian/shimx64.efi": b"MZ shim" * 100,
    "EFI/debian/grubx64.efi": b"MZ grub" * 100,
    "EFI/debian/grub.cfg": b"search --fs-uuid\n",
}

ARM64_ONLY_ESP = {"EFI/BOOT/BOOTAA64.EFI": b"MZ arm64 fallback loader"}
BOTH_ARCHES_ESP = {
    "EFI/BOOT/BOOTX64.EFI": b"MZ x64 fallback loader",
    "EFI/debian/shimaa64.efi": b"MZ arm64 shim",
    "EFI/debian/grubaa64.efi": b"MZ arm64 grub",
}
LANGUAGES = ["cs-CZ", "da-DK", "de-DE", "el-GR", "en-GB", "en-US", "es-ES", "es-MX", "et-EE",
             "fi-FI", "fr-CA", "fr-FR", "hr-HR", "hu-HU", "it-IT", "ja-JP", "ko-KR", "lt-LT",
             "lv-LV", "nb-NO", "nl-NL", "pl-PL", "pt-BR", "pt-PT", "qps-ploc", "ro-RO", "ru-RU",
             "sk-SK", "sl-SI", "sr-Latn-RS", "sv-SE", "tr-TR", "uk-UA", "zh-CN",
             "zh-TW"]  # fmt: skip
# A Windows ESP as `bcdboot` writes it: no \EFI\Boot, the loader two folders deep, and a
# folder per language beside it (35 here: more than the search lists).
WINDOWS_ESP = {
    "EFI/Microsoft/Boot/bootmgfw.efi": b"MZ windows boot manager",
    "EFI/Microsoft/Boot/bootmgr.efi": b"MZ boot manager",
    "EFI/Microsoft/Boot/memtest.efi": b"MZ memory test",
    "EFI/Microsoft/Boot/BCD": b"regf",
    "EFI/Microsoft/Boot/Fonts/wgl4_boot.ttf": b"font",
    "EFI/Microsoft/Recovery/BCD": b"regf",
    **{f"EFI/Microsoft/Boot/{lang}/bootmgfw.efi.mui": b"mui" for lang in LANGUAGES},
}

_cache: dict[str, Path] = {}
_tool_cache: dict[str, Path] = {}
_lock = threading.Lock()


def run(*args: str | Path) -> None:
    """Run a tool quietly; raise with its stderr on failure."""
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{args[0]} failed: {result.stderr or result.stdout}")


def _tempdir(prefix: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, d, True)
    return d


# Pure-Python images ---------------------------------------------------------------------


def with_fat(disk: SparseImage, start: int, size: int, files=None, bits=None) -> SparseImage:
    """Put a FAT file system holding `files` at byte `start` of `disk`."""
    for offset, data in fat_filesystem(size, files or {}, bits).extents:
        disk.put(start + offset, data)
    return disk


def gpt_disk(
    size: int = 64 * MiB,
    esp: bool = True,
    sector: int = SECTOR,
    files=None,
    disk_size: int | None = None,
    entries: int = 128,
    esp_size: int = 32 * MiB,
    esp_last: bool = False,
    entries_lba: int = 2,
) -> SparseImage:
    """A GPT disk like `sfdisk` makes from "start=2048,size=65536,type=U" + "type=L":
    a 32 MiB ESP at 1 MiB (FAT holding `files`, default ESP_FILES) and a Linux partition
    to the end; `sector` 4096 makes a 4Kn disk (`sfdisk --sector-size 4096`). `esp_last`
    puts the ESP after the Linux partition, at the disk's end (MiB-aligned);
    `entries_lba` moves the entry array (`sgdisk --move-main-table`)."""
    disk = SparseImage(size)
    table_end = (entries_lba + entries * 128 // sector) * sector
    first = -(-max(MiB, table_end) // MiB) * MiB // sector
    last = size // sector - 2 - entries * 128 // sector  # the last usable LBA
    parts = []
    if esp:
        esp_sectors = esp_size // sector
        esp_first = (last + 1 - esp_sectors) // (MiB // sector) * (MiB // sector)
        esp_first = esp_first if esp_last else first
        parts.append(Part(esp_first, esp_first + esp_sectors - 1, ESP_TYPE, "EFI System"))
        with_fat(disk, esp_first * sector, esp_size, ESP_FILES if files is None else files)
        if esp_last:
            last = esp_first - 1
        else:
            first += esp_sectors
    parts.insert(1 if esp and not esp_last else 0, Part(first, last, LINUX_TYPE, "root"))
    return gpt(disk, parts, sector, disk_size, entries, entries_lba)


def mbr_disk(size: int = 64 * MiB, esp: bool = True) -> SparseImage:
    """`sfdisk` "label: dos" with "start=2048,size=65536,type=ef" + "type=83", or one
    bootable 0x83 partition."""
    disk = SparseImage(size)
    end = size // SECTOR - 1
    if esp:
        with_fat(disk, MiB, 32 * MiB, ESP_FILES)
        return mbr(disk, [Part(2048, 2048 + 65535, 0xEF), Part(67584, end, 0x83)])
    return mbr(disk, [Part(2048, end, 0x83)], bootable=0)


def big_disk() -> SparseImage:
    """20 GiB virtual GPT disk (ESP + Linux) with 112 MiB of random data at 300 MiB."""
    disk = gpt_disk(20 * GiB)
    disk.put(300 * MiB, os.urandom(112 * MiB))
    return disk


def analysis_of_image(image: SparseImage):
    """Preflight's analysis of an in-memory image."""
    from byoi_bot.preflight.formats import analyse

    return analyse(image.pread, image.size)


def flipped(disk: SparseImage, offset: int) -> SparseImage:
    copy = SparseImage(disk.size, dict(disk.extents))
    copy.put(offset, bytes([disk.pread(offset, 1)[0] ^ 0xFF]))
    return copy


def optical_descriptor(disk: SparseImage, ident: bytes = b"CD001") -> SparseImage:
    """Add the first ISO 9660 (`CD001`) or UDF (`BEA01`) volume descriptor at 32 KiB, as
    `xorriso -as mkisofs -isohybrid-gpt-basdat` lays out a hybrid ISO over its GPT."""
    descriptor = bytearray(2048)
    descriptor[0:7] = b"\x01" + ident + b"\x01"
    disk.put(0x8000, bytes(descriptor))
    return disk


def other_formats(d: Path) -> dict[str, Path]:
    """Headers of the other formats qemu-img knows, as `qemu-img create -f <fmt>` (and
    `cryptsetup luksFormat`) write them: enough for their magic and version."""
    files = {
        "qed": struct.pack("<4sIIIQQQQQ", b"QED\0", 65536, 16, 1, 0, 4 * 65536, 64 * MiB, 0, 0),
        "qcow": struct.pack(">4sIQIBBHIQ", b"QFI\xfb", 1, 0, 0, 0, 12, 9, 0, 64 * MiB),
        "luks": b"LUKS\xba\xbe\x00\x02" + bytes(504),
        "vdi": b"<<< Oracle VM VirtualBox Disk Image >>>\n".ljust(64, b"\0")
        + b"\x7f\x10\xda\xbe\x01\x00\x01\x00",
        "parallels": b"WithoutFreeSpace" + struct.pack("<I", 2),
    }
    out = {}
    for name, data in files.items():
        out[name] = d / f"image.{name}"
        out[name].write_bytes(data.ljust(64 * 1024, b"\0"))
    return out


def iso9660(path: Path) -> Path:
    """A minimal ISO 9660 image: system area, primary volume descriptor, terminator."""
    pvd = bytearray(2048)
    pvd[0:6] = b"\x01CD001"
    pvd[6] = 1
    pvd[40:72] = b"PREFLIGHT".ljust(32)
    pvd[80:88] = struct.pack("<I", 20) + struct.pack(">I", 20)
    terminator = bytearray(2048)
    terminator[0:7] = b"\xffCD001\x01"
    path.write_bytes(bytes(16 * 2048) + pvd + terminator + bytes(2 * 2048))
    return path


def containers(d: Path, guest: bytes) -> dict[str, Path]:
    """VMDK (sparse, streamOptimized), VHD (dynamic, fixed) and VHDX files: their headers
    as qemu-img writes them (magic, version, sizes), enough to be recognised."""
    size = len(guest)
    vmdk = struct.pack("<4sIIQQQQIQQQB4s", b"KDMV", 1, 3, size // 512, 128, 1, 20, 512, 21,
                       0, 0, 0, b"\n \r\n")  # fmt: skip
    stream = struct.pack("<4sIIQQQQIQQQB4sH", b"KDMV", 3, 0x30001, size // 512, 128, 1, 20,
                         512, 0, 0, 128, 0, b"\n \r\n", 1)  # fmt: skip
    footer = struct.pack(">8sII Q I4sI4sQQ I I I 16s B", b"conectix", 2, 0x10000, 512,
                         0, b"qemu", 0x50003, b"Wi2k", size, size, 0, 3, 0,
                         bytes(16), 0).ljust(512, b"\0")  # fmt: skip
    fixed = footer[:60] + struct.pack(">I", 2) + footer[64:]
    files = {
        "vmdk": vmdk.ljust(64 * 1024, b"\0"),
        "vmdk_stream": stream.ljust(64 * 1024, b"\0"),
        "vhd": footer + b"cxsparse".ljust(1024, b"\0") + bytes(2048) + footer,
        "vhd_fixed": guest + fixed,
        "vhdx": b"vhdxfile" + "qemu-img".encode("utf-16-le").ljust(512 - 8, b"\0"),
    }
    out = {}
    for name, data in files.items():
        out[name] = d / f"image.{name}"
        out[name].write_bytes(data)
    return out


def build_images() -> dict[str, Path]:
    """Build (once per process) every test image in pure Python; returns name → path."""
    with _lock:
        if not _cache:
            _cache.update(_build(_tempdir("byoi-preflight-")))
        return dict(_cache)


def _build(d: Path) -> dict[str, Path]:
    disks = {
        "gpt_esp": gpt_disk(),
        "gpt_noesp": gpt_disk(esp=False),
        "mbr_esp": mbr_disk(),
        "mbr": mbr_disk(esp=False),
        "none": with_fat(SparseImage(64 * MiB), 0, 64 * MiB),  # FAT "superfloppy": no MBR
    }
    img: dict[str, Path] = {}
    for name, disk in disks.items():
        img[f"raw_{name}"] = disk.write_to(d / f"{name}.raw")
        img[f"qcow2_{name}"] = qcow2_image(disk).write_to(d / f"{name}.qcow2")
    gpt_esp = disks["gpt_esp"]
    for name, options in {
        "compressed": Qcow2Options(compression="zlib"),
        "zstd": Qcow2Options(compression="zstd"),
        "v2": Qcow2Options(version=2),
        "4k_clusters": Qcow2Options(cluster_bits=12),
        "2m_clusters": Qcow2Options(cluster_bits=21),
        "extended_l2": Qcow2Options(extended_l2=True),
        "prealloc": Qcow2Options(preallocate=True),
        "backing": Qcow2Options(backing_file=str(img["qcow2_gpt_esp"])),
        "data_file": Qcow2Options(data_file=str(d / "datafile.data")),
        "luks": Qcow2Options(crypt_method=2),
    }.items():
        img[f"qcow2_{name}"] = qcow2_image(gpt_esp, options).write_to(d / f"{name}.qcow2")
    big = big_disk()
    img["raw_big"] = big.write_to(d / "big.raw")
    img["qcow2_big"] = qcow2_image(big).write_to(d / "big.qcow2")
    img["raw_gpt_bad_header_crc"] = flipped(gpt_esp, SECTOR + 60).write_to(d / "bad_header.raw")
    img["raw_gpt_bad_entries_crc"] = flipped(gpt_esp, 2 * SECTOR + 60).write_to(
        d / "bad_entries.raw"
    )
    img["raw_gpt_truncated"] = gpt_esp.write_to(d / "truncated.raw")
    os.truncate(img["raw_gpt_truncated"], 48 * MiB)
    img["raw_gpt_bad_both_crc"] = flipped(
        flipped(gpt_esp, 2 * SECTOR + 60), 64 * MiB - 33 * SECTOR + 60
    ).write_to(d / "bad_both.raw")
    img["raw_gpt_empty_esp"] = gpt_disk(files={}).write_to(d / "gpt_empty_esp.raw")
    img["raw_gpt_2t"] = gpt_disk(disk_size=2 * 1024 * GiB).write_to(d / "gpt_2t.raw")
    img["raw_gpt_4kn"] = gpt_disk(sector=4096).write_to(d / "gpt_4kn.raw")
    img["raw_gpt_512_entries"] = gpt_disk(entries=512).write_to(d / "gpt_512.raw")
    img["iso_hybrid_gpt"] = optical_descriptor(gpt_disk()).write_to(d / "hybrid_gpt.iso")
    img["iso_hybrid_mbr"] = optical_descriptor(mbr_disk()).write_to(d / "hybrid_mbr.iso")
    img["udf"] = optical_descriptor(SparseImage(4 * MiB), b"BEA01").write_to(d / "image.udf")
    for bits in range(9, 22):
        options = Qcow2Options(cluster_bits=bits)
        img[f"qcow2_c{bits}"] = qcow2_image(gpt_esp, options).write_to(d / f"c{bits}.qcow2")
    img.update(_boot_fit_images(d, gpt_esp))
    img.update(other_formats(d))
    img["iso"] = iso9660(d / "image.iso")
    img.update(containers(d, disks["none"].pread(0, 4 * MiB)))
    img.update(_archives(d, gpt_esp.pread(0, 64 * 1024)))
    img["empty"] = d / "empty.raw"
    img["empty"].write_bytes(b"")
    return img


def _boot_fit_images(d: Path, gpt_esp: SparseImage) -> dict[str, Path]:
    """ESPs for other CPUs and deep loaders, and ESPs the first read budget cannot reach."""
    disks = {
        "raw_esp_arm64_only": gpt_disk(files=ARM64_ONLY_ESP),
        "raw_esp_both_arches": gpt_disk(files=BOTH_ARCHES_ESP),
        "raw_esp_windows": gpt_disk(files=WINDOWS_ESP),
        "raw_esp_last": gpt_disk(GiB, esp_last=True),
        "raw_entries_moved": gpt_disk(entries_lba=2048),
    }
    big_esp = gpt_disk(GiB, esp_size=512 * MiB)  # FAT32, as the benchmark's 1 GiB disks
    images = {
        **disks,
        "qcow2_esp_last": qcow2_image(disks["raw_esp_last"]),
        "qcow2_entries_moved": qcow2_image(disks["raw_entries_moved"]),
        "qcow2_2m_zlib": qcow2_image(gpt_esp, Qcow2Options(cluster_bits=21, compression="zlib")),
        "qcow2_2m_zstd": qcow2_image(gpt_esp, Qcow2Options(cluster_bits=21, compression="zstd")),
        "qcow2_fat32_c9": qcow2_image(big_esp, Qcow2Options(cluster_bits=9)),
        "qcow2_fat32_c12": qcow2_image(big_esp, Qcow2Options(cluster_bits=12)),
    }
    return {name: image.write_to(d / f"{name}.img") for name, image in images.items()}


def _archives(d: Path, data: bytes) -> dict[str, Path]:
    out = {
        "gzip": d / "image.raw.gz",
        "xz": d / "image.raw.xz",
        "bzip2": d / "image.raw.bz2",
        "zstd": d / "image.raw.zst",
        "zip": d / "image.zip",
        "tar": d / "image.tar",
    }
    out["gzip"].write_bytes(gzip.compress(data))
    out["xz"].write_bytes(lzma.compress(data))
    out["bzip2"].write_bytes(bz2.compress(data))
    out["zstd"].write_bytes(b"\x28\xb5\x2f\xfd" + bytes(60))
    with zipfile.ZipFile(out["zip"], "w") as z:
        z.writestr("image.raw", data)
    with tarfile.open(out["tar"], "w", format=tarfile.USTAR_FORMAT) as t:
        info = tarfile.TarInfo("image.raw")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return out


# The same images made by the real tools (cross-checks only) ----------------------------


def sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def partitioned(path: Path, size: int, label: str, *parts: str) -> Path:
    """A sparse raw disk partitioned with sfdisk (`parts` are sfdisk script lines)."""
    sparse(path, size)
    script = f"label: {label}\n" + "\n".join(parts) + "\n"
    subprocess.run(
        ["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(path)],
        input=script,
        text=True,
        check=True,
        capture_output=True,
    )
    return path


def qcow2(src: Path, dest: Path, *options: str) -> Path:
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", *options, src, dest)
    return dest


def luks_qcow2(path: Path, attempts: int = 3) -> Path:
    """A LUKS-encrypted qcow2. qemu's PBKDF benchmark sometimes fails ("Unable to get
    accurate CPU usage") on busy machines: retry."""
    for attempt in range(attempts):
        try:
            run("qemu-img", "create", "-q", "--object", "secret,id=s0,data=pw", "-f", "qcow2",
                "-o", "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10",
                path, "64M")  # fmt: skip
            return path
        except RuntimeError:
            if attempt == attempts - 1:
                raise
    return path


def tool_images() -> dict[str, Path]:
    """Twins of build_images()'s images made with sfdisk, mkfs.vfat and qemu-img (same
    names). Call `require_tool("qemu-img", "sfdisk", "mkfs.vfat")` first."""
    with _lock:
        if not _tool_cache:
            _tool_cache.update(_build_with_tools(_tempdir("byoi-preflight-tools-")))
        return dict(_tool_cache)


def _build_with_tools(d: Path) -> dict[str, Path]:
    size = 64 * MiB
    esp = "start=2048, size=65536, type=U"
    img: dict[str, Path] = {}
    img["raw_gpt_esp"] = partitioned(d / "gpt_esp.raw", size, "gpt", esp, "type=L")
    run("mkfs.vfat", "--offset", 2048, img["raw_gpt_esp"], 32 * 1024)
    img["raw_gpt_noesp"] = partitioned(d / "gpt_noesp.raw", size, "gpt", "type=L")
    img["raw_mbr_esp"] = partitioned(
        d / "mbr_esp.raw", size, "dos", "start=2048, size=65536, type=ef", "type=83"
    )
    img["raw_mbr"] = partitioned(d / "mbr.raw", size, "dos", "type=83, bootable")
    img["raw_none"] = sparse(d / "none.raw", size)
    run("mkfs.vfat", img["raw_none"])
    for name in ("gpt_esp", "gpt_noesp", "mbr_esp", "mbr", "none"):
        img[f"qcow2_{name}"] = qcow2(img[f"raw_{name}"], d / f"{name}.qcow2")
    gpt_raw = img["raw_gpt_esp"]
    img["qcow2_compressed"] = qcow2(gpt_raw, d / "compressed.qcow2", "-c")
    img["qcow2_zstd"] = qcow2(gpt_raw, d / "zstd.qcow2", "-c", "-o", "compression_type=zstd")
    img["qcow2_v2"] = qcow2(gpt_raw, d / "v2.qcow2", "-o", "compat=0.10")
    img["qcow2_4k_clusters"] = qcow2(gpt_raw, d / "c4k.qcow2", "-o", "cluster_size=4096")
    img["qcow2_2m_clusters"] = qcow2(gpt_raw, d / "c2m.qcow2", "-o", "cluster_size=2M")
    img["qcow2_extended_l2"] = qcow2(gpt_raw, d / "extl2.qcow2", "-o", "extended_l2=on")
    img["qcow2_prealloc"] = qcow2(gpt_raw, d / "prealloc.qcow2", "-o", "preallocation=metadata")
    img["qcow2_backing"] = d / "backing.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", img["qcow2_gpt_esp"], "-F", "qcow2",
        img["qcow2_backing"])  # fmt: skip
    img["qcow2_data_file"] = d / "datafile.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-o", f"data_file={d / 'datafile.data'}",
        img["qcow2_data_file"], "64M")  # fmt: skip
    img["qcow2_luks"] = luks_qcow2(d / "luks.qcow2")
    for name, options in {
        "vmdk": ("-O", "vmdk"),
        "vmdk_stream": ("-O", "vmdk", "-o", "subformat=streamOptimized"),
        "vhd": ("-O", "vpc"),
        "vhd_fixed": ("-O", "vpc", "-o", "subformat=fixed"),
        "vhdx": ("-O", "vhdx"),
    }.items():
        img[name] = d / f"image.{name}"
        run("qemu-img", "convert", "-f", "raw", *options, img["raw_none"], img[name])
    return img


class ImageServer(ThreadingHTTPServer):
    """Serves files on 127.0.0.1 and counts requests and body bytes.

    Paths: `/img/<name>` (ranges), `/norange/<name>` (always 200), `/auth/<name>` (needs
    `Authorization: Bearer s3cret`), `/vhost/<name>` (needs `Host: images.example`),
    `/redirect/<name>`, `/loop` (endless redirects), `/to?url=<url>` (302 there),
    `/status/<code>`.
    """

    daemon_threads = True

    def __init__(self, files: dict[str, Path]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = files
        self.requests = 0
        self.bytes_served = 0
        self.last_headers: dict[str, str] = {}
        self.counter_lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def reset(self) -> None:
        with self.counter_lock:
            self.requests = self.bytes_served = 0

    def handle_error(self, request, client_address) -> None:
        """A client closing mid-body (as preflight does on a 200 answer) is no error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: ImageServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        with self.server.counter_lock:
            self.server.requests += 1
            self.server.last_headers = dict(self.headers.items())
        parts = urlsplit(self.path)
        route, _, name = parts.path.lstrip("/").partition("/")
        if route == "img":
            self._file(name, ranges=True)
        elif route == "norange":
            self._file(name, ranges=False)
        elif route == "auth":
            ok = self.headers.get("Authorization") == "Bearer s3cret"
            self._file(name, ranges=True) if ok else self._status(401)
        elif route == "vhost":
            ok = self.headers.get("Host", "").split(":")[0] == "images.example"
            self._file(name, ranges=True) if ok else self._status(404)
        elif route == "redirect":
            self._redirect(f"/img/{name}")
        elif route == "loop":
            self._redirect("/loop")
        elif route == "to":
            self._redirect(parse_qs(parts.query)["url"][0])
        elif route == "status":
            self._status(int(name))
        else:
            self._status(404)

    def _file(self, name: str, ranges: bool) -> None:
        path = self.server.files.get(name)
        if path is None:
            return self._status(404)
        size = path.stat().st_size
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        if not ranges or not match:
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            return self._copy(path, 0, size)
        first, last = int(match.group(1)), min(int(match.group(2)), size - 1)
        if first >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            return self.end_headers()
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(last - first + 1))
        self.end_headers()
        self._copy(path, first, last - first + 1)

    def _copy(self, path: Path, offset: int, length: int) -> None:
        """Send the bytes with sendfile(2), fast enough for the checksum benchmark (counted
        before they are sent, so a client never sees bytes not yet counted)."""
        with self.server.counter_lock:
            self.server.bytes_served += length
        with open(path, "rb") as f:
            try:
                self.connection.sendfile(f, offset, length)
            except OSError:
                self.close_connection = True

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _status(self, code: int) -> None:
        body = b"nope\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


_servers: dict[str, ImageServer] = {}


def image_server() -> ImageServer:
    """One shared server per process over all built images."""
    with _lock:
        if "main" not in _servers:
            _servers["main"] = ImageServer({})
    server = _servers["main"]
    server.files = build_images()
    return server

"""Real test images (qemu-img, sfdisk, mkfs.vfat) and a range-capable HTTP server for them.

Images are sparse and built once per process (`build_images()` caches), in a temp dir
removed at exit. Needs the Debian packages qemu-utils, fdisk, dosfstools.
"""

from __future__ import annotations

import atexit
import bz2
import gzip
import lzma
import os
import re
import shutil
import struct
import subprocess
import tarfile
import tempfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

MiB = 1024 * 1024
GiB = 1024 * MiB
SECTOR = 512

_cache: dict[str, Path] = {}
_lock = threading.Lock()


def run(*args: str | Path) -> None:
    """Run a tool quietly; raise with its stderr on failure."""
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{args[0]} failed: {result.stderr or result.stdout}")


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


def with_esp_filesystem(path: Path, start_sector: int, size: int) -> Path:
    """Format a FAT filesystem in the partition at `start_sector` (size in bytes)."""
    run("mkfs.vfat", "--offset", start_sector, path, size // 1024)
    return path


def qcow2(src: Path, dest: Path, *options: str) -> Path:
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", *options, src, dest)
    return dest


def flip_byte(src: Path, dest: Path, offset: int) -> Path:
    shutil.copyfile(src, dest)
    with open(dest, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
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


def big_image(d: Path) -> Path:
    """20 GiB virtual GPT disk (ESP + Linux) with 112 MiB of random data in the Linux partition."""
    raw = partitioned(
        d / "big.raw",
        20 * GiB,
        "gpt",
        "start=2048, size=204800, type=U",
        "type=L",
    )
    with open(raw, "r+b") as f:
        f.seek(300 * MiB)
        for _ in range(14):
            f.write(os.urandom(8 * MiB))
    return raw


def build_images() -> dict[str, Path]:
    """Build (once per process) every test image; returns name → path."""
    with _lock:
        if not _cache:
            d = Path(tempfile.mkdtemp(prefix="byoi-preflight-"))
            atexit.register(shutil.rmtree, d, True)
            _cache.update(_build(d))
        return dict(_cache)


def _build(d: Path) -> dict[str, Path]:
    size = 64 * MiB
    esp = "start=2048, size=65536, type=U"
    img: dict[str, Path] = {}
    img["raw_gpt_esp"] = with_esp_filesystem(
        partitioned(d / "gpt_esp.raw", size, "gpt", esp, "type=L"), 2048, 32 * MiB
    )
    img["raw_gpt_noesp"] = partitioned(d / "gpt_noesp.raw", size, "gpt", "type=L")
    img["raw_mbr_esp"] = partitioned(
        d / "mbr_esp.raw", size, "dos", "start=2048, size=65536, type=ef", "type=83"
    )
    img["raw_mbr"] = partitioned(d / "mbr.raw", size, "dos", "type=83, bootable")
    img["raw_none"] = sparse(d / "none.raw", size)
    run("mkfs.vfat", img["raw_none"])  # a "superfloppy": 0x55AA in sector 0, but no MBR
    for name in ("gpt_esp", "gpt_noesp", "mbr_esp", "mbr", "none"):
        img[f"qcow2_{name}"] = qcow2(img[f"raw_{name}"], d / f"{name}.qcow2")
    gpt = img["raw_gpt_esp"]
    img["qcow2_compressed"] = qcow2(gpt, d / "compressed.qcow2", "-c")
    img["qcow2_zstd"] = qcow2(gpt, d / "zstd.qcow2", "-c", "-o", "compression_type=zstd")
    img["qcow2_v2"] = qcow2(gpt, d / "v2.qcow2", "-o", "compat=0.10")
    img["qcow2_4k_clusters"] = qcow2(gpt, d / "c4k.qcow2", "-o", "cluster_size=4096")
    img["qcow2_2m_clusters"] = qcow2(gpt, d / "c2m.qcow2", "-o", "cluster_size=2M")
    img["qcow2_extended_l2"] = qcow2(gpt, d / "extl2.qcow2", "-o", "extended_l2=on")
    img["qcow2_prealloc"] = qcow2(gpt, d / "prealloc.qcow2", "-o", "preallocation=metadata")
    img["qcow2_backing"] = d / "backing.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", img["qcow2_gpt_esp"], "-F", "qcow2",
        img["qcow2_backing"])  # fmt: skip
    img["qcow2_data_file"] = d / "datafile.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-o", f"data_file={d / 'datafile.data'}",
        img["qcow2_data_file"], "64M")  # fmt: skip
    img["qcow2_luks"] = luks_qcow2(d / "luks.qcow2")
    img["raw_big"] = big_image(d)
    img["qcow2_big"] = qcow2(img["raw_big"], d / "big.qcow2")
    img["raw_gpt_bad_header_crc"] = flip_byte(gpt, d / "bad_header.raw", SECTOR + 60)
    img["raw_gpt_bad_entries_crc"] = flip_byte(gpt, d / "bad_entries.raw", 2 * SECTOR + 60)
    img["raw_gpt_truncated"] = d / "truncated.raw"
    shutil.copyfile(gpt, img["raw_gpt_truncated"])
    os.truncate(img["raw_gpt_truncated"], 48 * MiB)
    img["iso"] = iso9660(d / "image.iso")
    for name, options in {
        "vmdk": ("-O", "vmdk"),
        "vmdk_stream": ("-O", "vmdk", "-o", "subformat=streamOptimized"),
        "vhd": ("-O", "vpc"),
        "vhd_fixed": ("-O", "vpc", "-o", "subformat=fixed"),
        "vhdx": ("-O", "vhdx"),
    }.items():
        img[name] = d / f"image.{name}"
        run("qemu-img", "convert", "-f", "raw", *options, img["raw_none"], img[name])
    img.update(_archives(d, gpt))
    img["empty"] = sparse(d / "empty.raw", 0)
    return img


def _archives(d: Path, src: Path) -> dict[str, Path]:
    data = src.read_bytes()[: 64 * 1024]
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
        t.add(src, arcname="image.raw")
    return out


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
        with open(path, "rb") as f:
            f.seek(offset)
            while length > 0:
                chunk = f.read(min(length, 256 * 1024))
                with self.server.counter_lock:
                    self.server.bytes_served += len(chunk)
                try:
                    self.wfile.write(chunk)
                except OSError:
                    self.close_connection = True
                    return
                length -= len(chunk)

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

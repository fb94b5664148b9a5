"""Demo disk images built in memory (byoi_bot.builders), so the shell works with nothing
installed.

A Debian-like disk: GPT, a 512 MiB FAT32 EFI System Partition holding
`\\EFI\\BOOT\\BOOTX64.EFI` and `\\EFI\\debian\\shimx64.efi` + `grubx64.efi`, and a Linux
root to the end. Only the written sectors cost memory, so a "20 GiB" image costs a few KiB.
"""

from __future__ import annotations

from ..builders import SparseImage
from ..builders.fat import fat_filesystem
from ..builders.partition_tables import ESP_TYPE, LINUX_TYPE, Part, gpt
from ..builders.qcow2 import qcow2_image

SECTOR = 512
MiB = 1024**2
GiB = 1024**3
ESP_SIZE = 512 * MiB
ESP_FILES = {
    "EFI/BOOT/BOOTX64.EFI": b"MZ fallback bootloader",
    "EFI/debian/shimx64.efi": b"MZ shim",
    "EFI/debian/grubx64.efi": b"MZ grub",
    "EFI/debian/grub.cfg": b"search.fs_uuid 0000 root\n",
}

__all__ = ["SparseImage", "demo_images", "gpt_disk"]


def gpt_disk(size: int, with_esp: bool = True) -> SparseImage:
    """A GPT disk of `size` bytes: the ESP (optional) and a Linux root."""
    disk = SparseImage(size)
    sectors = size // SECTOR
    start, parts = 2048, []
    if with_esp:
        parts.append(Part(start, start + ESP_SIZE // SECTOR - 1, ESP_TYPE, "EFI System"))
        for offset, data in fat_filesystem(ESP_SIZE, ESP_FILES, 32).extents:
            disk.put(start * SECTOR + offset, data)
        start += ESP_SIZE // SECTOR
    parts.append(Part(start, sectors - 34, LINUX_TYPE, "root"))
    return gpt(disk, parts)


def iso_image(size: int) -> SparseImage:
    """An ISO 9660 image (a primary volume descriptor at 32 KiB)."""
    image = SparseImage(size)
    image.put(0x8000, b"\x01CD001\x01")
    return image


def demo_images() -> dict[str, SparseImage]:
    """The images the shell serves, by path."""
    debian = gpt_disk(4 * GiB)
    return {
        "/debian-12.qcow2": qcow2_image(debian),
        "/debian-12.raw": debian,
        "/no-esp.raw": gpt_disk(4 * GiB, with_esp=False),
        "/huge.raw": gpt_disk(40 * GiB),
        "/rescue.iso": iso_image(700 * MiB),
    }

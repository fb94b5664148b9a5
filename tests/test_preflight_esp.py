"""The ESP's FAT12/16/32 read over range reads, and the EFI bootloader chosen from it."""

from __future__ import annotations

import subprocess

import image_factory
import pytest
from bot_harness import REQUESTER, BotHarness
from tools import require_tool

from byoi_bot.builders import SparseImage
from byoi_bot.builders.fat import fat_filesystem
from byoi_bot.core.request import DeploySpec
from byoi_bot.preflight.esp import EspContents, read_esp
from byoi_bot.preflight.fat import FatError, FatVolume, find
from byoi_bot.preflight.read_cache import CachedReads

MiB = image_factory.MiB
SIZES = {12: 4 * MiB, 16: 32 * MiB, 32: 40 * MiB}
FILES = {
    "EFI/BOOT/BOOTX64.EFI": b"fallback",
    "EFI/BOOT/fbx64.efi": b"shim fallback helper",
    "EFI/debian/shimx64.efi": b"shim",
    "EFI/debian/mmx64.efi": b"mok manager",
    "EFI/debian/grubx64.efi": b"grub",
    "EFI/Microsoft/Boot/bootmgfw.efi": b"windows",
    "EFI/ubuntu/A Long Name For A Loader.efi": b"long",
    **{f"EFI/many/file number {i:02}.txt": b"x" for i in range(40)},
}


def reads_of(image: SparseImage) -> CachedReads:
    return CachedReads(image.pread, image.size)


@pytest.mark.parametrize("bits", [12, 16, 32])
def test_bootloaders_found_on_every_fat(bits):
    reads = reads_of(fat_filesystem(SIZES[bits], FILES, bits))
    esp = read_esp(reads.read_many, 0)
    assert esp.filesystem == f"FAT{bits}"
    assert sorted(esp.bootloaders) == sorted(
        [
            "\\EFI\\BOOT\\BOOTX64.EFI",
            "\\EFI\\debian\\shimx64.efi",
            "\\EFI\\debian\\grubx64.efi",
            "\\EFI\\ubuntu\\A Long Name For A Loader.efi",
        ]
    )
    assert esp.chosen == "\\EFI\\debian\\shimx64.efi"


@pytest.mark.parametrize("bits", [12, 16, 32])
def test_long_names_case_and_directories_spanning_clusters(bits):
    volume = FatVolume(reads_of(fat_filesystem(SIZES[bits], FILES, bits)).read_many, 0)
    efi = find(volume.root(), "efi")
    (listing,) = volume.directories([efi.cluster])
    assert {e.name for e in listing} == {"BOOT", "debian", "Microsoft", "ubuntu", "many"}
    many = find(listing, "MANY")
    (files,) = volume.directories([many.cluster])
    assert len(files) == 40 and find(files, "FILE NUMBER 39.TXT").size == 1
    assert volume.cluster_size < 40 * 3 * 32  # the directory really spans clusters


SHIM, GRUB = "\\EFI\\ubuntu\\shimx64.efi", "\\EFI\\ubuntu\\grubx64.efi"
FALLBACK, FALLBACK_ARM = "\\EFI\\BOOT\\BOOTX64.EFI", "\\EFI\\BOOT\\BOOTAA64.EFI"
SYSTEMD = "\\EFI\\systemd\\systemd-bootx64.efi"
FEDORA_X64, FEDORA_ARM = "\\efi\\fedora\\shimx64.efi", "\\efi\\fedora\\shimaa64.efi"


@pytest.mark.parametrize(
    ("found", "chosen"),
    [
        ([FALLBACK, GRUB], GRUB),
        ([GRUB, SHIM], SHIM),
        ([FALLBACK, SYSTEMD], SYSTEMD),
        ([FALLBACK_ARM, FALLBACK], FALLBACK),
        ([FEDORA_ARM, FEDORA_X64], FEDORA_X64),
        ([], None),
    ],
)
def test_bootloader_choice_rule(found, chosen):
    assert EspContents("FAT32", found).chosen == chosen


def test_not_a_fat_file_system():
    with pytest.raises(FatError, match="not a FAT boot sector"):
        FatVolume(reads_of(SparseImage(MiB)).read_many, 0)


def test_esp_that_is_not_fat_is_reported_not_fatal():
    disk = image_factory.gpt_disk(files={})
    disk.put(MiB, bytes(512))  # the ESP's boot sector wiped
    result = image_factory.analysis_of_image(disk)
    assert result.table.has_esp and result.esp is None
    assert "not a FAT boot sector" in result.esp_unreadable


@pytest.mark.parametrize("bits", ["12", "16", "32"])
def test_esp_made_by_mkfs_vfat_and_mcopy(tmp_path, bits):
    require_tool("mkfs.vfat", "mcopy", "mmd")
    esp = tmp_path / "esp.img"
    size = {"12": 4, "16": 32, "32": 64}[bits]
    with open(esp, "wb") as f:
        f.truncate(size * MiB)
    image_factory.run("mkfs.vfat", "-F", bits, esp)
    for directory in ("::/EFI", "::/EFI/BOOT", "::/EFI/debian"):
        image_factory.run("mmd", "-i", esp, directory)
    for name, dest in (
        ("BOOTX64.EFI", "BOOT"),
        ("shimx64.efi", "debian"),
        ("grubx64.efi", "debian"),
    ):
        src = tmp_path / name
        src.write_bytes(b"MZ")
        image_factory.run("mcopy", "-i", esp, src, f"::/EFI/{dest}/{name}")
    data = esp.read_bytes()
    reads = CachedReads(lambda o, n: data[o : o + n], len(data))
    found = read_esp(reads.read_many, 0)
    assert found.filesystem == f"FAT{bits}"
    listing = subprocess.run(
        ["mdir", "-i", esp, "-/", "-b", "::/EFI"], capture_output=True, text=True
    )
    efi_files = [
        line.split("::/EFI/")[1]
        for line in listing.stdout.split()
        if line.endswith((".efi", ".EFI"))
    ]
    assert sorted(b.split("\\", 2)[2].replace("\\", "/") for b in found.bootloaders) == sorted(
        efi_files
    )
    assert found.chosen == "\\EFI\\debian\\shimx64.efi"


def test_the_card_warns_of_an_efi_bootloader_missing_from_the_esp(tmp_path):
    h = BotHarness(tmp_path)
    try:
        spec = DeploySpec(
            server="ns1001.ip-51-75-1.eu",
            image_url=f"{h.images.base_url}/debian-12.qcow2",
            image_type="qcow2",
            efi_bootloader="\\efi\\ubuntu\\shimx64.efi",
        )
        request = h.bot.deployments.request(spec, REQUESTER, "C0OPS")
        card = str(h.slack.message("C0OPS", request.message_ts)["blocks"])
        assert "⚠️ *efi_bootloader*" in card
        assert "is not in the image's EFI System Partition" in card
    finally:
        h.close()

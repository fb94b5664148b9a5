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
from byoi_bot.preflight import esp as esp_module
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
            "\\EFI\\Microsoft\\Boot\\bootmgfw.efi",
            "\\EFI\\ubuntu\\A Long Name For A Loader.efi",
        ]
    )
    assert esp.chosen == "\\EFI\\debian\\shimx64.efi" and esp.unlisted == 0


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
GRUB_ARM, GRUB_IA32 = "\\EFI\\debian\\grubaa64.efi", "\\EFI\\debian\\grubia32.efi"
WINDOWS = "\\EFI\\Microsoft\\Boot\\bootmgfw.efi"
FWUPD = "\\EFI\\ubuntu\\fwupdx64.efi"


@pytest.mark.parametrize(
    ("found", "arch", "chosen"),
    [
        ([FALLBACK, GRUB], "x86_64", GRUB),
        ([GRUB, SHIM], "x86_64", SHIM),
        ([FALLBACK, SYSTEMD], "x86_64", SYSTEMD),
        ([FALLBACK_ARM, FALLBACK], "x86_64", FALLBACK),
        ([FEDORA_ARM, FEDORA_X64], "x86_64", FEDORA_X64),
        ([FEDORA_ARM, FEDORA_X64], "arm64", FEDORA_ARM),
        # the architecture comes before the kind: an x64 fallback over an aa64 shim
        ([FEDORA_ARM, GRUB_ARM, FALLBACK], "x86_64", FALLBACK),
        ([FEDORA_ARM, GRUB_ARM, FALLBACK], "arm64", FEDORA_ARM),
        ([FEDORA_ARM, GRUB_ARM, FALLBACK], "", FALLBACK),  # unknown: x64 first
        ([FALLBACK_ARM], "x86_64", None),  # loaders for another CPU never count
        ([FALLBACK], "arm64", None),
        ([GRUB_IA32, FALLBACK], "x86", FALLBACK),  # `x86` may be 64-bit: x64 first
        ([GRUB_IA32, FALLBACK_ARM], "x86", GRUB_IA32),
        ([GRUB_IA32], "x86_64", None),
        ([WINDOWS, FALLBACK], "x86_64", FALLBACK),  # named for the CPU before unnamed
        ([WINDOWS, FALLBACK_ARM], "x86_64", WINDOWS),  # a name without a CPU counts
        ([WINDOWS, FALLBACK_ARM], "arm64", FALLBACK_ARM),
        ([FALLBACK_ARM, FALLBACK], "ppc64", FALLBACK),  # no UEFI loader name: as unknown
        ([], "x86_64", None),
    ],
)
def test_bootloader_choice_rule(found, arch, chosen):
    assert EspContents("FAT32", found).choose(arch) == chosen


@pytest.mark.parametrize(
    ("path", "machine"),
    [
        (FALLBACK, "x64"),
        (FALLBACK_ARM, "aa64"),
        (GRUB_IA32, "ia32"),
        ("\\EFI\\BOOT\\BOOTARM.EFI", "arm"),
        ("/efi/boot/bootriscv64.efi", "riscv64"),
        ("\\EFI\\BOOT\\BOOTLOONGARCH64.EFI", "loongarch64"),
        (SYSTEMD, "x64"),
        (WINDOWS, None),
        ("\\EFI\\x64\\loader.efi", None),  # only the file's name counts
    ],
)
def test_a_loaders_machine_comes_from_its_name(path, machine):
    assert esp_module.machine(path) == machine


def test_fwupd_and_shim_helpers_are_not_bootloaders():
    reads = reads_of(fat_filesystem(4 * MiB, {FWUPD[1:].replace("\\", "/"): b"fwupd"}, 12))
    assert read_esp(reads.read_many, 0).bootloaders == []


def test_the_search_covers_the_whole_efi_tree_within_its_bounds():
    deep = {
        "EFI/a/b/c/d/deep4.efi": b"found: four levels below \\EFI",
        "EFI/a/b/c/d/e/deep5.efi": b"not listed: five levels below",
        "EFI/top.efi": b"directly in \\EFI",
    }
    esp = read_esp(reads_of(fat_filesystem(4 * MiB, deep, 12)).read_many, 0)
    assert sorted(esp.bootloaders) == ["\\EFI\\a\\b\\c\\d\\deep4.efi", "\\EFI\\top.efi"]
    assert esp.unlisted == 1 and "at most 4 levels" in esp.unlisted_note
    wide = {f"EFI/vendor{i:02}/loader{i:02}x64.efi": b"x" for i in range(40)}
    esp = read_esp(reads_of(fat_filesystem(4 * MiB, wide, 12)).read_many, 0)
    assert len(esp.bootloaders) == esp_module.MAX_DIRECTORIES and esp.unlisted == 8


def test_a_directory_loop_ends():
    disk = fat_filesystem(4 * MiB, {"EFI/a/loop.efi": b"x"}, 12)
    volume = FatVolume(reads_of(disk).read_many, 0)
    efi = find(volume.root(), "EFI")
    a = find(volume.directories([efi.cluster])[0], "a")
    # point \EFI\a\'s first entry (loop.efi) at \EFI's cluster, as a directory
    offset = volume.data_offset - volume.offset + (a.cluster - 2) * volume.cluster_size
    entry = bytearray(disk.pread(offset + 64, 32))
    entry[11], entry[26:28] = 0x10, efi.cluster.to_bytes(2, "little")
    disk.put(offset + 64, bytes(entry))
    esp = read_esp(reads_of(disk).read_many, 0)
    assert esp.bootloaders == [] and esp.unlisted == 1  # stopped by the depth bound


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
    image_factory.run("mmd", "-i", esp, "::/EFI")
    for directory in ("BOOT", "debian", "Microsoft", "Microsoft/Boot"):
        image_factory.run("mmd", "-i", esp, f"::/EFI/{directory}")
    for name, dest in (
        ("BOOTX64.EFI", "BOOT"),
        ("shimx64.efi", "debian"),
        ("grubx64.efi", "debian"),
        ("bootmgfw.efi", "Microsoft/Boot"),
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

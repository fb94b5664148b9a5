"""The EFI bootloader inside the image's EFI System Partition, in OVHcloud's path form.

Which one is chosen (the rule, documented in docs/preflight.md):
1. a distribution's shim (`\\EFI\\<vendor>\\shimx64.efi`): it starts Secure Boot's chain;
2. else a distribution's GRUB (`\\EFI\\<vendor>\\grubx64.efi`);
3. else another vendor's loader (`systemd-bootx64.efi`, `bootmgfw.efi`, …);
4. else the removable-media fallback `\\EFI\\BOOT\\BOOTX64.EFI`.
x64 loaders come before aa64 ones; vendors in alphabetical order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .fat import FatEntry, FatVolume, ReadMany, find

FALLBACK_DIR = "boot"
HELPERS = ("mm", "fb")  # shim's MokManager and fallback: .efi files that boot no OS


@dataclass
class EspContents:
    """What the ESP holds: its file system kind and every `.efi` under `\\EFI\\*\\`."""

    filesystem: str
    bootloaders: list[str] = field(default_factory=list)

    @property
    def chosen(self) -> str | None:
        """The bootloader to give OVHcloud as efiBootloaderPath (see the module's rule)."""
        return min(self.bootloaders, key=_rank, default=None)

    def holds(self, path: str) -> bool:
        """Whether `path` (either slash, any case) is one of the bootloaders found."""
        wanted = _normal(path)
        return any(_normal(b) == wanted for b in self.bootloaders)

    def facts(self) -> dict:
        return {
            "esp_filesystem": self.filesystem,
            "efi_bootloader": self.chosen,
            "efi_bootloaders": list(self.bootloaders),
        }


def read_esp(read_many: ReadMany, offset: int) -> EspContents:
    """List the `.efi` files of `\\EFI\\<dir>\\` in the FAT file system at `offset`."""
    volume = FatVolume(read_many, offset)
    contents = EspContents(volume.kind)
    efi = find(volume.root(), "EFI")
    if efi is None or not efi.is_dir:
        return contents
    (listing,) = volume.directories([efi.cluster])
    subdirs = [e for e in listing if e.is_dir and e.cluster]
    listings = volume.directories([d.cluster for d in subdirs])
    for subdir, entries in zip(subdirs, listings, strict=True):
        contents.bootloaders += _loaders(efi, subdir, entries)
    return contents


def _loaders(efi: FatEntry, subdir: FatEntry, entries: list[FatEntry]) -> list[str]:
    return [
        f"\\{efi.name}\\{subdir.name}\\{e.name}"
        for e in entries
        if not e.is_dir
        and e.name.lower().endswith(".efi")
        and not e.name.lower().startswith(HELPERS)
    ]


def _normal(path: str) -> str:
    return "\\" + path.replace("/", "\\").strip("\\").lower()


def _rank(path: str) -> tuple[int, int, str]:
    _, _, vendor, name = _normal(path).split("\\", 3)
    arch = 0 if "x64" in name else 1
    if vendor == FALLBACK_DIR:
        return 3, arch, path
    if name.startswith("shim"):
        return 0, arch, path
    if name.startswith("grub"):
        return 1, arch, path
    return 2, arch, path

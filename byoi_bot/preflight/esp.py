"""The EFI bootloaders inside the image's EFI System Partition, in OVHcloud's path form, and
the one chosen for a server's CPU architecture.

The search lists the `\\EFI` tree level by level (directory entries only, never a file's
contents), at most MAX_DEPTH levels below `\\EFI` and MAX_DIRECTORIES directories; a level
that does not fit the bounds (or the reader's budget) is left unlisted and counted.

A loader's architecture is read from its name: UEFI's machine suffixes (`BOOTX64.EFI`,
`shimaa64.efi`, `grubia32.efi`, …). Loaders for another architecture than the server's
never count. Which one is chosen (the rule, documented in docs/preflight.md):
0. loaders named for the server's architecture, then those whose name gives none
   (`bootmgfw.efi`); within each,
1. a distribution's shim (`\\EFI\\<vendor>\\shimx64.efi`): it starts Secure Boot's chain;
2. else a distribution's GRUB (`\\EFI\\<vendor>\\grubx64.efi`);
3. else another vendor's loader (`systemd-bootx64.efi`, `bootmgfw.efi`, …);
4. else the removable-media fallback `\\EFI\\BOOT\\BOOTX64.EFI`;
paths in alphabetical order last. For a server of unknown architecture: x64 loaders, then
those whose name gives none, then the others, each by the same kind order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .fat import FatEntry, FatVolume, ReadMany, find
from .read_cache import ReadLimit

FALLBACK_DIR = "\\efi\\boot"
# .efi files that boot no OS: shim's MokManager and fallback, fwupd's capsule updater.
HELPERS = ("mm", "fb", "fwupd")
MAX_DEPTH = 4  # directory levels listed below \EFI: \EFI\a\b\c\d\
MAX_DIRECTORIES = 32  # directories listed below \EFI, all levels together
# UEFI's machine suffixes of loader names (UEFI 2.10, 3.5.1.1), longest first, and the
# architecture (OVHcloud's processorArchitecture values) each one runs on.
MACHINES = {
    "loongarch64": "loongarch64",
    "riscv64": "riscv64",
    "aa64": "arm64",
    "ia32": "x86",
    "x64": "x86_64",
    "arm": "armhf32",
}
# The machines a server of each architecture runs, preferred first. OVHcloud's `x86` and
# `x86-ht` do not say whether the CPU is 64-bit: both x86 machines count, x64 first.
RUNS = {
    "x86_64": ("x64",),
    "x86": ("x64", "ia32"),
    "x86-ht": ("x64", "ia32"),
    "arm64": ("aa64",),
    "armhf32": ("arm",),
}


@dataclass
class EspContents:
    """What the ESP holds: its file system kind, every `.efi` under `\\EFI`, how many
    directories were left unlisted, and the reader's limit that stopped the search (None
    when it ended, or stopped at MAX_DEPTH / MAX_DIRECTORIES)."""

    filesystem: str
    bootloaders: list[str] = field(default_factory=list)
    unlisted: int = 0
    stopped: str | None = None

    @property
    def chosen(self) -> str | None:
        """The bootloader for a server of unknown architecture."""
        return self.choose("")

    def choose(self, architecture: str) -> str | None:
        """The bootloader to give OVHcloud as efiBootloaderPath on a server of
        `architecture` (see the module's rule), or None when none runs there."""
        machines = RUNS.get(architecture)
        order = (*machines, None) if machines else ("x64", None, *MACHINES)
        fits = [p for p in self.bootloaders if machine(p) in order]
        return min(fits, key=lambda p: (order.index(machine(p)), _kind(p), p), default=None)

    def holds(self, path: str) -> bool:
        """Whether `path` (either slash, any case) is one of the bootloaders found."""
        wanted = _normal(path)
        return any(_normal(b) == wanted for b in self.bootloaders)

    @property
    def unlisted_note(self) -> str | None:
        """Why part of the `\\EFI` tree was not listed, in words, or None."""
        if not self.unlisted:
            return None
        bounds = f"the search lists at most {MAX_DEPTH} levels and {MAX_DIRECTORIES} directories"
        why = self.stopped or bounds
        return f"{self.unlisted} directories below \\EFI not listed: {why}"

    def facts(self) -> dict:
        facts = {
            "esp_filesystem": self.filesystem,
            "efi_bootloader": self.chosen,
            "efi_bootloaders": list(self.bootloaders),
        }
        if self.unlisted:
            facts["esp_unreadable"] = self.unlisted_note
        return facts


def machine(path: str) -> str | None:
    """The UEFI machine a loader is for, from its name (`x64`, `aa64`, …), or None."""
    stem = _normal(path).rsplit("\\", 1)[-1].removesuffix(".efi")
    return next((m for m in MACHINES if stem.endswith(m)), None)


def runs_on(path: str, architecture: str) -> bool | None:
    """Whether the loader at `path` runs on `architecture`; None when either is unknown."""
    found, machines = machine(path), RUNS.get(architecture)
    if found is None or machines is None:
        return None
    return found in machines


def needed_example(architecture: str) -> str | None:
    """The removable-media fallback path a server of `architecture` boots, for messages."""
    machines = RUNS.get(architecture)
    return f"\\EFI\\BOOT\\BOOT{machines[0].upper()}.EFI" if machines else None


def example_paths(architecture: str) -> str:
    """Example efi-bootloader= values for a server of `architecture` (x64 when unknown)."""
    m = (RUNS.get(architecture) or ("x64",))[0]
    return (
        f"\\efi\\debian\\shim{m}.efi, \\efi\\ubuntu\\grub{m}.efi, \\EFI\\BOOT\\BOOT{m.upper()}.EFI"
    )


def architecture_of(path: str) -> str | None:
    """The architecture (OVHcloud's name) a loader's name says it is for."""
    found = machine(path)
    return MACHINES[found] if found else None


def read_esp(read_many: ReadMany, offset: int) -> EspContents:
    """List the `.efi` files of the `\\EFI` tree of the FAT file system at `offset`.

    Raises ReadLimit when even `\\EFI` cannot be listed within the reader's limits; a
    deeper level that does not fit is counted in `unlisted` instead."""
    volume = FatVolume(read_many, offset)
    contents = EspContents(volume.kind)
    efi = find(volume.root(), "EFI")
    if efi is None or not efi.is_dir or not efi.cluster:
        return contents
    level, room = [(f"\\{efi.name}", efi)], MAX_DIRECTORIES
    for depth in range(MAX_DEPTH + 1):
        if depth:
            contents.unlisted += len(level[room:])
            level = level[:room]
            room -= len(level)
        if not level:
            break
        try:
            listings = volume.directories([entry.cluster for _, entry in level])
        except ReadLimit as exc:
            if depth == 0:
                raise
            contents.unlisted += len(level)
            contents.stopped = str(exc)
            break
        below = []
        for (path, _), entries in zip(level, listings, strict=True):
            contents.bootloaders += _loaders(path, entries)
            below += [(f"{path}\\{e.name}", e) for e in entries if e.is_dir and e.cluster]
        level = below
    else:
        contents.unlisted += len(level)
    return contents


def _loaders(directory: str, entries: list[FatEntry]) -> list[str]:
    return [
        f"{directory}\\{e.name}"
        for e in entries
        if not e.is_dir
        and e.name.lower().endswith(".efi")
        and not e.name.lower().startswith(HELPERS)
    ]


def _normal(path: str) -> str:
    return "\\" + path.replace("/", "\\").strip("\\").lower()


def _kind(path: str) -> int:
    directory, _, name = _normal(path).rpartition("\\")
    if directory == FALLBACK_DIR:
        return 3
    if name.startswith("shim"):
        return 0
    if name.startswith("grub"):
        return 1
    return 2

"""`require_tool()`: skip a cross-check when a Debian tool is missing, or fail under CI.

Set `BYOI_TEST_REQUIRE_TOOLS=1` (as `.ci/run` does) to turn the skip into a failure.
"""

from __future__ import annotations

import os
import shutil

import pytest

PACKAGES = {
    "qemu-img": "qemu-utils",
    "sgdisk": "gdisk",
    "sfdisk": "fdisk",
    "fdisk": "fdisk",
    "mkfs.vfat": "dosfstools",
    "fsck.vfat": "dosfstools",
    "mcopy": "mtools",
    "mtype": "mtools",
    "mmd": "mtools",
    "mdir": "mtools",
    "openssl": "openssl",
    "gpg": "gnupg",
    "gpgconf": "gnupg",
    "gpgv": "gpgv",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "promtool": "prometheus",
    "systemd-analyze": "systemd",
}
REQUIRE_ENV = "BYOI_TEST_REQUIRE_TOOLS"


def missing_tools(*names: str) -> list[str]:
    """The tools among `names` not found on PATH."""
    return [n for n in names if shutil.which(n) is None]


def require_tool(*names: str) -> None:
    """Skip the calling test (fail when BYOI_TEST_REQUIRE_TOOLS=1) if a tool is missing."""
    missing = missing_tools(*names)
    if not missing:
        return
    reason = "needs " + ", ".join(f"{n} (Debian package {PACKAGES[n]})" for n in missing)
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}; {REQUIRE_ENV}=1 makes a missing tool a failure", pytrace=False)
    pytest.skip(reason)

"""BYOLinux preflight: qcow2 only, and one Linux root partition the installer can find.

Images are built in pure Python like `sgdisk -n1:2048:+9M -t1:EF00 -n2:0:0 -t2:8300`.
"""

import uuid

import pytest

from byoi_bot.builders.partition_tables import ESP_TYPE, LINUX_TYPE, Part, gpt, mbr
from byoi_bot.builders.qcow2 import qcow2_image
from byoi_bot.builders.sparse import SparseImage
from byoi_bot.core.checks import Severity
from byoi_bot.preflight.formats import analyse
from byoi_bot.preflight.inspector import image_checks

MiB = 1024 * 1024
LVM = uuid.UUID("E6D6D379-F507-44C2-A23C-238F2A3DF928")
SWAP = uuid.UUID("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F")
ESP = Part(2048, 20479, ESP_TYPE)


def checks_of(image: SparseImage, declared: str = "qcow2", os: str = "byolinux") -> dict:
    analysis = analyse(lambda offset, length: image.pread(offset, length), image.size)
    return {c.name: c for c in image_checks(analysis, declared, os)}


def gpt_disk(*parts: Part) -> SparseImage:
    return gpt(SparseImage(64 * MiB), list(parts))


@pytest.mark.parametrize(
    ("parts", "severity", "says"),
    [
        ((ESP, Part(20480, 130000, LINUX_TYPE)), Severity.OK, "One Linux partition (#2)"),
        ((ESP, Part(20480, 60000, SWAP), Part(60001, 130000, LINUX_TYPE)), Severity.OK, "#3"),
        ((ESP,), Severity.BLOCKING, "none was found"),
        ((ESP, Part(20480, 130000, LVM)), Severity.BLOCKING, "only LVM or RAID members"),
        (
            (ESP, Part(20480, 60000, LINUX_TYPE), Part(60001, 130000, LINUX_TYPE)),
            Severity.WARNING,
            "2 Linux partitions (#2, #3)",
        ),
    ],
)
def test_byolinux_needs_one_linux_root_partition(parts, severity, says):
    check = checks_of(qcow2_image(gpt_disk(*parts)))["byolinux_root"]
    assert check.severity is severity and says in check.message, check.message


def test_an_mbr_linux_partition_is_a_root_too():
    image = mbr(SparseImage(64 * MiB), [Part(2048, 130000, 0x83)])
    check = checks_of(qcow2_image(image))["byolinux_root"]
    assert check.severity is Severity.OK


def test_byoi_images_are_not_asked_for_a_linux_root():
    assert "byolinux_root" not in checks_of(qcow2_image(gpt_disk(ESP)), os="byoi")


def test_a_raw_image_is_refused_for_byolinux_with_the_right_advice():
    check = checks_of(gpt_disk(ESP, Part(20480, 130000, LINUX_TYPE)))["format"]
    assert check.severity is Severity.BLOCKING
    assert "BYOLinux takes qcow2 only" in check.message
    assert "qemu-img convert -O qcow2" in check.message
    assert "Set type=raw" not in check.message

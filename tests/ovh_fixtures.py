"""Shared helpers for the OVHcloud provider, error and simulator tests (import, not conftest)."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest

from byoi_bot.core.request import Checksum, DeploySpec
from byoi_bot.ovhcloud.client import make_client
from byoi_bot.ovhcloud.provider import LegacyProvider, ReinstallProvider, RetryPolicy
from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator

UEFI = "ns1001.ip-51-75-1.eu"
LEGACY_BOOT = "ns2002.ip-51-75-2.eu"
SMALL = "ns3003.ip-51-75-3.eu"
BROKEN = "ns4004.ip-51-75-4.eu"
BIG = "ns5005.ip-149-56-5.net"
ARM64 = "ns6006.ip-51-75-6.eu"
HEADER_SECRET = "Bearer s3cr3t-t0ken-value"
USER_DATA = "#cloud-config\npassword: hunter2-secret\n"

# Installer messages: the seed's table (2020) and the current guide's, as templates.
SEED_MESSAGES = (
    ("write_failed", "Can't write qcow2 on disk."),
    ("image_too_big_for_ram", "Could not download, qcow2 image is too big to download in memory."),
    ("download_failed", "Could not download image located: {url}"),
    ("bad_image_type", "Bad format image, expected: qcow2, raw."),
    ("bad_checksum_type", "Bad checkSumType, expected: sha1, sha256, md5."),
    (
        "checksum_mismatch",
        'bad checkSumType for downloaded file, got: {got} "While Expecting {want}"',
    ),
    ("gpt_backup_failed", "Can not move backup GPT data structures to the end of disk."),
    ("configdrive_failed", "Could not create configdrive on disk."),
)
GUIDE_MESSAGES = (
    ("checksum_incomplete", "Please provide checkSum AND checkSumType or none of them"),
    (
        "checksum_mismatch",
        "Bad checkSumType for downloaded file, got: {got} while expecting {want}",
    ),
    (
        "format_mismatch",
        "image provided format is {actual} which does not match expected qcow2 format",
    ),
    (
        "image_too_big_for_disk",
        "image provided has a size of {image} bytes which is larger than device of {device} bytes",
    ),
    (
        "no_partition_table",
        "image provided format is not of type raw because no partition table was found",
    ),
)
ALL_MESSAGES = SEED_MESSAGES + GUIDE_MESSAGES
VALUES = {
    "url": "https://images.example.net/debian-12.qcow2",
    "got": "9f86d081884c7d659a2feaa0c55ad015",
    "want": "e3b0c44298fc1c149afbf4c8996fb924",
    "actual": "vmdk",
    "image": str(12 * 1024**3),
    "device": str(10 * 1024**3),
}


def message(template: str, **values: str) -> str:
    """`template` filled with VALUES, overridden by `values`."""
    return template.format(**(VALUES | values))


class FakeClock:
    """Monotonic seconds the test moves by hand (shared with the simulator)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class Sleeps(list):
    """A sleeper that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@contextmanager
def running_simulator(deploy_seconds: float = 70.0, **options):
    """A started Simulator on 127.0.0.1 with a FakeClock; yields (simulator, clock)."""
    clock = FakeClock()
    simulator = Simulator(deploy_seconds=deploy_seconds, clock=clock, **options)
    simulator.start("127.0.0.1", 0)
    try:
        yield simulator, clock
    finally:
        simulator.stop()


def simulator_fixtures(deploy_seconds: float = 70.0):
    """The `running` (module-wide simulator and clock), `sim` (reset) and `clock` fixtures.

    A test module binds them by name: `running, sim, clock = simulator_fixtures(70.0)`.
    """

    @pytest.fixture(scope="module")
    def running():
        with running_simulator(deploy_seconds) as pair:
            yield pair

    @pytest.fixture
    def sim(running):
        running[0].reset()
        return running[0]

    @pytest.fixture
    def clock(running):
        return running[1]

    return running, sim, clock


def client_for(simulator: Simulator, timeout=(2, 5), **overrides):
    """The real ovh.Client against `simulator`, with the demo credentials unless overridden."""
    return make_client(simulator.url, timeout=timeout, **(DEMO_CREDENTIALS | overrides))


def providers(client, sleeps: Sleeps | None = None):
    """(ReinstallProvider, LegacyProvider) over `client`, retrying without real sleeps."""
    retry = RetryPolicy(sleep=sleeps if sleeps is not None else Sleeps())
    return ReinstallProvider(client, retry=retry), LegacyProvider(client, retry=retry)


def spec(server: str = UEFI, **changes) -> DeploySpec:
    """A full deploy spec with secrets (a header value and user data)."""
    values = {
        "server": server,
        "image_url": "https://images.example.net/debian-12.qcow2",
        "image_type": "qcow2",
        "checksum": Checksum("sha256", "ab" * 32),
        "hostname": "web-1",
        "ssh_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE test@example",
        "headers": (("Authorization", HEADER_SECRET),),
        "user_data": USER_DATA,
        "efi_bootloader": "\\efi\\debian\\grubx64.efi",
    }
    return DeploySpec(**(values | changes))

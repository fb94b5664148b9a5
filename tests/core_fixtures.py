"""Shared builders for tests of the core and the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from byoi_bot.core.request import Checksum, DeploySpec, Request
from byoi_bot.core.states import State

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def spec(server: str = "ns1001.ip-51-75-1.eu", **changes) -> DeploySpec:
    """A complete deploy spec with secrets (a header value and user data)."""
    values = {
        "server": server,
        "image_url": "https://images.example.net/debian-12.qcow2",
        "image_type": "qcow2",
        "checksum": Checksum("sha256", "ab" * 32),
        "hostname": "web-1",
        "headers": (("Authorization", "Bearer s3cr3t-token"),),
        "user_data": "#cloud-config\npassword: hunter2\n",
        "efi_bootloader": "\\efi\\debian\\grubx64.efi",
    }
    values.update(changes)
    return DeploySpec(**values)


def request(
    request_id: str = "r-aaaaaa", *, state: State = State.PENDING_APPROVAL, **spec_changes
) -> Request:
    """A stored-shape request of `spec()` by U100 in C1, secrets stripped."""
    s = spec(**spec_changes)
    return Request(
        id=request_id,
        spec=s.with_secrets(None),
        requester="U100",
        channel="C1",
        state=state,
        created_at=T0,
        expires_at=T0 + timedelta(minutes=30),
        fingerprint=s.fingerprint(),
    )

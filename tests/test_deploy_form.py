"""The deploy form carries the same options as the command: OS, metadata, RAID."""

import json
from datetime import UTC, datetime

from byoi_bot.slack.form import deploy_modal, spec_from_submission

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def submitted(**fields: str) -> dict:
    return {
        "private_metadata": json.dumps({"channel": "C0OPS"}),
        "state": {"values": {k: {"value": {"value": v}} for k, v in fields.items()}},
    }


def test_the_form_offers_os_metadata_and_raid():
    blocks = {b["block_id"] for b in deploy_modal("C0OPS")["blocks"]}
    assert {"os", "metadata", "raid", "disk-group"} <= blocks


def test_os_metadata_lines_and_raid_from_the_form():
    channel, spec = spec_from_submission(
        submitted(
            server="ns5005.ip-149-56-5.net",
            url="https://images.example.net/alma-9",
            os="byolinux",
            metadata="role=db\n\nzone=gra 3\n",
            raid="1",
            **{"disk-group": "0"},
        ),
        now=NOW,
    )
    assert channel == "C0OPS"
    assert (spec.os, spec.image_type, spec.raid, spec.disk_group) == ("byolinux", "qcow2", 1, 0)
    assert spec.metadata == (("role", "db"), ("zone", "gra 3"))

"""The deploy modal (`/byoi deploy` with no arguments): same fields as the command.

The submitted form is turned back into command text and parsed by `commands.parse`, so the
form and the command share one grammar and one set of error messages.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

from .. import commands
from ..core.request import DeploySpec
from ..core.text import esc

CALLBACK_ID = "byoi_deploy_form"

# (block id = command key, label, placeholder, multiline, optional)
FIELDS = (
    ("server", "Server", "ns1001.ip-51-75-1.eu", False, False),
    ("url", "Image URL", "https://images.example.net/debian-12.qcow2", False, False),
    ("type", "Image type", "qcow2 or raw (default: from the URL)", False, True),
    ("checksum", "Checksum", "sha256:<hex> (type inferred from the length)", False, True),
    ("os", "Operating system", "byoi (default) or byolinux (qcow2 only)", False, True),
    ("disk-group", "Disk group id", "0 (automatic)", False, True),
    ("raid", "Hardware RAID level", "1 (needs a RAID controller)", False, True),
    ("hostname", "Hostname", "web-1", False, True),
    ("ssh-key", "SSH public key", "ssh-ed25519 AAAA… you@laptop", False, True),
    ("efi-bootloader", "EFI bootloader path", "\\efi\\debian\\grubx64.efi", False, True),
    ("description", "Description", "why this deploy", False, True),
    ("header", "HTTP headers (one `Name: value` per line)", "Authorization: Bearer …", True, True),
    ("metadata", "Config drive metadata (one `key=value` per line)", "role=web", True, True),
    ("config-drive", "Config drive", "on or off", False, True),
    ("at", "Start at (UTC)", "2026-12-01T06:00 or 06:00", False, True),
)
USER_DATA = "user-data"


def deploy_modal(channel: str) -> dict:
    """The modal view; `channel` travels in `private_metadata`."""
    blocks = [_input(*field) for field in FIELDS]
    blocks.append(_input(USER_DATA, "Cloud-init user data", "#cloud-config …", True, True))
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "title": {"type": "plain_text", "text": "BYOI deploy"},
        "submit": {"type": "plain_text", "text": "Check and post"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps({"channel": channel}),
        "blocks": blocks,
    }


def _input(key: str, label: str, placeholder: str, multiline: bool, optional: bool) -> dict:
    return {
        "type": "input",
        "block_id": key,
        "optional": optional,
        "label": {"type": "plain_text", "text": label},
        "element": {
            "type": "plain_text_input",
            "action_id": "value",
            "multiline": multiline,
            "placeholder": {"type": "plain_text", "text": placeholder[:150]},
        },
    }


def spec_from_submission(view: dict, *, now: datetime) -> tuple[str, DeploySpec]:
    """The channel and the spec of a submitted form (`now`: the bot's clock, for `at=`).

    Raises `commands.CommandError`.
    """
    values = {
        block: (entry.get("value") or {}).get("value") or ""
        for block, entry in view["state"]["values"].items()
    }
    parts = ["deploy"]
    for key, *_ in FIELDS:
        multiple = key in ("header", "metadata")
        lines = values.get(key, "").splitlines() if multiple else [values.get(key, "")]
        # Form values are raw text, unlike a slash command's: escape them so the grammar's
        # Slack unescaping gives back exactly what was typed (`R&D <prod>` stays so).
        parts.extend(f"{key}={_quote(esc(line.strip()))}" for line in lines if line.strip())
    command = commands.parse(" ".join(parts), now=now)
    assert isinstance(command, commands.Deploy) and command.spec is not None
    spec = command.spec
    user_data = values.get(USER_DATA, "")
    if user_data.strip():
        spec = replace(spec, user_data=user_data)
    channel = json.loads(view.get("private_metadata") or "{}").get("channel", "")
    return channel, spec


def _quote(value: str) -> str:
    """Quote a form value for the grammar, which has quotes but no escape character."""
    for opening, closing in (('"', '"'), ("'", "'"), ("“", "”")):
        if opening not in value and closing not in value:
            return f"{opening}{value}{closing}"
    raise commands.CommandError(
        "text", "this value uses every kind of quote", "a value without “ or ”", "/byoi help"
    )

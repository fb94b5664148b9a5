"""cloud-init phone-home: the config drive's user data with a `phone_home` part.

When the bot has a public URL (`BYOI_PUBLIC_URL`, HTTP mode), the user data sent to
OVHcloud becomes a MIME multi-part message: first a `text/cloud-config` part asking
cloud-init's `phone_home` module to POST the server's host keys to a one-time URL, then the
user's own user data, untouched, as its own part (a multi-part message of the user's is
attached whole). cloud-init reads each part by its type, or by its first line for
`text/plain` (`#cloud-config`, `#!`, …), so the user's part means what it meant alone.

The token in the URL is a secret: it exists in memory for the start call only; the store
keeps its SHA-256 (`boot_gate.token_hash`).
"""

from __future__ import annotations

import email
import json
import secrets
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

PATH = "/boot"  # the bot's phone-home route: POST {PATH}/{request id}/{token}
POSTED = ("pub_key_rsa", "pub_key_ecdsa", "pub_key_ed25519", "instance_id", "hostname", "fqdn")
TRIES = 10  # cloud-init's attempts, a few seconds apart


def new_token() -> str:
    """A one-time token: 32 random bytes, URL-safe."""
    return secrets.token_urlsafe(32)


def url(public_url: str, request_id: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{PATH}/{request_id}/{token}"


def user_data(own: str | None, phone_home_url: str) -> str:
    """The user data to send: the phone-home part, then `own` (if any) as its own part."""
    config = {"phone_home": {"url": phone_home_url, "post": list(POSTED), "tries": TRIES}}
    message = MIMEMultipart()
    # JSON is YAML: no YAML writer needed, and no value can break out of its string.
    message.attach(MIMEText("#cloud-config\n" + json.dumps(config), "cloud-config"))
    if own:
        if own.lstrip().lower().startswith("content-type: multipart/"):
            message.attach(email.message_from_string(own))
        else:
            message.attach(MIMEText(own, "plain", "utf-8"))
    return message.as_string()

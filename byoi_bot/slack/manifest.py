"""The Slack app manifest, from the names the Bolt app registers its listeners with.

`slack.app` registers the slash command and the events below and nothing else Slack must be
told about, so `byoi-bot manifest` (and `app_manifest.yml`, its Socket Mode copy) can never
ask for less, or more, than the bot listens to. The scopes say why each is needed.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

COMMAND = "/byoi"
REACTION_ADDED = "reaction_added"
REACTION_REMOVED = "reaction_removed"
APP_HOME_OPENED = "app_home_opened"
TOKENS_REVOKED = "tokens_revoked"
APP_UNINSTALLED = "app_uninstalled"

BOT_EVENTS = {
    REACTION_ADDED: "approvals by ✅ / ❌ on the card",
    REACTION_REMOVED: "a ✅ taken back withdraws the approval",
    APP_HOME_OPENED: "the App Home tab",
    TOKENS_REVOKED: "logged; the bot's Slack health turns red (docs/slack.md)",
    APP_UNINSTALLED: "the same",
}
BOT_SCOPES = {
    "commands": "the /byoi slash command",
    "chat:write": "request cards, thread updates, ephemeral answers",
    "reactions:read": "approvals by ✅ / ❌ on the card",
    "reactions:write": "pre-add ✅ and ❌ to each card",
    "usergroups:read": "approvers given as user groups (S…)",
    "channels:history": "before re-sending a post whose answer was lost, read the channel",
    "groups:history": "the same in private channels: never post twice",
    "im:write": "tell a requester by DM when their channel refuses the bot",
}
EVENTS_PATH = "/slack/events"

HEADER = """\
# Slack app manifest for byoi-bot ({mode}), printed by `byoi-bot manifest{args}`.
#
# https://api.slack.com/apps → Create New App → From an app manifest → pick the workspace →
# paste this → Create. Then:
{steps}"""
SOCKET_STEPS = """\
#   1. Basic Information → App-Level Tokens → Generate, scope connections:write:
#      SLACK_APP_TOKEN (xapp-…).
#   2. Install App → Install to the workspace: the Bot User OAuth Token is SLACK_BOT_TOKEN.
#   3. In each channel where people will use /byoi: /invite @byoi-bot.
"""
HTTP_STEPS = """\
#   1. Basic Information → Signing Secret: SLACK_SIGNING_SECRET.
#   2. Install App → Install to the workspace: the Bot User OAuth Token is SLACK_BOT_TOKEN.
#   3. In each channel where people will use /byoi: /invite @byoi-bot.
#   4. Run `byoi-bot run --http` behind your HTTPS proxy, reachable at {url}.
"""


class ManifestError(ValueError):
    """The HTTP mode URL cannot serve Slack's requests."""


def events_url(base: str) -> str:
    """The request URL Slack calls in HTTP mode, from the bot's public base URL.

    >>> events_url("https://bot.example.net")
    'https://bot.example.net/slack/events'
    """
    parts = urlsplit(base.strip())
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise ManifestError(
            f"`{base}` is not a public https:// base URL; Slack calls HTTP mode bots over "
            "HTTPS only, e.g. --http https://bot.example.net"
        )
    path = parts.path.rstrip("/")
    if path.endswith(EVENTS_PATH):
        path = path[: -len(EVENTS_PATH)]
    return f"https://{parts.netloc}{path}{EVENTS_PATH}"


def manifest(http_url: str | None = None) -> dict:
    """The manifest for Socket Mode, or for HTTP mode at `http_url` (the base URL)."""
    from .. import commands

    url = events_url(http_url) if http_url else None
    command = {
        "command": COMMAND,
        "description": "Request, approve and follow BYOI deployments",
        "usage_hint": commands.usage_hint(),
        "should_escape": False,
    }
    events: dict = {"bot_events": list(BOT_EVENTS)}
    interactivity: dict = {"is_enabled": True}
    if url:
        command["url"] = url
        events = {"request_url": url, **events}
        interactivity["request_url"] = url
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": "byoi-bot",
            "description": "Request, approve and follow OVHcloud Bring Your Own Image deployments.",
            "background_color": "#123f6d",
            "long_description": (
                f"byoi-bot turns `{COMMAND} deploy <server> <image-url>` into a request card "
                "that approvers confirm with a reaction before the server is wiped and "
                "reinstalled from your own image. It checks the server and the image first, "
                "calls the OVHcloud API once approved, posts the progress in the request's "
                "thread and explains every failure in plain words. Every step is kept in an "
                "audit log."
            ),
        },
        "features": {
            "app_home": {"home_tab_enabled": True, "messages_tab_enabled": False},
            "bot_user": {"display_name": "byoi-bot", "always_online": True},
            "slash_commands": [command],
        },
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES)}},
        "settings": {
            "event_subscriptions": events,
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": url is None,
            "token_rotation_enabled": False,
        },
    }


def manifest_yaml(http_url: str | None = None) -> str:
    """The manifest as commented YAML, ready to paste."""
    if http_url:
        header = HEADER.format(
            mode="HTTP mode",
            args=f" --http {http_url}",
            steps=HTTP_STEPS.format(url=events_url(http_url)),
        )
    else:
        header = HEADER.format(mode="Socket Mode", args="", steps=SOCKET_STEPS)
    notes = BOT_EVENTS | BOT_SCOPES
    return header + "\n".join(_yaml(manifest(http_url), 0, notes)) + "\n"


def _yaml(value: dict | list, indent: int, notes: dict[str, str]) -> list[str]:
    """Block-style YAML of nested dicts and lists of scalars or dicts (all this manifest
    holds); strings are written as JSON strings, which YAML reads as double-quoted
    scalars. Hand-written because PyYAML would be a dependency for these 20 lines and
    cannot write the comments."""
    pad = " " * indent
    lines = []
    items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
    for key, item in items:
        lead = f"{pad}{key}:" if key is not None else f"{pad}-"
        if isinstance(item, dict) and key is None:
            inner = _yaml(item, indent + 2, notes)
            lines.append(f"{pad}- {inner[0].lstrip()}")
            lines += inner[1:]
        elif isinstance(item, dict | list):
            lines.append(lead)
            lines += _yaml(item, indent + 2, notes)
        else:
            line = f"{lead} {json.dumps(item, ensure_ascii=False)}"
            note = notes.get(item) if isinstance(item, str) and key is None else None
            lines.append(f"{line}  # {note}" if note else line)
    return lines

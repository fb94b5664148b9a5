"""OVHcloud IAM for service accounts: the actions byoi-bot needs, its policy, denied actions.

OAuth2 service accounts (`OVH_CLIENT_ID`/`OVH_CLIENT_SECRET`) are governed by IAM policies,
not by a consumer key's access rules. Each route of the vendored schema names the IAM
action it needs (`x-iam-actions`); `ROUTES` are the routes byoi-bot calls with the reinstall
API, so `needed_actions()` is exact, and a test keeps `ROUTES` equal to the provider's calls.
A call IAM refuses answers 403 with `details.unauthorizedActionsByIAM` (OVHcloud's IAM
guide, ovh/docs PR #5314); `denied_actions()` reads it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from . import schema

SERVER = "/dedicated/server/{serviceName}"
# Every route byoi-bot calls on the reinstall API generation (provider, preflight, check).
ROUTES = (
    ("GET", "/dedicated/server"),
    ("GET", SERVER),
    ("GET", f"{SERVER}/specifications/hardware"),
    ("POST", f"{SERVER}/reinstall"),
    ("GET", f"{SERVER}/task"),
    ("GET", f"{SERVER}/task/{{taskId}}"),
    ("POST", f"{SERVER}/task/{{taskId}}/cancel"),
    ("GET", f"{SERVER}/install/status"),
)
# The routes `byoi-bot check` may call to verify a service account: reads only.
READ_ROUTES = tuple(route for route in ROUTES if route[0] == "GET")
_REGIONS = {"ovh-eu": "eu", "ovh-ca": "ca", "ovh-us": "us"}
_API_HOST = re.compile(r"(?:(?P<old>eu|ca)\.api\.ovh\.com|api\.(?P<new>[a-z]+)\.ovhcloud\.com)$")
PLACEHOLDER_SERVER = "<server name>"
_ACTION = re.compile(r"[A-Za-z0-9]+:[A-Za-z0-9]+:[A-Za-z0-9/_*.-]{1,120}")  # shown as given


def actions_of(method: str, path: str) -> tuple[str, ...]:
    """The IAM actions the schema names for `METHOD path` (none for a route it lacks)."""
    try:
        listed = schema.operation(method, path).get("x-iam-actions") or []
    except KeyError:
        return ()
    return tuple(a["name"] for a in listed)


def needed_actions() -> list[str]:
    """Every IAM action byoi-bot's calls need, sorted, each once."""
    return sorted({action for route in ROUTES for action in actions_of(*route)})


def region(endpoint: str) -> str | None:
    """The IAM region (`eu`, `ca`, `us`) of an endpoint name or API URL, when known."""
    if endpoint in _REGIONS:
        return _REGIONS[endpoint]
    found = _API_HOST.search(urlsplit(endpoint).hostname or "")
    return (found.group("old") or found.group("new")) if found else None


def server_urn(server: str, region_name: str | None) -> str:
    """The URN IAM knows a dedicated server by."""
    return f"urn:v1:{region_name or '<region>'}:resource:dedicatedServer:{server}"


def policy(
    servers: list[str], endpoint: str, client_id: str | None, name: str = "byoi-bot"
) -> dict:
    """OVHcloud's IAM policy JSON (`POST /iam/policy`) that lets the service account
    `client_id` make every call byoi-bot makes on `servers` (a placeholder when none)."""
    where = region(endpoint)
    identity = (
        f"urn:v1:{where or '<region>'}:identity:credential:<account id>/oauth2-"
        f"{client_id or '<client id>'}"
    )
    return {
        "name": name,
        "description": "byoi-bot: read dedicated servers, reinstall them, follow and cancel "
        "their installation",
        "identities": [identity],
        "resources": [{"urn": server_urn(s, where)} for s in servers or [PLACEHOLDER_SERVER]],
        "permissions": {"allow": [{"action": action} for action in needed_actions()]},
    }


def denied_actions(body: object) -> list[str]:
    """The actions an IAM refusal names (`details.unauthorizedActionsByIAM`: a string,
    possibly comma-separated, or a list), else none."""
    details = body.get("details") if isinstance(body, dict) else None
    named = details.get("unauthorizedActionsByIAM") if isinstance(details, dict) else None
    if isinstance(named, str):
        named = named.split(",")
    if not isinstance(named, list):
        return []
    return [a.strip() for a in named if isinstance(a, str) and _ACTION.fullmatch(a.strip())]

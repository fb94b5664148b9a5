"""The `ovh.Client` byoi-bot uses: endpoint names or URLs, the client's credential conventions."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import ovh
from ovh.config import ConfigurationManager
from ovh.exceptions import APIError, InvalidConfiguration, InvalidRegion
from requests.adapters import HTTPAdapter

from ..core.budget import CallBudget
from ..errors import ConfigError

ENDPOINT_EXPECTED = (
    "set OVH_ENDPOINT to an endpoint name (ovh-eu, ovh-ca, ovh-us, kimsufi-eu, …) or an "
    "http(s)://…/1.0 URL such as the simulator's (http://127.0.0.1:8080/1.0)"
)
LOOPBACK = ("127.0.0.1", "::1", "localhost")
KEYS_EXPECTED = (
    "set OVH_APPLICATION_KEY, OVH_APPLICATION_SECRET and OVH_CONSUMER_KEY (or OVH_CLIENT_ID "
    "and OVH_CLIENT_SECRET), or put them in ovh.conf (docs/ovhcloud-api.md)"
)


def make_client(
    endpoint: str | None = None,
    *,
    timeout: float | tuple[float, float] = (5, 30),
    config_file: str | None = None,
    connections: int = 10,
    **credentials: str,
) -> ovh.Client:
    """An `ovh.Client` with byoi-bot's timeout (connect, read) in seconds.

    `endpoint` (else `OVH_ENDPOINT`, else ovh.conf's `[default] endpoint`) is an endpoint name
    (`ovh-eu`, `ovh-ca`, `ovh-us`, …) or an `http(s)://…/1.0` URL such as the simulator's.
    A URL is registered in `ovh.client.ENDPOINTS` under its own text, so an ovh.conf section
    named after the URL holds its keys. `credentials` are passed to `ovh.Client`
    (`application_key`, `application_secret`, `consumer_key`, or `client_id`,
    `client_secret`); missing ones come from `OVH_*` variables or ovh.conf, as usual.
    `connections` is how many keep-alive connections the client keeps (one per poll worker).

    Raises `ConfigError` (one line naming the setting) for a missing or unknown endpoint and
    for missing or half-given credentials; nothing is sent over the network here.
    """
    name = register_endpoint(endpoint or configured_endpoint(config_file))
    if not name:
        raise ConfigError(
            f"OVH_ENDPOINT is not set (nor `endpoint` in ovh.conf); {ENDPOINT_EXPECTED}"
        )
    try:
        client = ovh.Client(endpoint=name, timeout=timeout, config_file=config_file, **credentials)
    except InvalidRegion:
        raise ConfigError(
            f"OVH_ENDPOINT: `{name}` is not an OVHcloud endpoint; {ENDPOINT_EXPECTED}"
        ) from None
    except InvalidConfiguration as exc:
        raise ConfigError(f"OVHcloud credentials: {_credentials_problem(str(exc))}") from None
    # The client's requests.Session keeps 10 connections per host by default; concurrent
    # polls beyond that would open and drop a connection each time.
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=connections)
    for scheme in ("https://", "http://"):
        client._session.mount(scheme, adapter)
    return client


def _credentials_problem(message: str) -> str:
    """The `ovh` client's complaint, in byoi-bot's words (which variables to set)."""
    if "Missing authentication" in message:
        return f"none are set; {KEYS_EXPECTED}"
    if "application_key and application_secret" in message:
        return "OVH_APPLICATION_KEY and OVH_APPLICATION_SECRET must be set together"
    if "client_id and client_secret" in message:
        return "OVH_CLIENT_ID and OVH_CLIENT_SECRET must be set together"
    if "Can't use both" in message:
        return "set either the application keys or OVH_CLIENT_ID/OVH_CLIENT_SECRET, not both"
    if "OAuth2" in message:
        return "OAuth2 (OVH_CLIENT_ID) works only with ovh-eu, ovh-ca and ovh-us"
    return f"{message}; {KEYS_EXPECTED}"


def register_endpoint(endpoint: str | None) -> str | None:
    """The endpoint name to give `ovh.Client`; a URL is added to `ovh.client.ENDPOINTS`, and
    its OAuth2 token URL to `ovh.client.OAUTH2_TOKEN_URLS` (see `token_url`)."""
    if not endpoint or not endpoint.lower().startswith(("http://", "https://")):
        return endpoint
    url = endpoint.rstrip("/")
    if not url.endswith("/1.0"):
        raise ConfigError(
            f"OVH_ENDPOINT: the URL `{url}` must end with /1.0 (e.g. https://eu.api.ovh.com/1.0)"
        )
    ovh.client.ENDPOINTS[url] = url
    ovh.client.OAUTH2_TOKEN_URLS[url] = token_url(url)
    parts = urlsplit(url)
    if parts.scheme == "http" and parts.hostname in LOOPBACK:
        # oauthlib sends tokens over HTTPS only; a simulator on this machine speaks HTTP.
        os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
    return url


def token_url(api_url: str) -> str:
    """The OAuth2 token URL of an API URL: the region's (as `ovh` knows it) for an OVHcloud
    API URL, else `/auth/oauth2/token` on the same host (the simulator serves it there)."""
    for name, known in ovh.client.ENDPOINTS.items():
        if known == api_url and name in ovh.client.OAUTH2_TOKEN_URLS and name != api_url:
            return ovh.client.OAUTH2_TOKEN_URLS[name]
    parts = urlsplit(api_url)
    return f"{parts.scheme}://{parts.netloc}/auth/oauth2/token"


def configured_endpoint(config_file: str | None) -> str | None:
    configuration = ConfigurationManager()
    if config_file:
        configuration.read(config_file)
    return configuration.get("default", "endpoint")  # OVH_ENDPOINT first, then ovh.conf


def with_budget(client: ovh.Client, budget: CallBudget) -> ovh.Client:
    """`client` with every API call taking a slot of `budget` first (polls after commands,
    as `core.budget` decides), and a 429 answer shrinking the budget."""
    call = client.call

    def budgeted(method, path, data=None, need_auth=True):
        budget.take()
        try:
            return call(method, path, data, need_auth)
        except APIError as exc:
            if getattr(getattr(exc, "response", None), "status_code", None) == 429:
                budget.throttled()
            raise

    client.call = budgeted
    return client

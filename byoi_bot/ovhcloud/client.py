"""The `ovh.Client` byoi-bot uses: endpoint names or URLs, the client's credential conventions."""

from __future__ import annotations

import ovh
from ovh.config import ConfigurationManager
from ovh.exceptions import InvalidRegion


def make_client(
    endpoint: str | None = None,
    *,
    timeout: float | tuple[float, float] = (5, 30),
    config_file: str | None = None,
    **credentials: str,
) -> ovh.Client:
    """An `ovh.Client` with byoi-bot's timeout (connect, read) in seconds.

    `endpoint` (else `OVH_ENDPOINT`, else ovh.conf's `[default] endpoint`) is an endpoint name
    (`ovh-eu`, `ovh-ca`, `ovh-us`, …) or an `http(s)://…/1.0` URL such as the simulator's.
    A URL is registered in `ovh.client.ENDPOINTS` under its own text, so an ovh.conf section
    named after the URL holds its keys. `credentials` are passed to `ovh.Client`
    (`application_key`, `application_secret`, `consumer_key`, or `client_id`,
    `client_secret`); missing ones come from `OVH_*` variables or ovh.conf, as usual.
    """
    name = register_endpoint(endpoint or _configured_endpoint(config_file))
    return ovh.Client(endpoint=name, timeout=timeout, config_file=config_file, **credentials)


def register_endpoint(endpoint: str | None) -> str | None:
    """The endpoint name to give `ovh.Client`; a URL is added to `ovh.client.ENDPOINTS`."""
    if not endpoint or not endpoint.lower().startswith(("http://", "https://")):
        return endpoint
    url = endpoint.rstrip("/")
    if not url.endswith("/1.0"):
        raise InvalidRegion(f"An OVHcloud endpoint URL must end with /1.0: {url}")
    ovh.client.ENDPOINTS[url] = url
    return url


def _configured_endpoint(config_file: str | None) -> str | None:
    configuration = ConfigurationManager()
    if config_file:
        configuration.read(config_file)
    return configuration.get("default", "endpoint")  # OVH_ENDPOINT first, then ovh.conf

"""The operator's HTTP routes: `/healthz`, `/readyz` and `/metrics`.

HTTP mode answers them on its own port (`slack.modes.http_server` asks `OpsRoutes.answer`
first); in either mode `BYOI_METRICS_PORT` serves them alone on a port of their own
(`serve()`), which is how Socket Mode, without any HTTP server, is probed and scraped.

`/healthz` and `/readyz` answer 200 or 503 with a JSON body naming each check's result;
``?exclude=name,…`` leaves checks out (e.g. ``/readyz?exclude=ovhcloud`` for a load balancer
in HTTP mode that should keep sending Slack's requests while OVHcloud is down). `/metrics`
is prometheus-client's own WSGI app (content negotiation, gzip, ``name[]`` filters).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, make_wsgi_app

from .health import Health, Kind, SlackToken, bot_checks
from .slack.http import HttpServer

if TYPE_CHECKING:
    from .wiring import Bot

StartResponse = Callable[..., object]
REPORTS: dict[str, Kind] = {"/healthz": "live", "/readyz": "ready"}
THREADS = 4  # probes and scrapes only


class OpsRoutes:
    """Health and metrics routes over one `Health` and one metrics registry."""

    def __init__(self, health: Health, registry: CollectorRegistry) -> None:
        self.health = health
        self._metrics = make_wsgi_app(registry)

    def answer(self, environ: dict, start_response: StartResponse) -> Iterable[bytes] | None:
        """The answer when `environ` asks for one of these routes, else None."""
        path = environ.get("PATH_INFO", "")
        if path not in (*REPORTS, "/metrics"):
            return None
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _json(start_response, 405, {"error": f"{path} answers GET only"}, allow=True)
        if path == "/metrics":
            return self._metrics(environ, start_response)
        kind = REPORTS[path]
        exclude, problem = self._excluded(kind, environ.get("QUERY_STRING", ""))
        if problem:
            return _json(start_response, 400, {"error": problem})
        ok, checks = self.health.report(kind, exclude)
        return _json(start_response, 200 if ok else 503, {"ok": ok, "checks": checks})

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        """These routes alone, as a WSGI app (404 for anything else)."""
        found = self.answer(environ, start_response)
        if found is not None:
            return found
        known = ", ".join((*REPORTS, "/metrics"))
        return _json(start_response, 404, {"error": f"no such page; this port serves {known}"})

    def _excluded(self, kind: Kind, query: str) -> tuple[frozenset[str], str | None]:
        try:
            values = parse_qs(query, strict_parsing=bool(query), max_num_fields=10)
        except ValueError:
            return frozenset(), "the query is not name=value pairs; e.g. ?exclude=ovhcloud"
        unknown_params = set(values) - {"exclude"}
        if unknown_params:
            return frozenset(), f"unknown parameter {sorted(unknown_params)[0]!r}; only exclude"
        names = {n.strip() for v in values.get("exclude", []) for n in v.split(",") if n.strip()}
        known = self.health.names(kind)
        wrong = sorted(names - set(known))
        if wrong:
            return frozenset(), (
                f"no check named {wrong[0][:40]!r}; the checks are {', '.join(known)} "
                "(e.g. ?exclude=ovhcloud)"
            )
        return frozenset(names), None


def bot_routes(bot: Bot, slack_token: SlackToken, serving: Callable[[], bool]) -> OpsRoutes:
    """The routes of a running bot: its checks (`health.bot_checks`) and its metrics, the
    store and the process read at each scrape."""
    bot.metrics.watch(bot, slack_token)
    return OpsRoutes(
        bot_checks(bot, serving=serving, slack_token=slack_token), bot.metrics.registry
    )


def serve(routes: OpsRoutes, port: int, host: str = "0.0.0.0") -> HttpServer:
    """A server of these routes alone on `host:port` (call `serve_forever` in a thread)."""
    return HttpServer(routes, host, port, threads=THREADS)


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            503: "Service Unavailable"}  # fmt: skip


def _json(
    start_response: StartResponse, status: int, body: dict, *, allow: bool = False
) -> list[bytes]:
    headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
    if allow:
        headers.append(("Allow", "GET, HEAD"))
    start_response(f"{status} {_REASONS[status]}", headers)
    return [json.dumps(body).encode()]

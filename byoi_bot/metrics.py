"""Prometheus metrics (prometheus-client), on a registry of the bot's own.

Events are counted where they happen: deployments ending (`Deployments.on_finished`),
preflights (`MeteredInspector`), Slack API errors (`slack_error`, from the Web API client),
OVHcloud answers (a `requests` response hook on the `ovh` client's session) and poll cycles
(`Poller.on_cycle`). What the store knows (requests by state, the outbox) and what the
process is (leader, Slack token) is read at each scrape by `BotCollector`.

No label takes unbounded values: no request ids, no server names. OVHcloud paths are
reduced to their route in OVHcloud's schema (`/dedicated/server/{serviceName}/task/{taskId}`),
Slack error codes that do not look like one become `other`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .core.checks import Severity
from .core.ports import ImageInspector, ImageReport, ServerFacts
from .core.request import DeploySpec, Request
from .core.states import State

if TYPE_CHECKING:
    import requests

    from .health import Result
    from .wiring import Bot

DEPLOY_BUCKETS = (60, 180, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 14400)
BYTE_BUCKETS = (4096, 16384, 65536, 262144, 1048576, 4194304)
CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
CYCLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 60)
ERROR_CODE = re.compile(r"[a-z0-9_]{1,48}")
API_METHOD = re.compile(r"[a-zA-Z0-9_.]{1,64}")
SEVERITIES = (Severity.OK, Severity.WARNING, Severity.BLOCKING)  # best to worst


disable_created_metrics()  # no `_created` series: they double the page and say little


class Metrics:
    """The bot's metrics and the registry `/metrics` serves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.deploys = Histogram(
            "byoi_deploy_duration_seconds",
            "Time from the start call to the end of a deployment, by outcome (done, failed)",
            ["outcome"],
            buckets=DEPLOY_BUCKETS,
            registry=r,
        )
        self.preflights = Counter(
            "byoi_preflights",
            "Preflights of an image (one read, whatever the servers), by worst outcome "
            "(ok, warning, blocking, error)",
            ["outcome"],
            registry=r,
        )
        self.preflight_bytes = Histogram(
            "byoi_preflight_read_bytes",
            "Bytes of the image one preflight read",
            buckets=BYTE_BUCKETS,
            registry=r,
        )
        self.slack_errors = Counter(
            "byoi_slack_api_errors",
            "Slack Web API calls that failed, by method and error code (connection: no answer)",
            ["method", "error"],
            registry=r,
        )
        self.ovhcloud_calls = Counter(
            "byoi_ovhcloud_calls",
            "OVHcloud API answers, by HTTP method, route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.ovhcloud_seconds = Histogram(
            "byoi_ovhcloud_call_duration_seconds",
            "Time OVHcloud took to answer, by HTTP method and route",
            ["method", "route"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.poll_cycles = Histogram(
            "byoi_poll_cycle_duration_seconds",
            "Time from the start of a poll cycle until its last poll ended",
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        for outcome in ("done", "failed"):
            self.deploys.labels(outcome)
        for severity in (*Severity, "error"):
            self.preflights.labels(str(severity))

    def watch(self, bot: Bot, slack_token: Callable[[], Result]) -> None:
        """Read the store and the process at each scrape from now on."""
        self.registry.register(BotCollector(bot, slack_token))

    def deploy_finished(self, request: Request) -> None:
        """A deployment ended (done or failed): observe its time since the start call."""
        if request.submitted_at and request.finished_at:
            seconds = (request.finished_at - request.submitted_at).total_seconds()
            self.deploys.labels(request.state.value).observe(max(seconds, 0.0))

    def slack_error(self, method: str, error: str) -> None:
        """A Slack Web API call failed with `error` (Slack's error code)."""
        method = method if API_METHOD.fullmatch(method) else "other"
        error = error if ERROR_CODE.fullmatch(error) else "other"
        self.slack_errors.labels(method, error).inc()

    def watch_ovhcloud(self, session: requests.Session) -> None:
        """Count every answer the `ovh` client's HTTP session gets."""
        session.hooks["response"].append(self._ovhcloud_answer)

    def _ovhcloud_answer(self, response: requests.Response, *_args, **_kwargs) -> None:
        method = response.request.method or "GET"
        route = ovhcloud_route(response.request.path_url)
        self.ovhcloud_calls.labels(method, route, str(response.status_code)).inc()
        self.ovhcloud_seconds.labels(method, route).observe(response.elapsed.total_seconds())

    def poll_cycle(self, futures: Sequence) -> None:
        """A poll cycle handed `futures` to the pool: observe when the last one ends."""
        started = time.monotonic()
        if not futures:
            self.poll_cycles.observe(0.0)
            return
        left = [len(futures)]
        lock = threading.Lock()

        def one_done(_future: object) -> None:
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                self.poll_cycles.observe(time.monotonic() - started)

        for future in futures:
            future.add_done_callback(one_done)


def ovhcloud_route(path_url: str) -> str:
    """The schema route of a request path (``/1.0/dedicated/server/ns1/task/7?x`` →
    ``/dedicated/server/{serviceName}/task/{taskId}``), `other` when none matches."""
    path = path_url.split("?", 1)[0]
    path = path.split("/1.0", 1)[1] if "/1.0/" in path else path
    for pattern, route in _routes():
        if pattern.fullmatch(path):
            return route
    return "other"


_ROUTES: list[tuple[re.Pattern, str]] = []


def _routes() -> list[tuple[re.Pattern, str]]:
    if not _ROUTES:
        from .ovhcloud.schema import document

        for route in [*document()["paths"], "/auth/time"]:
            parts = (
                "[^/]+" if part.startswith("{") else re.escape(part) for part in route.split("/")
            )
            _ROUTES.append((re.compile("/".join(parts)), route))
    return _ROUTES


class MeteredInspector:
    """An `ImageInspector` that counts preflights, their outcome and the bytes read."""

    def __init__(self, inner: ImageInspector, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    def inspect(self, spec: DeploySpec, server: ServerFacts | None) -> ImageReport:
        return self.inspect_many([spec], [server])[0]

    def inspect_many(
        self, specs: Sequence[DeploySpec], servers: Sequence[ServerFacts | None]
    ) -> list[ImageReport]:
        try:
            reports = self.inner.inspect_many(specs, servers)
        except Exception:
            self.metrics.preflights.labels("error").inc()
            raise
        checks = [c for report in reports for c in report.checks]
        worst = max((SEVERITIES.index(c.severity) for c in checks), default=0)
        self.metrics.preflights.labels(str(SEVERITIES[worst])).inc()
        read = reports[0].facts.get("bytes_read") if reports else None
        if isinstance(read, int):
            self.metrics.preflight_bytes.observe(read)
        return reports


class BotCollector(Collector):
    """Read at each scrape: requests by state, the outbox, leadership, the Slack token."""

    def __init__(self, bot: Bot, slack_token: Callable[[], Result]) -> None:
        self.bot = bot
        self.slack_token = slack_token

    def collect(self) -> Iterable[Metric]:
        store_up = GaugeMetricFamily("byoi_store_up", "1 when the store answered this scrape")
        try:
            counts = self.bot.store.request_counts()
            waiting, oldest = self.bot.store.outbox_waiting()
        except Exception:
            store_up.add_metric([], 0)
            yield store_up
        else:
            store_up.add_metric([], 1)
            yield store_up
            requests = GaugeMetricFamily(
                "byoi_requests", "Requests in each state (all replicas')", labels=["state"]
            )
            for state in State:
                requests.add_metric([state.value], counts.get(state.value, 0))
            yield requests
            yield GaugeMetricFamily(
                "byoi_outbox_posts", "Chat posts waiting to be sent", value=waiting
            )
            age = (self.bot.deployments.clock.now() - oldest).total_seconds() if oldest else 0
            yield GaugeMetricFamily(
                "byoi_outbox_oldest_age_seconds",
                "Age of the oldest post waiting to be sent (0: none waits)",
                value=max(age, 0.0),
            )
        yield GaugeMetricFamily(
            "byoi_leader",
            "1 when this process runs the background work (polls, expiry, the outbox)",
            value=1 if self.bot.jobs.leading else 0,
        )
        yield GaugeMetricFamily(
            "byoi_slack_token_ok",
            "1 while Slack accepts the bot token",
            value=1 if self.slack_token().ok else 0,
        )

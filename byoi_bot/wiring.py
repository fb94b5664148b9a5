"""Composition root: builds the store, provider, inspector, workflow and scheduler from settings.

Chat adapters (Slack, the console shell) call `build_bot` with their own `Chat`; everything
else is the same code in production, in tests and in the demo.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from .clock import SystemClock
from .config import ConfigError, Settings
from .core.budget import CallBudget
from .core.fleets import Fleets
from .core.outbox import Courier
from .core.poll_plan import PollPlan
from .core.ports import (
    Chat,
    ChecksumVerifier,
    Clock,
    ImageCatalog,
    ImageInspector,
    Provider,
    RequestStore,
)
from .core.service import Deployments, Timing
from .core.silences import Silences
from .metrics import MeteredInspector, Metrics
from .poller import Poller
from .probes import NetworkProbe
from .scheduler import Jobs
from .sender import OutboxSender
from .store import Store, is_postgres, new_request_id

if TYPE_CHECKING:
    import ovh


def make_provider(
    settings: Settings, client: ovh.Client | None = None, metrics: Metrics | None = None
) -> Provider:
    """The OVHcloud provider: `reinstall` or `legacy` per policy pattern, per account.

    Without `[[account]]` tables (or given `client`), one account over one client, made
    from the `ovh` client's own configuration (env, ovh.conf) when not given. With them,
    each account's client, plus the `OVH_*` account when its endpoint is configured.
    With `metrics`, the clients' answers are counted.
    """
    import os

    from .ovhcloud.accounts import DEFAULT, AccountsProvider, without_default_credentials
    from .ovhcloud.client import configured_endpoint, make_client

    options = {"timeout": (5, settings.ovh_timeout), "connections": settings.poll_workers}
    if client is not None:  # given (tests, benchmarks): its calls are not budgeted
        return _by_api(settings, client, None, metrics)
    if not settings.accounts:
        client = make_client(settings.ovh_endpoint or None, **options)
        return _by_api(settings, client, CallBudget(settings.ovh_calls_per_minute), metrics)
    providers = {}
    if endpoint := settings.ovh_endpoint or configured_endpoint(None):
        budget = CallBudget(settings.ovh_calls_per_minute)
        providers[DEFAULT] = _by_api(settings, make_client(endpoint, **options), budget, metrics)
    for account in settings.accounts:
        credentials = account.credentials(os.environ)
        with without_default_credentials():
            own = make_client(account.endpoint, **options, **credentials)
        budget = CallBudget(account.calls_per_minute or settings.ovh_calls_per_minute)
        providers[account.name] = _by_api(settings, own, budget, metrics)
    return AccountsProvider(providers)


def _by_api(
    settings: Settings, client: ovh.Client, budget: CallBudget | None, metrics: Metrics | None
) -> Provider:
    """`reinstall` or `legacy` per policy pattern, over one client (every call of which takes
    a slot of `budget`, when given; counted by `metrics`, when given)."""
    from .ovhcloud.client import with_budget
    from .ovhcloud.provider import LegacyProvider, ReinstallProvider, RoutingProvider

    if metrics is not None:
        metrics.watch_ovhcloud(client._session)  # the `ovh` client's requests.Session
    if budget is not None:
        client = with_budget(client, budget)
    by_api = {"reinstall": ReinstallProvider(client), "legacy": LegacyProvider(client)}
    routes = [(p.pattern, by_api[p.api]) for p in settings.policies.policies[:-1]]
    return RoutingProvider(
        by_api[settings.api], routes, others=list(by_api.values()), budget=budget
    )


def _account_lookup(provider: Provider) -> Callable[[str], str | None]:
    """A server's OVHcloud account for policies scoped to accounts; None when no account
    (or several) lists it, which its preflight then explains."""
    from .core.ports import ProviderError

    def account_of(server: str) -> str | None:
        try:
            return provider.account_of(server)
        except ProviderError:
            return None

    return account_of


def _budget_lookup(provider: Provider) -> Callable[[str], CallBudget | None] | None:
    """The provider's per-server budget lookup when its calls are budgeted, else None."""
    from .ovhcloud.accounts import AccountsProvider

    if isinstance(provider, AccountsProvider) or getattr(provider, "budget", None) is not None:
        return provider.budget_of  # type: ignore[attr-defined]
    return None


def open_store(location: str, clock: Clock | None = None) -> RequestStore:
    """The store at `location` (BYOI_DB: a SQLite file or a ``postgresql://`` URL); one that
    cannot be opened is a `ConfigError` (a URL's password is never shown)."""
    if is_postgres(location):
        return _open_postgres(location, clock)
    try:
        return Store(location, clock=clock)
    except sqlite3.Error as exc:
        raise ConfigError(
            f"BYOI_DB: cannot open `{location}` ({exc}); set it to a file in a writable folder, "
            "e.g. BYOI_DB=/var/lib/byoi-bot/byoi.db"
        ) from None


def make_catalog(settings: Settings) -> ImageCatalog:
    """The image catalog of the BYOI_CONFIG file; checksum files under the image URL rules."""
    from .catalog.resolver import FileCatalog
    from .preflight.url_safety import UrlGuard

    return FileCatalog(settings.config, UrlGuard(tuple(settings.url_allowlist)))


def _open_postgres(dsn: str, clock: Clock | None) -> RequestStore:
    try:
        import psycopg

        from .store.postgres import PostgresStore, redact
    except ImportError:
        raise ConfigError(
            "BYOI_DB: a PostgreSQL URL needs psycopg: pip install 'byoi-bot[postgres]'"
        ) from None
    try:
        return PostgresStore(dsn, clock=clock)
    except psycopg.Error as exc:
        lines = str(exc).strip().splitlines()
        problem = redact(lines[0]) if lines else type(exc).__name__
        raise ConfigError(
            f"BYOI_DB: cannot use the PostgreSQL database `{redact(dsn)}` ({problem}); check "
            "that it exists and answers, and that the role may create tables in it"
        ) from None


def make_inspector(settings: Settings) -> ImageInspector:
    """The HTTP image inspector, with the URL allow-list from settings."""
    from .preflight.inspector import HttpImageInspector

    return HttpImageInspector(allowlist=tuple(settings.url_allowlist))


def make_verifier(settings: Settings) -> ChecksumVerifier | None:
    """The checksum verifier when BYOI_VERIFY_CHECKSUM is on, else None."""
    if not settings.verify_checksum:
        return None
    from .preflight.checksum import HttpChecksumVerifier

    return HttpChecksumVerifier(allowlist=tuple(settings.url_allowlist))


def make_silences(settings: Settings, store: RequestStore) -> Silences | None:
    """Alert silences while servers are reinstalled, when BYOI_ALERTMANAGER_URL is set."""
    if not settings.alertmanager_url:
        return None
    from .alertmanager import Alertmanager

    return Silences(
        store,
        Alertmanager(settings.alertmanager_url),
        SystemClock(),  # Alertmanager's silences run on the wall clock
        settings.silence_matchers,
        timedelta(minutes=settings.silence_minutes),
    )


@dataclass
class Bot:
    """A running bot's parts; `start()` rebuilds the jobs from the store."""

    store: RequestStore
    deployments: Deployments
    poller: Poller
    fleets: Fleets
    jobs: Jobs
    courier: Courier
    sender: OutboxSender
    metrics: Metrics

    def start(self) -> None:
        """Start the jobs: once this process leads, the outbox's sender starts, what a
        previous process left in flight is settled, and the scheduled work begins."""
        self.jobs.start()

    def stop(self) -> None:
        """Stop the jobs and the sender, and close the store."""
        self.jobs.stop()
        self.store.close()


def build_bot(
    settings: Settings,
    chat: Chat,
    *,
    provider: Provider | None = None,
    inspector: ImageInspector | None = None,
    clock: Clock | None = None,
    poll: timedelta | None = None,
    new_id: Callable[[], str] = new_request_id,
    post_interval: float = 1.0,
    boot_ports: Callable[[str], int | None] | None = None,
    metrics: Metrics | None = None,
) -> Bot:
    """Wire a bot for `chat`; `provider`, `inspector`, `clock` and `poll` override settings.

    `post_interval` paces the outbox: seconds between two posts of one channel (Slack's
    limit is about one per second). `boot_ports` (the simulator's `boots.port_of`, for tests
    and the demo only) gives the port a simulated server's SSH answers on. `metrics` counts what
    happens (a new one by default).
    """
    from .ovhcloud.errors import explain

    metrics = metrics or Metrics()
    provider = provider or make_provider(settings, metrics=metrics)  # errors before any file
    clock = clock or SystemClock()
    store = open_store(settings.db, clock)
    timing = Timing(
        poll=poll or timedelta(seconds=settings.poll_seconds),
        heartbeat=timedelta(minutes=settings.heartbeat_minutes),
        stall=timedelta(minutes=settings.stall_minutes),
        probe=timedelta(seconds=settings.boot_probe_seconds),
    )
    deployments = Deployments(
        store=store,
        provider=provider,
        inspector=MeteredInspector(inspector or make_inspector(settings), metrics),
        chat=chat,
        policies=replace(settings.policies, account_of=_account_lookup(provider)),
        clock=clock,
        explain=explain,
        new_id=new_id,
        timing=timing,
        verifier=make_verifier(settings),
        catalog=make_catalog(settings),
        probe=NetworkProbe(ports=boot_ports),
        public_url=settings.public_url,
    )
    poller = Poller(
        deployments,
        workers=settings.poll_workers,
        plan=PollPlan(clock, longest=timing.poll),
        budget_of=_budget_lookup(provider),
    )
    deployments.poll_pace = poller.pace_of
    fleets = Fleets(
        deployments,
        limit=settings.fleet_limit,
        block_on_refusal=settings.fleet_refused == "block",
    )
    courier = Courier(store, store, chat, deployments.card, fleets.view, deployments.card_settled)
    sender = OutboxSender(courier, interval=post_interval)
    store.on_enqueue = sender.wake
    jobs = Jobs(
        deployments, store.leadership(), sender, poller, fleets, make_silences(settings, store)
    )
    deployments.on_approved = jobs.approved
    deployments.on_finished = metrics.deploy_finished
    poller.on_cycle = metrics.poll_cycle
    return Bot(store, deployments, poller, fleets, jobs, courier, sender, metrics)

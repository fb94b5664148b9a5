"""Several OVHcloud accounts and regions: `[[account]]` tables, and the provider that sends
each server's calls to the account that lists it.

An account names its endpoint (`ovh-eu`, `ovh-ca`, `ovh-us` or an API URL) and the
environment variables that hold its credentials, so secrets stay out of the file. Today's
`OVH_*` configuration is the zero-configuration account `default`. Which account a server
belongs to is read from OVHcloud (`GET /dedicated/server` of each account) at start-up and
again every `refresh` (or when an unknown server is asked for), cached, never guessed: a
server no account lists, or two accounts list, is refused with the reason.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace

from ..core.budget import CallBudget
from ..core.policy import DEFAULT_ACCOUNT
from ..core.ports import Explanation, Progress, Provider, ProviderError, ServerFacts
from ..core.request import DeploySpec
from ..errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT = DEFAULT_ACCOUNT
CREDENTIAL_KINDS = (
    ("application_key", "application_secret", "consumer_key"),
    ("client_id", "client_secret"),
)
_ALL_KEYS = tuple(k for kind in CREDENTIAL_KINDS for k in kind)
ACCOUNT_KEYS = ("name", "endpoint", "calls_per_minute", *(f"{k}_env" for k in _ALL_KEYS))
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_ENV = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
_ENV_LOCK = threading.Lock()


@dataclass(frozen=True)
class Account:
    """One OVHcloud account: where its API is, which variables hold its credentials."""

    name: str
    endpoint: str
    credential_env: tuple[tuple[str, str], ...] = ()  # (ovh.Client keyword, variable)
    calls_per_minute: int | None = None  # None: BYOI_OVH_CALLS_PER_MINUTE

    def credentials(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The credentials from the environment; a missing variable is a `ConfigError`."""
        for key, env in self.credential_env:
            if not environ.get(env):
                raise ConfigError(
                    f"[[account]] `{self.name}`: the environment variable {env} is not set "
                    f"(it holds this account's {key})"
                )
        return {key: environ[env] for key, env in self.credential_env}


def parse_accounts(tables: object) -> tuple[Account, ...]:
    """The `[[account]]` tables of the configuration file, checked."""
    if not isinstance(tables, list):
        raise ConfigError("[[account]] must be an array of tables, e.g. [[account]] name = …")
    accounts = tuple(_account(t, i) for i, t in enumerate(tables, 1))
    names = [a.name for a in accounts]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"[[account]] name `{twice[0]}` is used twice; give each its own")
    return accounts


def _account(table: object, index: int) -> Account:
    where = f"[[account]] #{index}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table of {', '.join(ACCOUNT_KEYS)}")
    secrets = sorted(set(table) & set(_ALL_KEYS))
    if secrets:
        raise ConfigError(
            f"{where}: `{secrets[0]}` holds a secret, which stays out of this file; name the "
            f'environment variable that holds it instead, e.g. {secrets[0]}_env = "OVH_CA_'
            f'{secrets[0].upper()}"'
        )
    unknown = sorted(set(table) - set(ACCOUNT_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; expected some of "
            f"{', '.join(ACCOUNT_KEYS)}"
        )
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name == DEFAULT:
        raise ConfigError(
            f'{where}: `name` must be a short lower-case name (not "{DEFAULT}", which is the '
            f'OVH_* account), e.g. name = "ca-prod"'
        )
    where = f"[[account]] `{name}`"
    endpoint = table.get("endpoint")
    if not isinstance(endpoint, str) or not (
        endpoint in ("ovh-eu", "ovh-ca", "ovh-us")
        or re.fullmatch(r"https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._-]+)*/1\.0/?", endpoint)
    ):
        raise ConfigError(
            f"{where}: `endpoint` must be ovh-eu, ovh-ca, ovh-us or an API URL ending in /1.0, "
            f'e.g. endpoint = "ovh-ca" or "https://api.us.ovhcloud.com/1.0"'
        )
    given = {k for k in _ALL_KEYS if f"{k}_env" in table}
    kind = next((k for k in CREDENTIAL_KINDS if given == set(k)), None)
    if kind is None:
        raise ConfigError(
            f"{where}: name the variables of one kind of credentials: application_key_env, "
            "application_secret_env and consumer_key_env, or client_id_env and "
            'client_secret_env (a service account), e.g. client_id_env = "OVH_CA_CLIENT_ID"'
        )
    env = tuple((k, table[f"{k}_env"]) for k in kind)
    bad = next((v for _, v in env if not isinstance(v, str) or not _ENV.fullmatch(v)), None)
    if bad is not None:
        raise ConfigError(
            f"{where}: {bad!r} is not an environment variable name (upper-case letters, "
            'digits and _), e.g. "OVH_CA_CLIENT_ID"'
        )
    rate = table.get("calls_per_minute")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate < 1):
        raise ConfigError(f"{where}: `calls_per_minute` must be a whole number ≥ 1, e.g. 60")
    return Account(name, endpoint.rstrip("/"), env, rate)


@contextmanager
def without_default_credentials():
    """While making a named account's `ovh.Client`: the client reads `OVH_*` variables for
    any credential not given, and those belong to the `default` account."""
    names = [f"OVH_{k.upper()}" for k in (*_ALL_KEYS, "endpoint")]
    with _ENV_LOCK:
        saved = {n: os.environ.pop(n) for n in names if n in os.environ}
        try:
            yield
        finally:
            os.environ.update(saved)


class AccountsProvider:
    """A `Provider` over one provider per account, choosing by the server's account."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        *,
        refresh: float = 600.0,
        retry_unknown: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.providers = dict(providers)
        self.refresh = refresh
        self.retry_unknown = retry_unknown
        self.monotonic = monotonic
        self._owner: dict[str, str] = {}  # server -> account
        self._twice: dict[str, tuple[str, ...]] = {}  # servers listed by several accounts
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def account_of(self, server: str) -> str:
        """The account that lists `server` (read from OVHcloud when stale or unknown)."""
        with self._lock:
            now = self.monotonic()
            stale = self._read_at is None or now - self._read_at >= self.refresh
            unknown = server not in self._owner and server not in self._twice
            if stale or (unknown and now - self._read_at >= self.retry_unknown):
                self._discover(now)
            if server in self._twice:
                raise _refused(
                    f"Accounts {' and '.join(self._twice[server])} both list {server}.",
                    "byoi-bot does not guess which account to use.",
                    "List the server in one account only (move it, or drop the other "
                    "account from the configuration).",
                )
            if server not in self._owner:
                raise _refused(
                    f"No configured OVHcloud account lists {server}.",
                    f"Accounts asked: {', '.join(self.providers)}.",
                    "Check the server's name, or add the account that owns it ([[account]]).",
                )
            return self._owner[server]

    def accounts(self) -> dict[str, int]:
        """How many servers each account lists (as last read)."""
        with self._lock:
            if self._read_at is None:
                self._discover(self.monotonic())
            counts = dict.fromkeys(self.providers, 0)
            for account in self._owner.values():
                counts[account] += 1
            return counts

    def _discover(self, now: float) -> None:
        listed: dict[str, list[str]] = {}
        for name, provider in self.providers.items():
            try:
                servers = provider.list_servers()
            except ProviderError as exc:  # keep what this account listed last time
                log.warning("account %s: cannot list servers: %s", name, exc.explanation.summary)
                servers = [s for s, a in self._owner.items() if a == name]
            for server in servers:
                listed.setdefault(server, []).append(name)
        self._owner = {s: names[0] for s, names in listed.items() if len(names) == 1}
        self._twice = {s: tuple(names) for s, names in listed.items() if len(names) > 1}
        self._read_at = now

    def budget_of(self, server: str) -> CallBudget | None:
        """The call budget of `server`'s account."""
        return getattr(self._of(server), "budget_of", lambda _: None)(server)

    def _of(self, server: str) -> Provider:
        return self.providers[self.account_of(server)]

    def server_facts(self, server: str) -> ServerFacts:
        account = self.account_of(server)
        return replace(self.providers[account].server_facts(server), account=account)

    def start(self, spec: DeploySpec) -> str:
        return self._of(spec.server).start(spec)

    def progress(self, server: str, handle: str) -> Progress:
        return self._of(server).progress(server, handle)

    def cancel(self, server: str, handle: str) -> None:
        self._of(server).cancel(server, handle)

    def find_active(self, server: str) -> str | None:
        return self._of(server).find_active(server)

    def mark(self, server: str) -> str:
        return self._of(server).mark(server)

    def find_since(self, server: str, mark: str) -> str | None:
        return self._of(server).find_since(server, mark)

    def list_servers(self) -> list[str]:
        """Every server of every account (read now)."""
        with self._lock:
            self._discover(self.monotonic())
            return sorted(self._owner)


def _refused(summary: str, cause: str, action: str) -> ProviderError:
    return ProviderError(Explanation(summary, cause, action, "", "unknown_account"))

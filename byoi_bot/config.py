"""Settings: environment variables plus an optional TOML policy file (`BYOI_CONFIG`).

One definition, `SETTINGS`, drives loading, `byoi-bot check` and the configuration reference
(``byoi-bot config-reference`` prints it; a test keeps docs/configuration.md in sync).
`survey` finds every problem at once, each named where it was written (the variable, or
the TOML file, table and key); `Settings.load` refuses to go on with any of them.

Environment variables win over the TOML file's ``[settings]`` table. Policies per server
pattern live in the TOML file as ``[[policy]]`` tables; the environment's approvers,
quorum and expiry form the default policy that applies to every other server.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from .core.catalog import CatalogImage
from .core.change_control import (
    WINDOW_EXAMPLE,
    ChangeControlError,
    Freeze,
    Window,
    parse_windows,
)
from .core.policy import Policy, PolicySet
from .errors import ConfigError

API_GENERATIONS = ("reinstall", "legacy")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration, named where it was written: a variable
    (`BYOI_APPROVERS`) or a file, table and key (`byoi.toml: [settings] approval_ttl`).
    A warning (`fatal=False`) does not stop the bot: an unknown variable is ignored."""

    where: str
    message: str
    fatal: bool = True
    setting: str = ""  # the variable whose value this is about, if any

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


# What `byoi-bot init` writes where only the user can fill in a value.
PLACEHOLDER = "REPLACE-ME"


def parse_duration(text: str | int | float) -> timedelta:
    """Parse a positive duration with its unit: ``90s``, ``30m``, ``2h`` or ``1h30m``.

    A bare number is refused (30 seconds or 30 minutes?), and so is zero.

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    """
    value = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        raise ConfigError(f"`{text}` has no unit; write {value}s, {value}m or {value}h (e.g. 30m)")
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", value)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([hms])", "", value).strip():
        raise ConfigError(f"`{text}` is not a duration; expected e.g. 90s, 30m, 2h or 1h30m")
    unit = {"h": 3600, "m": 60, "s": 1}
    duration = timedelta(seconds=sum(float(n) * unit[u] for n, u in parts))
    if duration <= timedelta(0):
        raise ConfigError(f"`{text}` is no time at all; expected e.g. 30m")
    return duration


SLACK_ID = re.compile(r"[UWS][A-Z0-9]+")


def _id_list(text: str | list[str]) -> frozenset[str]:
    items = text if isinstance(text, list) else str(text).split(",")
    return frozenset(i.strip() for i in items if i and str(i).strip())


def _slack_ids(text: str | list[str]) -> frozenset[str]:
    """Slack user IDs (U…, W…) and user-group IDs (S…); names and @handles are refused."""
    ids = _id_list(text)
    wrong = sorted(i for i in ids if not SLACK_ID.fullmatch(str(i)))
    if wrong:
        raise ConfigError(
            f"{', '.join(f'`{w}`' for w in wrong)} {'is not a Slack ID' if len(wrong) == 1 else 'are not Slack IDs'}; "
            "expected user IDs like U024BE7LH (a profile's ⋮ → Copy member ID) or user-group "
            "IDs like S0614TZR7 (the group's page), comma-separated"
        )
    return ids


def _channel_ids(text: str | list[str]) -> frozenset[str]:
    """Slack channel IDs (C…, G…)."""
    ids = _id_list(text)
    wrong = sorted(i for i in ids if not re.fullmatch(r"[CG][A-Z0-9]+", str(i)))
    if wrong:
        raise ConfigError(
            f"{', '.join(f'`{w}`' for w in wrong)}: expected channel IDs like C0123ABCD "
            "(the channel's name → About → Channel ID), not names"
        )
    return ids


def _positive_int(text: str | int) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ConfigError(f"`{text}` is not a whole number") from None
    if value < 1:
        raise ConfigError(f"`{text}` must be at least 1")
    return value


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"`{value}` is not true or false (write it without quotes)")


def _switch(value: object) -> bool:
    """On/off from the environment (`1`, `true`, `yes`, `on` / `0`, `false`, `no`, `off`)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"`{value}` is not on or off; write 1/true/yes/on or 0/false/no/off")


def _log_level(text: str) -> str:
    level = str(text).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"`{text}` is not a log level; expected DEBUG, INFO, WARNING or ERROR")
    return level


def _log_format(text: str) -> str:
    if text not in ("text", "json"):
        raise ConfigError(f"`{text}` is neither `text` nor `json`")
    return text


def _port_or_off(text: str | int) -> int:
    """A TCP port (1-65535), or 0 / empty for off."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ConfigError(f"`{text}` is not a port number; expected e.g. 9090 (0: off)") from None
    if not 0 <= value <= 65535:
        raise ConfigError(f"`{text}` is not a port number; expected 1 to 65535 (0: off)")
    return value


def _fleet_refused(text: str) -> str:
    if text not in ("leave-out", "block"):
        raise ConfigError(f"`{text}` is neither `leave-out` nor `block`")
    return text


def _names(value: object) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(
            f'accounts must be a list of account names, e.g. accounts = ["ca"]; got {value!r}'
        )
    return frozenset(value)


def _disk_groups(value: object) -> tuple[int, ...]:
    """`keep_disks = [2, 3]`: disk group ids (positive integers), each once."""
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
    ):
        raise ConfigError(
            f"keep_disks must be a list of disk group ids (positive integers), e.g. "
            f"keep_disks = [2, 3]; got {value!r}"
        )
    if len(set(value)) != len(value):
        raise ConfigError(f"keep_disks lists a disk group more than once: {value!r}")
    return tuple(value)


def _store_location(text: str) -> str:
    if text == ":memory:":
        raise ConfigError(
            "`:memory:` would keep requests, approvals and the audit log only until the bot "
            "stops; expected a SQLite file (e.g. ./byoi.db) or a postgresql:// URL"
        )
    return text


def _port(text: str | int) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise ConfigError(f"`{text}` is no TCP port; expected 1 to 65535 (e.g. 22)")
    return value


def _plain_url(text: str, schemes: str, shown: str, expected: str) -> str:
    """A URL of `schemes` (a regex) with no credentials or query, without its final `/`."""
    url = str(text).strip().rstrip("/")
    if url and not re.fullmatch(schemes + r"://[A-Za-z0-9.-]+(:\d{1,5})?(/[\w.~/-]*)?", url):
        raise ConfigError(  # the value is not quoted: it may hold credentials
            f"not an {shown} URL without credentials or query; expected {expected}"
        )
    return url


def _public_url(text: str) -> str:
    return _plain_url(
        text, "https", "https://", "the bot's public address, e.g. https://bot.example.net"
    )


def _alertmanager_url(text: str) -> str:
    return _plain_url(
        text, "https?", "http(s)://", "Alertmanager's address, e.g. http://alertmanager:9093"
    )


def _silence_matchers(text: str) -> str:
    from .core.silences import SilenceError, matchers

    try:
        matchers(str(text), "ns1.example.net")
    except SilenceError as exc:
        raise ConfigError(str(exc)) from None
    return str(text)


def _api(text: str) -> str:
    if text not in API_GENERATIONS:
        raise ConfigError(f"`{text}` is not an API generation; expected one of {API_GENERATIONS}")
    return text


@dataclass(frozen=True)
class Setting:
    """One setting: its environment variable, TOML key, parser, default and meaning."""

    env: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    secret: bool = False

    @property
    def key(self) -> str:
        """The attribute and TOML key: the variable name without prefix, lower-case."""
        return re.sub(r"^(BYOI_)", "", self.env).lower()


SETTINGS: tuple[Setting, ...] = (
    Setting("BYOI_DB", _store_location, "./byoi.db", "SQLite file of requests, approvals and the audit log, or a PostgreSQL URL (postgresql://user:password@host/db) shared by replicas"),
    Setting("BYOI_CONFIG", str, "", "Optional TOML file with `[settings]`, `[[policy]]` and `[[image]]` (catalog) tables"),
    Setting("BYOI_APPROVERS", _slack_ids, frozenset(), "Default approvers: Slack user IDs (U…, W…) and user-group IDs (S…), comma-separated; names and @handles are refused"),
    Setting("BYOI_REQUIRED_APPROVALS", _positive_int, 1, "Approvals needed (quorum); the requester never counts"),
    Setting("BYOI_APPROVAL_TTL", parse_duration, timedelta(minutes=30), "How long a request waits for approval before it expires, with its unit (e.g. 30m, 2h, 1h30m; a bare number is refused)"),
    Setting("BYOI_ALLOWED_CHANNELS", _channel_ids, frozenset(), "Channel IDs (C…, G…) where /byoi deploy is accepted (empty: any channel the bot is in)"),
    Setting("BYOI_REQUESTERS", _slack_ids, frozenset(), "User IDs (U…, W…) or group IDs (S…) allowed to request deployments (empty: anyone)"),
    Setting("BYOI_FREEZE_ADMINS", _slack_ids, frozenset(), "Default policy: user or group IDs who may `/byoi freeze` and `unfreeze` (a freeze of every policy needs an admin of each, this one included)"),
    Setting("BYOI_EMERGENCY_REQUESTERS", _slack_ids, frozenset(), "Default policy: user or group IDs who may ask for an `emergency=` override of windows and freezes (empty: nobody)"),
    Setting("BYOI_API", _api, "reinstall", "Default OVHcloud API generation: `reinstall` (current) or `legacy` (/bringYourOwnImage)"),
    Setting("BYOI_POLL_SECONDS", _positive_int, 20, "Seconds between two status polls of each active deployment"),
    Setting("BYOI_POLL_WORKERS", _positive_int, 16, "Status polls run at once (OVHcloud reads in parallel); a 429 pauses them all for its Retry-After"),
    Setting("BYOI_FLEET_LIMIT", _positive_int, 50, "Most servers one deploy to many may name or match (`servers=` globs above it are refused)"),
    Setting("BYOI_FLEET_REFUSED", _fleet_refused, "leave-out", "Servers of a deploy to many that fail preflight: `leave-out` (the others go on) or `block` (nothing is requested)"),
    Setting("BYOI_HEARTBEAT_MINUTES", _positive_int, 5, "Minutes of no change after which the thread gets a heartbeat post"),
    Setting("BYOI_STALL_MINUTES", _positive_int, 30, "Minutes after submission past which a deployment is reported as stalled"),
    Setting("BYOI_URL_ALLOWLIST", _id_list, frozenset(), "CIDRs or host names that image URLs may point to although private or loopback"),
    Setting("BYOI_VERIFY_CHECKSUM", _switch, False, "Stream each image that has a checksum= once and compare it before the start call (the start waits for a match, a mismatch fails the request)"),
    Setting("BYOI_BOOT_GATE", _switch, True, "A deploy is done only once the server answers (SSH identification line, health URL, or cloud-init's phone-home); off: done when OVHcloud says so, and the thread says the boot was not checked"),
    Setting("BYOI_BOOT_TIMEOUT", parse_duration, timedelta(minutes=15), "How long after OVHcloud's done the server has to answer before the request fails with a runbook (e.g. 15m)"),
    Setting("BYOI_BOOT_SSH_PORT", _port, 22, "The SSH port the boot gate probes (a policy's `boot_ssh_port` or a catalog image's `ssh_port` overrides it)"),
    Setting("BYOI_BOOT_PROBE_SECONDS", _positive_int, 20, "Seconds between two probes of a server that has not answered yet (at most one per poll cycle)"),
    Setting("BYOI_PUBLIC_URL", _public_url, "", "The bot's public https:// address in HTTP mode; set, the config drive gets a cloud-init phone_home part and the server's call passes the boot gate"),
    Setting("BYOI_ALERTMANAGER_URL", _alertmanager_url, "", "Alertmanager base URL (e.g. http://alertmanager:9093); set, each server is silenced from approval to the end of its boot gate"),
    Setting("BYOI_SILENCE_MATCHERS", _silence_matchers, 'instance=~"{server}.*"', "The silence's matchers, comma-separated; {server} is the server's name, {short} its first label (regex-escaped in =~ and !~)"),
    Setting("BYOI_SILENCE_MINUTES", _positive_int, 10, "A silence's lifetime; renewed while the deploy runs, so a stopped bot's silence lapses by itself"),
    Setting("BYOI_OVH_TIMEOUT", _positive_int, 30, "Seconds to wait for one OVHcloud API answer"),
    Setting("BYOI_OVH_CALLS_PER_MINUTE", _positive_int, 60, "OVHcloud calls a minute at most, per account (polls, preflight, commands, reconciliation; polls leave a tenth to the others); an [[account]] may set its own `calls_per_minute`"),
    Setting("BYOI_LOG_LEVEL", _log_level, "INFO", "Log level: DEBUG, INFO, WARNING or ERROR"),
    Setting("BYOI_LIBRARY_LOG_LEVEL", _log_level, "WARNING", "Log level of the libraries (Slack, APScheduler, waitress, the OVHcloud client…): DEBUG, INFO, WARNING or ERROR"),
    Setting("BYOI_LOG_FORMAT", _log_format, "text", "Log lines as `text` or `json` (one JSON object per line, for Loki or ELK)"),
    Setting("BYOI_METRICS_PORT", _port_or_off, 0, "Port of the health and metrics server (`/healthz`, `/readyz`, `/metrics`) on all addresses, in both modes (0: none; HTTP mode serves them on its own port too)"),
    Setting("BYOI_STOP_TIMEOUT", parse_duration, timedelta(seconds=10), "Longest clean stop after SIGTERM or SIGINT (e.g. 10s); work still running then is left for the next start"),
    Setting("SLACK_BOT_TOKEN", str, "", "Bot token (xoxb-…) from the Slack app's OAuth page", secret=True),
    Setting("SLACK_APP_TOKEN", str, "", "App-level token (xapp-…) with `connections:write`, for Socket Mode", secret=True),
    Setting("SLACK_SIGNING_SECRET", str, "", "Signing secret, for HTTP mode (`byoi-bot run --http`)", secret=True),
    Setting("SLACK_API_URL", str, "https://slack.com/api/", "Slack Web API base URL (tests point it at a local server)"),
    Setting("OVH_ENDPOINT", str, "", "OVHcloud endpoint name (ovh-eu, ovh-ca, ovh-us, …) or an http(s)://…/1.0 URL; empty: from ovh.conf"),
)  # fmt: skip

SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}

# Read by the `ovh` client itself, from the environment only (or its ovh.conf file), so they
# are no `Setting`: listed in the reference, known to the misspelling check.
OVH_CREDENTIALS = {
    "OVH_APPLICATION_KEY": "Application key of the OVHcloud API token (with the next two; docs: OVHcloud API and credentials)",
    "OVH_APPLICATION_SECRET": "Application secret of that token",
    "OVH_CONSUMER_KEY": "Consumer key of that token, limited to the calls the bot makes",
    "OVH_CLIENT_ID": "Instead of the three keys: an OAuth2 service account's client ID",
    "OVH_CLIENT_SECRET": "That service account's client secret",
}
KNOWN_VARIABLES = frozenset({s.env for s in SETTINGS} | set(OVH_CREDENTIALS))
# Variables of the bot's own test suite and CI, not settings.
IGNORED_PREFIXES = ("BYOI_TEST_",)

# What each Slack credential looks like: (setting, pattern, what to write).
TOKEN_SHAPES = {
    "SLACK_BOT_TOKEN": (r"xoxb-[\w-]+", "xoxb-… (the app's Bot User OAuth Token)"),
    "SLACK_APP_TOKEN": (r"xapp-[\w-]+", "xapp-… (an app-level token, for Socket Mode)"),
    "SLACK_SIGNING_SECRET": (r"[0-9a-f]{32}", "32 hex digits (Basic Information → Signing Secret)"),
}


def token_problem(env: str, value: str) -> str | None:
    """Why the Slack credential `env` cannot work (never quoting its value), or None.

    >>> token_problem("SLACK_BOT_TOKEN", "xapp-1-2")
    'does not look like xoxb-… (the app's Bot User OAuth Token)'
    """
    pattern, expected = TOKEN_SHAPES[env]
    if not value:
        return f"not set (expected {expected})"
    if not re.fullmatch(pattern, value):
        return f"does not look like {expected}"
    return None


class Settings:
    """Loaded settings: one attribute per `SETTINGS` key, plus the policy set.

    >>> s = Settings.load({"BYOI_REQUIRED_APPROVALS": "2"})
    >>> s.required_approvals, s.policies.for_server("ns1.example.net").required
    (2, 2)
    """

    def __init__(
        self, values: Mapping[str, Any], policies: PolicySet, warnings: tuple[Problem, ...] = ()
    ) -> None:
        self._values = dict(values)
        self.policies = policies
        self.warnings = warnings  # what does not stop the bot (an unknown variable), to log

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def with_values(self, **changes: Any) -> Settings:
        """A copy with some values replaced (policies kept)."""
        return Settings(self._values | changes, self.policies, self.warnings)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Load from the environment (default `os.environ`) and the `BYOI_CONFIG` TOML file;
        `ConfigError` lists every problem that would stop the bot (see `survey`)."""
        settings, problems = survey(environ)
        fatal = [str(p) for p in problems if p.fatal]
        if len(fatal) == 1:
            raise ConfigError(fatal[0])
        if fatal:
            raise ConfigError(f"{len(fatal)} problems:\n  " + "\n  ".join(fatal))
        settings.warnings = tuple(problems)
        return settings


def survey(environ: Mapping[str, str] | None = None) -> tuple[Settings, list[Problem]]:
    """The settings and every problem of the configuration at once.

    A value that cannot be used is reported and replaced by its default, so that the rest
    (policies, Slack, OVHcloud) can still be checked; only `byoi-bot check` goes on that
    way, `Settings.load` refuses.
    """
    env = os.environ if environ is None else environ
    config = env.get("BYOI_CONFIG", "")
    problems = [*_unknown_variables(env), *_placeholders(env)]
    try:
        toml = _read_toml(config)
    except ConfigError as exc:
        problems.append(Problem("BYOI_CONFIG", str(exc).removeprefix("BYOI_CONFIG: ")))
        toml = {}
    from_file = toml.get("settings", {})
    if not isinstance(from_file, dict):
        problems.append(Problem(config, "`settings` must be a table: [settings]"))
        from_file = {}
    for key in sorted(set(from_file) - set(SETTINGS_BY_KEY)):
        problems.append(
            Problem(
                f"{config}: [settings] {key}", "unknown key" + _did_you_mean(key, SETTINGS_BY_KEY)
            )
        )
    values = {}
    for setting in SETTINGS:
        raw, where = env.get(setting.env), setting.env
        if raw is None or raw == "":
            raw, where = from_file.get(setting.key), f"{config}: [settings] {setting.key}"
        if raw is None or (where == setting.env and PLACEHOLDER in raw):  # reported above
            values[setting.key] = setting.default
            continue
        try:
            values[setting.key] = setting.parse(raw)
        except ConfigError as exc:
            problems.append(Problem(where, str(exc), setting=setting.env))
            values[setting.key] = setting.default
    problems += _catalog_problems(toml.get("image", []), config)
    policies, policy_problems = _policies(
        values, toml.get("policy", []), toml.get("freeze", []), config
    )
    from .ovhcloud.accounts import parse_accounts  # here: `byoi-bot --help` stays light

    try:
        values["accounts"] = parse_accounts(toml.get("account", []))
    except ConfigError as exc:
        problems.append(Problem(config, str(exc)))
        values["accounts"] = ()
    policy_problems += _account_problems(policies, values["accounts"], config)
    named = {env for account in values["accounts"] for _, env in account.credential_env}
    problems = [p for p in problems if not (p.where in named and not p.fatal)]  # known now
    return Settings(values, policies), problems + policy_problems


def _unknown_variables(env: Mapping[str, str]) -> Iterable[Problem]:
    """BYOI_*, SLACK_* and OVH_* variables the bot does not read: most likely misspelt."""
    for name in sorted(env):
        if (
            name.startswith(("BYOI_", "SLACK_", "OVH_"))
            and name not in KNOWN_VARIABLES
            and not name.startswith(IGNORED_PREFIXES)
        ):
            yield Problem(
                name, "unknown variable, ignored" + _did_you_mean(name, KNOWN_VARIABLES), False
            )


def _placeholders(env: Mapping[str, str]) -> Iterable[Problem]:
    """Values `byoi-bot init` left for the user to fill in."""
    helps = {s.env: s.help for s in SETTINGS} | OVH_CREDENTIALS
    for name in sorted(KNOWN_VARIABLES):
        if PLACEHOLDER in env.get(name, ""):
            message = f"still `{PLACEHOLDER}`: set it (byoi.env) to the {_lower(helps[name])}"
            yield Problem(name, message, setting=name)


def _lower(text: str) -> str:
    return text[:1].lower() + text[1:]


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else ""


def load_catalog(path: str) -> tuple[CatalogImage, ...]:
    """The `[[image]]` tables of the TOML file `path`, read anew at every call (so that an
    edited catalog applies to the next `/byoi images` or deploy without a restart)."""
    return _catalog(_read_toml(path).get("image", []), _folder(path))


def _catalog_problems(tables: list[dict], config: str) -> list[Problem]:
    """Every bad `[[image]]` table of the file `config`, not only the first."""
    folder, problems = _folder(config), []
    for index, table in enumerate(tables, 1):
        try:
            _image(table, folder, index)
        except ConfigError as exc:
            problems.append(Problem(config, str(exc)))
    if not problems:
        try:
            _catalog(tables, folder)
        except ConfigError as exc:
            problems.append(Problem(config, str(exc)))
    return problems


def _folder(path: str) -> Path:
    return Path(path).resolve().parent if path else Path.cwd()


IMAGE_KEYS = (
    "name", "url", "os", "type", "checksum", "checksum_url", "signature_url", "keyring",
    "efi_bootloader", "hostname", "user_data", "metadata", "servers", "description",
    "ssh_port", "health_url", "keep_disks",
)  # fmt: skip
# Catalog keys checked by the deploy option of the same meaning (same rules as typed values).
IMAGE_OPTIONS = {"url": "url", "os": "os", "type": "type", "checksum": "checksum",
                 "efi_bootloader": "efi-bootloader", "description": "description"}  # fmt: skip


def _catalog(tables: list[dict], folder: Path) -> tuple[CatalogImage, ...]:
    images = tuple(_image(table, folder, i) for i, table in enumerate(tables, 1))
    names = [i.name.lower() for i in images]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"[[image]] name `{twice[0]}` is used twice; give each image its own")
    return images


def _image(table: dict, folder: Path, index: int) -> CatalogImage:
    from .commands import CommandError, option_value

    where = f"[[image]] #{index}" + (f" `{table['name']}`" if "name" in table else "")
    unknown = set(table) - set(IMAGE_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"expected some of {', '.join(IMAGE_KEYS)}"
        )
    examples = {"name": "debian-12", "url": "https://images.example.net/debian-12.qcow2"}
    for key, example in examples.items():
        if not isinstance(table.get(key), str) or not table[key]:
            raise ConfigError(f'{where}: `{key}` is required, e.g. {key} = "{example}"')
    if ("checksum" in table) == ("checksum_url" in table):
        raise ConfigError(f"{where}: give exactly one of `checksum` and `checksum_url`")
    if ("signature_url" in table) != ("keyring" in table):
        raise ConfigError(f"{where}: `signature_url` and `keyring` go together")
    values: dict[str, Any] = {}
    try:
        for key, option in IMAGE_OPTIONS.items():
            if key in table:
                values[key] = option_value(option, str(table[key]))
        for key in ("checksum_url", "signature_url"):
            if key in table:
                option_value("url", str(table[key]))
        metadata = tuple(
            option_value("metadata", f"{k}={v}")
            for k, v in dict(table.get("metadata") or {}).items()
        )
    except CommandError as exc:
        raise ConfigError(f"{where}: {exc.problem}") from None
    keyring = folder / table["keyring"] if table.get("keyring") else None
    if keyring and not keyring.is_file():
        raise ConfigError(
            f"{where}: `keyring` {keyring} is no file; export the signing keys with "
            "`gpg --export <key id> > keyring.gpg` and give its path (relative to this file)"
        )
    boot = _image_boot(table, where)
    try:
        keep = {"keep_disks": _disk_groups(table["keep_disks"])} if "keep_disks" in table else {}
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    servers = table.get("servers") or []
    if isinstance(servers, str):
        servers = [servers]
    return CatalogImage(
        name=str(table["name"]),
        url=values["url"],
        os=values.get("os", "byoi"),
        type=values.get("type"),
        checksum=values.get("checksum"),
        checksum_url=table.get("checksum_url"),
        signature_url=table.get("signature_url"),
        keyring=str(keyring) if keyring else None,
        efi_bootloader=values.get("efi_bootloader"),
        hostname=table.get("hostname"),
        user_data=table.get("user_data"),
        metadata=metadata,
        servers=tuple(str(p).lower() for p in servers),
        description=values.get("description"),
        **boot,
        **keep,
    )


def _image_boot(table: dict, where: str) -> dict:
    """An image's boot gate keys: `ssh_port` (a port) and `health_url` (an https:// URL)."""
    from .core.boot_gate import health_url_problem

    found: dict[str, Any] = {}
    if "ssh_port" in table:
        try:
            found["ssh_port"] = _port(table["ssh_port"])
        except ConfigError as exc:
            raise ConfigError(f"{where}: `ssh_port`: {exc}") from None
    if "health_url" in table:
        url = table["health_url"]
        problem = health_url_problem(url) if isinstance(url, str) else "it is not a string"
        if problem:
            raise ConfigError(
                f"{where}: `health_url` cannot be used: {problem}; expected e.g. "
                'health_url = "https://web-1.example.net/healthz"'
            )
        found["health_url"] = url
    return found


def _read_toml(path: str) -> dict:
    if not path:
        return {}
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"BYOI_CONFIG: no such file {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"BYOI_CONFIG: {path} is not valid TOML: {exc}") from None


def _windows(value: object) -> tuple[Window, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'`windows` is a list of strings, e.g. windows = ["{WINDOW_EXAMPLE}"]')
    try:
        return parse_windows(value)
    except ChangeControlError as exc:
        raise ConfigError(str(exc)) from None


POLICY_KEYS = {
    "name": str,
    "pattern": str,
    "approvers": _slack_ids,
    "required_approvals": _positive_int,
    "approval_ttl": parse_duration,
    "one_from_each_group": _boolean,
    "allowed_channels": _channel_ids,
    "requesters": _slack_ids,
    "api": _api,
    "keep_disks": _disk_groups,
    "accounts": _names,
    "windows": _windows,
    "emergency_requesters": _slack_ids,
    "emergency_required_approvals": _positive_int,
    "emergency_review_within": parse_duration,
    "freeze_admins": _slack_ids,
    "boot_gate": _boolean,
    "boot_timeout": parse_duration,
    "boot_ssh_port": _port,
}


def _account_problems(policies: PolicySet, accounts: tuple, config: str) -> list[Problem]:
    """A policy naming an account no `[[account]]` (nor `default`) is."""
    known = {"default", *(a.name for a in accounts)}
    return [
        Problem(
            config,
            f"[[policy]] `{policy.name}`: no [[account]] is named `{sorted(policy.accounts - known)[0]}` "
            f"(accounts: {', '.join(sorted(known))})",
        )
        for policy in policies.policies
        if policy.accounts - known
    ]


def _policies(
    values: dict, tables: list[dict], freeze_tables: list[dict], config: str
) -> tuple[PolicySet, list[Problem]]:
    """The policy set, and every problem of its `[[policy]]` tables (a bad one is left out)."""
    default = Policy(
        name="default",
        pattern="*",
        approvers=values["approvers"],
        required=values["required_approvals"],
        ttl=values["approval_ttl"],
        channels=values["allowed_channels"],
        requesters=values["requesters"],
        api=values["api"],
        freeze_admins=values["freeze_admins"],
        emergency_requesters=values["emergency_requesters"],
        boot_gate=values["boot_gate"],
        boot_timeout=values["boot_timeout"],
        boot_ssh_port=values["boot_ssh_port"],
    )
    policies, problems = [], []
    for index, table in enumerate(tables, 1):
        try:
            policies.append(_policy(table, default, index))
        except ConfigError as exc:
            problems.append(Problem(config, str(exc)))
    names = [p.name for p in policies]
    freezes = []
    for index, table in enumerate(freeze_tables, 1):
        try:
            freezes.append(_freeze(table, [*names, "default"], index))
        except ConfigError as exc:
            problems.append(Problem(config, str(exc)))
    for name in sorted(set(names)):
        if name == "default" or names.count(name) > 1:
            problems.append(
                Problem(
                    config,
                    f"[[policy]] name `{name}` is used twice or is reserved (`default` is the "
                    "environment's policy); give each policy its own name",
                )
            )
    return PolicySet((*policies, default), tuple(freezes)), problems


def _policy(table: dict, default: Policy, index: int) -> Policy:
    where = f"[[policy]] #{index}"
    unknown = set(table) - set(POLICY_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"expected some of {', '.join(POLICY_KEYS)}" + _did_you_mean(min(unknown), POLICY_KEYS)
        )
    if "pattern" not in table:
        raise ConfigError(f'{where}: `pattern` is required, e.g. pattern = "ns*.prod.example.net"')
    v = {}
    for key in table:
        try:
            v[key] = POLICY_KEYS[key](table[key])
        except ConfigError as exc:
            raise ConfigError(f"{where} {key}: {exc}") from None
    return Policy(
        name=v.get("name", v["pattern"]),
        pattern=v["pattern"],
        approvers=v.get("approvers", default.approvers),
        required=v.get("required_approvals", default.required),
        ttl=v.get("approval_ttl", default.ttl),
        one_from_each_group=v.get("one_from_each_group", False),
        channels=v.get("allowed_channels", default.channels),
        requesters=v.get("requesters", default.requesters),
        api=v.get("api", default.api),
        keep_disks=v.get("keep_disks", ()),
        accounts=v.get("accounts", frozenset()),
        boot_gate=v.get("boot_gate", default.boot_gate),
        boot_timeout=v.get("boot_timeout", default.boot_timeout),
        boot_ssh_port=v.get("boot_ssh_port", default.boot_ssh_port),
        windows=v.get("windows", ()),
        emergency_requesters=v.get("emergency_requesters", frozenset()),
        emergency_required=v.get("emergency_required_approvals"),
        review_within=v.get("emergency_review_within", default.review_within),
        freeze_admins=v.get("freeze_admins", frozenset()),
    )


FREEZE_KEYS = ("from", "to", "reason", "policies")


def _freeze(table: dict, policy_names: list[str], index: int) -> Freeze:
    """A `[[freeze]]` table: `from` and `to` (TOML date-times with an offset, or dates),
    a `reason`, and optionally the `policies` it holds (all when absent)."""
    where = f"[[freeze]] #{index}"
    example = 'from = 2026-12-20T00:00:00Z, to = 2027-01-04T00:00:00Z, reason = "year end"'
    unknown = set(table) - set(FREEZE_KEYS)
    missing = [k for k in ("from", "to", "reason") if k not in table]
    if unknown or missing:
        raise ConfigError(
            f"{where}: expected the keys {', '.join(FREEZE_KEYS[:3])} (and optionally "
            f"policies), e.g. {example}"
        )
    starts, ends = (_instant(table[k], f"{where} `{k}`") for k in ("from", "to"))
    if ends <= starts:
        raise ConfigError(f"{where}: `to` must be after `from`")
    scope = table.get("policies", [])
    if not isinstance(scope, list) or any(p not in policy_names for p in scope):
        raise ConfigError(f"{where}: `policies` lists policy names among {', '.join(policy_names)}")
    reason = str(table["reason"]).strip()
    if not reason:
        raise ConfigError(f"{where}: `reason` must say why (it is shown on every held card)")
    return Freeze(f"config-{index}", starts, ends, reason, tuple(scope), "configuration")


def _instant(value: object, where: str) -> datetime:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, datetime.min.time(), UTC)
    raise ConfigError(
        f"{where} is a TOML date-time with its offset (2026-12-20T00:00:00Z) or a date "
        "(2026-12-20, taken as midnight UTC)"
    )


def reference_markdown() -> str:
    """The configuration reference as a Markdown table (in docs/configuration.md)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        default = _show_default(s.default)
        rows.append(f"| `{s.env}` | {default} | {s.help} |")
    for env, help in OVH_CREDENTIALS.items():
        rows.append(f"| `{env}` | (empty) | {help} |")
    return "\n".join(rows)


def _show_default(value: Any) -> str:
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
        return f"`{seconds // 60}m`" if seconds % 60 == 0 else f"`{seconds}s`"
    if value in ("", frozenset()):
        return "(empty)"
    return f"`{value}`"

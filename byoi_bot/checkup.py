"""`byoi-bot check`: validate the configuration, then reach Slack and OVHcloud.

Prints one line per check (PASS / WARN / FAIL / SKIP), every configuration problem included
(not only the first), each naming the setting to change. Exit status by the worst: 2 when
the configuration is invalid (`run` would refuse it), 1 when a check failed (a service
refused or could not be reached), else 0. A check that cannot run (no token, no endpoint)
says so and sends nothing; `check` never creates the store.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .config import TOKEN_SHAPES, ConfigError, Problem, Settings, load_catalog, token_problem
from .core.policy import is_group_id

# The API calls the bot makes, by API generation: (method, path as in OVHcloud access rules).
READ_RIGHTS = (("GET", "/dedicated/server"), ("GET", "/dedicated/server/*"))
START_RIGHTS = {
    "reinstall": (("POST", "/dedicated/server/*/reinstall"),),
    "legacy": (
        ("POST", "/dedicated/server/*/bringYourOwnImage"),
        ("DELETE", "/dedicated/server/*/bringYourOwnImage"),
    ),
}
# Without it the bot still works; only cancelling a running reinstall is refused.
CANCEL_RIGHT = ("POST", "/dedicated/server/*/task/*/cancel")


@dataclass(frozen=True)
class Result:
    """One line of the report."""

    verdict: str  # PASS, WARN, FAIL or SKIP (could not run; nothing was sent)
    name: str
    detail: str


def run_check(
    settings: Settings,
    *,
    offline: bool = False,
    out: TextIO = sys.stdout,
    problems: Sequence[Problem] = (),
) -> int:
    """Run every check, print the report with the configuration's `problems` (from
    `config.survey`) first; return 2, 1 or 0 (see the module's docstring)."""
    results = [Result("FAIL" if p.fatal else "WARN", p.where, p.message) for p in problems]
    # A setting whose value was refused is said once (not again as "not set", its default).
    reported = {p.setting for p in problems}
    results += [r for r in check_settings(settings, offline) if r.name not in reported]
    results += [check_store(settings.db), *check_catalog(settings.config)]
    groups: dict[str, frozenset[str]] = {}
    if not offline:
        slack, groups = check_slack(settings)
        results += [*slack, *check_ovhcloud(settings), *check_alertmanager(settings)]
    policies = check_policies(settings, groups, offline)
    if reported & {"BYOI_APPROVERS", "BYOI_REQUIRED_APPROVALS"}:
        policies = [r for r in policies if r.name != "policy default"]
    results += policies
    for r in results:
        name = f"{r.name:<22}" if len(r.name) <= 22 else f"{r.name}:"
        print(f"{r.verdict:<4}  {name} {r.detail}", file=out)
    failed = sum(r.verdict == "FAIL" for r in results)
    print(f"\n{len(results)} checks, {failed} failed", file=out)
    if any(p.fatal for p in problems):
        return 2
    return 1 if failed else 0


def check_settings(settings: Settings, offline: bool) -> list[Result]:
    """Tokens present and shaped right (their values are never printed)."""
    results = []
    for name in TOKEN_SHAPES:
        problem = token_problem(name, getattr(settings, name.lower()))
        if problem is None:
            results.append(Result("PASS", name, "set and well-formed"))
            continue
        optional = name != "SLACK_BOT_TOKEN" or offline
        verdict = "WARN" if optional and problem.startswith("not set") else "FAIL"
        results.append(Result(verdict, name, problem))
    return results


def check_store(path: str) -> Result:
    """The SQLite file opens, migrates and takes a write; a missing file is not created.
    A PostgreSQL database is checked without a change (see `check_postgres`)."""
    from .store import Store, is_postgres

    if is_postgres(path):
        return check_postgres(path)
    if not Path(path).exists():
        folder = Path(path).parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            return Result(
                "FAIL",
                "store",
                f"{path} does not exist and {folder}/ is not writable: set BYOI_DB to a "
                "file in a writable folder",
            )
        return Result("WARN", "store", f"{path} does not exist yet; `byoi-bot run` creates it")
    try:
        store = Store(path)
        store.probe()
        version = store.schema_version()
        store.close()
    except Exception as exc:
        return Result("FAIL", "store", f"{path}: {exc}")
    return Result("PASS", "store", f"{path} writable, schema version {version}")


def check_catalog(config: str) -> list[Result]:
    """The image catalog's size, and `gpgv` present when an image needs a signature check."""
    try:
        images = load_catalog(config) if config else ()
    except ConfigError:  # reported with the configuration's problems
        return []
    if not images:
        return []
    names = ", ".join(i.name for i in images[:8]) + (" …" if len(images) > 8 else "")
    results = [Result("PASS", "image catalog", f"{len(images)} images: {names}")]
    signed = [i.name for i in images if i.signature_url]
    if signed and shutil.which("gpgv") is None:
        results.append(
            Result(
                "FAIL",
                "gpgv",
                f"missing, and {', '.join(signed)} need it to check their checksum file's "
                "signature: install the Debian package `gpgv`",
            )
        )
    elif signed:
        results.append(Result("PASS", "gpgv", f"found; checks the signatures of {len(signed)}"))
    return results


def check_postgres(dsn: str) -> Result:
    """The database answers and takes a write (rolled back); its tables are neither created
    nor migrated here (`byoi-bot run` does that). The password is never printed."""
    try:
        from .store.postgres import inspect, redact
    except ImportError:
        return Result("FAIL", "store", "PostgreSQL needs psycopg: pip install 'byoi-bot[postgres]'")
    shown = redact(dsn)
    try:
        version, latest = inspect(dsn)
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        return Result("FAIL", "store", f"{shown}: {redact(lines[0]) if lines else exc!r}")
    if version == 0:
        detail = f"{shown} writable, no tables yet; `byoi-bot run` creates them"
        return Result("WARN", "store", detail)
    if version < latest:
        return Result(
            "WARN", "store", f"{shown} writable, schema version {version}; `byoi-bot run` "
            f"migrates it to {latest}",
        )  # fmt: skip
    return Result("PASS", "store", f"{shown} writable, schema version {version}")


def check_policies(settings: Settings, groups: dict, offline: bool) -> list[Result]:
    """Every policy can be met by someone other than the requester."""
    results = []
    for policy in settings.policies.policies:
        unknown = [g for g in policy.groups if g not in groups]
        problem = policy.unsatisfiable(None, groups)
        name = f"policy {policy.name}"
        if problem and not unknown:
            results.append(Result("FAIL", name, f"{problem}: {_policy_fix(policy, settings)}"))
        elif problem:
            results.append(
                Result("WARN", name, f"{problem} (groups not read: {', '.join(unknown)})")
            )
        else:
            results.append(
                Result("PASS", name, f"{policy.required} of {len(policy.pool(groups))} approver(s)")
            )
    return results


def _policy_fix(policy, settings: Settings) -> str:
    """Which setting gives `policy` enough approvers."""
    if policy.name == "default":
        return (
            "set BYOI_APPROVERS (Slack user IDs U…, group IDs S…), or lower BYOI_REQUIRED_APPROVALS"
        )
    return f"set `approvers` or `required_approvals` of this [[policy]] in {settings.config}"


def check_slack(settings: Settings) -> tuple[list[Result], dict[str, frozenset[str]]]:
    """`auth.test` with the bot token, then the members of every approver group."""
    from slack_sdk.errors import SlackApiError

    from .slack.chat import SlackChat, make_web_client

    if token_problem("SLACK_BOT_TOKEN", settings.slack_bot_token):
        return [Result("SKIP", "slack auth.test", "not called: SLACK_BOT_TOKEN is not usable")], {}

    client = make_web_client(settings.slack_bot_token, settings.slack_api_url)
    try:
        who = client.auth_test()
    except SlackApiError as exc:
        return [Result("FAIL", "slack auth.test", str(exc.response.get("error")))], {}
    except Exception as exc:
        return [Result("FAIL", "slack auth.test", _unreachable(settings.slack_api_url, exc))], {}
    results = [Result("PASS", "slack auth.test", f"bot {who.get('user')} in {who.get('team')}")]
    chat = SlackChat(client)
    names = {g for p in settings.policies.policies for g in p.approvers if is_group_id(g)}
    groups = {g: chat.group_members(g) for g in sorted(names)}
    return results, groups


def check_ovhcloud(settings: Settings) -> list[Result]:
    """Credentials accepted, and the access rules cover every call the bot makes."""
    from .ovhcloud.client import make_client
    from .ovhcloud.errors import explain_exception

    try:
        client = make_client(settings.ovh_endpoint or None, timeout=(5, settings.ovh_timeout))
    except ConfigError as exc:
        return [Result("FAIL", "ovhcloud credentials", f"nothing was sent: {exc}")]
    try:
        servers = client.get("/dedicated/server")
    except Exception as exc:
        e = explain_exception(exc)
        detail = f"{e.summary} {e.action}" + (f" ({e.raw})" if e.raw else "")
        return [Result("FAIL", "ovhcloud credentials", detail)]
    results = [
        Result("PASS", "ovhcloud credentials", f"{len(servers)} dedicated server(s) visible")
    ]
    apis = {policy.api for policy in settings.policies.policies}
    oauth2 = bool(getattr(client, "_client_id", None))  # `ovh` keeps no public flag for it
    results.append(_iam_rights(client, servers) if oauth2 else _rights(client.get, apis))
    return results


def _iam_rights(client, servers: list[str]) -> Result:
    """A service account: every read the bot makes, tried on one server, is allowed by IAM
    (the reinstall and cancel calls act, so they are listed, not tried)."""
    from .ovhcloud import iam
    from .ovhcloud.errors import error_body

    writes = ", ".join(a for m, r in iam.ROUTES if m != "GET" for a in iam.actions_of(m, r))
    if not servers:
        return Result("WARN", "ovhcloud IAM", f"no server visible: nothing to try; {_POLICY}")
    denied: list[str] = []
    for _, route in iam.READ_ROUTES:
        if "{taskId}" in route:
            continue  # the same action as the task list, which is tried
        try:
            client.get(route.replace("{serviceName}", servers[0]))
        except Exception as exc:
            denied += iam.denied_actions(error_body(exc))  # other errors: allowed by IAM
    if denied:
        return Result(
            "FAIL",
            "ovhcloud IAM",
            f"IAM denies {', '.join(sorted(set(denied)))} on {servers[0]}; {_POLICY}",
        )
    return Result(
        "PASS",
        "ovhcloud IAM",
        f"every read is allowed on {servers[0]}; not tried, as they act: {writes} ({_POLICY})",
    )


_POLICY = "`byoi-bot iam-policy` prints the policy the service account needs"


def check_alertmanager(settings: Settings) -> list[Result]:
    """With BYOI_ALERTMANAGER_URL: Alertmanager lists its silences (what the bot reads)."""
    if not settings.alertmanager_url:
        return []
    from .alertmanager import Alertmanager, AlertmanagerError

    try:
        own = Alertmanager(settings.alertmanager_url).active()
    except (AlertmanagerError, ValueError) as exc:
        return [Result("FAIL", "BYOI_ALERTMANAGER_URL", f"{exc}; check the URL and that "
                       "Alertmanager answers its API v2 from here")]  # fmt: skip
    return [Result("PASS", "BYOI_ALERTMANAGER_URL", f"answers; {len(own)} silence(s) of the bot")]


def _rights(get: Callable[[str], dict], apis: set[str]) -> Result:
    """Every call of the API generations in use is allowed (cancel only warns)."""
    try:
        rules = get("/auth/currentCredential").get("rules") or []
    except Exception:
        return Result("WARN", "ovhcloud rights", "could not read the credential's access rules")

    def missing(rights: Iterable[tuple[str, str]]) -> list[str]:
        return [
            f"{method} {path}"
            for method, path in rights
            if not any(
                r.get("method") == method and fnmatch.fnmatchcase(path, r.get("path", ""))
                for r in rules
            )
        ]

    required = missing([*READ_RIGHTS, *(r for api in sorted(apis) for r in START_RIGHTS[api])])
    if required:
        return Result(
            "FAIL",
            "ovhcloud rights",
            f"missing: {', '.join(required)}; create a token that has them "
            "(docs/ovhcloud-api.md, OVHcloud credentials) and set its OVH_CONSUMER_KEY",
        )
    if "reinstall" in apis and missing([CANCEL_RIGHT]):
        return Result(
            "WARN",
            "ovhcloud rights",
            f"missing {' '.join(CANCEL_RIGHT)}: a running reinstall cannot be cancelled",
        )
    return Result("PASS", "ovhcloud rights", "every call the bot makes is allowed")


def _unreachable(api_url: str, exc: Exception) -> str:
    """Why Slack could not be reached, as `run` says it (the cause, not only its type)."""
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
    return f"cannot reach Slack at {api_url} (SLACK_API_URL): {type(exc).__name__}: {reason}"

"""Liveness and readiness as named checks, each answering ok and a short detail.

`/healthz` runs the liveness checks (the process and its threads are alive: restarting it
would help if not); `/readyz` the readiness checks (it can do its work now: store, Slack,
OVHcloud, a known leader). A check is any callable returning a `Result`; one that raises
counts as failed, with the exception's type as detail (never its text: it could quote a URL
with a password). `bot_checks()` wires the checks of a running bot; others plug in with
`Health.add()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from .core.outbox import ChatHealth
from .slack.errors import TOKEN_ERRORS, token_refused

if TYPE_CHECKING:
    from .wiring import Bot

Kind = Literal["live", "ready"]


@dataclass(frozen=True)
class Result:
    ok: bool
    detail: str


Check = Callable[[], Result]


class Health:
    """Named liveness and readiness checks."""

    def __init__(self) -> None:
        self._checks: dict[Kind, dict[str, Check]] = {"live": {}, "ready": {}}

    def add(self, kind: Kind, name: str, check: Check) -> None:
        """Add (or replace) the check `name`."""
        self._checks[kind][name] = check

    def names(self, kind: Kind) -> list[str]:
        return list(self._checks[kind])

    def report(self, kind: Kind, exclude: frozenset[str] = frozenset()) -> tuple[bool, dict]:
        """Run the checks of `kind` (but `exclude`): all ok?, and each one's result."""
        results = {}
        for name, check in self._checks[kind].items():
            if name in exclude:
                continue
            started = time.monotonic()
            try:
                result = check()
            except Exception as exc:
                result = Result(False, f"check failed: {type(exc).__name__}")
            results[name] = {
                "ok": result.ok,
                "detail": result.detail,
                "seconds": round(time.monotonic() - started, 4),
            }
        return all(r["ok"] for r in results.values()), results


class SlackToken:
    """Readiness's view of whether Slack accepts the bot token.

    The one place that knows is `core.outbox.ChatHealth`, the courier's: red when a post is
    refused for its token (the sender then holds every post and probes `auth.test` until it
    works), green again after. `bind` attaches this view to it; every failed Web API call
    (`seen`) feeds it too, so a token refused to a listener's call turns it red as well.
    """

    def __init__(self) -> None:
        self._health = ChatHealth()
        self._detail = "not checked yet"

    def bind(self, health: ChatHealth) -> None:
        """Read (and feed) `health` from now on."""
        self._health = health

    def __call__(self) -> Result:
        state = self._health.state()
        return Result(True, self._detail) if state.ok else Result(False, state.reason)

    def accepted(self, detail: str) -> None:
        self._detail = detail

    def seen(self, method: str, error: str) -> None:
        """A Web API call failed with `error`."""
        if error in TOKEN_ERRORS:
            self._health.refused(f"{token_refused(error)} (seen on {method})")


def bot_checks(
    bot: Bot, *, serving: Callable[[], bool], slack_token: Callable[[], Result]
) -> Health:
    """The checks of a running bot: its threads (live); serving Slack (connected or
    listening, not stopping), the store, Slack's answer to its token, OVHcloud's answer to
    the last poll, a known leader (ready)."""
    health = Health()
    jobs = bot.jobs

    def scheduler() -> Result:
        running = jobs.scheduler.running
        return Result(running, "running" if running else "stopped")

    def sender() -> Result:
        if not jobs.leading:
            return Result(True, "not leading: the leader sends")
        alive = bot.sender.running
        return Result(alive, "sending" if alive else "the outbox's sender thread is dead")

    def serves() -> Result:
        if serving():
            return Result(True, "serving Slack")
        return Result(False, "not serving Slack: starting or stopping")

    def store() -> Result:
        waiting = bot.store.backlog()
        return Result(True, f"answers ({waiting} posts waiting)")

    def ovhcloud() -> Result:
        seen = bot.deployments.provider_seen
        if seen is None:
            return Result(True, "no poll yet")
        answered, when = seen
        ago = _ago(bot.deployments.clock.now() - when)
        if answered:
            return Result(True, f"answered the last poll ({ago} ago)")
        return Result(False, f"did not answer the last poll ({ago} ago)")

    def leader() -> Result:
        if jobs.leading:
            return Result(True, "this process leads")
        if jobs.leadership.leader_known():
            return Result(True, "another replica leads")
        return Result(False, "no leader known: the database does not answer the election")

    health.add("live", "scheduler", scheduler)
    health.add("live", "sender", sender)
    health.add("ready", "serving", serves)
    health.add("ready", "store", store)
    health.add("ready", "slack", slack_token)
    health.add("ready", "ovhcloud", ovhcloud)
    health.add("ready", "leader", leader)
    return health


def _ago(delta: timedelta) -> str:
    return f"{max(delta.total_seconds(), 0):.0f} s"

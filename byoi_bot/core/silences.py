"""Alert silences while a server is reinstalled (optional: `BYOI_ALERTMANAGER_URL`).

From approval to the end of the boot gate, the server's alerts are silenced in
Alertmanager. A silence lives `lifetime` (minutes) and `sync()` renews it while the request
runs, so a stopped bot's silence lapses by itself; once the request has ended, `sync()`
expires it. The truth is Alertmanager's own list of the bot's silences (each names its
request in its comment), so a restart, a new leader or a lost answer changes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from .ports import Clock, RequestStore
from .request import Request
from .states import State

log = logging.getLogger(__name__)

SILENCED_STATES = (State.APPROVED, State.SUBMITTING, State.DEPLOYING, State.BOOTING)
CREATED_BY = "byoi-bot"
_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')
_COMMENT = re.compile(r"byoi-bot (r-[a-z0-9]+):")
RENEW_WHEN_LEFT = 0.5  # renew once less than half the lifetime is left


class SilenceError(ValueError):
    """A matcher template that cannot be used; the message says why and shows the form."""


@dataclass(frozen=True)
class Silence:
    """One of the bot's silences as Alertmanager lists it."""

    id: str
    request_id: str
    starts_at: datetime
    ends_at: datetime


class Silencer(Protocol):
    """Alertmanager, seen from the core (`byoi_bot.alertmanager.Alertmanager`)."""

    def active(self) -> list[Silence]:
        """The bot's silences still active or pending."""
        ...

    def put(
        self, silence: Silence | None, matchers: list[dict], ends_at: datetime, comment: str
    ) -> str:
        """Create a silence (`silence` None) or extend it to `ends_at`; returns its id."""
        ...

    def expire(self, silence_id: str) -> None: ...


def matchers(template: str, server: str) -> list[dict]:
    """Alertmanager v2 matchers from `template`: comma-separated `label<op>"value"` with op
    `=`, `!=`, `=~` or `!~`; `{server}` and `{short}` become the server's name and first
    label (regex-escaped in regex matchers).

    >>> matchers('instance=~"{server}.*"', "ns1.example.net")[0]["value"]
    'ns1\\\\.example\\\\.net.*'
    """
    found, position = [], 0
    text = template.strip()
    while position < len(text):
        match = _MATCHER.match(text, position)
        if not match:
            raise SilenceError(
                f"the silence matchers `{template}` cannot be read at character {position + 1}; "
                'expected label="value" pairs (=, !=, =~, !~), comma-separated, e.g. '
                'instance=~"{server}.*",job="node"'
            )
        name, op, value = match.groups()
        regex = "~" in op
        for key, part in (("{server}", server), ("{short}", server.split(".", 1)[0])):
            value = value.replace(key, re.escape(part) if regex else part)
        found.append({"name": name, "value": value, "isRegex": regex, "isEqual": op[0] == "="})
        position = match.end()
        if position < len(text):
            if text[position] != ",":
                raise SilenceError(f"the silence matchers `{template}`: expected `,` between pairs")
            position += 1
    if not any(m["isEqual"] and m["value"] not in ("", ".*") for m in found):
        raise SilenceError(
            f"the silence matchers `{template}` would silence every alert; give at least one "
            'positive matcher naming the server, e.g. instance=~"{server}.*"'
        )
    return found


class Silences:
    """Keeps one silence per running request, renewed, and expires those of ended ones."""

    def __init__(
        self,
        store: RequestStore,
        silencer: Silencer,
        clock: Clock,
        template: str,
        lifetime: timedelta,
    ) -> None:
        self.store = store
        self.silencer = silencer
        self.clock = clock
        self.template = template
        self.lifetime = lifetime

    def sync(self) -> None:
        """Create, renew or expire what changed since the last call (a job on the leader)."""
        now = self.clock.now()
        own = {s.request_id: s for s in self.silencer.active()}
        for request in self.store.in_states(SILENCED_STATES):
            silence = own.pop(request.id, None)
            if silence and silence.ends_at - now > self.lifetime * RENEW_WHEN_LEFT:
                continue
            self.silencer.put(
                silence,
                matchers(self.template, request.spec.server),
                now + self.lifetime,
                comment(request),
            )
        for silence in self._ended(own.values()):
            self.silencer.expire(silence.id)

    def _ended(self, silences: Iterable[Silence]) -> list[Silence]:
        """The silences of this bot's requests that ended (another bot's are left alone)."""
        ended = []
        for silence in silences:
            request = self.store.get(silence.request_id)
            if request is not None and request.state not in SILENCED_STATES:
                ended.append(silence)
        return ended


def comment(request: Request) -> str:
    """The silence's comment: the request first (how `sync()` finds it again)."""
    server, requester = request.spec.server, request.requester
    return f"byoi-bot {request.id}: reinstalling {server} (requested by {requester})"


def request_of(text: str) -> str | None:
    """The request id a silence's comment names, if the bot made it."""
    match = _COMMENT.match(text or "")
    return match.group(1) if match else None

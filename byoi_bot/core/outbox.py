"""The outbox: what the bot has to say, stored with the state change it reports, sent later.

A state change and its posts are written in one transaction (`RequestStore.transition(...,
posts=...)`), so a crash or a rate-limited chat never loses an update. A sender drains the
outbox through `Courier`, one *lane* (channel and kind) at a time:

- thread replies are posted in order; waiting progress posts of one deployment keep only
  the latest text (their `key`), card edits likewise (a card is drawn when it is sent);
- a rate limit (`RetryLater`) puts the post back untouched; a post whose outcome is unknown
  (timeout, 5xx) is put back `unsure`, and the chat checks before posting it again, so
  nothing is posted twice; a post the chat can never deliver (`Undeliverable`) is dropped;
- a chat that refuses the bot's own credentials (`Unauthorized`) loses nothing: the post
  goes back, `ChatHealth` turns red, and the sender stops sending until a probe of the
  credentials (`Courier.probe`) succeeds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .fleet import Fleet
from .ports import CardView, Chat, FleetView, RequestStore
from .request import Request

log = logging.getLogger(__name__)

REPLY, CARD = "reply", "card"
GIVE_UP_AFTER = 8  # attempts whose outcome stayed unknown
MAX_BACKOFF = 60.0


@dataclass(frozen=True)
class Post:
    """A thread reply or a card edit of one request; posts with one `key` replace each other."""

    kind: str
    request_id: str
    channel: str
    text: str = ""
    key: str | None = None

    @classmethod
    def reply(cls, request: Request | Fleet, text: str, *, latest_only: bool = False) -> Post:
        """A reply in the card's thread; `latest_only` for progress that a newer one supersedes."""
        key = f"progress:{request.id}" if latest_only else None
        return cls(REPLY, request.id, request.channel, text, key)

    @classmethod
    def card(cls, request: Request | Fleet) -> Post:
        """Redraw the card as it stands when sent."""
        return cls(CARD, request.id, request.channel, key=f"card:{request.id}")


@dataclass(frozen=True)
class Queued:
    """A post waiting in the outbox."""

    id: int
    post: Post
    attempts: int = 0
    unsure: bool = False  # a previous attempt may have been posted

    @property
    def lane(self) -> tuple[str, str]:
        """Posts of one lane go out in order, paced together."""
        return (self.post.channel, self.post.kind)


class RetryLater(Exception):
    """The chat refused for now (rate limit): nothing was posted; retry after `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds:g} s")
        self.seconds = seconds


class Undeliverable(Exception):
    """The chat will never take this post (e.g. the bot was removed from the channel)."""


class Unauthorized(Exception):
    """The chat refuses the bot's own credentials (token revoked or invalid, app uninstalled):
    no post can go out until an operator fixes them. The message names the setting to fix."""


@dataclass(frozen=True)
class ChatState:
    """A snapshot of `ChatHealth`: `ok`, and while not, `reason` (in words, with the setting)."""

    ok: bool
    reason: str = ""


ACCEPTED = ChatState(ok=True)


class ChatHealth:
    """Whether the chat accepts the bot's credentials: the ONE place that says so.

    The outbox's courier turns it red on `Unauthorized`, the chat adapter on events that say
    the token is gone (Slack's `tokens_revoked`, `app_uninstalled`), and a successful probe
    turns it green again. Readiness checks, the App Home and metrics read `state()`. A change
    is logged once (an error when it turns red, a note when it recovers), not every attempt.
    """

    def __init__(self) -> None:
        self._state = ACCEPTED
        self._lock = threading.Lock()

    def state(self) -> ChatState:
        with self._lock:
            return self._state

    @property
    def ok(self) -> bool:
        return self.state().ok

    def refused(self, reason: str) -> bool:
        """The credentials were refused (`reason` says by whom and what to fix); True (and
        logged) when they were accepted until now."""
        with self._lock:  # logged before anyone reads the change
            changed = self._state.ok
            if changed:
                log.error("chat credentials refused: %s; posts stay queued until they work", reason)
            self._state = ChatState(ok=False, reason=reason)
        return changed

    def accepted(self) -> None:
        """The credentials work (again)."""
        with self._lock:
            changed, self._state = not self._state.ok, ACCEPTED
        if changed:
            log.warning("chat credentials accepted again: sending the queued posts")


class Outbox(Protocol):
    """The store's side of the outbox."""

    def resume_sending(self) -> None:
        """Put posts left `sending` by a sender that died back in line, marked unsure."""
        ...

    def heads(self) -> list[Queued]:
        """The oldest waiting post of every lane."""
        ...

    def claim(self, post_id: int) -> Queued | None:
        """Mark a waiting post as being sent (None if it is no longer waiting)."""
        ...

    def sent(self, post_id: int, ts: str | None) -> None: ...
    def requeue(self, post_id: int, *, unsure: bool) -> None: ...
    def drop(self, post_id: int, reason: str) -> None: ...
    def backlog(self) -> int: ...


class Courier:
    """Sends waiting posts through the `Chat` port and records what happened."""

    def __init__(
        self,
        outbox: Outbox,
        requests: RequestStore,
        chat: Chat,
        render: Callable[[Request], CardView],
        render_fleet: Callable[[Fleet], FleetView] | None = None,
    ) -> None:
        self.outbox = outbox
        self.requests = requests
        self.chat = chat
        self.render = render
        self.render_fleet = render_fleet  # a fleet's card and thread (core.fleets)
        self.health = ChatHealth()

    def probe(self) -> bool:
        """Ask the chat whether it accepts the bot's credentials now; True when it does."""
        try:
            self.chat.check_credentials()
        except Unauthorized as exc:
            self.health.refused(str(exc))
            return False
        except Exception as exc:  # unreachable: try again later, the state stays as it is
            log.warning("could not check the chat credentials: %s", type(exc).__name__)
            return False
        self.health.accepted()
        return True

    def deliver(self, item: Queued) -> float | None:
        """Send one post: None when done (sent or dropped), else seconds to wait before retrying."""
        claimed = self.outbox.claim(item.id)
        if claimed is None:
            return None
        request = self.requests.get(claimed.post.request_id)
        fleet = None if request else self.requests.fleet(claimed.post.request_id)
        owner = request or fleet
        if owner is None or not owner.message_ts:  # e.g. one server of a fleet: no card
            self.outbox.drop(claimed.id, "no card to post to")
            return None
        try:
            if claimed.post.kind == CARD:
                if fleet is not None and self.render_fleet:
                    self.chat.update_fleet_card(self.render_fleet(fleet))
                elif request is not None:
                    self._draw(request)
                ts = None
            else:
                ts = self.chat.reply(
                    owner, claimed.post.text, post_id=claimed.id, maybe_posted=claimed.unsure
                )
        except RetryLater as exc:
            self.outbox.requeue(claimed.id, unsure=claimed.unsure)
            return max(exc.seconds, 0.0)
        except Unauthorized as exc:  # nothing was posted; nothing can be until it is fixed
            self.outbox.requeue(claimed.id, unsure=claimed.unsure)
            self.health.refused(str(exc))
            return MAX_BACKOFF
        except Undeliverable as exc:
            log.warning("post %s in %s dropped: %s", claimed.id, claimed.post.channel, exc)
            self.outbox.drop(claimed.id, str(exc))
            return None
        except Exception as exc:  # timeout, 5xx: it may have been posted
            log.warning("post %s: outcome unknown, will check and retry", claimed.id, exc_info=exc)
            if claimed.attempts >= GIVE_UP_AFTER:
                self.outbox.drop(claimed.id, f"gave up: {type(exc).__name__}")
                return None
            self.outbox.requeue(claimed.id, unsure=True)
            return min(2.0**claimed.attempts, MAX_BACKOFF)
        self.outbox.sent(claimed.id, ts)
        self.health.accepted()
        return None

    def _draw(self, request: Request) -> None:
        """Redraw the card, unless a newer version of it is drawn already (a sender of
        another replica that has just lost the lead may still be sending)."""
        if not self.requests.claim_card(request.id, request.version):
            return
        try:
            self.chat.update_card(self.render(request))
        except BaseException:
            self.requests.release_card(request.id, request.version)  # drawn by the retry
            raise

    def drain(self) -> None:
        """Send every waiting post now, unpaced, each lane until its first failure (tests)."""
        stuck: set[tuple[str, str]] = set()
        while self.health.ok and (heads := [h for h in self.outbox.heads() if h.lane not in stuck]):
            for head in heads:
                if not self.health.ok:
                    return
                if self.deliver(head) is not None:
                    stuck.add(head.lane)

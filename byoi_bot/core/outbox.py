"""The outbox: what the bot has to say, stored with the state change it reports, sent later.

A state change and its posts are written in one transaction (`RequestStore.transition(...,
posts=...)`), so a crash or a rate-limited chat never loses an update. A sender drains the
outbox through `Courier`, one *lane* (channel, and new messages or card edits) at a time:

- a card's first post and the thread replies are new messages of the channel: they share a
  lane and go out in order (a card before its replies); waiting progress posts of one
  deployment keep only the latest text (their `key`), card edits likewise; a card is drawn
  when it is sent, so an edit queued before the card's first post went out is not needed;
- a card's first post is never given up because the chat asked to wait; when the chat
  refuses it for good, `on_card` is told (the request is cancelled, nobody could vote);
- a rate limit (`RetryLater`) puts the post back untouched; a post whose outcome is unknown
  (timeout, 5xx) is put back `unsure`, and the chat checks before posting it again, so
  nothing is posted twice; a post the chat can never deliver (`Undeliverable`) is dropped;
- a chat that refuses the bot's own credentials (`Unauthorized`) loses nothing: the post
  goes back, `ChatHealth` turns red, and the sender stops sending until a probe of the
  credentials (`Courier.probe`) succeeds;
- when the channel itself refuses the bot for good (archived, bot removed), the requester
  is told by direct message, once, and once more with the outcome when it is known.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from . import messages
from .fleet import Fleet
from .ports import CardView, Chat, FleetView, RequestStore
from .posts import CARD, NEW, Post, Queued, RetryLater, Unauthorized, Undeliverable
from .request import Request

log = logging.getLogger(__name__)

GIVE_UP_AFTER = 8  # attempts whose outcome stayed unknown
MAX_BACKOFF = 60.0


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
        on_card: Callable[[str, str | None, str | None], bool] | None = None,
    ) -> None:
        self.outbox = outbox
        self.requests = requests
        self.chat = chat
        self.render = render
        self.render_fleet = render_fleet  # a fleet's card and thread (core.fleets)
        # a card's first post settled: (owner id, its ts, or why it never will be); True
        # when a command waits for that answer (else the requester is told by DM)
        self.on_card = on_card or (lambda owner_id, ts, why: False)
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
        post = claimed.post
        request = self.requests.get(post.request_id)
        fleet = None if request else self.requests.fleet(post.request_id)
        owner = request or fleet
        if owner is None or (post.kind == NEW) == bool(owner.message_ts):
            # no card (e.g. one server of a fleet, or a card that was never posted: its first
            # post draws the latest state anyway), or a card posted already
            why = "posted already" if post.kind == NEW else "no card to post to"
            self.outbox.drop(claimed.id, why if owner else "no such request")
            return None
        try:
            ts = self._send(claimed, request, fleet)
        except RetryLater as exc:
            self.outbox.requeue(claimed.id, unsure=claimed.unsure)
            return max(exc.seconds, 0.0)
        except Unauthorized as exc:  # nothing was posted; nothing can be until it is fixed
            self.outbox.requeue(claimed.id, unsure=claimed.unsure)
            self.health.refused(str(exc))
            return MAX_BACKOFF
        except Undeliverable as exc:
            log.warning("post %s in %s dropped: %s", claimed.id, post.channel, exc.detail)
            self.outbox.drop(claimed.id, exc.detail)
            self._refused(claimed, owner, exc)
            return None
        except Exception as exc:  # timeout, 5xx: it may have been posted
            log.warning(
                "post %s: outcome unknown (%s), will check and retry", claimed.id, exc, exc_info=exc
            )
            if claimed.attempts >= GIVE_UP_AFTER:
                self.outbox.drop(claimed.id, f"gave up: {type(exc).__name__}")
                if post.kind == NEW:
                    self._refused(claimed, owner, Undeliverable(messages.card_failed()))
                return None
            self.outbox.requeue(claimed.id, unsure=True)
            return min(2.0**claimed.attempts, MAX_BACKOFF)
        self.outbox.sent(claimed.id, ts)
        self.health.accepted()
        return None

    def _send(self, claimed: Queued, request: Request | None, fleet: Fleet | None) -> str | None:
        """Post or redraw; the new message's ts (for new messages)."""
        post, owner = claimed.post, request or fleet
        assert owner is not None
        if post.kind == NEW:
            return self._post_card(claimed, request, fleet)
        if post.kind == CARD:
            if fleet is not None and self.render_fleet:
                self.chat.update_fleet_card(self.render_fleet(fleet))
            elif request is not None:
                self._draw(request)
            return None
        return self.chat.reply(owner, post.text, post_id=claimed.id, maybe_posted=claimed.unsure)

    def _post_card(self, claimed: Queued, request: Request | None, fleet: Fleet | None) -> str:
        """Post a card, store its ts, offer the votes; tell whoever waits for it."""
        unsure = claimed.unsure
        if fleet is not None and self.render_fleet:
            view = self.render_fleet(fleet)
            ts = self.chat.post_fleet_card(view, post_id=claimed.id, maybe_posted=unsure)
            self.requests.update_fleet(fleet.id, message_ts=ts)
            owner: Request | Fleet = fleet
        else:
            assert request is not None
            ts = self.chat.post_card(self.render(request), post_id=claimed.id, maybe_posted=unsure)
            self.requests.update(request.id, message_ts=ts)
            owner = request
        owner.message_ts = ts
        if unsure:  # found in the channel, maybe drawn from an older state: draw it again
            self.requests.enqueue([Post.card(owner)])
        try:
            if fleet is not None:
                self.chat.offer_fleet_votes(fleet)  # after the ts is stored: a vote finds it
            else:
                self.chat.offer_votes(owner)
        except Exception:
            log.exception("could not add the vote reactions to %s", owner.id)
        self.on_card(owner.id, ts, None)
        return ts

    def _refused(self, claimed: Queued, owner: Request | Fleet, exc: Undeliverable) -> None:
        """A post refused for good: a card that could not be posted is given up (told to
        the waiting command, or else by DM); a channel that refuses the bot is told by DM."""
        if claimed.post.kind == NEW:
            if not self.on_card(owner.id, None, str(exc)):
                self._dm_once(owner, "card", messages.card_not_posted_dm(owner, str(exc)))
        elif exc.channel_gone:
            if owner_final := owner.state.is_final:
                text = messages.outcome_dm(owner, claimed.post.text, str(exc))
            else:
                text = messages.channel_gone_dm(owner, str(exc))
            self._dm_once(owner, "outcome" if owner_final else "channel gone", text)

    def _dm_once(self, owner: Request | Fleet, topic: str, text: str) -> None:
        action = f"told by DM: {topic}"
        if not self.requests.first_delivery(f"{action}:{owner.id}"):  # atomic: senders race
            return
        try:
            self.chat.dm(owner.requester, text)
        except Exception as exc:
            log.warning("could not tell %s about %s by DM: %s", owner.requester, owner.id, exc)
            return
        self.requests.note(owner.id, "byoi-bot", action, text[:200])
        log.warning("told %s about %s by DM (%s)", owner.requester, owner.id, topic)

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

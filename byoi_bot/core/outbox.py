"""The outbox: what the bot has to say, stored with the state change it reports, sent later.

A state change and its posts are written in one transaction (`RequestStore.transition(...,
posts=...)`), so a crash or a rate-limited chat never loses an update. A sender drains the
outbox through `Courier`, one *lane* (channel and kind) at a time:

- thread replies are posted in order; waiting progress posts of one deployment keep only
  the latest text (their `key`), card edits likewise (a card is drawn when it is sent);
- a rate limit (`RetryLater`) puts the post back untouched; a post whose outcome is unknown
  (timeout, 5xx) is put back `unsure`, and the chat checks before posting it again, so
  nothing is posted twice; a post the chat can never deliver (`Undeliverable`) is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from .fleet import Fleet
from .ports import CardView, Chat, FleetView, RequestStore
from .posts import CARD, Queued, RetryLater, Undeliverable
from .request import Request

log = logging.getLogger(__name__)

GIVE_UP_AFTER = 8  # attempts whose outcome stayed unknown
MAX_BACKOFF = 60.0


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
        while heads := [h for h in self.outbox.heads() if h.lane not in stuck]:
            for head in heads:
                if self.deliver(head) is not None:
                    stuck.add(head.lane)

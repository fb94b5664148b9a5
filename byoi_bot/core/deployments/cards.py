"""Cards: a request's (or fleet's) card is posted by the outbox, at the chat's pace.

The card's first post is queued like any other post (`Post.new_card`), so Slack's rate limit
delays it and never cancels it. The command that asked waits a little for it, to answer
"posted" or, when the chat refused it for good, why; after that the request goes on and the
outbox tells its requester (`core.outbox`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import suppress

from .. import messages
from ..fleet import Fleet
from ..posts import Post
from ..request import Request
from ..states import IllegalTransition, State
from .base import SYSTEM, Refused, Workflow

log = logging.getLogger(__name__)

CARD_WAIT = 10.0  # seconds a command waits for its card's first post before answering
CARD_RECHECK = 0.5  # seconds between looks in the store (another replica's sender)
CARD_LOST = "card not posted"


class Cards(Workflow):
    """Post a card through the outbox and hear how it went."""

    card_wait = CARD_WAIT  # `_cards` and `_awaited` (id -> (ts, why) once settled): `Workflow`

    def post_card(
        self, owner: Request | Fleet, reload: Callable[[str], Request | Fleet | None]
    ) -> str | None:
        """Queue the card's first post and wait up to `card_wait` s for it: its ts once
        posted, None while it waits for the chat; raises `Refused` when the chat refused it
        for good (the request is cancelled). `reload` reads the owner again (a sender on
        another replica may post it)."""
        with self._cards:
            self._awaited[owner.id] = None
        try:
            self.store.enqueue([Post.new_card(owner)])
            deadline = time.monotonic() + self.card_wait
            with self._cards:
                while (settled := self._awaited[owner.id]) is None:
                    current = reload(owner.id)
                    if current is not None and current.message_ts:
                        return current.message_ts
                    if current is not None and current.state.is_final:
                        raise Refused([messages.card_failed()])
                    if (left := deadline - time.monotonic()) <= 0:
                        return None
                    self._cards.wait(min(left, CARD_RECHECK))
        finally:
            with self._cards:
                self._awaited.pop(owner.id, None)
        ts, why = settled
        if why is not None:
            raise Refused([why])
        return ts

    def card_settled(self, owner_id: str, ts: str | None, why: str | None) -> bool:
        """The outbox posted a card (`ts`) or never will (`why`); one waiting for approval is
        then cancelled (nobody could vote). True when a command waits for the answer."""
        if why is not None:
            log.warning("the card of %s was not posted: %s", owner_id, why)
            if self.store.get(owner_id) is not None:
                with suppress(IllegalTransition):
                    self.store.transition(
                        owner_id, State.PENDING_APPROVAL, State.CANCELLED, SYSTEM, CARD_LOST
                    )
            elif self.fleets is not None:
                self.fleets.cancel_unposted(owner_id)
        with self._cards:
            awaited = owner_id in self._awaited
            if awaited:
                self._awaited[owner_id] = (ts, why)
                self._cards.notify_all()
        return awaited

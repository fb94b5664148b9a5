"""What the bot has to say: a post for the outbox, and how a chat refuses one.

The store writes `Post`s with the state change they report; `core.outbox.Courier` sends them
through the `Chat` port, which raises `RetryLater`, `Unauthorized` or `Undeliverable` when it
cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

from .fleet import Fleet
from .request import Request

REPLY, CARD, NEW = "reply", "card", "new"  # NEW: a card's first post


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

    @classmethod
    def new_card(cls, request: Request | Fleet) -> Post:
        """Post the card, drawn as it stands when sent."""
        return cls(NEW, request.id, request.channel)


@dataclass(frozen=True)
class Queued:
    """A post waiting in the outbox."""

    id: int
    post: Post
    attempts: int = 0
    unsure: bool = False  # a previous attempt may have been posted

    @property
    def lane(self) -> tuple[str, str]:
        """Posts of one lane go out in order, paced together (new cards with the replies)."""
        return (self.post.channel, REPLY if self.post.kind == NEW else self.post.kind)


class RetryLater(Exception):
    """The chat refused for now (rate limit): nothing was posted; retry after `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds:g} s")
        self.seconds = seconds


class Undeliverable(Exception):
    """The chat will never take this post (e.g. the bot was removed from the channel).

    The message says why in the user's words; `detail` is the chat's own error, for the log;
    `channel_gone` when the channel refuses every post of the bot (archived, bot removed).
    """

    def __init__(self, why: str, *, detail: str = "", channel_gone: bool = False) -> None:
        super().__init__(why)
        self.detail = detail or why
        self.channel_gone = channel_gone


class Unauthorized(Exception):
    """The chat refuses the bot's own credentials (token revoked or invalid, app uninstalled):
    no post can go out until an operator fixes them. The message names the setting to fix."""

"""The core's `Chat` port over Slack's Web API (slack_sdk's WebClient)."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.web import SlackResponse

from ..core.fleet import Fleet
from ..core.ports import CardView, FleetView
from ..core.posts import RetryLater, Unauthorized, Undeliverable
from ..core.request import Request
from ..core.text import esc, truncate
from .cards import card_blocks
from .errors import TOKEN_ERRORS, MaybePosted, failed, token_refused
from .fleet_card import fleet_blocks
from .observed import ObservedWebClient, Observer

log = logging.getLogger(__name__)

CARD_REACTIONS = ("white_check_mark", "x")
OUTBOX_EVENT = "byoi_outbox_post"
CHANNEL_ERRORS = {
    "not_in_channel": (
        "byoi-bot is not in this channel, so it cannot post the request card. Invite it "
        "with `/invite @byoi-bot`, then run the command again. Nothing was changed."
    ),
    "channel_not_found": (
        "byoi-bot cannot post here (a direct message, or a channel it cannot see). Run "
        "`/byoi deploy` in a channel byoi-bot is in (`/invite @byoi-bot`). Nothing was changed."
    ),
    "is_archived": (
        "This channel is archived, so byoi-bot cannot post the request card. Use an active "
        "channel. Nothing was changed."
    ),
    "restricted_action": (
        "Slack's settings do not let byoi-bot post in this channel (an admin restricted "
        "posting). Use another channel, or ask a workspace admin. Nothing was changed."
    ),
}
CARD_REFUSED = (
    "Slack refused the request card (`{error}`), so nobody could approve it: the request is "
    "cancelled and nothing was changed. Sending it again would fail the same way: ask the "
    "bot's operators (the log has Slack's answer)."
)
CHANNEL_GONE = {  # the same refusals in the middle of a request
    "not_in_channel": "byoi-bot was removed from the channel",
    "channel_not_found": "byoi-bot cannot see the channel any more",
    "is_archived": "the channel is archived",
    "restricted_action": "an admin restricted posting in the channel",
}
TRANSIENT_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
TEXT_LIMIT = 3900
GROUP_CACHE_SECONDS = 300
HISTORY_PAGES = 3  # of 200 messages: how far back a card maybe posted is looked for


def make_web_client(token: str, base_url: str, observe: Observer | None = None) -> WebClient:
    """A WebClient that honours Retry-After on 429 and retries 5xx and connection errors;
    `observe(method, error)` hears of every failed call."""
    return ObservedWebClient(
        token=token,
        base_url=base_url,
        observe=observe,
        timeout=15,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )


class SlackChat:
    """Posts cards, thread replies and ephemeral messages; reads user-group members."""

    def __init__(self, client: WebClient) -> None:
        self.client = client
        # The outbox's posts: no automatic retries (a retried POST may post twice, a 429
        # must not hold the sender's thread); the outbox retries, paced and deduplicated.
        self.once = ObservedWebClient(
            token=client.token,
            base_url=client.base_url,
            timeout=client.timeout,
            retry_handlers=[],
            observe=getattr(client, "observe", None),
        )
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def post_card(self, view: CardView, *, post_id: int, maybe_posted: bool = False) -> str:
        """Post the card, tagged with the outbox id; a channel the bot cannot post in raises
        `Undeliverable`, in words."""
        channel = view.request.channel
        return self._post_card(channel, *card_blocks(view), post_id, maybe_posted)

    def offer_votes(self, request: Request) -> None:
        self._pre_add_votes(request.channel, request.message_ts)

    def update_card(self, view: CardView) -> None:
        self._update_card(view.request.channel, view.request.message_ts, *card_blocks(view))

    def _post_card(
        self, channel: str, blocks: list[dict], text: str, post_id: int, maybe_posted: bool
    ) -> str:
        """Like `reply`: after an unknown outcome, the channel is read for the outbox id."""
        with _outcome(first_post=True):
            if maybe_posted and (ts := self._in_channel(channel, post_id)):
                return ts
            answer = self.once.chat_postMessage(
                channel=channel,
                blocks=blocks,
                text=text,
                unfurl_links=False,
                metadata=_tag(post_id),
            )
        return answer["ts"]

    def _pre_add_votes(self, channel: str, ts: str | None) -> None:
        for reaction in CARD_REACTIONS:
            try:
                self.client.reactions_add(channel=channel, timestamp=ts, name=reaction)
            except SlackApiError as exc:
                log.warning("could not pre-add :%s: (%s)", reaction, failed(exc))

    def _update_card(self, channel: str, ts: str | None, blocks: list[dict], text: str) -> None:
        with _outcome():
            self.once.chat_update(channel=channel, ts=ts, blocks=blocks, text=text)

    def reply(
        self, request: Request | Fleet, text: str, *, post_id: int, maybe_posted: bool = False
    ) -> str | None:
        """Post in the card's thread, tagged with the outbox id (message metadata).

        After an attempt whose outcome is unknown, the thread is read first: a message
        carrying this outbox id means it went through, and it is not posted again.
        """
        with _outcome():
            if maybe_posted and (ts := self._in_thread(request, post_id)):
                return ts
            answer = self.once.chat_postMessage(
                channel=request.channel,
                thread_ts=request.message_ts,
                text=truncate(text, TEXT_LIMIT),
                unfurl_links=False,
                metadata=_tag(post_id),
            )
        return answer.get("ts")

    def _in_thread(self, request: Request | Fleet, post_id: int) -> str | None:
        """The thread message carrying `post_id`, if any (needs `channels:history`)."""
        return self._find(
            self.once.conversations_replies, post_id, None, channel=request.channel,
            ts=request.message_ts,
        )  # fmt: skip

    def _in_channel(self, channel: str, post_id: int) -> str | None:
        """The recent channel message carrying `post_id`, if any (needs `channels:history`)."""
        return self._find(self.once.conversations_history, post_id, HISTORY_PAGES, channel=channel)

    def _find(
        self, read: Callable[..., SlackResponse], post_id: int, pages: int | None, **where
    ) -> str | None:
        """The ts of the message tagged `post_id` among those `read` returns, page by page."""
        cursor = None
        for _ in itertools.islice(itertools.count(), pages):
            try:
                page = read(**where, include_all_metadata=True, limit=200, cursor=cursor)
            except SlackApiError as exc:
                if exc.response.status_code == 429 or exc.response.get("error") in TOKEN_ERRORS:
                    raise  # the caller's `_outcome` makes it a wait
                log.warning("could not read the channel (%s): posting again", failed(exc))
                return None
            for message in page.get("messages") or []:
                meta = message.get("metadata") or {}
                if (
                    meta.get("event_type") == OUTBOX_EVENT
                    and (meta.get("event_payload") or {}).get("post") == post_id
                ):
                    return message.get("ts")
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    def post_fleet_card(self, view: FleetView, *, post_id: int, maybe_posted: bool = False) -> str:
        return self._post_card(view.fleet.channel, *fleet_blocks(view), post_id, maybe_posted)

    def offer_fleet_votes(self, fleet: Fleet) -> None:
        self._pre_add_votes(fleet.channel, fleet.message_ts)

    def update_fleet_card(self, view: FleetView) -> None:
        self._update_card(view.fleet.channel, view.fleet.message_ts, *fleet_blocks(view))

    def tell(self, user: str, channel: str, text: str) -> None:
        self.client.chat_postEphemeral(channel=channel, user=user, text=truncate(text, TEXT_LIMIT))

    def dm(self, user: str, text: str) -> None:
        """`conversations.open` with `user`, then a message there."""
        opened = self.client.conversations_open(users=user)
        channel = opened["channel"]["id"]
        self.client.chat_postMessage(channel=channel, text=truncate(text, TEXT_LIMIT))

    def check_credentials(self) -> None:
        """`auth.test`: raise `Unauthorized` when Slack refuses the token."""
        with _outcome():
            self.once.auth_test()

    def group_members(self, group_id: str) -> frozenset[str]:
        with self._lock:
            cached = self._groups.get(group_id)
        if cached and time.monotonic() - cached[0] < GROUP_CACHE_SECONDS:
            return cached[1]
        try:
            users = frozenset(self.client.usergroups_users_list(usergroup=group_id)["users"])
        except SlackApiError as exc:
            # keep the last list read (never cache a failure as "nobody")
            log.warning("members of %s unknown: %s", group_id, failed(exc))
            return cached[1] if cached else frozenset()
        with self._lock:
            self._groups[group_id] = (time.monotonic(), users)
        return users


def _tag(post_id: int) -> dict:
    """Message metadata carrying the outbox id: how a message maybe posted is found again."""
    return {"event_type": OUTBOX_EVENT, "event_payload": {"post": post_id}}


@contextmanager
def _outcome(first_post: bool = False) -> Iterator[None]:
    """Slack's answers in the outbox's terms: 429 → `RetryLater`; a refused token →
    `Unauthorized`; 5xx, Slack's own transient errors, timeouts, connection errors pass
    (maybe posted); any other refusal (e.g. `not_in_channel`, `is_archived`) →
    `Undeliverable`, in words for a card's `first_post` or else for its requester."""
    try:
        yield
    except SlackApiError as exc:
        status, error = exc.response.status_code, exc.response.get("error")
        if status == 429 or error == "ratelimited":
            raise RetryLater(_retry_after(exc.response.headers)) from None
        if error in TOKEN_ERRORS:
            raise Unauthorized(token_refused(error)) from None
        if status >= 500 or error in TRANSIENT_ERRORS:
            raise MaybePosted(failed(exc)) from exc
        words = (CHANNEL_ERRORS if first_post else CHANNEL_GONE).get(error)
        if first_post and not words:  # a card nobody can approve: no retry would help
            words = CARD_REFUSED.format(error=esc(str(error)))
        raise Undeliverable(
            words or failed(exc), detail=failed(exc), channel_gone=error in CHANNEL_GONE
        ) from None


def _retry_after(headers: dict) -> float:
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            try:
                return max(float(value), 0.0)
            except (TypeError, ValueError):
                break
    return 1.0

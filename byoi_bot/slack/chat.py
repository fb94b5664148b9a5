"""The core's `Chat` port over Slack's Web API (slack_sdk's WebClient)."""

from __future__ import annotations

import logging
import threading
import time

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from ..core.ports import CardView
from ..core.request import Request
from ..core.text import truncate
from .cards import card_blocks

log = logging.getLogger(__name__)

CARD_REACTIONS = ("white_check_mark", "x")
TEXT_LIMIT = 3900
GROUP_CACHE_SECONDS = 300


def make_web_client(token: str, base_url: str) -> WebClient:
    """A WebClient that honours Retry-After on 429 and retries 5xx and connection errors."""
    return WebClient(
        token=token,
        base_url=base_url,
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
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def post_card(self, view: CardView) -> str:
        blocks, text = card_blocks(view)
        answer = self.client.chat_postMessage(
            channel=view.request.channel, blocks=blocks, text=text, unfurl_links=False
        )
        return answer["ts"]

    def offer_votes(self, request: Request) -> None:
        for reaction in CARD_REACTIONS:
            try:
                self.client.reactions_add(
                    channel=request.channel, timestamp=request.message_ts, name=reaction
                )
            except SlackApiError as exc:
                log.warning("could not pre-add :%s: (%s)", reaction, exc.response.get("error"))

    def update_card(self, view: CardView) -> None:
        blocks, text = card_blocks(view)
        self.client.chat_update(
            channel=view.request.channel, ts=view.request.message_ts, blocks=blocks, text=text
        )

    def reply(self, request: Request, text: str) -> None:
        self.client.chat_postMessage(
            channel=request.channel,
            thread_ts=request.message_ts,
            text=truncate(text, TEXT_LIMIT),
            unfurl_links=False,
        )

    def tell(self, user: str, channel: str, text: str) -> None:
        self.client.chat_postEphemeral(channel=channel, user=user, text=truncate(text, TEXT_LIMIT))

    def group_members(self, group_id: str) -> frozenset[str]:
        with self._lock:
            cached = self._groups.get(group_id)
        if cached and time.monotonic() - cached[0] < GROUP_CACHE_SECONDS:
            return cached[1]
        try:
            users = frozenset(self.client.usergroups_users_list(usergroup=group_id)["users"])
        except SlackApiError as exc:
            # keep the last list read (never cache a failure as "nobody")
            log.warning("members of %s unknown: %s", group_id, exc.response.get("error"))
            return cached[1] if cached else frozenset()
        with self._lock:
            self._groups[group_id] = (time.monotonic(), users)
        return users

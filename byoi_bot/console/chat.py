"""The core's `Chat` port in a terminal: cards, threads and ephemeral lines on stdout.

Cards are the same Block Kit documents the Slack adapter posts (`slack.cards`), rendered as
text, so the shell shows exactly what Slack would.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import TextIO

from ..core.fleet import Fleet
from ..core.ports import CardView, FleetView
from ..core.request import Request
from ..core.text import progress_bar
from ..slack.cards import card_blocks
from ..slack.fleet_card import fleet_blocks

BOLD, DIM, RED, GREEN, YELLOW, CYAN, RESET = (
    "\033[1m", "\033[2m", "\033[31m", "\033[32m", "\033[33m", "\033[36m", "\033[0m",
)  # fmt: skip


class ConsoleChat:
    """Prints what the bot says; `changed` is notified after every message (for `wait until`)."""

    def __init__(self, out: TextIO, color: bool = False, channel: str = "#ops") -> None:
        self.out = out
        self.color = color
        self.channel = channel
        self.changed = threading.Condition()
        self.cards: dict[str, str] = {}  # request id -> ts
        self._ts = 0
        self._lock = threading.Lock()

    # -- Chat port ------------------------------------------------------------------

    def post_card(self, view: CardView, *, post_id: int, maybe_posted: bool = False) -> str:
        with self._lock:
            self._ts += 1
            ts = f"{self._ts}.000000"
            self.cards[view.request.id] = ts
        self._print_card(view, "new card")
        return ts

    def offer_votes(self, request: Request) -> None:
        pass  # the shell has no reactions to pre-add

    def update_card(self, view: CardView) -> None:
        """One line per redraw: the card's new status (the full card was shown when posted)."""
        status = f"{view.status_line} {progress_bar(view.progress_fraction)}".rstrip()
        self._emit(f"  {self._c(CYAN, '▣ card ' + view.request.id)} {self.render(status)}")

    def reply(
        self, request: Request | Fleet, text: str, *, post_id: int, maybe_posted: bool = False
    ) -> str | None:
        self._emit(f"  {self._c(DIM, '↳ ' + request.id)} {self.render(text)}")
        return None

    def tell(self, user: str, channel: str, text: str) -> None:
        self._emit(f"  {self._c(YELLOW, f'(only {user} sees this)')} {self.render(text)}")

    def dm(self, user: str, text: str) -> None:
        self._emit(f"  {self._c(YELLOW, f'(direct message to {user})')} {self.render(text)}")

    def check_credentials(self) -> None:
        pass  # the shell has no credentials to refuse

    def group_members(self, group_id: str) -> frozenset[str]:
        return frozenset()

    def post_fleet_card(self, view: FleetView, *, post_id: int, maybe_posted: bool = False) -> str:
        with self._lock:
            self._ts += 1
            ts = f"{self._ts}.000000"
            self.cards[view.fleet.id] = ts
        self._print_blocks(fleet_blocks(view)[0], "new fleet card")
        return ts

    def offer_fleet_votes(self, fleet: Fleet) -> None:
        pass  # the shell has no reactions to pre-add

    def update_fleet_card(self, view: FleetView) -> None:
        self._emit(f"  {self._c(CYAN, '▣ card ' + view.fleet.id)} {self.render(view.status_line)}")

    # -- rendering ------------------------------------------------------------------

    def say(self, text: str) -> None:
        """Print a line of the shell itself (commands echoed, answers)."""
        self._emit(self.render(text))

    def render(self, text: str) -> str:
        """Slack mrkdwn to terminal text: mentions, dates, bold, and escapes undone."""
        text = re.sub(r"<@([^>|]+)>", r"@\1", text)
        text = re.sub(r"<!subteam\^([^>|]+)>", r"@\1", text)
        text = re.sub(r"<!date\^[^|>]*\|([^>]*)>", r"\1", text)
        text = re.sub(r"\*([^*\n]+)\*", lambda m: self._c(BOLD, m[1]), text)
        return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

    def _print_card(self, view: CardView, what: str) -> None:
        self._print_blocks(card_blocks(view)[0], what)

    def _print_blocks(self, blocks: list[dict], what: str) -> None:
        lines = [self._c(CYAN, f"┌─ {self.channel} · {what} " + "─" * 30)]
        for block in blocks:
            for line in _block_lines(block):
                lines.append(self._c(CYAN, "│ ") + self.render(line))
        lines.append(self._c(CYAN, "└" + "─" * 50))
        self._emit("\n".join(lines))

    def _c(self, code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if self.color else text

    def _emit(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` holds, re-checking after every message; False on timeout."""
        with self.changed:
            return self.changed.wait_for(predicate, timeout)


def _block_lines(block: dict) -> list[str]:
    kind = block["type"]
    if kind == "header":
        return [f"*{block['text']['text']}*"]
    if kind == "section":
        texts = [block["text"]["text"]] if "text" in block else []
        texts += [field["text"].replace("\n", " · ", 1) for field in block.get("fields", [])]
        return [line for text in texts for line in text.splitlines() if line.strip()]
    if kind == "actions":
        return ["  ".join(f"[{e['text']['text']}]" for e in block["elements"])]
    return []

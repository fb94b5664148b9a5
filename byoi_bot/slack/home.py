"""The App Home tab (`views.publish`): a `core.home.Home` drawn in Block Kit.

Approve/Reject buttons are the card's own (same action ids, same rules); the listener knows a
press on the home tab by its container and redraws the tab afterwards.
"""

from __future__ import annotations

from ..core import messages
from ..core.home import Home
from ..core.text import esc, local_time, progress_bar, truncate
from .cards import _buttons

SECTION_LIMIT = 2900
REVIEW_ACTION = "byoi_review"


def home_view(home: Home) -> dict:
    """The `home` view for `views.publish`."""
    blocks: list[dict] = [_header("Waiting for your approval")]
    for request in home.to_approve:
        blocks += [_section(messages.summary_line(request)), _buttons(request.id)]
    if not home.to_approve:
        blocks.append(_context("Nothing waits for you."))
    if home.to_review:
        blocks.append(_header("Emergency overrides to review"))
        for request, due in home.to_review:
            text = f"🚨 {messages.summary_line(request)}\n_{esc(request.spec.emergency or '')}_"
            blocks += [_section(f"{text} · review due {local_time(due)}"), _review(request.id)]
    blocks.append(_header("Your requests"))
    blocks.append(_lines([messages.summary_line(r) for r in home.mine], "None yet."))
    blocks.append(_header("Deploying now"))
    lines = [
        f"{messages.label(r)} · {esc(r.last_status or 'starting')} {progress_bar(f)}".rstrip()
        for r, f in home.deploying
    ]
    blocks.append(_lines(lines, "No deployment is running."))
    blocks.append(_header("Recent history"))
    lines = [
        f"`{esc(server)}`: "
        + ", ".join(f"{messages.label(r)} {r.state} {local_time(r.finished_at or r.created_at)}"
                    for r in done)
        for server, done in home.history.items()
    ]  # fmt: skip
    blocks.append(_lines(lines, "Nothing finished yet."))
    if home.health:
        blocks += [_header("Bot health"), _section(_health(home))]
    return {"type": "home", "blocks": blocks}


def _health(home: Home) -> str:
    h = home.health
    assert h is not None
    scheduler = "✅ running" if h.scheduler_running else "⛔ stopped: no polls, no expiry"
    if h.provider_ok is None:
        provider = "not called since the bot started"
    else:
        seen = local_time(h.provider_checked_at) if h.provider_checked_at else "?"
        provider = ("✅ answered" if h.provider_ok else "⚠️ did not answer") + f" at {seen}"
    token = "✅ accepted" if h.chat.ok else f"⛔ refused: {esc(h.chat.reason)}"
    return (
        f"*Scheduler:* {scheduler}\n*OVHcloud:* {provider}\n*Slack token:* {token}\n"
        f"*Posts waiting to be sent:* {h.outbox_backlog:,}"
    )


def _review(request_id: str) -> dict:
    return {
        "type": "actions",
        "block_id": f"byoi_review:{request_id}",
        "elements": [
            {
                "type": "button",
                "action_id": REVIEW_ACTION,
                "text": {"type": "plain_text", "text": "Mark reviewed"},
                "value": request_id,
            }
        ],
    }


def _header(text: str) -> dict:
    return {"type": "header", "text": {"type": "plain_text", "text": text}}


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SECTION_LIMIT)}}


def _context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _lines(lines: list[str], empty: str) -> dict:
    return _section("\n".join(lines)) if lines else _context(empty)

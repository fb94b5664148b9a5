"""docs/images/render_card.py: the README's picture is the demo's real card, drawn from the
blocks the Slack adapter posts, with Slack's markup turned into HTML and nothing of the
card's text taken as HTML."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("render_card", ROOT / "docs/images/render_card.py")
render_card = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(render_card)


def test_slack_markup_becomes_html():
    html = render_card.mrkdwn(
        "*Approvals:* 0/1 from <@bob>, `hostname` web-1\n_note_ "
        "<https://x.example/a?b=1&c=2|the image> <!date^1796405092^{date}|2026-12-04 17:25 UTC>"
    )
    assert "<b>Approvals:</b>" in html and '<span class="mention">@bob</span>' in html
    assert "<code>hostname</code>" in html and "<i>note</i>" in html and "<br>" in html
    assert '<a href="https://x.example/a?b=1&amp;c=2">the image</a>' in html
    assert "2026-12-04 17:25 UTC" in html and "date^" not in html


def test_the_cards_text_is_never_taken_as_html():
    # Slack's text escapes <, > and & (the bot's `esc`); a bare <…> is a Slack link.
    html = render_card.mrkdwn("&lt;script&gt;alert(1)&lt;/script&gt; a &amp; b <script>")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; a &amp; b" in html
    assert '<a href="script">script</a>' in html


def test_the_demos_card_is_drawn_from_the_blocks_slack_gets():
    blocks = render_card.demo_card_blocks()
    page = render_card.page(blocks)
    assert blocks[0]["type"] == "header" and "BYOI deploy r-" in page
    assert "ERASES ALL DATA" in page and 'class="button primary">Approve' in page
    assert "127.0.0.1" not in page and render_card.SHOWN_IMAGES_URL in page
    assert "document.title = document.documentElement.scrollHeight" in page

"""Render the request card of `byoi-bot demo` to docs/images/card.png.

The card is the real one: the demo's first request is made against the simulator, and the
Block Kit blocks the Slack adapter would post are drawn in HTML the way Slack draws them,
then photographed by headless Chromium (Debian packages `chromium` and, for the emoji,
`fonts-noto-color-emoji`). Only the demo image server's address (127.0.0.1 and a random
port) is replaced by https://images.example.net.

    python3 docs/images/render_card.py [OUTPUT.png]
"""

from __future__ import annotations

import html
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from byoi_bot.console.demo import STORY
from byoi_bot.console.shell import open_session
from byoi_bot.slack.cards import card_blocks

OUTPUT = Path(__file__).resolve().parent / "card.png"
WIDTH = 760
SHOWN_IMAGES_URL = "https://images.example.net"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
STYLE = """
body { margin: 0; background: #fff; font: 15px/1.46 -apple-system, "Segoe UI", "Noto Sans",
  "DejaVu Sans", sans-serif; color: #1d1c1d; }
.message { display: flex; gap: 10px; padding: 14px 20px 18px; }
.avatar { width: 36px; height: 36px; border-radius: 6px; background: #123f6d; color: #fff;
  font-weight: 700; display: flex; align-items: center; justify-content: center; flex: none; }
.who b { margin-right: 6px; } .who span { color: #616061; font-size: 12px; }
.app { background: #e8e8e8; color: #616061; font-size: 10px; padding: 1px 3px; border-radius: 2px;
  margin-right: 6px; font-weight: 700; }
h1 { font-size: 18px; margin: 6px 0 4px; }
.section { margin: 6px 0; }
.fields { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 16px; }
code { font: 12px/1.4 Menlo, "DejaVu Sans Mono", monospace; color: #e01e5a; background: #f8f8f8;
  border: 1px solid #e0e0e0; border-radius: 3px; padding: 0 3px; }
.mention { color: #1264a3; background: #e8f5fa; border-radius: 3px; padding: 0 2px; }
a { color: #1264a3; text-decoration: none; }
.buttons { display: flex; gap: 8px; margin-top: 10px; }
.button { border: 1px solid #ddd; border-radius: 4px; padding: 3px 12px; font-weight: 700; }
.primary { background: #007a5a; color: #fff; border-color: #007a5a; }
.danger { color: #e01e5a; }
.context { color: #616061; font-size: 12px; } hr { border: 0; border-top: 1px solid #ddd; }
.reactions { display: flex; gap: 6px; margin-top: 8px; }
.reaction { border: 1px solid #ddd; border-radius: 12px; padding: 0 8px; font-size: 13px; }
"""


def demo_card_blocks() -> list[dict]:
    """The blocks of the demo's first request card, as the Slack adapter would post them."""
    session, stack = open_session(io.StringIO(), deploy_seconds=8.0, color=False)
    views = []
    post_card = session.chat.post_card

    def keep(view, **kwargs):
        views.append(view)
        return post_card(view, **kwargs)

    session.chat.post_card = keep
    with stack:
        session.run_line(next(line for line in STORY.splitlines() if line.startswith("alice:")))
        text = json.dumps(card_blocks(views[0])[0])
        return json.loads(text.replace(session.images_url, SHOWN_IMAGES_URL))


def mrkdwn(text: str) -> str:
    """Slack's mrkdwn as HTML: <@user>, <!date^…|fallback>, <url|label>, *bold*, `code`."""
    parts = []
    for piece in re.split(r"(<[^<>]+>)", text):
        if piece.startswith("<@"):
            parts.append(f'<span class="mention">@{html.escape(piece[2:-1])}</span>')
        elif piece.startswith("<!"):
            parts.append(html.escape(piece[1:-1].rsplit("|", 1)[-1]))
        elif piece.startswith("<"):
            url, _, label = piece[1:-1].partition("|")
            parts.append(f'<a href="{html.escape(url)}">{html.escape(label or url)}</a>')
        else:  # Slack's own escapes (&amp; &lt; &gt;) undone, then HTML's
            plain = piece.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
            escaped = html.escape(plain)
            escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
            escaped = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"<b>\1</b>", escaped)
            escaped = re.sub(r"(?<![\w])_([^_\n]+)_(?![\w])", r"<i>\1</i>", escaped)
            parts.append(escaped)
    return "".join(parts).replace("\n", "<br>")


def block_html(block: dict) -> str:
    kind = block.get("type")
    if kind == "header":
        return f"<h1>{html.escape(block['text']['text'])}</h1>"
    if kind == "divider":
        return "<hr>"
    if kind == "context":
        items = " ".join(mrkdwn(e.get("text", "")) for e in block.get("elements", []))
        return f'<div class="context">{items}</div>'
    if kind == "actions":
        buttons = "".join(
            f'<span class="button {e.get("style", "")}">{html.escape(e["text"]["text"])}</span>'
            for e in block.get("elements", [])
        )
        return f'<div class="buttons">{buttons}</div>'
    if "fields" in block:
        fields = "".join(f"<div>{mrkdwn(f['text'])}</div>" for f in block["fields"])
        return f'<div class="section fields">{fields}</div>'
    return f'<div class="section">{mrkdwn(block.get("text", {}).get("text", ""))}</div>'


def page(blocks: list[dict]) -> str:
    body = "".join(block_html(b) for b in blocks)
    return (
        f"<!doctype html><meta charset=utf-8><style>{STYLE}</style><body>"
        '<div class="message"><div class="avatar">B</div><div>'
        '<div class="who"><b>byoi-bot</b><span class="app">APP</span><span>10:42</span></div>'
        f'{body}<div class="reactions"><span class="reaction">✅ 1</span>'
        '<span class="reaction">❌ 1</span></div></div></div>'
        "<script>document.title = document.documentElement.scrollHeight</script></body>"
    )


def screenshot(document: str, output: Path) -> None:
    """Photograph `document` at its full height with headless Chromium."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("render_card: needs Chromium (Debian package `chromium`)")
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "card.html"
        source.write_text(document, encoding="utf-8")
        profile = f"--user-data-dir={folder}/profile"

        def chrome(*args: str) -> str:
            command = [chromium, *CHROMIUM_FLAGS, profile, *args, source.as_uri()]
            return subprocess.run(command, capture_output=True, text=True, check=True).stdout

        dom = chrome(f"--window-size={WIDTH},600", "--dump-dom")
        height = int(re.search(r"<title>(\d+)</title>", dom)[1])
        chrome(f"--window-size={WIDTH},{height}", f"--screenshot={output}")


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    screenshot(page(demo_card_blocks()), output.resolve())
    print(f"wrote {output}")


if __name__ == "__main__":
    main()

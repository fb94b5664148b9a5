"""Small text helpers shared by the core's messages (Slack-style mrkdwn is the lingua franca).

User-supplied values always go through `esc()`, so nothing typed by a user can ping
``@channel`` or fake a link; adapters that are not Slack undo the escaping for display.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

ELLIPSIS = "…"


def esc(text: object) -> str:
    """Escape `&`, `<` and `>` (in that order), as Slack requires for user text.

    >>> esc("<!channel> & co")
    '&lt;!channel&gt; &amp; co'
    """
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters, marking the cut with an ellipsis."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + ELLIPSIS


def mention(user: str) -> str:
    """A mention of a user ID (``<@U123>``); adapters render it their own way."""
    return f"<@{user}>"


def local_time(when: datetime) -> str:
    """A time each reader sees in their own zone (Slack's ``<!date^…>``), UTC as fallback.

    >>> local_time(datetime(2026, 12, 1, 6, 0, tzinfo=UTC))
    '<!date^1796104800^{date_short_pretty} at {time}|2026-12-01 06:00 UTC>'
    """
    fallback = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def duration(delta: timedelta | float) -> str:
    """A short human duration: ``42s``, ``3m 05s``, ``1h 02m``.

    >>> duration(185)
    '3m 05s'
    """
    seconds = int(delta.total_seconds() if isinstance(delta, timedelta) else delta)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def progress_bar(fraction: float | None, width: int = 10) -> str:
    """A text progress bar, e.g. ``▰▰▰▱▱▱▱▱▱▱ 30%``; empty when the fraction is unknown."""
    if fraction is None:
        return ""
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "▰" * filled + "▱" * (width - filled) + f" {round(fraction * 100)}%"


def size(num_bytes: int | None) -> str:
    """A byte count in binary units: ``512 MiB``, ``20.0 GiB``."""
    if num_bytes is None:
        return "unknown"
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit in ("B", "KiB", "MiB") else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")

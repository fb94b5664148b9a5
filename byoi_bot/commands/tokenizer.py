"""Splitting command text into `key=value` and positional tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import fail
from .grammar import BY_KEY, EXAMPLE_SERVER, EXAMPLE_URL


@dataclass(frozen=True)
class Token:
    key: str | None  # lower-cased, or None for a positional value
    value: str  # raw: Slack markup and entities still in place


_KEY = re.compile(r"([A-Za-z][A-Za-z0-9_-]*)=")
# opening quote -> the quotes that may close it: typographic ones too, sloppily paired, and
# the styles where a value opens with the closing mark (”…”, ’…’, »…«)
_CLOSERS = {
    '"': '"',
    "“": "”“",
    "„": "“”",
    "”": "”“",
    "'": "'",
    "‘": "’‘",
    "‚": "‘’",
    "’": "’‘",
    "«": "»",
    "»": "«",
}
_APOSTROPHES = "'’‘"  # followed by a letter or digit, one of these is not a closing quote


def tokenize(text: str) -> list[Token]:
    """Split on whitespace, keeping quoted values and Slack ``<…>`` markup whole.

    Backslashes are literal (``\\efi\\debian\\grubx64.efi`` stays as typed). A quote opens
    only at the start of a value; both straight and typographic quotes work, and inside
    single quotes an apostrophe followed by a letter stays (``‘it’s monthly’``).
    """
    tokens, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        key = None
        match = _KEY.match(text, i)
        if match:
            key, i = match.group(1).lower(), match.end()
        value, i = _read_value(text, i, key)
        tokens.append(Token(key, value))
    return tokens


def _read_value(text: str, i: int, key: str | None) -> tuple[str, int]:
    parts: list[str] = []
    closers = _CLOSERS.get(text[i]) if i < len(text) else None
    if closers:
        end = next((j for j in range(i + 1, len(text)) if _closes(text, j, closers)), -1)
        if end < 0:
            option = BY_KEY.get(key or "")
            fail(
                option.name if option else key or "text",
                f"the quote `{text[i]}` is opened but never closed.",
                "the value between a pair of quotes (an apostrophe inside is fine)",
                f'/byoi deploy {EXAMPLE_SERVER} {EXAMPLE_URL} description="monthly rebuild"',
            )
        parts.append(text[i + 1 : end])
        i = end + 1
    while i < len(text) and not text[i].isspace():
        end = _markup_end(text, i)
        parts.append(text[i:end])
        i = end
    return "".join(parts), i


def _closes(text: str, j: int, closers: str) -> bool:
    if text[j] not in closers:
        return False
    return text[j] not in _APOSTROPHES or not text[j + 1 : j + 2].isalnum()


def _markup_end(text: str, i: int) -> int:
    """End of Slack markup ``<…>`` starting at `i` (spaces allowed inside), else `i + 1`."""
    if text[i] == "<":
        close = text.find(">", i)
        if close > 0 and "<" not in text[i + 1 : close]:
            return close + 1
    return i + 1

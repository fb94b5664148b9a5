"""`/byoi freeze <from> <to> "<reason>" [policy=<name>…]`: times, a reason, a scope."""

from __future__ import annotations

from datetime import datetime

from .converters import iso_utc
from .errors import fail, show
from .grammar import BY_NAME
from .markup import as_text
from .model import Freeze
from .tokenizer import Token

TIME_FORMS = "`now`, a date (`2026-12-20`, midnight UTC) or a time (`2026-12-20T18:00+01:00`)"


def parse_freeze(tokens: list[Token], now: datetime) -> Freeze:
    """The freeze a user asked for; raises `CommandError` naming what is wrong."""
    command = BY_NAME["freeze"]
    words = [t for t in tokens if t.key is None]
    scope = [t for t in tokens if t.key is not None]
    if len(words) != 3:
        fail(
            "arguments",
            f"`freeze` takes a start, an end and a reason in quotes; got {len(words)} of them.",
            f"`{command.usage}`",
            command.example,
        )
    starts, ends = _when("from", words[0].value, now), _when("to", words[1].value, now)
    if ends <= max(starts, now):
        fail(
            "to",
            "the freeze would end before it starts, or has already ended.",
            "an end after both the start and now",
            command.example,
        )
    reason = as_text(words[2].value).strip()
    if not reason or len(reason) > 300:
        fail(
            "reason",
            "a freeze needs a reason (300 characters at most): it is shown on every card it holds.",
            '`"<reason>"` in quotes',
            command.example,
        )
    policies = []
    for token in scope:
        if token.key != "policy" or not token.value.strip():
            fail(
                token.key or "policy",
                f"`freeze` takes only `policy=<name>`, not `{show(token.key or '', 20)}=`.",
                "`policy=<name>`, repeatable",
                command.example + " policy=production",
            )
        policies.append(as_text(token.value).strip())
    return Freeze(starts, ends, reason, tuple(dict.fromkeys(policies)))


def _when(argument: str, text: str, now: datetime) -> datetime:
    value = as_text(text).strip()
    if value.lower() == "now":
        return now
    try:
        return iso_utc(value)
    except ValueError:
        fail(argument, f"`{show(value, 40)}` is not a time.", TIME_FORMS, BY_NAME["freeze"].example)

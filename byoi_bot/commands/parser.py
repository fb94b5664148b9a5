"""`parse`: the text after ``/byoi`` to a typed command, or a `CommandError`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NoReturn

from .change import parse_freeze
from .deploy import parse_deploy
from .errors import did_you_mean, fail, show
from .grammar import BY_NAME, DEPLOY, MAX_TEXT, SUBCOMMANDS
from .markup import looks_like_url
from .model import Command, Help
from .simple import SIMPLE_PARSERS
from .tokenizer import tokenize


def parse(text: str, *, now: datetime) -> Command:
    """Parse the text after ``/byoi``; raise `CommandError` on anything invalid.

    `now` is the bot's clock: it resolves ``at=HH:MM`` and refuses past times.

    >>> now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    >>> parse("", now=now)
    Help(topic=None)
    >>> parse("status NS1.Example.NET", now=now)
    Status(target='ns1.example.net')
    >>> parse("deploy", now=now)
    Deploy(spec=None)
    """
    if len(text) > MAX_TEXT:
        fail(
            "text",
            f"the command is {len(text)} characters long; {MAX_TEXT} at most.",
            "a shorter command; long user data goes in the form (`/byoi deploy`)",
            DEPLOY.example,
        )
    tokens = tokenize(text)
    if not tokens:
        return Help(None)
    first, rest = tokens[0], tokens[1:]
    if first.key is not None:
        _unknown_subcommand(f"{first.key}=")
    name = first.value.lower()
    if name not in BY_NAME:
        _unknown_subcommand(first.value)
    if name == "deploy":
        return parse_deploy(rest, _utc_now(now))
    if name == "freeze":
        return parse_freeze(rest, _utc_now(now))
    for token in rest:
        if token.key is not None and name == "help" and not token.value:
            continue  # "help checksum=" asks about an option
        if token.key is not None:
            fail(
                token.key,
                f"`{name}` takes no key=value options.",
                f"`{BY_NAME[name].usage}`",
                BY_NAME[name].example,
            )
    return SIMPLE_PARSERS[name]([t.value if t.key is None else t.key for t in rest])


def _unknown_subcommand(word: str) -> NoReturn:
    names = [c.name for c in SUBCOMMANDS]
    hint = did_you_mean(word, names)
    if not hint and (looks_like_url(word) or "." in word):
        hint = " To deploy, start with `deploy`."
    fail(
        "command",
        f"`{show(word, 40)}` is not a /byoi command.{hint}",
        "one of " + ", ".join(f"`{n}`" for n in names),
        DEPLOY.example,
    )


def _utc_now(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)

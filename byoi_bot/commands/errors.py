"""Building a `CommandError`: the shared wording helpers."""

from __future__ import annotations

import difflib
from typing import NoReturn

from ..core.request import mask_url
from ..core.text import esc, truncate
from .grammar import Option
from .model import CommandError


def fail(argument: str, problem: str, expected: str, example: str) -> NoReturn:
    raise CommandError(argument, problem, expected, example)


def option_error(option: Option, problem: str, expected: str | None = None) -> NoReturn:
    fail(
        option.name,
        problem,
        expected or f"`{option.name}={option.value_syntax}`: {option.help}",
        option.example_command(),
    )


def show(value: str, limit: int = 60) -> str:
    """A user value, safe inside backticks in Slack."""
    return esc(truncate(value, limit)).replace("`", "'")


def show_url(url: str) -> str:
    try:
        return show(mask_url(url), 80)
    except ValueError:
        return "that URL"


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word.lower(), choices, n=1, cutoff=0.6)
    return f" Did you mean `{close[0]}`?" if close else ""

"""Value types for the command line: argparse refuses a bad value in plain words (exit 2)
before anything starts, instead of a traceback or a silent fallback."""

from __future__ import annotations

import argparse
import math


def port(text: str) -> int:
    """A TCP port to listen on, 1-65535, or 0 for any free one (logged once listening)."""
    value = int(text) if text.isascii() and text.isdigit() else -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port: expected a whole number from 1 to 65535, "
            "or 0 for any free port"
        )
    return value


def seconds(text: str) -> float:
    """A duration in seconds: a finite number greater than 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: expected a finite number of seconds above 0 "
            "(e.g. 20 or 2.5)"
        )
    return value

"""Logging for an operator: quiet libraries, one start-up line, request ids, text or JSON.

- The bot's own loggers (`byoi_bot.*`) log at `BYOI_LOG_LEVEL`; every library (slack_bolt,
  slack_sdk, apscheduler, waitress, urllib3, ovh…) at `BYOI_LIBRARY_LOG_LEVEL` (WARNING by
  default: APScheduler's "Running job…" lines, 2 a second, are INFO).
- Every line about a request carries its id: the id of the request being worked on
  (`about()` around a poll, a submission or a post), else a request or fleet id the line
  names (`r-…`, `f-…`). In text it leads the message (``[r-abc234] …``); in JSON it is the
  `request_id` field.
- `BYOI_LOG_FORMAT=json` writes one JSON object per line (python-json-logger) with `time`,
  `level`, `logger`, `message`, `request_id` when known, and `exc_info` for tracebacks.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from . import __version__

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = {"levelname": "level", "name": "logger"}
REQUEST_ID = re.compile(r"[rf]-[a-z2-9]{6}")
# Bolt reads SLACK_BOT_TOKEN from the environment although it is given a client, then warns
# at every start that the token will be unused; there is no setting to say it is expected.
BOLT_TOKEN_WARNING = "As you gave `client` as well, `token` will be unused."

_current: ContextVar[str | None] = ContextVar("byoi_request_id", default=None)


@contextlib.contextmanager
def about(request_id: str | None) -> Iterator[None]:
    """Tag every line logged in this block (this thread or task) with `request_id`."""
    token = _current.set(request_id)
    try:
        yield
    finally:
        _current.reset(token)


def configure(level: str, library_level: str, form: str, stream: Any = None) -> None:
    """Send every log line to `stream` (stderr) as `form` (`text` or `json`)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(_JsonFormatter() if form == "json" else _TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(library_level)
    logging.getLogger("byoi_bot").setLevel(level)
    bolt = logging.getLogger("slack_bolt.App")
    if not any(isinstance(f, _DropBoltTokenWarning) for f in bolt.filters):
        bolt.addFilter(_DropBoltTokenWarning())


def startup_line(*, mode: str, store: str, accounts: str, policies: int, approvers: int) -> str:
    """The one line a start logs: version, mode, store kind, accounts, policies, approvers."""
    return (
        f"byoi-bot {__version__} starting: mode={mode} store={store} {accounts} "
        f"policies={policies} approvers={approvers}"
    )


class RequestIdFilter(logging.Filter):
    """Sets `record.request_id` when the line is about a request (see the module's doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = _current.get() or _named(record.args)
        if request_id:
            record.request_id = request_id
        return True


def _named(args: Any) -> str | None:
    values = args.values() if isinstance(args, dict) else args or ()
    for value in values:
        if isinstance(value, str) and REQUEST_ID.fullmatch(value):
            return value
    return None


class _TextFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        if request_id and request_id not in record.message:
            tagged = f"[{request_id}] {record.message}"
            record = logging.makeLogRecord(record.__dict__ | {"message": tagged})
        return super().formatMessage(record)


class _JsonFormatter(JsonFormatter):
    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s", rename_fields=JSON_FIELDS, timestamp="time"
        )


class _DropBoltTokenWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != BOLT_TOKEN_WARNING

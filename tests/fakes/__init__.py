"""Local fakes of Slack for tests: Web API, Socket Mode, signed HTTP requests.

Nothing here reaches the internet: every server binds 127.0.0.1 on a free port.
"""

from .signing import (
    BoltHTTPServer,
    block_action_body,
    block_action_payload,
    event_body,
    event_payload,
    post_signed,
    reaction_event,
    serve_bolt_app,
    sign,
    signed_headers,
    slash_command_body,
    slash_command_payload,
    view_submission_body,
    view_submission_payload,
)
from .slack_api import Call, FakeSlack, Fault
from .socket_mode import FakeSocketMode

__all__ = [
    "BoltHTTPServer",
    "Call",
    "FakeSlack",
    "FakeSocketMode",
    "Fault",
    "block_action_body",
    "block_action_payload",
    "event_body",
    "event_payload",
    "post_signed",
    "reaction_event",
    "serve_bolt_app",
    "sign",
    "signed_headers",
    "slash_command_body",
    "slash_command_payload",
    "view_submission_body",
    "view_submission_payload",
]

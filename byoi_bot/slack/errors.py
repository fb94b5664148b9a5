"""Slack's error codes: which ones mean the bot's token is refused, and how logs name a failure.

A log line about a failed Slack call always carries Slack's own code (`slack chat.update
failed: channel_not_found`), so an operator can look it up in Slack's documentation.
"""

from __future__ import annotations

from slack_sdk.errors import SlackApiError

# The token itself is refused: no call can succeed until an operator fixes SLACK_BOT_TOKEN.
TOKEN_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "team_access_not_granted",
        "ekm_access_denied",
    }
)


def error_code(exc: BaseException) -> str:
    """Slack's error code (`channel_not_found`), the HTTP status, or the exception's type."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        return str(response.get("error") or f"HTTP {response.status_code}")
    return type(exc).__name__


def failed(exc: BaseException) -> str:
    """`slack <method> failed: <code>`, for a log line."""
    method = ""
    if isinstance(exc, SlackApiError):
        method = str(getattr(exc.response, "api_url", "") or "").rsplit("/", 1)[-1]
    return f"slack {method or 'call'} failed: {error_code(exc)}"


def token_refused(code: str) -> str:
    """What to tell the operator when Slack refuses the bot's token with `code`."""
    return (
        f"Slack refused SLACK_BOT_TOKEN ({code}); set SLACK_BOT_TOKEN to the Bot User OAuth "
        "Token of the app's OAuth & Permissions page (reinstall the app if it was removed)"
    )


class MaybePosted(Exception):
    """A Slack call whose outcome is unknown (5xx, Slack's own transient errors): the message
    is `failed()`'s line; the outbox checks before trying again."""

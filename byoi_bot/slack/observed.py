"""A Slack `WebClient` that reports each failed call (method, error code) to an observer."""

from __future__ import annotations

from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

Observer = Callable[[str, str], None]


class ObservedWebClient(WebClient):
    """`observe(method, error)` for every call Slack refused (its error code, or
    ``http_<status>``) or that got no answer (``connection``)."""

    def __init__(self, *args, observe: Observer | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.observe: Observer = observe or (lambda _method, _error: None)

    def api_call(self, api_method: str, **kwargs):
        try:
            return super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            answer = exc.response
            self.observe(api_method, answer.get("error") or f"http_{answer.status_code}")
            raise
        except OSError:
            self.observe(api_method, "connection")
            raise

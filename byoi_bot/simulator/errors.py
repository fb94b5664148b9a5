"""Error answers of the simulated API: an HTTP status, the API's `class` and its message."""

from __future__ import annotations

from ..ovhcloud import schema


class ApiError(Exception):
    """An API error answer: HTTP status, the `class` field and the message."""

    def __init__(self, status: int, api_class: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.api_class = api_class
        self.message = message

    def body(self) -> dict:
        return {"class": self.api_class, "message": self.message}


def api_error(api_class: str, /, **values: object) -> ApiError:
    """The schema's error class `name`, with its status and its message template filled in."""
    documented = schema.all_error_classes()[api_class]
    return ApiError(documented.status, api_class, documented.message(**values))

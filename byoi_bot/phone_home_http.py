"""The phone-home route of HTTP mode: `POST /boot/{request id}/{token}` from cloud-init.

cloud-init's `phone_home` module posts a form (`pub_key_*`, `instance_id`, `hostname`,
`fqdn`). A token that is unknown, used already or not this request's gets the same 404 (no
oracle); the body is bounded. The path holds a secret: nothing here logs it (and waitress
keeps no access log).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from urllib.parse import parse_qs

from .core.phone_home import PATH
from .core.service import Deployments

MAX_BODY = 64 * 1024  # cloud-init posts three public keys and three names: a few KiB
STATUS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
          413: "Content Too Large"}  # fmt: skip


def is_phone_home(path: str) -> bool:
    return path.startswith(PATH + "/")


def phone_home_route(deployments: Deployments) -> Callable[[dict, Callable], Iterable[bytes]]:
    """The WSGI handler of the phone-home route."""

    def route(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(start_response, 405, "phone-home takes a POST")
        parts = environ.get("PATH_INFO", "").split("/")
        if len(parts) != 4 or not parts[2] or not parts[3]:
            return _answer(start_response, 404, "unknown or used phone-home URL")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _answer(start_response, 400, "Content-Length is not a number")
        if length > MAX_BODY:
            return _answer(start_response, 413, f"the body is over {MAX_BODY} bytes")
        body = environ["wsgi.input"].read(length).decode("utf-8", "replace")
        try:
            fields = parse_qs(body, max_num_fields=32)
        except ValueError:
            return _answer(start_response, 400, "expected a form of at most 32 fields")
        form = {key: values[0] for key, values in fields.items()}
        if not deployments.phone_home(parts[2], parts[3], form):
            return _answer(start_response, 404, "unknown or used phone-home URL")
        return _answer(start_response, 200, "")

    return route


def _answer(start_response: Callable, status: int, error: str) -> list[bytes]:
    start_response(f"{status} {STATUS[status]}", [("Content-Type", "application/json")])
    body = {"ok": True} if status == 200 else {"ok": False, "error": error}
    return [json.dumps(body).encode()]

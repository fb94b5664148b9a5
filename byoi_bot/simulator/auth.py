"""The API's credential checks: application keys as the `ovh` client signs its requests, and
OAuth2 service accounts (client credentials, bearer tokens) governed by IAM actions."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote

DEMO_CREDENTIALS = {
    "application_key": "byoi-demo-application-key",
    "application_secret": "byoi-demo-application-secret",
    "consumer_key": "byoi-demo-consumer-key",
}
ALL_RULES = tuple({"method": m, "path": "/*"} for m in ("GET", "POST", "PUT", "DELETE"))
MAX_SKEW_SECONDS = 180


@dataclass(frozen=True)
class Credentials:
    """The one application and token the simulator accepts, with its access rules.

    `status` other than `validated` (e.g. `expired`) makes every call fail with
    INVALID_CREDENTIAL, as an expired or never-validated token does.
    """

    application_key: str
    application_secret: str
    consumer_key: str
    rules: tuple[dict, ...] = field(default=ALL_RULES)
    status: str = "validated"

    @classmethod
    def resolve(cls, given: dict | None) -> Credentials:
        """`given`, else the OVH_* environment variables when all three are set, else demo."""
        if given:
            rules = tuple(given.get("rules") or ALL_RULES)
            keys = ("application_key", "application_secret", "consumer_key")
            return cls(*(given[k] for k in keys), rules, given.get("status", "validated"))
        env = [os.environ.get(f"OVH_{k.upper()}") for k in DEMO_CREDENTIALS]
        if all(env):
            return cls(*env)
        return cls(**DEMO_CREDENTIALS)

    @property
    def is_demo(self) -> bool:
        return self.application_key == DEMO_CREDENTIALS["application_key"]

    def current(self) -> dict:
        """GET /auth/currentCredential."""
        return {
            "credentialId": 1,
            "applicationId": 1,
            "status": self.status,
            "rules": list(self.rules),
            "allowedIPs": None,
            "expiration": None,
        }


class AuthError(Exception):
    """A refused credential: status and the body the API sends (errorCode, httpCode)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"errorCode": code, "httpCode": _HTTP_CODES[status], "message": message}


_HTTP_CODES = {400: "400 Bad Request", 401: "401 Unauthorized", 403: "403 Forbidden"}


def check(
    credentials: Credentials,
    headers: dict[str, str],
    method: str,
    url: str,
    body: str,
    path: str,
) -> None:
    """Raise AuthError unless the request is signed by `credentials` and allowed by its rules.

    `url` is the full URL the client signed; `path` the API path (no /1.0, no query).
    """
    if headers.get("x-ovh-application") != credentials.application_key:
        raise AuthError(403, "INVALID_KEY", "This application key is invalid")
    consumer = headers.get("x-ovh-consumer")
    if consumer != credentials.consumer_key:
        raise AuthError(403, "NOT_CREDENTIAL", "This credential does not exist")
    if credentials.status != "validated":
        raise AuthError(403, "INVALID_CREDENTIAL", "This credential is not valid")
    timestamp = headers.get("x-ovh-timestamp", "")
    if not timestamp.isdigit() or abs(int(timestamp) - time.time()) > MAX_SKEW_SECONDS:
        raise AuthError(400, "QUERY_TIME_OUT", "Query out of time")
    expected = "$1$" + signature(credentials, method, url, body, timestamp)
    if headers.get("x-ovh-signature") != expected:
        raise AuthError(400, "INVALID_SIGNATURE", "Invalid signature")
    if not any(
        rule.get("method") == method and fnmatch.fnmatchcase(path, rule.get("path", ""))
        for rule in credentials.rules
    ):
        raise AuthError(403, "NOT_GRANTED_CALL", "This call has not been granted")


def signature(credentials: Credentials, method: str, url: str, body: str, timestamp: str) -> str:
    """sha1 of secret+consumer+METHOD+url+body+timestamp joined by '+', as the client signs."""
    parts = (credentials.application_secret, credentials.consumer_key, method.upper())
    return hashlib.sha1("+".join((*parts, url, body, timestamp)).encode()).hexdigest()


TOKEN_SECONDS = 3600


@dataclass
class ServiceAccount:
    """An OAuth2 client (`client_id`/`client_secret`) and the IAM actions its policy allows
    (`("*",)`: all). Tokens come from `issue()` (`POST /auth/oauth2/token`)."""

    client_id: str
    client_secret: str
    allow: tuple[str, ...] = ("*",)
    _tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, given: dict) -> ServiceAccount:
        return cls(given["client_id"], given["client_secret"], tuple(given.get("allow") or "*"))

    def issue(self, headers: dict[str, str], body: str) -> tuple[int, dict]:
        """The token endpoint (RFC 6749 section 4.4): credentials in the body or Basic auth."""
        form = {k: v[0] for k, v in parse_qs(body).items()}
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(basic[6:]).decode()
            except ValueError:
                return 401, {"error": "invalid_client"}
            client_id, _, secret = (unquote(p) for p in decoded.partition(":"))
        if client_id != self.client_id or secret != self.client_secret:
            return 401, {"error": "invalid_client", "error_description": "bad client credentials"}
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = time.monotonic() + TOKEN_SECONDS
        return 200, {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_SECONDS,
            "scope": form.get("scope", "all"),
        }

    def check(self, authorization: str) -> None:
        """Raise AuthError unless `authorization` carries a live token of this account."""
        token = authorization[7:] if authorization.lower().startswith("bearer ") else ""
        with self._lock:
            expiry = self._tokens.get(token)
        if expiry is None or expiry < time.monotonic():
            raise AuthError(401, "INVALID_CREDENTIAL", "This credential is not valid")

    def denied(self, actions: tuple[str, ...]) -> list[str]:
        """The actions among `actions` that the policy does not allow."""
        return [a for a in actions if not any(fnmatch.fnmatchcase(a, p) for p in self.allow)]

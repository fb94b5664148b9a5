"""Alertmanager's API v2, the silences part (the core's `Silencer` port), over urllib3.

`GET /api/v2/silences` lists silences (the bot keeps those it created and that are still
active or pending), `POST /api/v2/silences` creates one or, with its `id`, extends it,
`DELETE /api/v2/silence/{id}` expires it. Failures are `AlertmanagerError` with what was
asked and what came back; the silences job logs them and tries again on its next run.
"""

from __future__ import annotations

import json
from datetime import datetime

import urllib3
from urllib3.exceptions import HTTPError

from .core.silences import CREATED_BY, Silence, request_of


class AlertmanagerError(Exception):
    """Alertmanager did not answer, or refused."""


class Alertmanager:
    """A client of one Alertmanager (`base_url`, e.g. http://alertmanager:9093)."""

    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        self.base = base_url.rstrip("/") + "/api/v2"
        self.http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=False
        )

    def active(self) -> list[Silence]:
        found = []
        for silence in self._call("GET", "/silences") or []:
            request_id = request_of(silence.get("comment", ""))
            state = (silence.get("status") or {}).get("state")
            if silence.get("createdBy") == CREATED_BY and request_id and state != "expired":
                starts, ends = _moment(silence["startsAt"]), _moment(silence["endsAt"])
                found.append(Silence(silence["id"], request_id, starts, ends))
        return found

    def put(
        self, silence: Silence | None, matchers: list[dict], ends_at: datetime, comment: str
    ) -> str:
        """Create, or extend in place (same id, same start: Alertmanager updates it)."""
        starts_at = silence.starts_at if silence else datetime.now(ends_at.tzinfo)
        body = {
            "matchers": matchers,
            "startsAt": starts_at.isoformat(),
            "endsAt": ends_at.isoformat(),
            "createdBy": CREATED_BY,
            "comment": comment,
        }
        if silence:
            body["id"] = silence.id
        return self._call("POST", "/silences", body)["silenceID"]

    def expire(self, silence_id: str) -> None:
        self._call("DELETE", f"/silence/{silence_id}")

    def _call(self, method: str, path: str, body: dict | None = None) -> object:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        try:
            answer = self.http.request(method, self.base + path, body=data, headers=headers)
        except HTTPError as exc:
            raise AlertmanagerError(f"{method} {path}: no answer ({type(exc).__name__})") from None
        if answer.status >= 300:
            text = answer.data[:300].decode("utf-8", "replace")
            raise AlertmanagerError(f"{method} {path}: {answer.status} {text}")
        return json.loads(answer.data) if answer.data.strip() else None


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))

"""Slack markup in values: links (``<https://…|label>``) and ``&amp;``-style entities undone.

Text comes from Slack as Slack sends it: pasted links arrive wrapped (``<https://…>``,
``<https://…|label>``), a typed host name may arrive as ``<http://ns1.example.net|ns1…>``,
and ``&``, ``<``, ``>`` arrive as ``&amp;``, ``&lt;``, ``&gt;``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_LINK = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")
_LINK_PREFIX = re.compile(r"^(?:https?://|mailto:)", re.IGNORECASE)


def _unescape(value: str) -> str:
    return value.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def as_url(raw: str) -> str:
    """A URL value: the link target (or the label when Slack only added ``http://``)."""
    link = _LINK.fullmatch(raw)
    if not link:
        return _unescape(raw)
    target, label = link.group(1), link.group(2)
    if label is not None and target == "http://" + label:
        return _unescape(label)
    return _unescape(target)


def as_name(raw: str) -> str:
    """A name value (server, host name, id): what was typed, before Slack made it a link."""
    link = _LINK.fullmatch(raw)
    if not link:
        return _unescape(raw)
    target, label = link.group(1), link.group(2)
    if label:
        return _unescape(label)
    return _unescape(_LINK_PREFIX.sub("", target).rstrip("/"))


def as_text(raw: str) -> str:
    """Free text: every embedded link replaced by its label (or target)."""
    return _unescape(_LINK.sub(lambda m: m.group(2) or m.group(1), raw))


def looks_like_url(raw: str) -> bool:
    """Server names never hold ``:`` or ``/``; anything that does is meant as a URL."""
    shown = as_name(raw)
    if ":" in shown or "/" in shown:
        return True
    link = _LINK.fullmatch(raw.strip())  # <https://…/a.qcow2|a.qcow2>, not <http://ns1|ns1>
    if not link or not link.group(1).lower().startswith(("http://", "https://")):
        return False
    return urlsplit(link.group(1)).path not in ("", "/")

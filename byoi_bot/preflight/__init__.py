"""Preflight: check an image over HTTP (a few range reads) before a deploy wipes the server."""

from ..core.server_checks import server_checks
from .inspector import HttpImageInspector
from .url_safety import ALLOWLIST_ENV, AllowList, UrlGuard, UrlRefused

__all__ = [
    "ALLOWLIST_ENV",
    "AllowList",
    "HttpImageInspector",
    "UrlGuard",
    "UrlRefused",
    "server_checks",
]

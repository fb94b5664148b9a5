"""OVHcloud failures in plain words: installer messages, API error classes, credentials, network.

`explain` reads a message by its shape (URLs, sizes and checksums vary); `explain_exception`
reads an exception of the `ovh` client or of `requests`. Unknown messages get an honest
generic explanation carrying the raw text, never a guess. URLs are masked everywhere.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

import ovh.exceptions as ovh_errors
import requests

from ..core.ports import Explanation
from ..core.request import mask_url
from .error_classes import family_of
from .iam import denied_actions

GiB = 1024**3
_URL = re.compile(r"https?://[^\s\"'<>]+", re.IGNORECASE)


def mask_urls(text: str) -> str:
    """`text` with every URL's credentials and query string masked."""
    return _URL.sub(lambda m: mask_url(m.group(0)), text)


def _shown_url(url: str) -> str:
    url = url.rstrip(".,;\"'")
    return mask_url(url) if url else "(no URL given)"


def _download_summary(detail: str) -> str:
    """Old wording names the URL; newer wording gives the downloader's error message."""
    detail = detail.strip()
    if not detail or _URL.fullmatch(detail.rstrip(".,;\"'")):
        return f"The server could not download the image {_shown_url(detail)}."
    return f"The server could not download the image: {mask_urls(detail)}"


def _gib(value: str) -> str:
    return f"{int(value) / GiB:.1f} GiB"


@dataclass(frozen=True)
class _Rule:
    """One installer message shape and how to explain it; `text` receives the match groups."""

    code: str
    pattern: re.Pattern[str]
    text: Callable[[dict[str, str]], tuple[str, str, str]]


def _rule(code: str, regex: str, text: Callable[[dict[str, str]], tuple[str, str, str]]) -> _Rule:
    return _Rule(code, re.compile(regex, re.IGNORECASE | re.DOTALL), text)


_INSTALLER_RULES = (
    _rule(
        "write_failed",
        r"can'?t write (?P<type>\w+) on (the )?disk",
        lambda g: (
            f"The installer could not write the {g['type']} image to the disk.",
            "qemu-img could not convert the image to raw: the file is damaged, truncated or "
            "not really qcow2, or it does not fit on the disk.",
            "Check the image with `qemu-img check` and `qemu-img info` (virtual size vs disk "
            "size), then deploy again.",
        ),
    ),
    _rule(
        "image_too_big_for_ram",
        r"(?P<type>\w+) image is too big to (be )?download(ed)? in(to)? memory",
        lambda g: (
            f"The {g['type']} image is too big to be downloaded into the server's memory.",
            "The installer downloads the image into RAM; it must be smaller than the "
            "server's RAM minus 3 GiB.",
            "Shrink the image (compressed qcow2, smaller virtual disk) or use a server with "
            "more RAM.",
        ),
    ),
    _rule(
        "download_failed",
        r"could not download image(?: located)?:?\s*(?P<detail>.*)",
        lambda g: (
            _download_summary(g["detail"]),
            "The URL is wrong, not reachable from the server's network (firewall, private "
            "address, DNS), or needs an authentication header that was not given.",
            "Open the URL from another machine on the internet, check the HTTP status, and "
            "add the needed header (e.g. Authorization) to the request.",
        ),
    ),
    _rule(
        "bad_image_type",
        r"bad format image,?\s*expected:?\s*(?P<expected>[\w ,]+)",
        lambda g: (
            "OVHcloud refused the image type.",
            f"Only these types are accepted: {g['expected'].strip(' ,')}.",
            "Declare the image as qcow2 or raw (convert other formats with `qemu-img convert`).",
        ),
    ),
    _rule(
        "checksum_mismatch",
        r"bad (?P<kind>\w+) for downloaded file,?\s*got:?\s*\"?(?P<got>[0-9a-z]*)\"?\s*"
        r"\"?while expecting:?\s*\"?(?P<want>[0-9a-z]*)",
        lambda g: (
            "The downloaded image does not match the checksum given.",
            f"The file's checksum is {g['got'] or '(empty)'} but {g['want'] or '(empty)'} was "
            "expected: the file changed, the download was cut, or the checksum is wrong.",
            "Compute the checksum of the file actually served (e.g. `sha256sum`) and deploy "
            "again with that value.",
        ),
    ),
    _rule(
        "bad_checksum_type",
        r"bad checksumtype,?\s*expected:?\s*(?P<expected>[\w ,]+)",
        lambda g: (
            "OVHcloud refused the checksum type.",
            f"Accepted checksum types: {g['expected'].strip(' ,')}.",
            "Give the checksum as one of those types (sha256 is a safe choice).",
        ),
    ),
    _rule(
        "gpt_backup_failed",
        r"can ?not move backup gpt data structures to the end of (the )?disk",
        lambda g: (
            "The installer could not move the image's backup GPT to the end of the disk.",
            "The image's partition table does not fit the target disk: the image is larger "
            "than the disk, or its GPT is damaged.",
            "Make the image's virtual size smaller than the disk, repair the GPT (`sgdisk "
            "-e`), or choose a bigger disk group.",
        ),
    ),
    _rule(
        "configdrive_failed",
        r"could not create config ?drive on disk",
        lambda g: (
            "The installer could not create the config drive partition.",
            "There is no room left after the image on the disk, or no free partition slot "
            "(an MBR disk already has 4 primary partitions).",
            "Leave some free space and a free partition slot in the image, or deploy "
            "without a config drive.",
        ),
    ),
    _rule(
        "checksum_incomplete",
        r"please provide checksum and checksumtype or none of them",
        lambda g: (
            "OVHcloud needs both a checksum and its type, or neither.",
            "Only one of checksum and checksum type was given.",
            "Give the checksum with its type (e.g. sha256:…), or leave both out.",
        ),
    ),
    _rule(
        "no_partition_table",
        r"image provided format is not of type raw because no partition table was found",
        lambda g: (
            "The raw image has no partition table.",
            "A raw image must start with an MBR or a GPT; this one has neither (it may be "
            "a single filesystem, an ISO or another format).",
            "Build a full-disk image with a partition table, or declare the real format.",
        ),
    ),
    _rule(
        "format_mismatch",
        r"image provided format is (?P<actual>\S+) which does not match expected "
        r"(?P<expected>\S+) format",
        lambda g: (
            f"The image is {g['actual']}, not {g['expected']} as declared.",
            "The declared image type does not match the file's real format.",
            f"Deploy again with type {g['actual']} if that format is supported (qcow2 or "
            "raw), or convert the image.",
        ),
    ),
    _rule(
        "image_too_big_for_disk",
        r"image provided has a size of (?P<image>\d+) bytes which is larger than device of "
        r"(?P<device>\d+) bytes",
        lambda g: (
            f"The image is {_gib(g['image'])} but the disk is {_gib(g['device'])}.",
            "The image's virtual size is larger than the first disk of the chosen disk group.",
            "Choose a disk group with bigger disks, or shrink the image's virtual size.",
        ),
    ),
    # A task that ended without an installer message (the provider's wording, from the task).
    _rule(
        "task_cancelled",
        r"^task cancelled\b",
        lambda g: (
            "The installation task was cancelled.",
            "Someone cancelled it (control panel, API) or OVHcloud stopped it.",
            "Check the server's state in the control panel, then deploy again if needed.",
        ),
    ),
    _rule(
        "task_ovh_error",
        r"^task ovhError\b",
        lambda g: (
            "The installation failed on OVHcloud's side.",
            "OVHcloud marked the task as its own error (ovhError), without an installer message.",
            "Deploy again later; if it fails again, contact OVHcloud support with the task id.",
        ),
    ),
    _rule(
        "task_failed",
        r"^task customerError\b",
        lambda g: (
            "The installation failed because of the image or the request.",
            "OVHcloud marked the task as a customer error (customerError) without saying more.",
            "Check the image (format, size, bootloader path) with `byoi-bot inspect`, and the "
            "task in the control panel, then deploy again.",
        ),
    ),
)

_INTERNAL_ERROR = (
    "ovh_internal_error",
    "OVHcloud had an internal error.",
    "Try again in a few minutes; if it persists, contact OVHcloud support with the query id.",
)
_CLASS_PREFIXES = {
    "Client::Forbidden": (
        "forbidden",
        "The credential is not allowed to do this on this server.",
        "Check the account's rights on the server and the token's access rules.",
    ),
    "Server::InternalServerError": _INTERNAL_ERROR,
}

_CREDENTIAL_ERRORS = (
    (
        ovh_errors.InvalidKey,
        "invalid_application_key",
        "OVHcloud does not know the application key (or it is missing).",
        "Check OVH_APPLICATION_KEY / OVH_APPLICATION_SECRET (or ovh.conf) and the endpoint.",
    ),
    (
        ovh_errors.InvalidCredential,
        "invalid_consumer_key",
        "The consumer key is not valid: never validated, expired or revoked.",
        "Create a new token with the needed access rules and set OVH_CONSUMER_KEY.",
    ),
    (
        ovh_errors.NotCredential,
        "unknown_consumer_key",
        "The consumer key does not exist for this application.",
        "Create a token for this application key and set OVH_CONSUMER_KEY.",
    ),
    (
        ovh_errors.NotGrantedCall,
        "not_granted",
        "The token's access rules do not allow this call.",
        "Create a token with the rules listed in docs/ovhcloud-api.md (OVHcloud credentials).",
    ),
    (
        ovh_errors.Forbidden,
        "forbidden",
        "OVHcloud refused this call for this account.",
        "Check the account's rights on the server and the token's access rules.",
    ),
    (
        ovh_errors.InvalidConfiguration,
        "bad_configuration",
        "The OVHcloud credentials are missing or incomplete.",
        "Set OVH_APPLICATION_KEY, OVH_APPLICATION_SECRET and OVH_CONSUMER_KEY (or "
        "client_id/client_secret, or ovh.conf).",
    ),
    (
        ovh_errors.InvalidRegion,
        "bad_configuration",
        "The OVHcloud endpoint is unknown.",
        "Set OVH_ENDPOINT to ovh-eu, ovh-ca, ovh-us, … or an http(s)://…/1.0 URL.",
    ),
    (
        ovh_errors.OAuth2FailureError,
        "oauth2_failed",
        "OVHcloud refused the OAuth2 client id/secret.",
        "Check OVH_CLIENT_ID and OVH_CLIENT_SECRET and the service account's IAM policy.",
    ),
)

_STATUS_FALLBACKS = {
    400: (
        "bad_request",
        "OVHcloud refused the request's parameters.",
        "Fix what the message names and submit a new request.",
    ),
    403: (
        "forbidden",
        "OVHcloud refused this call for this account.",
        "Check the account's rights and the token's access rules.",
    ),
    404: (
        "not_found",
        "OVHcloud does not know this object (server, task or installation).",
        "Check the server name and that the account owns it.",
    ),
    409: (
        "conflict",
        "OVHcloud refused because of a conflicting operation on the server.",
        "Wait for the other operation to finish, then try again.",
    ),
    429: (
        "rate_limited",
        "OVHcloud is limiting the rate of byoi-bot's calls (too many requests).",
        "Nothing to do: byoi-bot waits as long as OVHcloud asks, then goes on.",
    ),
    460: (
        "service_expired",
        "The server's service has expired or is suspended.",
        "Renew the service in the OVHcloud control panel.",
    ),
}


def explain(message: str) -> Explanation:
    """Explain an installer or API message by its shape; unknown ones generically."""
    text = (message or "").strip()
    for rule in _INSTALLER_RULES:
        found = rule.pattern.search(text)
        if found:
            groups = {k: v or "" for k, v in found.groupdict().items()}
            summary, cause, action = rule.text(groups)
            return Explanation(summary, cause, action, mask_urls(text), rule.code)
    return unknown(text)


def unknown(message: str) -> Explanation:
    """The honest explanation of a message byoi-bot does not recognise."""
    raw = mask_urls((message or "").strip()) or "(no message)"
    return Explanation(
        "OVHcloud reported an error byoi-bot does not recognise.",
        f"OVHcloud said: {raw}",
        "Read the message; if it is unclear, contact OVHcloud support with it.",
        raw,
        "unknown",
    )


def explain_exception(exc: BaseException) -> Explanation:
    """Explain an `ovh` client, `requests` or socket exception in plain words."""
    transport = _transport_error(exc)
    if transport is not None:
        return _explain_transport(transport)
    if isinstance(exc, ovh_errors.InvalidResponse):
        return Explanation(
            "OVHcloud sent an answer that is not JSON.",
            "A proxy or an outage page answered instead of the API.",
            "Try again later; check any HTTP proxy between the bot and OVHcloud.",
            _raw(exc),
            "invalid_response",
        )
    if isinstance(exc, ovh_errors.APIError):
        return _explain_api_error(exc)
    return unknown(f"{type(exc).__name__}: {exc}")


def _explain_api_error(exc: ovh_errors.APIError) -> Explanation:
    message = str(exc.args[0]) if exc.args and exc.args[0] is not None else ""
    raw = _raw(exc)
    if denied := denied_actions(error_body(exc)):
        return _iam_denied(denied, raw)
    for kind, code, cause, action in _CREDENTIAL_ERRORS:
        if isinstance(exc, kind):
            return Explanation(
                "OVHcloud refused byoi-bot's credentials.", cause, action, _redact(raw), code
            )
    if isinstance(exc, ovh_errors.BadParametersError) and message == "Invalid signature":
        return Explanation(
            "OVHcloud refused byoi-bot's request signature.",
            "The application secret does not match the application key, or the request was "
            "changed on the way (proxy).",
            "Check OVH_APPLICATION_SECRET against the application key.",
            raw,
            "invalid_signature",
        )
    api_class = error_class(exc)
    summary = f"OVHcloud refused the call: {mask_urls(message)}" if message else ""
    family = family_of(api_class)
    if family is not None:
        return Explanation(family.summary, family.cause, family.action, raw, family.code)
    for prefix, (code, cause, action) in _CLASS_PREFIXES.items():
        if api_class.startswith(prefix):
            return Explanation(summary or cause, cause, action, raw, code)
    installer = explain(message)
    if installer.code != "unknown":
        return dataclasses.replace(installer, raw=raw)
    status = _status(exc)
    fallback = _STATUS_FALLBACKS.get(status) or (_INTERNAL_ERROR if (status or 0) >= 500 else None)
    if fallback:
        code, cause, action = fallback
        return Explanation(summary or cause, cause, action, raw, code)
    return unknown(raw)


def _iam_denied(actions: list[str], raw: str) -> Explanation:
    named = ", ".join(f"`{a}`" for a in actions)
    return Explanation(
        f"OVHcloud's IAM refused the call: the service account may not do {named}.",
        f"The IAM policy of byoi-bot's service account (OVH_CLIENT_ID) does not allow {named} "
        "on this server.",
        f"Add {named} to the service account's IAM policy for this server (`byoi-bot "
        "iam-policy` prints the whole policy byoi-bot needs), then try again.",
        raw,
        "iam_denied",
    )


def _explain_transport(error: BaseException) -> Explanation:
    if isinstance(error, requests.Timeout | TimeoutError):
        return Explanation(
            "OVHcloud did not answer in time.",
            "The API is slow or unreachable; a call that changes something may or may not "
            "have happened.",
            "byoi-bot checks the server's tasks before trying anything again.",
            _describe(error),
            "timeout",
        )
    return Explanation(
        "byoi-bot could not reach OVHcloud.",
        "The connection failed (refused, reset, DNS or TLS error).",
        "Check the network, proxy and OVH_ENDPOINT; byoi-bot retries reads by itself.",
        _describe(error),
        "connection_failed",
    )


def _transport_error(exc: BaseException) -> BaseException | None:
    """The network error behind `exc` (the ovh client wraps it in HTTPError), if any."""
    if isinstance(exc, ovh_errors.HTTPError):
        inner = next((a for a in exc.args if isinstance(a, BaseException)), None)
        return inner or exc
    if isinstance(exc, requests.RequestException | ConnectionError | TimeoutError):
        return exc
    return None


def error_class(exc: ovh_errors.APIError) -> str:
    """The API's `class` field of the error body (e.g. `Client::NotFound`), or ''."""
    return str(error_body(exc).get("class") or "")


def error_body(exc: ovh_errors.APIError) -> dict:
    """The error answer's JSON body ({} when there is none)."""
    response = getattr(exc, "response", None)
    if response is None:
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _status(exc: ovh_errors.APIError) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _raw(exc: ovh_errors.APIError) -> str:
    message = str(exc.args[0]) if exc.args and exc.args[0] is not None else type(exc).__name__
    query_id = getattr(exc, "query_id", None)
    return mask_urls(message) + (f" (query id {query_id})" if query_id else "")


def _redact(text: str) -> str:
    """Credential messages may quote a key or secret: hide what is quoted."""
    return re.sub(r"'[^']*'", "'***'", text)


def _describe(error: BaseException) -> str:
    return mask_urls(f"{type(error).__name__}: {error}")

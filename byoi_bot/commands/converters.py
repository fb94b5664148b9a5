"""Converters: the checked, typed value of each deploy option from its raw text."""

from __future__ import annotations

import base64
import binascii
import re
import struct
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlsplit

from ..core.boot_gate import health_url_problem
from ..core.request import CHECKSUM_LENGTHS, IMAGE_TYPES, OPERATING_SYSTEMS, RAID_LEVELS, Checksum
from .errors import did_you_mean, fail, option_error, show, show_url
from .grammar import BY_KEY, SSH_KEY_TYPES, Option
from .markup import as_name, as_text, as_url


def convert(option: Option, raw: str, now: datetime):
    """The typed value of `option` from its raw text (or a `CommandError`)."""
    if raw == "":
        option_error(option, f"`{option.name}=` needs a value.")
    return CONVERTERS[option.field](option, raw, now)


def _hostname(option: Option, raw: str, now: datetime) -> str:
    return hostname_value(option.name, as_name(raw), option.example_command())


_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _installed_hostname(option: Option, raw: str, now: datetime) -> str:
    """The OS's host name, by OVHcloud's rule: every label starts with a letter (RFC 1035)."""
    name = _hostname(option, raw, now)
    if not all(label[0].isalpha() for label in name.split(".")):
        option_error(
            option,
            f"`{show(name, 40)}`: OVHcloud wants every part of the host name to start with "
            "a letter.",
        )
    return name


def is_hostname(name: str) -> bool:
    """True for an RFC 1123 host name (labels of letters, digits and inner hyphens).

    >>> is_hostname("ns1001.ip-51-75-1.eu"), is_hostname("-bad-.example"), is_hostname("a..b")
    (True, False, False)
    """
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def hostname_value(argument: str, name: str, example: str) -> str:
    if not is_hostname(name):
        fail(
            argument,
            f"`{show(name, 60)}` is not a valid host name.",
            "labels of 1-63 letters, digits or hyphens (not at either end), "
            "separated by dots, 253 characters at most",
            example,
        )
    return name.lower()


def _image_url(option: Option, raw: str, now: datetime) -> str:
    url = as_url(raw)
    if len(url) > 2048 or any(c.isspace() or _is_control(c) for c in url):
        option_error(option, "the URL is too long or holds spaces or control characters.")
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port
    except ValueError:
        option_error(option, f"`{show_url(url)}` is not a valid URL.")
    problem = _scheme_problem(url, parts.scheme.lower())
    if problem:
        option_error(option, problem, "a URL starting with `https://` or `http://`")
    if not host:
        option_error(option, f"`{show_url(url)}` has no host name.")
    return url


def _health_url(option: Option, raw: str, now: datetime) -> str:
    url = as_url(raw)
    if any(c.isspace() or _is_control(c) for c in url):
        option_error(option, "the URL holds spaces or control characters.")
    problem = health_url_problem(url)
    if problem:
        option_error(option, f"`{show_url(url)}` cannot be used: {problem}.")
    return url


def _scheme_problem(url: str, scheme: str) -> str | None:
    """Why the URL's scheme is unacceptable, or None for ``http://`` and ``https://``."""
    rest = url[len(scheme) + 1 :]
    if scheme in ("http", "https"):
        return None if rest.startswith("//") else f"`{show_url(url)}` is malformed."
    if not scheme or rest[:1].isdigit():  # "host.example:8080/x" has no scheme
        return f"`{show_url(url)}` has no scheme."
    return f"`{show(scheme, 20)}:` URLs are not allowed, only http and https."


def _image_type(option: Option, raw: str, now: datetime) -> str:
    value = as_name(raw).lower()
    if value not in IMAGE_TYPES:
        hint = did_you_mean(value, list(IMAGE_TYPES))
        option_error(option, f"`{show(value, 20)}` is not an image type.{hint}")
    return value


_HEX = re.compile(r"[0-9a-fA-F]+")


def _checksum(option: Option, raw: str, now: datetime) -> Checksum:
    value = as_name(raw).strip()
    stated = option.name if option.name in CHECKSUM_LENGTHS else None
    if stated is None and ":" in value:
        stated, value = value.split(":", 1)
        stated = stated.lower().replace("-", "").replace("_", "")
        if stated not in CHECKSUM_LENGTHS:
            hint = did_you_mean(stated, list(CHECKSUM_LENGTHS))
            option_error(
                option,
                f"`{show(stated, 20)}` is not a checksum type.{hint}",
                "one of " + ", ".join(f"`{k}`" for k in CHECKSUM_LENGTHS),
            )
    if not _HEX.fullmatch(value):
        option_error(option, f"`{show(value, 40)}` is not hexadecimal.", "hex digits 0-9, a-f")
    by_length = {n: kind for kind, n in CHECKSUM_LENGTHS.items()}
    actual = by_length.get(len(value))
    if stated is None and actual is None:
        option_error(option, f"{len(value)} hex digits match no checksum type.", _lengths())
    if stated is not None and len(value) != CHECKSUM_LENGTHS[stated]:
        seems = f" is {actual}" if actual else ""
        option_error(
            option,
            f"{len(value)} hex digits{seems}, but you wrote {stated}"
            f" ({CHECKSUM_LENGTHS[stated]} hex digits).",
            _lengths(),
        )
    return Checksum(stated or actual, value.lower())


def _lengths() -> str:
    return ", ".join(f"{kind}: {n} hex digits" for kind, n in CHECKSUM_LENGTHS.items())


_PATTERN = re.compile(r"[A-Za-z0-9.*?\[\]-]{1,253}")


def _server_pattern(option: Option, raw: str) -> str:
    value = as_name(raw).lower()
    if not _PATTERN.fullmatch(value):
        option_error(option, f"`{show(value, 40)}` is not a server name pattern.")
    return value


def whole_number(text: str) -> int | None:
    """`text` as a whole number of at most 9 ASCII digits, else None.

    Not `str.isdigit`: it accepts `²` or `١`, which `int` then refuses or reads as digits.
    """
    return int(text) if _DIGITS.fullmatch(text) else None


_DIGITS = re.compile(r"[0-9]{1,9}")


def _count(option: Option, raw: str, least: int) -> int:
    value = as_name(raw)
    number = whole_number(value)
    if number is None or not least <= number <= 1000:
        option_error(option, f"`{show(value, 20)}` is not a whole number from {least} to 1000.")
    return number


_IMAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _image_name(option: Option, raw: str) -> str:
    value = as_name(raw)
    if not _IMAGE_NAME.fullmatch(value):
        option_error(
            option,
            f"`{show(value, 40)}` is not an image name.",
            "a name from `/byoi images` (letters, digits, `.`, `_`, `-`), or an image URL",
        )
    return value


def _disk_group(option: Option, raw: str, now: datetime) -> int:
    value = as_name(raw)
    number = whole_number(value)
    if number is None:
        option_error(option, f"`{show(value, 20)}` is not a non-negative whole number.")
    return number


def _keep_disks(option: Option, raw: str, now: datetime) -> tuple[int, ...]:
    """``2,3`` (each disk group once) or ``none``; the server's groups are checked later."""
    value = as_name(raw).lower()
    if value == "none":
        return ()
    ids = [whole_number(part.strip()) for part in value.split(",")]
    if not all(i for i in ids):  # None (not a number) or 0 (automatic, not a group)
        option_error(
            option,
            f"`{show(value, 40)}` is not a list of disk group ids (positive whole numbers, "
            "separated by commas).",
        )
    groups = tuple(i for i in ids if i)
    twice = sorted({g for g in groups if groups.count(g) > 1})
    if twice:
        option_error(
            option,
            f"disk group {twice[0]} is listed more than once; OVHcloud takes one entry per "
            "disk group.",
        )
    return groups


_PRIVATE_MARKERS = ("PRIVATE KEY", "PuTTY-User-Key-File", "b3BlbnNzaC1rZXktdjE")


def _ssh_key(option: Option, raw: str, now: datetime) -> str:
    """A public key, whitespace normalised. Values are never echoed: a key may be private."""
    text = " ".join(as_text(raw).split())
    if any(marker in text for marker in _PRIVATE_MARKERS):
        option_error(
            option,
            "this is a PRIVATE key: never paste it; paste the .pub file. "
            "Treat that key as leaked and replace it.",
            "the one line of `~/.ssh/id_ed25519.pub` (or another .pub file)",
        )
    parts = text.split(" ", 2)
    if parts[0] not in SSH_KEY_TYPES:
        option_error(
            option,
            "this is not an SSH public key: it should start with its type.",
            "`<type> <base64> [comment]`, type one of "
            + ", ".join(f"`{t}`" for t in SSH_KEY_TYPES),
        )
    if len(parts) < 2 or not _key_blob_matches(parts[0], parts[1]):
        option_error(
            option,
            f"the {parts[0]} key data is missing or damaged; put the whole key in quotes.",
            '`ssh-key="<type> <base64> [comment]"`, the one line of a .pub file',
        )
    return " ".join(parts)


def _key_blob_matches(key_type: str, data: str) -> bool:
    """The base64 decodes to a blob starting with the length-prefixed key type."""
    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return False
    prefix = struct.pack(">I", len(key_type)) + key_type.encode()
    return len(blob) > len(prefix) and blob.startswith(prefix)


def _text(option: Option, raw: str, now: datetime) -> str:
    value = as_text(raw)
    if len(value) > 500 or any(_is_control(c) for c in value):
        option_error(option, "the value is too long (500 at most) or holds control characters.")
    return value


def _reason(option: Option, raw: str, now: datetime) -> str:
    value = _text(option, raw, now).strip()
    if not value:
        option_error(option, "an emergency needs its reason: it is shown on the card and audited.")
    return value


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _header(option: Option, raw: str, now: datetime) -> tuple[str, str]:
    """``Name: value``. Only the name is ever shown, and only once it is a valid name."""
    name, colon, value = as_text(raw).partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not _TOKEN.fullmatch(name):
        option_error(option, "a header must read `Name: value` with a valid header name.")
    if not value:
        option_error(
            option,
            f"header `{name}` has no value; put the whole header in quotes.",
            '`header="Name: value"`',
        )
    if any(_is_control(c) and c != "\t" for c in value):
        option_error(option, f"the value of header `{name}` holds a line break or control code.")
    if not value.isascii():
        option_error(
            option,
            f"the value of header `{name}` holds characters HTTP headers cannot carry "
            "(only plain ASCII: letters, digits, punctuation, spaces).",
        )
    return name, value


def _os(option: Option, raw: str, now: datetime) -> str:
    value = as_name(raw).lower()
    if value not in OPERATING_SYSTEMS:
        option_error(option, f"`{show(value, 20)}` is not byoi or byolinux.")
    return value


def _raid(option: Option, raw: str, now: datetime) -> int:
    value = as_name(raw).lower().removeprefix("raid")
    level = whole_number(value)
    if level not in RAID_LEVELS:
        option_error(option, f"`{show(value, 20)}` is not a hardware RAID level.")
    return level


_METADATA_KEY = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")


def _metadata(option: Option, raw: str, now: datetime) -> tuple[str, str]:
    key, equals, value = as_text(raw).partition("=")
    key = key.strip()
    if not equals or not _METADATA_KEY.fullmatch(key):
        option_error(
            option, "metadata must read `key=value` with a key of letters, digits and `_.:/-`."
        )
    if len(value) > 500 or any(_is_control(c) for c in value):
        option_error(
            option, f"the value of `{key}` is too long (500 at most) or holds control codes."
        )
    return key, value


_SWITCH = {"on": True, "yes": True, "true": True, "off": False, "no": False, "false": False}


def _config_drive(option: Option, raw: str, now: datetime) -> bool:
    value = as_name(raw).lower()
    if value not in _SWITCH:
        option_error(option, f"`{show(value, 20)}` is not on or off.", "`on` or `off`")
    return _SWITCH[value]


_HHMM = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])(Z|[+-](?:[01][0-9]|2[0-3]):?[0-5][0-9])?")


def _at(option: Option, raw: str, now: datetime) -> datetime:
    value = as_name(raw).strip()
    clock = _HHMM.fullmatch(value)
    try:
        when = _next_time(now, clock) if clock else iso_utc(value)
    except (ValueError, OverflowError, TypeError):
        option_error(
            option,
            f"`{show(value, 40)}` is not a time.",
            "an ISO 8601 time like `2026-12-01T06:00+01:00` (UTC if no zone) or `HH:MM`, "
            "optionally with a zone offset (`09:00+01:00`)",
        )
    if when <= now:
        option_error(
            option,
            f"{when:%Y-%m-%d %H:%M} UTC is in the past (now: {now:%Y-%m-%d %H:%M} UTC).",
            "a time in the future",
        )
    return when


def _next_time(now: datetime, clock: re.Match) -> datetime:
    """The next `HH:MM` after `now`, in the zone offset given (UTC without one)."""
    offset = (clock.group(3) or "Z").replace(":", "")
    zone = UTC
    if offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
    local = now.astimezone(zone)
    when = local.replace(hour=int(clock.group(1)), minute=int(clock.group(2)), second=0)
    when = when.replace(microsecond=0)
    return (when if when > local else when + timedelta(days=1)).astimezone(UTC)


def iso_utc(value: str) -> datetime:
    """An ISO 8601 date or time as UTC (a time without a zone is UTC; a date is its
    midnight); `ValueError` when it is none."""
    when = datetime.fromisoformat(value)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _is_control(char: str) -> bool:
    return unicodedata.category(char) == "Cc"


CONVERTERS: dict[str, Callable[[Option, str, datetime], object]] = {
    "server": _hostname,
    "image_url": _image_url,
    "image_type": _image_type,
    "checksum": _checksum,
    "disk_group": _disk_group,
    "hostname": _installed_hostname,
    "ssh_key": _ssh_key,
    "efi_bootloader": _text,
    "description": _text,
    "emergency": _reason,
    "health_url": _health_url,
    "headers": _header,
    "config_drive": _config_drive,
    "os": _os,
    "raid": _raid,
    "keep_disks": _keep_disks,
    "metadata": _metadata,
    "at": _at,
    "image": lambda option, raw, now: _image_name(option, raw),
    "fleet_pattern": lambda option, raw, now: _server_pattern(option, raw),
    "fleet_parallel": lambda option, raw, now: _count(option, raw, 1),
    "fleet_canary": lambda option, raw, now: _count(option, raw, 0),
    "fleet_stop": _config_drive,
}


def option_value(key: str, raw: str) -> object:
    """The checked value of the deploy option `key` (not `at`, which needs the clock) from
    text: the catalog's values follow the rules of typed ones. Raises `CommandError`."""
    return convert(BY_KEY[key], raw, _NO_TIME)


_NO_TIME = datetime.fromtimestamp(0, UTC)  # for options that do not depend on time

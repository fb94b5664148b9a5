"""The `/byoi` command language: one grammar, read by the parser and by the help.

`parse` turns the text typed after ``/byoi`` into a typed command, or raises
`CommandError` naming the argument, the problem, what was expected and a correct example.
Time comes from the caller's clock (the bot's), never from the wall clock:

>>> now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
>>> parse("list all", now=now)
List(all=True)
>>> parse("cancel r-7kq2mx", now=now)
Cancel(request_id='r-7kq2mx')
>>> url = "https://images.example.net/debian-12.qcow2"
>>> parse(f"deploy ns1.example.net {url}", now=now).spec.image_type
'qcow2'
>>> parse("deploy ns1.example.net https://images.example.net/debian.tar", now=now).spec
Traceback (most recent call last):
  ...
byoi_bot.commands.CommandError: `type`: cannot tell the image type from ...

The grammar is data (`SUBCOMMANDS`, `OPTIONS`); `help_text` and `usage_hint` are generated
from it, so the help lists exactly the keys the parser accepts.

Text comes from Slack as Slack sends it: pasted links arrive wrapped (``<https://…>``,
``<https://…|label>``), a typed host name may arrive as ``<http://ns1.example.net|ns1…>``,
and ``&``, ``<``, ``>`` arrive as ``&amp;``, ``&lt;``, ``&gt;``. All of that is undone here.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import re
import struct
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import NoReturn
from urllib.parse import urlsplit

from .core.request import (
    CHECKSUM_LENGTHS,
    IMAGE_TYPES,
    OPERATING_SYSTEMS,
    RAID_LEVELS,
    Checksum,
    DeploySpec,
    mask_url,
)
from .core.text import esc, truncate

__all__ = [
    "OPTIONS",
    "SUBCOMMANDS",
    "Cancel",
    "CatalogChoice",
    "Command",
    "CommandError",
    "Deploy",
    "Fleet",
    "Help",
    "History",
    "Images",
    "List",
    "Option",
    "Status",
    "SubCommand",
    "catalog_spec",
    "help_text",
    "is_hostname",
    "parse",
    "usage_hint",
]

# ----------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class CatalogChoice:
    """A deploy that names a catalog image: the server and the options typed beside it.

    `options` are `DeploySpec` fields (already checked); they override the image's defaults.
    """

    server: str
    image: str
    options: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class Fleet:
    """The servers of a deploy to many: listed (`ns1,ns2`) or a glob over the account's
    servers (`servers="web-*"`), and how the rollout goes."""

    servers: tuple[str, ...] = ()
    pattern: str | None = None
    parallel: int = 1
    canary: int = 0
    stop_on_failure: bool = True


@dataclass(frozen=True)
class Deploy:
    """Request a deployment; `spec` is None when no arguments were given (open the form) or
    when the request names a catalog image (`catalog`), resolved by `catalog_spec`. With
    `fleet`, the spec (or catalog choice) is the template of every server's deploy."""

    spec: DeploySpec | None
    catalog: CatalogChoice | None = None
    fleet: Fleet | None = None


@dataclass(frozen=True)
class Images:
    """List the image catalog."""


@dataclass(frozen=True)
class Status:
    """State of one deployment (`target`: a server name or a request id), or of all active."""

    target: str | None


@dataclass(frozen=True)
class List:
    """Active requests of this channel; `all`: recent history of every channel, by pages."""

    all: bool
    page: int = 1


@dataclass(frozen=True)
class Cancel:
    """Withdraw a request (the store decides whether `request_id` exists)."""

    request_id: str


@dataclass(frozen=True)
class History:
    """Past deployments of one server."""

    server: str


@dataclass(frozen=True)
class Help:
    """Help on everything, or on one sub-command or deploy option (`topic`, canonical name)."""

    topic: str | None


Command = Deploy | Images | Status | List | Cancel | History | Help


class CommandError(Exception):
    """A command that cannot be run, explained for the person who typed it.

    `argument` names what was wrong (a deploy key such as ``checksum``, or ``command``,
    ``server``, ``url``, ``id``, ``topic``, ``text``); `problem` says what is wrong,
    `expected` what would be right, `example` is a complete correct command.
    User values in `problem` are escaped for Slack, and `__str__` escapes the rest (syntax
    like `<server>` would otherwise be read by Slack as a link); header values never appear.
    """

    def __init__(self, argument: str, problem: str, expected: str, example: str) -> None:
        super().__init__(argument, problem, expected, example)
        self.argument = argument
        self.problem = problem
        self.expected = expected
        self.example = example

    def __str__(self) -> str:
        return (
            f"`{self.argument}`: {self.problem}\n"
            f"Expected: {esc(self.expected)}\n"
            f"Example: `{esc(self.example)}`"
        )


# ----------------------------------------------------------------------------- grammar

EXAMPLE_SERVER = "ns1.example.net"
EXAMPLE_URL = "https://images.example.net/debian-12.qcow2"
EXAMPLE_ID = "r-7kq2mx"
EXAMPLE_IMAGE = "debian-12"
MAX_TEXT = 8000  # Slack sends at most 4000; the form may add more
SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


def _example_ssh_key() -> str:
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + bytes(range(32))
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} alice@laptop"


@dataclass(frozen=True)
class Option:
    """One ``key=value`` option of ``/byoi deploy``.

    `field` is the `DeploySpec` attribute it sets (several keys may set one field: a
    checksum is given once, by ``checksum=`` or by ``sha256=``…); `positional` options may
    also be given without their key; `example` is a ``key=value`` that parses.
    """

    name: str
    field: str
    value_syntax: str
    help: str
    example: str
    aliases: tuple[str, ...] = ()
    repeatable: bool = False
    positional: bool = False

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key that selects this option: its name, then its aliases."""
        return (self.name, *self.aliases)

    def example_command(self) -> str:
        """A complete, valid ``/byoi deploy`` command showing this option."""
        if self.field == "server":
            return f"/byoi deploy {self.example} {EXAMPLE_URL}"
        if self.field in ("image_url", "image"):
            return f"/byoi deploy {EXAMPLE_SERVER} {self.example}"
        if self.field == "fleet_pattern":
            return f"/byoi deploy {self.example} {EXAMPLE_URL}"
        if self.field.startswith("fleet_"):
            return f"/byoi deploy ns1.example.net,ns2.example.net {EXAMPLE_URL} {self.example}"
        return f"/byoi deploy {EXAMPLE_SERVER} {EXAMPLE_URL} {self.example}"


@dataclass(frozen=True)
class SubCommand:
    """One sub-command of ``/byoi``: its argument syntax, what it does, an example."""

    name: str
    args: str
    help: str
    example: str

    @property
    def usage(self) -> str:
        """``/byoi <name> <args>``."""
        return f"/byoi {self.name} {self.args}".rstrip()


SUBCOMMANDS: tuple[SubCommand, ...] = (
    SubCommand(
        "deploy",
        "<server> <image-url>|<image> [key=value…]",
        "request a deployment (erases the server) of an image URL or of a catalog image; "
        "with no arguments, opens a form",
        f"/byoi deploy {EXAMPLE_SERVER} {EXAMPLE_URL}",
    ),
    SubCommand(
        "images",
        "",
        "the image catalog: names to deploy by, with their checksum source",
        "/byoi images",
    ),
    SubCommand(
        "status",
        "[<server>|<id>|all]",
        "state of one deployment, or of those active here (all: in every channel)",
        f"/byoi status {EXAMPLE_SERVER}",
    ),
    SubCommand(
        "list",
        "[all [page <n>]]",
        "active requests here (all: every channel's history, by pages)",
        "/byoi list",
    ),
    SubCommand(
        "cancel",
        "<id>",
        "withdraw a pending request; on a running deploy, needs approval too",
        f"/byoi cancel {EXAMPLE_ID}",
    ),
    SubCommand(
        "history",
        "<server>",
        "past deployments of one server",
        f"/byoi history {EXAMPLE_SERVER}",
    ),
    SubCommand("help", "[command]", "this help, or help on one command or option", "/byoi help"),
)

_CHECKSUM_KEYS = tuple(
    Option(
        name=kind,
        field="checksum",
        value_syntax=f"<{length} hex digits>",
        help=f"{kind} checksum of the image",
        example=f"{kind}={hashlib.new(kind, b'').hexdigest()}",
    )
    for kind, length in CHECKSUM_LENGTHS.items()
)

OPTIONS: tuple[Option, ...] = (
    Option(
        "server",
        "server",
        "<server>",
        "the dedicated server to reinstall (first positional argument)",
        f"server={EXAMPLE_SERVER}",
        positional=True,
    ),
    Option(
        "url",
        "image_url",
        "<https://…>",
        "where the image is downloaded from, http or https (second positional argument)",
        f"url={EXAMPLE_URL}",
        aliases=("image-url",),
        positional=True,
    ),
    Option(
        "servers",
        "fleet_pattern",
        '"<pattern>"',
        "deploy to every server of the account whose name matches (`*`, `?`), instead of one "
        "server; a list `ns1,ns2,ns3` in place of the server does the same",
        'servers="web-*"',
    ),
    Option(
        "parallel",
        "fleet_parallel",
        "<N>",
        "deploy to many: at most N installations at once (default 1)",
        "parallel=5",
    ),
    Option(
        "canary",
        "fleet_canary",
        "<K>",
        "deploy to many: the first K servers must be done before the others start (default 0)",
        "canary=1",
    ),
    Option(
        "stop-on-failure",
        "fleet_stop",
        "yes|no",
        "deploy to many: after a failure, start no new installation (default yes; running "
        "ones finish)",
        "stop-on-failure=no",
    ),
    Option(
        "image",
        "image",
        "<name>",
        "a catalog image (`/byoi images`) instead of a URL: its URL, checksum and defaults, "
        "which the other keys override (second positional argument)",
        f"image={EXAMPLE_IMAGE}",
        positional=True,
    ),
    Option(
        "type",
        "image_type",
        "|".join(IMAGE_TYPES),
        "image format; by default from the URL's extension (.qcow2; .img or .raw)",
        "type=qcow2",
        aliases=("image-type",),
    ),
    Option(
        "checksum",
        "checksum",
        "[<type>:]<hex>",
        "image checksum; without a type, inferred from the length ("
        + ", ".join(f"{n} {kind}" for kind, n in CHECKSUM_LENGTHS.items())
        + ")",
        f"checksum=sha256:{hashlib.sha256(b'').hexdigest()}",
    ),
    *_CHECKSUM_KEYS,
    Option(
        "os",
        "os",
        "|".join(OPERATING_SYSTEMS),
        "the operating system OVHcloud installs: byoi (byoi_64, the default: any qcow2 or raw "
        "image) or byolinux (byolinux_64, Bring Your Own Linux: qcow2 only)",
        "os=byolinux",
    ),
    Option(
        "disk-group",
        "disk_group",
        "<id>",
        "the disk group to install on (a number; 0 or none: automatic, the API's choice)",
        "disk-group=1",
    ),
    Option(
        "raid",
        "raid",
        "|".join(map(str, RAID_LEVELS)),
        "hardware RAID level on the disk group (reinstall API; the group needs a RAID "
        "controller and enough disks)",
        "raid=1",
    ),
    Option(
        "hostname",
        "hostname",
        "<name>",
        "host name of the installed system",
        "hostname=web-1",
    ),
    Option(
        "ssh-key",
        "ssh_key",
        '"<public key>"',
        "SSH public key for the installed system (the .pub file, in quotes)",
        f'ssh-key="{_example_ssh_key()}"',
    ),
    Option(
        "efi-bootloader",
        "efi_bootloader",
        "<path>",
        "path of the EFI bootloader inside the image (byoi); default: the one found in the "
        "image's EFI partition",
        r"efi-bootloader=\efi\debian\grubx64.efi",
    ),
    Option(
        "description",
        "description",
        '"<text>"',
        "why this deploy; shown on the request card",
        'description="monthly rebuild"',
    ),
    Option(
        "header",
        "headers",
        '"Name: value"',
        "HTTP header sent when downloading the image; its value is never shown",
        'header="Authorization: Bearer s3cr3t"',
        repeatable=True,
    ),
    Option(
        "metadata",
        "metadata",
        '"key=value"',
        "config drive metadata for cloud-init (configDriveMetadata)",
        'metadata="role=web"',
        repeatable=True,
    ),
    Option(
        "config-drive",
        "config_drive",
        "on|off",
        "legacy API: attach a config drive (also yes/no, true/false); reinstall API: always "
        "one, so `off` is refused with a hostname, SSH key, user data or metadata",
        "config-drive=on",
    ),
    Option(
        "at",
        "at",
        "<ISO time>|<HH:MM>",
        "start once approved, not before this time (UTC unless a zone is given, e.g. "
        "`09:00+01:00`; HH:MM is the next such time)",
        "at=06:30",
    ),
)

_BY_KEY: dict[str, Option] = {key: opt for opt in OPTIONS for key in opt.keys}
_BY_NAME: dict[str, SubCommand] = {cmd.name: cmd for cmd in SUBCOMMANDS}
_DEPLOY = _BY_NAME["deploy"]

# ----------------------------------------------------------------------------- parse


def parse(text: str, *, now: datetime) -> Command:
    """Parse the text after ``/byoi``; raise `CommandError` on anything invalid.

    `now` is the bot's clock: it resolves ``at=HH:MM`` and refuses past times.

    >>> now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    >>> parse("", now=now)
    Help(topic=None)
    >>> parse("status NS1.Example.NET", now=now)
    Status(target='ns1.example.net')
    >>> parse("deploy", now=now)
    Deploy(spec=None)
    """
    if len(text) > MAX_TEXT:
        _fail(
            "text",
            f"the command is {len(text)} characters long; {MAX_TEXT} at most.",
            "a shorter command; long user data goes in the form (`/byoi deploy`)",
            _DEPLOY.example,
        )
    tokens = _tokenize(text)
    if not tokens:
        return Help(None)
    first, rest = tokens[0], tokens[1:]
    if first.key is not None:
        _unknown_subcommand(f"{first.key}=")
    name = first.value.lower()
    if name not in _BY_NAME:
        _unknown_subcommand(first.value)
    if name == "deploy":
        return _deploy(rest, _utc_now(now))
    for token in rest:
        if token.key is not None and name == "help" and not token.value:
            continue  # "help checksum=" asks about an option
        if token.key is not None:
            _fail(
                token.key,
                f"`{name}` takes no key=value options.",
                f"`{_BY_NAME[name].usage}`",
                _BY_NAME[name].example,
            )
    return _SIMPLE_PARSERS[name]([t.value if t.key is None else t.key for t in rest])


@dataclass(frozen=True)
class _Token:
    key: str | None  # lower-cased, or None for a positional value
    value: str  # raw: Slack markup and entities still in place


_KEY = re.compile(r"([A-Za-z][A-Za-z0-9_-]*)=")
# opening quote -> the quotes that may close it (typographic ones, sloppily paired, too)
_CLOSERS = {'"': '"', "“": "”“", "„": "“”", "'": "'", "‘": "’‘", "‚": "‘’"}


def _tokenize(text: str) -> list[_Token]:
    """Split on whitespace, keeping quoted values and Slack ``<…>`` markup whole.

    Backslashes are literal (``\\efi\\debian\\grubx64.efi`` stays as typed). A quote opens
    only at the start of a value; both straight and typographic quotes work.
    """
    tokens, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        key = None
        match = _KEY.match(text, i)
        if match:
            key, i = match.group(1).lower(), match.end()
        value, i = _read_value(text, i, key)
        tokens.append(_Token(key, value))
    return tokens


def _read_value(text: str, i: int, key: str | None) -> tuple[str, int]:
    parts: list[str] = []
    closers = _CLOSERS.get(text[i]) if i < len(text) else None
    if closers:
        end = next((j for j in range(i + 1, len(text)) if text[j] in closers), -1)
        if end < 0:
            option = _BY_KEY.get(key or "")
            _fail(
                option.name if option else key or "text",
                "a quote is opened but never closed.",
                "the value between a pair of quotes",
                f'/byoi deploy {EXAMPLE_SERVER} {EXAMPLE_URL} description="monthly rebuild"',
            )
        parts.append(text[i + 1 : end])
        i = end + 1
    while i < len(text) and not text[i].isspace():
        end = _markup_end(text, i)
        parts.append(text[i:end])
        i = end
    return "".join(parts), i


def _markup_end(text: str, i: int) -> int:
    """End of Slack markup ``<…>`` starting at `i` (spaces allowed inside), else `i + 1`."""
    if text[i] == "<":
        close = text.find(">", i)
        if close > 0 and "<" not in text[i + 1 : close]:
            return close + 1
    return i + 1


# ----------------------------------------------------------------------------- Slack markup

_LINK = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")
_LINK_PREFIX = re.compile(r"^(?:https?://|mailto:)", re.IGNORECASE)


def _unescape(value: str) -> str:
    return value.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _as_url(raw: str) -> str:
    """A URL value: the link target (or the label when Slack only added ``http://``)."""
    link = _LINK.fullmatch(raw)
    if not link:
        return _unescape(raw)
    target, label = link.group(1), link.group(2)
    if label is not None and target == "http://" + label:
        return _unescape(label)
    return _unescape(target)


def _as_name(raw: str) -> str:
    """A name value (server, host name, id): what was typed, before Slack made it a link."""
    link = _LINK.fullmatch(raw)
    if not link:
        return _unescape(raw)
    target, label = link.group(1), link.group(2)
    if label:
        return _unescape(label)
    return _unescape(_LINK_PREFIX.sub("", target).rstrip("/"))


def _as_text(raw: str) -> str:
    """Free text: every embedded link replaced by its label (or target)."""
    return _unescape(_LINK.sub(lambda m: m.group(2) or m.group(1), raw))


def _looks_like_url(raw: str) -> bool:
    """Server names never hold ``:`` or ``/``; anything that does is meant as a URL."""
    shown = _as_name(raw)
    if ":" in shown or "/" in shown:
        return True
    link = _LINK.fullmatch(raw.strip())  # <https://…/a.qcow2|a.qcow2>, not <http://ns1|ns1>
    if not link or not link.group(1).lower().startswith(("http://", "https://")):
        return False
    return urlsplit(link.group(1)).path not in ("", "/")


# ----------------------------------------------------------------------------- errors


def _fail(argument: str, problem: str, expected: str, example: str) -> NoReturn:
    raise CommandError(argument, problem, expected, example)


def _option_error(option: Option, problem: str, expected: str | None = None) -> NoReturn:
    _fail(
        option.name,
        problem,
        expected or f"`{option.name}={option.value_syntax}`: {option.help}",
        option.example_command(),
    )


def _show(value: str, limit: int = 60) -> str:
    """A user value, safe inside backticks in Slack."""
    return esc(truncate(value, limit)).replace("`", "'")


def _show_url(url: str) -> str:
    try:
        return _show(mask_url(url), 80)
    except ValueError:
        return "that URL"


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word.lower(), choices, n=1, cutoff=0.6)
    return f" Did you mean `{close[0]}`?" if close else ""


def _unknown_subcommand(word: str) -> NoReturn:
    names = [c.name for c in SUBCOMMANDS]
    hint = _did_you_mean(word, names)
    if not hint and (_looks_like_url(word) or "." in word):
        hint = " To deploy, start with `deploy`."
    _fail(
        "command",
        f"`{_show(word, 40)}` is not a /byoi command.{hint}",
        "one of " + ", ".join(f"`{n}`" for n in names),
        _DEPLOY.example,
    )


def _unknown_key(key: str) -> NoReturn:
    hint = _did_you_mean(key, list(_BY_KEY))
    _fail(
        key,
        f"`{_show(key, 40)}=` is not a deploy option.{hint}",
        "one of " + ", ".join(f"`{k}=`" for k in _BY_KEY),
        f"/byoi deploy {EXAMPLE_SERVER} {EXAMPLE_URL} {_BY_KEY['checksum'].example}",
    )


# ----------------------------------------------------------------------------- simple commands


def _status(args: list[str]) -> Status:
    _at_most("status", args, 1)
    if not args:
        return Status(None)
    target = _as_name(args[0])
    if _ID.fullmatch(target):  # ids hold no dots; a name with dots is lower-cased below
        return Status(target)
    return Status(_hostname_value("server", target, _BY_NAME["status"].example))


def _list(args: list[str]) -> List:
    _at_most("list", args, 3)
    if not args:
        return List(False)
    words = [a.lower() for a in args]
    if words[0] != "all" or (len(words) > 1 and (words[1:2] != ["page"] or len(words) != 3)):
        _fail(
            "all",
            f"`list` takes `all` and `page <n>`, not `{_show(' '.join(args), 40)}`.",
            "`/byoi list`, `/byoi list all` or `/byoi list all page 2`",
            "/byoi list all page 2",
        )
    if len(words) == 1:
        return List(True)
    if not words[2].isdigit() or not 1 <= int(words[2]) <= 1000:
        _fail(
            "page",
            f"`{_show(args[2], 20)}` is not a page number.",
            "a page number from 1 to 1000",
            "/byoi list all page 2",
        )
    return List(True, int(words[2]))


_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{2,40}")


def _cancel(args: list[str]) -> Cancel:
    _exactly("cancel", "id", args)
    request_id = _as_name(args[0])
    if not _ID.fullmatch(request_id):
        _fail(
            "id",
            f"`{_show(request_id, 40)}` is not a request id.",
            "the id shown on the request card, like `r-7kq2mx`",
            _BY_NAME["cancel"].example,
        )
    return Cancel(request_id)


def _history(args: list[str]) -> History:
    _exactly("history", "server", args)
    return History(_hostname_value("server", _as_name(args[0]), _BY_NAME["history"].example))


def _help(args: list[str]) -> Help:
    _at_most("help", args, 1)
    if not args:
        return Help(None)
    topic = args[0].lower()
    if topic in _BY_NAME:
        return Help(topic)
    if topic.rstrip("=") in _BY_KEY:
        return Help(_BY_KEY[topic.rstrip("=")].name)
    topics = list(_BY_NAME) + list(_BY_KEY)
    _fail(
        "topic",
        f"there is no help on `{_show(args[0], 40)}`.{_did_you_mean(topic, topics)}",
        "a command (" + ", ".join(_BY_NAME) + ") or a deploy option",
        "/byoi help deploy",
    )


def _images(args: list[str]) -> Images:
    if args:
        _fail(
            "arguments",
            f"`images` takes no argument; unexpected `{_show(args[0], 40)}`.",
            "`/byoi images`",
            "/byoi images",
        )
    return Images()


def _at_most(name: str, args: list[str], limit: int) -> None:
    if len(args) > limit:
        command = _BY_NAME[name]
        _fail(
            "arguments",
            f"`{name}` takes at most {limit} argument; unexpected `{_show(args[limit], 40)}`.",
            f"`{command.usage}`",
            command.example,
        )


def _exactly(name: str, argument: str, args: list[str]) -> None:
    command = _BY_NAME[name]
    if not args:
        _fail(argument, f"`{name}` needs a {argument}.", f"`{command.usage}`", command.example)
    _at_most(name, args, 1)


_SIMPLE_PARSERS: dict[str, Callable[[list[str]], Command]] = {
    "status": _status,
    "list": _list,
    "cancel": _cancel,
    "history": _history,
    "help": _help,
    "images": _images,
}

# ----------------------------------------------------------------------------- deploy


def _deploy(tokens: list[_Token], now: datetime) -> Deploy:
    if not tokens:
        return Deploy(None)
    values: dict[str, object] = {}
    given_by: dict[str, str] = {}
    repeated: dict[str, list] = {"headers": [], "metadata": []}
    positionals: list[str] = []
    fleet: dict[str, object] = {}
    for token in tokens:
        listed = token.key is None and "," in token.value and not _looks_like_url(token.value)
        if listed and "servers" not in fleet:
            fleet["servers"] = _server_list(token.value, now)
            positionals.append(str(fleet["servers"][0]))  # the template's server
            continue
        if token.key is None:
            positionals.append(token.value)
            continue
        option = _BY_KEY.get(token.key) or _unknown_key(token.key)
        if option.field.startswith("fleet_"):
            _refuse_duplicate(option, given_by)
            given_by[option.field] = option.name
            fleet[option.field] = _convert(option, token.value, now)
            if option.field == "fleet_pattern":
                values["server"] = "fleet.invalid"  # each server replaces it
                given_by["server"] = option.name
            continue
        if option.repeatable:
            repeated[option.field].append(_convert(option, token.value, now))
            continue
        _refuse_duplicate(option, given_by)
        given_by[option.field] = option.name
        values[option.field] = _convert(option, token.value, now)
    secret = bool(repeated["headers"])
    for field, raw in _assign_positionals(positionals, given_by, secret):
        values[field] = _convert_positional(field, raw, now, secret=secret)
    if fleet:
        return _fleet_deploy(fleet, values, repeated, given_by, secret)
    if "image" in values:
        if secret and given_by.get("image") == _POSITIONAL:
            _fail(
                "image",
                "the image name is not shown, as this command has header values (a header "
                "value with spaces spills into the positional arguments).",
                "`image=<name>`, and quotes around a header whose value holds spaces",
                _BY_KEY["image"].example_command(),
            )
        return _catalog_deploy(values, repeated)
    _require(values)
    if "image_type" not in values:
        linux = values.get("os") == "byolinux"  # qcow2 only: no need to say it
        url = str(values["image_url"])
        values["image_type"] = _inferred_type(url, "qcow2" if linux else None)
    _refuse_what_the_os_cannot_carry(values)
    return Deploy(DeploySpec(**values, **{k: tuple(v) for k, v in repeated.items()}))


def _fleet_deploy(
    fleet: dict[str, object],
    values: dict[str, object],
    repeated: dict[str, list],
    given_by: dict[str, str],
    secret: bool,
) -> Deploy:
    servers = tuple(fleet.get("servers", ()))
    pattern = fleet.get("fleet_pattern")
    if servers and pattern:
        _option_error(_BY_KEY["servers"], "give either a list of servers or `servers=`, not both.")
    if not servers and not pattern:
        _option_error(
            _BY_KEY["parallel"],
            "`parallel=`, `canary=` and `stop-on-failure=` go with several servers.",
            'a list `ns1,ns2,ns3` in place of the server, or `servers="web-*"`',
        )
    plan = Fleet(
        servers=servers,
        pattern=str(pattern) if pattern else None,
        parallel=int(fleet.get("fleet_parallel", 1)),
        canary=int(fleet.get("fleet_canary", 0)),
        stop_on_failure=bool(fleet.get("fleet_stop", True)),
    )
    if len(servers) != len(set(servers)):
        _option_error(_BY_KEY["servers"], "a server is listed twice.")
    if servers and plan.canary >= len(servers):
        _option_error(_BY_KEY["canary"], f"{plan.canary} canaries for {len(servers)} servers.")
    if "image" in values:
        template = _catalog_deploy(values, repeated)
        return Deploy(None, template.catalog, plan)
    _require(values)
    if "image_type" not in values:
        linux = values.get("os") == "byolinux"
        values["image_type"] = _inferred_type(str(values["image_url"]), "qcow2" if linux else None)
    _refuse_what_the_os_cannot_carry(values)
    spec = DeploySpec(**values, **{k: tuple(v) for k, v in repeated.items()})
    return Deploy(spec, None, plan)


def _server_list(raw: str, now: datetime) -> tuple[str, ...]:
    option = _BY_KEY["server"]
    names = [n.strip() for n in _as_name(raw).split(",") if n.strip()]
    return tuple(_hostname(option, name, now) for name in names)


def _catalog_deploy(values: dict[str, object], repeated: dict[str, list]) -> Deploy:
    image = str(values.pop("image"))
    if "image_url" in values:
        _option_error(
            _BY_KEY["image"],
            f"both a catalog image (`{image}`) and an image URL are given; give one.",
        )
    if "server" not in values:
        _option_error(_BY_KEY["server"], "the server name is missing.")
    server = str(values.pop("server"))
    options = [*values.items(), *((k, tuple(v)) for k, v in repeated.items() if v)]
    return Deploy(None, CatalogChoice(server, image, tuple(options)))


def catalog_spec(choice: CatalogChoice, image, checksum: Checksum | None) -> DeploySpec:
    """The spec of a catalog deploy: the image's values, then the typed options over them.

    `image` is a `core.catalog.CatalogImage`; `checksum` is its resolved checksum (given,
    or read from its checksum file). Raises `CommandError` when the result is invalid
    (e.g. `os=byolinux` over a raw image).
    """
    values: dict[str, object] = {
        "server": choice.server,
        "image_url": image.url,
        "os": image.os,
        "checksum": checksum,
        "efi_bootloader": image.efi_bootloader,
        "hostname": _catalog_hostname(image, choice.server),
        "user_data": image.user_data,
        "metadata": image.metadata,
        "description": image.description,
    }
    if image.type:
        values["image_type"] = image.type
    values.update(dict(choice.options))
    if "image_type" not in values:
        linux = values.get("os") == "byolinux"
        values["image_type"] = _inferred_type(image.url, "qcow2" if linux else None)
    _refuse_what_the_os_cannot_carry(values)
    return DeploySpec(**{k: v for k, v in values.items() if v is not None or k == "checksum"})


def _catalog_hostname(image, server: str) -> str | None:
    try:
        name = image.hostname_for(server)
    except (KeyError, IndexError, ValueError):
        name = image.hostname
    return None if name is None else str(option_value("hostname", name))


def option_value(key: str, raw: str) -> object:
    """The checked value of the deploy option `key` (not `at`, which needs the clock) from
    text: the catalog's values follow the rules of typed ones. Raises `CommandError`."""
    return _convert(_BY_KEY[key], raw, _NO_TIME)


_NO_TIME = datetime.fromtimestamp(0, UTC)  # for options that do not depend on time


def _refuse_what_the_os_cannot_carry(values: dict[str, object]) -> None:
    """byolinux_64 installs qcow2 images only and takes no EFI bootloader path."""
    if values.get("os") != "byolinux":
        return
    option = _BY_KEY["os"]
    if values["image_type"] != "qcow2":
        _option_error(
            option,
            "Bring Your Own Linux (`os=byolinux`) installs qcow2 images only; this one is raw.",
            "a qcow2 image, or `os=byoi` for a raw image",
        )
    if values.get("efi_bootloader"):
        _option_error(
            option,
            "Bring Your Own Linux (`os=byolinux`) takes no `efi-bootloader=`: its installer "
            "makes the image bootable itself.",
            "`os=byolinux` without `efi-bootloader=`, or `os=byoi`",
        )


_FIELD_KEY = {"server": "server", "image_url": "url", "image": "image"}
_POSITIONAL = "(positional)"


def _convert_positional(field: str, raw: str, now: datetime, *, secret: bool):
    """Convert a positional value; with headers present, errors do not echo it.

    An unquoted header value with spaces spills into positional values, so they may hold
    a secret.
    """
    try:
        return _convert(_BY_KEY[_FIELD_KEY[field]], raw, now)
    except CommandError as exc:
        if not secret:
            raise
        problem = (
            f"the {_FIELD_NAMES[field]} is not valid (not shown, as this command has header "
            "values; quote a header whose value holds spaces)."
        )
        raise CommandError(exc.argument, problem, exc.expected, exc.example) from None


def _refuse_duplicate(option: Option, given_by: dict[str, str]) -> None:
    earlier = given_by.get(option.field)
    if earlier is None:
        return
    what = f"`{earlier}=`" if earlier != option.name else "an earlier one"
    _option_error(option, f"`{option.name}` is given twice (see {what}); give it once.")


def _assign_positionals(
    positionals: list[str], given_by: dict[str, str], has_headers: bool
) -> list[tuple[str, str]]:
    """Place positional values: URL-looking ones as the image URL, the others as server,
    then (without a URL) as catalog image name.

    Order is forgiving (``deploy <url> <server>`` works); a value that fits nowhere is an
    error. Values are not echoed when headers are present (an unquoted header value
    would otherwise leak into the message).
    """
    urls = [p for p in positionals if _looks_like_url(p)]
    names = [p for p in positionals if not _looks_like_url(p)]
    assigned: list[tuple[str, str]] = []
    free = [f for f in ("image_url", "server") if f not in given_by]
    if not urls and "image_url" in free and "image" not in given_by:
        free[free.index("image_url")] = "image"  # no URL: a second name is a catalog image
    for raw in urls + names:
        wanted = "image_url" if raw in urls else "server"
        field = wanted if wanted in free else (free[0] if free and raw in names else None)
        if field is None:
            _extra_positional(raw, wanted, given_by, has_headers)
        free.remove(field)
        given_by[field] = _POSITIONAL
        assigned.append((field, raw))
    return assigned


def _extra_positional(raw: str, wanted: str, given_by: dict[str, str], secret: bool) -> NoReturn:
    shown = "a value" if secret else f"`{_show(_as_name(raw), 40)}`"
    option = _BY_KEY[_FIELD_KEY[wanted]]
    if wanted == "image_url" or given_by.get(wanted) == option.name:
        _option_error(option, f"the {_FIELD_NAMES[wanted]} is given twice (again as {shown}).")
    _fail(
        "arguments",
        f"unexpected {shown}: `deploy` takes one server and one image URL, "
        "everything else is `key=value`.",
        f"`{_DEPLOY.usage}`; put values with spaces in quotes",
        _DEPLOY.example,
    )


def _require(values: dict[str, object]) -> None:
    for field in ("server", "image_url"):
        if field not in values:
            option = _BY_KEY[_FIELD_KEY[field]]
            _option_error(option, f"the {_FIELD_NAMES[field]} is missing.")


_FIELD_NAMES = {"server": "server name", "image_url": "image URL", "image": "image name"}


def _inferred_type(url: str, default: str | None = None) -> str:
    path = urlsplit(url).path.lower()
    if path.endswith(".qcow2"):
        return "qcow2"
    if path.endswith((".img", ".raw")):
        return "raw"
    if default:
        return default
    name = path.rsplit("/", 1)[-1]
    ending = f"it ends in `{_show(name[name.rfind('.') :], 12)}`; " if "." in name else ""
    _option_error(
        _BY_KEY["type"],
        f"cannot tell the image type from the URL ({ending}"
        "only .qcow2, .img and .raw are recognised).",
        "`type=qcow2` or `type=raw`",
    )


# ----------------------------------------------------------------------------- values


def _convert(option: Option, raw: str, now: datetime):
    """The typed value of `option` from its raw text (or a `CommandError`)."""
    if raw == "":
        _option_error(option, f"`{option.name}=` needs a value.")
    return _CONVERTERS[option.field](option, raw, now)


def _hostname(option: Option, raw: str, now: datetime) -> str:
    return _hostname_value(option.name, _as_name(raw), option.example_command())


_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _installed_hostname(option: Option, raw: str, now: datetime) -> str:
    """The OS's host name, by OVHcloud's rule: every label starts with a letter (RFC 1035)."""
    name = _hostname(option, raw, now)
    if not all(label[0].isalpha() for label in name.split(".")):
        _option_error(
            option,
            f"`{_show(name, 40)}`: OVHcloud wants every part of the host name to start with "
            "a letter.",
        )
    return name


def is_hostname(name: str) -> bool:
    """True for an RFC 1123 host name (labels of letters, digits and inner hyphens).

    >>> is_hostname("ns1001.ip-51-75-1.eu"), is_hostname("-bad-.example"), is_hostname("a..b")
    (True, False, False)
    """
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def _hostname_value(argument: str, name: str, example: str) -> str:
    if not is_hostname(name):
        _fail(
            argument,
            f"`{_show(name, 60)}` is not a valid host name.",
            "labels of 1-63 letters, digits or hyphens (not at either end), "
            "separated by dots, 253 characters at most",
            example,
        )
    return name.lower()


def _image_url(option: Option, raw: str, now: datetime) -> str:
    url = _as_url(raw)
    if len(url) > 2048 or any(c.isspace() or _is_control(c) for c in url):
        _option_error(option, "the URL is too long or holds spaces or control characters.")
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port
    except ValueError:
        _option_error(option, f"`{_show_url(url)}` is not a valid URL.")
    problem = _scheme_problem(url, parts.scheme.lower())
    if problem:
        _option_error(option, problem, "a URL starting with `https://` or `http://`")
    if not host:
        _option_error(option, f"`{_show_url(url)}` has no host name.")
    return url


def _scheme_problem(url: str, scheme: str) -> str | None:
    """Why the URL's scheme is unacceptable, or None for ``http://`` and ``https://``."""
    rest = url[len(scheme) + 1 :]
    if scheme in ("http", "https"):
        return None if rest.startswith("//") else f"`{_show_url(url)}` is malformed."
    if not scheme or rest[:1].isdigit():  # "host.example:8080/x" has no scheme
        return f"`{_show_url(url)}` has no scheme."
    return f"`{_show(scheme, 20)}:` URLs are not allowed, only http and https."


def _image_type(option: Option, raw: str, now: datetime) -> str:
    value = _as_name(raw).lower()
    if value not in IMAGE_TYPES:
        hint = _did_you_mean(value, list(IMAGE_TYPES))
        _option_error(option, f"`{_show(value, 20)}` is not an image type.{hint}")
    return value


_HEX = re.compile(r"[0-9a-fA-F]+")


def _checksum(option: Option, raw: str, now: datetime) -> Checksum:
    value = _as_name(raw).strip()
    stated = option.name if option.name in CHECKSUM_LENGTHS else None
    if stated is None and ":" in value:
        stated, value = value.split(":", 1)
        stated = stated.lower().replace("-", "").replace("_", "")
        if stated not in CHECKSUM_LENGTHS:
            hint = _did_you_mean(stated, list(CHECKSUM_LENGTHS))
            _option_error(
                option,
                f"`{_show(stated, 20)}` is not a checksum type.{hint}",
                "one of " + ", ".join(f"`{k}`" for k in CHECKSUM_LENGTHS),
            )
    if not _HEX.fullmatch(value):
        _option_error(option, f"`{_show(value, 40)}` is not hexadecimal.", "hex digits 0-9, a-f")
    by_length = {n: kind for kind, n in CHECKSUM_LENGTHS.items()}
    actual = by_length.get(len(value))
    if stated is None and actual is None:
        _option_error(option, f"{len(value)} hex digits match no checksum type.", _lengths())
    if stated is not None and len(value) != CHECKSUM_LENGTHS[stated]:
        seems = f" is {actual}" if actual else ""
        _option_error(
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
    value = _as_name(raw).lower()
    if not _PATTERN.fullmatch(value):
        _option_error(option, f"`{_show(value, 40)}` is not a server name pattern.")
    return value


def _count(option: Option, raw: str, least: int) -> int:
    value = _as_name(raw)
    if not value.isdigit() or not least <= int(value) <= 1000:
        _option_error(option, f"`{_show(value, 20)}` is not a whole number from {least} to 1000.")
    return int(value)


_IMAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _image_name(option: Option, raw: str) -> str:
    value = _as_name(raw)
    if not _IMAGE_NAME.fullmatch(value):
        _option_error(
            option,
            f"`{_show(value, 40)}` is not an image name.",
            "a name from `/byoi images` (letters, digits, `.`, `_`, `-`), or an image URL",
        )
    return value


_DISK_GROUP = re.compile(r"[0-9]{1,9}")


def _disk_group(option: Option, raw: str, now: datetime) -> int:
    value = _as_name(raw)
    if not _DISK_GROUP.fullmatch(value):
        _option_error(option, f"`{_show(value, 20)}` is not a non-negative whole number.")
    return int(value)


_PRIVATE_MARKERS = ("PRIVATE KEY", "PuTTY-User-Key-File", "b3BlbnNzaC1rZXktdjE")


def _ssh_key(option: Option, raw: str, now: datetime) -> str:
    """A public key, whitespace normalised. Values are never echoed: a key may be private."""
    text = " ".join(_as_text(raw).split())
    if any(marker in text for marker in _PRIVATE_MARKERS):
        _option_error(
            option,
            "this is a PRIVATE key: never paste it; paste the .pub file. "
            "Treat that key as leaked and replace it.",
            "the one line of `~/.ssh/id_ed25519.pub` (or another .pub file)",
        )
    parts = text.split(" ", 2)
    if parts[0] not in SSH_KEY_TYPES:
        _option_error(
            option,
            "this is not an SSH public key: it should start with its type.",
            "`<type> <base64> [comment]`, type one of "
            + ", ".join(f"`{t}`" for t in SSH_KEY_TYPES),
        )
    if len(parts) < 2 or not _key_blob_matches(parts[0], parts[1]):
        _option_error(
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
    value = _as_text(raw)
    if len(value) > 500 or any(_is_control(c) for c in value):
        _option_error(option, "the value is too long (500 at most) or holds control characters.")
    return value


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _header(option: Option, raw: str, now: datetime) -> tuple[str, str]:
    """``Name: value``. Only the name is ever shown, and only once it is a valid name."""
    name, colon, value = _as_text(raw).partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not _TOKEN.fullmatch(name):
        _option_error(option, "a header must read `Name: value` with a valid header name.")
    if not value:
        _option_error(
            option,
            f"header `{name}` has no value; put the whole header in quotes.",
            '`header="Name: value"`',
        )
    if any(_is_control(c) and c != "\t" for c in value):
        _option_error(option, f"the value of header `{name}` holds a line break or control code.")
    if not value.isascii():
        _option_error(
            option,
            f"the value of header `{name}` holds characters HTTP headers cannot carry "
            "(only plain ASCII: letters, digits, punctuation, spaces).",
        )
    return name, value


def _os(option: Option, raw: str, now: datetime) -> str:
    value = _as_name(raw).lower()
    if value not in OPERATING_SYSTEMS:
        _option_error(option, f"`{_show(value, 20)}` is not byoi or byolinux.")
    return value


def _raid(option: Option, raw: str, now: datetime) -> int:
    value = _as_name(raw).lower().removeprefix("raid")
    if not value.isdigit() or int(value) not in RAID_LEVELS:
        _option_error(option, f"`{_show(value, 20)}` is not a hardware RAID level.")
    return int(value)


_METADATA_KEY = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")


def _metadata(option: Option, raw: str, now: datetime) -> tuple[str, str]:
    key, equals, value = _as_text(raw).partition("=")
    key = key.strip()
    if not equals or not _METADATA_KEY.fullmatch(key):
        _option_error(
            option, "metadata must read `key=value` with a key of letters, digits and `_.:/-`."
        )
    if len(value) > 500 or any(_is_control(c) for c in value):
        _option_error(
            option, f"the value of `{key}` is too long (500 at most) or holds control codes."
        )
    return key, value


_SWITCH = {"on": True, "yes": True, "true": True, "off": False, "no": False, "false": False}


def _config_drive(option: Option, raw: str, now: datetime) -> bool:
    value = _as_name(raw).lower()
    if value not in _SWITCH:
        _option_error(option, f"`{_show(value, 20)}` is not on or off.", "`on` or `off`")
    return _SWITCH[value]


_HHMM = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])(Z|[+-](?:[01][0-9]|2[0-3]):?[0-5][0-9])?")


def _at(option: Option, raw: str, now: datetime) -> datetime:
    value = _as_name(raw).strip()
    clock = _HHMM.fullmatch(value)
    try:
        when = _next_time(now, clock) if clock else _iso_utc(value)
    except (ValueError, OverflowError, TypeError):
        _option_error(
            option,
            f"`{_show(value, 40)}` is not a time.",
            "an ISO 8601 time like `2026-12-01T06:00+01:00` (UTC if no zone) or `HH:MM`, "
            "optionally with a zone offset (`09:00+01:00`)",
        )
    if when <= now:
        _option_error(
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


def _iso_utc(value: str) -> datetime:
    when = datetime.fromisoformat(value)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _utc_now(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _is_control(char: str) -> bool:
    return unicodedata.category(char) == "Cc"


_CONVERTERS: dict[str, Callable[[Option, str, datetime], object]] = {
    "server": _hostname,
    "image_url": _image_url,
    "image_type": _image_type,
    "checksum": _checksum,
    "disk_group": _disk_group,
    "hostname": _installed_hostname,
    "ssh_key": _ssh_key,
    "efi_bootloader": _text,
    "description": _text,
    "headers": _header,
    "config_drive": _config_drive,
    "os": _os,
    "raid": _raid,
    "metadata": _metadata,
    "at": _at,
    "image": lambda option, raw, now: _image_name(option, raw),
    "fleet_pattern": lambda option, raw, now: _server_pattern(option, raw),
    "fleet_parallel": lambda option, raw, now: _count(option, raw, 1),
    "fleet_canary": lambda option, raw, now: _count(option, raw, 0),
    "fleet_stop": _config_drive,
}

# ----------------------------------------------------------------------------- help


def help_text(topic: str | None = None) -> str:
    """Help generated from the grammar: everything, or one sub-command or deploy option.

    >>> print(help_text("list"))
    `/byoi list [all [page <n>]]`: active requests here (all: every channel's history, by pages)
    Example: `/byoi list`
    """
    topic = (topic or "").lower().rstrip("=")
    if topic == "deploy":
        return "\n".join(_deploy_help())
    if topic in _BY_NAME:
        command = _BY_NAME[topic]
        return f"`{command.usage}`: {command.help}\nExample: `{command.example}`"
    if topic in _BY_KEY:
        option = _BY_KEY[topic]
        return f"{_option_line(option)}\nExample: `{option.example_command()}`"
    lines = ["*/byoi commands*"]
    lines += [f"• `{c.usage}`: {c.help}" for c in SUBCOMMANDS]
    return "\n".join([*lines, "", *_deploy_help()])


def _deploy_help() -> list[str]:
    lines = [f"*`{_DEPLOY.usage}`*: {_DEPLOY.help}."]
    lines.append("Options, in any order (keys ignore case; quote values with spaces):")
    lines += [f"• {_option_line(o)}" for o in OPTIONS]
    example = " ".join(
        [_DEPLOY.example, "sha256=…", "hostname=web-1", 'header="Authorization: Bearer …"']
    )
    lines.append(f"Example: `{example}`")
    return lines


def _option_line(option: Option) -> str:
    keys = " or ".join(f"`{key}={option.value_syntax}`" for key in option.keys)
    more = " Repeatable." if option.repeatable else ""
    return f"{keys}: {option.help}.{more}"


def usage_hint() -> str:
    """One line for the Slack manifest's slash-command usage hint."""
    return " | ".join(f"{c.name} {c.args}".rstrip() for c in SUBCOMMANDS)

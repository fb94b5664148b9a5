"""What `parse` returns: the typed commands, and `CommandError` for text that is none."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..core.request import DeploySpec
from ..core.text import esc


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


@dataclass(frozen=True)
class Freeze:
    """Freeze starting deployments of `policies` (all when empty) in [starts, ends)."""

    starts: datetime
    ends: datetime
    reason: str
    policies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Unfreeze:
    """Lift a freeze now."""

    freeze_id: str


@dataclass(frozen=True)
class Freezes:
    """List the freezes in force or to come."""


@dataclass(frozen=True)
class Review:
    """Acknowledge an emergency override after the fact."""

    request_id: str


Command = (
    Deploy | Images | Status | List | Cancel | History | Help | Freeze | Unfreeze | Freezes | Review
)


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

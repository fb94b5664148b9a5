"""The ports the core talks through: OVHcloud provider, image inspector, chat, clock.

Adapters implement them (ovhcloud/, simulator/, preflight/, slack/, console/); the core
only ever sees these types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from .authorization import Standing
from .catalog import CatalogImage
from .change_control import Freeze
from .checks import Check
from .fleet import Fleet, FleetState
from .progress import Progress
from .request import Checksum, DeploySpec, Request
from .states import State

if TYPE_CHECKING:
    from .posts import Post

GiB = 1024**3


@dataclass(frozen=True)
class DiskGroup:
    """A group of disks of a server; an image is written to its first disk."""

    id: int
    disk_size_bytes: int
    disk_type: str = ""
    number_of_disks: int = 1
    description: str = ""
    raid_controller: str = ""  # empty: no hardware RAID on this group
    # Logical bytes per sector of its disks; None: unknown (OVHcloud's API does not say).
    sector_size: int | None = None


@dataclass(frozen=True)
class ServerFacts:
    """What preflight and the card need to know about a dedicated server."""

    name: str
    datacenter: str
    state: str
    boot_mode: str
    ram_bytes: int
    disk_groups: tuple[DiskGroup, ...] = ()
    efi_bootloader_path: str | None = None
    power_state: str = "poweron"
    account: str = ""  # the OVHcloud account that lists it, when several are configured
    architecture: str = ""  # OVHcloud's processorArchitecture (x86_64, arm64, …); "": unknown
    ip: str = ""  # the server's own IPv4 address (the boot gate probes it)

    def disk_group(self, group_id: int | None) -> DiskGroup | None:
        """The given disk group, or the first one when `group_id` is None."""
        if group_id is None:
            return self.disk_groups[0] if self.disk_groups else None
        return next((g for g in self.disk_groups if g.id == group_id), None)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Explanation:
    """A failure in human words: what happened, the likely cause, what to do, the raw text."""

    summary: str
    cause: str
    action: str
    raw: str = ""
    code: str = "unknown"

    def to_dict(self) -> dict:
        return asdict(self)


class ProviderError(Exception):
    """An OVHcloud call failed; `explanation` says why in plain words.

    `outcome_unknown` is True when the call may have happened (timeout after sending):
    the caller must reconcile instead of retrying. `transient` marks a read worth trying
    again later (5xx, timeout, 429); `retry_after` is the wait OVHcloud asked for (429's
    Retry-After), in seconds.
    """

    def __init__(
        self,
        explanation: Explanation,
        *,
        outcome_unknown: bool = False,
        transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(explanation.summary)
        self.explanation = explanation
        self.outcome_unknown = outcome_unknown
        self.transient = transient
        self.retry_after = retry_after


class Provider(Protocol):
    """Drives BYOI deployments on OVHcloud (the `reinstall` or the `legacy` API)."""

    def server_facts(self, server: str) -> ServerFacts:
        """Facts of one server; raises ProviderError (code `server_not_found`) if unknown."""
        ...

    def start(self, spec: DeploySpec) -> str:
        """Start the deployment (the destructive call); returns an opaque handle to store."""
        ...

    def progress(self, server: str, handle: str) -> Progress:
        """Current progress of the deployment `handle` on `server`; never waits to retry (a
        failed read raises at once, `transient` telling whether to try again later)."""
        ...

    def cancel(self, server: str, handle: str) -> None:
        """Stop a deployment, where the API allows it."""
        ...

    def find_active(self, server: str) -> str | None:
        """The handle of a deployment already running on `server`, if any."""
        ...

    def mark(self, server: str) -> str:
        """An opaque mark of `server`'s deployments so far, taken right before a start."""
        ...

    def find_since(self, server: str, mark: str) -> str | None:
        """The handle of a deployment started after `mark`, running or ended (reconciliation)."""
        ...

    def account_of(self, server: str) -> str:
        """The OVHcloud account `server` belongs to (raises ProviderError when none or
        several list it)."""
        ...

    def accounts(self) -> dict[str, int]:
        """Each configured OVHcloud account and how many servers it lists; empty with the
        one zero-configuration account."""
        ...

    def list_servers(self) -> list[str]:
        """The names of the account's dedicated servers."""
        ...


@dataclass(frozen=True)
class ImageReport:
    """What the image inspector found, with its checks."""

    checks: tuple[Check, ...]
    facts: dict = field(default_factory=dict)


class ImageInspector(Protocol):
    """Reads a few KiB of a remote image and reports format, sizes and partitions."""

    def inspect(self, spec: DeploySpec, server: ServerFacts | None) -> ImageReport: ...
    def inspect_many(
        self, specs: Sequence[DeploySpec], servers: Sequence[ServerFacts | None]
    ) -> list[ImageReport]:
        """One read of the image the specs share, checked against each spec and server."""
        ...


class ChecksumVerifier(Protocol):
    """Streams a whole image and compares its checksum (`preflight.checksum`)."""

    def verify(self, spec: DeploySpec, progress: Callable[[int, int | None], None]) -> Check:
        """The `checksum` check: ok on a match; anything else means no match was found.
        `progress(done, total)` is called at most every few seconds."""
        ...


class ImageCatalog(Protocol):
    """The image catalog (`[[image]]` tables), read as it is now at every call.

    Methods raise `core.catalog.CatalogError` with a message for the user.
    """

    def images(self) -> tuple[CatalogImage, ...]: ...
    def image(self, name: str) -> CatalogImage: ...
    def checksum(self, image: CatalogImage) -> tuple[Checksum, str]:
        """The image's checksum (given, or read from its checksum file) and its source."""
        ...


class Clock(Protocol):
    """Current time, aware (UTC). Tests pass a fake one."""

    def now(self) -> datetime: ...


@dataclass(frozen=True)
class CardView:
    """Everything a chat adapter needs to draw (or redraw) a request card."""

    request: Request
    approvers: tuple[str, ...]
    approved_by: tuple[str, ...]
    required: int
    missing_groups: tuple[str, ...] = ()
    unsatisfiable: str | None = None
    status_line: str = ""
    progress_fraction: float | None = None


@dataclass(frozen=True)
class FleetView:
    """Everything a chat adapter needs to draw a fleet card: the table of servers."""

    fleet: Fleet
    members: tuple[Request, ...]
    standings: tuple[Standing, ...]  # per policy of its servers: what it needs and has
    status_line: str


class Chat(Protocol):
    """The chat service, seen from the core (Slack, or the console shell).

    Text uses Slack-style mrkdwn with user text escaped (`core.text.esc`). Thread replies
    and card edits come from the outbox (`core.outbox`), which retries them.
    """

    def post_card(self, view: CardView, *, post_id: int, maybe_posted: bool = False) -> str:
        """Post the request card in `view.request.channel`; return its message id (ts).

        Sent by the outbox (`post_id`, `maybe_posted` and the errors raised as for `reply`).
        """
        ...

    def offer_votes(self, request: Request) -> None:
        """Make voting easy on a card just posted (Slack pre-adds ✅ and ❌)."""
        ...

    def update_card(self, view: CardView) -> None:
        """Redraw the card in place (raises `posts.RetryLater` / `posts.Undeliverable`)."""
        ...

    def reply(
        self, request: Request | Fleet, text: str, *, post_id: int, maybe_posted: bool = False
    ) -> str | None:
        """Post `text` in the card's thread; return the message id.

        `post_id` is the outbox's id of the post; with `maybe_posted`, an earlier attempt
        may have gone through: return that message instead of posting again. Raises
        `posts.RetryLater` or `posts.Undeliverable`; any other error means "maybe posted".
        """
        ...

    def tell(self, user: str, channel: str, text: str) -> None:
        """Show `text` to `user` alone (ephemeral)."""
        ...

    def dm(self, user: str, text: str) -> None:
        """Send `text` to `user` in a direct message (when the channel cannot be used)."""
        ...

    def check_credentials(self) -> None:
        """Raise `outbox.Unauthorized` when the chat refuses the bot's credentials."""
        ...

    def group_members(self, group_id: str) -> frozenset[str]:
        """Members of a user group (empty when unknown or not allowed)."""
        ...

    def post_fleet_card(self, view: FleetView, *, post_id: int, maybe_posted: bool = False) -> str:
        """Post a fleet's card; return its message id (ts) (sent like `post_card`)."""
        ...

    def offer_fleet_votes(self, fleet: Fleet) -> None:
        """Make voting easy on a fleet card just posted (and stored)."""
        ...

    def update_fleet_card(self, view: FleetView) -> None:
        """Redraw a fleet's card in place (raises like `update_card`)."""
        ...


class ServerBusy(Exception):
    """Another request is already active on this server (one at a time per server)."""

    def __init__(self, server: str, other: Request) -> None:
        super().__init__(f"{server} already has an active request {other.id} ({other.state})")
        self.server = server
        self.other = other


class Leadership(Protocol):
    """Who runs the background work (polling, expiry, scheduled starts, reconciliation):
    exactly one process among the bot's replicas at any time."""

    def start(
        self,
        on_elected: Callable[[], None],
        on_deposed: Callable[[], None],
        on_notified: Callable[[], None] = ...,
    ) -> None:
        """Campaign from now on; call `on_elected` when this process leads, `on_deposed`
        when it no longer does, and, while it leads, `on_notified` when another process
        queued posts for the outbox's sender."""
        ...

    def stop(self) -> None:
        """Stop campaigning and give the lead up."""
        ...

    def leader_known(self) -> bool:
        """True when this process leads or knows that another one does."""
        ...


class RequestStore(Protocol):
    """Durable requests, approvals, secrets and audit log (store/: SQLite or PostgreSQL).

    Transitions are compare-and-set on the current state and raise
    `states.IllegalTransition` when the request moved meanwhile. Every write to a request
    bumps its `version`.
    """

    def create(self, request: Request, secrets: dict | None, reason: str = ...) -> None: ...
    def get(self, request_id: str) -> Request | None: ...
    def by_message(self, channel: str, ts: str) -> Request | None: ...
    def in_states(self, states: Iterable[State], server: str | None = None) -> list[Request]: ...
    def stream(self, states: Iterable[State], page: int = ...) -> Iterator[Request]:
        """Requests in `states`, oldest first, read page by page (bounded memory)."""
        ...

    def active(self, server: str | None = None) -> list[Request]: ...
    def recent(
        self, limit: int = ..., server: str | None = None, offset: int = ...
    ) -> list[Request]:
        """The newest requests (of one server, if given), newest first, skipping `offset`."""
        ...

    def count(self) -> int:
        """How many requests there are, in every state."""
        ...

    def transition(
        self,
        request_id: str,
        expected: State,
        to: State,
        actor: str,
        reason: str = ...,
        *,
        take_secrets: bool = ...,
        posts: Callable[[Request], Iterable[Post]] | None = ...,
        **fields: object,
    ) -> tuple[Request, dict | None]: ...
    def update(self, request_id: str, posts: Iterable[Post] = ..., **fields: object) -> None: ...
    def enqueue(self, posts: Iterable[Post]) -> None: ...
    def by_reply(self, channel: str, ts: str) -> Request | None: ...
    def secrets(self, request_id: str) -> dict | None: ...
    def add_approval(
        self,
        request_id: str,
        user: str,
        fingerprint: str,
        posts: Callable[[list[str]], Iterable[Post]] | None = ...,
    ) -> bool: ...
    def remove_approval(self, request_id: str, user: str, posts: Iterable[Post] = ...) -> bool: ...
    def approvals(self, request_id: str, fingerprint: str) -> list[str]: ...
    def note(self, request_id: str, actor: str, action: str, reason: str) -> None: ...
    def audit(self, request_id: str | None = None) -> list[dict]: ...
    def audit_chain(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[dict]:
        """Every audit row with its `prev_hash` and `hash`, oldest first (store.audit_chain)."""
        ...

    # change control (core.change_control): freezes and reviews of emergency overrides
    def add_freeze(self, freeze: Freeze) -> None: ...
    def lift_freeze(self, freeze_id: str, user: str) -> Freeze | None: ...
    def freezes(self, *, ending_after: datetime) -> list[Freeze]: ...
    def open_review(self, request_id: str, policy_name: str, due: datetime, why: str) -> None: ...
    def review(self, request_id: str, user: str, posts: list[Post]) -> bool: ...
    def unreviewed(self) -> list[dict]:
        """Open reviews: request_id, policy_name, due_at (a datetime), reminded_at."""
        ...

    def remind_review(self, request_id: str, posts: list[Post]) -> bool: ...
    def first_delivery(self, event_id: str) -> bool: ...
    # fleets (deploys to many servers; core.fleets)
    def create_fleet(self, fleet: Fleet, children: list[tuple[Request, dict | None]]) -> None: ...
    def fleet(self, fleet_id: str) -> Fleet | None: ...
    def fleet_by_message(self, channel: str, ts: str) -> Fleet | None: ...
    def fleets_in_states(self, states: Iterable[FleetState]) -> list[Fleet]: ...
    def fleet_members(self, fleet: Fleet) -> list[Request]: ...
    def fleet_transition(
        self,
        fleet_id: str,
        expected: FleetState,
        to: FleetState,
        actor: str,
        reason: str,
        **fields: object,
    ) -> bool: ...
    def update_fleet(self, fleet_id: str, **fields: object) -> None: ...
    def add_fleet_approval(self, fleet: Fleet, user: str, request_ids: Sequence[str]) -> bool: ...
    def remove_fleet_approval(self, fleet: Fleet, user: str) -> bool: ...
    def forget_events(self, before: datetime) -> int: ...
    def forget_sent(self, before: datetime) -> int: ...
    def backlog(self) -> int: ...
    def claim_request(self, request_id: str) -> AbstractContextManager[bool]:
        """Work on a request alone (True) or learn that another worker does (False)."""
        ...

    def claim_card(self, request_id: str, version: int) -> bool:
        """True when the card may be redrawn as `version` (no newer one drawn yet)."""
        ...

    def release_card(self, request_id: str, version: int) -> None:
        """Undo a `claim_card` whose drawing failed."""
        ...

    def leadership(self) -> Leadership: ...

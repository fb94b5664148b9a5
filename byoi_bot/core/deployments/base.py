"""What every use case of the deployment workflow shares: its ports, its helpers, its words."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from .. import messages
from ..authorization import Authorization
from ..boot_gate import BootProbe
from ..checks import Severity
from ..fleet import Fleet
from ..policy import PolicySet
from ..ports import (
    Chat,
    ChecksumVerifier,
    Clock,
    Explanation,
    ImageCatalog,
    ImageInspector,
    Provider,
    RequestStore,
)
from ..posts import Post
from ..progress import Progress
from ..request import Request
from ..states import IllegalTransition, State

log = logging.getLogger(__name__)


APPROVE_REACTIONS = frozenset({"white_check_mark", "heavy_check_mark", "ballot_box_with_check"})
REJECT_REACTIONS = frozenset({"x", "no_entry"})
SYSTEM = "byoi-bot"
CHECKSUM = "checksum"
PROGRESS_SHOWN = frozenset({State.DEPLOYING, State.BOOTING, State.FAILED, State.CANCELLED})


class Refused(Exception):
    """A request or an action refused, with the reasons to show the user."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class Timing:
    """How often to poll, when to send a heartbeat, when a deployment counts as stalled."""

    poll: timedelta = timedelta(seconds=20)
    heartbeat: timedelta = timedelta(minutes=5)
    stall: timedelta = timedelta(minutes=30)
    probe: timedelta = timedelta(seconds=20)  # between two boot gate probes of one server


class FleetVotes(Protocol):
    """Where a vote on a fleet's card goes (`core.fleets.Fleets`, when fleets are wired)."""

    def react(self, fleet: Fleet, user: str, reaction: str, added: bool) -> None: ...

    def cancel_unposted(self, fleet_id: str) -> None:
        """The fleet's card could not be posted: nobody can vote, it is cancelled."""
        ...


class Workflow:
    """The ports and helpers that the use-case classes of `Deployments` share."""

    def __init__(
        self,
        *,
        store: RequestStore,
        provider: Provider,
        inspector: ImageInspector | None,
        chat: Chat,
        policies: PolicySet,
        clock: Clock,
        explain: Callable[[str], Explanation],
        new_id: Callable[[], str],
        timing: Timing = Timing(),
        on_approved: Callable[[Request], None] | None = None,
        verifier: ChecksumVerifier | None = None,
        background: Callable[[Callable[[], None]], None] | None = None,
        catalog: ImageCatalog | None = None,
        probe: BootProbe | None = None,
        public_url: str = "",
    ) -> None:
        self.store = store
        self.provider = provider
        self.inspector = inspector
        self.chat = chat
        self.policies = policies
        self.authorization = Authorization(policies, store.approvals, chat.group_members)
        self.clock = clock
        self.explain = explain
        self.new_id = new_id
        self.timing = timing
        self.on_approved = on_approved or self.submit_when_due
        self.provider_seen: tuple[bool, datetime] | None = None  # last poll: answered, when
        self.on_finished: Callable[[Request], None] = lambda _request: None  # done or failed
        self.catalog = catalog
        self.fleets: FleetVotes | None = None  # deploys to many, when wired (core.fleets)
        self.verifier = verifier  # set: requests with a checksum= are verified before starting
        self.background = background or _in_thread
        # seconds between two polls of a server's deployment under its API budget (poller)
        self.poll_pace: Callable[[str], float | None] = lambda server: None
        self._cards = threading.Condition()  # cards whose first post a command waits for
        self._awaited: dict[str, tuple[str | None, str | None] | None] = {}  # `cards.Cards`
        self.probe = probe  # None: no boot gate, done at OVHcloud's done (core.boot_gate)
        self.public_url = public_url  # set (HTTP mode): servers phone home (core.phone_home)

    def _finish(
        self,
        request: Request,
        to: State,
        actor: str,
        reason: str,
        progress: Progress | None = None,
        explanation: Explanation | None = None,
    ) -> Request | None:
        now = self.clock.now()
        fields: dict = {"finished_at": now}
        if progress:
            fields["progress"] = progress.to_dict() | {"signature": progress.signature()}
        try:
            request, _ = self.store.transition(
                request.id,
                request.state,
                to,
                actor,
                reason,
                posts=lambda r: [
                    Post.reply(r, messages.finished(r, actor, explanation, now)),
                    Post.card(r),
                ],
                **fields,
            )
        except IllegalTransition:
            return None
        self.on_finished(request)
        return request

    def _fail(self, request: Request, expected: State, text: str) -> Request:
        request, _ = self.store.transition(
            request.id,
            expected,
            State.FAILED,
            SYSTEM,
            text[:500],
            finished_at=self.clock.now(),
            posts=lambda r: [Post.reply(r, messages.failed(r, text)), Post.card(r)],
        )
        return request

    def _get(self, request_id: str) -> Request:
        request = self.store.get(request_id)
        if request is None:
            raise Refused([messages.unknown_request(request_id)])
        return request

    def _tell(self, user: str, request: Request, text: str) -> None:
        try:
            self.chat.tell(user, request.channel, text)
        except Exception:
            log.exception("could not tell %s about %s", user, request.id)


def _in_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="checksum", daemon=True).start()


def checksum_pending(request: Request) -> bool:
    """Whether the request waits for its checksum verification."""
    return any(c["name"] == CHECKSUM and c["severity"] != Severity.OK for c in request.checks)

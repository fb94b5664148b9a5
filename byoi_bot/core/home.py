"""What one user's App Home shows: requests to approve, theirs, deployments, history, health.

Built from the store alone (plus the policy's user groups); chat adapters draw it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from .outbox import ACCEPTED, ChatState
from .request import Request
from .service import Deployments
from .states import State

SHOWN = 10  # per list: a home tab holds at most 100 blocks
HISTORY_SERVERS = 5


@dataclass(frozen=True)
class Health:
    """The bot's own state: jobs running, OVHcloud answering, the chat's token, posts waiting."""

    scheduler_running: bool
    provider_ok: bool | None  # None: not called since start
    provider_checked_at: datetime | None
    outbox_backlog: int
    chat: ChatState = ACCEPTED


@dataclass(frozen=True)
class Home:
    user: str
    to_approve: list[Request]
    mine: list[Request]
    deploying: list[tuple[Request, float | None]]  # with the share of steps done
    history: dict[str, list[Request]] = field(default_factory=dict)  # server -> newest first
    health: Health | None = None
    to_review: list[tuple[Request, datetime]] = field(default_factory=list)  # override, due


def home_of(
    d: Deployments,
    user: str,
    scheduler_running: Callable[[], bool],
    chat: ChatState = ACCEPTED,
) -> Home:
    """`user`'s App Home as it stands now (`chat`: the outbox's `ChatHealth` state)."""
    pending = d.store.in_states([State.PENDING_APPROVAL])
    recent = d.store.recent(50)
    history: dict[str, list[Request]] = {}
    for request in recent:
        if request.state.is_final and len(history) < HISTORY_SERVERS:
            history.setdefault(request.spec.server, []).append(request)
    deploying = d.store.in_states([State.DEPLOYING, State.BOOTING])[:SHOWN]
    return Home(
        user=user,
        to_approve=[r for r in pending if not r.fleet_id and d.may_vote(r, user)][:SHOWN],
        mine=[r for r in recent if r.requester == user][:SHOWN],
        deploying=[(r, d.card(r).progress_fraction) for r in deploying],
        history={server: done[:3] for server, done in history.items()},
        to_review=_to_review(d, user),
        health=Health(
            scheduler_running=scheduler_running(),
            provider_ok=d.provider_seen[0] if d.provider_seen else None,
            provider_checked_at=d.provider_seen[1] if d.provider_seen else None,
            outbox_backlog=d.store.backlog(),
            chat=chat,
        ),
    )


def _to_review(d: Deployments, user: str) -> list[tuple[Request, datetime]]:
    """Emergency overrides not reviewed yet that `user` may review (its policy's approvers,
    not its requester), oldest due first."""
    found = []
    for row in d.store.unreviewed():
        request = d.store.get(row["request_id"])
        if request and d.may_vote(request, user):
            found.append((request, row["due_at"]))
    return found[:SHOWN]

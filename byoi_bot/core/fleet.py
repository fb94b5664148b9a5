"""A deploy to many servers: one request, one vote, a rolling rollout with a canary.

Each server keeps its own `Request` (its spec, its own policy, state machine and crash-safe
start call); the `Fleet` holds what binds them: who asked, the rollout options, and which
thread posts were made. The rollout rules here
are pure: which servers to start next, and the waves the thread reports.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from .states import State

RUNNING_STATES = frozenset({State.SUBMITTING, State.DEPLOYING, State.BOOTING})
FAILED_STATES = frozenset({State.FAILED, State.CANCELLED, State.EXPIRED, State.REJECTED})


class FleetState(StrEnum):
    """Where a fleet request is: waiting for approval, rolling out, or over."""

    PENDING_APPROVAL = "pending_approval"
    RUNNING = "running"
    DONE = "done"  # every server ended (done or failed)
    STOPPED = "stopped"  # a failure stopped the rollout (stop-on-failure)
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self not in (FleetState.PENDING_APPROVAL, FleetState.RUNNING)


@dataclass(frozen=True)
class Rollout:
    """At most `parallel` installs at once; the first `canary` servers done before the rest;
    after a failure, no new install when `stop_on_failure`."""

    parallel: int = 1
    canary: int = 0
    stop_on_failure: bool = True


@dataclass
class Fleet:
    """A stored deploy to many servers; `servers` in rollout order."""

    id: str
    requester: str
    channel: str
    state: FleetState
    created_at: datetime
    expires_at: datetime
    policy_name: str  # its servers' policies, by name (each server's request has its own)
    servers: tuple[str, ...]
    rollout: Rollout
    pattern: str | None = None
    refused: tuple[tuple[str, str], ...] = ()  # (server, why) left out at preflight
    fingerprint: str = ""
    message_ts: str | None = None
    announced: dict[str, str] = field(default_factory=dict)  # request id -> last post kind
    waves_announced: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None


def fingerprint(child_fingerprints: Sequence[str], rollout: Rollout) -> str:
    """What the fleet's approval binds: every server's spec (its fingerprint) and the plan."""
    payload = json.dumps(
        {"children": list(child_fingerprints), "rollout": rollout.__dict__}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def waves(count: int, rollout: Rollout) -> list[range]:
    """Positions of the servers by wave: the canaries, then groups of `parallel`."""
    canary = min(rollout.canary, count)
    found = [range(0, canary)] if canary else []
    found += [
        range(i, min(i + rollout.parallel, count)) for i in range(canary, count, rollout.parallel)
    ]
    return found


def to_start(states: Sequence[State], rollout: Rollout) -> list[int]:
    """Positions of the servers to start now, given every server's state in rollout order.

    Never more than `parallel` running at once; the canaries first, the others only once
    every canary is done; nothing new after a failure when `stop_on_failure`.
    """
    if rollout.stop_on_failure and any(s in FAILED_STATES for s in states):
        return []
    free = rollout.parallel - sum(1 for s in states if s in RUNNING_STATES)
    canary = min(rollout.canary, len(states))
    allowed = len(states)
    if any(s is not State.DONE for s in states[:canary]):
        allowed = canary
    waiting = [i for i, s in enumerate(states[:allowed]) if s is State.APPROVED]
    return waiting[: max(0, free)]

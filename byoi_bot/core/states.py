"""The states of a request and the transitions between them (SPEC section 2)."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """Where a request is in its life."""

    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    SUBMITTING = "submitting"
    DEPLOYING = "deploying"
    BOOTING = "booting"  # OVHcloud is done; waiting for the server to answer (core.boot_gate)
    DONE = "done"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        """True when nothing can happen to the request any more."""
        return not TRANSITIONS[self]


TRANSITIONS: dict[State, frozenset[State]] = {
    State.PENDING_APPROVAL: frozenset(
        {State.APPROVED, State.REJECTED, State.CANCELLED, State.EXPIRED, State.FAILED}
    ),
    State.APPROVED: frozenset({State.SUBMITTING, State.CANCELLED, State.FAILED}),
    State.SUBMITTING: frozenset({State.DEPLOYING, State.FAILED}),
    State.DEPLOYING: frozenset({State.BOOTING, State.DONE, State.FAILED, State.CANCELLED}),
    State.BOOTING: frozenset({State.DONE, State.FAILED}),
    State.REJECTED: frozenset(),
    State.CANCELLED: frozenset(),
    State.EXPIRED: frozenset(),
    State.DONE: frozenset(),
    State.FAILED: frozenset(),
}

# The states that hold a server: one active request per server.
ACTIVE_STATES = frozenset(
    {State.PENDING_APPROVAL, State.APPROVED, State.SUBMITTING, State.DEPLOYING, State.BOOTING}
)


class IllegalTransition(Exception):
    """A transition the state machine does not allow, or a state that changed meanwhile."""

    def __init__(self, request_id: str, current: State, wanted: State, why: str = "") -> None:
        self.request_id = request_id
        self.current = current
        self.wanted = wanted
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (final state)"
        detail = why or f"allowed from {current}: {allowed}"
        super().__init__(f"request {request_id} cannot go from {current} to {wanted}: {detail}")


def check_transition(request_id: str, current: State, wanted: State) -> None:
    """Raise IllegalTransition unless `current -> wanted` is an edge of the state machine."""
    if wanted not in TRANSITIONS[current]:
        raise IllegalTransition(request_id, current, wanted)

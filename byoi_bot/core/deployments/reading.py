"""Reading: finding requests and drawing a request's card."""

from __future__ import annotations

from .. import change_messages as words
from .. import messages
from ..change_control import window_span
from ..policy import Policy
from ..ports import CardView
from ..request import Request
from ..states import State
from .base import PROGRESS_SHOWN, Workflow


class Reading(Workflow):
    """What a request looks like now."""

    def find(self, target: str) -> list[Request]:
        """Requests matching a request id or a server name (active first, then latest)."""
        by_id = self.store.get(target)
        if by_id:
            return [by_id]
        return self.store.active(target) or self.store.recent(1, server=target)

    def card(self, request: Request) -> CardView:
        """The card of `request` as it stands now (drawn when the outbox sends it)."""
        [standing] = self.authorization.standings([request])
        fraction = None
        if request.progress and request.state in PROGRESS_SHOWN:
            fraction = _fraction(request.progress)
        return CardView(
            request=request,
            approvers=standing.approvers,
            approved_by=standing.approved_by,
            required=standing.required,
            missing_groups=standing.missing_groups,
            unsatisfiable=standing.unsatisfiable,
            status_line=self._status_line(request, self.authorization.policy(request)),
            progress_fraction=1.0 if request.state is State.DONE else fraction,
        )

    def _status_line(self, request: Request, policy: Policy) -> str:
        """The card's state, with what change control says: an emergency's banner, why an
        approved deploy waits, when the window of a running install closes."""
        pace = self.poll_pace(request.spec.server)
        text = messages.card_status(request, pace, self.timing.poll.total_seconds())
        if request.spec.emergency:
            text = f"{words.emergency_banner(request)}\n{text}"
        if request.state is State.APPROVED:
            decision = self.start_decision(request)
            if not decision.now:
                text += " — " + words.waiting_to_start(decision, self.clock.now())
        elif request.state is State.DEPLOYING and policy.windows and request.submitted_at:
            span = window_span(policy.windows, request.submitted_at)
            if span:
                text += "\n" + words.window_closes(span[1])
        return text


def _fraction(record: dict) -> float | None:
    steps = record.get("steps") or []
    if not steps:
        return None
    return sum(1 for s in steps if s.get("status") == "done") / len(steps)

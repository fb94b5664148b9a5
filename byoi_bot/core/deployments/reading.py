"""Reading: finding requests and drawing a request's card."""

from __future__ import annotations

from .. import messages
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
            status_line=messages.card_status(request),
            progress_fraction=1.0 if request.state is State.DONE else fraction,
        )

    # -- helpers --------------------------------------------------------------------


def _fraction(record: dict) -> float | None:
    steps = record.get("steps") or []
    if not steps:
        return None
    return sum(1 for s in steps if s.get("status") == "done") / len(steps)

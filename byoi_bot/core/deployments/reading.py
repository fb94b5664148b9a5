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
        policy = self._policy(request)
        groups = self._groups(policy)
        tally = self._tally(request, policy, groups)
        fraction = None
        if request.progress and request.state in PROGRESS_SHOWN:
            fraction = _fraction(request.progress)
        return CardView(
            request=request,
            approvers=tuple(sorted(policy.approvers)),
            approved_by=tally.counted,
            required=policy.required,
            missing_groups=tally.missing_groups,
            unsatisfiable=policy.unsatisfiable(request.requester, groups),
            status_line=messages.card_status(
                request, self.poll_pace(request.spec.server), self.timing.poll.total_seconds()
            ),
            progress_fraction=1.0 if request.state is State.DONE else fraction,
        )

    # -- helpers --------------------------------------------------------------------


def _fraction(record: dict) -> float | None:
    steps = record.get("steps") or []
    if not steps:
        return None
    return sum(1 for s in steps if s.get("status") == "done") / len(steps)

"""Change control: may this start now (windows, freezes, emergencies), freezes, reviews.

Every question "may this start now, and if not, when" is answered by `start_decision`,
which asks `core.change_control.decide` with the request's policy and the freezes in force.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from .. import change_messages as words
from ..change_control import Freeze, StartDecision, decide
from ..policy import Groups, Policy
from ..posts import Post
from ..request import DeploySpec, Request
from .base import SYSTEM, Refused, Workflow


class ChangeControl(Workflow):
    """Windows, freezes and emergency overrides, with their reviews."""

    def start_decision(
        self, request: Request, freezes: list[Freeze] | None = None
    ) -> StartDecision:
        """When `request` may start: its `at=`, its policy's windows, the freezes in force
        (skipped by an emergency). A caller deciding for many requests at once reads
        `freezes_in_force` once and passes it."""
        now = self.clock.now()
        policy = self.authorization.policy(request)
        return decide(
            now,
            at=request.spec.at,
            windows=policy.windows,
            freezes=self.freezes_in_force(now) if freezes is None else freezes,
            policy=policy.name,
            emergency=bool(request.spec.emergency),
        )

    def freezes_in_force(self, now: datetime) -> list[Freeze]:
        """The configuration's freezes and the stored ones that have not ended."""
        configured = [f for f in self.policies.freezes if f.ends > now]
        return sorted([*configured, *self.store.freezes(ending_after=now)], key=_start)

    def check_change_control(
        self, spec: DeploySpec, policy: Policy, requester: str, groups: Groups
    ) -> None:
        """At request time: an emergency only from the policy's `emergency_requesters`; an
        `at=` only inside the policy's windows (a freeze is no reason to refuse: it ends)."""
        if spec.emergency:
            refusal = policy.may_declare_emergency(requester, groups)
            if refusal:
                raise Refused([refusal])
            return
        if spec.at and policy.windows:
            decision = decide(self.clock.now(), at=spec.at, windows=policy.windows)
            if decision.start_at != spec.at:
                raise Refused([words.at_outside_window(policy, decision)])

    # -- freezes ----------------------------------------------------------------------

    def freeze(
        self, user: str, starts: datetime, ends: datetime, reason: str, scope: tuple[str, ...]
    ) -> Freeze:
        """Store a freeze of `scope`'s policies (all when empty); only their freeze admins."""
        names = [p.name for p in self.policies.policies]
        unknown = [n for n in scope if n not in names]
        if unknown:
            raise Refused([f"No policy named `{unknown[0]}`; policies: {', '.join(names)}."])
        for policy in [p for p in self.policies.policies if not scope or p.name in scope]:
            refusal = policy.may_freeze(user, self.authorization.groups(policy))
            if refusal:
                raise Refused([refusal])
        freeze = Freeze(f"fz-{secrets.token_hex(3)}", starts, ends, reason, scope, user)
        self.store.add_freeze(freeze)
        return freeze

    def unfreeze(self, user: str, freeze_id: str) -> Freeze:
        """Lift a stored freeze now; only a freeze admin of every policy it holds."""
        now = self.clock.now()
        freeze = next((f for f in self.store.freezes(ending_after=now) if f.id == freeze_id), None)
        if freeze is None:
            configured = any(f.id == freeze_id for f in self.policies.freezes)
            where = (
                "it is in the configuration file: edit `[[freeze]]` there"
                if configured
                else ("`/byoi freezes` lists those in force")
            )
            raise Refused([f"No freeze `{freeze_id}` can be lifted here; {where}."])
        for policy in self.policies.policies:
            if not freeze.policies or policy.name in freeze.policies:
                refusal = policy.may_freeze(user, self.authorization.groups(policy))
                if refusal:
                    raise Refused([refusal])
        lifted = self.store.lift_freeze(freeze_id, user)
        if lifted is None:
            raise Refused([f"Freeze `{freeze_id}` ended or was lifted meanwhile."])
        return lifted

    # -- emergencies ------------------------------------------------------------------

    def emergency_started(self, request: Request, decision: StartDecision) -> None:
        """Flag a started emergency override in the audit trail, tell the thread, and open
        its review."""
        policy = self.authorization.policy(request)
        due = self.clock.now() + policy.review_within
        why = f"{request.spec.emergency}; skipped: {', '.join(decision.overridden) or 'nothing'}"
        self.store.open_review(request.id, policy.name, due, why)
        text = words.emergency_started(request, decision.overridden, due)
        self.store.enqueue([Post.reply(request, text)])

    def review(self, request_id: str, user: str) -> str:
        """An approver of the request's policy (not its requester) acknowledges an
        emergency override after the fact."""
        request = self._get(request_id)
        if not request.spec.emergency:
            raise Refused([f"`{request_id}` was not an emergency override; nothing to review."])
        refusal = self.authorization.may_vote(request, user)
        if refusal:
            raise Refused([refusal])
        if not self.store.review(request.id, user, [Post.reply(request, words.reviewed(user))]):
            raise Refused([f"`{request_id}` has no open review (not started yet, or reviewed)."])
        return f"Thanks: the emergency override `{request_id}` is marked reviewed."

    def remind_overdue_reviews(self) -> int:
        """Post one reminder in the thread of each override whose review time has passed."""
        now, reminded = self.clock.now(), 0
        for row in self.store.unreviewed():
            due = row["due_at"]
            request = self.store.get(row["request_id"])
            if row["reminded_at"] or due > now or request is None:
                continue
            text = words.review_overdue(request.id, due)
            if self.store.remind_review(request.id, [Post.reply(request, text)]):
                self.store.note(request.id, SYSTEM, "review_overdue", "reminder posted")
                reminded += 1
        return reminded


def _start(freeze: Freeze) -> datetime:
    return freeze.starts

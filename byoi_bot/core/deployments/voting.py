"""Voting: reactions, approvals, rejections, withdrawals and cancellations."""

from __future__ import annotations

from .. import messages
from ..policy import Tally
from ..ports import ProviderError
from ..posts import Post
from ..request import Request
from ..states import IllegalTransition, State
from .base import APPROVE_REACTIONS, REJECT_REACTIONS, SYSTEM, Refused, Workflow


class Voting(Workflow):
    """Who may approve, reject or cancel, and what a vote does."""

    def react(self, channel: str, ts: str, user: str, reaction: str, added: bool) -> None:
        """A reaction on a message: approve/reject/withdraw when it is a card's ✅ or ❌.

        Skin tones do not matter (``white_check_mark::skin-tone-3``). A vote on one of the
        bot's thread replies instead of the card is not counted, and its author is told.
        """
        reaction = reaction.split("::", 1)[0]
        if reaction not in APPROVE_REACTIONS | REJECT_REACTIONS:
            return
        request = self.store.by_message(channel, ts)
        if request is None:
            fleet = self.store.fleet_by_message(channel, ts)
            if fleet and self.fleets:
                self.fleets.react(fleet, user, reaction, added)
                return
            reply_of = self.store.by_reply(channel, ts) if added else None
            if reply_of is not None:
                self._tell(user, reply_of, messages.vote_on_the_card(reply_of, reaction))
            return
        if reaction in REJECT_REACTIONS:
            if added:
                self.reject(request.id, user)
        elif added:
            self.approve(request.id, user)
        else:
            self.withdraw(request.id, user)

    def approve(self, request_id: str, user: str) -> None:
        """Count `user`'s approval if allowed; on quorum, approve (and submit when due)."""
        request = self._get(request_id)
        if request.fleet_id:  # approved with its fleet, started by its rollout only
            self._tell(user, request, messages.fleet_member_vote(request))
            return
        if request.state is not State.PENDING_APPROVAL:
            self._tell(user, request, messages.not_pending(request))
            return
        if self.clock.now() >= request.expires_at:  # the sweep has not got to it yet
            expired = self._finish(request, State.EXPIRED, SYSTEM, "approval window closed")
            self._tell(user, expired or request, messages.not_pending(expired or request))
            return
        refusal = self.authorization.may_vote(request, user)
        if refusal:
            self.store.note(request.id, user, "approval_refused", refusal)
            self._tell(user, request, messages.cannot_approve(refusal))
            return
        policy = self.authorization.policy(request)
        groups = self.authorization.groups(policy)
        tallied: list[Tally] = []

        def posts(approvals: list[str]) -> list[Post]:  # the approvals with this one
            tallied.append(policy.tally(approvals, request.requester, groups))
            said = Post.reply(request, messages.approval(user, tallied[0]))
            return [said] if tallied[0].met else [said, Post.card(request)]

        if not self.store.add_approval(request.id, user, request.fingerprint, posts):
            return
        tally = tallied[0]
        if tally.met:
            try:
                request, _ = self.store.transition(
                    request.id,
                    State.PENDING_APPROVAL,
                    State.APPROVED,
                    user,
                    f"quorum reached: {', '.join(tally.counted)}",
                    posts=lambda r: [Post.reply(r, messages.approved(r)), Post.card(r)],
                )
            except IllegalTransition:
                return  # another approval got there first
            self.on_approved(request)

    def withdraw(self, request_id: str, user: str) -> None:
        """Remove `user`'s approval while the request still waits for quorum."""
        request = self._get(request_id)
        if request.state is not State.PENDING_APPROVAL:
            return
        self.store.remove_approval(
            request.id, user, [Post.reply(request, messages.withdrawn(user)), Post.card(request)]
        )

    def reject(self, request_id: str, user: str) -> None:
        """❌ from an approver rejects; from the requester it cancels the request."""
        request = self._get(request_id)
        if request.fleet_id:
            self._tell(user, request, messages.fleet_member_vote(request))
            return
        if request.state is not State.PENDING_APPROVAL:
            self._tell(user, request, messages.not_pending(request))
            return
        if user == request.requester:
            self._finish(request, State.CANCELLED, user, "cancelled by the requester")
            return
        refusal = self.authorization.may_vote(request, user)
        if refusal:
            self.store.note(request.id, user, "rejection_refused", refusal)
            self._tell(user, request, messages.cannot_reject(refusal))
            return
        self._finish(request, State.REJECTED, user, "rejected")

    def cancel(self, request_id: str, user: str) -> str:
        """`/byoi cancel`: the requester or an approver withdraws a request not yet running.

        A running deployment may only be stopped by an approver other than the requester.
        One server of a fleet is never cancelled on its own (the fleet is). Returns the
        answer for the user.
        """
        request = self._get(request_id)
        if request.fleet_id:
            raise Refused([messages.fleet_member_cancel(request)])
        return self.cancel_server(request, user)

    def cancel_server(self, request: Request, user: str) -> str:
        """Cancel one server's request (a single request, or a server of a fleet its fleet
        cancels), as `cancel` says."""
        is_approver = self.authorization.may_vote(request, user) is None
        if request.state in (State.PENDING_APPROVAL, State.APPROVED):
            if user != request.requester and not is_approver:
                raise Refused([messages.cancel_not_allowed(request)])
            if self._finish(request, State.CANCELLED, user, "cancelled") is None:
                raise Refused([messages.not_cancellable(self._get(request.id))])
            return messages.cancelled_answer(request)
        if request.state is State.DEPLOYING:
            if not is_approver:
                raise Refused([messages.running_cancel_needs_approver(request)])
            try:
                self.provider.cancel(request.spec.server, request.provider_handle or "")
            except ProviderError as exc:
                raise Refused([messages.explanation(exc.explanation)]) from None
            if self._finish(request, State.CANCELLED, user, "running deployment cancelled") is None:
                raise Refused([messages.not_cancellable(self._get(request.id))])
            return messages.cancelled_answer(request)
        raise Refused([messages.not_cancellable(request)])

    def may_vote(self, request: Request, user: str) -> bool:
        """True when `user` may approve or reject `request` (its policy, its groups)."""
        return self.authorization.may_vote(request, user) is None

"""Submitting: the one destructive call, when due, and its reconciliation after a crash."""

from __future__ import annotations

import logging
from dataclasses import replace

from .. import change_messages as words
from .. import messages, phone_home
from ..boot_gate import Gate, token_hash
from ..change_control import Freeze
from ..checks import blocking
from ..ports import ProviderError
from ..posts import Post
from ..request import Request
from ..states import IllegalTransition, State
from .base import SYSTEM, Workflow, checksum_pending

log = logging.getLogger(__name__)


class Submitting(Workflow):
    """Expire, schedule, re-check and start approved requests; settle unknown outcomes."""

    def expire_due(self) -> list[Request]:
        """Expire pending requests whose approval window has closed (a fleet's servers
        expire with their fleet: `Fleets.advance`)."""
        now = self.clock.now()
        expired = []
        for request in self.store.stream([State.PENDING_APPROVAL]):
            if request.expires_at <= now and not request.fleet_id:  # a fleet expires whole
                done = self._finish(request, State.EXPIRED, SYSTEM, "approval window closed")
                if done:
                    expired.append(done)
        return expired

    def is_due(self, request: Request, freezes: list[Freeze] | None = None) -> bool:
        """True when the request may start now (`at=`, windows, freezes: `start_decision`)."""
        return self.start_decision(request, freezes).now

    def submit_when_due(self, request: Request) -> None:
        """Submit now, or say when it will start and why (the scheduler runs it then)."""
        decision = self.start_decision(request)
        if decision.now:
            self.submit(request.id)
        else:
            text = words.waiting_post(decision, self.clock.now())
            self.store.enqueue([Post.reply(request, text), Post.card(request)])

    # -- submitting -----------------------------------------------------------------

    def submit(self, request_id: str) -> Request:
        """Re-check, then make the one destructive call (SPEC section 2, step 5).

        `submitting` is written before the call; a crash after it is reconciled by
        `reconcile()`, never re-posted. The request is claimed in the store meanwhile (across
        replicas): another submission or a reconciliation of it waits its turn or gives up.
        """
        request = self._get(request_id)
        if request.state is not State.APPROVED:
            return request
        if not self.is_due(request):  # a freeze came, or a window closed: planned again
            return request
        if checksum_pending(request):
            self.store.enqueue([Post.reply(request, messages.checksum_waiting())])
            return request
        with self.store.claim_request(request.id) as mine:
            request = self._get(request_id)  # as it stands under the claim
            if not mine or request.state is not State.APPROVED:
                return request
            try:
                problem, mark = self._recheck(request)
            except Exception:
                log.exception("checks before submitting %s failed", request.id)
                problem, mark = messages.recheck_crashed(), ""
            if problem:
                return self._fail(request, State.APPROVED, problem)
            return self._call(request, mark)

    def _recheck(self, request: Request) -> tuple[str | None, str]:
        """What stops the submission (or None), and the provider's mark taken just before."""
        tally = self.authorization.tally(request)
        if not tally.met:
            return messages.quorum_lost(tally), ""
        spec = request.spec.with_secrets(self.store.secrets(request.id))
        _, checks, _ = self.preflight(spec)
        if blockers := blocking(checks):
            return messages.blocked_at_submission(blockers), ""
        try:
            return None, self.provider.mark(request.spec.server)
        except ProviderError as exc:
            return messages.explanation(exc.explanation), ""

    def _call(self, request: Request, mark: str) -> Request:
        token = self._phone_home_token(request)
        gate = {"boot": Gate(token_hash=token_hash(token)).to_dict()} if token else {}
        try:
            request, secrets = self.store.transition(
                request.id,
                State.APPROVED,
                State.SUBMITTING,
                SYSTEM,
                "calling OVHcloud",
                take_secrets=True,
                start_mark=mark,
                submitted_at=self.clock.now(),
                **gate,
            )
        except IllegalTransition:
            return self._get(request.id)
        spec = request.spec.with_secrets(secrets)
        if spec.fingerprint() != request.fingerprint:
            return self._fail(request, State.SUBMITTING, messages.changed_after_approval())
        if token:  # after the approval's check: the phone-home part is the bot's, not the user's
            where = phone_home.url(self.public_url, request.id, token)
            spec = replace(spec, user_data=phone_home.user_data(spec.user_data, where))
        try:
            handle = self.provider.start(spec)
        except ProviderError as exc:
            if exc.outcome_unknown:
                log.warning("start of %s: outcome unknown, will reconcile", request.id)
                return request
            return self._fail(request, State.SUBMITTING, messages.explanation(exc.explanation))
        return self._started(request, handle, "OVHcloud accepted the deployment")

    def _phone_home_token(self, request: Request) -> str | None:
        """A one-time token when the server should phone home (a public URL, the gate on,
        a config drive); None otherwise."""
        policy = self.policies.for_server(request.spec.server)
        wanted = self.public_url and self.probe is not None and policy.boot_gate
        return phone_home.new_token() if wanted and request.spec.config_drive is not False else None

    def _started(self, request: Request, handle: str, reason: str) -> Request:
        now = self.clock.now()
        request, _ = self.store.transition(
            request.id,
            State.SUBMITTING,
            State.DEPLOYING,
            SYSTEM,
            reason,
            provider_handle=handle,
            last_post_at=now,
            posts=lambda r: [Post.reply(r, messages.submitted(r)), Post.card(r)],
        )
        if request.spec.emergency:
            self.emergency_started(request, self.start_decision(request))
        return request

    def reconcile(self) -> None:
        """Settle `submitting` requests after a restart or an unknown outcome.

        The API's task list, compared with the mark taken before the call, says whether the
        start call happened (even if that deployment has ended since); it is never repeated.
        Start calls still in progress (claimed, here or on another replica) are left to finish.
        Checksum verifications a previous process (or a dead replica) left unfinished start
        again.
        """
        self.resume_checksums()
        for request in self.store.stream([State.SUBMITTING]):
            with self.store.claim_request(request.id) as mine:
                if mine:
                    self._reconcile(request.id)

    def _reconcile(self, request_id: str) -> None:
        request = self._get(request_id)
        if request.state is not State.SUBMITTING:
            return  # settled meanwhile
        try:
            handle = self.provider.find_since(request.spec.server, request.start_mark or "")
        except ProviderError as exc:
            log.warning("reconcile %s: %s", request.id, exc.explanation.summary)
            return
        try:
            if handle:
                self._started(request, handle, "found at OVHcloud by reconciliation")
            else:
                self._fail(request, State.SUBMITTING, messages.lost_submission())
        except IllegalTransition:
            return  # settled meanwhile

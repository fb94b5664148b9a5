"""The deployment workflow of SPEC section 2, over the core's ports.

`Deployments` is what every chat adapter drives: it validates who may do what, keeps the
store's state machine moving, calls the provider, and tells the chat what happened. It
never imports Slack, HTTP or SQLite; everything arrives through `ports`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from . import messages, sent
from .checks import Check, Severity, blocking
from .outbox import Post, Undeliverable
from .policy import Policy, PolicySet, Tally
from .ports import (
    CardView,
    Chat,
    ChecksumVerifier,
    Clock,
    Explanation,
    ImageCatalog,
    ImageInspector,
    Provider,
    ProviderError,
    RequestStore,
    ServerBusy,
    ServerFacts,
)
from .progress import Phase, Progress
from .request import DeploySpec, Request
from .server_checks import server_checks
from .states import IllegalTransition, State

if TYPE_CHECKING:
    from .fleets import Fleets

log = logging.getLogger(__name__)

APPROVE_REACTIONS = frozenset({"white_check_mark", "heavy_check_mark", "ballot_box_with_check"})
REJECT_REACTIONS = frozenset({"x", "no_entry"})
SYSTEM = "byoi-bot"
CHECKSUM = "checksum"
PROGRESS_SHOWN = frozenset({State.DEPLOYING, State.FAILED, State.CANCELLED})


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


class Deployments:
    """Requests, approvals, submission and follow-up of BYOI deployments."""

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
    ) -> None:
        self.store = store
        self.provider = provider
        self.inspector = inspector
        self.chat = chat
        self.policies = policies
        self.clock = clock
        self.explain = explain
        self.new_id = new_id
        self.timing = timing
        self.on_approved = on_approved or self.submit_when_due
        self.provider_seen: tuple[bool, datetime] | None = None  # last poll: answered, when
        self.catalog = catalog
        self.fleets: Fleets | None = None  # deploys to many, when wired (core.fleets)
        self.verifier = verifier  # set: requests with a checksum= are verified before starting
        self.background = background or _in_thread

    # -- asking ---------------------------------------------------------------------

    def request(
        self, spec: DeploySpec, requester: str, channel: str, source: dict | None = None
    ) -> Request:
        """Validate, preflight, store and post a new request; raise `Refused` with reasons.

        `source` says where a catalog image came from (its name, its checksum's source); the
        card shows it.
        """
        policy = self.policies.for_server(spec.server)
        groups = self._groups(policy)
        denied = policy.may_request(requester, channel, groups)
        if denied:
            raise Refused([denied])
        busy = self.store.active(spec.server)
        if busy:
            raise Refused([messages.busy(spec.server, busy[0])])
        facts, checks, image_facts = self.preflight(spec)
        if blockers := blocking(checks):
            raise Refused(
                [messages.refused_by_checks(), *(messages.check_line(c) for c in blockers)]
            )
        spec, unsendable = sent.resolve(spec, policy.api, image_facts, facts, policy.keep_disks)
        if unsendable:
            raise Refused(unsendable)
        verify = self.verifier is not None and spec.checksum is not None
        if verify:
            checks.append(Check(CHECKSUM, Severity.WARNING, messages.checksum_progress(0, None)))
        now = self.clock.now()
        request = Request(
            id=self.new_id(),
            spec=spec.with_secrets(None),
            requester=requester,
            channel=channel,
            state=State.PENDING_APPROVAL,
            created_at=now,
            expires_at=now + policy.ttl,
            policy_name=policy.name,
            fingerprint=spec.fingerprint(),
            checks=[c.to_dict() for c in checks],
            server_facts=facts.to_dict() if facts else None,
            image_facts=image_facts | ({"catalog": source} if source else {}),
        )
        try:
            self.store.create(request, spec.secrets())
        except ServerBusy as exc:
            raise Refused([messages.busy(spec.server, exc.other)]) from None
        try:
            ts = self.chat.post_card(self.card(request))
        except Exception as exc:
            log.exception("could not post the card of %s; cancelling it", request.id)
            self.store.transition(
                request.id, State.PENDING_APPROVAL, State.CANCELLED, SYSTEM, "card not posted"
            )
            why = str(exc) if isinstance(exc, Undeliverable) else messages.card_failed()
            raise Refused([why]) from None
        self.store.update(request.id, message_ts=ts)
        request.message_ts = ts
        try:
            self.chat.offer_votes(request)
        except Exception:
            log.exception("could not add the vote reactions to %s", request.id)
        if verify:
            self._start_verifying(request.id)
        return request

    def preflight(self, spec: DeploySpec) -> tuple[ServerFacts | None, list[Check], dict]:
        """Server and image checks (SPEC section 4); an unreadable server is blocking."""
        facts, checks = self.server_preflight(spec)
        if facts is None or self.inspector is None:
            return facts, checks, {}
        report = self.inspector.inspect(spec, facts)
        return facts, checks + list(report.checks), dict(report.facts)

    def server_preflight(self, spec: DeploySpec) -> tuple[ServerFacts | None, list[Check]]:
        """The server's facts and checks (None and a blocking check when it cannot be read)."""
        try:
            facts = self.provider.server_facts(spec.server)
            running = self.provider.find_active(spec.server)
        except ProviderError as exc:
            e = exc.explanation
            return None, [Check("server", Severity.BLOCKING, f"{e.summary} {e.action}")]
        checks = server_checks(facts)
        if running:
            checks.append(Check("server_idle", Severity.BLOCKING, messages.running_elsewhere()))
        return facts, checks

    # -- approving ------------------------------------------------------------------

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
        policy = self._policy(request)
        if request.state is not State.PENDING_APPROVAL:
            self._tell(user, request, messages.not_pending(request))
            return
        if self.clock.now() >= request.expires_at:  # the sweep has not got to it yet
            expired = self._finish(request, State.EXPIRED, SYSTEM, "approval window closed")
            self._tell(user, expired or request, messages.not_pending(expired or request))
            return
        groups = self._groups(policy)
        refusal = policy.may_approve(user, request.requester, groups)
        if refusal:
            self.store.note(request.id, user, "approval_refused", refusal)
            self._tell(user, request, messages.cannot_approve(refusal))
            return
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
        policy = self._policy(request)
        refusal = policy.may_approve(user, request.requester, self._groups(policy))
        if refusal:
            self.store.note(request.id, user, "rejection_refused", refusal)
            self._tell(user, request, messages.cannot_reject(refusal))
            return
        self._finish(request, State.REJECTED, user, "rejected")

    def cancel(self, request_id: str, user: str) -> str:
        """`/byoi cancel`: the requester or an approver withdraws a request not yet running.

        A running deployment may only be stopped by an approver other than the requester.
        Returns the answer for the user.
        """
        request = self._get(request_id)
        policy = self._policy(request)
        is_approver = policy.may_approve(user, request.requester, self._groups(policy)) is None
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

    # -- time -----------------------------------------------------------------------

    def expire_due(self) -> list[Request]:
        """Expire pending requests whose approval window has closed."""
        now = self.clock.now()
        expired = []
        for request in self.store.stream([State.PENDING_APPROVAL]):
            if request.expires_at <= now:
                done = self._finish(request, State.EXPIRED, SYSTEM, "approval window closed")
                if done:
                    expired.append(done)
        return expired

    def is_due(self, request: Request) -> bool:
        """True when the request has no `at=` time or it has come."""
        return not request.spec.at or request.spec.at <= self.clock.now()

    def submit_when_due(self, request: Request) -> None:
        """Submit now, or say when it will start (the scheduler runs it then)."""
        if self.is_due(request):
            self.submit(request.id)
        else:
            self.store.enqueue([Post.reply(request, messages.scheduled(request))])

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
        if _checksum_pending(request):
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
        policy = self._policy(request)
        tally = self._tally(request, policy, self._groups(policy))
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
            )
        except IllegalTransition:
            return self._get(request.id)
        spec = request.spec.with_secrets(secrets)
        if spec.fingerprint() != request.fingerprint:
            return self._fail(request, State.SUBMITTING, messages.changed_after_approval())
        try:
            handle = self.provider.start(spec)
        except ProviderError as exc:
            if exc.outcome_unknown:
                log.warning("start of %s: outcome unknown, will reconcile", request.id)
                return request
            return self._fail(request, State.SUBMITTING, messages.explanation(exc.explanation))
        return self._started(request, handle, "OVHcloud accepted the deployment")

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
        return request

    # -- checksum ---------------------------------------------------------------------

    def verify_checksum(self, request_id: str) -> None:
        """Stream the image and compare its checksum, the card showing the progress; no
        match fails the request (the start call never happens), a match lets an approved
        one start."""
        assert self.verifier is not None
        request = self._get(request_id)
        spec = request.spec.with_secrets(self.store.secrets(request.id))

        def progress(done: int, total: int | None) -> None:
            text = messages.checksum_progress(done, total)
            self._set_checksum(request.id, Check(CHECKSUM, Severity.WARNING, text))

        try:
            result = self.verifier.verify(spec, progress)
        except Exception:
            log.exception("checksum verification of %s failed", request.id)
            result = Check(CHECKSUM, Severity.BLOCKING, messages.checksum_crashed())
        request = self._set_checksum(request.id, result)
        if result.severity is Severity.OK:
            if request.state is State.APPROVED and self.is_due(request):
                self.submit(request.id)
            return
        for _ in range(3):  # an approval may move the request on at the same moment
            if request.state not in (State.PENDING_APPROVAL, State.APPROVED):
                return
            try:
                self._fail(request, request.state, messages.checksum_failed(result.message))
                return
            except IllegalTransition:
                request = self._get(request.id)

    def resume_checksums(self) -> None:
        """Verify again the checksums a previous process left unfinished."""
        if self.verifier is None:
            return
        for request in self.store.in_states([State.PENDING_APPROVAL, State.APPROVED]):
            if _checksum_pending(request):
                self._start_verifying(request.id)

    def _start_verifying(self, request_id: str) -> None:
        """Verify in the background, unless a verification of it runs already (claimed in the
        store: here or on another replica)."""

        def run() -> None:
            with self.store.claim_request(f"checksum:{request_id}") as mine:
                if mine:
                    self.verify_checksum(request_id)

        self.background(run)

    def _set_checksum(self, request_id: str, check: Check) -> Request:
        request = self._get(request_id)
        request.checks = [c for c in request.checks if c["name"] != CHECKSUM] + [check.to_dict()]
        self.store.update(request.id, [Post.card(request)], checks=request.checks)
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

    # -- following ------------------------------------------------------------------

    def poll(self, request: Request) -> None:
        """Read one deployment's progress and tell the thread what changed.

        Raises `ProviderError` when OVHcloud could not be read (nothing is posted); the
        poller (`byoi_bot.poller`) decides when to try again.
        """
        now = self.clock.now()
        try:
            progress = self.provider.progress(request.spec.server, request.provider_handle or "")
        except ProviderError:
            self.provider_seen = (False, now)
            raise
        self.provider_seen = (True, now)
        if progress.phase is Phase.DONE:
            self._finish(request, State.DONE, SYSTEM, "OVHcloud reports done", progress)
            return
        if progress.phase is Phase.FAILED:
            explanation = self.explain(progress.message or _failed_step(progress))
            self._finish(
                request,
                State.FAILED,
                SYSTEM,
                f"installer: {explanation.code}",
                progress,
                explanation,
            )
            return
        previous = request.progress or {}
        if previous.get("steps") and not progress.steps:
            # A step-less answer (e.g. a spurious 404 of the install status) never replaces
            # known steps: nothing is posted, the next poll reads them again.
            self._heartbeat_or_stall(request, progress, now)
            return
        record = progress.to_dict() | {
            "signature": progress.signature(),
            "stall_warned": previous.get("stall_warned", False),
        }
        if progress.signature() != previous.get("signature"):
            self.store.update(
                request.id,
                [
                    Post.reply(request, messages.progress(progress), latest_only=True),
                    Post.card(request),
                ],
                progress=record,
                last_status=messages.status_line(request, progress),
                last_post_at=now,
            )
            return
        self._heartbeat_or_stall(request, progress, now)

    def _heartbeat_or_stall(self, request: Request, progress: Progress, now: datetime) -> None:
        started = request.submitted_at or now
        previous = request.progress or {}
        if now - started >= self.timing.stall and not previous.get("stall_warned"):
            self.store.note(request.id, SYSTEM, "stall_warning", "running past the usual time")
            self.store.update(
                request.id,
                [Post.reply(request, messages.stalled(request, now - started)), Post.card(request)],
                progress=previous | {"stall_warned": True},
                last_status=messages.status_line(request, progress) + " · stalled",
                last_post_at=now,
            )
            return
        if now - (request.last_post_at or started) >= self.timing.heartbeat:
            heartbeat = messages.heartbeat(progress, now - started)
            self.store.update(
                request.id, [Post.reply(request, heartbeat, latest_only=True)], last_post_at=now
            )

    # -- reading --------------------------------------------------------------------

    def may_vote(self, request: Request, user: str) -> bool:
        """True when `user` may approve or reject `request` (its policy, its groups)."""
        policy = self._policy(request)
        return policy.may_approve(user, request.requester, self._groups(policy)) is None

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
            status_line=messages.card_status(request),
            progress_fraction=1.0 if request.state is State.DONE else fraction,
        )

    # -- helpers --------------------------------------------------------------------

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

    def _tally(self, request: Request, policy: Policy, groups: dict) -> Tally:
        """The approvals that count, bound to exactly what was requested (the fingerprint)."""
        approvals = self.store.approvals(request.id, request.fingerprint)
        return policy.tally(approvals, request.requester, groups)

    def _get(self, request_id: str) -> Request:
        request = self.store.get(request_id)
        if request is None:
            raise Refused([messages.unknown_request(request_id)])
        return request

    def _policy(self, request: Request) -> Policy:
        return self.policies.by_name(request.policy_name, request.spec.server)

    def _groups(self, policy: Policy) -> dict[str, frozenset[str]]:
        names = {*policy.groups, *(r for r in policy.requesters if r.startswith("S"))}
        groups = {}
        for group in names:
            try:
                groups[group] = self.chat.group_members(group)
            except Exception:
                log.exception("could not read members of %s", group)
                groups[group] = frozenset()
        return groups

    def _tell(self, user: str, request: Request, text: str) -> None:
        try:
            self.chat.tell(user, request.channel, text)
        except Exception:
            log.exception("could not tell %s about %s", user, request.id)


def _in_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="checksum", daemon=True).start()


def _checksum_pending(request: Request) -> bool:
    """Whether the request waits for its checksum verification."""
    return any(c["name"] == CHECKSUM and c["severity"] != Severity.OK for c in request.checks)


def _failed_step(progress: Progress) -> str:
    step = progress.current_step
    return (step.error or step.name) if step else ""


def _fraction(record: dict) -> float | None:
    steps = record.get("steps") or []
    if not steps:
        return None
    return sum(1 for s in steps if s.get("status") == "done") / len(steps)

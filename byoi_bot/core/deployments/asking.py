"""Asking: a new request is validated, preflighted, stored and its card posted."""

from __future__ import annotations

from .. import messages, sent
from ..checks import Check, Severity, blocking
from ..policy import Policy
from ..ports import ProviderError, ServerBusy, ServerFacts
from ..request import DeploySpec, Request
from ..server_checks import server_checks
from ..states import State
from .base import CHECKSUM, Refused, Workflow


class Asking(Workflow):
    """Turn a deploy spec into a stored request waiting for approval."""

    def request(
        self, spec: DeploySpec, requester: str, channel: str, source: dict | None = None
    ) -> Request:
        """Validate, preflight, store and post a new request; raise `Refused` with reasons.

        `source` says where a catalog image came from (its name, its checksum's source); the
        card shows it.
        """
        denied = self.authorization.may_request([spec.server], requester, channel)
        if denied:
            raise Refused(denied)
        policy = self.policies.for_server(spec.server)
        self.check_change_control(spec, policy, requester, self.authorization.groups(policy))
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
        request = self.pending(
            spec,
            requester,
            channel,
            policy,
            checks,
            facts.to_dict() if facts else None,
            image_facts | ({"catalog": source} if source else {}),
        )
        try:
            self.store.create(request, spec.secrets())
        except ServerBusy as exc:
            raise Refused([messages.busy(spec.server, exc.other)]) from None
        request.message_ts = self.post_card(request, self.store.get)  # `cards.Cards`
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

    def pending(
        self,
        spec: DeploySpec,
        requester: str,
        channel: str,
        policy: Policy,
        checks: list[Check],
        server_facts: dict | None,
        image_facts: dict,
        fleet_id: str | None = None,
    ) -> Request:
        """A new request waiting for approval (stored by the caller), its secrets stripped,
        its approval window and fingerprint set; one server of a fleet names its `fleet_id`."""
        now = self.clock.now()
        return Request(
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
            server_facts=server_facts,
            image_facts=image_facts,
            fleet_id=fleet_id,
        )

"""Who may ask, who may vote, and whether a server may be reinstalled: one decision per server.

Every server is judged by its own policy (the first whose pattern matches it, kept by name on
its request): its requesters and channels say who may ask and where; its approvers, quorum,
one-per-group rule and approval window say when it is approved. A single request is one
server; a fleet is approved when every server's own decision is met, and a vote counts for
the servers whose policy lists the voter. Requests, fleets, cards, the App Home and the
re-check before the start call all ask `Authorization`: there is no second implementation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from .policy import Groups, Policy, PolicySet, Tally, is_group_id
from .request import Request
from .text import esc

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Standing:
    """Where one policy stands for the servers it governs in a request: what a card shows."""

    policy: str
    servers: tuple[str, ...]
    approvers: tuple[str, ...]
    approved_by: tuple[str, ...]  # the approvals that count, for every one of its servers
    required: int
    missing_groups: tuple[str, ...]
    expires_at: datetime  # its approval window closes then
    unsatisfiable: str | None  # why it can never be met, when it cannot
    met: bool


class Authorization:
    """The one authorization decision, server by server.

    `approvals(request_id, fingerprint)` lists the approvals bound to exactly that spec;
    `members(group_id)` lists a Slack user group's members (read when needed).
    """

    def __init__(
        self,
        policies: PolicySet,
        approvals: Callable[[str, str], list[str]],
        members: Callable[[str], frozenset[str]],
    ) -> None:
        self.policies = policies
        self.approvals = approvals
        self.members = members

    def policy(self, request: Request) -> Policy:
        """The policy `request`'s server was asked under (its server's, if since renamed);
        an emergency's quorum may be reduced by it."""
        policy = self.policies.by_name(request.policy_name, request.spec.server)
        return policy.for_emergency() if request.spec.emergency else policy

    def groups(self, policy: Policy) -> Groups:
        """The members of the groups `policy` names (approvers, requesters, emergency
        requesters, freeze admins); a group that cannot be read counts as empty, so it never
        lets anyone in."""
        listed = (*policy.requesters, *policy.emergency_requesters, *policy.freeze_admins)
        names = {*policy.groups, *(r for r in listed if is_group_id(r))}
        found = {}
        for group in names:
            try:
                found[group] = self.members(group)
            except Exception:
                log.exception("could not read members of %s", group)
                found[group] = frozenset()
        return found

    # -- asking ---------------------------------------------------------------------

    def may_request(self, servers: Sequence[str], requester: str, channel: str) -> list[str]:
        """Why `requester` may not ask for `servers` in `channel`: one reason per policy
        that refuses, naming its servers when there are several; empty when all allow."""
        reasons = []
        for policy, names in _by_policy(servers, self.policies.for_server):
            why = policy.may_request(requester, channel, self.groups(policy))
            if why and len(servers) > 1:
                why = f"{_servers(names)} (policy `{esc(policy.name)}`): {why}"
            if why:
                reasons.append(why)
        return reasons

    # -- voting ---------------------------------------------------------------------

    def may_vote(self, request: Request, user: str) -> str | None:
        """None when `user` may approve or reject `request`'s server, else why not."""
        policy = self.policy(request)
        return policy.may_approve(user, request.requester, self.groups(policy))

    def may_vote_any(self, requests: Sequence[Request], user: str) -> tuple[list[Request], str]:
        """The requests (servers) `user`'s vote counts for, and why it counts for no other
        (every distinct reason, joined)."""
        counted, reasons = [], []
        for policy, members in _by_policy(requests, self.policy):
            groups = self.groups(policy)
            for request in members:
                why = policy.may_approve(user, request.requester, groups)
                if why is None:
                    counted.append(request)
                elif why not in reasons:
                    reasons.append(why)
        return counted, "; ".join(reasons)

    def tally(self, request: Request) -> Tally:
        """The approvals that count for `request`'s server under its own policy, bound to
        exactly what was requested (the fingerprint); never the requester's."""
        policy = self.policy(request)
        return self._tally(request, policy, self.groups(policy))

    def standings(self, requests: Sequence[Request]) -> list[Standing]:
        """Per policy, in the order its servers first appear: what it needs and has."""
        found = []
        for policy, members in _by_policy(requests, self.policy):
            groups = self.groups(policy)
            tallies = [self._tally(m, policy, groups) for m in members]
            weakest = min(tallies, key=lambda t: (t.met, len(t.counted)))
            found.append(
                Standing(
                    policy=policy.name,
                    servers=tuple(m.spec.server for m in members),
                    approvers=tuple(sorted(policy.approvers)),
                    approved_by=weakest.counted,
                    required=policy.required,
                    missing_groups=weakest.missing_groups,
                    expires_at=min(m.expires_at for m in members),
                    unsatisfiable=policy.unsatisfiable(members[0].requester, groups),
                    met=all(t.met for t in tallies),
                )
            )
        return found

    @staticmethod
    def closed(standings: Sequence[Standing], now: datetime) -> Standing | None:
        """The first policy whose approval window closed before it was met, if any: the
        request (the whole fleet) can no longer be approved."""
        return next((s for s in standings if not s.met and now >= s.expires_at), None)

    # -- helpers --------------------------------------------------------------------

    def _tally(self, request: Request, policy: Policy, groups: Groups) -> Tally:
        approvals = self.approvals(request.id, request.fingerprint)
        return policy.tally(approvals, request.requester, groups)


def _by_policy(
    items: Sequence[T], policy_of: Callable[[T], Policy]
) -> list[tuple[Policy, list[T]]]:
    """`items` grouped by their policy, in the order each policy first appears."""
    grouped: dict[str, tuple[Policy, list[T]]] = {}
    for item in items:
        policy = policy_of(item)
        grouped.setdefault(policy.name, (policy, []))[1].append(item)
    return list(grouped.values())


def _servers(names: Sequence[str]) -> str:
    shown = ", ".join(f"`{esc(n)}`" for n in names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")

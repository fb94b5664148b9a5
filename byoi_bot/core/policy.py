"""Approval policy: who may approve, how many approvals, until when (SPEC section 2, step 4).

Approvers are Slack user IDs (``U…``/``W…``) and user-group IDs (``S…``). Group members are
resolved by the caller (a chat adapter) and passed in as a mapping, so this module stays pure.

>>> p = Policy(approvers=frozenset({"U1", "U2"}), required=1)
>>> p.tally({"U1"}, requester="U9", groups={}).met
True
>>> p.tally({"U9"}, requester="U9", groups={}).met   # the requester never counts
False
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from fnmatch import fnmatchcase

from .change_control import Freeze, Window

Groups = Mapping[str, frozenset[str]]
DEFAULT_ACCOUNT = "default"  # the OVHcloud account of the OVH_* settings


def is_group_id(entry: str) -> bool:
    """Slack user-group IDs start with ``S``; user IDs with ``U`` or ``W``."""
    return entry.startswith("S")


@dataclass(frozen=True)
class Tally:
    """The approvals that count, against what the policy needs."""

    counted: tuple[str, ...]
    required: int
    missing_groups: tuple[str, ...] = ()

    @property
    def met(self) -> bool:
        return len(self.counted) >= self.required and not self.missing_groups


@dataclass(frozen=True)
class Policy:
    """The rules for one server-name pattern.

    `approvers` lists user and group IDs; `required` is the quorum; with
    `one_from_each_group` every group in `approvers` must contribute an approval.
    Empty `channels` / `requesters` mean: anyone, anywhere.

    Change control (`core.change_control`): deployments start only inside `windows` (any
    time when empty); `emergency_requesters` may skip windows and freezes with an
    `emergency=` reason, approved by `emergency_required` approvals (the usual quorum when
    None) and reviewed afterwards within `review_within`; `freeze_admins` may freeze.
    """

    name: str = "default"
    pattern: str = "*"
    approvers: frozenset[str] = frozenset()
    required: int = 1
    ttl: timedelta = timedelta(minutes=30)
    one_from_each_group: bool = False
    channels: frozenset[str] = frozenset()
    requesters: frozenset[str] = frozenset()
    api: str = "reinstall"
    keep_disks: tuple[int, ...] = ()  # disk groups a deploy keeps unless it says otherwise
    accounts: frozenset[str] = frozenset()  # OVHcloud accounts it applies to; empty: any
    windows: tuple[Window, ...] = ()
    emergency_requesters: frozenset[str] = frozenset()
    emergency_required: int | None = None
    review_within: timedelta = timedelta(hours=24)
    freeze_admins: frozenset[str] = frozenset()
    boot_gate: bool = True  # done only once the server answers (core.boot_gate)
    boot_timeout: timedelta = timedelta(minutes=15)  # after OVHcloud's done
    boot_ssh_port: int = 22

    @property
    def groups(self) -> tuple[str, ...]:
        """The group IDs among the approvers, sorted."""
        return tuple(sorted(a for a in self.approvers if is_group_id(a)))

    def matches(self, server: str, account: str | None = None) -> bool:
        """True when this policy applies to `server` (shell-style pattern, case-insensitive)
        of `account` (when the policy names accounts)."""
        if self.accounts and account not in self.accounts:
            return False
        return fnmatchcase(server.lower(), self.pattern.lower())

    def pool(self, groups: Groups) -> frozenset[str]:
        """Every user who may approve: listed users plus members of listed groups."""
        return _members(self.approvers, groups)

    def may_approve(self, user: str, requester: str, groups: Groups) -> str | None:
        """None when `user` may approve this request, else the reason in plain words."""
        if user == requester:
            return "you asked for this deployment; someone else has to approve it"
        if user not in self.pool(groups):
            return f"you are not an approver for policy `{self.name}`"
        return None

    def may_request(self, user: str, channel: str, groups: Groups) -> str | None:
        """None when `user` may ask for a deployment in `channel`, else the reason."""
        if self.channels and channel not in self.channels:
            return f"deployments matching `{self.pattern}` are not requested in this channel"
        if self.requesters and user not in _members(self.requesters, groups):
            return f"you are not allowed to request deployments under policy `{self.name}`"
        return None

    def may_declare_emergency(self, user: str, groups: Groups) -> str | None:
        """None when `user` may ask for an emergency override under this policy."""
        if user not in _members(self.emergency_requesters, groups):
            return (
                f"policy `{self.name}` does not let you declare an emergency "
                "(`emergency_requesters` in its [[policy]] table names who may)"
            )
        return None

    def may_freeze(self, user: str, groups: Groups) -> str | None:
        """None when `user` may freeze or unfreeze deployments under this policy."""
        if user not in _members(self.freeze_admins, groups):
            return (
                f"you are not a freeze admin of policy `{self.name}` "
                "(`freeze_admins` in its [[policy]] table)"
            )
        return None

    def for_emergency(self) -> Policy:
        """This policy as it applies to an emergency request (its reduced quorum, if any)."""
        if self.emergency_required is None:
            return self
        return replace(self, required=self.emergency_required)

    def tally(self, approvals: Iterable[str], requester: str, groups: Groups) -> Tally:
        """Count the approvals that hold: approvers only, never the requester."""
        pool = self.pool(groups)
        counted = tuple(sorted(u for u in set(approvals) if u in pool and u != requester))
        missing: tuple[str, ...] = ()
        if self.one_from_each_group:
            missing = tuple(g for g in self.groups if not set(counted) & groups.get(g, frozenset()))
        return Tally(counted, self.required, missing)

    def unsatisfiable(self, requester: str | None, groups: Groups) -> str | None:
        """Why this policy can never be met for `requester` (None when it can).

        Checked at start-up by ``byoi-bot check`` and shown on the card, so no request
        waits forever.
        """
        pool = self.pool(groups) - {requester}
        if self.required < 1:
            return f"policy `{self.name}` requires {self.required} approvals; at least 1 is needed"
        if len(pool) < self.required:
            who = "besides the requester " if requester else ""
            return (
                f"policy `{self.name}` needs {self.required} approval(s) but only "
                f"{len(pool)} approver(s) {who}exist"
            )
        if self.one_from_each_group:
            empty = [g for g in self.groups if not groups.get(g, frozenset()) - {requester}]
            if empty:
                return (
                    f"policy `{self.name}` needs one approver from group(s) "
                    f"{', '.join(empty)}, which have no eligible member"
                )
        return None


@dataclass(frozen=True)
class PolicySet:
    """Policies tried in order; the first whose pattern matches the server applies."""

    policies: tuple[Policy, ...] = field(default_factory=lambda: (Policy(),))
    freezes: tuple[Freeze, ...] = ()  # the configuration's `[[freeze]]` tables

    # The OVHcloud account of a server (set by the wiring, from the provider) for policies
    # scoped with `accounts`; None (no account, or several, list it) matches no such policy.
    account_of: Callable[[str], str | None] | None = field(default=None, compare=False)

    def for_server(self, server: str) -> Policy:
        """The policy that applies to `server` (the last one is the catch-all default)."""
        scoped = self.account_of is not None and any(p.accounts for p in self.policies)
        account = self.account_of(server) if scoped else None
        for policy in self.policies:
            if policy.matches(server, account):
                return policy
        return self.policies[-1]

    def by_name(self, name: str, server: str) -> Policy:
        """The policy called `name`; if it is gone from the configuration, `server`'s policy."""
        return next((p for p in self.policies if p.name == name), self.for_server(server))


def _members(entries: frozenset[str], groups: Groups) -> frozenset[str]:
    """The users `entries` names: its user IDs, and the members of its group IDs."""
    users = {e for e in entries if not is_group_id(e)}
    for entry in entries:
        if is_group_id(entry):
            users |= groups.get(entry, frozenset())
    return frozenset(users)

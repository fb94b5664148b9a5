"""The one authorization decision, server by server (`core.authorization`), on its own."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from core_fixtures import T0, request

from byoi_bot.core.authorization import Authorization
from byoi_bot.core.policy import Policy, PolicySet

PROD = Policy(name="prod", pattern="db*", approvers=frozenset({"U1", "S9"}), required=2,
              channels=frozenset({"C1"}), requesters=frozenset({"S8"}))  # fmt: skip
LAB = Policy(name="lab", pattern="lab*", approvers=frozenset({"U2", "U100"}))
DEFAULT = Policy(name="default", approvers=frozenset({"U3"}))
POLICIES = PolicySet((PROD, LAB, DEFAULT))


def decide(approvals: dict[str, list[str]], groups: dict[str, frozenset[str]] | None = None):
    known = groups if groups is not None else {"S8": frozenset({"U100"}), "S9": frozenset({"U4"})}

    def members(group: str) -> frozenset[str]:
        if group not in known:
            raise LookupError(group)  # Slack could not be read
        return known[group]

    return Authorization(POLICIES, lambda rid, _fp: approvals.get(rid, []), members)


def member(rid: str, server: str, policy: Policy, minutes: int = 30):
    r = request(rid, server=server)
    return replace(r, policy_name=policy.name, expires_at=T0 + timedelta(minutes=minutes))


def test_asking_is_refused_per_policy_naming_its_servers():
    auth = decide({})
    servers = ["lab1", "db1", "db2", "web1"]
    assert auth.may_request(servers, "U100", "C1") == []
    [why] = auth.may_request(servers, "U100", "C2")
    assert (
        why.startswith("`db1`, `db2` (policy `prod`): ") and "not requested in this channel" in why
    )
    assert auth.may_request(["db1"], "U7", "C1") == [
        "you are not allowed to request deployments under policy `prod`"
    ], "one server: the single request's words"


def test_an_unreadable_group_lets_nobody_in():
    auth = decide({}, groups={})
    assert "not allowed to request" in auth.may_request(["db1"], "U100", "C1")[0]
    assert auth.may_vote(member("r-1", "db1", PROD), "U4") is not None


def test_a_vote_counts_where_the_voter_is_listed_never_for_the_requester():
    auth = decide({})
    servers = [member("r-1", "db1", PROD), member("r-2", "lab1", LAB), member("r-3", "x", DEFAULT)]
    counted, why = auth.may_vote_any(servers, "U2")
    assert [r.id for r in counted] == ["r-2"]
    assert "policy `prod`" in why and "policy `default`" in why
    counted, why = auth.may_vote_any(servers, "U100")  # the requester, listed by lab
    assert counted == [] and why.startswith("you asked for this deployment")


def test_every_policy_must_be_met_and_a_window_closes_per_policy():
    servers = [member("r-1", "db1", PROD, 60), member("r-2", "lab1", LAB, 10)]
    auth = decide({"r-1": ["U1", "U4"], "r-2": []})
    prod, lab = auth.standings(servers)
    assert (prod.met, lab.met) == (True, False)
    assert (prod.approved_by, prod.required) == (("U1", "U4"), 2)
    assert Authorization.closed([prod, lab], T0 + timedelta(minutes=9)) is None
    assert Authorization.closed([prod, lab], T0 + timedelta(minutes=10)) == lab
    auth = decide({"r-1": ["U1"], "r-2": ["U2"]})
    prod, lab = auth.standings(servers)
    assert Authorization.closed([prod, lab], T0 + timedelta(minutes=30)) is None, "lab was met"
    assert Authorization.closed([prod, lab], T0 + timedelta(minutes=60)) == prod


def test_a_policy_is_met_only_when_every_one_of_its_servers_is():
    """An approval bound to another spec (a changed server) does not count for it."""
    servers = [member("r-1", "lab1", LAB), member("r-2", "lab2", LAB)]
    [lab] = decide({"r-1": ["U2"]}).standings(servers)
    assert not lab.met and lab.approved_by == () and lab.servers == ("lab1", "lab2")

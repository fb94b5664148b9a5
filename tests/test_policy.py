"""Approval policy: approvers, groups, quorum, requester exclusion, satisfiability."""

from datetime import timedelta

from byoi_bot.core.policy import Policy, PolicySet

GROUPS = {"SOPS": frozenset({"U1", "U2"}), "SDBA": frozenset({"U3"})}


def test_requester_never_counts_even_when_an_approver():
    policy = Policy(approvers=frozenset({"U1", "U2"}), required=1)
    assert not policy.tally({"U1"}, requester="U1", groups={}).met
    assert policy.tally({"U1", "U2"}, requester="U1", groups={}).counted == ("U2",)


def test_quorum_counts_only_approvers():
    policy = Policy(approvers=frozenset({"U1", "U2", "U3"}), required=2)
    assert not policy.tally({"U1", "U9"}, requester="U0", groups={}).met
    assert policy.tally({"U1", "U3"}, requester="U0", groups={}).met


def test_group_members_are_approvers():
    policy = Policy(approvers=frozenset({"SOPS"}))
    assert policy.may_approve("U2", requester="U0", groups=GROUPS) is None
    assert "not an approver" in policy.may_approve("U3", requester="U0", groups=GROUPS)
    assert "someone else" in policy.may_approve("U1", requester="U1", groups=GROUPS)


def test_one_approver_from_each_group():
    policy = Policy(approvers=frozenset({"SOPS", "SDBA"}), required=2, one_from_each_group=True)
    two_ops = policy.tally({"U1", "U2"}, requester="U0", groups=GROUPS)
    assert not two_ops.met and two_ops.missing_groups == ("SDBA",)
    assert policy.tally({"U1", "U3"}, requester="U0", groups=GROUPS).met


def test_unsatisfiable_policies_are_reported():
    lonely = Policy(name="prod", approvers=frozenset({"U1"}), required=1)
    assert lonely.unsatisfiable("U2", {}) is None
    reason = lonely.unsatisfiable("U1", {})
    assert reason and "prod" in reason and "needs 1" in reason
    assert "needs 3" in Policy(approvers=frozenset({"U1", "U2"}), required=3).unsatisfiable(
        None, {}
    )
    each = Policy(approvers=frozenset({"SOPS", "SDBA"}), one_from_each_group=True)
    assert "SDBA" in each.unsatisfiable("U3", GROUPS)
    assert "at least 1" in Policy(approvers=frozenset({"U1"}), required=0).unsatisfiable(None, {})


def test_channels_and_requesters_restrict_who_may_ask():
    policy = Policy(channels=frozenset({"C1"}), requesters=frozenset({"U5", "SDBA"}))
    assert policy.may_request("U5", "C1", GROUPS) is None
    assert policy.may_request("U3", "C1", GROUPS) is None
    assert "not requested in this channel" in policy.may_request("U5", "C2", GROUPS)
    assert "not allowed to request" in policy.may_request("U9", "C1", GROUPS)


def test_first_matching_pattern_wins_and_default_catches_the_rest():
    prod = Policy(name="prod", pattern="*.prod.example.net", required=2, ttl=timedelta(hours=1))
    default = Policy()
    policies = PolicySet((prod, default))
    assert policies.for_server("NS1.PROD.example.net") is prod
    assert policies.for_server("ns1.lab.example.net") is default
    assert policies.by_name("prod", "anything") is prod
    assert policies.by_name("gone", "ns1.prod.example.net") is prod, "the server's policy"
    assert policies.by_name("gone", "lab1.example.net") is default

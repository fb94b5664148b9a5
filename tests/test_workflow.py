"""Workflow rules behind the chat: cancel rights, reconciliation after a crash, late votes."""

import pytest
from bot_harness import APPROVER, OUTSIDER, REQUESTER, BotHarness

from byoi_bot.core.outbox import Courier
from byoi_bot.core.posts import RetryLater
from byoi_bot.core.request import DeploySpec
from byoi_bot.core.service import Refused
from byoi_bot.core.states import State
from byoi_bot.ovhcloud.client import make_client
from byoi_bot.simulator import DEMO_CREDENTIALS

SERVER = "ns1001.ip-51-75-1.eu"


@pytest.fixture
def h(tmp_path, db_location):
    harness = BotHarness(tmp_path, db=db_location)
    yield harness
    harness.close()


def new_request(h, hold=False):
    if hold:
        h.bot.deployments.on_approved = lambda request: None  # approved, not yet submitted
    spec = DeploySpec(
        server=SERVER,
        image_url=f"{h.images.base_url}/debian-12.qcow2",
        image_type="qcow2",
        efi_bootloader="x.efi",
    )
    return h.bot.deployments.request(spec, REQUESTER, "C0OPS")


def test_pending_requests_are_cancelled_by_the_requester_or_an_approver_only(h):
    d = h.bot.deployments
    r = new_request(h)
    with pytest.raises(Refused, match="Only the requester or an approver"):
        d.cancel(r.id, OUTSIDER)
    assert "is cancelled" in d.cancel(r.id, REQUESTER)
    assert h.bot.store.get(r.id).state is State.CANCELLED
    with pytest.raises(Refused, match="nothing to cancel"):
        d.cancel(r.id, APPROVER)


def test_a_running_deploy_needs_an_approver_to_cancel(h):
    d = h.bot.deployments
    r = new_request(h)
    d.approve(r.id, APPROVER)
    assert h.bot.store.get(r.id).state is State.DEPLOYING
    with pytest.raises(Refused, match="needs an approver other than the requester"):
        d.cancel(r.id, REQUESTER)
    assert "is cancelled" in d.cancel(r.id, APPROVER)
    assert h.bot.store.get(r.id).state is State.CANCELLED
    task = h.bot.store.get(r.id).provider_handle.split(":")[1]
    cancels = [c for c in h.simulator.calls() if c["path"].endswith(f"/task/{task}/cancel")]
    assert [c["status"] for c in cancels] == [200]
    task_view = make_client(h.endpoint, timeout=(2, 5), **DEMO_CREDENTIALS).get(
        f"/dedicated/server/{SERVER}/task/{task}"
    )
    assert task_view["status"] == "cancelled"


def test_a_reinstall_writing_its_image_cannot_be_cancelled_and_says_so(h):
    d = h.bot.deployments
    r = new_request(h)
    d.approve(r.id, APPROVER)
    h.poll(advance=30)  # 60 s deploys: "Write image to disk" runs from 25.7 s to 34.3 s
    with pytest.raises(Refused) as info:
        d.cancel(r.id, APPROVER)
    assert "refused to cancel" in info.value.reasons[0]
    assert "being written" in info.value.reasons[0], "OVHcloud's own words are quoted"
    assert h.bot.store.get(r.id).state is State.DEPLOYING


def test_unknown_request_ids_are_explained(h):
    with pytest.raises(Refused, match="No request `r-nope22`"):
        h.bot.deployments.cancel("r-nope22", REQUESTER)


def test_a_submission_that_never_reached_ovhcloud_fails_honestly_after_a_restart(h):
    d = h.bot.deployments
    r = new_request(h, hold=True)
    d.approve(r.id, APPROVER)
    h.bot.store.transition(r.id, State.APPROVED, State.SUBMITTING, "test", "crash before POST")
    h.restart()
    h.bot.deployments.reconcile()
    after = h.bot.store.get(r.id)
    assert after.state is State.FAILED and h.starts() == 0
    assert any("never reached it" in t for t in h.thread(after.message_ts))


def test_a_submission_that_did_reach_ovhcloud_is_adopted_after_a_restart(h):
    d = h.bot.deployments
    r = new_request(h, hold=True)
    d.approve(r.id, APPROVER)
    _, secrets = h.bot.store.transition(
        r.id, State.APPROVED, State.SUBMITTING, "test", "crash after POST", take_secrets=True
    )
    d.provider.start(r.spec.with_secrets(secrets))  # the POST happened, then the crash
    h.restart()
    h.bot.deployments.reconcile()
    after = h.bot.store.get(r.id)
    assert after.state is State.DEPLOYING and after.provider_handle.startswith("reinstall:")
    assert h.starts() == 1
    h.poll(advance=120)
    assert h.bot.store.get(r.id).state is State.DONE


def test_votes_after_the_decision_are_answered_not_counted(h):
    d = h.bot.deployments
    r = new_request(h)
    d.reject(r.id, APPROVER)
    d.approve(r.id, "U0CAROL")
    h.slack.wait_for_call("chat.postEphemeral", where=lambda c: c.args["user"] == "U0CAROL")
    assert h.bot.store.get(r.id).state is State.REJECTED
    assert h.bot.store.approvals(r.id, r.fingerprint) == []


def test_the_requesters_own_reject_cancels(h):
    r = new_request(h)
    h.bot.deployments.reject(r.id, REQUESTER)
    assert h.bot.store.get(r.id).state is State.CANCELLED


def test_audit_trail_of_a_whole_deployment(h, capsys, monkeypatch):
    from byoi_bot.cli import main

    d = h.bot.deployments
    r = new_request(h)
    d.approve(r.id, APPROVER)
    h.poll(advance=120)
    rows = h.bot.store.audit(r.id)
    assert [(a["from_state"], a["to_state"]) for a in rows if a["action"] == "transition"] == [
        ("pending_approval", "approved"),
        ("approved", "submitting"),
        ("submitting", "deploying"),
        ("deploying", "booting"),
        ("booting", "done"),
    ]
    assert rows[0]["actor"] == REQUESTER and rows[1]["actor"] == APPROVER
    monkeypatch.setenv("BYOI_DB", h.db)
    assert main(["audit", r.id]) == 0
    text = capsys.readouterr().out
    assert "deploying -> booting" in text and "booting -> done" in text and APPROVER in text
    assert main(["audit", "--json"]) == 0
    assert '"to_state": "done"' in capsys.readouterr().out
    assert main(["audit", "r-none22"]) == 1


def test_reconciliation_leaves_a_start_call_in_progress_alone(h):
    import threading
    import time

    d = h.bot.deployments
    r = new_request(h)
    h.simulator.inject(delay_seconds=1.5, method="POST", paths="/dedicated/server/*/reinstall")
    approving = threading.Thread(target=d.approve, args=(r.id, APPROVER))
    approving.start()
    deadline = time.monotonic() + 5
    while h.bot.store.get(r.id).state is not State.SUBMITTING and time.monotonic() < deadline:
        time.sleep(0.01)  # observable condition: the store's state
    assert h.bot.store.get(r.id).state is State.SUBMITTING
    d.reconcile()  # the expiry sweep runs this every 10 s
    assert h.bot.store.get(r.id).state is State.SUBMITTING
    approving.join(10)
    assert h.bot.store.get(r.id).state is State.DEPLOYING and h.starts() == 1
    assert sum("started at OVHcloud" in t for t in h.thread(r.message_ts or "")) <= 1


def test_two_approvers_at_once_make_one_approval_transition_and_one_start(h):
    import threading

    d = h.bot.deployments
    r = new_request(h)
    barrier = threading.Barrier(2)

    def approve(user):
        barrier.wait()
        d.approve(r.id, user)

    threads = [threading.Thread(target=approve, args=(u,)) for u in (APPROVER, "U0CAROL")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    approved = [a for a in h.bot.store.audit(r.id) if a["to_state"] == "approved"]
    assert len(approved) == 1 and h.starts() == 1
    assert h.bot.store.get(r.id).state is State.DEPLOYING


def test_a_sweep_at_the_worst_moment_never_fails_a_start_under_way(h):
    d = h.bot.deployments
    r = new_request(h)
    real_start = d.provider.start

    def start_after_a_sweep(spec):
        d.reconcile()  # the 10 s sweep runs between `submitting` and the POST
        return real_start(spec)

    d.provider.start = start_after_a_sweep
    d.approve(r.id, APPROVER)
    assert h.bot.store.get(r.id).state is State.DEPLOYING and h.starts() == 1
    assert not any("never reached" in t for t in h.thread(r.message_ts))


def test_an_unexpected_error_in_the_last_checks_fails_the_request_cleanly(h):
    d = h.bot.deployments
    r = new_request(h)

    def broken(spec, facts):
        raise UnicodeEncodeError("ascii", "é", 0, 1, "a redirect to a non-ASCII path")

    d.inspector.inspect = broken
    d.approve(r.id, APPROVER)
    after = h.bot.store.get(r.id)
    assert after.state is State.FAILED and h.starts() == 0
    assert any("could not run" in t for t in h.thread(r.message_ts))


def test_a_request_past_its_expiry_cannot_be_approved_before_the_sweep(h):
    d = h.bot.deployments
    r = new_request(h)
    h.clock.advance(31 * 60)
    d.approve(r.id, APPROVER)
    assert h.bot.store.get(r.id).state is State.EXPIRED and h.starts() == 0


def test_a_cancel_that_loses_the_race_says_so(h):
    d = h.bot.deployments
    r = new_request(h, hold=True)
    d.approve(r.id, APPROVER)  # approved, held back (as if scheduled)
    real_transition = h.bot.store.transition

    def submitted_meanwhile(request_id, expected, to, *args, **kwargs):
        if to is State.CANCELLED:  # the date job got there first
            real_transition(request_id, State.APPROVED, State.SUBMITTING, "byoi-bot", "race")
        return real_transition(request_id, expected, to, *args, **kwargs)

    h.bot.store.transition = submitted_meanwhile
    with pytest.raises(Refused, match="is submitting; there is nothing to cancel"):
        d.cancel(r.id, REQUESTER)
    assert h.bot.store.get(r.id).state is State.SUBMITTING


def test_a_renamed_policy_falls_back_to_the_servers_policy_not_the_default(tmp_path):
    config = tmp_path / "byoi.toml"
    config.write_text('[[policy]]\nname = "prod"\npattern = "ns1001*"\nrequired_approvals = 2\n')
    h = BotHarness(tmp_path, extra_env={"BYOI_CONFIG": str(config)})
    try:
        r = new_request(h)
        h.bot.store.db.execute("UPDATE requests SET policy_name = 'renamed' WHERE id = ?", [r.id])
        h.bot.deployments.approve(r.id, APPROVER)
        assert h.bot.store.get(r.id).state is State.PENDING_APPROVAL, "still needs 2"
    finally:
        h.close()


def test_a_card_is_never_redrawn_with_an_older_state(h):
    """A sender that read the request before a newer card was drawn (another replica's, just
    deposed) leaves the card alone."""
    d = h.bot.deployments
    r = new_request(h, hold=True)
    stale = h.bot.store.get(r.id)  # as a slow replica read it, before the approval
    d.approve(r.id, APPROVER)  # the harness sends the card edit at once
    card = h.slack.message("C0OPS", r.message_ts)
    assert "approved" in str(card["blocks"]).lower()
    updates = len(h.slack.calls_to("chat.update"))
    h.bot.courier._draw(stale)
    assert len(h.slack.calls_to("chat.update")) == updates
    assert h.slack.message("C0OPS", r.message_ts) == card


def test_a_card_edit_the_chat_refused_is_drawn_by_the_retry(h):
    class RefusesOnce:
        def __init__(self):
            self.drawn, self.refuse = [], True

        def update_card(self, view):
            if self.refuse:
                self.refuse = False
                raise RetryLater(1)
            self.drawn.append(view.request.version)

    r = new_request(h, hold=True)
    h.bot.store.update(r.id, last_status="a newer version")
    request = h.bot.store.get(r.id)
    chat = RefusesOnce()
    courier = Courier(h.bot.store, h.bot.store, chat, h.bot.deployments.card)
    with pytest.raises(RetryLater):
        courier._draw(request)
    courier._draw(request)
    assert chat.drawn == [request.version]

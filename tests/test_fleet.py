"""Deploys to many servers: one card, one approval, a canary, waves, stop on failure, resume.

The bot, the fake Slack and the simulator are the story harness's; the rollout job
(`fleets.advance_all`) and the poller are run by the test, on the shared fake clock. The
stories run on each store (SQLite, PostgreSQL: `db_location`).
"""

from __future__ import annotations

import pytest
from bot_harness import APPROVER, APPROVER_2, CHANNEL, REQUESTER, BotHarness
from raw_sql import column

from byoi_bot.core.fleet import FleetState, Rollout, to_start, waves
from byoi_bot.core.states import State

OK1, FAILS, OK3, BROKEN, OK5 = (
    "ns1001.ip-51-75-1.eu",
    "ns2002.ip-51-75-2.eu",  # its installation fails (inventory)
    "ns3003.ip-51-75-3.eu",
    "ns4004.ip-51-75-4.eu",  # in state `error`: refused at preflight
    "ns5005.ip-149-56-5.net",
)


@pytest.fixture
def harness(tmp_path, db_location):
    h = BotHarness(tmp_path, extra_env={"BYOI_FLEET_LIMIT": "4"}, db=db_location)
    yield h
    h.close()


def ask(h: BotHarness, servers: str, extra: str = "") -> dict:
    url = f"{h.images.base_url}/debian-12.qcow2"
    h.slash(f"deploy {servers} {url} efi-bootloader=x.efi {extra}")
    h.wait_answer("Fleet request")
    return h.wait_card()


def tick(h: BotHarness, seconds: float = 0) -> None:
    """Time passes; the poller and the rollout job run once, as the scheduler would."""
    h.poll(advance=seconds)
    h.bot.fleets.advance_all()


def fleet(h: BotHarness):
    return h.bot.store.fleets_in_states(list(FleetState))[-1]


def started(h: BotHarness) -> list[str]:
    return [
        c["path"].split("/")[4]
        for c in h.simulator.calls()
        if c["method"] == "POST" and c["path"].endswith("/reinstall")
    ]


def test_one_card_one_approval_a_canary_then_waves(harness):
    h = harness
    card = ask(h, f"{OK1},{OK3},{OK5},{BROKEN}", "parallel=2 canary=1")
    answer = h.wait_answer("Fleet request")
    assert "3 ready, 1 refused" in answer and BROKEN in answer
    assert len(h.cards()) == 1 and started(h) == []
    blocks = str(card["blocks"])
    assert OK1 in blocks and OK5 in blocks and "Left out (1)" in blocks
    assert "(not the requester) under policy `default`; one approval covers every server" in blocks
    assert "React ✅ to approve or ❌ to reject. Expires <!date^" in blocks

    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "Started:")
    assert started(h) == [OK1], "the canary alone"
    tick(h, 30)
    assert started(h) == [OK1], "the others wait for the canary to be done"
    tick(h, 60)  # the canary is done: the next wave starts, two at once
    assert sorted(started(h)) == sorted([OK1, OK3, OK5])
    tick(h, 120)
    tick(h, 0)
    f = fleet(h)
    assert f.state is FleetState.DONE
    members = h.bot.store.fleet_members(f)
    assert [m.state for m in members] == [State.DONE] * 3
    thread = h.thread(card["ts"])
    assert [t for t in thread if t.startswith("▶️")] == [
        f"▶️ Started: `{OK1}`",
        f"▶️ Started: `{OK3}`, `{OK5}`",
    ]
    assert sum(t.startswith("✅ `") for t in thread) == 3
    assert sum("Wave" in t for t in thread) == 2 and "Rollout finished" in thread[-1]
    assert len(thread) <= 2 * 3 + 2, thread  # goal: 2 posts per server and 1 per wave
    [sent] = column(
        h.bot.store,
        "SELECT COUNT(*) FROM outbox WHERE request_id = ? AND kind = 'reply' AND state = 'sent'",
        [f.id],
    )
    assert sent == len(thread), "every thread post went through the outbox"


def test_stop_on_failure_starts_nothing_new_and_says_so(harness):
    h = harness
    card = ask(h, f"{FAILS},{OK1},{OK3}", "parallel=1")
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "Started:")
    tick(h, 200)
    tick(h, 0)
    assert started(h) == [FAILS]
    f = fleet(h)
    assert f.state is FleetState.STOPPED
    states = [m.state for m in h.bot.store.fleet_members(f)]
    assert states == [State.FAILED, State.CANCELLED, State.CANCELLED]
    thread = h.wait_thread(card["ts"], "Rollout stopped")
    assert any("failed" in t and FAILS in t for t in thread)
    assert "2 not started" in thread[-1]


def test_a_glob_is_expanded_and_a_huge_or_empty_match_is_refused(harness):
    h = harness
    h.slash('deploy servers="ns*" https://images.example.net/a.qcow2')
    assert "6 servers: more than the 4" in h.wait_answer("BYOI_FLEET_LIMIT")
    h.slash('deploy servers="db-*" https://images.example.net/a.qcow2')
    assert "No server of the account matches `db-*`" in h.wait_answer("No server")
    card = ask(h, 'servers="ns[13]*"')
    assert "`ns[13]*` → 2 servers" in str(card["blocks"])


def test_a_restart_mid_rollout_resumes_without_a_second_start(harness):
    h = harness
    card = ask(h, f"{OK1},{OK3},{OK5}", "parallel=1")
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "Started:")
    h.restart()  # the process dies; a new one starts on the same store
    h.bot.start()  # reconciles and re-plans: a fleet's approved servers wait for the rollout
    h.bot.jobs.scheduler.shutdown(wait=True)  # the test runs the jobs itself
    assert started(h) == [OK1]
    tick(h, 120)
    tick(h, 120)
    tick(h, 120)
    tick(h, 0)
    assert sorted(started(h)) == sorted([OK1, OK3, OK5]), "each server started exactly once"
    assert fleet(h).state is FleetState.DONE


def test_cancel_stops_new_installs_and_the_requester_may_withdraw(harness):
    h = harness
    card = ask(h, f"{OK1},{OK3}", "parallel=1")
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "Started:")
    f = fleet(h)
    h.slash(f"cancel {f.id}", user=REQUESTER)
    assert "1 running installation(s) finish" in h.wait_answer("is cancelled")
    tick(h, 200)
    assert started(h) == [OK1]
    assert fleet(h).state is FleetState.CANCELLED
    thread = h.wait_thread(card["ts"], "done in")
    assert any(t.startswith(f"✅ `{OK1}` done") for t in thread), "still followed"
    assert h.slack.messages(channel=CHANNEL)  # the card is still there


def test_an_approver_cancels_the_running_installations_too(harness):
    h = harness
    card = ask(h, f"{OK1},{OK3},{OK5}", "parallel=2")
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "Started:")
    h.slash(f"cancel {fleet(h).id}", user=APPROVER_2)
    answer = h.wait_answer("Cancelled at OVHcloud", user=APPROVER_2)
    assert OK1 in answer and OK3 in answer
    cancels = [c for c in h.simulator.calls() if c["path"].endswith("/cancel")]
    assert len(cancels) == 2 and sorted(started(h)) == sorted([OK1, OK3])
    tick(h, 10)
    members = h.bot.store.fleet_members(fleet(h))
    assert [m.state for m in members] == [State.CANCELLED] * 3
    assert sum(t.startswith("🔥") for t in h.thread(card["ts"])) == 2


# -- the pure rules ------------------------------------------------------------------------


def test_never_more_than_parallel_and_canaries_first():
    r = Rollout(parallel=3, canary=2)
    s = State
    assert to_start([s.APPROVED] * 6, r) == [0, 1]
    assert to_start([s.DONE, s.DEPLOYING] + [s.APPROVED] * 4, r) == []
    assert to_start([s.DONE, s.DONE, s.DEPLOYING] + [s.APPROVED] * 3, r) == [3, 4]
    assert to_start([s.DONE, s.FAILED] + [s.APPROVED] * 4, r) == []
    assert to_start([s.DONE, s.FAILED] + [s.APPROVED] * 4, Rollout(3, 0, False)) == [2, 3, 4]
    assert [list(w) for w in waves(6, r)] == [[0, 1], [2, 3, 4], [5]]


def test_status_of_a_fleet_lists_its_servers(harness):
    h = harness
    ask(h, f"{OK1},{OK3}")
    h.slash(f"status {fleet(h).id}")
    answer = h.wait_answer("2 servers")
    assert OK1 in answer and OK3 in answer and "Pending approval" in answer


def test_the_image_is_read_once_for_the_whole_set(harness, monkeypatch):
    h = harness
    inspector = h.bot.deployments.inspector.inner  # the HTTP inspector, under the metrics
    reads: list[str] = []
    read = inspector._inspect_image

    def counted(spec):
        reads.append(spec.server)
        return read(spec)

    monkeypatch.setattr(inspector, "_inspect_image", counted)
    card = ask(h, f"{OK1},{OK3},{OK5}")
    assert len(reads) == 1, "one read of the image; each server's checks from it"
    members = h.bot.store.fleet_members(fleet(h))
    assert all(m.image_facts.get("format") == "qcow2" for m in members)
    assert "3 servers" in str(card["blocks"])


def test_the_card_shows_each_warning_once_with_its_count():
    from datetime import timedelta

    from core_fixtures import T0, request

    from byoi_bot.core.authorization import Standing
    from byoi_bot.core.fleet import Fleet
    from byoi_bot.core.ports import FleetView
    from byoi_bot.slack.fleet_card import fleet_blocks

    warning = {"name": "ram", "severity": "warning", "message": "The image is <big>"}
    members = tuple(
        request(f"r-m{i}", server=f"web-{i}.example.net", state=State.PENDING_APPROVAL)
        for i in range(3)
    )
    for m in members[:2]:
        m.checks = [warning]
    f = Fleet("f-abcdef", REQUESTER, CHANNEL, FleetState.PENDING_APPROVAL, T0,
              T0 + timedelta(hours=1), "default", tuple(m.spec.server for m in members),
              Rollout(2, 1), refused=(("db-1.example.net", "busy"),))  # fmt: skip
    standing = Standing("default", f.servers, (APPROVER,), (), 1, (), f.expires_at, None, False)
    view = FleetView(f, members, (standing,), "status")
    text = str(fleet_blocks(view)[0])
    assert "⚠️ The image is &lt;big&gt; (2 servers)" in text
    assert "Left out (1)" in text and "w1 " in text and "web-2.example.net" in text


def test_one_server_of_a_fleet_cannot_be_approved_on_its_own(harness):
    h = harness
    ask(h, f"{OK1},{OK3}")
    member = h.bot.store.fleet_members(fleet(h))[0]
    h.bot.deployments.approve(member.id, APPROVER)  # as an App Home button would
    h.bot.deployments.reject(member.id, APPROVER)
    assert h.bot.store.get(member.id).state is State.PENDING_APPROVAL and started(h) == []
    told = [m["text"] for m in h.slack.messages(CHANNEL) if m.get("to_user") == APPROVER]
    assert len(told) == 2 and all("vote on the fleet's card" in t for t in told)
    from byoi_bot.core.home import home_of

    assert home_of(h.bot.deployments, APPROVER, lambda: True).to_approve == []


def test_a_fleet_in_a_channel_the_bot_cannot_post_in_is_explained(harness):
    h = harness
    h.slack.fail_next("chat.postMessage", error="not_in_channel", status=200)
    url = f"{h.images.base_url}/debian-12.qcow2"
    h.slash(f"deploy {OK1},{OK3} {url} efi-bootloader=x.efi")
    assert "/invite @byoi-bot" in h.wait_answer("/invite @byoi-bot")
    assert fleet(h).state is FleetState.CANCELLED and h.starts() == 0

"""APScheduler jobs: the poller runs on its interval; jobs are rebuilt from the store at start."""

from datetime import UTC, datetime, timedelta

import pytest
from bot_harness import APPROVER, CHANNEL, BotHarness

from byoi_bot.core.states import State

SERVER = "ns1001.ip-51-75-1.eu"


@pytest.fixture
def harness(tmp_path, db_location):
    h = BotHarness(tmp_path, extra_env={"BYOI_POLL_SECONDS": "1"}, db=db_location)
    yield h
    h.close()


def request_card(h, extra=""):
    h.slash(f"deploy {SERVER} {h.images.base_url}/debian-12.qcow2 efi-bootloader=x.efi {extra}")
    return h.wait_card()


def test_the_poll_job_follows_a_deployment_to_the_end(harness):
    h = harness
    card = request_card(h)
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "started at OVHcloud")
    h.sim_clock.advance(120)
    h.clock.advance(120)
    h.bot.start()  # APScheduler now polls every second
    h.slack.wait_for(lambda: any("is done in" in t for t in h.thread(card["ts"])), timeout=10)
    assert h.bot.store.recent(1)[0].state is State.DONE
    assert h.bot.jobs.scheduler.get_job("poll").trigger.interval.total_seconds() == 1


def test_start_rebuilds_scheduled_deploys_and_resumes_in_flight_ones(harness):
    h = harness
    at = h.clock.now() + timedelta(hours=3)  # relative to the bot's clock, never to today
    scheduled = request_card(h, f"at={at:%Y-%m-%dT%H:%M:%SZ}")
    h.react(APPROVER, ts=scheduled["ts"])
    h.wait_thread(scheduled["ts"], "Scheduled")
    request = h.bot.store.recent(1)[0]
    h.restart()
    h.bot.start()
    job = h.bot.jobs.scheduler.get_job(f"submit:{request.id}")
    assert job is not None
    delay = job.next_run_time - datetime.now(UTC)  # APScheduler runs on the wall clock
    assert timedelta(hours=2, minutes=59) < delay <= timedelta(hours=3), delay
    assert h.bot.store.get(request.id).state is State.APPROVED and h.starts() == 0
    assert sum("Scheduled" in t for t in h.thread(scheduled["ts"])) == 1, "not announced twice"


def test_expiry_sweep_is_scheduled(harness):
    h = harness
    h.bot.start()
    assert h.bot.jobs.scheduler.get_job("expire") is not None
    assert h.slack.messages(channel=CHANNEL) == []


def test_one_replica_runs_the_background_work_and_another_takes_over(tmp_path, postgres_dsn):
    first = BotHarness(tmp_path / "first", extra_env={"BYOI_POLL_SECONDS": "1"}, db=postgres_dsn)
    second = BotHarness(tmp_path / "second", extra_env={"BYOI_POLL_SECONDS": "1"}, db=postgres_dsn)
    try:
        first.bot.start()
        second.bot.start()
        jobs = {"poll", "poll-retries", "expire", "rollout"}
        assert {j.id for j in first.bot.jobs.scheduler.get_jobs()} == jobs
        assert first.bot.sender.running
        assert second.bot.jobs.scheduler.get_jobs() == [], "background work runs once"
        assert not second.bot.sender.running, "one outbox sender"
        first.bot.jobs.stop()  # the leader goes; its lock goes with its session
        second.slack.wait_for(lambda: second.bot.jobs.scheduler.get_job("poll"), timeout=5)
        assert {j.id for j in second.bot.jobs.scheduler.get_jobs()} >= jobs
        assert second.bot.sender.running and not first.bot.sender.running
    finally:
        second.close()
        first.close()

"""The poller: a bounded pool, no overlap per deployment, retries planned, 429 honoured.

A real bot (store, `ReinstallProvider` over `ovh.Client`, Slack over slack_sdk) follows a few
deployments on the simulator; time is the shared fake clock, except the simulator's answer
latency and held answers, which are real so that polls really overlap.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import wait
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bot_harness import SECRET
from fakes.slack_api import FakeSlack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from benchlib import APPROVER, FrozenClock, inventory, seed_deploying, server_names

from byoi_bot.config import Settings
from byoi_bot.core.states import State
from byoi_bot.ovhcloud.client import make_client
from byoi_bot.ovhcloud.provider import ReinstallProvider
from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator
from byoi_bot.slack.modes import build_slack_bot


class Fleet:
    """`count` deploying requests, a bot with `workers` poll workers, and their services."""

    def __init__(self, tmp_path: Path, count: int, workers: int, latency: float = 0.0) -> None:
        self.clock = FrozenClock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
        servers = inventory(count)
        self.servers = server_names(servers)
        self.simulator = Simulator(servers, 700.0, self.clock.monotonic, DEMO_CREDENTIALS)
        self.simulator.start("127.0.0.1", 0)
        self.slack = FakeSlack().start()
        settings = Settings.load(
            {
                "BYOI_DB": str(tmp_path / "byoi.db"),
                "BYOI_APPROVERS": APPROVER,
                "BYOI_POLL_WORKERS": str(workers),
                "SLACK_BOT_TOKEN": self.slack.bot_token,
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": self.slack.base_url,
            }
        )
        client = make_client(self.simulator.url, timeout=(2, 10), **DEMO_CREDENTIALS)
        self.provider = ReinstallProvider(client)
        self.bot, _ = build_slack_bot(settings, provider=self.provider, clock=self.clock)
        seeded = seed_deploying(self.bot.deployments, self.provider, self.servers, self.clock)
        self.ids = {r.spec.server: r.id for r in seeded}
        self.simulator.latency = latency

    def status_reads(self, server: str | None = None) -> int:
        return sum(
            1
            for c in self.simulator.calls()
            if c["path"].endswith("/install/status") and (server is None or server in c["path"])
        )

    def close(self) -> None:
        self.bot.stop()
        self.simulator.stop()
        self.slack.stop()


@pytest.fixture
def fleet(tmp_path):
    made: list[Fleet] = []

    def make(count: int, workers: int, latency: float = 0.0) -> Fleet:
        made.append(Fleet(tmp_path, count, workers, latency))
        return made[-1]

    yield make
    for f in made:
        f.close()


def test_polls_run_concurrently_never_above_the_configured_workers(fleet):
    f = fleet(count=9, workers=3, latency=0.15)
    running, peak, lock = 0, 0, threading.Lock()
    progress = f.provider.progress

    def counted(server, handle):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            return progress(server, handle)
        finally:
            with lock:
                running -= 1

    f.provider.progress = counted
    f.bot.poller.poll_all()
    assert peak == 3
    assert f.status_reads() == 9, "one OVHcloud call per deployment"


def test_a_slow_server_delays_no_other_and_is_never_polled_twice_at_once(fleet):
    f = fleet(count=4, workers=4)
    slow, *others = f.servers
    path = f"/dedicated/server/{slow}/install/status"
    f.simulator.inject(delay_seconds=5, method="GET", paths=path, count=1)
    first = f.bot.poller.cycle()
    wait([future for rid, future in first.items() if rid != f.ids[slow]])
    second = f.bot.poller.cycle()
    assert set(second) == {f.ids[s] for s in others}, "the slow one is still being polled"
    wait(second.values())
    assert f.bot.poller.in_flight() == {f.ids[slow]}, "the others were done meanwhile"
    wait(first.values())
    assert f.status_reads(slow) == 1
    assert all(f.status_reads(s) == 2 for s in others)


def test_a_failed_read_is_retried_on_its_own_schedule_not_in_place(fleet):
    f = fleet(count=2, workers=2)
    failing, fine = f.servers
    f.simulator.inject(read_errors={"status": 503, "count": 1}, server=failing)
    f.bot.poller.poll_all()
    plan = f.bot.poller.plan
    assert (plan.next_try(f.ids[failing]) - f.clock.now()).total_seconds() == 2
    assert f.bot.poller.retry_due() == {}, "not due yet"
    f.clock.advance(2)
    wait(f.bot.poller.retry_due().values())
    assert f.status_reads(failing) == 2 and f.status_reads(fine) == 1
    assert plan.next_try(f.ids[failing]) is None, "back to the normal cycle"
    assert f.bot.store.get(f.ids[failing]).state is State.DEPLOYING


def test_a_429_pauses_every_poll_for_its_retry_after(fleet):
    f = fleet(count=3, workers=1)
    f.simulator.inject(read_errors={"status": 429, "count": 1, "retry_after": 30})
    f.bot.poller.poll_all()
    before = f.status_reads()
    assert f.bot.poller.plan.paused()
    f.clock.advance(29)
    f.bot.poller.poll_all()
    wait(f.bot.poller.retry_due().values())
    assert f.status_reads() == before, "no call to OVHcloud while it asks to wait"
    f.clock.advance(1)
    f.bot.poller.poll_all()
    assert f.status_reads() == before + 3
    assert not f.bot.poller.plan.paused()


def test_a_replica_that_loses_the_lead_polls_nothing_until_it_leads_again(fleet):
    f = fleet(count=2, workers=2)
    f.bot.poller.pause()  # `Jobs._follow`: another replica leads
    assert f.bot.poller.cycle() == {} and f.status_reads() == 0
    f.bot.poller.resume()  # `Jobs._lead`
    wait(f.bot.poller.cycle().values())
    assert f.status_reads() == 2

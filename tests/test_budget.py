"""A budget, not a race: calls per account in any 60-s window, commands first, 429s shrink it,
and the poller spends what is left evenly (where it spends it: `test_poll_plan.py`)."""

from __future__ import annotations

import random
from concurrent.futures import wait
from datetime import UTC, datetime, timedelta

import ovh.exceptions as E
import pytest
from core_fixtures import request

from byoi_bot.core.budget import COMMAND, POLL, CallBudget, polling
from byoi_bot.core.messages import card_status
from byoi_bot.core.poll_plan import PollPlan
from byoi_bot.core.progress import Phase, Progress
from byoi_bot.core.states import State
from byoi_bot.ovhcloud.client import make_client, with_budget
from byoi_bot.poller import Poller
from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator


class Clock:
    def __init__(self) -> None:
        self.t = 0.0
        self.at = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return self.at + timedelta(seconds=self.t)


def test_no_60_second_window_ever_holds_more_than_the_budget():
    clock, rng = Clock(), random.Random(7)
    budget = CallBudget(60, monotonic=clock.monotonic)
    taken = []
    for _ in range(20_000):
        clock.t += rng.choice((0.0, 0.01, 0.5, 1.0, 3.0))
        if budget.try_take(rng.choice((POLL, COMMAND))):
            taken.append(clock.t)
    assert len(taken) > 1000
    for i, start in enumerate(taken):
        assert sum(1 for t in taken[i : i + 61] if t < start + 60) <= 60


def test_commands_find_room_before_polls():
    clock = Clock()
    budget = CallBudget(60, monotonic=clock.monotonic)
    polls = 0
    while budget.try_take(POLL):
        polls += 1
    assert polls == 54, "polls leave a tenth of the budget to commands"
    assert sum(budget.try_take(COMMAND) for _ in range(10)) == 6
    with polling():
        assert not budget.try_take(), "calls inside polling() are polls"


def test_a_429_halves_the_budget_until_quiet_minutes_restore_it():
    clock = Clock()
    budget = CallBudget(60, monotonic=clock.monotonic)
    budget.throttled()
    assert budget.limit == 30 and budget.headroom(COMMAND) == 30
    clock.t += 60
    assert budget.headroom(COMMAND) == 36
    clock.t += 60 * 5
    budget.headroom()
    budget.headroom()
    for _ in range(5):
        clock.t += 60
        budget.headroom()
    assert budget.limit == 60


def test_every_client_call_takes_a_slot_and_a_429_shrinks_the_budget():
    with Simulator(credentials=DEMO_CREDENTIALS) as sim:
        budget = CallBudget(60)
        client = with_budget(make_client(sim.url, timeout=(2, 5), **DEMO_CREDENTIALS), budget)
        client.get("/dedicated/server")
        calls = budget.calls_in_window()
        assert calls == len(sim.calls()) == 2, "the call and the clock read (/auth/time)"
        sim.inject(read_errors={"status": 429, "retry_after": 1}, server="ns1001.ip-51-75-1.eu")
        with pytest.raises(E.APIError):
            client.get("/dedicated/server/ns1001.ip-51-75-1.eu")
        assert budget.limit == 30


# -- step profiles and the card ---------------------------------------------------------


def test_a_simulated_install_follows_its_step_profile():
    profile = (("short", 5.0), ("long", 120.0), ("last", 10.0))
    clock = Clock()
    with Simulator(
        credentials=DEMO_CREDENTIALS, clock=clock.monotonic, install_steps=profile
    ) as sim:
        world = sim.world
        deployment = world._deploy("ns1001.ip-51-75-1.eu", "reinstall", "")
        for at, step in ((4.9, 0), (5.0, 1), (124.9, 1), (125.0, 2), (135.0, 3)):
            clock.t = at
            assert deployment.current_step(world.now()) == step, at
        assert deployment.status(world.now()) == "done"


def test_the_card_says_when_the_budget_stretches_the_interval():
    deploying = request(state=State.DEPLOYING)
    assert "updates every ~90 s: API budget" in card_status(deploying, 92.0, 20)
    assert "updates every ~1000 s" in card_status(deploying, 1003.0, 20)
    assert "API budget" not in card_status(deploying, 15.0, 20)
    assert "API budget" not in card_status(request(), 300.0, 20), "only while deploying"


# -- the poller ---------------------------------------------------------------------------


class Deploying:
    """What the poller reads: deploying requests, and a poll that takes one budget slot."""

    def __init__(self, count: int, budget: CallBudget) -> None:
        self.requests = [request(f"r-{i:06d}", state=State.DEPLOYING) for i in range(count)]
        self.store = self
        self.budget, self.polled = budget, []

    def stream(self, states):
        return iter(self.requests)

    def poll(self, req):
        self.budget.take()
        self.polled.append(req.id)
        return Progress(Phase.RUNNING)


def test_the_poller_spends_the_budget_evenly_and_says_how_often_each_is_read():
    clock = Clock()
    budget = CallBudget(60, monotonic=clock.monotonic)
    deploying = Deploying(100, budget)
    poller = Poller(
        deploying,
        workers=4,
        plan=PollPlan(clock, longest=timedelta(seconds=20)),
        budget_of=lambda server: budget,
    )
    try:
        per_second = []
        for _ in range(180):
            before = len(deploying.polled)
            wait(poller.retry_due().values())
            per_second.append(len(deploying.polled) - before)
            clock.t += 1
    finally:
        poller.close()
    assert max(per_second) <= 2, "spread over the minute, not spent in a burst"
    assert 150 <= len(deploying.polled) <= 3 * 54, "the polls' share of 60 a minute"
    assert len(set(deploying.polled)) == 100, "every deployment read within three minutes"
    assert poller.pace_of("ns1001.ip-51-75-1.eu") == pytest.approx(60 * 100 / 54)

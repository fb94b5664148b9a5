"""Where a budget's polls go: step timings learned from every reading, the deployments with
the most expected step changes first, the freshest among equals, none starved, and, on a
model of 100 installs, half round-robin's median delay or better on the same budget."""

from __future__ import annotations

import itertools
import statistics
from datetime import UTC, datetime, timedelta

import pytest

from byoi_bot.core.poll_plan import MIN_GAP, SOON, STALE, PollPlan
from byoi_bot.core.step_timings import EXPLORE, StepTimings, position

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> datetime:
        return START + timedelta(seconds=self.t)


def progress(step: int, elapsed: float, steps: int = 5) -> dict:
    states = ["done"] * step + ["doing"] + ["todo"] * (steps - step - 1)
    return {"steps": [{"name": f"s{i}", "status": s} for i, s in enumerate(states[:steps])],
            "elapsed_seconds": elapsed}  # fmt: skip


# -- step timings ---------------------------------------------------------------------------


def test_a_step_ends_between_its_last_not_yet_and_its_first_ended_reading():
    timings = StepTimings()
    for n, elapsed in enumerate((10, 20, 30)):
        timings.seen(f"d{n}", 0, elapsed, steps=5)
    assert timings.end_of(0) == 30 + EXPLORE, "never seen ended: guessed just after, to ask"
    assert timings.end_of(1) is None, "only the first step never seen ended is guessed"
    for n, elapsed in enumerate((40, 60)):
        timings.seen(f"e{n}", 1, elapsed, steps=5)
    assert timings.end_of(0) == 35
    assert timings.end_of(1) == 60 + EXPLORE
    assert timings.end_of(9) is None, "a step nobody was read at or before"


def test_every_reading_teaches_every_step_even_the_ones_jumped_over():
    timings = StepTimings()
    timings.seen("a", 0, 10, steps=5)
    timings.seen("b", 3, 100, steps=5)  # steps 0, 1 and 2 all ended before b's read
    assert [timings.end_of(step) for step in range(3)] == [55, 55, 55]
    timings.seen("c", 2, 70, steps=5)
    assert timings.end_of(1) == 40 and timings.end_of(2) == 85


def test_a_few_slow_or_fast_servers_do_not_move_a_step_end():
    timings = StepTimings()
    for n, elapsed in enumerate((10, 20, 30, 90)):  # 90: a slow server, still on step 0
        timings.seen(f"d{n}", 0, elapsed, steps=3)
    for n, elapsed in enumerate((5, 40, 60, 80, 100)):  # 5: a fast one, already past it
        timings.seen(f"e{n}", 1, elapsed, steps=3)
    assert timings.end_of(0) == 35


def test_a_deployment_read_often_counts_once_by_its_tightest_readings():
    timings = StepTimings()
    for elapsed in range(40, 200, 5):  # one server, late on step 0, read every 5 s
        timings.seen("late", 0, elapsed, steps=3)
    for n, elapsed in enumerate((10, 20, 30)):
        timings.seen(f"d{n}", 0, elapsed, steps=3)
    for n, elapsed in enumerate((40, 60)):
        timings.seen(f"e{n}", 1, elapsed, steps=3)
    assert timings.end_of(0) == 35
    timings.seen("e0", 2, 300, steps=3)
    assert timings.end_of(0) == 35, "its earliest reading past the step stays"


def test_only_the_last_deployments_read_are_kept():
    timings = StepTimings(keep=2)
    timings.seen("old", 1, 500, steps=2)  # a deployment of another kind, long ago
    timings.seen("a", 0, 10, steps=2)
    timings.seen("b", 1, 30, steps=2)
    timings.seen("c", 1, 40, steps=2)
    assert timings.end_of(0) == 20, "old is forgotten"


def test_the_position_of_a_progress_record():
    assert position(progress(2, 50.0)) == (2, 50.0, 5)
    assert position({"steps": [{"status": "done"}] * 3, "elapsed_seconds": 9}) == (3, 9.0, 3)
    assert position({"steps": [{"status": "doing"}, {"status": "error"}],
                     "elapsed_seconds": 9}) == (1, 9.0, 2)  # fmt: skip
    assert position(None) is None and position({"steps": []}) is None
    assert position({"steps": [{"status": "doing"}]}) is None, "no elapsed time"


# -- the plan ---------------------------------------------------------------------------------


def taught(clock: Clock) -> PollPlan:
    """A plan that saw deployments end step 0 at about 40 s, step 1 at about 100 s and step 2
    at about 200 s."""
    plan = PollPlan(clock, longest=timedelta(seconds=20))
    readings = ((0, 39), (1, 41), (1, 99), (2, 101), (2, 199), (3, 201))
    for n, (step, elapsed) in enumerate(readings):
        plan.timings.seen(f"other{n}", step, elapsed, steps=5)
    return plan


def started(*ids: str, at: float = 0.0) -> dict[str, datetime]:
    return {i: START + timedelta(seconds=at) for i in ids}


def observe(plan: PollPlan, clock: Clock, at: float, request_id: str, step: int, elapsed: float):
    clock.t = at
    plan.succeeded(request_id)
    plan.observed(request_id, progress(step, elapsed))


def test_the_deployment_with_most_expected_changes_goes_first_then_the_freshest():
    clock = Clock()
    plan = taught(clock)
    observe(plan, clock, 0, "two", 0, 30)  # at 110: steps 0 and 1 ended (at 40 and 100)
    observe(plan, clock, 30, "old", 0, 5)  # at 110: step 0 ended 45 s ago
    observe(plan, clock, 70, "fresh", 0, 20)  # at 110: step 0 ended 20 s ago
    observe(plan, clock, 80, "later", 1, 45)  # at 110: step 1 ends in 25 s
    observe(plan, clock, 100, "just read", 1, 45)  # nothing new, and read 10 s ago
    clock.t = 110
    ids = started("old", "fresh", "two", "later", "just read")
    assert plan.pick(ids, 4, pace=60) == ["two", "fresh", "old", "later"]
    assert plan.pick(ids, 1, pace=60) == ["two"]
    assert plan.pick(ids, 0, pace=60) == []
    assert plan.pick(ids, 1, pace=60, round_robin=True) == ["two"], "the least recently read"


def test_a_step_about_to_end_is_waited_for_and_no_deployment_is_read_twice_in_a_moment():
    clock = Clock()
    plan = taught(clock)
    observe(plan, clock, 0, "soon", 0, 40 - SOON + 1)  # its step 0 ends in SOON - 1 s
    observe(plan, clock, 0, "now", 0, 39)  # its step 0 ends in 1 s
    clock.t = MIN_GAP + 1
    assert plan.pick(started("soon", "now"), 5, pace=60) == ["now"]
    observe(plan, clock, MIN_GAP + 1, "now", 1, 42)
    clock.t += MIN_GAP - 1
    assert plan.pick(started("now"), 5, pace=60) == [], f"{MIN_GAP} s between two reads"


def test_a_step_running_late_is_asked_about_on_a_back_off_not_every_second():
    clock = Clock()
    plan = taught(clock)
    reads = []
    for second in range(60):
        clock.t = second
        if plan.pick(started("late"), 1, pace=60):
            reads.append(second)
            observe(plan, clock, second, "late", 0, 45 + second)  # 5 s late, then more
    assert reads == [0, 5, 15, 35, 55], "5, 10, 20 s apart: at most one poll interval"


def test_a_deployment_never_read_counts_from_when_its_install_began():
    clock = Clock()
    plan = taught(clock)
    observe(plan, clock, 0, "read", 1, 50)  # step 1 ends at 100: nothing expected before 50
    clock.t = 60
    ids = started("read") | started("new", at=15)  # new: 45 s in, its step 0 ended at 40
    assert plan.pick(ids, 1, pace=60) == ["new"]


def test_no_deployment_waits_longer_than_a_few_even_paces():
    clock = Clock()
    plan = taught(clock)
    observe(plan, clock, 0, "quiet", 1, 41)  # step 1 ends at 100: nothing new before 59 s
    observe(plan, clock, 25, "busy", 0, 39)  # step 0 ends at 40: news from 26 s on
    ids = started("quiet", "busy")
    clock.t = STALE * 10 - 1
    assert plan.pick(ids, 1, pace=10) == ["busy"], "news first"
    clock.t = STALE * 10  # with reads every 10 s on an even share, quiet waited too long
    assert plan.pick(ids, 1, pace=10) == ["quiet"]
    assert plan.pick(ids, 1, pace=1000) == ["busy"], "not on a slower pace"


def test_with_room_to_spare_each_is_read_every_poll_interval_not_every_moment():
    clock = Clock()
    plan = taught(clock)  # poll interval 20 s
    reads = []
    for second in range(60):
        clock.t = second
        if plan.pick(started("long"), 5, pace=1):
            reads.append(second)
            observe(plan, clock, second, "long", 1, 41 + second)  # step 1 ends at 100
    assert reads == [0, 20, 40, 59], "then just after its step's end"


# -- a model of the benchmark: the plan alone, on a fake clock ---------------------------------

PROFILE = (5, 20, 30, 90, 10, 45, 15, 10, 120, 15, 30, 90, 10, 5, 5, 5, 10, 5, 90, 45, 5)
ENDS = list(itertools.accumulate(PROFILE))  # 21 steps, 660 s, uneven like OVHcloud's


def follow(n: int, round_robin: bool, per_minute: int = 54) -> tuple[list[float], int]:
    """n installs starting over 5 minutes, polled through the plan at `per_minute` reads a
    minute (one each second while the even share allows); every step change's delay, and
    the most reads in any 60 s."""
    clock = Clock()
    plan = PollPlan(clock, longest=timedelta(seconds=20))
    starts = {f"r{i}": 300 * i / n for i in range(n)}
    shown = dict.fromkeys(starts, 0)
    delays, reads, credit = [], [], 0.0
    while min(shown.values()) < len(ENDS):
        live = {i: START + timedelta(seconds=s) for i, s in starts.items()
                if s <= clock.t and shown[i] < len(ENDS)}  # fmt: skip
        credit = min(credit + per_minute / 60, 2)
        room = min(int(credit), per_minute - sum(1 for at in reads if at > clock.t - 60))
        for request_id in plan.pick(live, room, pace=60 * len(live) / per_minute,
                                    round_robin=round_robin):  # fmt: skip
            credit -= 1
            reads.append(clock.t)
            elapsed = clock.t - starts[request_id]
            step = next((j for j, end in enumerate(ENDS) if end > elapsed), len(ENDS))
            delays += [elapsed - ENDS[j] for j in range(shown[request_id], step)]
            shown[request_id] = step
            plan.succeeded(request_id)
            if step == len(ENDS):
                plan.forget(request_id)  # done: no longer followed
            else:
                plan.observed(request_id, progress(step, elapsed, len(ENDS)))
        clock.t += 1
    most = max(sum(1 for b in reads if a - 60 < b <= a) for a in reads)
    return delays, most


@pytest.mark.parametrize("n", [100])
def test_on_the_same_budget_step_changes_show_in_half_round_robins_median_delay(n):
    smart, smart_most = follow(n, round_robin=False)
    even, even_most = follow(n, round_robin=True)
    assert len(smart) == len(even) == n * len(ENDS)
    assert max(smart_most, even_most) <= 54, "never over the budget"
    assert statistics.median(smart) <= 0.5 * statistics.median(even)
    p95 = statistics.quantiles(smart, n=20)[-1], statistics.quantiles(even, n=20)[-1]
    assert p95[0] <= p95[1], "and the slowest no slower"

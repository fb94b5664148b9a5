"""Follows every deploying request on a bounded thread pool (SPEC section 2, step 6).

A cycle walks the deploying requests (streamed from the store) and hands each one due to
the pool: at most `workers` OVHcloud reads at once, a request never polled twice at the
same time, and a slow or failing server holds one worker, never the cycle. A failed read is
not retried in place: `PollPlan` gives it a retry time, which `retry_due()` (a job every
second) honours between cycles; a 429 pauses every poll for its Retry-After.

Under an account's call budget (`core.budget`, given by `budget_of`), polls are not a fixed
cycle: every second (`retry_due()`), as many polls as the budget leaves room for go to the
deployments `PollPlan.pick` chooses (the most step changes expected first), and `pace_of()`
tells how often each deployment is then read (the card says so when it is slower than the
poll interval). Only the leader polls, so with two replicas the polls are counted once.

The jobs run on the leader only (`scheduler.Jobs`); a replica that loses the lead `pause()`s
its poller, so the polls it had queued are dropped, not run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime

from .core.budget import WINDOW, CallBudget, polling
from .core.poll_plan import PollPlan
from .core.ports import ProviderError
from .core.request import Request
from .core.service import Deployments
from .core.states import State
from .logs import about

log = logging.getLogger(__name__)

FOLLOWED = (State.DEPLOYING, State.BOOTING)  # OVHcloud's install, then the boot gate


class Poller:
    """The poll jobs (`cycle()`, `retry_due()`) and `poll_all()`, one whole cycle now."""

    def __init__(
        self,
        deployments: Deployments,
        *,
        workers: int,
        plan: PollPlan,
        budget_of: Callable[[str], CallBudget | None] | None = None,
        round_robin: bool = False,
    ) -> None:
        self.deployments = deployments
        self.plan = plan
        self.budgeted = budget_of is not None
        self.budget_of = budget_of or (lambda _: None)
        self.round_robin = round_robin  # the uniform reference the benchmark compares with
        self._pace: dict[int, float] = {}  # id(budget) -> seconds between two polls of one
        # id(budget) -> (calls the even pace allows now, when, the budget's calls then)
        self._allowance: dict[int, tuple[float, datetime, int]] = {}
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="poll")
        self._slots = threading.BoundedSemaphore(2 * workers)  # queued + running polls
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when no poll is in flight
        self._paused = threading.Event()  # set while another replica leads
        self.on_cycle: Callable[[Sequence[Future]], None] = lambda _futures: None

    def pause(self) -> None:
        """Another replica leads: queued polls are dropped, and none is queued until
        `resume()` (polls running now finish)."""
        self._paused.set()

    def resume(self) -> None:
        """This process leads (again): polls may be queued."""
        self._paused.clear()

    def poll_all(self) -> None:
        """Poll every deploying request that is due, and wait for those polls; polls already
        under way (a scheduled cycle's) end first, so every reading is taken after the call."""
        with self._idle:
            self._idle.wait_for(lambda: not self._in_flight)
        wait(self.cycle().values())

    def cycle(self) -> dict[str, Future]:
        """Hand every due followed request without a budget to the pool, and spend the
        budgets; returns at once, their futures by id."""
        futures, budgeted = {}, []
        for request in self.deployments.store.stream(FOLLOWED):
            if self.plan.paused():
                break
            if self._budget(request) is not None:
                budgeted.append(request)
            elif self.plan.due(request.id) and (future := self._submit(request)):
                futures[request.id] = future
        futures |= self._spend(budgeted)
        self.on_cycle(list(futures.values()))
        return futures

    def retry_due(self) -> dict[str, Future]:
        """Hand the requests whose retry time has come to the pool, and spend the budgets
        (a job every second)."""
        futures = {}
        for request_id in self.plan.retries_due():
            request = self.deployments.store.get(request_id)
            if request is None or request.state not in FOLLOWED:
                self.plan.forget(request_id)
            elif self._budget(request) is None and (future := self._submit(request)):
                futures[request_id] = future
        if self.budgeted:
            deploying = self.deployments.store.stream([State.DEPLOYING])
            futures |= self._spend([r for r in deploying if self._budget(r) is not None])
        return futures

    def pace_of(self, server: str) -> float | None:
        """Seconds between two polls of one deployment of `server`'s account, as its budget
        allows now (None: no budget)."""
        budget = self.budget_of(server)
        return self._pace.get(id(budget)) if budget is not None else None

    def _spend(self, requests: list[Request]) -> dict[str, Future]:
        """As many polls as each budget leaves room for, where a change is most likely."""
        groups: dict[int, tuple[CallBudget, list[Request]]] = {}
        for request in requests:
            budget = self._budget(request)
            groups.setdefault(id(budget), (budget, []))[1].append(request)
        futures = {}
        for key, (budget, members) in groups.items():
            self._pace[key] = WINDOW * len(members) / budget.poll_capacity()
            with self._lock:
                running = sum(1 for r in members if r.id in self._in_flight)
            by_id = {r.id: r for r in members}
            room = min(self._paced(key, budget), budget.headroom()) - running
            started = {r.id: r.submitted_at for r in members}
            chosen = self.plan.pick(
                started, room, pace=self._pace[key], round_robin=self.round_robin
            )
            for request_id in chosen:
                if future := self._submit(by_id[request_id]):
                    futures[request_id] = future
        return futures

    def _paced(self, key: int, budget: CallBudget) -> int:
        """Calls allowed now when the budget is spread evenly over the minute (at most two
        seconds' worth at once), rather than spent in a burst and then waited for."""
        now = self.plan.clock.now()
        rate = budget.poll_capacity() / WINDOW
        credit, since, taken = self._allowance.get(key, (rate, now, budget.taken))
        credit += rate * (now - since).total_seconds() - (budget.taken - taken)
        credit = min(max(2 * rate, 1.0), credit)
        self._allowance[key] = (credit, now, budget.taken)
        return int(credit)

    def _budget(self, request: Request) -> CallBudget | None:
        """The budget its polls spend: a deploying request's account's (a boot gate's check
        does not ask OVHcloud)."""
        if request.state is not State.DEPLOYING:
            return None
        try:
            return self.budget_of(request.spec.server)
        except ProviderError:
            return None  # no account lists it: its poll says why

    def in_flight(self) -> frozenset[str]:
        """Ids of the requests being polled right now."""
        with self._lock:
            return frozenset(self._in_flight)

    def close(self) -> None:
        """Drop queued polls and wait for the running ones."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, request: Request) -> Future | None:
        if self._paused.is_set():
            return None
        with self._lock:
            if request.id in self._in_flight:
                return None
            self._in_flight.add(request.id)
        self._slots.acquire()
        try:
            return self._pool.submit(self._poll, request)
        except RuntimeError:  # shut down meanwhile
            self._done(request.id)
            return None

    def _poll(self, request: Request) -> None:
        with about(request.id):
            self._poll_one(request)

    def _poll_one(self, request: Request) -> None:
        try:
            if self._paused.is_set():
                return  # queued before this replica lost the lead
            with polling():
                progress = self.deployments.poll(request)
            self.plan.succeeded(request.id)
            if self.budgeted and (progress is None or progress.phase.is_final):
                self.plan.forget(request.id)
            elif self.budgeted:
                self.plan.observed(request.id, progress.to_dict())
        except ProviderError as exc:
            if exc.transient:
                delay = self.plan.failed(request.id, exc.retry_after)
                log.warning(
                    "poll %s: %s (next try in %.0f s)",
                    request.id,
                    exc.explanation.summary,
                    delay.total_seconds(),
                )
            else:
                log.warning("poll %s: %s (next cycle)", request.id, exc.explanation.summary)
        except Exception:
            log.exception("poll of %s failed; will retry next cycle", request.id)
        finally:
            self._done(request.id)

    def _done(self, request_id: str) -> None:
        with self._lock:
            self._in_flight.discard(request_id)
            if not self._in_flight:
                self._idle.notify_all()
        self._slots.release()

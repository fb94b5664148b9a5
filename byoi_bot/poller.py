"""Follows every deploying request on a bounded thread pool (SPEC section 2, step 6).

A cycle walks the deploying requests (streamed from the store) and hands each one due to
the pool: at most `workers` OVHcloud reads at once, a request never polled twice at the
same time, and a slow or failing server holds one worker, never the cycle. A failed read is
not retried in place: `PollPlan` gives it a retry time, which `retry_due()` (a job every
second) honours between cycles; a 429 pauses every poll for its Retry-After.

The jobs run on the leader only (`scheduler.Jobs`); a replica that loses the lead `pause()`s
its poller, so the polls it had queued are dropped, not run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

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

    def __init__(self, deployments: Deployments, *, workers: int, plan: PollPlan) -> None:
        self.deployments = deployments
        self.plan = plan
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
        """Hand every due deploying request to the pool; returns at once, their futures by id."""
        futures = {}
        for request in self.deployments.store.stream(FOLLOWED):
            if self.plan.paused():
                break
            if self.plan.due(request.id) and (future := self._submit(request)):
                futures[request.id] = future
        self.on_cycle(list(futures.values()))
        return futures

    def retry_due(self) -> dict[str, Future]:
        """Hand the requests whose retry time has come to the pool (a job every second)."""
        futures = {}
        for request_id in self.plan.retries_due():
            request = self.deployments.store.get(request_id)
            if request is None or request.state not in FOLLOWED:
                self.plan.forget(request_id)
            elif future := self._submit(request):
                futures[request_id] = future
        return futures

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
            self.deployments.poll(request)
            self.plan.succeeded(request.id)
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

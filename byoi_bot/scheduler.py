"""APScheduler jobs: poll deployments (on the poller's pool), expire requests, start
scheduled deployments.

Jobs live in memory and are rebuilt from the store at every start (SPEC section 7: one
scheduler per job set; the store, not a pickled job store, is the truth). A restart thus
resumes every deployment in flight without a second OVHcloud call.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from .core.fleets import Fleets
from .core.request import Request
from .core.service import Deployments
from .core.states import State
from .poller import Poller

log = logging.getLogger(__name__)

EXPIRY_SWEEP = timedelta(seconds=10)
RETRY_CHECK = timedelta(seconds=1)
ROLLOUT = timedelta(seconds=2)
EVENT_MEMORY = timedelta(days=1)


class Jobs:
    """The bot's scheduled work around one `Deployments`."""

    def __init__(self, deployments: Deployments, poller: Poller, fleets: Fleets) -> None:
        self.deployments = deployments
        self.poller = poller
        self.fleets = fleets
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def start(self) -> None:
        """Reconcile interrupted submissions, re-plan approved requests, start the jobs."""
        d = self.deployments
        d.reconcile()
        for request in d.store.in_states([State.APPROVED]):
            if request.fleet_id:
                continue  # a fleet's rollout starts its servers (`fleets.advance_all`)
            try:
                if d.is_due(request):
                    d.submit(request.id)
                else:
                    self._plan(request)
            except Exception:  # one bad request must not keep the bot from starting
                log.exception("could not resume %s", request.id)
        self.scheduler.add_job(
            self.poller.cycle, "interval", seconds=d.timing.poll.total_seconds(), id="poll"
        )
        self.scheduler.add_job(
            self.poller.retry_due,
            "interval",
            seconds=RETRY_CHECK.total_seconds(),
            id="poll-retries",
        )
        self.scheduler.add_job(
            self.sweep, "interval", seconds=EXPIRY_SWEEP.total_seconds(), id="expire"
        )
        self.scheduler.add_job(
            self.fleets.advance_all, "interval", seconds=ROLLOUT.total_seconds(), id="rollout"
        )
        self.scheduler.start()

    def stop(self) -> None:
        """Stop the scheduler and the poller, waiting for running jobs and polls."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.poller.close()

    def sweep(self) -> None:
        """Expire pending requests, settle unknown submissions, forget old delivery ids and
        old sent posts."""
        self.deployments.expire_due()
        self.deployments.reconcile()
        self.deployments.store.forget_events(self.deployments.clock.now() - EVENT_MEMORY)
        self.deployments.store.forget_sent(self.deployments.clock.now() - EVENT_MEMORY)

    def approved(self, request: Request) -> None:
        """Submit now, or say when and plan a one-off job at the request's `at=` time."""
        if not self.deployments.is_due(request):
            self._plan(request)
        self.deployments.submit_when_due(request)

    def _plan(self, request: Request) -> None:
        self.scheduler.add_job(
            self.deployments.submit,
            "date",
            run_date=self._on_scheduler_time(request.spec.at),
            args=[request.id],
            id=f"submit:{request.id}",
            replace_existing=True,
        )
        log.info("%s scheduled for %s", request.id, request.spec.at)

    def _on_scheduler_time(self, when: datetime) -> datetime:
        """`when` on the bot's clock, as APScheduler's wall-clock time: the same instant in
        production; in a test whose clock is elsewhere, the same delay from now."""
        return datetime.now(UTC) + (when - self.deployments.clock.now())

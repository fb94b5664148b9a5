"""APScheduler jobs: poll deployments (on the poller's pool), expire requests, start
scheduled deployments.

Jobs live in memory and are rebuilt from the store whenever this process becomes the leader
(SPEC section 7: one scheduler per job set; the store, not a pickled job store, is the
truth). With SQLite the one process leads from the start; with PostgreSQL one replica leads
(`store.leadership()`) and the others take over when it dies. A new leader thus resumes
every deployment in flight without a second OVHcloud call.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from .core.fleets import Fleets
from .core.ports import Leadership
from .core.request import Request
from .core.service import Deployments
from .core.silences import Silences
from .core.states import State
from .logs import about
from .poller import Poller
from .sender import OutboxSender

log = logging.getLogger(__name__)

EXPIRY_SWEEP = timedelta(seconds=10)
RETRY_CHECK = timedelta(seconds=1)
ROLLOUT = timedelta(seconds=2)
EVENT_MEMORY = timedelta(days=1)
SILENCES = timedelta(seconds=15)  # silences are renewed well before their end


class Jobs:
    """The bot's scheduled work around one `Deployments`."""

    def __init__(
        self,
        deployments: Deployments,
        leadership: Leadership,
        sender: OutboxSender,
        poller: Poller,
        fleets: Fleets,
        silences: Silences | None = None,
    ) -> None:
        self.deployments = deployments
        self.leadership = leadership
        self.sender = sender
        self.poller = poller
        self.fleets = fleets
        self.silences = silences  # Alertmanager silences, when configured (core.silences)
        self.leading = False  # this process runs the background work now
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def start(self) -> None:
        """Start the scheduler; the background work starts once this process leads."""
        self.scheduler.start()
        self.leadership.start(self._lead, self._follow, self.sender.wake)

    def stop(self) -> None:
        """Give the lead up, stop the outbox's sender, the scheduler (waiting for running
        jobs) and the poller (waiting for running polls)."""
        self.leadership.stop()
        self.sender.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.poller.close()

    def _lead(self) -> None:
        """Start the outbox's sender, reconcile interrupted submissions, re-plan approved
        requests, start the jobs."""
        self.leading = True
        self.sender.start()
        d = self.deployments
        d.reconcile()
        self._resume_approved()
        self.poller.resume()
        self.scheduler.add_job(
            self.poller.cycle, "interval", seconds=d.timing.poll.total_seconds(), id="poll",
            replace_existing=True, next_run_time=datetime.now(UTC),  # a new leader polls at once
        )  # fmt: skip
        self.scheduler.add_job(
            self.poller.retry_due, "interval", seconds=RETRY_CHECK.total_seconds(),
            id="poll-retries", replace_existing=True,
        )  # fmt: skip
        self.scheduler.add_job(
            self.sweep, "interval", seconds=EXPIRY_SWEEP.total_seconds(), id="expire",
            replace_existing=True,
        )  # fmt: skip
        self.scheduler.add_job(
            self.fleets.advance_all, "interval", seconds=ROLLOUT.total_seconds(), id="rollout",
            replace_existing=True,
        )  # fmt: skip
        if self.silences is not None:
            self.scheduler.add_job(
                self._silence, "interval", seconds=SILENCES.total_seconds(), id="silences",
                replace_existing=True, next_run_time=datetime.now(UTC),
            )  # fmt: skip

    def _silence(self) -> None:
        """Create, renew and expire Alertmanager silences; an unreachable one is retried."""
        assert self.silences is not None
        try:
            self.silences.sync()
        except Exception as exc:
            log.warning("alert silences not synced (next try in %s): %s", SILENCES, exc)

    def _follow(self) -> None:
        """Another replica leads now: drop the background jobs and the polls not yet
        started, stop sending."""
        self.leading = False
        self.scheduler.remove_all_jobs()
        self.poller.pause()
        self.sender.stop()

    def sweep(self) -> None:
        """Expire pending requests, settle unknown submissions, forget old delivery ids and
        sent posts, plan (or start) approved requests, including those approved on
        another replica, and remind of emergency overrides overdue for review."""
        self.deployments.expire_due()
        self.deployments.reconcile()
        self.deployments.store.forget_events(self.deployments.clock.now() - EVENT_MEMORY)
        self.deployments.store.forget_sent(self.deployments.clock.now() - EVENT_MEMORY)
        self._resume_approved()
        self.deployments.remind_overdue_reviews()

    def _resume_approved(self) -> None:
        d = self.deployments
        freezes = d.freezes_in_force(d.clock.now())  # read once for the whole sweep
        for request in d.store.in_states([State.APPROVED]):
            if request.fleet_id:
                continue  # a fleet's rollout starts its servers (`fleets.advance_all`)
            try:
                if d.is_due(request, freezes):
                    d.submit(request.id)
                elif self.scheduler.get_job(f"submit:{request.id}") is None:
                    self._plan(request)
            except Exception:  # one bad request must not stop the others
                log.exception("could not resume %s", request.id)

    def approved(self, request: Request) -> None:
        """Submit now, or say when and plan a one-off job at the request's `at=` time (the
        leader plans one too; the claim in the store lets only one of them submit)."""
        with about(request.id):
            if not self.deployments.is_due(request):
                self._plan(request)
            self.deployments.submit_when_due(request)

    def _plan(self, request: Request) -> None:
        """A one-off job at the time the request may start (`at=`, its window, the end of a
        freeze); if that changes meanwhile, `submit` declines and the sweep plans again."""
        when = self.deployments.start_decision(request).start_at
        self.scheduler.add_job(
            self._submit,
            "date",
            run_date=self._on_scheduler_time(when),
            args=[request.id],
            id=f"submit:{request.id}",
            replace_existing=True,
        )
        log.info("%s planned to start at %s", request.id, when)

    def _submit(self, request_id: str) -> None:
        with about(request_id):
            self.deployments.submit(request_id)

    def _on_scheduler_time(self, when: datetime) -> datetime:
        """`when` on the bot's clock, as APScheduler's wall-clock time: the same instant in
        production; in a test whose clock is elsewhere, the same delay from now."""
        return datetime.now(UTC) + (when - self.deployments.clock.now())

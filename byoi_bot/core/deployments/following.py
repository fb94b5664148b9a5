"""Following: reading an install's progress and telling the thread what changed."""

from __future__ import annotations

from datetime import datetime

from .. import messages
from ..ports import ProviderError
from ..posts import Post
from ..progress import Phase, Progress
from ..request import Request
from ..states import State
from .base import SYSTEM
from .booting import Booting


class Following(Booting):
    """Poll one deployment; post progress, heartbeats and stall warnings; finish it."""

    def poll(self, request: Request) -> Progress | None:
        """Read one deployment's progress and tell the thread what changed.

        Raises `ProviderError` when OVHcloud could not be read (nothing is posted); the
        poller (`byoi_bot.poller`) decides when to try again. Returns what OVHcloud said
        (None for a boot gate's check, which does not ask OVHcloud).
        """
        if request.state is State.BOOTING:
            self.follow_boot(request)
            return None
        now = self.clock.now()
        try:
            progress = self.provider.progress(request.spec.server, request.provider_handle or "")
        except ProviderError:
            self.provider_seen = (False, now)
            raise
        self.provider_seen = (True, now)
        if progress.phase is Phase.DONE:
            self.installed(request, progress)
            return progress
        if progress.phase is Phase.FAILED:
            explanation = self.explain(progress.message or _failed_step(progress))
            self._finish(
                request,
                State.FAILED,
                SYSTEM,
                f"installer: {explanation.code}",
                progress,
                explanation,
            )
            return progress
        previous = request.progress or {}
        if previous.get("steps") and not progress.steps:
            # A step-less answer (e.g. a spurious 404 of the install status) never replaces
            # known steps: nothing is posted, the next poll reads them again.
            self._heartbeat_or_stall(request, progress, now)
            return progress
        record = progress.to_dict() | {
            "signature": progress.signature(),
            "stall_warned": previous.get("stall_warned", False),
        }
        if progress.signature() != previous.get("signature"):
            self.store.update(
                request.id,
                [
                    Post.reply(request, messages.progress(progress), latest_only=True),
                    Post.card(request),
                ],
                progress=record,
                last_status=messages.status_line(request, progress),
                last_post_at=now,
            )
            return progress
        self._heartbeat_or_stall(request, progress, now)
        return progress

    def _heartbeat_or_stall(self, request: Request, progress: Progress, now: datetime) -> None:
        started = request.submitted_at or now
        previous = request.progress or {}
        if now - started >= self.timing.stall and not previous.get("stall_warned"):
            self.store.note(request.id, SYSTEM, "stall_warning", "running past the usual time")
            self.store.update(
                request.id,
                [Post.reply(request, messages.stalled(request, now - started)), Post.card(request)],
                progress=previous | {"stall_warned": True},
                last_status=messages.status_line(request, progress) + " · stalled",
                last_post_at=now,
            )
            return
        if now - (request.last_post_at or started) >= self.timing.heartbeat:
            heartbeat = messages.heartbeat(progress, now - started)
            self.store.update(
                request.id, [Post.reply(request, heartbeat, latest_only=True)], last_post_at=now
            )


def _failed_step(progress: Progress) -> str:
    step = progress.current_step
    return (step.error or step.name) if step else ""

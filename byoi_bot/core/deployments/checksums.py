"""Checksums: streaming an image to verify its checksum before it may start."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .. import messages
from ..checks import Check, Severity
from ..posts import Post
from ..request import Request
from ..states import IllegalTransition, State
from .base import CHECKSUM, Workflow, checksum_pending

log = logging.getLogger(__name__)


class Checksums(Workflow):
    """Verify a request's image checksum in the background; a mismatch fails the request."""

    def verify_checksum(self, request_id: str) -> None:
        """Stream the image and compare its checksum, the card showing the progress; no
        match fails the request (the start call never happens), a match lets an approved
        one start."""
        request = self._get(request_id)
        result = self.checked_image(request, lambda check: self._set_checksum(request.id, check))
        request = self._set_checksum(request.id, result)
        if result.severity is Severity.OK:
            if request.state is State.APPROVED and self.is_due(request):
                self.submit(request.id)
            return
        for _ in range(3):  # an approval may move the request on at the same moment
            if request.state not in (State.PENDING_APPROVAL, State.APPROVED):
                return
            try:
                self._fail(request, request.state, messages.checksum_failed(result.message))
                return
            except IllegalTransition:
                request = self._get(request.id)

    def checked_image(self, request: Request, show: Callable[[Check], None]) -> Check:
        """Stream `request`'s image and compare its checksum; `show` gets the progress.

        Never raises: a verification that crashed is a blocking check.
        """
        assert self.verifier is not None
        spec = request.spec.with_secrets(self.store.secrets(request.id))

        def progress(done: int, total: int | None) -> None:
            show(Check(CHECKSUM, Severity.WARNING, messages.checksum_progress(done, total)))

        try:
            return self.verifier.verify(spec, progress)
        except Exception:
            log.exception("checksum verification of %s failed", request.id)
            return Check(CHECKSUM, Severity.BLOCKING, messages.checksum_crashed())

    def resume_checksums(self) -> None:
        """Verify again the checksums a previous process left unfinished (a fleet's are
        verified once for the fleet: `Fleets.advance_all`)."""
        if self.verifier is None:
            return
        for request in self.store.in_states([State.PENDING_APPROVAL, State.APPROVED]):
            if checksum_pending(request) and not request.fleet_id:
                self._start_verifying(request.id)

    def _start_verifying(self, request_id: str) -> None:
        """Verify in the background, unless a verification of it runs already (claimed in the
        store: here or on another replica)."""

        def run() -> None:
            with self.store.claim_request(f"checksum:{request_id}") as mine:
                if mine:
                    self.verify_checksum(request_id)

        self.background(run)

    def _set_checksum(self, request_id: str, check: Check) -> Request:
        request = self._get(request_id)
        request.checks = [c for c in request.checks if c["name"] != CHECKSUM] + [check.to_dict()]
        self.store.update(request.id, [Post.card(request)], checks=request.checks)
        return request

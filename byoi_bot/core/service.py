"""The deployment workflow's one entry point: `Deployments`, assembled from its use cases.

Each use case lives in its own module of `core.deployments`; this class only puts them
together, so adapters keep one object to drive.
"""

from __future__ import annotations

from .deployments.asking import Asking
from .deployments.base import (
    APPROVE_REACTIONS,
    REJECT_REACTIONS,
    SYSTEM,
    Refused,
    Timing,
)
from .deployments.cards import Cards
from .deployments.checksums import Checksums
from .deployments.controlling import ChangeControl
from .deployments.following import Following
from .deployments.reading import Reading
from .deployments.submitting import Submitting
from .deployments.voting import Voting

__all__ = ["APPROVE_REACTIONS", "REJECT_REACTIONS", "SYSTEM", "Deployments", "Refused", "Timing"]


class Deployments(Asking, Cards, Voting, Checksums, ChangeControl, Submitting, Following, Reading):
    """Requests, approvals, submission and follow-up of BYOI deployments."""

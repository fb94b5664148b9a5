"""One model of a deployment's progress, whichever API generation reports it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum


class Phase(StrEnum):
    """Normalised deployment state."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (Phase.DONE, Phase.FAILED)


@dataclass(frozen=True)
class Step:
    """One install step as the API reports it (status: todo, doing, done, error, …)."""

    name: str
    status: str
    error: str | None = None


@dataclass(frozen=True)
class Progress:
    """Where a deployment stands: phase, install steps, elapsed seconds and the raw message."""

    phase: Phase
    steps: tuple[Step, ...] = field(default_factory=tuple)
    elapsed_seconds: int | None = None
    message: str = ""

    @property
    def fraction_done(self) -> float | None:
        """Share of install steps done (0..1), or None when the API gives no steps."""
        if not self.steps:
            return None
        return sum(1 for s in self.steps if s.status == "done") / len(self.steps)

    @property
    def current_step(self) -> Step | None:
        """The step in progress (or failed), else the first not yet done."""
        for status in (("error",), ("doing",), ("todo", "pending", "idle")):
            for step in self.steps:
                if step.status in status:
                    return step
        return None

    def signature(self) -> str:
        """What changed-or-not is judged on: phase, current step and its status."""
        step = self.current_step
        return f"{self.phase}|{step.name if step else ''}|{step.status if step else ''}"

    def to_dict(self) -> dict:
        return asdict(self) | {"phase": str(self.phase)}

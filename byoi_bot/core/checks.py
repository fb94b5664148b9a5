"""Preflight check results: each check ends ok, warning or blocking, with a plain reason."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum


class Severity(StrEnum):
    """How a check result affects a request: blocking results refuse it."""

    OK = "ok"
    WARNING = "warning"
    BLOCKING = "blocking"


@dataclass(frozen=True)
class Check:
    """One check's verdict. `message` says in plain words what was found and how to fix it.

    >>> Check("format", Severity.OK, "qcow2 as declared").is_blocking
    False
    """

    name: str
    severity: Severity
    message: str

    @property
    def is_blocking(self) -> bool:
        return self.severity is Severity.BLOCKING

    def to_dict(self) -> dict:
        return asdict(self) | {"severity": str(self.severity)}

    @classmethod
    def from_dict(cls, data: dict) -> Check:
        return cls(data["name"], Severity(data["severity"]), data["message"])


def blocking(checks: list[Check]) -> list[Check]:
    """The checks that refuse a request."""
    return [c for c in checks if c.is_blocking]

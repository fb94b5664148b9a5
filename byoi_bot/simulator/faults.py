"""Faults the simulator can be told to inject, as JSON objects (docs/simulator.md)."""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import asdict, dataclass, field

from ..ovhcloud import schema

TASK_ERROR_STATUSES = ("customerError", "ovhError")


class FaultError(ValueError):
    """A fault description the simulator cannot use."""


@dataclass
class InstallFault:
    """The next deployment on `server` (or any, when '*') fails with `message`."""

    server: str
    message: str
    at_step: int | None = None  # 1-based step number; None: the step the message belongs to
    task_status: str = "customerError"


@dataclass
class ReadFault:
    """The next `count` authenticated reads (of `server`, or any) answer HTTP `status`, with
    a Retry-After header of `retry_after` seconds when given (e.g. with 429)."""

    status: int
    count: int
    server: str = "*"
    retry_after: float | None = None


@dataclass
class ConflictFault:
    """The next start on `server` (or any) answers 409 DisturbAlreadyExists."""

    server: str = "*"


@dataclass
class ApiErrorFault:
    """The next start on `server` (or any) answers the schema's error class `api_error`."""

    api_error: str
    server: str = "*"


@dataclass
class DelayFault:
    """The next `count` calls matching `method` and the `paths` glob answer after `seconds`.

    The call is processed first (a POST registers its task), then the answer waits.
    """

    seconds: float
    paths: str = "*"
    method: str = "*"
    count: int = 1


@dataclass
class Faults:
    """Pending faults; thread-safe, each consumed as it fires."""

    installs: list[InstallFault] = field(default_factory=list)
    reads: list[ReadFault] = field(default_factory=list)
    conflicts: list[ConflictFault] = field(default_factory=list)
    delays: list[DelayFault] = field(default_factory=list)
    api_errors: list[ApiErrorFault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, spec: dict) -> None:
        """Register the faults described by one JSON object (several keys may be combined)."""
        if not isinstance(spec, dict):
            raise FaultError("a fault is a JSON object")
        known = {"server", "install_error", "at_step", "task_status", "read_errors", "conflict"}
        known |= {"delay_seconds", "paths", "method", "count", "api_error"}
        unknown = set(spec) - known
        kinds = {"install_error", "read_errors", "conflict", "delay_seconds", "api_error"}
        if unknown or not set(spec) & kinds:
            raise FaultError(f"unknown or missing fault keys: {sorted(unknown) or sorted(spec)}")
        server = str(spec.get("server") or "*")
        parsed = _parse(spec, server)
        with self.lock:
            for fault in parsed:
                if isinstance(fault, InstallFault):
                    self.installs.append(fault)
                elif isinstance(fault, ReadFault):
                    self.reads.append(fault)
                elif isinstance(fault, DelayFault):
                    self.delays.append(fault)
                elif isinstance(fault, ApiErrorFault):
                    self.api_errors.append(fault)
                else:
                    self.conflicts.append(fault)

    def take_install(self, server: str) -> InstallFault | None:
        """The install failure planned for `server`'s next deployment, consumed."""
        with self.lock:
            for fault in self.installs:
                if fault.server in ("*", server):
                    self.installs.remove(fault)
                    return fault
        return None

    def take_read(self, server: str | None) -> ReadFault | None:
        """The read fault that answers this read instead of its data (consumed), or None."""
        with self.lock:
            for fault in self.reads:
                if fault.server in ("*", server):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.reads.remove(fault)
                    return fault
        return None

    def take_conflict(self, server: str) -> bool:
        """Whether the next start on `server` must answer 409 (consumed)."""
        with self.lock:
            for fault in self.conflicts:
                if fault.server in ("*", server):
                    self.conflicts.remove(fault)
                    return True
        return False

    def take_api_error(self, server: str) -> str | None:
        """The error class the next start on `server` must answer (consumed), or None."""
        with self.lock:
            for fault in self.api_errors:
                if fault.server in ("*", server):
                    self.api_errors.remove(fault)
                    return fault.api_error
        return None

    def take_delay(self, method: str, path: str) -> float:
        """Seconds to hold the answer of `method path` (0 for none)."""
        with self.lock:
            for fault in self.delays:
                if fault.method in ("*", method) and fnmatch.fnmatchcase(path, fault.paths):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.delays.remove(fault)
                    return fault.seconds
        return 0.0

    def clear(self) -> None:
        """Forget every pending fault."""
        with self.lock:
            self.installs.clear()
            self.reads.clear()
            self.conflicts.clear()
            self.delays.clear()
            self.api_errors.clear()

    def pending(self) -> dict:
        """The pending faults, as JSON-ready data."""
        with self.lock:
            return {
                "installs": [asdict(f) for f in self.installs],
                "reads": [asdict(f) for f in self.reads],
                "conflicts": [asdict(f) for f in self.conflicts],
                "delays": [asdict(f) for f in self.delays],
                "api_errors": [asdict(f) for f in self.api_errors],
            }


def _parse(spec: dict, server: str) -> list:
    status = str(spec.get("task_status") or "customerError")
    if status not in TASK_ERROR_STATUSES:
        raise FaultError(f"task_status must be one of {TASK_ERROR_STATUSES}")
    faults: list = []
    try:
        if "install_error" in spec:
            step = int(spec["at_step"]) if spec.get("at_step") else None
            faults.append(InstallFault(server, str(spec["install_error"]), step, status))
        if "read_errors" in spec:
            reads = spec["read_errors"]
            wait = reads.get("retry_after")
            faults.append(
                ReadFault(
                    int(reads.get("status", 500)),
                    int(reads.get("count", 1)),
                    server,
                    None if wait is None else float(wait),
                )
            )
        if "api_error" in spec:
            name = str(spec["api_error"])
            if name not in schema.all_error_classes():
                raise FaultError(f"{name!r} is not an error class of the API's schema")
            faults.append(ApiErrorFault(name, server))
        if spec.get("conflict"):
            faults.append(ConflictFault(server))
        if "delay_seconds" in spec:
            faults.append(
                DelayFault(
                    float(spec["delay_seconds"]),
                    str(spec.get("paths") or "*"),
                    str(spec.get("method") or "*").upper(),
                    int(spec.get("count") or 1),
                )
            )
    except (TypeError, ValueError, AttributeError) as exc:
        raise FaultError(f"bad fault value: {exc}") from None
    return faults

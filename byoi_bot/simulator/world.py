"""The simulated OVHcloud account: servers, BYOI deployments on a clock, tasks and errors.

No HTTP here: `World` methods take decoded parameters and return JSON-ready data, or raise
`ApiError` carrying the status and body the real API would send. A reinstall task moves
init → todo → doing → done | customerError | ovhError | cancelled; `install/status` answers
only while it is `doing` (404 before and after, as the API does).
"""

from __future__ import annotations

import bisect
import copy
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

from ..errors import ConfigError
from ..ovhcloud import schema
from .errors import ApiError, api_error
from .faults import Faults, InstallFault
from .rules import check_reinstall

STEPS = (
    "Prepare installation",
    "Download image",
    "Check image checksum",
    "Write image to disk",
    "Create config drive",
    "Configure boot loader",
    "Reboot server",
)
# The step an installer message belongs to (first match), else "Write image to disk".
_STEP_OF_MESSAGE = (
    ("configdrive", 4),
    ("download", 1),
    ("checksum", 2),
    ("bad format", 0),
)
# Cancelling stops a task only before this step (the simulator's assumption: once the
# image is being written, stopping would leave a half-written disk).
LAST_CANCELLABLE_STEP = STEPS.index("Write image to disk")
IMAGE_TYPES = ("qcow2", "raw")
CHECKSUM_TYPES = ("md5", "sha1", "sha256", "sha512")
FIRST_TASK_ID = 5_000_001
LEGACY_ROUTE = "/dedicated/server/{serviceName}/bringYourOwnImage"
TASK_COMMENT = "Start bare metal OS installation"
NOT_INSTALLING = "Server is not being installed or reinstalled at the moment"
ACTIVE = ("init", "todo", "doing")


class InventoryError(ConfigError):
    """An inventory file that cannot be read or does not describe servers."""


def load_inventory(source: str | Path | dict | None) -> dict:
    """Inventory data from a JSON file, a dict, or the built-in `inventory.json`.

    Raises `InventoryError` naming the file and what is wrong with it.
    """
    if isinstance(source, dict):
        return copy.deepcopy(source)
    where = f"--inventory {source}"
    try:
        if source is None:
            text = resources.files(__package__).joinpath("inventory.json").read_text()
        else:
            text = Path(source).read_text()
        data = json.loads(text)
    except OSError as exc:
        raise InventoryError(f"{where}: {exc.strerror}; expected a JSON file") from None
    except ValueError as exc:
        raise InventoryError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("servers"), list):
        raise InventoryError(f"{where}: an inventory is a JSON object with a `servers` list")
    for entry in data["servers"]:
        if not isinstance(entry, dict) or not (entry.get("server") or {}).get("name"):
            raise InventoryError(f"{where}: each server needs `server.name` and `hardware`")
        if "hardware" not in entry:
            raise InventoryError(f"{where}: each server needs `server.name` and `hardware`")
    return data


@dataclass
class Deployment:
    """One BYOI deployment (`reinstall` with a task, or `legacy`) moving through STEPS."""

    kind: str
    server: str
    started: float
    duration: float
    start_date: datetime
    checksum: str = ""
    task_id: int | None = None
    error: str | None = None
    error_step: int = 0
    error_status: str = "customerError"
    os: str = "byoi_64"
    cancelled_after: float | None = None  # seconds after the start
    profile: tuple[tuple[str, float], ...] = ()  # (step, seconds); empty: STEPS, equal parts

    def _names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.profile) if self.profile else STEPS

    def _ends(self) -> list[float]:
        """Seconds after the start when each step ends."""
        if not self.profile:
            return [self.duration * (i + 1) / len(STEPS) for i in range(len(STEPS))]
        return list(itertools.accumulate(seconds for _, seconds in self.profile))

    def _queued(self) -> float:
        """Seconds spent in `init`, then as many in `todo`, before the installer starts."""
        return min(1.0, self._ends()[0] / 4)

    def _end(self) -> float:
        """Seconds after the start when it ends: cancelled, half way through the failing
        step, or done."""
        if self.cancelled_after is not None:
            return self.cancelled_after
        ends = self._ends()
        if self.error is None:
            return ends[-1]
        step = min(self.error_step, len(ends) - 1)
        return ((ends[step - 1] if step else 0.0) + ends[step]) / 2

    def _index(self, elapsed: float) -> int:
        return bisect.bisect_right(self._ends(), elapsed)

    def status(self, now: float) -> str:
        """init, todo, doing, done, error or cancelled."""
        elapsed = now - self.started
        if elapsed >= self._end():
            if self.cancelled_after is not None:
                return "cancelled"
            return "done" if self.error is None else "error"
        if elapsed < self._queued():
            return "init"
        return "todo" if elapsed < 2 * self._queued() else "doing"

    def is_active(self, now: float) -> bool:
        return self.status(now) in ACTIVE

    def current_step(self, now: float) -> int:
        """Index of the step under way (the number of steps once every step is done)."""
        return self._index(now - self.started)

    def steps(self, now: float) -> list[dict]:
        """Install steps as GET install/status lists them."""
        status = self.status(now)
        names = self._names()
        current = self._index(now - self.started)
        if status == "done":
            current = len(names)
        elif self.error is not None:
            current = min(current, self.error_step)
        result = []
        for index, comment in enumerate(names):
            state = "done" if index < current else "todo"
            if index == current:
                state = "error" if status == "error" else "doing"
            error = self.error if state == "error" else None
            result.append({"comment": comment, "status": state, "error": error})
        return result

    def elapsed(self, now: float) -> int:
        return int(min(now - self.started, self._end()))

    def date_after(self, seconds: float) -> str:
        return _iso(self.start_date + timedelta(seconds=seconds))

    def end_date(self, now: float) -> str | None:
        if self.is_active(now):
            return None
        return self.date_after(self._end())


class World:
    """The account the simulator serves; every public method is thread-safe."""

    def __init__(
        self,
        inventory: str | Path | dict | None = None,
        deploy_seconds: float = 60.0,
        clock: Callable[[], float] | None = None,
        install_steps: tuple[tuple[str, float], ...] = (),
    ) -> None:
        self._source = load_inventory(inventory)
        self.deploy_seconds = deploy_seconds
        self.install_steps = install_steps  # (step, seconds); empty: STEPS in deploy_seconds
        self._clock = clock or time.monotonic
        self.faults = Faults()
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Back to the inventory as loaded: no deployment, no fault, clock offset zero."""
        with self._lock:
            entries = copy.deepcopy(self._source["servers"])
            self._servers = {e["server"]["name"]: e for e in entries}
            self._latest: dict[str, dict[str, Deployment]] = {}
            self._tasks: dict[int, Deployment] = {}
            self._next_task = FIRST_TASK_ID
            self._offset = 0.0
            self.faults.clear()

    def now(self) -> float:
        """The simulator's monotonic time: the clock plus any manual advance."""
        return self._clock() + self._offset

    def advance(self, seconds: float) -> float:
        """Move the simulator's time on by `seconds`; returns the new time."""
        with self._lock:
            self._offset += seconds
            return self.now()

    # -- reads ------------------------------------------------------------------------

    def server_names(self) -> list[str]:
        return sorted(self._servers)

    def server(self, name: str) -> dict:
        with self._lock:
            entry = self._entry(name)
            view = dict(entry["server"])
            latest = self._latest_of(name)
            if latest and latest.kind == "reinstall" and latest.status(self.now()) == "done":
                view["os"] = latest.os
            return view

    def install_ended(self, name: str) -> float | None:
        """Seconds since `name`'s latest install ended well (None: none did); its boot."""
        with self._lock:
            latest = self._latest_of(name)
            now = self.now()
            if latest is None or latest.status(now) != "done":
                return None
            return now - latest.started - latest._end()

    def hardware(self, name: str) -> dict:
        return copy.deepcopy(self._entry(name)["hardware"])

    def tasks(self, name: str, function: str | None, status: str | None) -> list[int]:
        with self._lock:
            self._entry(name)
            now = self.now()
            return [
                task_id
                for task_id, d in sorted(self._tasks.items())
                if d.server == name
                and function in (None, "reinstallServer")
                and status in (None, _task_status(d, now))
            ]

    def task(self, name: str, task_id: int) -> dict:
        with self._lock:
            self._entry(name)
            deployment = self._tasks.get(task_id)
            if deployment is None or deployment.server != name:
                raise _no_task(task_id)
            return _task_view(deployment, self.now())

    def install_status(self, name: str) -> dict:
        with self._lock:
            self._entry(name)
            deployment = self._latest.get(name, {}).get("reinstall")
            now = self.now()
            if deployment is None or deployment.status(now) != "doing":
                raise ApiError(404, "Client::NotFound", NOT_INSTALLING)
            return {"elapsedTime": deployment.elapsed(now), "progress": deployment.steps(now)}

    def byoi_status(self, name: str) -> dict:
        with self._lock:
            self._entry(name)
            deployment = self._latest.get(name, {}).get("legacy")
            if deployment is None:
                raise ApiError(404, "Client::NotFound", "No BringYourOwnImage deployment found")
            return _legacy_view(deployment, self.now())

    # -- writes -------------------------------------------------------------------------

    def reinstall(self, name: str, body: dict) -> dict:
        """POST /reinstall: validate like the API, then register the task."""
        with self._lock:
            entry = self._entry(name)
            self._injected_error(
                name, body.get("operatingSystem") if isinstance(body, dict) else ""
            )
            check_reinstall(body, entry)
            self._check_free(name, "reinstall")
            custom = body.get("customizations") or {}
            deployment = self._deploy(name, "reinstall", custom.get("imageCheckSum") or "")
            deployment.os = body["operatingSystem"]
            view = _task_view(deployment, self.now())
            return {k: view[k] for k in TASK_RESPONSE_FIELDS}

    def cancel_task(self, name: str, task_id: int) -> None:
        """POST task/{id}/cancel: stops a reinstall until its image is being written."""
        with self._lock:
            self._entry(name)
            deployment = self._tasks.get(task_id)
            if deployment is None or deployment.server != name:
                raise _no_task(task_id)
            now = self.now()
            status = _task_status(deployment, now)
            if status not in ACTIVE:
                raise ApiError(400, "Client::BadRequest", f"Task {task_id} is already {status}")
            if status == "doing" and deployment.current_step(now) >= LAST_CANCELLABLE_STEP:
                raise ApiError(
                    400,
                    "Client::BadRequest",
                    f"Task {task_id} cannot be cancelled any more: the image is being "
                    "written to the disk",
                )
            deployment.cancelled_after = now - deployment.started

    def start_byoi(self, name: str, body: dict) -> None:
        """POST /bringYourOwnImage (legacy): validate like the API, then start; returns null."""
        with self._lock:
            entry = self._entry(name)
            self._injected_error(name, "")
            if not body.get("URL"):
                raise ApiError(400, "Client::BadRequest", "Missing parameter(s): URL")
            if body.get("type") not in IMAGE_TYPES:
                raise ApiError(400, "Client::BadRequest", "Bad format image, expected: qcow2, raw.")
            if bool(body.get("checkSum")) != bool(body.get("checkSumType")):
                raise ApiError(
                    400,
                    "Client::BadRequest",
                    "Please provide checkSum AND checkSumType or none of them",
                )
            if body.get("checkSumType") and body["checkSumType"] not in CHECKSUM_TYPES:
                raise ApiError(
                    400, "Client::BadRequest", "Bad checkSumType, expected: sha1, sha256, md5."
                )
            problems = schema.errors(body, schema.request_schema("POST", LEGACY_ROUTE))
            if problems:
                where = ".".join(str(p) for p in problems[0].absolute_path) or "body"
                message = f"Invalid parameter {where}: {problems[0].message}"
                raise ApiError(400, "Client::BadRequest", message)
            _check_disk_group(entry, body.get("diskGroupId"))
            self._check_free(name, "legacy")
            self._deploy(name, "legacy", body.get("checkSum") or "")

    def delete_byoi(self, name: str) -> None:
        """DELETE /bringYourOwnImage: forget the legacy deployment (the API also boots rescue)."""
        with self._lock:
            self._entry(name)
            if self._latest.get(name, {}).pop("legacy", None) is None:
                raise ApiError(404, "Client::NotFound", "No BringYourOwnImage deployment found")

    # -- internals ----------------------------------------------------------------------

    def _entry(self, name: str) -> dict:
        entry = self._servers.get(name)
        if entry is None:
            raise ApiError(
                404,
                "Client::NotFound",
                f"The requested object (serviceName = {name}) does not exist",
            )
        return entry

    def _latest_of(self, name: str) -> Deployment | None:
        deployments = self._latest.get(name, {}).values()
        return max(deployments, key=lambda d: d.started, default=None)

    def _injected_error(self, name: str, os_name: object) -> None:
        """Answer the error class a control-API fault planned for this start, if any."""
        planned = self.faults.take_api_error(name)
        if planned:
            raise api_error(
                planned,
                serverName=name,
                operatingSystem=os_name or "byoi_64",
                taskId=self._next_task,
                taskFunction="reinstallServer",
                taskStatus="doing",
            )

    def _check_free(self, name: str, kind: str) -> None:
        now = self.now()
        running = [d for d in self._latest.get(name, {}).values() if d.is_active(now)]
        task = next((d for d in running if d.kind == kind == "reinstall"), None)
        if task is not None:
            raise api_error(
                "Client::BadRequest::TaskAlreadyExists",
                taskId=task.task_id,
                taskFunction="reinstallServer",
                taskStatus=_task_status(task, now),
                serverName=name,
            )
        if running or self.faults.take_conflict(name):
            raise api_error("Client::Conflict::DisturbAlreadyExists", serverName=name)

    def _deploy(self, name: str, kind: str, checksum: str) -> Deployment:
        deployment = Deployment(
            kind, name, self.now(), self.deploy_seconds, datetime.now(UTC), checksum,
            profile=self.install_steps,
        )  # fmt: skip
        fault = self.faults.take_install(name)
        planned = self._servers[name].get("install_error")
        if fault is None and planned:
            fault = InstallFault(name, planned)
        if fault is not None:
            deployment.error = fault.message
            deployment.error_status = fault.task_status
            deployment.error_step = _step_of(fault)
        if kind == "reinstall":
            deployment.task_id = self._next_task
            self._tasks[self._next_task] = deployment
            self._next_task += 1
        self._latest.setdefault(name, {})[kind] = deployment
        return deployment


def _step_of(fault: InstallFault) -> int:
    if fault.at_step:
        return max(0, min(len(STEPS), fault.at_step) - 1)
    text = fault.message.lower()
    return next((step for word, step in _STEP_OF_MESSAGE if word in text), 3)


def _check_disk_group(entry: dict, group_id: object) -> None:
    if group_id is None:
        return
    ids = [g["diskGroupId"] for g in entry["hardware"].get("diskGroups", [])]
    if group_id not in ids:
        raise api_error(
            "Client::NotFound::DiskGroup",
            diskGroupName=f"diskGroup {group_id}",
            serverName=entry["server"]["name"],
        )


def _no_task(task_id: int) -> ApiError:
    return ApiError(
        404, "Client::NotFound", f"The requested object (taskId = {task_id}) does not exist"
    )


def _task_status(deployment: Deployment, now: float) -> str:
    status = deployment.status(now)
    return deployment.error_status if status == "error" else status


# POST /reinstall answers a dedicated.server.task.Response, a subset of the task.
TASK_RESPONSE_FIELDS = ("comment", "doneDate", "function", "startDate", "status", "taskId")


def _task_view(deployment: Deployment, now: float) -> dict:
    """Every field of the schema's dedicated.server.Task.

    A failed task's comment is the installer's message; a cancelled one says so.
    """
    status = _task_status(deployment, now)
    comment = TASK_COMMENT
    if status in ("customerError", "ovhError"):
        comment = deployment.error or comment
    elif status == "cancelled":
        comment = "Task cancelled by the customer"
    return {
        "taskId": deployment.task_id,
        "function": "reinstallServer",
        "status": status,
        "comment": comment,
        "startDate": _iso(deployment.start_date),
        "doneDate": deployment.end_date(now),
        "lastUpdate": deployment.date_after(deployment.elapsed(now)),
        "needSchedule": False,
        "note": None,
        "plannedInterventionId": None,
        "tags": None,
        "ticketReference": None,
    }


def _legacy_view(deployment: Deployment, now: float) -> dict:
    status = deployment.status(now)
    if status in ("init", "todo"):
        message = "starting"
    elif status == "error":
        message = deployment.error or ""
    elif status == "done":
        message = "Deployment done, rebooting on disk"
    else:
        message = next(s["comment"] for s in deployment.steps(now) if s["status"] == "doing")
    return {
        "checksum": deployment.checksum,
        "message": message,
        "servername": deployment.server,
        "status": "doing" if status in ACTIVE else status,
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

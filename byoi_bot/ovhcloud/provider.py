"""core.ports.Provider over `ovh.Client`: the `reinstall` API (default) and the legacy BYOI API.

Handles: `reinstall:<taskId>` and `legacy:<serviceName>`; both survive restarts. Reads are
retried with exponential back-off (at least the Retry-After of a 429), except the polls'
reads, which fail at once so that the poller reschedules them. The start call is never
repeated: when its outcome is unknown (timeout, 5xx) or the server is busy, the provider
looks for a running deployment (`find_active`) instead.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import ovh.exceptions as ovh_errors
import requests
from urllib3.exceptions import NewConnectionError

from ..core.budget import CallBudget
from ..core.policy import DEFAULT_ACCOUNT
from ..core.ports import DiskGroup, Explanation, Provider, ProviderError, ServerFacts
from ..core.progress import Phase, Progress, Step
from ..core.request import OPERATING_SYSTEMS, DeploySpec
from .errors import explain_exception

log = logging.getLogger(__name__)

REINSTALL = "reinstall:"
LEGACY = "legacy:"
ACTIVE_TASK_STATUSES = ("init", "todo", "doing")
START_COMMENT = "Start bare metal OS installation"  # a reinstall task's comment as created
TASK_PHASES = {
    "init": Phase.PENDING,
    "todo": Phase.PENDING,
    "doing": Phase.RUNNING,
    "done": Phase.DONE,
    "customerError": Phase.FAILED,
    "ovhError": Phase.FAILED,
    "cancelled": Phase.FAILED,
}
# install/status step statuses: still to come, or the end of the installation (read the task).
INSTALLING_STEP_STATUSES = ("todo", "doing", "pending", "idle")
FAILED_STEP_STATUSES = ("error", "expired", "stopping")
LEGACY_PHASES = {"doing": Phase.RUNNING, "done": Phase.DONE, "error": Phase.FAILED}
RETRIED_STATUSES = (429, 500, 502, 503, 504)
# memorySize is in binary units (65536 MB = 64 GiB); diskSize in a disk maker's decimal ones.
MEMORY_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
DISK_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


@dataclass(frozen=True)
class RetryPolicy:
    """How reads are retried: `attempts` in all, waits doubling from `first_delay`."""

    attempts: int = 5
    first_delay: float = 2.0
    max_delay: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def delays(self) -> Iterator[float]:
        for attempt in range(self.attempts - 1):
            yield min(self.first_delay * 2**attempt, self.max_delay)


class _OvhProvider(ABC):
    """What both API generations share: server facts, retried reads, the guarded start."""

    prefix = ""
    api = ""

    def __init__(self, client, *, retry: RetryPolicy | None = None) -> None:
        self.client = client
        self.retry = retry or RetryPolicy()

    def owns(self, handle: str) -> bool:
        """Whether `handle` was made by this kind of provider."""
        return handle.startswith(self.prefix)

    def server_facts(self, server: str) -> ServerFacts:
        """GET the server and its hardware; bytes from MB (binary) and GB (decimal)."""
        base = _server_path(server)
        try:
            info = self._read(base, retry_not_found=False)
        except ProviderError as exc:
            if exc.explanation.code == "not_found":
                raise ProviderError(_server_not_found(server, exc.explanation.raw)) from None
            raise
        hardware = self._read(f"{base}/specifications/hardware")
        groups = tuple(
            DiskGroup(
                id=int(g["diskGroupId"]),
                disk_size_bytes=_bytes(g.get("diskSize"), DISK_UNITS),
                disk_type=str(g.get("diskType") or ""),
                number_of_disks=int(g.get("numberOfDisks") or 1),
                description=str(g.get("description") or ""),
                raid_controller=str(g.get("raidController") or ""),
            )
            for g in hardware.get("diskGroups") or []
        )
        return ServerFacts(
            name=str(info.get("name") or server),
            datacenter=str(info.get("datacenter") or ""),
            state=str(info.get("state") or ""),
            boot_mode=str(hardware.get("bootMode") or ""),
            ram_bytes=_bytes(hardware.get("memorySize"), MEMORY_UNITS),
            disk_groups=groups,
            efi_bootloader_path=info.get("efiBootloaderPath") or None,
            power_state=str(info.get("powerState") or "poweron"),
            architecture=str(hardware.get("processorArchitecture") or ""),
            ip=str(info.get("ip") or ""),
        )

    @abstractmethod
    def find_active(self, server: str) -> str | None:
        """The handle of a deployment running on `server`, if any."""

    def mark(self, server: str) -> str:
        """A mark of the deployments `server` has had so far, taken before a start."""
        return ""

    def find_since(self, server: str, mark: str) -> str | None:
        """A deployment started after `mark`, running or already ended (default: running)."""
        return self.find_active(server)

    def list_servers(self) -> list[str]:
        """GET /dedicated/server: the account's server names, lower-case."""
        return sorted(str(name).lower() for name in self._read("/dedicated/server") or [])

    def account_of(self, server: str) -> str:
        """One client, one account: the zero-configuration one."""
        return DEFAULT_ACCOUNT

    def accounts(self) -> dict[str, int]:
        return {}

    def _read(self, path: str, *, retry_not_found: bool = True, retried: bool = True, **query: str):
        """GET `path`, retrying transient failures (unless not `retried`); raises
        ProviderError when they persist, marked `transient` with any Retry-After."""
        delays = self.retry.delays() if retried else iter(())
        while True:
            try:
                return self.client.get(path, **query)
            except ovh_errors.APIError as exc:
                transient = _transient(exc, retry_not_found)
                wait = _retry_after(exc)
                delay = next(delays, None) if transient else None
                if delay is None:
                    raise ProviderError(
                        explain_exception(exc), transient=transient, retry_after=wait
                    ) from None
                delay = max(delay, wait or 0)
                log.warning("GET %s failed (%s); retrying in %.0f s", path, _kind(exc), delay)
                self.retry.sleep(delay)

    def _start(self, spec: DeploySpec, path: str, body: dict, handle_of: Callable) -> str:
        """POST once; on an unknown outcome, adopt the deployment the POST may have started.

        A busy answer is never adopted: the bot posts once per request, so the running
        deployment is somebody else's.
        """
        try:
            return handle_of(self.client.post(path, **body))
        except ovh_errors.APIError as exc:
            explanation = _scrub(explain_exception(exc), spec)
            unknown = _may_have_happened(exc)
            if not unknown:
                raise ProviderError(explanation) from None
        log.warning("start on %s: %s; looking for a running one", spec.server, explanation.code)
        try:
            handle = self.find_active(spec.server)
        except ProviderError as exc:
            log.warning("start on %s: cannot list deployments: %s", spec.server, exc)
            handle = None
        if handle:
            log.info("start on %s: adopted running deployment %s", spec.server, handle)
            return handle
        raise ProviderError(explanation, outcome_unknown=unknown)


class ReinstallProvider(_OvhProvider):
    """BYOI through POST /dedicated/server/{sn}/reinstall (byoi_64 or byolinux_64)."""

    prefix = REINSTALL
    api = "reinstall"

    def __init__(
        self, client, *, retry: RetryPolicy | None = None, task_check_every: int = 10
    ) -> None:
        super().__init__(client, retry=retry)
        self.task_check_every = max(1, task_check_every)
        self._polls: dict[str, int] = {}  # handle -> polls since its task was last read

    def start(self, spec: DeploySpec) -> str:
        """Start the reinstall; the handle is `reinstall:<taskId>`."""
        path = f"{_server_path(spec.server)}/reinstall"
        return self._start(spec, path, reinstall_body(spec), lambda t: f"{REINSTALL}{t['taskId']}")

    def progress(self, server: str, handle: str) -> Progress:
        """One GET of install/status while the installation visibly runs; the task at the end.

        install/status gives the steps and the elapsed time; while a step is still to do (and
        none failed) that is all a poll needs: one call. The task, which alone says how the
        deployment ended (done, customerError, ovhError, cancelled), is read when
        install/status has nothing running to show (404, no steps, every step done, an error),
        and every `task_check_every`-th poll of a handle, so that a task ended by OVHcloud
        while install/status still shows a step running is noticed too.
        """
        task_path = f"{_server_path(server)}/task/{_task_id(handle)}"
        install = self._install_status(server)
        steps = tuple(
            Step(str(p.get("comment") or ""), str(p.get("status") or ""), p.get("error"))
            for p in install.get("progress") or []
        )
        elapsed = install.get("elapsedTime")
        installing = _installing(steps)
        polls = self._polls.pop(handle, 0) + 1
        if installing and polls % self.task_check_every:
            self._polls[handle] = polls
            return Progress(_install_phase(steps, elapsed), steps, elapsed)
        task = self._read(task_path, retried=False)
        status = str(task.get("status") or "")
        phase = TASK_PHASES.get(status, Phase.RUNNING)
        if not phase.is_final:
            self._polls[handle] = 0
            if installing:  # the same answer as the one-call polls, so no flip-flop
                phase = _install_phase(steps, elapsed)
        error = next((s.error for s in steps if s.status == "error" and s.error), None)
        message = str(task.get("comment") or "")
        if phase is Phase.FAILED:
            message = error or _task_failure(status, message)
        return Progress(phase, steps, elapsed, message)

    def cancel(self, server: str, handle: str) -> None:
        """POST task/{taskId}/cancel; a refusal is explained in plain words."""
        try:
            self.client.post(f"{_server_path(server)}/task/{_task_id(handle)}/cancel")
        except ovh_errors.APIError as exc:
            explained = explain_exception(exc)
            if not isinstance(
                exc, ovh_errors.BadParametersError | ovh_errors.ResourceConflictError
            ):
                raise ProviderError(explained) from None
            raise ProviderError(_cancel_refused(explained.raw)) from None

    def find_active(self, server: str) -> str | None:
        """The newest reinstallServer task not yet final, as a handle."""
        path = f"{_server_path(server)}/task"
        ids = [
            int(task_id)
            for status in ACTIVE_TASK_STATUSES
            for task_id in self._read(path, function="reinstallServer", status=status) or []
        ]
        return f"{REINSTALL}{max(ids)}" if ids else None

    def mark(self, server: str) -> str:
        """The newest reinstallServer task id so far (`0` when there is none)."""
        ids = self._read(f"{_server_path(server)}/task", function="reinstallServer") or []
        return str(max((int(i) for i in ids), default=0))

    def find_since(self, server: str, mark: str) -> str | None:
        """The newest reinstallServer task newer than `mark`, whatever its status."""
        ids = self._read(f"{_server_path(server)}/task", function="reinstallServer") or []
        newer = [int(i) for i in ids if int(i) > int(mark or 0)]
        return f"{REINSTALL}{max(newer)}" if newer else None

    def _install_status(self, server: str) -> dict:
        try:
            path = f"{_server_path(server)}/install/status"
            return self._read(path, retry_not_found=False, retried=False)
        except ProviderError as exc:
            if exc.explanation.code == "not_found":
                return {}  # no installation running (any more)
            raise


def _task_failure(status: str, comment: str) -> str:
    """A failed task's own words: its comment when that is the installer's message.

    install/status answers 404 once an installation has ended, so after a failure the task's
    comment is what is left of the installer's message.
    """
    if status == "cancelled" or comment in ("", START_COMMENT):
        return f"task {status}: {comment}".rstrip(": ")
    return comment


def _installing(steps: tuple[Step, ...]) -> bool:
    """Whether install/status shows an installation still running (a step left, none failed)."""
    return any(s.status in INSTALLING_STEP_STATUSES for s in steps) and not any(
        s.status in FAILED_STEP_STATUSES for s in steps
    )


def _install_phase(steps: tuple[Step, ...], elapsed: object) -> Phase:
    """Pending until the installer has done anything (the task's init/todo), then running."""
    started = any(s.status == "done" for s in steps) or (
        bool(elapsed) and any(s.status == "doing" for s in steps)
    )
    return Phase.RUNNING if started else Phase.PENDING


class LegacyProvider(_OvhProvider):
    """BYOI through the legacy /dedicated/server/{sn}/bringYourOwnImage API."""

    prefix = LEGACY
    api = "legacy"

    def start(self, spec: DeploySpec) -> str:
        """Start the deployment (the API returns null); the handle is `legacy:<server>`."""
        path = f"{_server_path(spec.server)}/bringYourOwnImage"
        return self._start(spec, path, legacy_body(spec), lambda _: f"{LEGACY}{spec.server}")

    def progress(self, server: str, handle: str) -> Progress:
        """From GET bringYourOwnImage: status doing/done/error and its message."""
        data = self._read(f"{_server_path(server)}/bringYourOwnImage", retried=False)
        message = str(data.get("message") or "")
        phase = LEGACY_PHASES.get(str(data.get("status") or ""), Phase.RUNNING)
        if phase is Phase.RUNNING and message == "starting":
            phase = Phase.PENDING
        return Progress(phase, message=message)

    def cancel(self, server: str, handle: str) -> None:
        """DELETE bringYourOwnImage: the deployment is erased, the server boots rescue."""
        try:
            self.client.delete(f"{_server_path(server)}/bringYourOwnImage")
        except ovh_errors.APIError as exc:
            raise ProviderError(explain_exception(exc)) from None

    def find_active(self, server: str) -> str | None:
        """`legacy:<server>` when a deployment is in progress on it."""
        try:
            data = self._read(f"{_server_path(server)}/bringYourOwnImage", retry_not_found=False)
        except ProviderError as exc:
            if exc.explanation.code == "not_found":
                return None
            raise
        return f"{LEGACY}{server}" if (data or {}).get("status") == "doing" else None


class RoutingProvider:
    """Chooses a provider by server name (first matching glob), else `default`.

    Progress and cancel follow the handle's kind when the server's route has changed since;
    `others` are providers no pattern routes to any more that may still own stored handles.
    """

    def __init__(
        self,
        default: Provider,
        by_pattern: Sequence[tuple[str, Provider]] = (),
        others: Sequence[Provider] = (),
        budget: CallBudget | None = None,
    ) -> None:
        self.default = default
        self.by_pattern = list(by_pattern)
        self.others = list(others)
        self.budget = budget  # the account's call budget (None: calls are not counted)

    def for_server(self, server: str) -> Provider:
        """The provider that handles `server`."""
        return next(
            (
                p
                for pattern, p in self.by_pattern
                if fnmatch.fnmatchcase(server.lower(), pattern.lower())  # as policies match
            ),
            self.default,
        )

    def server_facts(self, server: str) -> ServerFacts:
        return self.for_server(server).server_facts(server)

    def start(self, spec: DeploySpec) -> str:
        """Start with the API fixed in the spec when the request was made, else the route's."""
        routed = self.for_server(spec.server)
        candidates = (routed, self.default, *(p for _, p in self.by_pattern), *self.others)
        chosen = next((p for p in candidates if getattr(p, "api", None) == spec.api), routed)
        return chosen.start(spec)

    def progress(self, server: str, handle: str) -> Progress:
        return self._owner(server, handle).progress(server, handle)

    def cancel(self, server: str, handle: str) -> None:
        self._owner(server, handle).cancel(server, handle)

    def find_active(self, server: str) -> str | None:
        return self.for_server(server).find_active(server)

    def mark(self, server: str) -> str:
        return self.for_server(server).mark(server)

    def find_since(self, server: str, mark: str) -> str | None:
        return self.for_server(server).find_since(server, mark)

    def list_servers(self) -> list[str]:
        return self.default.list_servers()

    def account_of(self, server: str) -> str:
        return self.default.account_of(server)

    def accounts(self) -> dict[str, int]:
        return self.default.accounts()

    def budget_of(self, server: str) -> CallBudget | None:
        return self.budget

    def _owner(self, server: str, handle: str) -> Provider:
        routed = self.for_server(server)
        candidates = (routed, self.default, *(p for _, p in self.by_pattern), *self.others)
        owners = (p for p in candidates if getattr(p, "owns", lambda _: False)(handle))
        return next(owners, routed)


def reinstall_body(spec: DeploySpec) -> dict:
    """The POST /reinstall body (docs/ovhcloud-api.md); `core.sent` shows the same.

    byoi_64 takes the image type and the EFI bootloader path, byolinux_64 (qcow2 only)
    neither. `config-drive=` is not sent: the reinstall API has no such switch, and
    requests that would need it off are refused when they are made.
    """
    custom: dict = {"imageURL": spec.image_url}
    if spec.os == "byoi":
        custom["imageType"] = spec.image_type
    if spec.checksum:
        custom |= {"imageCheckSum": spec.checksum.value, "imageCheckSumType": spec.checksum.type}
    if spec.headers:
        custom["httpHeaders"] = dict(spec.headers)
    if spec.os == "byoi" and spec.efi_bootloader:
        custom["efiBootloaderPath"] = spec.efi_bootloader
    optional = {"hostname": spec.hostname, "sshKey": spec.ssh_key}
    optional["configDriveUserData"] = spec.user_data
    custom |= {k: v for k, v in optional.items() if v}
    if spec.metadata:
        custom["configDriveMetadata"] = dict(spec.metadata)
    body = {"operatingSystem": OPERATING_SYSTEMS[spec.os], "customizations": custom}
    storage = []
    if spec.disk_group is not None or spec.raid is not None:
        target: dict = {"diskGroupId": spec.disk_group or 0}  # 0: the API chooses
        if spec.raid is not None:
            target["hardwareRaid"] = [{"raidLevel": spec.raid}]
        storage.append(target)
    # Kept disk groups (partitioning guide, ovh/ovhcloud-docs#531): `core.sent.resolve` has
    # named the OS disk group above and checked these against the server's groups.
    storage += [{"diskGroupId": group, "erase": False} for group in spec.keep_disks or ()]
    if storage:
        body["storage"] = storage
    return body


def legacy_body(spec: DeploySpec) -> dict:
    """The POST /bringYourOwnImage body (the seed's fields)."""
    body: dict = {"URL": spec.image_url, "type": spec.image_type}
    if spec.checksum:
        body |= {"checkSum": spec.checksum.value, "checkSumType": spec.checksum.type}
    drive = {"hostname": spec.hostname, "sshKey": spec.ssh_key, "userData": spec.user_data}
    drive = {k: v for k, v in drive.items() if v}
    if spec.metadata:
        drive["userMetadatas"] = [{"key": k, "value": v} for k, v in spec.metadata]
    if spec.config_drive or (spec.config_drive is None and drive):
        body["configdrive"] = {"enable": True, **drive}
    if spec.description:
        body["description"] = spec.description
    if spec.disk_group:  # 0 means automatic: not sent
        body["diskGroupId"] = spec.disk_group
    if spec.headers:
        body["httpHeader"] = [{"key": k, "value": v} for k, v in spec.headers]
    return body


def _cancel_refused(raw: str) -> Explanation:
    return Explanation(
        "OVHcloud refused to cancel the running installation.",
        "A task can be stopped only while it has not gone too far; this one has (the image "
        "is probably being written to the disk), or it has already ended.",
        "Let it finish and deploy again, or reboot the server into rescue mode from the "
        "control panel (the disk may be left half written).",
        raw,
        "cancel_refused",
    )


def _server_path(server: str) -> str:
    return f"/dedicated/server/{server}"


def _task_id(handle: str) -> int:
    if handle.startswith(REINSTALL) and handle[len(REINSTALL) :].isdigit():
        return int(handle[len(REINSTALL) :])
    raise ProviderError(
        Explanation(
            "byoi-bot cannot follow this deployment: its reference is not a reinstall task.",
            f"The stored handle {handle!r} was not made by the reinstall API.",
            "Check the deployment in the OVHcloud control panel.",
            handle,
            "bad_handle",
        )
    )


def _bytes(size: dict | None, units: dict[str, int]) -> int:
    if not size:
        return 0
    return int(float(size.get("value") or 0) * units.get(str(size.get("unit", "B")).upper(), 1))


def _status(exc: ovh_errors.APIError) -> int | None:
    return getattr(getattr(exc, "response", None), "status_code", None)


def _transient(exc: ovh_errors.APIError, retry_not_found: bool) -> bool:
    if isinstance(exc, ovh_errors.HTTPError | ovh_errors.InvalidResponse):
        return True
    if isinstance(exc, ovh_errors.ResourceNotFoundError):
        return retry_not_found
    return _status(exc) in RETRIED_STATUSES


def _retry_after(exc: ovh_errors.APIError) -> float | None:
    """The seconds of a 429's Retry-After header (a number; an HTTP date is not used here)."""
    if _status(exc) != 429:
        return None
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    try:
        return max(0.0, float(headers.get("Retry-After", "")))
    except ValueError:
        return None


def _may_have_happened(exc: ovh_errors.APIError) -> bool:
    """Whether a failed POST may still have reached OVHcloud (so must not be repeated)."""
    if isinstance(exc, ovh_errors.InvalidResponse):
        return True
    if isinstance(exc, ovh_errors.HTTPError):
        inner = next((a for a in exc.args if isinstance(a, BaseException)), None)
        reason = getattr(inner.args[0], "reason", None) if inner and inner.args else None
        never_sent = isinstance(inner, requests.ConnectTimeout) or isinstance(
            reason, NewConnectionError
        )
        return not never_sent
    return (_status(exc) or 0) >= 500


def _kind(exc: ovh_errors.APIError) -> str:
    return str(_status(exc) or type(exc).__name__)


def _scrub(explanation: Explanation, spec: DeploySpec) -> Explanation:
    """Hide any secret of `spec` (header values, user data) an API message might echo."""
    secrets = [v for _, v in spec.headers if len(v) >= 4]
    if spec.user_data and len(spec.user_data) >= 4:
        secrets.append(spec.user_data)
    if not secrets:
        return explanation

    def clean(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    return replace(
        explanation,
        summary=clean(explanation.summary),
        cause=clean(explanation.cause),
        action=clean(explanation.action),
        raw=clean(explanation.raw),
    )


def _server_not_found(server: str, raw: str) -> Explanation:
    return Explanation(
        f"OVHcloud does not know the server {server}.",
        "The name is wrong, or the server belongs to another account than the bot's credentials.",
        "Check the service name in the control panel (e.g. ns1234567.ip-1-2-3.eu).",
        raw,
        "server_not_found",
    )

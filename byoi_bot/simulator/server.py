"""The simulator's HTTP server: both BYOI API generations under /1.0, control API under /_simulator.

`Simulator` runs it in a background thread (tests, shell, demo); `serve` blocks (the CLI).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ..ovhcloud.iam import actions_of
from . import auth
from .boots import Behaviour, BootError, Boots
from .errors import ApiError
from .faults import FaultError
from .world import World

log = logging.getLogger("byoi_bot.simulator")

PREFIX = "/1.0"
CONTROL = "/_simulator"
_SN = r"(?P<sn>[^/]+)"
# (method, API path regex, handler name)
_ROUTES = (
    ("GET", r"/dedicated/server", "list_servers"),
    ("GET", rf"/dedicated/server/{_SN}", "get_server"),
    ("GET", rf"/dedicated/server/{_SN}/specifications/hardware", "get_hardware"),
    ("GET", rf"/dedicated/server/{_SN}/bringYourOwnImage", "get_byoi"),
    ("POST", rf"/dedicated/server/{_SN}/bringYourOwnImage", "post_byoi"),
    ("DELETE", rf"/dedicated/server/{_SN}/bringYourOwnImage", "delete_byoi"),
    ("POST", rf"/dedicated/server/{_SN}/reinstall", "post_reinstall"),
    ("GET", rf"/dedicated/server/{_SN}/task", "list_tasks"),
    ("GET", rf"/dedicated/server/{_SN}/task/(?P<task>\d+)", "get_task"),
    ("POST", rf"/dedicated/server/{_SN}/task/(?P<task>\d+)/cancel", "cancel_task"),
    ("GET", rf"/dedicated/server/{_SN}/install/status", "get_install_status"),
    ("GET", r"/auth/currentCredential", "current_credential"),
)
_COMPILED = tuple((m, re.compile(p + "$"), h) for m, p, h in _ROUTES)
# Each route as the schema writes it, for its IAM actions (`x-iam-actions`).
_TEMPLATES = {
    h: p.replace(_SN, "{serviceName}").replace(r"(?P<task>\d+)", "{taskId}") for _, p, h in _ROUTES
}
TOKEN_PATH = "/auth/oauth2/token"  # OAuth2 client credentials, outside /1.0 as at OVHcloud
_READ_ERRORS = {
    404: ("Client::NotFound", "The requested object does not exist"),
    500: ("Server::InternalServerError::Internal", "Internal server error"),
    502: ("Server::BadGateway", "Bad gateway"),
    503: ("Server::ServiceUnavailable", "Service temporarily unavailable"),
    429: ("Client::TooManyRequests", "Too many requests"),
}


class Simulator:
    """The OVHcloud API simulator on a background thread.

    `inventory`: JSON path, dict or None (built-in); `clock`: monotonic seconds (default
    `time.monotonic`); `credentials`: dict of application_key, application_secret,
    consumer_key (optional `rules`, `status`), else OVH_* environment, else DEMO_CREDENTIALS;
    `service_account`: dict of client_id, client_secret and optional `allow` (the IAM
    actions its policy allows, wildcards accepted; default all), accepted besides them;
    `install_steps`: (name, seconds) of each install step (default: 7 equal steps in
    `deploy_seconds`).
    """

    def __init__(
        self,
        inventory: str | Path | dict | None = None,
        deploy_seconds: float = 60.0,
        clock: Callable[[], float] | None = None,
        credentials: dict | None = None,
        latency: float = 0.0,
        service_account: dict | None = None,
        install_steps: tuple[tuple[str, float], ...] = (),
    ) -> None:
        self.world = World(inventory, deploy_seconds, clock, install_steps)
        self.service_account = auth.ServiceAccount.of(service_account) if service_account else None
        self.boots = Boots(self.world.install_ended)  # the servers' SSH, on 127.0.0.1
        self.latency = latency  # seconds every API answer waits, like a real round trip
        self.credentials = auth.Credentials.resolve(credentials)
        self._calls: list[dict] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a daemon thread; returns the API base URL (`http://host:port/1.0`)."""
        self._httpd = _Server((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.simulator = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="ovh-simulator", daemon=True
        )
        self._thread.start()
        self.boots.start(self.world.server_names())
        self.url = f"http://{host}:{self._httpd.server_port}{PREFIX}"
        return self.url

    def stop(self) -> None:
        """Stop serving and release held (delayed) answers."""
        self._stopping.set()
        self.boots.stop()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        if self._httpd is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def calls(self) -> list[dict]:
        """API calls received: method, path, query, status, time (no headers, no bodies)."""
        with self._lock:
            return [dict(c) for c in self._calls]

    def inject(self, **fault: object) -> None:
        """Add a fault, same keys as POST /_simulator/faults (e.g. install_error, at_step)."""
        self.world.faults.add(fault)

    def clear_faults(self) -> None:
        """Forget pending faults."""
        self.world.faults.clear()

    def advance(self, seconds: float) -> None:
        """Move the deployments' clock on by `seconds`."""
        self.world.advance(seconds)

    def reset(self) -> None:
        """Back to the loaded inventory; faults, clock offset and call log cleared."""
        self.world.reset()
        self.boots.reset()
        with self._lock:
            self._calls.clear()

    def record(self, method: str, path: str, query: str, status: int, started: float) -> None:
        ms = int((time.monotonic() - started) * 1000)
        call = {
            "method": method,
            "path": path,
            "query": query,
            "status": status,
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "ms": ms,
        }
        with self._lock:
            self._calls.append(call)
        log.info("%s %s%s -> %d (%d ms)", method, path, f"?{query}" if query else "", status, ms)

    def hold(self, seconds: float) -> None:
        """Wait `seconds` before answering (a delay fault), or less if stopping."""
        self._stopping.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    server_version = "byoi-ovh-simulator"
    sim: Simulator

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: object) -> None:
        """Silence the default access log; calls are logged by `Simulator.record`."""

    def _handle(self) -> None:
        self.sim = self.server.simulator  # type: ignore[attr-defined]
        self.extra_headers: dict[str, str] = {}
        started = time.monotonic()
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        if parts.path.startswith(CONTROL):
            status, payload = self._control(parts.path[len(CONTROL) :], body)
            log.info("control %s %s -> %d", self.command, parts.path, status)
        elif parts.path == TOKEN_PATH and self.command == "POST" and self.sim.service_account:
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload = self.sim.service_account.issue(headers, body)
            self.sim.record(self.command, parts.path, "", status, started)
        else:
            status, payload = self._api(parts.path, parts.query, body)
            self.sim.record(self.command, parts.path, parts.query, status, started)
            delay = self.sim.world.faults.take_delay(self.command, _api_path(parts.path))
            if delay + self.sim.latency:
                self.sim.hold(delay + self.sim.latency)
        self._send(status, payload)

    def _api(self, path: str, query: str, body: str) -> tuple[int, object]:
        if not path.startswith(PREFIX + "/"):
            return 404, {"message": "Got an invalid (or empty) URL"}
        api_path = _api_path(path)
        if self.command == "GET" and api_path == "/auth/time":
            return 200, int(time.time())
        bearer = self.headers.get("Authorization", "").lower().startswith("bearer ")
        try:
            if bearer and self.sim.service_account:
                self.sim.service_account.check(self.headers["Authorization"])
            else:
                auth.check(
                    self.sim.credentials,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.command,
                    f"http://{self.headers.get('Host', '')}{self.path}",
                    body,
                    api_path,
                )
            return self._route(api_path, parse_qs(query), body, iam=bearer)
        except auth.AuthError as exc:
            return exc.status, exc.body
        except ApiError as exc:
            return exc.status, exc.body()

    def _route(self, api_path: str, query: dict, body: str, iam: bool) -> tuple[int, object]:
        allowed = []
        for method, pattern, handler in _COMPILED:
            found = pattern.match(api_path)
            if found:
                allowed.append(method)
                if method != self.command:
                    continue
                if iam and (denied := self._iam_denied(method, handler)):
                    return 403, denied
                return self._dispatch(handler, found.groupdict(), query, body)
        if allowed:
            return 405, {"message": f"Received not described method '{self.command}'"}
        return 404, {"message": "Got an invalid (or empty) URL"}

    def _iam_denied(self, method: str, handler: str) -> dict | None:
        """The 403 body of OVHcloud's IAM when the service account's policy lacks an action
        of this route (OVHcloud IAM guide, ovh/docs PR #5314)."""
        account = self.sim.service_account
        denied = account.denied(actions_of(method, _TEMPLATES[handler])) if account else []
        if not denied:
            return None
        return {
            "class": "Client::Forbidden",
            "message": "User not granted for this request",
            "details": {
                "unauthorizedActionsByAuthentication": "",
                "unauthorizedActionsByIAM": ",".join(denied),
            },
        }

    def _dispatch(self, handler: str, params: dict, query: dict, body: str) -> tuple[int, object]:
        world = self.sim.world
        server = params.get("sn")
        if self.command == "GET":
            failing = world.faults.take_read(server)
            if failing:
                api_class, message = _READ_ERRORS.get(failing.status, ("Server::Error", "Error"))
                if failing.retry_after is not None:
                    self.extra_headers["Retry-After"] = f"{failing.retry_after:g}"
                return failing.status, {"class": api_class, "message": message}
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return 400, {"class": "Client::BadRequest", "message": "Invalid JSON received"}
        first = {k: v[0] for k, v in query.items()}
        calls = {
            "list_servers": lambda: world.server_names(),
            "get_server": lambda: world.server(server) | {"ip": self.sim.boots.host},
            "get_hardware": lambda: world.hardware(server),
            "get_byoi": lambda: world.byoi_status(server),
            "post_byoi": lambda: world.start_byoi(server, data),
            "delete_byoi": lambda: world.delete_byoi(server),
            "post_reinstall": lambda: world.reinstall(server, data),
            "list_tasks": lambda: world.tasks(server, first.get("function"), first.get("status")),
            "get_task": lambda: world.task(server, int(params["task"])),
            "cancel_task": lambda: world.cancel_task(server, int(params["task"])),
            "get_install_status": lambda: world.install_status(server),
            "current_credential": lambda: self.sim.credentials.current(),
        }
        return 200, calls[handler]()

    def _control(self, path: str, body: str) -> tuple[int, object]:
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return 400, {"message": "invalid JSON"}
        key = (self.command, path.rstrip("/"))
        world = self.sim.world
        if key == ("POST", "/faults"):
            try:
                for fault in data if isinstance(data, list) else [data]:
                    world.faults.add(fault)
            except FaultError as exc:
                return 400, {"message": str(exc)}
            return 200, world.faults.pending()
        if key == ("GET", "/faults"):
            return 200, world.faults.pending()
        if key == ("DELETE", "/faults"):
            world.faults.clear()
            return 200, world.faults.pending()
        if key == ("GET", "/boots"):
            return 200, self.sim.boots.view()
        if key == ("POST", "/boots"):
            try:
                name = data.get("server") if isinstance(data, dict) else None
                self.sim.boots.set(str(name), Behaviour.parse(data))
            except BootError as exc:
                return 400, {"message": str(exc)}
            return 200, self.sim.boots.view()
        if key == ("GET", "/calls"):
            return 200, self.sim.calls()
        if key == ("POST", "/reset"):
            self.sim.reset()
            return 200, {"servers": world.server_names()}
        if key == ("POST", "/latency"):
            if not isinstance(data, dict) or not isinstance(data.get("ms"), int | float):
                return 400, {"message": 'expected {"ms": milliseconds}'}
            self.sim.latency = max(0.0, float(data["ms"]) / 1000)
            return 200, {"ms": self.sim.latency * 1000}
        if key == ("POST", "/clock"):
            if not isinstance(data, dict) or not isinstance(data.get("advance"), int | float):
                return 400, {"message": 'expected {"advance": seconds}'}
            return 200, {"now": world.advance(float(data["advance"]))}
        return 404, {"message": f"no control endpoint {self.command} {CONTROL}{path}"}

    def _send(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Ovh-Queryid", f"EU.sim.{time.time_ns():x}")
            for name, value in self.extra_headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            log.info("client went away before the answer (timed out?)")


class _Server(ThreadingHTTPServer):
    """A threading server with room for a poller's concurrent connections."""

    request_queue_size = 128


def _api_path(path: str) -> str:
    return path[len(PREFIX) :] if path.startswith(PREFIX) else path


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    deploy_seconds: float = 60.0,
    inventory_path: str | None = None,
) -> None:
    """Run the simulator in the foreground until Ctrl-C (`byoi-bot simulator`)."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s sim %(message)s")
    simulator = Simulator(inventory=inventory_path, deploy_seconds=deploy_seconds)
    url = simulator.start(host, port)
    credentials = simulator.credentials
    print(f"OVHcloud API simulator on {url}", file=sys.stderr)
    print(f"  export OVH_ENDPOINT={url}", file=sys.stderr)
    if credentials.is_demo:
        for name, value in auth.DEMO_CREDENTIALS.items():
            print(f"  export OVH_{name.upper()}={value}", file=sys.stderr)
    else:
        print("  credentials: from OVH_APPLICATION_KEY/SECRET/CONSUMER_KEY", file=sys.stderr)
    print(f"  servers: {', '.join(simulator.world.server_names())}", file=sys.stderr)
    ports = ", ".join(f"{name} {port}" for name, port in simulator.boots.ports().items())
    print(f"  their SSH after an install, on 127.0.0.1 (boot_ssh_port): {ports}", file=sys.stderr)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()

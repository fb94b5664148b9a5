"""Shared helpers of the benchmarks (and of tests/test_load.py, which runs their scenarios small).

- `machine()`: one line describing the machine, printed under every table;
- `table()`, `percentile()`: Markdown tables and nearest-rank percentiles;
- `parse_args()`: the command line, with `--smoke` (tiny sizes: CI runs every script so);
- `inventory(n)`: a simulator inventory of `n` servers shaped like the built-in one;
- `seed_deploying()`: puts requests in state `deploying` through the store and the provider;
- `Services`: the OVHcloud simulator (frozen, injectable clock, settable answer latency) and
  the fake Slack in a child process, so that the bot being measured does not share its
  interpreter with them;
- `start_bot()` / `wait_healthy()` / `vm_rss_kib()`: a real `byoi-bot run --http` process.

Every server binds 127.0.0.1; nothing leaves the machine.
Run `python benchmarks/benchlib.py services --servers N` to start the child by hand.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT / "tests", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from byoi_bot.core.request import DeploySpec, Request  # noqa: E402
from byoi_bot.core.states import State  # noqa: E402
from byoi_bot.simulator import DEMO_CREDENTIALS  # noqa: E402
from byoi_bot.simulator.world import load_inventory  # noqa: E402

SECRET = "8f742231b10e8888abcd99aaabbb85a5"
BOT_TOKEN = "xoxb-bench-token"
REQUESTER, APPROVER, CHANNEL = "U0ALICE", "U0BOB", "C0OPS"
IMAGE_URL = "https://images.example.net/debian-12.qcow2"
COUNTS_METHOD = "bench.counts"  # an extra method of the fake Slack in the services child


# -- reporting ----------------------------------------------------------------------------


def machine() -> str:
    """Cores, CPU model, RAM, OS and Python version, on one line."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = " (" + line.split(":", 1)[1].strip() + ")"
                break
    except OSError:
        pass
    ram = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        ram = f", {kib / 1024**2:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"Machine: {os.cpu_count()} cores{model}{ram}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()} ({platform.python_implementation()})"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; columns of numbers right-aligned, the others left-aligned."""
    cells = [[str(cell) for cell in row] for row in rows]

    def numeric(column: int) -> bool:
        values = [row[column] for row in cells if row[column] not in ("", "-")]
        return bool(values) and all(_is_number(v) for v in values)

    align = ["---:" if numeric(i) else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "").rstrip("×%"))
    except ValueError:
        return False
    return True


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def parse_args(parser: argparse.ArgumentParser, **smoke: object) -> argparse.Namespace:
    """Parse the command line; `--smoke` replaces the options named in `smoke` by their tiny
    values, so that the script runs in seconds (`tests/test_benchmarks_smoke.py` runs every
    script so; its figures then mean nothing)."""
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes, to check that the script runs"
    )
    args = parser.parse_args()
    if args.smoke:
        for name, value in smoke.items():
            setattr(args, name, value)
    return args


# -- scenario -----------------------------------------------------------------------------


def inventory(count: int) -> dict:
    """`count` healthy UEFI servers, each a copy of the built-in inventory's first one."""
    template = load_inventory(None)["servers"][0]
    servers = []
    for i in range(count):
        entry = copy.deepcopy(template)
        name = f"ns{100000 + i}.ip-10-{i // 250}-{i % 250}.eu"
        entry["server"] |= {
            "name": name,
            "reverse": name,
            "serverId": 2_000_000 + i,
            "ip": f"10.{i // 250}.{i % 250}.10",
        }
        entry["install_error"] = None
        servers.append(entry)
    return {"servers": servers}


def server_names(inventory_data: dict) -> list[str]:
    return [entry["server"]["name"] for entry in inventory_data["servers"]]


def seed_deploying(
    deployments, provider, servers: Sequence[str], clock, first: int = 0, facts: bool = False
) -> list[Request]:
    """One request per server, stored, carded, approved and started: state `deploying`.
    Request ids count from `first` (`r-b00000`, …), so that batches do not collide.

    Goes through the store's transitions and the provider's real start call (one POST per
    server), like `Deployments.submit` minus the preflight reads and the thread posts;
    `facts=True` stores the server's facts as preflight would (two more reads a server).
    """
    store, chat = deployments.store, deployments.chat
    started = []
    for i, server in enumerate(servers):
        now = clock.now()
        request = Request(
            id=f"r-b{first + i:05d}",
            spec=DeploySpec(server, IMAGE_URL, "qcow2", efi_bootloader="\\EFI\\BOOT\\BOOTX64.EFI"),
            requester=REQUESTER,
            channel=CHANNEL,
            state=State.PENDING_APPROVAL,
            created_at=now,
            expires_at=now + timedelta(hours=1),
            server_facts=provider.server_facts(server).to_dict() if facts else None,
        )
        store.create(request, None)
        card = chat.post_card(deployments.card(request), post_id=0)  # not through the outbox
        store.update(request.id, message_ts=card)
        store.add_approval(request.id, APPROVER, request.fingerprint)
        store.transition(request.id, State.PENDING_APPROVAL, State.APPROVED, APPROVER, "bench")
        store.transition(request.id, State.APPROVED, State.SUBMITTING, "byoi-bot", "bench")
        handle = provider.start(request.spec)
        request, _ = store.transition(
            request.id,
            State.SUBMITTING,
            State.DEPLOYING,
            "byoi-bot",
            "bench",
            provider_handle=handle,
            submitted_at=now,
            last_post_at=now,
        )
        started.append(request)
    return started


class FrozenClock:
    """Bot time and simulator time, moved only by `advance()`."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.current.timestamp()

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


def ovh_calls_by_kind(calls: Iterable[dict]) -> dict[str, int]:
    """Simulator call log → counts per kind (`GET install/status`, `GET task/{id}`, …)."""
    counts: dict[str, int] = {}
    for call in calls:
        path = call["path"].removeprefix("/1.0")
        parts = path.split("/")
        if path.startswith("/dedicated/server/") and len(parts) > 4:
            kind = "/".join("{id}" if p.isdigit() else p for p in parts[4:])
        elif path.startswith("/dedicated/server/"):
            kind = "server"  # GET /dedicated/server/{sn}: the boot gate reads the server's IP
        else:
            kind = path
        key = f"{call['method']} {kind}"
        counts[key] = counts.get(key, 0) + 1
    return counts


# -- the services child: simulator + fake Slack --------------------------------------------


def _serve_services(argv: Sequence[str]) -> None:
    """Child process: simulator (frozen clock) and fake Slack; prints their URLs as JSON."""
    import argparse
    import tempfile

    from fakes.slack_api import FakeSlack

    from byoi_bot.simulator import Simulator

    parser = argparse.ArgumentParser(prog="benchlib.py services")
    parser.add_argument("--servers", type=int, default=5)
    parser.add_argument("--deploy-seconds", type=float, default=700.0)
    args = parser.parse_args(argv)
    data = inventory(args.servers) if args.servers else load_inventory(None)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(data, f)
    # Frozen: the deployments' time only moves with POST /_simulator/clock.
    simulator = Simulator(f.name, args.deploy_seconds, clock=lambda: 1_000_000.0)
    os.unlink(f.name)
    ovh_url = simulator.start("127.0.0.1", 0)
    slack = FakeSlack(bot_token=BOT_TOKEN).start()

    def counts(_args: dict, _token: str | None) -> dict:
        by_method: dict[str, int] = {}
        for call in slack.calls:
            by_method[call.method] = by_method.get(call.method, 0) + 1
        return {"ok": True, "counts": by_method}

    slack._handlers[COUNTS_METHOD] = counts
    print(json.dumps({"ovh_url": ovh_url, "slack_url": slack.base_url}), flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    simulator.stop()
    slack.stop()


class Services:
    """The services child process, seen from the parent: URLs, counters, the clock."""

    def __init__(self, servers: int = 5, deploy_seconds: float = 700.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "services", "--servers", str(servers),
             "--deploy-seconds", str(deploy_seconds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        urls = json.loads(self.proc.stdout.readline())
        self.ovh_url: str = urls["ovh_url"]
        self.slack_url: str = urls["slack_url"]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, url: str, body: object = None) -> object:
        parts = url.split("/", 3)  # http:, '', host:port, path
        conn = http.client.HTTPConnection(parts[2], timeout=30)
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"}
        if "/api/" in url:
            headers["Authorization"] = f"Bearer {BOT_TOKEN}"
        conn.request(method, "/" + parts[3], body=data, headers=headers)
        answer = json.loads(conn.getresponse().read())
        conn.close()
        return answer

    def ovh_calls(self) -> list[dict]:
        """The simulator's call log (method, path, query, status …)."""
        base = self.ovh_url.removesuffix("/1.0")
        return self._request("GET", f"{base}/_simulator/calls")  # type: ignore[return-value]

    def boot_ports(self) -> dict[str, int]:
        """Each simulated server's SSH port, for the bot's boot gate (`build_bot(boot_ports=)`)."""
        base = self.ovh_url.removesuffix("/1.0")
        boots = self._request("GET", f"{base}/_simulator/boots")
        return {name: boot["port"] for name, boot in boots.items()}  # type: ignore[union-attr]

    def inject(self, fault: dict) -> None:
        """Add a simulator fault (POST /_simulator/faults)."""
        base = self.ovh_url.removesuffix("/1.0")
        self._request("POST", f"{base}/_simulator/faults", fault)

    def clear_faults(self) -> None:
        base = self.ovh_url.removesuffix("/1.0")
        self._request("DELETE", f"{base}/_simulator/faults")

    def latency(self, ms: float) -> None:
        """Hold every OVHcloud answer `ms` milliseconds from now on, like a real round trip."""
        base = self.ovh_url.removesuffix("/1.0")
        self._request("POST", f"{base}/_simulator/latency", {"ms": ms})

    def advance(self, seconds: float) -> None:
        """Move the simulator's deployments on by `seconds`."""
        base = self.ovh_url.removesuffix("/1.0")
        self._request("POST", f"{base}/_simulator/clock", {"advance": seconds})

    def slack_counts(self) -> dict[str, int]:
        """Calls the fake Slack received, per method (this query itself not counted)."""
        answer = self._request("POST", self.slack_url + COUNTS_METHOD)
        counts = dict(answer["counts"])  # type: ignore[index]
        counts.pop(COUNTS_METHOD, None)
        return counts


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


def without_proxies() -> None:
    """Drop proxy variables from this process: every call here goes to 127.0.0.1."""
    for key in list(os.environ):
        if key.lower() in PROXY_VARIABLES:
            del os.environ[key]


# -- a real bot process ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bot_env(db: str, slack_url: str, ovh_url: str) -> dict[str, str]:
    """Environment of a `byoi-bot run --http` talking to the local fakes only."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BYOI_", "SLACK_", "OVH_")) and k.lower() not in PROXY_VARIABLES
    }
    env |= {
        "BYOI_DB": db,
        "BYOI_APPROVERS": APPROVER,
        "BYOI_LOG_LEVEL": "WARNING",
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack_url,
        "OVH_ENDPOINT": ovh_url,
        "NO_PROXY": "127.0.0.1,localhost",
        **{f"OVH_{k.upper()}": v for k, v in DEMO_CREDENTIALS.items()},
    }
    return env


def byoi_bot_command() -> list[str]:
    """The installed `byoi-bot` script next to this interpreter, else `python -m`-like."""
    script = Path(sys.executable).with_name("byoi-bot")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from byoi_bot.cli import main; sys.exit(main())"]


def start_bot(env: dict[str, str], port: int, argv: Sequence[str] | None = None):
    """Start `byoi-bot run --http` (or `argv`) on 127.0.0.1:`port`; returns the Popen."""
    command = list(argv) if argv else [
        *byoi_bot_command(), "run", "--http", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT
    )


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> float:
    """Poll GET /healthz every 5 ms until 200; returns the perf_counter time it answered."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the bot exited with {proc.returncode} before it was ready")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return time.perf_counter()
            conn.close()
        except OSError:
            pass
        time.sleep(0.005)
    raise TimeoutError(f"no /healthz answer on port {port} within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    """Terminate a child we started, by its own handle."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def vm_rss_kib(pid: int) -> int:
    """Resident memory of `pid` in KiB (VmRSS of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def timed(function: Callable[[], object]) -> float:
    """Seconds `function()` took (perf_counter)."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


if __name__ == "__main__":
    if sys.argv[1:2] == ["services"]:
        _serve_services(sys.argv[2:])
    else:
        sys.exit("usage: python benchmarks/benchlib.py services [--servers N] [--deploy-seconds S]")

"""The boot gate's cost: its added time when the server answers at once, and its probes
until the timeout when the server never answers.

The bot is the production wiring (`build_bot`: SQLite store, `ReinstallProvider` over the
real `ovh.Client`, the `NetworkProbe` over real TCP) in this process, against the OVHcloud
simulator on 127.0.0.1 whose servers answer SSH after their install (`simulator.boots`).

1. Added time: the poll that reads OVHcloud's `done` for one server, with the gate (the
   server's IP read from OVHcloud, one SSH probe, the state through `booting` to `done`)
   and without it (`BYOI_BOOT_GATE=off`: straight to `done`), `--runs` times each; the
   reference is that same poll without the gate.
2. Probe count: a server that never answers, polled every `--poll-seconds` on a fake clock
   until the gate fails (`BYOI_BOOT_TIMEOUT`, 15 minutes by default); the probes made, the
   OVHcloud reads they needed, and the wall time of the whole wait.

Run: `python benchmarks/boot_gate.py [--runs 30] [--poll-seconds 20] [--json]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchlib import machine, parse_args, table, without_proxies

from byoi_bot.config import Settings
from byoi_bot.core.boot_gate import Gate
from byoi_bot.core.request import DeploySpec
from byoi_bot.core.states import State
from byoi_bot.ovhcloud.client import make_client
from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator
from byoi_bot.simulator.boots import Behaviour
from byoi_bot.wiring import build_bot, make_provider

SERVER = "ns1001.ip-51-75-1.eu"
DEPLOY_SECONDS = 70.0


class Clock:
    """The bot's and the simulator's clock, moved by the script."""

    def __init__(self) -> None:
        self.current = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.current.timestamp()

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class QuietChat:
    """A chat that takes everything (the outbox is not drained: posts are not timed)."""

    def post_card(self, view) -> str:
        return "1.0"

    def offer_votes(self, request) -> None: ...
    def group_members(self, group_id) -> frozenset:
        return frozenset()


def bot_for(folder: Path, simulator: Simulator, clock: Clock, env: dict):
    settings = Settings.load({"BYOI_DB": str(folder / f"{len(list(folder.iterdir()))}.db"),
                              "BYOI_APPROVERS": "U0BOB", **env})  # fmt: skip
    client = make_client(simulator.url, timeout=(2, 10), **DEMO_CREDENTIALS)
    return build_bot(settings, QuietChat(), provider=make_provider(settings, client),
                     clock=clock, boot_ports=simulator.boots.port_of)  # fmt: skip


def installed(bot, simulator: Simulator, clock: Clock) -> str:
    """A request of SERVER approved, started, its install over; its id."""
    d = bot.deployments
    d.inspector = None  # preflight is not what is measured
    spec = DeploySpec(server=SERVER, image_url="https://images.example.net/debian-12.qcow2",
                      image_type="qcow2", efi_bootloader="\\EFI\\debian\\grubx64.efi")  # fmt: skip
    r = d.request(spec, "U0ALICE", "C0OPS")
    d.approve(r.id, "U0BOB")
    clock.advance(DEPLOY_SECONDS + 1)
    return r.id


def added_time(runs: int) -> dict:
    """Median seconds of the poll that sees OVHcloud's done, with and without the gate."""
    timings: dict[str, list[float]] = {"gate": [], "no gate": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            for name, env in (("gate", {}), ("no gate", {"BYOI_BOOT_GATE": "off"})):
                clock = Clock()
                simulator = Simulator(deploy_seconds=DEPLOY_SECONDS, clock=clock.monotonic,
                                      credentials=DEMO_CREDENTIALS)  # fmt: skip
                simulator.start()
                bot = bot_for(Path(tmp), simulator, clock, env)
                try:
                    request_id = installed(bot, simulator, clock)
                    request = bot.store.get(request_id)
                    started = time.perf_counter()
                    bot.deployments.poll(request)
                    timings[name].append(time.perf_counter() - started)
                    assert bot.store.get(request_id).state is State.DONE
                finally:
                    bot.store.close()
                    bot.poller.close()
                    simulator.stop()
    gate, reference = statistics.median(timings["gate"]), statistics.median(timings["no gate"])
    return {"gate_ms": gate * 1000, "no_gate_ms": reference * 1000,
            "added_ms": (gate - reference) * 1000, "ratio": gate / reference}  # fmt: skip


def probes_until_timeout(poll_seconds: float) -> dict:
    """Poll a server that never answers until its gate fails, on the fake clock."""
    clock = Clock()
    simulator = Simulator(deploy_seconds=DEPLOY_SECONDS, clock=clock.monotonic,
                          credentials=DEMO_CREDENTIALS)  # fmt: skip
    simulator.start()
    simulator.boots.set(SERVER, Behaviour("never"))
    with tempfile.TemporaryDirectory() as tmp:
        bot = bot_for(Path(tmp), simulator, clock, {})
        try:
            request_id = installed(bot, simulator, clock)
            before = len(simulator.calls())
            started, polls = time.perf_counter(), 0
            while bot.store.get(request_id).state is not State.FAILED:
                bot.deployments.poll(bot.store.get(request_id))
                polls += 1
                clock.advance(poll_seconds)
            wall = time.perf_counter() - started
            gate = Gate.from_dict(bot.store.get(request_id).boot)
            reads = len(simulator.calls()) - before
        finally:
            bot.store.close()
            bot.poller.close()
            simulator.stop()
    return {"poll_seconds": poll_seconds, "polls": polls, "probes": gate.probes,
            "ovh_reads": reads, "wall_s": wall}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--poll-seconds", type=float, nargs="+", default=[5.0, 20.0, 60.0])
    parser.add_argument("--json", action="store_true")
    args = parse_args(parser, runs=2, poll_seconds=[5.0])
    without_proxies()
    added = added_time(args.runs)
    waits = [probes_until_timeout(p) for p in args.poll_seconds]
    if args.json:
        print(json.dumps({"machine": machine(), "added": added, "timeouts": waits}))
        return
    print(machine())
    print(f"\nThe poll that reads OVHcloud's done, median of {args.runs} (the reference: no gate)")
    print(table(["with the gate", "without", "added", "ratio"], [[
        f"{added['gate_ms']:.1f} ms", f"{added['no_gate_ms']:.1f} ms",
        f"{added['added_ms']:.1f} ms", f"{added['ratio']:.2f}×",
    ]]))  # fmt: skip
    print("\nA server that never answers, until the gate fails (15 min, a probe every 20 s)")
    print(table(["poll every", "polls", "probes", "OVHcloud reads", "wall time"], [
        [f"{w['poll_seconds']:g} s", w["polls"], w["probes"], w["ovh_reads"],
         f"{w['wall_s']:.2f} s"] for w in waits
    ]))  # fmt: skip


if __name__ == "__main__":
    main()

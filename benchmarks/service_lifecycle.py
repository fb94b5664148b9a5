"""A real `byoi-bot run` as a service, in Socket Mode and in HTTP mode (issue 22):

- start-up to ready: from the process start until GET /readyz on BYOI_METRICS_PORT answers
  200 (store migrated, Slack's auth.test, scheduler and sender running, Slack connected or
  listening); reference: `byoi-bot --version` (the interpreter and the CLI's imports);
- stop time after SIGTERM mid-deploy (a deployment being polled every second): from the
  signal until the process has exited; reference: the same stop of an idle bot;
- idle log lines per hour at the default levels, counted over `--idle` seconds after ready
  and scaled to an hour; reference: the same run with BYOI_LIBRARY_LOG_LEVEL=INFO, which is
  what main logged before (every library at INFO);
- with `--postgres`: two HTTP-mode replicas on one PostgreSQL database; the time from the
  leader's SIGTERM until the other one leads (its `byoi_leader` is 1); reference: the
  follower's election interval (1 s), which bounds it when the leader lets go at once.

Everything runs against the tests' fakes (fake Slack Web API and Socket Mode, the OVHcloud
simulator, the demo image server) on 127.0.0.1.

Run: `python benchmarks/service_lifecycle.py [--runs 3] [--idle 120] [--postgres URL]`
(`--postgres`: a role that may create a database; one is made and dropped).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import machine, median, parse_args, table
from process_harness import APPROVER, ProcessBot, wait_until


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=120.0, help="seconds of idle logging")
    parser.add_argument("--postgres", help="also measure the leader's handover on SIGTERM")
    args = parse_args(parser, runs=1, idle=1.0)
    if args.postgres:
        from stores import bench_database

        with bench_database(args.postgres) as dsn:
            took = [_handover(dsn) for _ in range(args.runs)]
        print(table(["PostgreSQL, 2 replicas", "median s", "max s", "× reference"], [
            ("SIGTERM to the other replica leading", f"{median(took):.2f}", f"{max(took):.2f}",
             f"{median(took) / 1.0:.2f}"),
        ]))  # fmt: skip
        print()
    version = [_version_time() for _ in range(args.runs)]
    rows = [("`byoi-bot --version` (reference)", f"{median(version):.2f}", "", "", "", "")]
    for mode in ("socket", "http"):
        ready, stop_busy, stop_idle = [], [], []
        for _ in range(args.runs):
            r, busy, idle = _one_run(mode == "socket")
            ready.append(r)
            stop_busy.append(busy)
            stop_idle.append(idle)
        ready_s, busy_s, idle_s = median(ready), median(stop_busy), median(stop_idle)
        rows.append((f"`run` ({mode})", f"{ready_s:.2f}", f"{ready_s / median(version):.1f}",
                     f"{busy_s:.2f}", f"{idle_s:.2f}", f"{busy_s / idle_s:.2f}"))  # fmt: skip
    print(table(["process", "start to ready s", "× reference", "stop mid-deploy s",
                 "stop idle s (reference)", "× reference"], rows))  # fmt: skip
    quiet, loud = (
        _idle_lines(args.idle, {}),
        _idle_lines(args.idle, {"BYOI_LIBRARY_LOG_LEVEL": "INFO"}),
    )
    print(f"\nIdle log lines over {args.idle:.0f} s, Socket Mode, polls every second\n")
    print(table(["levels", "lines", "lines per hour", "× reference"], [
        ("libraries at INFO (reference: main before)", loud, f"{loud * 3600 / args.idle:.0f}", "1"),
        ("default (libraries at WARNING)", quiet, f"{quiet * 3600 / args.idle:.0f}",
         f"{quiet / loud:.4f}" if loud else "-"),
    ]))  # fmt: skip
    print(f"\n{machine()}")


def _version_time() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "byoi_bot.cli", "--version"], check=True,
                   capture_output=True)  # fmt: skip
    return time.perf_counter() - started


def _one_run(socket_mode: bool) -> tuple[float, float, float]:
    """Start to ready, stop mid-deploy, and (a second process) stop when idle, in seconds."""
    with tempfile.TemporaryDirectory() as folder:
        bot = ProcessBot(Path(folder), deploy_seconds=60.0, socket_mode=socket_mode)
        try:
            started = time.perf_counter()
            bot.start()
            wait_until(lambda: bot.get("/readyz")[0] == 200, 30, "ready", step=0.005)
            ready = time.perf_counter() - started
            card = bot.deploy()
            bot.react(APPROVER, card["ts"])
            bot.wait_state("deploying")
            wait_until(lambda: bot.api_calls("GET", "/install/status"), what="a poll")
            status, busy = bot.terminate()
            assert status == 0, bot.log()
            bot.start()
            wait_until(lambda: bot.get("/readyz")[0] == 200, 30, "ready")
            bot.simulator.advance(120)  # the deployment ends: the bot is idle
            bot.wait_state("done", timeout=30)
            status, idle = bot.terminate()
            assert status == 0, bot.log()
            return ready, busy, idle
        finally:
            bot.close()


def _handover(dsn: str) -> float:
    with tempfile.TemporaryDirectory() as folder:
        leader = ProcessBot(Path(folder), db=dsn)
        leader.name = "a"
        follower = leader.replica("b")
        try:
            leader.start()
            follower.start()
            wait_until(lambda: b"byoi_leader 1.0" in leader.get("/metrics")[1], 10, "a leads")
            started = time.perf_counter()
            leader.proc.terminate()
            wait_until(lambda: b"byoi_leader 1.0" in follower.get("/metrics")[1], 10, step=0.01)
            took = time.perf_counter() - started
            leader.proc.wait(15)
            return took
        finally:
            follower.close()
            leader.close()


def _idle_lines(seconds: float, env: dict[str, str]) -> int:
    with tempfile.TemporaryDirectory() as folder:
        bot = ProcessBot(Path(folder), socket_mode=True)
        bot.env |= {"BYOI_POLL_SECONDS": "1"} | env
        try:
            bot.start()
            wait_until(lambda: bot.get("/readyz")[0] == 200, 30, "ready")
            before = len(bot.log_path(1).read_text().splitlines())
            time.sleep(seconds)  # wall time is what is measured here
            lines = len(bot.log_path(1).read_text().splitlines()) - before
            bot.terminate()
            return lines
        finally:
            bot.close()


if __name__ == "__main__":
    main()

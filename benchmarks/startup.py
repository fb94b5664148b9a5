"""Process start-up time and idle memory of byoi-bot, median of N runs (default 7).

- `python -c pass`: the interpreter alone, for scale;
- `byoi-bot --help`: the console script up to its help text;
- `byoi-bot run --http --host 127.0.0.1 --port P`: from the process start until GET /healthz
  answers 200 (store opened and migrated on a new SQLite file, scheduler started, WSGI
  server listening), with Slack's Web API on a local fake and OVHcloud on the simulator;
  then its resident memory (VmRSS of /proc/PID/status) when ready and after 2 s idle.

Run: `python benchmarks/startup.py [--runs 7]` (about 20 s).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import (
    BOT_TOKEN,
    bot_env,
    byoi_bot_command,
    free_port,
    machine,
    median,
    parse_args,
    start_bot,
    stop,
    table,
    vm_rss_kib,
    wait_healthy,
    without_proxies,
)
from fakes.slack_api import FakeSlack

from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator


def run_once(command: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--idle", type=float, default=2.0, help="seconds idle before RSS idle")
    args = parse_args(parser, runs=1, idle=0.0)
    without_proxies()
    runs = args.runs
    python = [sys.executable, "-c", "pass"]
    help_ = [*byoi_bot_command(), "--help"]
    run_once(help_)  # warm the file cache and the .pyc files
    interpreter = [run_once(python) for _ in range(runs)]
    helps = [run_once(help_) for _ in range(runs)]

    slack = FakeSlack(bot_token=BOT_TOKEN).start()
    simulator = Simulator(credentials=DEMO_CREDENTIALS)
    ovh_url = simulator.start("127.0.0.1", 0)
    ready, rss_ready, rss_idle = [], [], []
    try:
        for i in range(runs):
            with tempfile.TemporaryDirectory(prefix="byoi-bench-") as tmp:
                env = bot_env(str(Path(tmp) / f"byoi-{i}.db"), slack.base_url, ovh_url)
                port = free_port()
                began = time.perf_counter()
                proc = start_bot(env, port)
                try:
                    ready.append(wait_healthy(port, proc) - began)
                    rss_ready.append(vm_rss_kib(proc.pid))
                    time.sleep(args.idle)
                    rss_idle.append(vm_rss_kib(proc.pid))
                finally:
                    stop(proc)
    finally:
        simulator.stop()
        slack.stop()

    def row(label: str, seconds: list[float], memory: str = "-", idle: str = "-") -> list:
        return [
            label,
            f"{median(seconds) * 1000:.0f}",
            f"{min(seconds) * 1000:.0f}",
            f"{max(seconds) * 1000:.0f}",
            memory,
            idle,
        ]

    print(f"## Start-up time and idle memory (median of {runs} runs)\n")
    print(
        table(
            ["process", "median ms", "min ms", "max ms", "RSS when ready MiB", "RSS idle MiB"],
            [
                row("`python -c pass` (interpreter only)", interpreter),
                row("`byoi-bot --help`", helps),
                row(
                    "`byoi-bot run --http` until GET /healthz = 200",
                    ready,
                    f"{median(rss_ready) / 1024:.1f}",
                    f"{median(rss_idle) / 1024:.1f}",
                ),
            ],
        )
    )
    print()
    print(
        f"RSS idle: VmRSS {args.idle:.0f} s after readiness, scheduler running, no request "
        "served yet; a new SQLite file each run."
    )
    print(machine())


if __name__ == "__main__":
    main()

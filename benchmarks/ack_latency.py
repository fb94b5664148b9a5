"""Slash-command acknowledgement latency in HTTP mode: byoi-bot next to a Bolt app that only acks.

Both servers are separate processes on 127.0.0.1 behind the same threaded WSGI server
(`slack.modes.http_server`): byoi-bot is the real `byoi-bot run --http` (its scheduler
running, Slack's Web API and the answers' response_urls on a local fake Slack, OVHcloud on
the simulator), the reference is a Bolt `App` with the same options whose `/byoi` listener
only calls `ack()`. This process is Slack: it signs each `/byoi` request like Slack does,
POSTs it, and times until the HTTP answer (the ack) is read; one connection per request, as
the WSGI server speaks HTTP/1.0. It also records when each request's ephemeral answer reached
the fake Slack's response_url ("answer" columns; the minimal app sends none).

Runs: 1,000 requests each (after 50 unmeasured), one client at a time, with `help`, `list`
and `deploy …` texts that fail validation (bad scheme, host name, checksum, option); then the
same `help` run from 8 concurrent clients.

Run: `python benchmarks/ack_latency.py [--requests 1000] [--clients 8]` (about a minute).
Goal (issue 7): p99 under 100 ms and within 2x of the minimal app.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from benchlib import (
    BOT_TOKEN,
    CHANNEL,
    REQUESTER,
    SECRET,
    bot_env,
    free_port,
    machine,
    percentile,
    start_bot,
    stop,
    table,
    wait_healthy,
    without_proxies,
)
from fakes.signing import signed_headers, slash_command_body
from fakes.slack_api import FakeSlack

from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator

SERVER = "ns1001.ip-51-75-1.eu"
FAILING_DEPLOYS = (
    f"deploy {SERVER} ftp://images.example.net/debian-12.qcow2",
    "deploy not_a_server! https://images.example.net/debian-12.qcow2",
    f"deploy {SERVER} https://images.example.net/debian-12.qcow2 checksum=nope",
    f"deploy {SERVER} https://images.example.net/debian-12.qcow2 bogus=1",
)


def minimal_server(port: int, slack_url: str) -> None:
    """Child process: a Bolt app with byoi-bot's App options whose /byoi listener only acks."""
    from slack_bolt import Ack, App
    from slack_sdk import WebClient

    from byoi_bot.slack.modes import http_server

    app = App(
        client=WebClient(token=BOT_TOKEN, base_url=slack_url),
        signing_secret=SECRET,
        token_verification_enabled=False,
        ignoring_self_events_enabled=True,
    )

    @app.command("/byoi")
    def on_byoi(ack: Ack) -> None:
        ack()

    http_server(app, "127.0.0.1", port, lambda: True, SECRET).serve_forever()


class Client:
    """Signs and POSTs slash commands; records ack latencies and send times."""

    def __init__(self, url: str, slack: FakeSlack) -> None:
        self.port = int(url.split(":")[2].split("/")[0])
        self.slack = slack

    def one(self, text: str, name: str) -> tuple[int, float, float]:
        """(HTTP status, ack seconds, wall-clock send time) of one signed /byoi."""
        body = slash_command_body(
            text,
            user_id=REQUESTER,
            channel_id=CHANNEL,
            response_url=self.slack.response_url(name),
        )
        headers = signed_headers(SECRET, body)
        sent = time.time()
        began = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("POST", "/slack/events", body=body.encode(), headers=headers)
        response = conn.getresponse()
        response.read()
        elapsed = time.perf_counter() - began
        conn.close()
        return response.status, elapsed, sent

    def run(self, label: str, texts: Sequence[str], count: int, clients: int = 1) -> dict:
        """`count` requests from `clients` threads; returns latencies and answer delays."""
        results: list[tuple[str, int, float, float]] = []
        lock = threading.Lock()
        counter = iter(range(count))

        def worker() -> None:
            for i in counter:
                name = f"{label}/{i}"
                status, elapsed, sent = self.one(texts[i % len(texts)], name)
                with lock:
                    results.append((name, status, elapsed, sent))

        threads = [threading.Thread(target=worker) for _ in range(clients)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
        return {
            "names": {name: sent for name, _, _, sent in results},
            "statuses": [status for _, status, _, _ in results],
            "latencies": [elapsed for _, _, elapsed, _ in results],
            "wall": wall,
        }


def answers(slack: FakeSlack, run: dict, expect: bool, timeout: float = 60) -> tuple[int, list]:
    """How many requests of `run` got exactly one answer, and the answer delays (s)."""
    names = run["names"]
    if expect:
        slack.wait_for(
            lambda: sum(1 for r in slack.calls if r.name in names) >= len(names), timeout
        )
    else:
        time.sleep(0.5)
    seen: dict[str, list[float]] = {}
    for call in slack.calls_to("response_url"):
        if call.name in names:
            seen.setdefault(call.name, []).append(call.time - names[call.name])
    once = sum(1 for times in seen.values() if len(times) == 1)
    return once, [times[0] for times in seen.values()]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--clients", type=int, default=8, help="clients of the concurrent run")
    parser.add_argument("--minimal-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--slack-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.minimal_server:
        minimal_server(args.minimal_server, args.slack_url)
        return
    without_proxies()
    n = args.requests
    slack = FakeSlack(bot_token=BOT_TOKEN).start()
    simulator = Simulator(credentials=DEMO_CREDENTIALS)
    ovh_url = simulator.start("127.0.0.1", 0)
    rows, summary = [], {}
    with tempfile.TemporaryDirectory(prefix="byoi-bench-") as tmp:
        env = bot_env(str(Path(tmp) / "byoi.db"), slack.base_url, ovh_url)
        bot_port, minimal_port = free_port(), free_port()
        bot = start_bot(env, bot_port)
        minimal = start_bot(
            env,
            minimal_port,
            [sys.executable, __file__, "--minimal-server", str(minimal_port),
             "--slack-url", slack.base_url],
        )  # fmt: skip
        try:
            wait_healthy(bot_port, bot)
            wait_healthy(minimal_port, minimal)
            targets = {
                "byoi-bot": Client(f"http://127.0.0.1:{bot_port}/slack/events", slack),
                "minimal Bolt app": Client(f"http://127.0.0.1:{minimal_port}/slack/events", slack),
            }
            plan = [
                ("minimal Bolt app", "any text (ack only)", ["help"], 1),
                ("byoi-bot", "`help`", ["help"], 1),
                ("byoi-bot", "`list`", ["list"], 1),
                ("byoi-bot", "`deploy …` failing validation", FAILING_DEPLOYS, 1),
                ("minimal Bolt app", "any text (ack only)", ["help"], args.clients),
                ("byoi-bot", "`help`", ["help"], args.clients),
            ]
            for target, what, texts, clients in plan:
                client = targets[target]
                label = f"{target}|{what}|{clients}"
                client.run(label + "|warmup", texts, args.warmup, clients)
                run = client.run(label, texts, n, clients)
                is_bot = target == "byoi-bot"
                once, delays = answers(slack, run, expect=is_bot)
                lat = run["latencies"]
                ok = sum(1 for s in run["statuses"] if s == 200)
                summary[(target, clients, what)] = lat
                rows.append(
                    [
                        target,
                        what,
                        clients,
                        f"{ok}/{n}",
                        ms(percentile(lat, 50)),
                        ms(percentile(lat, 99)),
                        ms(max(lat)),
                        f"{n / run['wall']:.0f}",
                        f"{once}/{n}" if is_bot else "-",
                        ms(percentile(delays, 50)) if delays else "-",
                        ms(percentile(delays, 99)) if delays else "-",
                    ]
                )
        finally:
            stop(bot)
            stop(minimal)
            simulator.stop()
            slack.stop()

    print(f"## Slash-command ack latency, HTTP mode ({n} signed `/byoi` requests a run)\n")
    print(
        table(
            [
                "server",
                "command",
                "clients",
                "acked 200",
                "ack p50 ms",
                "ack p99 ms",
                "ack max ms",
                "req/s",
                "one answer each",
                "answer p50 ms",
                "answer p99 ms",
            ],
            rows,
        )
    )
    print()
    ratio_rows = []
    for clients in sorted({c for _, c, _ in summary}):
        reference = next(v for (t, c, _), v in summary.items() if t != "byoi-bot" and c == clients)
        for (target, c, what), lat in summary.items():
            if target != "byoi-bot" or c != clients:
                continue
            ratio_rows.append(
                [
                    what,
                    clients,
                    f"{percentile(lat, 50) / percentile(reference, 50):.2f}×",
                    f"{percentile(lat, 99) / percentile(reference, 99):.2f}×",
                    "yes" if percentile(lat, 99) < 0.100 else "no",
                    "yes" if percentile(lat, 99) <= 2 * percentile(reference, 99) else "no",
                ]
            )
    print(
        table(
            ["byoi-bot command", "clients", "p50 ratio", "p99 ratio", "p99 < 100 ms", "p99 ≤ 2×"],
            ratio_rows,
        )
    )
    print()
    print(
        "Ratio: byoi-bot's latency over the minimal Bolt app's with the same number of clients. "
        "Client, fake Slack and simulator share this process; each server is its own process."
    )
    print(machine())


if __name__ == "__main__":
    main()

"""Slash-command acknowledgement latency in HTTP mode: byoi-bot next to a Bolt app that only acks.

Both servers are separate processes on 127.0.0.1 behind the same production server
(`slack.modes.http_server`: waitress, HTTP/1.1): byoi-bot is the real `byoi-bot run --http`
(its scheduler and outbox sender running, Slack's Web API and the answers' response_urls on a
local fake Slack, OVHcloud on the simulator), the reference is a Bolt `App` with the same
options whose `/byoi` listener only calls `ack()`. This process is Slack: it signs each
`/byoi` request like Slack does, POSTs it, and times until the HTTP answer (the ack) is read,
either on a new connection per request or on one keep-alive connection per client. It also
records when each request's ephemeral answer reached the fake Slack's response_url ("answer"
columns; the minimal app sends none).

Runs (1,000 `help` requests each, after 50 unmeasured; `help` is answered in the ack itself):
8 concurrent clients, new connections, then keep-alive, against both servers; `list` from 8
keep-alive clients (answered from the bot's threads after the ack, to the response_url); then
byoi-bot with one client, idle, and while 16 slow preflights are in flight (deploys whose
image server answers after 8 s, kept at 16 by a feeder thread for the whole run).

Run: `python benchmarks/ack_latency.py [--requests 1000] [--clients 8]` (about a minute).
Goals (issue 13): p99 ≤ 1.3× the minimal app with 8 clients and no request over 1 s; with 16
slow preflights in flight, p99 < 100 ms and ≤ 2× the idle bot's.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchlib import (
    BOT_TOKEN,
    CHANNEL,
    REQUESTER,
    SECRET,
    bot_env,
    free_port,
    machine,
    parse_args,
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

    http_server(app, "127.0.0.1", port, _healthz, SECRET).serve_forever()


def _healthz(environ: dict, start_response):
    """The one ops route the minimal app needs: /healthz, for `wait_healthy`."""
    if environ.get("PATH_INFO") != "/healthz":
        return None
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


class Client:
    """Signs and POSTs slash commands; records ack latencies and send times."""

    def __init__(self, url: str, slack: FakeSlack) -> None:
        self.port = int(url.split(":")[2].split("/")[0])
        self.slack = slack
        self.local = threading.local()  # each client thread's keep-alive connection
        self.in_ack: dict[str, float] = {}  # request name -> ack seconds, answers in acks

    def one(self, text: str, name: str, keep_alive: bool = False) -> tuple[int, float, float]:
        """(HTTP status, ack seconds, wall-clock send time) of one signed /byoi; an answer
        carried by the ack itself (help, command errors) is noted in `in_ack`."""
        body = slash_command_body(
            text,
            user_id=REQUESTER,
            channel_id=CHANNEL,
            response_url=self.slack.response_url(name),
        )
        headers = signed_headers(SECRET, body)
        sent = time.time()
        began = time.perf_counter()
        conn = getattr(self.local, "conn", None) if keep_alive else None
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("POST", "/slack/events", body=body.encode(), headers=headers)
        response = conn.getresponse()
        carried = response.read()
        elapsed = time.perf_counter() - began
        if carried and not carried.startswith(b"Checking `"):
            self.in_ack[name] = elapsed
        if keep_alive:
            self.local.conn = conn
        else:
            conn.close()
        return response.status, elapsed, sent

    def run(
        self,
        label: str,
        texts: Sequence[str],
        count: int,
        clients: int = 1,
        keep_alive: bool = False,
    ) -> dict:
        """`count` requests from `clients` threads; returns latencies and answer delays."""
        results: list[tuple[str, int, float, float]] = []
        lock = threading.Lock()
        counter = iter(range(count))

        def worker() -> None:
            for i in counter:
                name = f"{label}/{i}"
                status, elapsed, sent = self.one(texts[i % len(texts)], name, keep_alive)
                with lock:
                    results.append((name, status, elapsed, sent))

        threads = [threading.Thread(target=worker) for _ in range(clients)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
        self.local = threading.local()
        return {
            "names": {name: sent for name, _, _, sent in results},
            "statuses": [status for _, status, _, _ in results],
            "latencies": [elapsed for _, _, elapsed, _ in results],
            "wall": wall,
        }


def answers(
    slack: FakeSlack, run: dict, expect: bool, in_ack: dict[str, float], timeout: float = 60
) -> tuple[int, list]:
    """How many requests of `run` got exactly one answer (in the ack, or at the
    response_url), and the answer delays (s)."""
    names = {name: sent for name, sent in run["names"].items() if name not in in_ack}
    acked = [delay for name, delay in in_ack.items() if name in run["names"]]
    if expect and names:
        slack.wait_for(
            lambda: sum(1 for r in slack.calls if r.name in names) >= len(names), timeout
        )
    else:
        time.sleep(0.5)
    seen: dict[str, list[float]] = {}
    for call in slack.calls_to("response_url"):
        if call.name in names:
            seen.setdefault(call.name, []).append(call.time - names[call.name])
    doubled = {c.name for c in slack.calls_to("response_url") if c.name in in_ack}
    once = sum(1 for times in seen.values() if len(times) == 1)
    once += len([name for name in in_ack if name in run["names"] and name not in doubled])
    return once, [times[0] for times in seen.values()] + acked


class SlowImages:
    """An image server that answers each request after `delay` seconds (then 404)."""

    def __init__(self, delay: float) -> None:
        self.held = self.arrived = 0
        self.lock = threading.Condition()
        images = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with images.lock:
                    images.held += 1
                    images.arrived += 1
                    images.lock.notify_all()
                time.sleep(delay)
                with images.lock:
                    images.held -= 1
                    images.lock.notify_all()
                self.send_error(404)

            do_HEAD = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"


class Feeder:
    """Keeps `count` deploys preflighting against `images` while a run goes on."""

    def __init__(self, client: Client, images: SlowImages, count: int) -> None:
        self.client, self.images, self.count = client, images, count
        self.running = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._feed, daemon=True)

    def __enter__(self) -> Feeder:
        self.running.set()
        self.thread.start()
        with self.images.lock:  # all in flight before measuring
            self.images.lock.wait_for(lambda: self.images.held >= self.count, timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.running.clear()
        self.thread.join()

    def _feed(self) -> None:
        images = self.images
        while self.running.is_set():
            with images.lock:
                images.lock.wait_for(lambda: images.held < self.count, timeout=0.5)
                if images.held >= self.count:
                    continue
                before = images.arrived
            self.sent += 1
            self.client.one(f"deploy {SERVER} {images.url}/slow-{self.sent}.qcow2", "feed")
            with images.lock:  # its preflight reached the images: it is in flight
                images.lock.wait_for(lambda b=before: images.arrived > b, timeout=10)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--clients", type=int, default=8, help="clients of the concurrent run")
    parser.add_argument("--slow", type=int, default=16, help="slow preflights in flight")
    parser.add_argument("--minimal-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--slack-url", help=argparse.SUPPRESS)
    args = parse_args(parser, requests=20, warmup=2, clients=2, slow=2)
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
        env["BYOI_URL_ALLOWLIST"] = "127.0.0.1/32"  # the slow image server
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
            slow = SlowImages(delay=8.0)
            busy_label = f"`help`, {args.slow} slow preflights"
            c = args.clients
            plan = [  # target, what, clients, keep-alive, slow preflights in flight
                ("minimal Bolt app", "ack only", c, False, 0),
                ("byoi-bot", "`help`", c, False, 0),
                ("minimal Bolt app", "ack only", c, True, 0),
                ("byoi-bot", "`help`", c, True, 0),
                ("byoi-bot", "`list` (answered after the ack)", c, True, 0),
                ("byoi-bot", "`help`, idle", 1, True, 0),
                ("byoi-bot", busy_label, 1, True, args.slow),
            ]
            for target, what, clients, keep_alive, slow_count in plan:
                client = targets[target]
                label = f"{target}|{what}|{clients}|{keep_alive}"
                with contextlib.ExitStack() as stack:
                    if slow_count:
                        feeder = Feeder(targets["byoi-bot"], slow, slow_count)
                        stack.enter_context(feeder)
                    texts = ["list"] if what.startswith("`list`") else ["help"]
                    client.run(label + "|warmup", texts, args.warmup, clients, keep_alive)
                    run = client.run(label, texts, n, clients, keep_alive)
                is_bot = target == "byoi-bot"
                once, delays = answers(slack, run, expect=is_bot, in_ack=client.in_ack)
                lat = run["latencies"]
                ok = sum(1 for s in run["statuses"] if s == 200)
                summary[(target, what, clients, keep_alive)] = lat
                rows.append(
                    [
                        target,
                        what,
                        clients,
                        "keep-alive" if keep_alive else "new each",
                        f"{ok}/{n}",
                        ms(percentile(lat, 50)),
                        ms(percentile(lat, 99)),
                        ms(max(lat)),
                        sum(1 for x in lat if x > 1.0),
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
    headers = ["server", "command", "clients", "connections", "acked 200", "ack p50 ms"]
    headers += ["ack p99 ms", "ack max ms", "> 1 s", "req/s", "one answer each"]
    print(table([*headers, "answer p50 ms", "answer p99 ms"], rows))
    print()
    p99 = {key: percentile(lat, 99) for key, lat in summary.items()}
    ratio_rows = []
    for keep_alive in (False, True):
        bot = p99[("byoi-bot", "`help`", args.clients, keep_alive)]
        ref = p99[("minimal Bolt app", "ack only", args.clients, keep_alive)]
        ratio = bot / ref
        ratio_rows.append(
            [
                f"{args.clients} clients, {'keep-alive' if keep_alive else 'new connections'}",
                "byoi-bot / minimal Bolt app",
                f"{ratio:.2f}×",
                "≤ 1.3×",
                "yes" if ratio <= 1.3 else "no",
            ]
        )
    busy = p99[("byoi-bot", busy_label, 1, True)]
    idle = p99[("byoi-bot", "`help`, idle", 1, True)]
    ratio_rows.append(
        [
            f"1 client, {args.slow} slow preflights in flight",
            "busy / idle byoi-bot",
            f"{busy / idle:.2f}× ({ms(busy)} ms)",
            "≤ 2× and < 100 ms",
            "yes" if busy <= 2 * idle and busy < 0.1 else "no",
        ]
    )
    print(table(["run", "p99 ratio of", "ratio", "goal", "met"], ratio_rows))
    print()
    print(
        "Client, fake Slack, simulator and slow image server share this process; each server "
        "is its own process."
    )
    print(machine())


if __name__ == "__main__":
    main()

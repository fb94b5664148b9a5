"""Refusing an oversized body in HTTP mode: time until the answer, and the server's memory.

Each case runs the production HTTP server (`slack.modes.http_server`: waitress, the
signature check, a Bolt app behind it) in a fresh child process, so the peak resident
memory (VmHWM) measured after one request is that request's. This process is the client:
it sends the request line and headers, then streams the body from one 64 KiB buffer while
it waits for the answer, and times until the status line arrives (median of 9 requests; 3
and 1 for the slow uncapped ones).

Cases: the bot as it is (bodies capped at `BODY_LIMIT`, 1 MiB) refusing 64 MB and 200 MB
bodies announced by Content-Length, and 64 MB sent chunked (no length); the reference is
the same server refusing a 1 KiB unsigned body (401), the cheapest refusal it makes. "MiB
sent" is what the client had handed to its socket when the answer came (the kernel's
buffers hold a few MiB). For
contrast, the same server with the cap lifted (what the bot did before issue 18: read the
whole body, then check its signature).

Run: `python benchmarks/http_body_cap.py` (about 10 s).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchlib import SECRET, machine, parse_args, table

CHUNK = b"x" * 65536
MB = 1000 * 1000
MIB = 1024 * 1024


def serve(limit: int) -> None:
    """The child: the production HTTP server in front of a Bolt app; prints its port."""
    from slack_bolt import App
    from slack_sdk import WebClient

    from byoi_bot.slack.modes import http_server

    app = App(
        client=WebClient(token="xoxb-bench", base_url="http://127.0.0.1:9/api/"),
        signing_secret=SECRET,
        token_verification_enabled=False,
    )
    server = http_server(app, "127.0.0.1", 0, lambda: True, SECRET, body_limit=limit)
    print(server.server_port, flush=True)
    server.serve_forever()


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def refuse(port: int, size: int, chunked: bool) -> tuple[str, float, int]:
    """Send a `size`-byte body from a thread; return the status, seconds until it arrived,
    and the bytes the server had taken by then."""
    head = ["POST /slack/events HTTP/1.1", "Host: 127.0.0.1", "Content-Type: text/plain"]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}")
    frame = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK) if chunked else CHUNK
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sent = [0]

    def send_body() -> None:
        try:
            while sent[0] < size:
                sock.sendall(frame)
                sent[0] += len(CHUNK)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server answered and closed
            pass

    start = time.perf_counter()
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    answer = b""
    while b"\r\n" not in answer and (data := sock.recv(4096)):
        answer += data
    elapsed = time.perf_counter() - start
    taken = sent[0]
    sock.close()
    sender.join(10)
    return answer.split(b" ", 2)[1].decode(), elapsed, taken


def case(limit: int, size: int, chunked: bool, runs: int) -> tuple[str, float, int, int]:
    """`runs` refusals by one fresh server: status, median seconds, median bytes taken, and
    how much the server's peak memory grew (KiB)."""
    child = subprocess.Popen(
        [sys.executable, __file__, "serve", "--limit", str(limit)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(child.stdout.readline())
        before = peak_rss_kib(child.pid)
        results = [refuse(port, size, chunked) for _ in range(runs)]
        time.sleep(0.2)  # let the server finish with the request before reading its peak
        (status,) = {r[0] for r in results}
        seconds = statistics.median(r[1] for r in results)
        sent = statistics.median(r[2] for r in results)
        return status, seconds, int(sent), peak_rss_kib(child.pid) - before
    finally:
        child.terminate()
        child.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    serve_cmd = sub.add_parser("serve")
    serve_cmd.add_argument("--limit", type=int, required=True)
    args = parse_args(parser)
    if args.command == "serve":
        serve(args.limit)
        return
    from byoi_bot.slack.http import BODY_LIMIT

    cases = [
        ("capped (the bot)", BODY_LIMIT, 1024, False, "1 KiB unsigned (reference)", 9),
        ("capped (the bot)", BODY_LIMIT, 64 * MB, False, "64 MB, Content-Length", 9),
        ("capped (the bot)", BODY_LIMIT, 200 * MB, False, "200 MB, Content-Length", 9),
        ("capped (the bot)", BODY_LIMIT, 64 * MB, True, "64 MB, chunked", 9),
        ("cap lifted (before)", 2**40, 64 * MB, False, "64 MB, Content-Length", 3),
        ("cap lifted (before)", 2**40, 200 * MB, False, "200 MB, Content-Length", 1),
    ]
    if args.smoke:  # the first two cases, once each
        cases = [(srv, lim, size, ch, body, 1) for srv, lim, size, ch, body, _ in cases[:2]]
    rows, reference = [], None
    for server, limit, size, chunked, body, runs in cases:
        status, seconds, sent, grew = case(limit, size, chunked, runs)
        if reference is None:
            reference = seconds
        rows.append(
            (
                server,
                body,
                status,
                f"{seconds * 1000:.1f}",
                f"{seconds / reference:.1f}×",
                f"{sent / MIB:.1f}",
                f"{grew / 1024:.1f}",
            )
        )
    headers = ("server", "body", "answer", "median ms to answer", "vs reference", "MiB sent",
               "peak RSS growth MiB")  # fmt: skip
    print(table(headers, rows))
    print(f"\nBODY_LIMIT = {BODY_LIMIT:,} bytes. {machine()}")


if __name__ == "__main__":
    main()

"""The HTTP mode's server: waitress, in the bot's own process, with a graceful stop.

Why waitress: it is a maintained, pure-Python production WSGI server that runs *inside* this
process (the scheduler, the poller and the outbox's sender must exist once, next to the
store), serves HTTP/1.1 with keep-alive from one event loop and a pool of threads, and takes
a real listen backlog. A pre-fork server (gunicorn) would need its worker hooks to start the
bot in the worker process and its master process to relay signals; waitress needs neither.

Bodies are capped at `BODY_LIMIT` (1 MiB) by waitress itself, from the request line and
headers, before the app reads a byte: a Content-Length over it gets 413 at once (the body is
never read); a chunked body gets 413 as soon as the bytes received pass it. Slack's own
payloads are a few KiB (the largest, a modal's state, stays well below 100 KiB), so 1 MiB
leaves room and still bounds what one request can make the bot hold.

`stop()` is graceful: the listening socket closes first (new connections are refused), the
requests already received are answered (acks included), then the connections close.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable

from waitress import wasyncore
from waitress.server import create_server

log = logging.getLogger(__name__)

THREADS = 16  # request threads: they check the signature and wait for Bolt's ack
BACKLOG = 1024  # connections the kernel queues before the loop accepts them
KEEP_ALIVE = 75  # seconds an idle keep-alive connection stays open
GRACE = 10.0  # seconds to finish in-flight requests on stop
SWITCH_INTERVAL = 0.0005  # seconds; CPython's default is 0.005
BODY_LIMIT = 1024 * 1024  # bytes; a larger body is refused with 413 before it is read


class HttpServer:
    """A WSGI app served by waitress on `host:port` (port 0: any free port)."""

    def __init__(
        self,
        app: Callable,
        host: str,
        port: int,
        *,
        threads: int = THREADS,
        body_limit: int = BODY_LIMIT,
    ) -> None:
        self._server = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            backlog=BACKLOG,
            channel_timeout=KEEP_ALIVE,
            connection_limit=1000,
            asyncore_use_poll=True,
            expose_tracebacks=False,
            ident="byoi-bot",
            max_request_body_size=body_limit + 1,  # waitress refuses sizes >= this
        )
        self._stopped = threading.Event()

    @property
    def server_port(self) -> int:
        return self._server.effective_port

    def serve_forever(self) -> None:
        """Serve until `stop()` (from another thread or a signal handler).

        The interpreter switches threads every `SWITCH_INTERVAL` (not 5 ms): a request's
        ack must not wait for background threads (answers, preflights, the outbox) to give
        up the GIL.
        """
        sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            self._server.run()
        finally:
            self._stopped.set()

    def stop(self, grace: float = GRACE) -> None:
        """Refuse new connections, answer what was received (up to `grace` s), then close."""
        server = self._server
        server.trigger.pull_trigger(lambda: wasyncore.dispatcher.close(server))
        deadline = time.monotonic() + grace
        while not self._idle() and time.monotonic() < deadline:
            time.sleep(0.02)
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
        with contextlib.suppress(OSError):  # closed already: the server closed itself
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        self._stopped.wait(grace)

    def stop_in_background(self) -> None:
        """`stop()` from a thread of its own: what a SIGTERM handler calls."""
        threading.Thread(target=self.stop, name="byoi-http-stop", daemon=True).start()

    def _idle(self) -> bool:
        dispatcher = self._server.task_dispatcher
        with dispatcher.lock:
            busy = dispatcher.active_count or dispatcher.queue
        channels = list(self._server.active_channels.values())
        return not busy and not any(c.requests or c.total_outbufs_len for c in channels)

    # the names of the standard library's servers, for tests and benchmarks
    def shutdown(self) -> None:
        self.stop()

    def server_close(self) -> None:
        """Nothing left to close after `stop()`."""

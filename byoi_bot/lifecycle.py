"""A bounded, graceful stop on SIGTERM or SIGINT, in every run mode and as PID 1.

`Stopper.install()` takes both signals (as PID 1 in a container, a signal without a handler
is ignored). The first one sets `requested`, calls the `on_stop` callback (HTTP mode: stop
accepting connections) and starts a watchdog: if the process has not called `done()` within the stop
timeout, it logs what it was still doing and exits 1 at once, leaving the work in hand to
the next start (the store is the truth: a poll is simply taken again, a start call whose
answer was lost is reconciled). A second signal exits at once the same way.

Under systemd (`Type=notify`), `ready()` tells it the bot serves (READY=1) and a stop
request tells it the bot is stopping (STOPPING=1); without NOTIFY_SOCKET nothing is sent.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

FORCED_EXIT = 1


class Stopper:
    """Turns SIGTERM and SIGINT into a stop that ends within `timeout` seconds."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.requested = threading.Event()
        self._ready = threading.Event()
        self._done = threading.Event()
        self._on_stop: Callable[[], None] = lambda: None

    def install(self) -> None:
        """Handle SIGTERM and SIGINT from now on (call from the main thread, early: a signal
        during start-up stops the bot as soon as it can)."""
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call `callback` when a stop is requested (at once if it was already)."""
        self._on_stop = callback
        if self.requested.is_set():
            callback()

    def ready(self) -> None:
        """The bot serves Slack now."""
        self._ready.set()
        tell_systemd("READY=1")

    def serving(self) -> bool:
        """Ready, and no stop requested."""
        return self._ready.is_set() and not self.requested.is_set()

    def wait(self) -> None:
        """Block until a stop is requested."""
        self.requested.wait()

    def done(self) -> None:
        """The stop is complete: the watchdog stands down."""
        self._done.set()

    def _handle(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if self.requested.is_set():
            log.warning("%s again: exiting now", name)
            self._force()
            return
        self.requested.set()
        tell_systemd("STOPPING=1")
        log.info("%s: stopping (at most %.0f s)", name, self.timeout)
        threading.Thread(target=self._watch, name="byoi-stop-watchdog", daemon=True).start()
        self._on_stop()

    def _watch(self) -> None:
        if not self._done.wait(self.timeout):
            busy = sorted(t.name for t in threading.enumerate() if not t.daemon)
            log.error(
                "not stopped after %.0f s (still running: %s); exiting, the next start "
                "resumes the work",
                self.timeout,
                ", ".join(busy) or "nothing",
            )
            self._force()

    def _force(self) -> None:
        logging.shutdown()
        os._exit(FORCED_EXIT)


def tell_systemd(state: str) -> None:
    """sd_notify(3): one datagram to $NOTIFY_SOCKET, if set. Hand-written: the protocol is
    that one datagram, and sdnotify, its PyPI client, is unmaintained (2018) and sdist-only."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(state.encode(), address)
        except OSError as exc:
            log.warning("could not tell systemd %s: %s", state, exc.strerror or exc)

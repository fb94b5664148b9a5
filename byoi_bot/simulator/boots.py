"""The servers' side after an install: each server answers an SSH identification line.

Every server of the inventory gets its own TCP port on 127.0.0.1, reserved when the
simulator starts (so a test or an operator knows it before any install). A connection is
answered from the server's state on the simulator's clock:

- no finished install yet (or still rebooting): the connection is reset, as a server that
  is down refuses it;
- `ssh` (the default): `SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3` and the connection closes;
- `never`: the server never comes back (every connection is reset);
- `late`: it comes back `after` seconds (simulator time) after the install ended;
- `silent`: it accepts connections and never says a word;
- `banner`: it answers `text` instead (something that is not SSH, e.g. an HTTP error).

One selector thread serves every port; nothing here blocks on a client.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

SSH_BANNER = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
MODES = ("ssh", "never", "late", "silent", "banner")


class BootError(ValueError):
    """A boot behaviour the simulator cannot play."""


@dataclass(frozen=True)
class Behaviour:
    """How a server answers once installed (see the module's docstring)."""

    mode: str = "ssh"
    after: float = 0.0  # `late`: seconds after the install's end
    text: str = ""  # `banner`: the line sent instead of SSH's

    @classmethod
    def parse(cls, data: object) -> Behaviour:
        """From the control API's JSON (`{"mode": "late", "after": 90}`)."""
        if not isinstance(data, dict) or data.get("mode") not in MODES:
            raise BootError(f'expected {{"mode": one of {", ".join(MODES)}}}')
        after = data.get("after", 0)
        if not isinstance(after, int | float) or after < 0:
            raise BootError('"after" is seconds (a number, at least 0)')
        text = data.get("text", "HTTP/1.1 400 Bad Request")
        if not isinstance(text, str) or not text or len(text) > 255 or "\n" in text:
            raise BootError('"text" is one line of at most 255 characters')
        return cls(data["mode"], float(after), text)


class Boots:
    """The per-server listeners; `ended(name)` says how long ago the server's last install
    ended successfully (None: never), on the simulator's clock."""

    def __init__(self, ended: Callable[[str], float | None], host: str = "127.0.0.1") -> None:
        self.host = host
        self._ended = ended
        self._behaviour: dict[str, Behaviour] = {}
        self._sockets: dict[str, socket.socket] = {}
        self._open: list[socket.socket] = []  # `silent` connections, closed at stop
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, names: list[str]) -> None:
        """Reserve a listening port per server and serve them on a daemon thread."""
        for name in names:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, 0))
            listener.listen(64)
            listener.setblocking(False)
            self._sockets[name] = listener
            self._selector.register(listener, selectors.EVENT_READ, name)
        self._thread = threading.Thread(target=self._serve, name="sim-boots", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for sock in [*self._sockets.values(), *self._open]:
            sock.close()
        self._selector.close()

    def ports(self) -> dict[str, int]:
        """Each server's SSH port on `host`."""
        return {name: sock.getsockname()[1] for name, sock in self._sockets.items()}

    def port_of(self, name: str) -> int | None:
        """The SSH port of server `name` (None: not a server of this simulator)."""
        return self.ports().get(name)

    def set(self, name: str, behaviour: Behaviour) -> None:
        """How `name` answers from now on; raises BootError for an unknown server."""
        if name not in self._sockets:
            raise BootError(f"no server {name}")
        with self._lock:
            self._behaviour[name] = behaviour

    def reset(self) -> None:
        """Every server back to answering SSH."""
        with self._lock:
            self._behaviour.clear()

    def view(self) -> dict[str, dict]:
        """The control API's answer: each server's address and behaviour."""
        with self._lock:
            behaviour = dict(self._behaviour)
        return {
            name: {"ip": self.host, "port": port, **behaviour.get(name, Behaviour()).__dict__}
            for name, port in self.ports().items()
        }

    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                try:
                    conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                except OSError:
                    continue
                self._answer(key.data, conn)

    def _answer(self, name: str, conn: socket.socket) -> None:
        with self._lock:
            behaviour = self._behaviour.get(name, Behaviour())
        ended = self._ended(name)
        up = ended is not None and behaviour.mode != "never"
        if up and behaviour.mode == "late":
            up = ended >= behaviour.after
        if not up:  # down: reset the connection (SO_LINGER 0), as a refusal would
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            return
        if behaviour.mode == "silent":
            self._open.append(conn)
            return
        line = behaviour.text if behaviour.mode == "banner" else SSH_BANNER
        try:
            conn.sendall(f"{line}\r\n".encode())
        except OSError:
            pass
        finally:
            conn.close()

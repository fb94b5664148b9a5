"""One way to run a test server (http.server or websockets) on 127.0.0.1:0 in a thread."""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Self


class BackgroundServer:
    """Start/stop/context-manager plumbing around the server `_make_server()` builds."""

    def __init__(self) -> None:
        self._server: Any = None  # anything with serve_forever(), shutdown() and .socket
        self._thread: threading.Thread | None = None

    serve_options: ClassVar[dict[str, Any]] = {
        "poll_interval": 0.05
    }  # http.server's shutdown latency

    def _make_server(self) -> Any:
        raise NotImplementedError

    def start(self) -> Self:
        """Bind 127.0.0.1:0 and serve in a daemon thread (idempotent). Returns self."""
        if self._server is None:
            self._server = self._make_server()
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs=self.serve_options, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            if hasattr(server, "server_close"):
                server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port (the server must be started)."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._server.socket.getsockname()[1]

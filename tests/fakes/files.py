"""A tiny HTTP file server on 127.0.0.1 (checksum files, signatures): path → bytes.

`files` may be changed while it runs (a checksum file replaced after approval); `hits`
counts the GETs per path; a path in `drips` is sent one byte at a time, that many seconds
apart, until `stop_dripping` is set.
"""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .serving import BackgroundServer


class FileServer(BackgroundServer):
    """Serves `files` (path → bytes), with `redirects` (path → location), until `stop()`."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        super().__init__()
        self.files: dict[str, bytes] = dict(files or {})
        self.hits: Counter[str] = Counter()
        self.redirects: dict[str, str] = {}
        self.drips: dict[str, float] = {}
        self.stop_dripping = threading.Event()

    def _make_server(self) -> ThreadingHTTPServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        httpd.daemon_threads = True
        return httpd

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] += 1
                if self.path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path not in server.drips:
                    self.wfile.write(body)
                    return
                for byte in body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    if server.stop_dripping.wait(server.drips[self.path]):
                        return

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

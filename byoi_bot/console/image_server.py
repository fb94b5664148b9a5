"""A small range-capable HTTP server for the demo images (127.0.0.1 only)."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .images import SparseImage

CHUNK = 1024 * 1024


class ImageServer:
    """Serves `images` (path → SparseImage) with `Range` support until `stop()`."""

    def __init__(self, images: dict[str, SparseImage]) -> None:
        self.images = images
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}"

    def start(self) -> ImageServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        images = self.images

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                image = images.get(self.path.split("?")[0])
                if image is None:
                    self.send_error(404)
                    return
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                if not match:
                    self.send_response(200)
                    self.send_header("Content-Length", str(image.size))
                    self.end_headers()
                    try:  # a checksum reads it all
                        for start in range(0, image.size, CHUNK):
                            self.wfile.write(image.pread(start, CHUNK))
                    except OSError:
                        self.close_connection = True
                    return
                start = int(match[1])
                end = int(match[2]) if match[2] else image.size - 1
                body = image.read(start, end)
                self.send_response(206)
                self.send_header(
                    "Content-Range", f"bytes {start}-{start + len(body) - 1}/{image.size}"
                )
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

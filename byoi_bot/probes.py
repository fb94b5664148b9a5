"""The boot gate's probes over the network (the core's `BootProbe` port).

SSH: a TCP connection to the server's IP and port, then its identification line (RFC 4253,
section 4.2: `SSH-2.0-…`, at most 255 bytes; other lines may come first). Nothing is sent:
the server speaks first, so the probe never logs in and needs no key.

HTTPS health URL: a GET through urllib3 to the server's IP, the URL's host in SNI and the
Host header, 2xx passes. The certificate is not verified: a server minutes old rarely has
one for its name, and the probe asks whether *this* server (its address comes from
OVHcloud) answers, not who it is; nothing secret is sent.

`ports` (tests and the demo only) maps a server to the port its simulated SSH listens on
instead of the policy's; production never sets it.
"""

from __future__ import annotations

import socket
import warnings
from collections.abc import Callable
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import HTTPError, InsecureRequestWarning

from .core.boot_gate import BootTarget, ProbeResult

MAX_LINES = 16  # lines read before the identification line is given up on
MAX_LINE = 255  # RFC 4253: the identification line, CR LF included


class NetworkProbe:
    """Probes a server over TCP (SSH) and HTTPS (health URL); `timeout` is per step."""

    def __init__(
        self, *, timeout: float = 5.0, ports: Callable[[str], int | None] | None = None
    ) -> None:
        self.timeout = timeout
        self.ports = ports

    def probe(self, target: BootTarget) -> ProbeResult:
        port = (self.ports(target.server) if self.ports else None) or target.ssh_port
        ssh = ssh_identification(target.ip, port, self.timeout)
        if not ssh.passed or not target.health_url:
            return ssh
        health = https_health(target.ip, target.health_url, self.timeout)
        if not health.passed:
            return ProbeResult(False, f"{ssh.detail}; but {health.detail}")
        return ProbeResult(True, f"{ssh.detail}; {health.detail}")


def ssh_identification(ip: str, port: int, timeout: float) -> ProbeResult:
    """Connect to `ip:port` and read the SSH identification line."""
    where = f"{ip}:{port}"
    try:
        with socket.create_connection((ip, port), timeout=timeout) as conn:
            reader = conn.makefile("rb")
            first = ""  # the first line that was not an identification line
            for _ in range(MAX_LINES):
                line = reader.readline(MAX_LINE + 1)
                text = _printable(line)
                if line.startswith((b"SSH-2.0-", b"SSH-1.99-")):
                    return ProbeResult(True, text)
                if line.startswith(b"SSH-"):
                    return ProbeResult(False, f"{where} speaks an old SSH: {text}")
                first = first or text
                if not line.endswith(b"\n"):  # the end, or a line longer than SSH allows
                    break
            if not first:
                return ProbeResult(False, f"{where} closed the connection without a word")
            return ProbeResult(False, f"{where} answered, but not SSH: {first}")
    except TimeoutError:
        return ProbeResult(False, f"no answer from {where} within {timeout:g} s")
    except ConnectionRefusedError:
        return ProbeResult(False, f"{where} refused the connection")
    except ConnectionResetError:
        return ProbeResult(False, f"{where} reset the connection")
    except OSError as exc:
        return ProbeResult(False, f"{where}: {exc.strerror or type(exc).__name__}")


def https_health(ip: str, url: str, timeout: float) -> ProbeResult:
    """GET `url` from the server at `ip` (not from wherever its host name points)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 443
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    pool = urllib3.HTTPSConnectionPool(
        ip,
        port,
        server_hostname=host,
        cert_reqs="CERT_NONE",
        assert_hostname=False,
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
        retries=False,
        maxsize=1,
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureRequestWarning)
            answer = pool.request(
                "GET", path, headers={"Host": parts.netloc}, redirect=False, preload_content=False
            )
        answer.release_conn()
    except HTTPError as exc:
        return ProbeResult(False, f"the health URL did not answer ({type(exc).__name__})")
    finally:
        pool.close()
    verdict = f"the health URL answered {answer.status}"
    return ProbeResult(200 <= answer.status < 300, verdict)


def _printable(line: bytes) -> str:
    """A server-sent line fit for a message: printable ASCII, at most 255 characters."""
    text = line.rstrip(b"\r\n").decode("ascii", "replace")
    return "".join(c if c.isprintable() else "?" for c in text)[:MAX_LINE]

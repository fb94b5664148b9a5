"""The boot gate's probes over real TCP, against the simulator's servers and an HTTPS server."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
import urllib.request

import image_factory
import pytest
from bot_harness import FakeClock
from hypothesis import given, settings
from hypothesis import strategies as st
from tools import require_tool

from byoi_bot.core.boot_gate import BootTarget, health_url_problem
from byoi_bot.ovhcloud.client import make_client
from byoi_bot.probes import NetworkProbe, https_health, ssh_identification
from byoi_bot.simulator import DEMO_CREDENTIALS, Simulator
from byoi_bot.simulator.boots import SSH_BANNER

SERVER = "ns1001.ip-51-75-1.eu"


@pytest.fixture
def sim():
    clock = FakeClock()
    simulator = Simulator(deploy_seconds=60, clock=clock.monotonic, credentials=DEMO_CREDENTIALS)
    simulator.start()
    simulator.clock = clock
    yield simulator
    simulator.stop()


def install(sim: Simulator, server: str = SERVER) -> None:
    """One install on `server`, run to its end on the simulator's clock."""
    sim.world.start_byoi(server, {"URL": "https://images.example.net/a.qcow2", "type": "qcow2"})
    sim.clock.advance(61)


def control(sim: Simulator, method: str, path: str, body: object = None) -> tuple[int, object]:
    base = sim.url.removesuffix("/1.0")
    data = json.dumps(body).encode() if body is not None else None
    call = urllib.request.Request(f"{base}/_simulator{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(call, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def probe(sim: Simulator, server: str = SERVER, timeout: float = 2.0):
    port = sim.boots.port_of(server)
    return ssh_identification("127.0.0.1", port, timeout)


def test_a_server_answers_ssh_only_once_its_install_ended(sim):
    before = probe(sim)
    assert not before.passed and "reset the connection" in before.detail
    install(sim)
    after = probe(sim)
    assert after.passed and after.detail == SSH_BANNER


def test_the_control_api_lists_each_servers_own_port_and_the_api_answers_its_ip(sim):
    status, boots = control(sim, "GET", "/boots")
    assert status == 200 and boots[SERVER]["ip"] == "127.0.0.1"
    ports = {b["port"] for b in boots.values()}
    assert len(ports) == len(boots) == len(sim.world.server_names())
    client = make_client(sim.url, timeout=(2, 5), **DEMO_CREDENTIALS)
    assert client.get(f"/dedicated/server/{SERVER}")["ip"] == "127.0.0.1"


def test_a_server_that_never_comes_back(sim):
    assert control(sim, "POST", "/boots", {"server": SERVER, "mode": "never"})[0] == 200
    install(sim)
    result = probe(sim)
    assert not result.passed and "reset" in result.detail


def test_a_server_that_comes_back_late(sim):
    control(sim, "POST", "/boots", {"server": SERVER, "mode": "late", "after": 120})
    install(sim)
    assert not probe(sim).passed
    sim.clock.advance(118)  # 119 s after the install's end
    assert not probe(sim).passed
    sim.clock.advance(2)
    assert probe(sim).passed


def test_a_server_that_answers_something_else(sim):
    control(sim, "POST", "/boots", {"server": SERVER, "mode": "banner", "text": "<!channel> hi"})
    install(sim)
    result = probe(sim)
    assert not result.passed
    assert result.detail.endswith("answered, but not SSH: <!channel> hi")


def test_a_server_that_accepts_and_says_nothing_times_out(sim):
    control(sim, "POST", "/boots", {"server": SERVER, "mode": "silent"})
    install(sim)
    result = probe(sim, timeout=0.3)
    assert not result.passed and "no answer" in result.detail and "0.3 s" in result.detail


@pytest.mark.parametrize(
    "body",
    [
        {"server": SERVER, "mode": "reboot"},
        {"server": "nope.example", "mode": "ssh"},
        {"server": SERVER, "mode": "late", "after": -1},
        {"server": SERVER, "mode": "late", "after": "soon"},
        {"server": SERVER, "mode": "banner", "text": "two\nlines"},
        {"server": SERVER, "mode": "banner", "text": "x" * 300},
        ["not", "an", "object"],
    ],
)
def test_the_control_api_refuses_what_it_cannot_play(sim, body):
    status, answer = control(sim, "POST", "/boots", body)
    assert status == 400 and answer["message"]


def test_reset_brings_every_server_back_to_ssh(sim):
    control(sim, "POST", "/boots", {"server": SERVER, "mode": "never"})
    control(sim, "POST", "/reset")
    install(sim)
    assert probe(sim).passed


def test_the_probe_port_override_is_per_server(sim):
    install(sim)
    target = BootTarget(SERVER, "127.0.0.1", ssh_port=22)
    assert NetworkProbe(ports=sim.boots.port_of).probe(target).passed


class _Listener:
    """A TCP server sending `lines` then closing, for hostile identification lines."""

    def __init__(self, payload: bytes) -> None:
        import socket

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.payload = payload
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.sendall(self.payload)

    def close(self) -> None:
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.mark.parametrize(
    ("payload", "passed", "detail"),
    [
        (b"Welcome\r\nSSH-2.0-dropbear_2022.83\r\n", True, "SSH-2.0-dropbear_2022.83"),
        (b"SSH-1.99-OpenSSH_3.9\r\n", True, "SSH-1.99-OpenSSH_3.9"),
        (b"SSH-1.5-old\r\n", False, "speaks an old SSH: SSH-1.5-old"),
        (b"SSH-2.0-\x1b[31mred\x00\r\n", True, "SSH-2.0-?[31mred?"),
        (b"A" * 400, False, "answered, but not SSH: " + "A" * 255),
        (b"", False, "closed the connection without a word"),
    ],
)
def test_identification_lines(payload, passed, detail):
    listener = _Listener(payload)
    try:
        result = ssh_identification("127.0.0.1", listener.port, 2.0)
    finally:
        listener.close()
    assert result.passed is passed
    assert result.detail.endswith(detail)


def test_a_closed_port_is_refused():
    import socket

    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    result = ssh_identification("127.0.0.1", port, 2.0)
    assert not result.passed and "refused" in result.detail


@pytest.fixture
def https_server(tmp_path):
    """An HTTPS server on 127.0.0.1 for `health.example` (self-signed); the paths it serves
    answer the status their name says (`/200`, `/503`)."""
    require_tool("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    image_factory.run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                      "-keyout", key, "-out", cert, "-subj", "/CN=health.example")  # fmt: skip
    seen: list[tuple[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers["Host"]))
            status = int(self.path.strip("/").split("?")[0] or 200)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    server.seen = seen
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_the_health_url_is_asked_of_the_servers_ip_with_its_host_name(https_server):
    port = https_server.server_address[1]
    ok = https_health("127.0.0.1", f"https://health.example:{port}/200?deep=1", 2.0)
    assert ok.passed and ok.detail == "the health URL answered 200"
    assert https_server.seen == [("/200?deep=1", f"health.example:{port}")]
    down = https_health("127.0.0.1", f"https://health.example:{port}/503", 2.0)
    assert not down.passed and "503" in down.detail


def test_ssh_and_the_health_url_must_both_pass(sim, https_server):
    install(sim)
    port = https_server.server_address[1]
    probe = NetworkProbe(ports=sim.boots.port_of, timeout=2.0)
    good = BootTarget(SERVER, "127.0.0.1", health_url=f"https://health.example:{port}/204")
    bad = BootTarget(SERVER, "127.0.0.1", health_url=f"https://health.example:{port}/500")
    assert probe.probe(good).passed
    result = probe.probe(bad)
    assert not result.passed and result.detail == f"{SSH_BANNER}; but the health URL answered 500"


def test_a_health_url_nobody_answers():
    import socket

    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    result = https_health("127.0.0.1", f"https://health.example:{port}/", 2.0)
    assert not result.passed and "did not answer" in result.detail


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://web.example/health", "https://"),
        ("https://bob:pw@web.example/", "no user:password@"),
        ("https:///health", "host name"),
        ("https://web.example:99999/", "port"),
        ("https://web.example:0/", "port 0"),
        ("https://web.example/" + "a" * 2000, "2,000"),
    ],
)
def test_health_urls_that_cannot_be(url, problem):
    assert problem in health_url_problem(url)


def test_a_good_health_url():
    assert health_url_problem("https://web-1.example.net:8443/healthz?deep=1") is None


@settings(max_examples=40, derandomize=True, deadline=None)
@given(st.binary(max_size=600))
def test_whatever_a_server_sends_the_probe_answers_in_printable_words(payload):
    listener = _Listener(payload)
    try:
        result = ssh_identification("127.0.0.1", listener.port, 2.0)
    finally:
        listener.close()
    assert result.detail.isprintable() and len(result.detail) <= 300
    assert result.passed == result.detail.startswith(("SSH-2.0-", "SSH-1.99-"))

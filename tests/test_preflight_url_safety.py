"""SSRF guard: refused addresses, DNS pinning, redirects, and the allow-list."""

from __future__ import annotations

import socket
import ssl

import image_factory
import pytest
from tools import require_tool

from byoi_bot.core.request import DeploySpec
from byoi_bot.preflight import HttpImageInspector, http_range, url_safety
from byoi_bot.preflight.http_range import RangeError, RangeReader
from byoi_bot.preflight.url_safety import AllowList, UrlGuard, UrlRefused


@pytest.fixture(scope="session")
def server() -> image_factory.ImageServer:
    return image_factory.image_server()


@pytest.fixture
def no_connections(monkeypatch):
    """Fail the test if anything tries to open a TCP connection."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"unexpected connection to {args[0]}")

    monkeypatch.setattr(socket, "create_connection", refuse)


def fake_dns(monkeypatch, answers: dict[str, str]) -> list[str]:
    """Make getaddrinfo answer from `answers`; returns the list of names looked up."""
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            lookups.append(host)
        address = answers.get(host, host)  # IP literals (the pinned connect) answer themselves
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(url_safety.socket, "getaddrinfo", getaddrinfo)
    return lookups


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/a.qcow2", "loopback"),
        ("http://127.8.9.10/a.qcow2", "loopback"),
        ("http://[::1]/a.qcow2", "loopback"),
        ("http://10.1.2.3/a.qcow2", "private"),
        ("http://192.168.0.10/a.qcow2", "private"),
        ("http://172.16.5.4/a.qcow2", "private"),
        ("http://[fd12::1]/a.qcow2", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/latest/", "metadata"),
        ("http://[::ffff:169.254.169.254]/", "metadata"),
        ("http://169.254.10.10/a.qcow2", "link-local"),
        ("http://[fe80::1]/a.qcow2", "link-local"),
        ("http://0.0.0.0/a.qcow2", "unspecified"),
        ("http://224.0.0.1/a.qcow2", "multicast"),
        ("http://240.0.0.1/a.qcow2", "reserved"),
        ("http://100.64.0.1/a.qcow2", "not a public address"),
    ],
)
def test_internal_addresses_refused(no_connections, url, reason):
    with pytest.raises(UrlRefused, match=reason) as excinfo:
        UrlGuard().check(url)
    assert "BYOI_URL_ALLOWLIST" in str(excinfo.value)


@pytest.mark.parametrize("url", ["ftp://example.com/a", "file:///etc/passwd", "gopher://x/"])
def test_only_http_and_https(no_connections, url):
    with pytest.raises(UrlRefused, match="only http:// and https://"):
        UrlGuard().check(url)


def test_hostname_resolving_to_private_address_refused(monkeypatch, no_connections):
    fake_dns(monkeypatch, {"images.example.com": "10.0.0.7"})
    with pytest.raises(UrlRefused, match=r"images.example.com resolves to 10.0.0.7, a private"):
        UrlGuard().check("https://user:pw@images.example.com/a.qcow2?sig=x")


def test_refusal_message_masks_credentials_and_query(monkeypatch, no_connections):
    fake_dns(monkeypatch, {"images.example.com": "10.0.0.7"})
    with pytest.raises(UrlRefused) as excinfo:
        UrlGuard().check("https://user:pw@images.example.com/a.qcow2?sig=secret")
    assert "pw" not in str(excinfo.value) and "secret" not in str(excinfo.value)


def test_public_address_accepted_without_connecting(monkeypatch, no_connections):
    fake_dns(monkeypatch, {"images.example.com": "51.68.10.20"})
    target = UrlGuard().check("https://images.example.com:8443/a.qcow2?x=1")
    assert (target.address, target.host, target.port, target.path) == (
        "51.68.10.20",
        "images.example.com",
        8443,
        "/a.qcow2?x=1",
    )


def test_inspector_reports_refusal_as_blocking(no_connections):
    spec = DeploySpec("ns1", "http://169.254.169.254/latest/", "raw")
    report = HttpImageInspector().inspect(spec, None)
    (check,) = report.checks
    assert check.name == "reachable" and check.is_blocking
    assert "metadata" in check.message and report.facts["requests"] == 0


def test_allowlist_lifts_the_refusal(server):
    report = HttpImageInspector(allowlist="127.0.0.1/32").inspect(
        DeploySpec("ns1", server.url("/img/raw_gpt_esp"), "raw"), None
    )
    assert not any(c.is_blocking for c in report.checks)
    refused = HttpImageInspector().inspect(
        DeploySpec("ns1", server.url("/img/raw_gpt_esp"), "raw"), None
    )
    assert refused.checks[0].is_blocking and "loopback" in refused.checks[0].message


def test_redirect_to_metadata_refused(server):
    server.reset()
    url = server.url("/to?url=http://169.254.169.254/latest/meta-data/")
    report = HttpImageInspector(allowlist="127.0.0.1/32").inspect(
        DeploySpec("ns1", url, "raw"), None
    )
    (check,) = report.checks
    assert check.is_blocking and "169.254.169.254" in check.message and "metadata" in check.message
    assert server.requests == 1


def test_redirect_to_hostname_resolving_to_private_refused(monkeypatch, server):
    fake_dns(monkeypatch, {"evil.example": "192.168.1.1"})
    url = server.url("/to?url=http://evil.example/x")
    with pytest.raises(UrlRefused, match=r"evil\.example resolves to 192\.168\.1\.1"):
        RangeReader(url, guard=UrlGuard("127.0.0.1/32")).open()


def test_connects_to_the_vetted_address_with_the_right_host_header(monkeypatch, server):
    lookups = fake_dns(monkeypatch, {"images.example": "127.0.0.1"})
    port = server.server_address[1]
    guard = UrlGuard("images.example")
    with RangeReader(f"http://images.example:{port}/vhost/raw_gpt_esp", guard=guard) as reader:
        reader.open()
        reader.read(4096, 512)
        reader.close()  # a dropped connection is re-opened to the same vetted address
        assert (
            reader.read(8192, 512)
            == image_factory.build_images()["raw_gpt_esp"].read_bytes()[8192:8704]
        )
    assert lookups == ["images.example"]  # one lookup: no DNS-rebinding window
    assert server.last_headers["Host"] == f"images.example:{port}"


def test_metadata_needs_an_exact_allowlist_entry():
    wide = AllowList.parse("169.254.0.0/16")
    exact = AllowList.parse(["169.254.169.254/32"])
    metadata = url_safety.ipaddress.ip_address("169.254.169.254")
    assert not wide.allows("x", metadata)
    assert exact.allows("x", metadata)
    assert wide.allows("x", url_safety.ipaddress.ip_address("169.254.1.1"))


def test_allowlist_parsing():
    allow = AllowList.parse(" 10.0.0.0/8, images.lan. ,, fd00::/8 ")
    assert [str(n) for n in allow.networks] == ["10.0.0.0/8", "fd00::/8"]
    assert allow.hosts == {"images.lan"}


def test_https_connects_to_the_vetted_address_with_sni_and_certificate_check(monkeypatch, tmp_path):
    require_tool("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    image_factory.run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                      "-keyout", key, "-out", cert, "-subj", "/CN=images.example",
                      "-addext", "subjectAltName=DNS:images.example")  # fmt: skip
    tls = image_factory.ImageServer(image_factory.build_images())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    tls.socket = context.wrap_socket(tls.socket, server_side=True)
    trusting = ssl.create_default_context
    monkeypatch.setattr(http_range.ssl, "create_default_context", lambda: trusting(cafile=cert))
    lookups = fake_dns(monkeypatch, {"images.example": "127.0.0.1"})
    port = tls.server_address[1]
    guard = UrlGuard(["images.example", "127.0.0.1/32"])
    with RangeReader(f"https://images.example:{port}/vhost/qcow2_gpt_esp", guard=guard) as r:
        r.open()
        assert r.read(0, 4) == b"QFI\xfb"
    assert lookups == ["images.example"]
    with pytest.raises(RangeError, match="CERTIFICATE_VERIFY_FAILED"):
        RangeReader(f"https://127.0.0.1:{port}/img/qcow2_gpt_esp", guard=guard).open()
    tls.shutdown()

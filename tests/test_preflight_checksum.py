"""Checksum verification: the whole image streamed once, hashed, compared; bounded, guarded."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading

import image_factory
import pytest

from byoi_bot.core.request import Checksum
from byoi_bot.preflight.checksum import ChecksumError, verify_checksum
from byoi_bot.preflight.cli import run_inspect
from byoi_bot.preflight.http_range import RangeError
from byoi_bot.preflight.url_safety import UrlGuard, UrlRefused

LOCAL = "127.0.0.1/32"


@pytest.fixture(scope="session")
def server() -> image_factory.ImageServer:
    return image_factory.image_server()


def digest(name: str, kind: str = "sha256") -> str:
    return hashlib.new(kind, image_factory.build_images()[name].read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["md5", "sha1", "sha256", "sha512"])
def test_matching_checksum(server, kind):
    seen = []
    found = verify_checksum(
        server.url("/img/raw_gpt_esp"),
        Checksum(kind, digest("raw_gpt_esp", kind)),
        guard=UrlGuard(LOCAL),
        progress=lambda done, total: seen.append((done, total)),
        progress_every=0,
    )
    size = 64 * image_factory.MiB
    assert found.matches and found.size == size
    assert seen[-1] == (size, size) and len(seen) > 2  # several reports, the last at 100 %
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_progress_at_most_every_few_seconds(server):
    seen = []
    verify_checksum(
        server.url("/img/raw_gpt_esp"),
        Checksum("sha256", digest("raw_gpt_esp")),
        guard=UrlGuard(LOCAL),
        progress=lambda done, total: seen.append(done),
        progress_every=3600,
    )
    assert seen == [64 * image_factory.MiB]  # only the final report


def test_mismatch_is_reported_with_both_values(server):
    found = verify_checksum(
        server.url("/img/raw_gpt_esp"), Checksum("sha256", "0" * 64), guard=UrlGuard(LOCAL)
    )
    assert not found.matches and found.found == digest("raw_gpt_esp")


def test_same_url_safety_as_preflight(server):
    with pytest.raises(UrlRefused, match=r"127\.0\.0\.1"):
        verify_checksum(server.url("/img/raw_gpt_esp"), Checksum("md5", "0" * 32))


def test_headers_are_sent(server):
    url = server.url("/auth/raw_mbr")
    found = verify_checksum(
        url,
        Checksum("md5", digest("raw_mbr", "md5")),
        (("Authorization", "Bearer s3cret"),),
        guard=UrlGuard(LOCAL),
    )
    assert found.matches
    with pytest.raises(RangeError, match="401") as refused:
        verify_checksum(url, Checksum("md5", "0" * 32), guard=UrlGuard(LOCAL))
    assert "s3cret" not in str(refused.value)


class StallingServer:
    """Answers 200 with a Content-Length of 1 GB and sends `body`; then the whole-file GET
    is held open until `release` (`hold`) or closed."""

    def __init__(self, body: bytes, hold: bool) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.release = threading.Event()
        self.body, self.hold = body, hold
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/image.raw"

    def _serve(self) -> None:
        for whole_file in (False, True):  # the range probe, then the whole-file GET
            conn, _ = self.listener.accept()
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n" + self.body)
            if whole_file and self.hold:
                self.release.wait()
            conn.close()


def test_time_limit():
    stalling = StallingServer(b"x" * 1000, hold=True)
    try:
        with pytest.raises(ChecksumError, match="time limit"):
            verify_checksum(
                stalling.url, Checksum("md5", "0" * 32), guard=UrlGuard(LOCAL), time_limit=0.5
            )
    finally:
        stalling.release.set()


def test_short_body_is_not_a_verification():
    stalling = StallingServer(b"x" * 1000, hold=False)
    with pytest.raises(ChecksumError, match="after 1000 of 1000000000 bytes"):
        verify_checksum(stalling.url, Checksum("md5", "0" * 32), guard=UrlGuard(LOCAL))


def run(url, **kwargs) -> tuple[int, str]:
    out = io.StringIO()
    code = run_inspect(url, allowlist=[LOCAL], out=out, **kwargs)
    return code, out.getvalue()


def test_inspect_verify_ok_and_progress_on_stderr(server, capsys):
    code, text = run(
        server.url("/img/qcow2_gpt_esp"), checksum=digest("qcow2_gpt_esp"), verify=True
    )
    line = next(x for x in text.splitlines() if "  checksum  " in x)
    assert code == 0 and line.split()[:4] == ["ok", "checksum", "The", "sha256"]
    assert "checksum: verifying… 100 %" in capsys.readouterr().err


def test_inspect_verify_mismatch_blocks_in_plain_words(server):
    wrong = "md5:" + "0" * 32
    code, text = run(server.url("/img/raw_gpt_esp"), checksum=wrong, verify=True, as_json=True)
    data = json.loads(text)
    check = next(c for c in data["checks"] if c["name"] == "checksum")
    assert code == 1 and check["severity"] == "blocking"
    assert f"is {digest('raw_gpt_esp', 'md5')}, but {'0' * 32} was expected" in check["message"]
    assert data["image"]["checksum_found"] == digest("raw_gpt_esp", "md5")


def test_checksum_without_verify_streams_nothing(server):
    server.reset()
    code, _ = run(server.url("/img/raw_gpt_esp"), checksum=digest("raw_gpt_esp"))
    assert code == 0 and server.bytes_served < 64 * 1024


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"verify": True}, "--verify needs --checksum"),
        ({"checksum": "sha256:abc"}, "a sha256 checksum has 64 hex digits"),
        ({"checksum": "crc32:" + "0" * 8}, "--checksum must be"),
        ({"checksum": "z" * 64}, "--checksum must be"),
    ],
)
def test_checksum_usage_errors(server, capsys, kwargs, words):
    code, _ = run(server.url("/img/raw_gpt_esp"), **kwargs)
    assert code == 2 and words in capsys.readouterr().err

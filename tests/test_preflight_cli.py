"""`run_inspect`: the text report, the JSON object, exit codes, and server facts."""

from __future__ import annotations

import io
import json
from pathlib import Path

import image_factory
import jsonschema
import pytest

from byoi_bot.core.ports import DiskGroup, Explanation, ProviderError, ServerFacts
from byoi_bot.preflight.cli import run_inspect

GiB = image_factory.GiB
LOCAL = ["127.0.0.1/32"]


@pytest.fixture(scope="session")
def server() -> image_factory.ImageServer:
    return image_factory.image_server()


class FakeProvider:
    def __init__(self, facts: ServerFacts | None) -> None:
        self.facts = facts

    def server_facts(self, server: str) -> ServerFacts:
        if self.facts is None:
            raise ProviderError(
                Explanation(
                    "Server ns9 not found.",
                    "unknown name",
                    "Check the name.",
                    code="server_not_found",
                )
            )
        return self.facts


UEFI = ServerFacts(
    "ns1.example", "gra3", "ok", "uefi", 64 * GiB, (DiskGroup(0, 480 * 10**9),),
    architecture="x86_64",
)  # fmt: skip


def run(url, **kwargs) -> tuple[int, str]:
    out = io.StringIO()
    code = run_inspect(url, allowlist=LOCAL, out=out, **kwargs)
    return code, out.getvalue()


def test_text_report_ok(server):
    code, text = run(server.url("/img/qcow2_gpt_esp"), image_type="qcow2")
    assert code == 0
    assert "qcow2 (declared qcow2)" in text and "GPT, EFI System Partition" in text
    assert "EFI bootloader \\EFI\\debian\\shimx64.efi" in text
    assert "read 6 request(s)" in text and text.strip().endswith("Verdict: ok")
    _, text = run(server.url("/img/raw_gpt_4kn"))
    assert "GPT (4096-byte sectors), EFI System Partition" in text


def test_text_report_blocking_with_server(server):
    code, text = run(
        server.url("/img/raw_gpt_noesp"),
        image_type="raw",
        server="ns1.example",
        provider=FakeProvider(UEFI),
    )
    assert code == 1
    assert "Server  ns1.example (gra3), state ok, boot uefi, CPU x86_64, RAM 64.0 GiB" in text
    assert "BLOCKING  esp" in text and "Verdict: blocking" in text


def test_json_report(server):
    code, text = run(
        server.url("/img/raw_gpt_esp?token=abc"),
        headers=["X-Token: hunter2"],
        server="ns1.example",
        provider=FakeProvider(UEFI),
        as_json=True,
    )
    data = json.loads(text)
    assert code == 0 and data["verdict"] == "ok"
    assert data["image"]["efi_bootloader"] == "\\EFI\\debian\\shimx64.efi"
    assert data["url"].endswith("raw_gpt_esp?***")
    assert data["image"]["format"] == "raw" and data["image"]["has_esp"] is True
    assert data["server"]["name"] == "ns1.example"
    assert {c["name"] for c in data["checks"]} >= {"server_state", "reachable", "esp"}
    assert "hunter2" not in text and "token=abc" not in text


def test_unknown_server_blocks(server):
    code, text = run(server.url("/img/raw_gpt_esp"), server="ns9", provider=FakeProvider(None))
    assert code == 1 and "Server ns9 not found. Check the name." in text


@pytest.mark.parametrize(
    "kwargs",
    [{"image_type": "vmdk"}, {"headers": ["no colon"]}, {"server": "ns1", "provider": None}],
)
def test_usage_errors(server, capsys, kwargs):
    code, text = run(server.url("/img/raw_gpt_esp"), **kwargs)
    assert code == 2 and text == ""
    assert "error:" in capsys.readouterr().err


ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "inspect.schema.json").read_text())


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        ("/img/qcow2_gpt_esp", {"image_type": "qcow2"}),
        ("/img/raw_gpt_esp", {"server": "ns1.example", "provider": FakeProvider(UEFI)}),
        ("/img/qcow2_backing", {}),
        ("/img/qcow2_c9", {}),
        ("/img/iso_hybrid_gpt", {}),
        ("/img/raw_none", {}),
        ("/img/raw_gpt_bad_both_crc", {}),
        ("/img/gzip", {}),
        ("/norange/raw_mbr", {}),
        ("/status/404", {}),
        ("/img/raw_mbr", {"checksum": "md5:" + "0" * 32, "verify": True}),
    ],
)
def test_json_output_follows_the_documented_schema(server, path, kwargs):
    _, text = run(server.url(path), as_json=True, **kwargs)
    jsonschema.validate(json.loads(text), SCHEMA)


def test_every_json_fact_is_documented():
    readme = (ROOT / "docs" / "inspect.md").read_text()
    for key in SCHEMA["properties"]["image"]["properties"]:
        assert f"| `{key}` |" in readme, key

"""Checksum verification in the workflow (BYOI_VERIFY_CHECKSUM): the card shows progress,
approvals may come meanwhile, the start call waits for a match and never follows a mismatch."""

from __future__ import annotations

import hashlib

import pytest
from bot_harness import APPROVER, REQUESTER, BotHarness

from byoi_bot.config import ConfigError, Settings
from byoi_bot.console.images import demo_images
from byoi_bot.core.checks import Check, Severity
from byoi_bot.core.request import Checksum, DeploySpec
from byoi_bot.core.states import IllegalTransition, State

SERVER = "ns1001.ip-51-75-1.eu"
IMAGE = "/debian-12.qcow2"
VERIFY = {"BYOI_VERIFY_CHECKSUM": "1", "BYOI_URL_ALLOWLIST": "127.0.0.1/32"}
GOOD = hashlib.sha256(demo_images()[IMAGE].to_bytes()).hexdigest()


class FakeVerifier:
    """Reports 37 %, runs `meanwhile` (what users do during the stream), then answers."""

    def __init__(self, result: Check, meanwhile=lambda: None) -> None:
        self.result, self.meanwhile, self.specs = result, meanwhile, []

    def verify(self, spec, progress):
        self.specs.append(spec)
        progress(37, 100)
        self.meanwhile()
        return self.result


@pytest.fixture
def h(tmp_path, db_location):
    harness = BotHarness(tmp_path, db=db_location)
    yield harness
    harness.close()


def new_request(h, checksum=GOOD, headers=()):
    spec = DeploySpec(
        server=SERVER,
        image_url=f"{h.images.base_url}{IMAGE}",
        image_type="qcow2",
        efi_bootloader="\\EFI\\debian\\shimx64.efi",
        checksum=Checksum("sha256", checksum),
        headers=headers,
    )
    return h.bot.deployments.request(spec, REQUESTER, "C0OPS")


def with_fake(h, verifier) -> list:
    """Install `verifier`; verifications are queued, to be run by the test."""
    queued: list = []
    h.bot.deployments.verifier = verifier
    h.bot.deployments.background = queued.append
    return queued


def checksum_line(h, request_id) -> dict:
    return next(c for c in h.bot.store.get(request_id).checks if c["name"] == "checksum")


def card_text(h) -> str:
    return str(h.cards()[-1]["blocks"])


def test_approved_request_starts_only_once_the_checksum_matches(h):
    ok = Check("checksum", Severity.OK, "The sha256 of the 704.0 KiB image matches.")
    progress_seen = []
    verifier = FakeVerifier(ok, lambda: progress_seen.append(card_text(h)))
    queued = with_fake(h, verifier)
    r = new_request(h, headers=(("Authorization", "Bearer s3cret"),))
    assert checksum_line(h, r.id)["message"] == "verifying…"
    h.bot.deployments.approve(r.id, APPROVER)
    assert h.bot.store.get(r.id).state is State.APPROVED and h.starts() == 0
    assert any("waits until the image's checksum" in t for t in h.thread(r.message_ts))
    (verify,) = queued
    verify()
    assert "verifying… 37 %" in progress_seen[0]  # the card, edited in place
    assert verifier.specs[0].headers == (("Authorization", "Bearer s3cret"),)
    assert h.bot.store.get(r.id).state is State.DEPLOYING and h.starts() == 1
    assert checksum_line(h, r.id)["severity"] == "ok" and "matches" in card_text(h)


@pytest.mark.parametrize("approve_meanwhile", [False, True])
def test_a_mismatch_fails_the_request_and_nothing_starts(h, approve_meanwhile):
    found = "The image's sha256 is 00…, but ab… was expected."
    holder = {}

    def meanwhile():
        if approve_meanwhile:
            h.bot.deployments.approve(holder["id"], APPROVER)

    queued = with_fake(h, FakeVerifier(Check("checksum", Severity.BLOCKING, found), meanwhile))
    r = new_request(h)
    holder["id"] = r.id
    queued[0]()
    after = h.bot.store.get(r.id)
    assert after.state is State.FAILED and h.starts() == 0
    assert any("nothing was sent to OVHcloud" in t and found in t for t in h.thread(r.message_ts))
    h.bot.deployments.approve(r.id, APPROVER)
    assert h.starts() == 0


def test_a_mismatch_racing_the_last_approval_still_fails_the_request(h, monkeypatch):
    d = h.bot.deployments
    queued = with_fake(h, FakeVerifier(Check("checksum", Severity.BLOCKING, "no match")))
    r = new_request(h)
    fail = d._fail

    def approved_just_before(request, expected, text):
        monkeypatch.setattr(d, "_fail", fail)
        d.approve(r.id, APPROVER)  # moves it to approved: the first _fail finds it moved
        raise IllegalTransition(r.id, State.APPROVED, State.FAILED)

    monkeypatch.setattr(d, "_fail", approved_just_before)
    queued[0]()
    assert h.bot.store.get(r.id).state is State.FAILED and h.starts() == 0


def test_off_by_default_the_checksum_is_left_to_the_installer(h):
    assert h.bot.deployments.verifier is None
    r = new_request(h, checksum="ab" * 32)
    assert all(c["name"] != "checksum" for c in r.checks)
    h.bot.deployments.approve(r.id, APPROVER)
    assert h.starts() == 1


@pytest.fixture
def verifying(tmp_path):
    harness = BotHarness(tmp_path, extra_env=VERIFY)
    yield harness
    harness.close()


def wait_for_checksum(h, request_id) -> dict:
    h.slack.wait_for(lambda: checksum_line(h, request_id)["severity"] != "warning")
    return checksum_line(h, request_id)


def test_real_verification_streams_the_image_and_lets_it_start(verifying):
    h = verifying
    r = new_request(h)
    check = wait_for_checksum(h, r.id)
    assert check["severity"] == "ok", check
    h.bot.deployments.approve(r.id, APPROVER)
    assert h.bot.store.get(r.id).state is State.DEPLOYING and h.starts() == 1


def test_real_verification_of_a_wrong_checksum_fails_the_request(verifying):
    h = verifying
    r = new_request(h, checksum="ab" * 32)
    check = wait_for_checksum(h, r.id)
    h.slack.wait_for(lambda: h.bot.store.get(r.id).state is State.FAILED)
    assert check["severity"] == "blocking" and GOOD in check["message"]
    assert h.starts() == 0


def test_a_verification_cut_by_a_restart_runs_again(tmp_path):
    h = BotHarness(tmp_path, extra_env=VERIFY)
    try:
        with_fake(h, FakeVerifier(Check("checksum", Severity.OK, "matches")))
        r = new_request(h)  # queued, never run: the process "stops" here
        h.restart()  # the new process reconciles: the verification starts again, for real
        assert wait_for_checksum(h, r.id)["severity"] == "ok"
    finally:
        h.close()


@pytest.mark.parametrize(("text", "on"), [("1", True), ("on", True), ("no", False), ("", False)])
def test_the_setting_is_an_on_off_switch(text, on):
    assert Settings.load({"BYOI_VERIFY_CHECKSUM": text}).verify_checksum is on


def test_a_setting_that_is_neither_on_nor_off_is_refused():
    with pytest.raises(ConfigError, match="BYOI_VERIFY_CHECKSUM: `maybe` is not on or off"):
        Settings.load({"BYOI_VERIFY_CHECKSUM": "maybe"})

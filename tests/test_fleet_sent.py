"""What a fleet's approvers see is what each server is sent: every field of every start call
on the card (secrets by name only), bound by the approval; checksum verification, catalogs
and signatures apply to fleets as to single requests."""

from __future__ import annotations

import hashlib
import json
import textwrap

import pytest
from bot_harness import APPROVER, APPROVER_2, CHANNEL, REQUESTER, BotHarness
from fakes.files import FileServer
from fakes.openpgp import Signer
from raw_sql import execute
from tools import require_tool

from byoi_bot.console.images import demo_images
from byoi_bot.core.fleet import FleetState
from byoi_bot.core.sent import sent_fields
from byoi_bot.core.states import State

A, B, C = "ns1001.ip-51-75-1.eu", "ns3003.ip-51-75-3.eu", "ns5005.ip-149-56-5.net"
GOOD = hashlib.sha256(demo_images()["/debian-12.qcow2"].to_bytes()).hexdigest()
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFrl0a0s0mJ6k2Ybq2E5cC3ZzS1hF3QH8Y3dZJp0bF2f ops@bastion"
KEY_SHOWN = "SHA256:"  # the card names a key by its fingerprint, as ssh-keygen -l does
LEGACY = """
    [[policy]]
    name = "old"
    pattern = "ns3003*"
    api = "legacy"
"""


def start_bot(tmp_path, db_location, **env: str) -> BotHarness:
    config = tmp_path / "byoi.toml"
    config.write_text(textwrap.dedent(LEGACY))
    return BotHarness(tmp_path, extra_env={"BYOI_CONFIG": str(config), **env}, db=db_location)


@pytest.fixture
def h(tmp_path, db_location):
    harness = start_bot(tmp_path, db_location)
    yield harness
    harness.close()


def fleet(h: BotHarness):
    return h.bot.store.fleets_in_states(list(FleetState))[-1]


def members(h: BotHarness):
    return h.bot.store.fleet_members(fleet(h))


def card_text(h: BotHarness) -> str:
    return words(h.slack.message(CHANNEL, fleet(h).message_ts))


def words(card: dict) -> str:
    """The card's text as Slack shows it, section by section."""
    return "\n".join(b["text"]["text"] for b in card["blocks"] if "text" in b)


def test_every_field_of_every_start_call_is_on_the_card_secrets_by_name(h):
    url = f"{h.images.base_url}/debian-12.qcow2"
    h.slash(
        f'deploy {A},{C} {url} efi-bootloader=x.efi hostname="web-1" ssh-key="{KEY}" '
        'metadata="role=web" header="Authorization: Bearer s3cr3t-t0ken" '
        'description="monthly rebuild"'
    )
    card = h.wait_card()
    text = words(card)
    assert "{'" not in text.split("*Image*")[1].split("*Rollout*")[0], "no Python dict"
    assert f"*Image* {url}" in text and "*Why* monthly rebuild" in text
    assert "*Sent to OVHcloud*, to every server" in text
    for member in members(h):
        for name, value in sent_fields(member.spec):
            assert f"`{name.rsplit('.', 1)[-1]}` {value}" in text, name
    assert "`sshKey` ssh-ed25519 SHA256:" in text and "ops@bastion" in text
    assert "`configDriveMetadata` role=web" in text and "`hostname` web-1" in text
    assert "Authorization: (hidden)" in text and "s3cr3t-t0ken" not in text


def test_what_differs_per_server_is_listed_per_server(h):
    """Two APIs (a legacy policy for B) and two bodies: each server's own lines."""
    url = f"{h.images.base_url}/debian-12.qcow2"
    h.slash(f'deploy {A},{B} {url} ssh-key="{KEY}"')  # A's EFI path is found in the image
    assert "2 ready, 0 refused" in h.wait_answer("Fleet request")
    h.wait_card()
    text = card_text(h)
    assert "*And to each server*" in text
    assert f"`{A}`: reinstall API, `POST …/reinstall`" in text
    assert f"`{B}`: legacy API, `POST …/bringYourOwnImage`" in text
    for member in members(h):
        for name, value in sent_fields(member.spec):
            assert f"`{name.rsplit('.', 1)[-1]}` {value}" in text, (member.spec.server, name)


def test_a_server_whose_spec_changed_after_approval_is_not_started(h):
    url = f"{h.images.base_url}/debian-12.qcow2"
    h.slash(f"deploy {A},{C} {url} efi-bootloader=x.efi hostname=web parallel=1")
    card = h.wait_card()
    second = members(h)[1]
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "Started:")
    public = second.spec.public_dict() | {"ssh_key": KEY}  # an intruder adds a key
    execute(
        h.bot.store, "UPDATE requests SET spec = ? WHERE id = ?", [json.dumps(public), second.id]
    )
    for _ in range(3):
        h.poll(advance=100)
        h.bot.fleets.advance_all()
    failed = h.bot.store.get(second.id)
    assert failed.state is State.FAILED and h.starts() == 1
    assert "no longer matches what was approved" in h.bot.store.audit(second.id)[-1]["reason"]


# -- checksum verification -------------------------------------------------------------------


@pytest.fixture
def verifying(tmp_path, db_location):
    harness = start_bot(
        tmp_path, db_location, BYOI_VERIFY_CHECKSUM="1", BYOI_URL_ALLOWLIST="127.0.0.1/32"
    )
    queued: list = []
    harness.bot.deployments.background = queued.append  # run by the test
    yield harness, queued
    harness.close()


def ask_verified(h: BotHarness, queued: list, checksum: str) -> dict:
    """A fleet asked with `checksum`, once its verification is queued (not run yet)."""
    url = f"{h.images.base_url}/debian-12.qcow2"
    h.slash(f"deploy {A},{C} {url} efi-bootloader=x.efi checksum=sha256:{checksum} parallel=2")
    card = h.wait_card()
    h.slack.wait_for(lambda: queued)
    return card


def test_a_fleet_with_a_wrong_checksum_waits_then_fails_and_never_starts(verifying):
    h, queued = verifying
    card = ask_verified(h, queued, "ab" * 32)
    assert "verifying" in str(card["blocks"])
    h.react(APPROVER, ts=card["ts"])  # approved while the image is still being read
    h.wait_thread(card["ts"], "every server's policy is met")
    h.bot.fleets.advance_all()
    assert h.starts() == 0 and fleet(h).state is FleetState.RUNNING
    assert len(queued) == 1, "one verification for the whole fleet"
    queued.pop()()
    thread = h.wait_thread(card["ts"], "No server of")
    assert "checksum was not confirmed" in thread[-1]
    assert fleet(h).state is FleetState.STOPPED
    assert [m.state for m in members(h)] == [State.FAILED, State.FAILED]
    h.bot.fleets.advance_all()
    assert h.starts() == 0


def test_a_mismatch_before_any_vote_ends_the_fleet_and_later_votes_do_nothing(verifying):
    h, queued = verifying
    card = ask_verified(h, queued, "cd" * 32)
    queued.pop()()
    h.wait_thread(card["ts"], "No server of")
    assert [m.state for m in members(h)] == [State.FAILED, State.FAILED]
    h.react(APPROVER, ts=card["ts"])
    h.bot.fleets.advance_all()
    assert fleet(h).state is FleetState.STOPPED and h.starts() == 0


def test_a_fleet_whose_checksum_matches_starts_once_verified(verifying):
    h, queued = verifying
    card = ask_verified(h, queued, GOOD)
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "every server's policy is met")
    assert h.starts() == 0
    queued.pop()()
    h.wait_thread(card["ts"], "Started:")
    assert h.starts() == 2
    assert all(
        c["severity"] == "ok" for m in members(h) for c in m.checks if c["name"] == "checksum"
    )


def test_a_fleet_verification_cut_by_a_restart_runs_again(verifying):
    h, queued = verifying
    card = ask_verified(h, queued, "ab" * 32)
    queued.clear()  # the process "stops" before verifying
    h.restart()
    h.bot.deployments.background = queued.append
    h.bot.fleets.advance_all()  # the rollout job resumes it
    h.bot.fleets.advance_all()  # once, however often the job runs meanwhile
    assert len(queued) == 1
    queued.pop()()
    h.wait_thread(card["ts"], "No server of")
    assert fleet(h).state is FleetState.STOPPED and h.starts() == 0


# -- catalogs and signatures -----------------------------------------------------------------


def test_a_fleet_of_a_catalog_image_signed_by_a_revoked_key_is_refused(tmp_path, db_location):
    require_tool("gpg", "gpgv", "gpgconf")
    files = FileServer().start()
    revoked = Signer(tmp_path / "revoked", "revoked")
    h = None
    try:
        sums = f"{GOOD}  debian-12.qcow2\n".encode()
        files.files |= {"/SHA256SUMS": sums, "/SHA256SUMS.gpg": revoked.sign(sums)}
        revoked.revoke()
        config = tmp_path / "byoi.toml"
        config.write_text("")
        h = BotHarness(
            tmp_path,
            extra_env={"BYOI_CONFIG": str(config), "BYOI_URL_ALLOWLIST": "127.0.0.1/32"},
            db=db_location,
        )
        config.write_text(
            "[[image]]\n"
            'name = "debian-12"\n'
            f'url = "{h.images.base_url}/debian-12.qcow2"\n'
            f'checksum_url = "{files.base_url}/SHA256SUMS"\n'
            f'signature_url = "{files.base_url}/SHA256SUMS.gpg"\n'
            f'keyring = "{revoked.keyring}"\n'
            "efi_bootloader = 'x.efi'\n"
        )
        h.slash(f"deploy {A},{C} debian-12")
        assert "which its owner has revoked" in h.wait_answer("Bad signature")
        assert h.cards() == [] and h.starts() == 0
        assert h.bot.store.fleets_in_states(list(FleetState)) == []
    finally:
        revoked.close()
        files.stop()
        if h:
            h.close()


def test_a_catalog_fleet_shows_the_image_and_its_checksum_source(tmp_path, db_location):
    h = start_bot(tmp_path, db_location)
    try:
        config = tmp_path / "byoi.toml"
        config.write_text(
            textwrap.dedent(LEGACY) + "[[image]]\n"
            'name = "debian-12"\n'
            f'url = "{h.images.base_url}/debian-12.qcow2"\n'
            f'checksum = "{GOOD}"\n'
            "efi_bootloader = 'x.efi'\n"
            'hostname = "{short}-web"\n'
        )
        h.slash(f"deploy {A},{C} debian-12")
        card = h.wait_card()
        text = words(card)
        assert "catalog image `debian-12`" in text and f"sha256 `{GOOD}` from the catalog" in text
        assert f"`{A}`: `hostname` ns1001-web" in text and f"`{C}`: `hostname` ns5005-web" in text
        h.react(APPROVER_2, ts=card["ts"])
        h.wait_thread(card["ts"], "Started:")
        assert {m.spec.checksum.value for m in members(h)} == {GOOD}
    finally:
        h.close()


def test_the_requester_is_told_which_servers_policy_refused(tmp_path, db_location):
    config = tmp_path / "byoi.toml"
    config.write_text(
        textwrap.dedent("""
        [[policy]]
        name = "elsewhere"
        pattern = "ns5005*"
        allowed_channels = ["C0OTHER"]
        """)
    )
    h = BotHarness(tmp_path, extra_env={"BYOI_CONFIG": str(config)}, db=db_location)
    try:
        h.slash(f"deploy {A},{C} {h.images.base_url}/debian-12.qcow2 efi-bootloader=x.efi")
        answer = h.wait_answer("policy `elsewhere`", user=REQUESTER)
        assert f"`{C}` (policy `elsewhere`)" in answer and "not requested in this channel" in answer
        assert h.cards() == []
    finally:
        h.close()


def test_fifty_servers_each_with_its_own_lines_fit_block_kit_and_lose_none():
    from dataclasses import replace
    from datetime import timedelta

    from core_fixtures import T0, request

    from byoi_bot.core.authorization import Standing
    from byoi_bot.core.fleet import Fleet, Rollout
    from byoi_bot.core.ports import FleetView
    from byoi_bot.slack.cards import SECTION_LIMIT
    from byoi_bot.slack.fleet_card import fleet_blocks

    servers = [f"ns{i:04d}.ip-51-75-{i}.eu" for i in range(50)]
    members = tuple(
        replace(
            request(f"r-m{i}", server=s, hostname=f"web-{i}-" + "x" * 40),
            fleet_id="f-big",
        )
        for i, s in enumerate(servers)
    )
    f = Fleet("f-big", REQUESTER, CHANNEL, FleetState.PENDING_APPROVAL, T0,
              T0 + timedelta(hours=1), "default", tuple(servers), Rollout(5))  # fmt: skip
    standing = Standing("default", f.servers, (APPROVER,), (), 1, (), f.expires_at, None, False)
    blocks, _ = fleet_blocks(FleetView(f, members, (standing,), "status"))
    texts = [b["text"]["text"] for b in blocks if "text" in b and b["type"] == "section"]
    assert len(blocks) <= 50 and all(len(t) <= SECTION_LIMIT for t in texts)
    shown = "\n".join(texts)
    for m in members:
        assert f"`{m.spec.server}`: `hostname` {m.spec.hostname}" in shown
    assert "s3cr3t-token" not in shown and "hunter2" not in shown

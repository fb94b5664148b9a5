"""Signatures over catalog checksum files: only a good signature by a pinned key that is
neither expired nor revoked passes. Keys are made by real `gpg`, checked by real `gpgv`."""

from __future__ import annotations

import pytest
from fakes.openpgp import Signer
from tools import require_tool

from byoi_bot.catalog.signature import refusal_of, status_groups, verify_detached
from byoi_bot.core.catalog import CatalogError

SUMS = b"0123abcd  debian-12.qcow2\n"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    require_tool("gpg", "gpgv", "gpgconf")
    base = tmp_path_factory.mktemp("openpgp")
    made = {
        "good": Signer(base / "good", "good"),
        "stranger": Signer(base / "stranger", "stranger"),
        "expired": Signer(base / "expired", "expired", expire="1y"),  # 2001 to 2002
        "revoked": Signer(base / "revoked", "revoked"),
    }
    made["revoked_sig"] = made["revoked"].sign(SUMS)  # signed while the key was good
    made["revoked"].revoke()
    yield made
    for signer in made.values():
        if isinstance(signer, Signer):
            signer.close()


def check(signature: bytes, signer: Signer, data: bytes = SUMS) -> str:
    return verify_detached(data, signature, str(signer.keyring), "SHA256SUMS")


def test_a_good_signature_by_a_pinned_key_names_the_key(keys):
    good = keys["good"]
    assert check(good.sign(SUMS), good) == good.fingerprint


def test_a_key_made_and_used_before_it_expired_is_refused_now(keys):
    expired = keys["expired"]
    with pytest.raises(CatalogError) as refused:
        check(expired.sign(SUMS, in_the_past=True), expired)
    text = str(refused.value)
    assert text.startswith("Bad signature of SHA256SUMS: it is signed by key")
    assert "which has expired on 2002-01-01" in text and "pinned keyring" in text


def test_a_signature_made_before_the_key_was_revoked_is_refused(keys):
    with pytest.raises(CatalogError, match="which its owner has revoked; do not deploy"):
        check(keys["revoked_sig"], keys["revoked"])


def test_a_signature_past_its_own_expiry_is_refused(keys):
    good = keys["good"]
    with pytest.raises(CatalogError, match=r"the signature by key \w+ has expired on 2001-06-02"):
        check(good.sign(SUMS, in_the_past=True, expire="1d"), good)


def test_changed_data_unknown_keys_and_garbage_are_refused_in_plain_words(keys):
    good, stranger = keys["good"], keys["stranger"]
    with pytest.raises(CatalogError, match="does not match its signature"):
        check(good.sign(SUMS), good, SUMS + b"evil\n")
    with pytest.raises(CatalogError, match="not in the catalog's pinned keyring"):
        check(stranger.sign(SUMS), good)
    with pytest.raises(CatalogError, match="not a valid OpenPGP signature"):
        check(b"garbage", good)
    with pytest.raises(CatalogError, match="not a valid OpenPGP signature"):
        check(b"", good)


def test_every_signature_in_the_file_must_be_good(keys):
    """A good signature does not carry a second one by an unknown or revoked key."""
    good, stranger = keys["good"], keys["stranger"]
    with pytest.raises(CatalogError, match="not in the catalog's pinned keyring"):
        check(good.sign(SUMS) + stranger.sign(SUMS), good)
    both = good.keyring.read_bytes() + keys["revoked"].keyring.read_bytes()
    pinned = good.home.parent / "both.gpg"
    pinned.write_bytes(both)
    with pytest.raises(CatalogError, match="revoked"):
        verify_detached(SUMS, good.sign(SUMS) + keys["revoked_sig"], str(pinned), "SHA256SUMS")
    assert verify_detached(SUMS, good.sign(SUMS), str(pinned), "x") == good.fingerprint


VALID = "[GNUPG:] VALIDSIG AB 2001-06-01 1 0 4 0 22 8 00 AB"
GOOD = "\n".join(["[GNUPG:] NEWSIG", "[GNUPG:] GOODSIG 1234 k", VALID])


@pytest.mark.parametrize(
    ("status", "returncode", "words"),
    [
        (GOOD, 0, None),
        (GOOD, 1, "not a valid OpenPGP signature"),  # gpgv said no
        ("", 0, "not a valid OpenPGP signature"),  # no signature at all
        ("[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 1234 k", 0, "not a valid"),  # no VALIDSIG
        (GOOD.replace("GOODSIG", "EXPKEYSIG"), 0, "which has expired"),
        (GOOD.replace("GOODSIG", "REVKEYSIG"), 0, "which its owner has revoked"),
        (GOOD.replace("GOODSIG", "EXPSIG"), 1, "the signature by key 1234 has expired"),
        (GOOD + "\n[GNUPG:] BADSIG 1234 k", 1, "does not match its signature"),
        ("[GNUPG:] NEWSIG\n[GNUPG:] ERRSIG 99 22 8 00 1 9 -", 2, "key 99, which is not in"),
        ("[GNUPG:] NEWSIG\n[GNUPG:] ERRSIG 99 77 8 00 1 4 -", 2, "does not support"),
        (GOOD + "\n" + GOOD.replace("GOODSIG", "REVKEYSIG"), 0, "revoked"),  # the second one
        ("[GNUPG:]\n[GNUPG:]   \nnoise\n" + GOOD, 0, None),  # empty and foreign lines ignored
    ],
)
def test_the_verdict_comes_from_every_status_line(status, returncode, words):
    refusal = refusal_of(status_groups(status), returncode)
    assert refusal is None if words is None else words in refusal

"""Detached OpenPGP signatures checked with `gpgv` against a pinned keyring.

`gpgv` (Debian package `gpgv`) is what apt uses to check Release files: it only verifies,
trusts exactly the keys of the keyring it is given and keeps no state (a throw-away home
folder per check), so no key import, trust database or agent can change the result.

Its exit status is not enough: `gpgv` exits 0 for a signature by an expired or revoked key
(`EXPKEYSIG`/`REVKEYSIG` beside `VALIDSIG`). The verdict is read from its status lines
(`--status-fd`, one group per signature after `NEWSIG`): every signature in the file must be
`GOODSIG` with `VALIDSIG`, and none may carry a refusing keyword.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from ..core.catalog import CatalogError

TIMEOUT = 30.0
STATUS_PREFIX = "[GNUPG:] "
# The keywords that refuse a signature, most telling first.
REFUSING = ("BADSIG", "REVKEYSIG", "EXPKEYSIG", "EXPSIG", "NO_PUBKEY", "ERRSIG")

Signature = dict[str, list[str]]  # a status keyword -> its arguments, for one signature


def verify_detached(data: bytes, signature: bytes, keyring: str, what: str) -> str:
    """Check `signature` over `data` with the keys of `keyring`; the signing key's fingerprint
    (its primary key's).

    Raises `CatalogError` saying why (bad signature, unknown key, expired or revoked key,
    expired signature, gpgv missing). `what` names the signed file in messages.
    """
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise CatalogError(
            f"Cannot check the signature of {what}: the `gpgv` program is missing on the "
            "bot's machine (Debian package `gpgv`)."
        )
    with tempfile.TemporaryDirectory(prefix="byoi-gpgv-") as home:
        signed, sig = Path(home, "signed"), Path(home, "signed.sig")
        signed.write_bytes(data)
        sig.write_bytes(signature)
        try:
            result = subprocess.run(
                [gpgv, "--homedir", home, "--status-fd", "1", "--keyring", keyring,
                 str(sig), str(signed)],
                capture_output=True,
                timeout=TIMEOUT,
                env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"},
                check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise CatalogError(f"Checking the signature of {what} took too long.") from None
    signatures = status_groups(result.stdout.decode("utf-8", "replace"))
    refusal = refusal_of(signatures, result.returncode)
    if refusal:
        raise CatalogError(f"Bad signature of {what}: {refusal}")
    valid = signatures[0]["VALIDSIG"]
    return valid[9] if len(valid) > 9 else valid[0]


def status_groups(text: str) -> list[Signature]:
    """gpgv's status lines, one group per signature (each begins with `NEWSIG`).

    >>> status_groups("[GNUPG:] NEWSIG\\n[GNUPG:] GOODSIG AB x\\n[GNUPG:] NEWSIG\\n")
    [{'NEWSIG': [], 'GOODSIG': ['AB', 'x']}, {'NEWSIG': []}]
    """
    groups: list[Signature] = []
    for line in text.splitlines():
        if not line.startswith(STATUS_PREFIX) or not line[len(STATUS_PREFIX) :].strip():
            continue
        keyword, *args = line[len(STATUS_PREFIX) :].split()
        if keyword == "NEWSIG" or not groups:
            groups.append({})
        groups[-1].setdefault(keyword, args)
    return groups


def refusal_of(signatures: list[Signature], returncode: int) -> str | None:
    """Why the signatures are refused, in plain words; None when every one is good."""
    for found in signatures:
        for keyword in REFUSING:
            if keyword in found:
                return _why(keyword, found)
    good = all("GOODSIG" in s and "VALIDSIG" in s for s in signatures)
    if signatures and good and returncode == 0:
        return None
    return "it is not a valid OpenPGP signature made by a key of the pinned keyring."


def _why(keyword: str, found: Signature) -> str:
    key = (found.get(keyword) or ["?"])[0]
    if keyword == "BADSIG":
        return "the file does not match its signature (changed or damaged); nothing is deployed."
    if keyword == "REVKEYSIG":
        return (
            f"it is signed by key {key}, which its owner has revoked; do not deploy this image, "
            "and take the key out of the catalog's pinned keyring."
        )
    if keyword == "EXPKEYSIG":
        until = _date(found.get("KEYEXPIRED"))
        return (
            f"it is signed by key {key}, which has expired{until}; a signature by an expired "
            "key is refused. Put the key with its new expiry date (or the publisher's new key) "
            "in the catalog's pinned keyring."
        )
    if keyword == "EXPSIG":
        valid = found.get("VALIDSIG") or []
        until = _date(valid[3:4])
        return (
            f"the signature by key {key} has expired{until}; the publisher has to sign the "
            "file again."
        )
    if keyword == "NO_PUBKEY" or (found.get("ERRSIG") or [""] * 6)[5:6] == ["9"]:
        key = (found.get("NO_PUBKEY") or found.get("ERRSIG") or ["?"])[0]
        return f"it is signed by key {key}, which is not in the catalog's pinned keyring."
    return (
        f"gpgv could not check the signature by key {key} (an algorithm it does not support, "
        "or a damaged signature)."
    )


def _date(args: list[str] | None) -> str:
    """' on YYYY-MM-DD' for a status line's Unix time, or '' when there is none."""
    if not args or not args[0].isdigit() or args[0] == "0":
        return ""
    return f" on {datetime.fromtimestamp(int(args[0]), UTC):%Y-%m-%d}"

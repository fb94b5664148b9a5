"""Detached OpenPGP signatures checked with `gpgv` against a pinned keyring.

`gpgv` (Debian package `gpgv`) is what apt uses to check Release files: it only verifies,
trusts exactly the keys of the keyring it is given and keeps no state (a throw-away home
folder per check), so no key import, trust database or agent can change the result.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..core.catalog import CatalogError

TIMEOUT = 30.0


def verify_detached(data: bytes, signature: bytes, keyring: str, what: str) -> str:
    """Check `signature` over `data` with the keys of `keyring`; the signing key's fingerprint.

    Raises `CatalogError` saying why (bad signature, unknown key, expired or revoked key,
    gpgv missing). `what` names the signed file in messages.
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
    status = _status_lines(result.stdout.decode("utf-8", "replace"))
    if result.returncode == 0 and "VALIDSIG" in status:
        return status["VALIDSIG"][0]
    raise CatalogError(f"Bad signature of {what}: {_why(status)}")


def _status_lines(text: str) -> dict[str, list[str]]:
    lines = {}
    for line in text.splitlines():
        if line.startswith("[GNUPG:] "):
            keyword, *args = line[9:].split()
            lines.setdefault(keyword, args)
    return lines


def _why(status: dict[str, list[str]]) -> str:
    if "BADSIG" in status:
        return "the file does not match its signature (changed or damaged); nothing is deployed."
    if "NO_PUBKEY" in status:
        return (
            f"it is signed by key {status['NO_PUBKEY'][0]}, which is not in the catalog's "
            "pinned keyring."
        )
    if "EXPKEYSIG" in status or "KEYEXPIRED" in status:
        return "the signing key has expired; update the pinned keyring."
    if "REVKEYSIG" in status or "KEYREVOKED" in status:
        return "the signing key is revoked; do not deploy this image."
    return "it is not a valid OpenPGP signature made by a key of the pinned keyring."

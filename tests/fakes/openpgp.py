"""Throw-away OpenPGP keys made by real `gpg`: good, expired, revoked, and their signatures.

Each key lives in its own GnuPG home; `keyring` is its exported public keyring, the file a
catalog pins. Past dates come from gpg's `--faked-system-time` (fixed dates long gone, so no
test depends on today's date): every key is made in 2001, so an expiring key (`expire="1y"`)
expired in 2002 and a signature can be made in the past.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

KEY_MADE = "20010101T000000"  # when every key is made (faked time)
SIGNED_AT = "20010601T000000"  # when its signatures are made (faked time)


class Signer:
    """An ed25519 signing key; `expire` is gpg's expiry ("never", "1y", …)."""

    def __init__(self, home: Path, name: str, *, expire: str = "never") -> None:
        self.home = home
        home.mkdir(mode=0o700)
        user = f"{name} <{name}@example.net>"
        self.gpg("--faked-system-time", KEY_MADE, "--passphrase", "", "--quick-gen-key", user,
                 "ed25519", "sign", expire)  # fmt: skip
        self.fingerprint = self._fingerprint()
        self.keyring = home / "keyring.gpg"
        self.export()

    def gpg(self, *args: str, data: bytes | None = None) -> bytes:
        command = ["gpg", "--batch", "--homedir", str(self.home), "--pinentry-mode", "loopback"]
        return subprocess.run([*command, *args], input=data, capture_output=True, check=True).stdout

    def sign(self, data: bytes, *, in_the_past: bool = False, expire: str | None = None) -> bytes:
        """A detached signature; `in_the_past` signs at `SIGNED_AT`, `expire` limits its life."""
        options = ["--faked-system-time", SIGNED_AT] if in_the_past else []
        options += ["--default-sig-expire", expire] if expire else []
        return self.gpg(*options, "--passphrase", "", "--detach-sign", "--output", "-", data=data)

    def revoke(self) -> None:
        """Revoke the key with the certificate gpg stored when making it; export again."""
        certificate = self.home / "openpgp-revocs.d" / f"{self.fingerprint}.rev"
        text = certificate.read_text().replace(":-----BEGIN", "-----BEGIN", 1)  # gpg's guard
        self.gpg("--import", data=text.encode())
        self.export()

    def export(self) -> None:
        self.keyring.write_bytes(self.gpg("--export"))

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"],
                       capture_output=True, check=False)  # fmt: skip

    def _fingerprint(self) -> str:
        listing = self.gpg("--with-colons", "--list-keys").decode()
        return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))

"""The image catalog: named images with their URL, checksum (or checksum file) and defaults.

Pure rules, no I/O: which server an image may go to, the host name it gets, which line of a
`SHA256SUMS`-style file is the image's, and "did you mean" for a mistyped name. Loading the
TOML tables, fetching checksum files and checking their signatures are adapters'
(`byoi_bot/catalog/`).
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .request import CHECKSUM_LENGTHS, Checksum

TYPE_BY_LENGTH = {length: kind for kind, length in CHECKSUM_LENGTHS.items()}
_GNU_LINE = re.compile(r"([0-9A-Fa-f]+) [ *](.+)")
_BSD_LINE = re.compile(r"(MD5|SHA1|SHA256|SHA512) ?\((.+)\) ?= ?([0-9A-Fa-f]+)", re.IGNORECASE)
_BARE_LINE = re.compile(r"([0-9A-Fa-f]+)")


class CatalogError(Exception):
    """A catalog image cannot be used as asked; the message says why and what to do."""


@dataclass(frozen=True)
class CatalogImage:
    """One `[[image]]` table of the configuration."""

    name: str
    url: str
    os: str = "byoi"
    type: str | None = None  # None: from the URL, as for a typed URL
    checksum: Checksum | None = None
    checksum_url: str | None = None
    signature_url: str | None = None  # a detached signature of the checksum file
    keyring: str | None = None  # the pinned keys that may sign it (a file path)
    efi_bootloader: str | None = None
    hostname: str | None = None  # a pattern: {server} the full name, {short} its first label
    user_data: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    servers: tuple[str, ...] = ()  # allowed server name patterns; empty: any server
    description: str | None = None
    ssh_port: int | None = None  # the boot gate's SSH port for this image (None: the policy's)
    health_url: str | None = None  # an https:// URL the booted server answers 2xx
    keep_disks: tuple[int, ...] | None = None  # disk groups kept (None: the policy's default)

    def boot(self) -> dict:
        """The boot gate's SSH port for this image, when it sets one (its health URL goes
        into the spec, approved and shown like the other values)."""
        return {"ssh_port": self.ssh_port} if self.ssh_port else {}

    @property
    def file_name(self) -> str:
        """The image's file name, the key of its line in a checksum file."""
        return unquote(urlsplit(self.url).path.rsplit("/", 1)[-1])

    def allows(self, server: str) -> bool:
        """Whether this image may be deployed on `server` (its `servers` patterns)."""
        return not self.servers or any(
            fnmatch.fnmatchcase(server, pattern.lower()) for pattern in self.servers
        )

    def refuse_server(self, server: str) -> None:
        """Raise `CatalogError` when `server` is outside this image's patterns."""
        if not self.allows(server):
            raise CatalogError(
                f"The image `{self.name}` may not be deployed on `{server}`: it is for servers "
                f"matching {', '.join(f'`{p}`' for p in self.servers)} only. Choose another "
                "image (`/byoi images`) or ask an admin to widen its `servers`."
            )

    def hostname_for(self, server: str) -> str | None:
        """The default host name for `server`, from the pattern (None without one)."""
        if not self.hostname:
            return None
        return self.hostname.format(server=server, short=server.split(".", 1)[0])


def did_you_mean(name: str, names: list[str]) -> str:
    """`Did you mean `x`?` for the closest catalog name, or '' when none is close."""
    close = difflib.get_close_matches(name.lower(), [n.lower() for n in names], n=1, cutoff=0.6)
    if not close:
        return ""
    original = next(n for n in names if n.lower() == close[0])
    return f" Did you mean `{original}`?"


def unknown_image(name: str, names: list[str]) -> CatalogError:
    """The error for an image name the catalog does not have."""
    if not names:
        return CatalogError(
            f"There is no image `{name}`: the catalog is empty (`[[image]]` tables in "
            "BYOI_CONFIG). Give an image URL instead."
        )
    return CatalogError(
        f"There is no image `{name}` in the catalog.{did_you_mean(name, names)} "
        "`/byoi images` lists them."
    )


def checksum_from_file(text: str, file_name: str, source: str) -> Checksum:
    """The checksum of `file_name` in a checksum file (GNU or BSD format) read from `source`.

    GNU lines are ``<hex>  <name>`` (``*<name>`` in binary mode), BSD lines
    ``SHA256 (<name>) = <hex>``; a file of one bare hex line is a `*.sha256`-style file of
    one image. The type comes from the BSD tag or the length, and must agree with the file's
    own name (SHA256SUMS, *.sha512 …) when that names one.

    >>> checksum_from_file("ab" * 32 + "  a.qcow2\\n", "a.qcow2", "SHA256SUMS").type
    'sha256'
    """
    found: set[tuple[str | None, str]] = set()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if bsd := _BSD_LINE.fullmatch(line):
            tag, name, value = bsd.group(1).lower(), bsd.group(2), bsd.group(3)
        elif gnu := _GNU_LINE.fullmatch(line):
            tag, value, name = None, gnu.group(1), gnu.group(2)
        elif len(lines) == 1 and (bare := _BARE_LINE.fullmatch(line)):
            tag, value, name = None, bare.group(1), file_name
        else:
            continue
        if name.removeprefix("./").rsplit("/", 1)[-1] == file_name:
            found.add((tag, value.lower()))
    if not found:
        raise CatalogError(
            f"The checksum file {source} has no line for `{file_name}`. Check the image's "
            "`url` and `checksum_url` in the catalog (the file may list another release)."
        )
    if len({value for _, value in found}) > 1:
        raise CatalogError(f"The checksum file {source} lists `{file_name}` with two checksums.")
    tag, value = found.pop()
    kind = tag or TYPE_BY_LENGTH.get(len(value))
    if kind is None or len(value) != CHECKSUM_LENGTHS[kind]:
        raise CatalogError(
            f"The checksum of `{file_name}` in {source} has {len(value)} hex digits, which is "
            "no md5, sha1, sha256 or sha512."
        )
    named = _type_in_name(source)
    if named and named != kind:
        raise CatalogError(
            f"The checksum file {source} is named for {named} but holds a {kind} checksum "
            f"for `{file_name}`."
        )
    return Checksum(kind, value)


def _type_in_name(source: str) -> str | None:
    name = urlsplit(source).path.rsplit("/", 1)[-1].lower()
    return next((kind for kind in CHECKSUM_LENGTHS if kind in name), None)

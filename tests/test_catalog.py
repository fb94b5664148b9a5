"""The image catalog: checksum files, signatures, the `[[image]]` tables, deploy by name."""

from __future__ import annotations

import codecs
import hashlib
from pathlib import Path

import pytest
from bot_harness import APPROVER, BotHarness
from fakes.files import FileServer
from fakes.openpgp import Signer
from tools import require_tool

from byoi_bot.catalog.fetch import FetchError, fetch_small
from byoi_bot.catalog.resolver import FileCatalog
from byoi_bot.catalog.signature import verify_detached
from byoi_bot.config import ConfigError, Settings, load_catalog
from byoi_bot.core.catalog import (
    CatalogError,
    CatalogImage,
    checksum_from_file,
    unknown_image,
)
from byoi_bot.core.request import Checksum
from byoi_bot.core.states import State
from byoi_bot.preflight.url_safety import UrlGuard, UrlRefused

SHA256 = hashlib.sha256(b"debian").hexdigest()
SHA512 = hashlib.sha512(b"debian").hexdigest()
OTHER = hashlib.sha256(b"other").hexdigest()
IMAGE = "debian-12-generic-amd64.qcow2"

# -- checksum files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "source", "expected"),
    [
        (f"{OTHER}  other.qcow2\n{SHA256}  {IMAGE}\n", "SHA256SUMS", Checksum("sha256", SHA256)),
        (f"{SHA512} *{IMAGE}\n", "https://x/SHA512SUMS", Checksum("sha512", SHA512)),
        (f"{SHA256.upper()}  ./{IMAGE}\n", "sums.txt", Checksum("sha256", SHA256)),
        (f"SHA256 ({IMAGE}) = {SHA256}\n", "CHECKSUMS", Checksum("sha256", SHA256)),
        (f"SHA512 ({IMAGE}) = {SHA512}\n", "CHECKSUM.sha512", Checksum("sha512", SHA512)),
        (f"{SHA256}\n", f"{IMAGE}.sha256", Checksum("sha256", SHA256)),
        (f"{SHA256}  images/{IMAGE}\r\n", "SHA256SUMS", Checksum("sha256", SHA256)),
    ],
    ids=["gnu", "gnu-binary", "dot-slash", "bsd", "bsd-sha512", "bare", "subfolder-crlf"],
)
def test_the_images_line_is_picked_in_gnu_and_bsd_formats(text, source, expected):
    assert checksum_from_file(text, IMAGE, source) == expected


def test_a_checksum_file_without_the_images_line_is_a_clear_error():
    with pytest.raises(CatalogError, match=f"has no line for `{IMAGE}`"):
        checksum_from_file(f"{SHA256}  debian-11.qcow2\n", IMAGE, "https://x/SHA256SUMS")


def test_a_checksum_file_named_for_another_type_is_refused():
    with pytest.raises(CatalogError, match="named for sha512 but holds a sha256"):
        checksum_from_file(f"{SHA256}  {IMAGE}\n", IMAGE, "SHA512SUMS")


def test_two_different_checksums_for_one_file_are_refused():
    with pytest.raises(CatalogError, match="two checksums"):
        checksum_from_file(f"{SHA256}  {IMAGE}\n{OTHER}  {IMAGE}\n", IMAGE, "SHA256SUMS")


def test_unknown_names_get_a_did_you_mean():
    assert "Did you mean `debian-12`?" in str(unknown_image("debain-12", ["debian-12", "alma"]))
    assert "Did you mean" not in str(unknown_image("windows", ["debian-12"]))
    assert "catalog is empty" in str(unknown_image("x", []))


def test_allowed_servers_and_the_hostname_pattern():
    image = CatalogImage("web", "https://x/a.qcow2", servers=("web-*",), hostname="{short}-new")
    assert image.allows("web-1.example.net") and not image.allows("db-1.example.net")
    assert image.hostname_for("web-1.example.net") == "web-1-new"
    with pytest.raises(CatalogError, match="for servers matching `web-\\*` only"):
        image.refuse_server("db-1.example.net")


# -- the [[image]] tables -----------------------------------------------------------------


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "byoi.toml"
    path.write_text(text)
    return str(path)


def test_image_tables_are_read_with_the_deploy_options_rules(tmp_path):
    (tmp_path / "keys.gpg").write_bytes(b"\x99")
    path = write_config(
        tmp_path,
        f"""
[[image]]
name = "debian-12"
url = "https://cloud.debian.org/images/{IMAGE}"
checksum_url = "https://cloud.debian.org/images/SHA512SUMS"
signature_url = "https://cloud.debian.org/images/SHA512SUMS.sign"
keyring = "keys.gpg"
efi_bootloader = '\\EFI\\debian\\grubx64.efi'
hostname = "{{short}}"
servers = ["web-*"]
metadata = {{ role = "web" }}

[[image]]
name = "alma-9"
url = "https://repo.example.net/alma.raw"
checksum = "sha256:{SHA256}"
os = "byoi"
""",
    )
    debian, alma = load_catalog(path)
    assert debian.keyring == str(tmp_path / "keys.gpg") and debian.type is None
    assert debian.metadata == (("role", "web"),) and debian.servers == ("web-*",)
    assert alma.checksum == Checksum("sha256", SHA256) and alma.checksum_url is None
    assert Settings.load({"BYOI_CONFIG": path}) is not None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('name = "a"\nurl = "https://x/a.qcow2"', "exactly one of `checksum` and `checksum_url`"),
        (f'name = "a"\nchecksum = "{SHA256}"', "`url` is required"),
        (f'name = "a"\nurl = "ftp://x/a.qcow2"\nchecksum = "{SHA256}"', "only http and https"),
        (f'name = "a"\nurl = "https://x/a"\nchecksum = "{SHA256}"\nos = "win"', "byolinux"),
        (f'name = "a"\nurl = "https://x/a"\nchecksum = "{SHA256}"\ncolour = 1', "unknown key"),
        ('name = "a"\nurl = "https://x/a"\nchecksum = "abc"', "match no checksum type"),
        (
            'name = "a"\nurl = "https://x/a"\nchecksum_url = "https://x/S"\nkeyring = "k.gpg"',
            "`signature_url` and `keyring` go together",
        ),
        (
            'name = "a"\nurl = "https://x/a"\nchecksum_url = "https://x/S"\n'
            'signature_url = "https://x/S.sig"\nkeyring = "missing.gpg"',
            "is no file",
        ),
    ],
)
def test_bad_image_tables_are_refused_at_start_up_naming_the_table(tmp_path, table, message):
    path = write_config(tmp_path, f"[[image]]\n{table}\n")
    with pytest.raises(ConfigError, match="\\[\\[image\\]\\] #1") as caught:
        Settings.load({"BYOI_CONFIG": path})
    assert message in str(caught.value)


def test_an_image_name_used_twice_is_refused(tmp_path):
    one = f'[[image]]\nname = "a"\nurl = "https://x/a.qcow2"\nchecksum = "{SHA256}"\n'
    with pytest.raises(ConfigError, match="used twice"):
        load_catalog(write_config(tmp_path, one + one.replace('"a"', '"A"', 1)))


# -- fetching under the URL guard ----------------------------------------------------------


@pytest.fixture
def files():
    server = FileServer().start()
    yield server
    server.stop()


def test_checksum_files_are_fetched_under_the_image_url_guard(files):
    files.files["/SHA256SUMS"] = b"sums"
    files.redirects["/moved"] = "/SHA256SUMS"
    with pytest.raises(UrlRefused, match="BYOI_URL_ALLOWLIST"):
        fetch_small(f"{files.base_url}/SHA256SUMS", UrlGuard())
    allowed = UrlGuard(("127.0.0.1/32",))
    assert fetch_small(f"{files.base_url}/moved", allowed) == b"sums"
    with pytest.raises(FetchError, match="answered HTTP 404"):
        fetch_small(f"{files.base_url}/nothing", allowed)
    files.files["/big"] = b"x" * 2048
    with pytest.raises(FetchError, match="larger than 1 KiB"):
        fetch_small(f"{files.base_url}/big", allowed, limit=1024)


def test_a_checksum_file_that_drips_is_given_up_at_the_overall_time_limit(files):
    """One byte every 0.2 s (each read is quick, so the 10 s per-read time-out never fires):
    the fetch stops at its 1 s limit instead of waiting the 20 s the drip lasts."""
    files.files["/SHA256SUMS"] = f"{SHA256}  {IMAGE}\n".encode()
    files.drips["/SHA256SUMS"] = 0.2
    try:
        with pytest.raises(FetchError, match="took more than 1 s"):
            fetch_small(f"{files.base_url}/SHA256SUMS", UrlGuard(("127.0.0.1/32",)), time_limit=1)
    finally:
        files.stop_dripping.set()


@pytest.mark.parametrize(
    "encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"]
)
def test_checksum_files_with_a_bom_or_in_utf16_are_read(files, tmp_path, encoding):
    text = f"{SHA256}  {IMAGE}\r\n{OTHER}  other.qcow2\r\n"  # a BOM would precede the hash
    data = text.encode(encoding)
    if encoding in ("utf-16-le", "utf-16-be"):  # as Windows writes them: with their BOM
        data = (codecs.BOM_UTF16_LE if encoding.endswith("le") else codecs.BOM_UTF16_BE) + data
    files.files["/SHA256SUMS"] = data
    config = tmp_path / "byoi.toml"
    config.write_text(
        "[[image]]\n"
        'name = "debian-12"\n'
        f'url = "https://images.example.net/{IMAGE}"\n'
        f'checksum_url = "{files.base_url}/SHA256SUMS"\n'
    )
    catalog = FileCatalog(str(config), UrlGuard(("127.0.0.1/32",)))
    checksum, _ = catalog.checksum(catalog.image("debian-12"))
    assert checksum == Checksum("sha256", SHA256)


# -- signatures (gpg makes the keys and signatures, gpgv checks them) ----------------------


@pytest.fixture(scope="module")
def signers(tmp_path_factory):
    require_tool("gpg", "gpgv", "gpgconf")
    base = tmp_path_factory.mktemp("gpg")
    made = [Signer(base / "release", "release"), Signer(base / "stranger", "stranger")]
    yield made
    for signer in made:
        signer.close()


def test_a_good_signature_names_its_key_and_a_changed_file_fails(signers):
    release, stranger = signers
    sums = f"{SHA256}  {IMAGE}\n".encode()
    signature = release.sign(sums)
    fingerprint = verify_detached(sums, signature, str(release.keyring), "SHA256SUMS")
    assert len(fingerprint) == 40
    with pytest.raises(CatalogError, match="does not match its signature"):
        verify_detached(sums.replace(b"debian", b"evil"), signature, str(release.keyring), "x")
    with pytest.raises(CatalogError, match="not in the catalog's pinned keyring"):
        verify_detached(sums, stranger.sign(sums), str(release.keyring), "SHA256SUMS")
    with pytest.raises(CatalogError, match="not a valid OpenPGP signature"):
        verify_detached(sums, b"garbage", str(release.keyring), "SHA256SUMS")


# -- deploy by name through the bot ------------------------------------------------------


SERVER = "ns1001.ip-51-75-1.eu"


@pytest.fixture
def catalog_bot(tmp_path, files, signers):
    release, _ = signers
    sums = f"{OTHER}  debian-11.qcow2\n{SHA256}  debian-12.qcow2\n".encode()
    files.files |= {"/SHA256SUMS": sums, "/SHA256SUMS.gpg": release.sign(sums)}
    holder: dict[str, BotHarness] = {}
    config = tmp_path / "byoi.toml"

    def start(images: str) -> BotHarness:
        config.write_text(images)
        h = BotHarness(
            tmp_path,
            extra_env={"BYOI_CONFIG": str(config), "BYOI_URL_ALLOWLIST": "127.0.0.1/32"},
        )
        holder["h"] = h
        return h

    yield start, files, release, config
    if "h" in holder:
        holder["h"].close()


def debian_table(h: BotHarness, files: FileServer, keyring: Path, **extra: str) -> str:
    lines = [
        "[[image]]",
        'name = "debian-12"',
        f'url = "{h.images.base_url if h else "http://127.0.0.1:9"}/debian-12.qcow2"',
        f'checksum_url = "{files.base_url}/SHA256SUMS"',
        f'signature_url = "{files.base_url}/SHA256SUMS.gpg"',
        f'keyring = "{keyring}"',
        "efi_bootloader = 'x.efi'",
        'hostname = "{short}-web"',
        *(f'{k} = "{v}"' for k, v in extra.items()),
    ]
    return "\n".join(lines) + "\n"


def test_deploy_by_name_resolves_and_binds_the_signed_checksum(catalog_bot):
    start, files, release, config = catalog_bot
    h = start(debian_table(None, files, release.keyring))
    config.write_text(debian_table(h, files, release.keyring))  # re-read: no restart needed
    h.slash("images")
    listing = h.wait_answer("Image catalog")
    assert "`debian-12`" in listing and "(signed)" in listing

    h.slash(f"deploy {SERVER} debian-12")
    card = h.wait_card()
    request = h.bot.store.recent(1)[0]
    assert request.spec.checksum == Checksum("sha256", SHA256)
    assert request.spec.hostname == "ns1001-web"
    card_text = str(card["blocks"])
    assert SHA256 in card_text and "signed by key" in card_text and "debian-12" in card_text

    files.files["/SHA256SUMS"] = f"{OTHER}  debian-12.qcow2\n".encode()  # changed afterwards
    h.react(APPROVER, ts=card["ts"])
    h.wait_thread(card["ts"], "started at OVHcloud")
    started = h.bot.store.get(request.id)
    assert started.state is State.DEPLOYING and h.starts() == 1
    assert started.spec.checksum.value == SHA256, "the approved checksum, not the new file's"
    assert files.hits["/SHA256SUMS"] == 1, "read once, at request time"


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        (f"deploy {SERVER} debain-12", "Did you mean `debian-12`?"),
        (f"deploy {SERVER} debian-11", "There is no image `debian-11`"),
        ("deploy db-1.example.net web-only", "for servers matching `web-*` only"),
    ],
)
def test_unknown_images_and_servers_outside_the_patterns_are_refused(catalog_bot, command, answer):
    start, files, release, _ = catalog_bot
    web_only = (
        f'[[image]]\nname = "web-only"\nurl = "https://x.example/a.qcow2"\n'
        f'checksum = "{SHA256}"\nservers = ["web-*"]\n'
    )
    h = start(debian_table(None, files, release.keyring) + web_only)
    h.slash(command)
    assert answer in h.wait_answer(answer.split("`")[0] or answer)
    assert h.cards() == [] and h.simulator.calls() == []


def test_a_bad_signature_or_a_missing_line_refuses_the_request(catalog_bot):
    start, files, release, config = catalog_bot
    h = start(debian_table(None, files, release.keyring))
    config.write_text(debian_table(h, files, release.keyring))
    files.files["/SHA256SUMS"] += b"# appended after signing\n"
    h.slash(f"deploy {SERVER} debian-12")
    assert "does not match its signature" in h.wait_answer("Bad signature")
    files.files["/SHA256SUMS"] = f"{OTHER}  debian-11.qcow2\n".encode()
    files.files["/SHA256SUMS.gpg"] = release.sign(files.files["/SHA256SUMS"])
    h.slash(f"deploy {SERVER} debian-12")
    assert "has no line for `debian-12.qcow2`" in h.wait_answer("has no line")
    assert h.cards() == []


def test_a_checksum_file_signed_by_a_revoked_pinned_key_refuses_the_request(catalog_bot, tmp_path):
    """gpgv exits 0 here (REVKEYSIG beside VALIDSIG); the bot still refuses (issue 18)."""
    start, files, _, config = catalog_bot
    revoked = Signer(tmp_path / "revoked", "revoked")
    try:
        files.files["/SHA256SUMS.gpg"] = revoked.sign(files.files["/SHA256SUMS"])
        revoked.revoke()
        h = start(debian_table(None, files, revoked.keyring))
        config.write_text(debian_table(h, files, revoked.keyring))
        h.slash(f"deploy {SERVER} debian-12")
        assert "which its owner has revoked" in h.wait_answer("Bad signature")
        assert h.cards() == [] and h.simulator.calls() == []
    finally:
        revoked.close()

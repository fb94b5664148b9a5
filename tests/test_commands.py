"""The `/byoi` command language: tokenising, Slack markup, validation, help, properties."""

from __future__ import annotations

import base64
import dataclasses
import itertools
import random
import re
import struct
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from properties import examples

from byoi_bot import commands
from byoi_bot.commands import (
    OPTIONS,
    SUBCOMMANDS,
    Cancel,
    CommandError,
    Deploy,
    Freeze,
    Freezes,
    Help,
    History,
    Images,
    List,
    Review,
    Status,
    Unfreeze,
    help_text,
    parse,
    usage_hint,
)
from byoi_bot.core.request import CHECKSUM_LENGTHS, IMAGE_TYPES, Checksum, DeploySpec

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SERVER = "ns1.example.net"
URL = "https://images.example.net/debian-12.qcow2"
BASE = f"deploy {SERVER} {URL}"
SECRET = "Zq9-SECRET-VALUE-xK2"


# ----------------------------------------------------------------------------- helpers


def ssh_key(kind: str = "ssh-ed25519", comment: str = "alice@laptop", seed: int = 1) -> str:
    """A realistic public key line: the length-prefixed type, then key material."""
    rng = random.Random(seed)
    if kind == "ssh-rsa":
        material = _string(b"\x01\x00\x01") + _string(b"\x00" + rng.randbytes(256))
    elif kind.startswith("ecdsa-sha2-"):
        material = _string(kind.rsplit("-", 1)[1].encode()) + _string(b"\x04" + rng.randbytes(64))
    else:
        material = _string(rng.randbytes(32))
    blob = _string(kind.encode()) + material
    line = f"{kind} {base64.b64encode(blob).decode()}"
    return f"{line} {comment}" if comment else line


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def deploy(extra: str = "", **kwargs) -> DeploySpec:
    command = parse(f"{BASE} {extra}", now=kwargs.pop("now", NOW))
    assert isinstance(command, Deploy) and command.spec is not None
    return command.spec


def error(text: str, argument: str | None = None) -> CommandError:
    """The CommandError of `text`, checked for its fields and a working example."""
    with pytest.raises(CommandError) as caught:
        parse(text, now=NOW)
    exc = caught.value
    if argument is not None:
        assert exc.argument == argument, str(exc)
    assert exc.problem and exc.expected and exc.example.startswith("/byoi ")
    assert str(exc).startswith(f"`{exc.argument}`: ")
    assert "Expected:" in str(exc) and "Example:" in str(exc)
    parse(exc.example.removeprefix("/byoi "), now=NOW)  # every example shown is a valid command
    return exc


def all_keys() -> list[str]:
    return [key for option in OPTIONS for key in option.keys]


# ----------------------------------------------------------------------------- sub-commands


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Help(None)),
        ("   \n ", Help(None)),
        ("help", Help(None)),
        ("HELP Deploy", Help("deploy")),
        ("help checksum=", Help("checksum")),
        ("help image-url", Help("url")),
        ("list", List(False)),
        ("list all", List(True)),
        ("list all page 3", List(True, 3)),
        ("List ALL", List(True)),
        ("status", Status(None)),
        ("status ns1.example.net", Status("ns1.example.net")),
        ("status NS1.Example.net", Status("ns1.example.net")),
        ("status r-abc234", Status("r-abc234")),
        ("status <http://ns1.example.net|ns1.example.net>", Status("ns1.example.net")),
        ("cancel r-abc234", Cancel("r-abc234")),
        ("cancel  r-abc234 ", Cancel("r-abc234")),
        ("history ns1.example.net", History("ns1.example.net")),
        ("history <http://ns1.example.net|ns1.example.net>", History("ns1.example.net")),
        ("deploy", Deploy(None)),
        ("  Deploy  ", Deploy(None)),
    ],
)
def test_simple_commands(text, expected):
    assert parse(text, now=NOW) == expected


@pytest.mark.parametrize(
    ("text", "argument", "fragment"),
    [
        ("stauts", "command", "Did you mean `status`?"),
        ("depoly ns1.example.net", "command", "Did you mean `deploy`?"),
        ("ns1.example.net https://x.example/a.qcow2", "command", "start with `deploy`"),
        ("server=ns1.example.net", "command", "not a /byoi command"),
        ("cancel", "id", "needs a id"),
        ("cancel r", "id", "not a request id"),
        ("cancel r_abc!", "id", "not a request id"),
        ("cancel r-abc234 r-def567", "arguments", "unexpected `r-def567`"),
        ("history", "server", "needs a server"),
        ("history bad_name.example", "server", "not a valid host name"),
        ("list everything", "all", "takes `all` and `page <n>`"),
        ("list all page zero", "page", "not a page number"),
        ("list all pages 2", "all", "takes `all` and `page <n>`"),
        ("status a.example b.example", "arguments", "at most 1"),
        ("status bad_name.example", "server", "not a valid host name"),
        ("status server=ns1.example.net", "server", "takes no key=value"),
        ("help nope", "topic", "no help on `nope`"),
        ("help checksun", "topic", "Did you mean `checksum`?"),
        ("help deploy status", "arguments", "at most 1"),
    ],
)
def test_simple_command_errors(text, argument, fragment):
    assert fragment in str(error(text, argument))


def test_every_subcommand_example_parses_to_its_own_command():
    kinds = {
        "deploy": Deploy,
        "images": Images,
        "status": Status,
        "list": List,
        "cancel": Cancel,
        "history": History,
        "freeze": Freeze,
        "unfreeze": Unfreeze,
        "freezes": Freezes,
        "review": Review,
        "help": Help,
    }
    assert set(kinds) == {c.name for c in SUBCOMMANDS}
    for command in SUBCOMMANDS:
        assert isinstance(
            parse(command.example.removeprefix("/byoi "), now=NOW), kinds[command.name]
        )


# ----------------------------------------------------------------------------- deploy basics


def test_minimal_deploy():
    assert deploy() == DeploySpec(server=SERVER, image_url=URL, image_type="qcow2")


@pytest.mark.parametrize(
    "text",
    [
        f"deploy server={SERVER} url={URL}",
        f"deploy url={URL} server={SERVER}",
        f"deploy {SERVER} url={URL}",
        f"deploy url={URL} {SERVER}",
        f"deploy server={SERVER} {URL}",
        f"deploy {URL} {SERVER}",
        f"deploy SERVER={SERVER} Image-Url={URL}",
        f"DEPLOY {SERVER.upper()} {URL}",
    ],
)
def test_server_and_url_by_position_or_key(text):
    spec = parse(text, now=NOW).spec
    assert (spec.server, spec.image_url) == (SERVER, URL)


def test_key_order_does_not_matter():
    options = ["type=raw", "hostname=web-1", "disk-group=2", "config-drive=off", "md5=" + "a" * 32]
    expected = deploy(" ".join(options))
    for order in itertools.permutations([SERVER, URL, *options]):
        assert parse("deploy " + " ".join(order), now=NOW).spec == expected


@pytest.mark.parametrize("key", ["TYPE", "Type", "type", "IMAGE-TYPE"])
def test_keys_ignore_case(key):
    assert deploy(f"{key}=raw").image_type == "raw"


# ----------------------------------------------------------------------------- quoting


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ('description="monthly rebuild"', "monthly rebuild"),
        ("description='monthly rebuild'", "monthly rebuild"),
        ("description=“monthly rebuild”", "monthly rebuild"),
        ("description=‘monthly rebuild’", "monthly rebuild"),
        ("description=“monthly rebuild“", "monthly rebuild"),
        ("description=„monthly rebuild“", "monthly rebuild"),
        ('description="say “hi”"', "say “hi”"),
        ("description='it’s ok'", "it’s ok"),
        ("description=‘it's ok’", "it's ok"),
        ('description="it\'s ok"', "it's ok"),
        ("description='say \"hi\"'", 'say "hi"'),
        ("description=plain", "plain"),
        ("description=don't", "don't"),
        ('description="a=b c"', "a=b c"),
        ('description="Tom &amp; Jerry &lt;3"', "Tom & Jerry <3"),
        ("description=‘it’s monthly’", "it’s monthly"),
        ("description='it's monthly'", "it's monthly"),
        ("description=‘Bob’s and Ann’s’", "Bob’s and Ann’s"),
        ("description=”monthly rebuild”", "monthly rebuild"),
        ("description=’monthly rebuild’", "monthly rebuild"),
        ("description=«monthly rebuild»", "monthly rebuild"),
        ("description=»monthly rebuild«", "monthly rebuild"),
    ],
)
def test_quoted_values(option, value):
    assert deploy(option).description == value


@pytest.mark.parametrize(
    "text",
    [
        f'{BASE} description="never closed',
        f"{BASE} description=“oops",
        f"{BASE} description=‘it’s never closed",
    ],
)
def test_unclosed_quote_is_an_error_naming_the_quote(text):
    quote = text.split("description=")[1][0]
    assert f"the quote `{quote}` is opened but never closed" in str(error(text, "description"))


# ----------------------------------------------------------------------------- totality


@pytest.mark.parametrize(
    ("text", "argument", "words"),
    [
        ("deploy ,", "server", "has an empty name"),
        (f"deploy , {URL}", "server", "has an empty name"),
        (f"deploy ns1,,ns2 {URL}", "server", "two commas in a row"),
        (f"deploy ns1, ns2 {URL}", "server", "a space after a comma"),
        (f"deploy <,> {URL}", "server", "has an empty name"),
        (f"deploy ns1,ns2 {URL} parallel=²", "parallel", "not a whole number from 1 to 1000"),
        (f"deploy ns1,ns2 {URL} canary=¹", "canary", "not a whole number from 0 to 1000"),
        (f"deploy ns1,ns2 {URL} parallel={'9' * 5000}", "parallel", "not a whole number"),
        (f"{BASE} raid=²", "raid", "not a hardware RAID level"),
        (f"{BASE} disk-group=١", "disk-group", "not a non-negative whole number"),
        ("list all page ²", "page", "not a page number"),
        ("list all page ٣", "page", "not a page number"),
    ],
)
def test_text_that_used_to_crash_gets_a_command_error(text, argument, words):
    """`str.isdigit` accepts `²` and `١`; an empty server list left nothing to index."""
    assert words in error(text, argument).problem


@pytest.mark.parametrize(
    "option",
    [
        r"efi-bootloader=\efi\debian\grubx64.efi",
        r'efi-bootloader="\efi\debian\grubx64.efi"',
        r"efi-bootloader='\efi\debian\grubx64.efi'",
        r"EFI-BOOTLOADER=\efi\debian\grubx64.efi",
    ],
)
def test_backslashes_in_efi_paths_survive(option):
    assert deploy(option).efi_bootloader == "\\efi\\debian\\grubx64.efi"


# ----------------------------------------------------------------------------- Slack markup


@pytest.mark.parametrize(
    ("url_text", "url"),
    [
        (f"<{URL}>", URL),
        (f"<{URL}|debian-12.qcow2>", URL),
        (f"<{URL}|label with spaces>", URL),
        (f"url=<{URL}>", URL),
        (f'url="<{URL}>"', URL),
        ("<https://x.example/a.qcow2?a=1&amp;b=2>", "https://x.example/a.qcow2?a=1&b=2"),
    ],
)
def test_slack_link_wrapping_is_removed_from_urls(url_text, url):
    spec = parse(f"deploy {SERVER} {url_text}", now=NOW).spec
    assert spec.image_url == url and spec.image_type == "qcow2"


@pytest.mark.parametrize(
    "server_text",
    [
        "<http://ns1.example.net|ns1.example.net>",
        "<http://ns1.example.net>",
        "<http://ns1.example.net/>",
        "<mailto:ns1.example.net|ns1.example.net>",
        "server=<http://ns1.example.net|ns1.example.net>",
    ],
)
def test_slack_link_wrapping_is_removed_from_server_names(server_text):
    assert parse(f"deploy {server_text} {URL}", now=NOW).spec.server == SERVER


def test_slack_autolinked_scheme_less_url_is_refused_as_typed():
    text = f"deploy {SERVER} <http://images.example.net/a.qcow2|images.example.net/a.qcow2>"
    assert "has no scheme" in str(error(text, "url"))


def test_slack_mailto_in_ssh_key_comment_is_unwrapped():
    key = ssh_key()
    wrapped = key.replace("alice@laptop", "<mailto:alice@laptop|alice@laptop>")
    assert deploy(f'ssh-key="{wrapped}"').ssh_key == key


def test_slack_link_in_hostname():
    assert deploy("hostname=<http://web-1.example.net|web-1.example.net>").hostname == (
        "web-1.example.net"
    )


# ----------------------------------------------------------------------------- checksum


@pytest.mark.parametrize(("kind", "length"), CHECKSUM_LENGTHS.items())
def test_checksum_type_is_inferred_from_length(kind, length):
    assert deploy("checksum=" + "Ab" * (length // 2)).checksum == Checksum(
        kind, "ab" * (length // 2)
    )


@pytest.mark.parametrize(("kind", "length"), CHECKSUM_LENGTHS.items())
@pytest.mark.parametrize("form", ["checksum={kind}:{hex}", "{kind}={hex}", "checksum={KIND}:{hex}"])
def test_checksum_type_stated(kind, length, form):
    text = form.format(kind=kind, KIND=kind.upper(), hex="0f" * (length // 2))
    assert deploy(text).checksum == Checksum(kind, "0f" * (length // 2))


@pytest.mark.parametrize(("stated", "stated_length"), CHECKSUM_LENGTHS.items())
@pytest.mark.parametrize(("actual", "length"), CHECKSUM_LENGTHS.items())
def test_wrong_length_for_stated_type(stated, stated_length, actual, length):
    if stated == actual:
        return
    for text in (f"checksum={stated}:{'a' * length}", f"{stated}={'a' * length}"):
        exc = error(f"{BASE} {text}", text.split("=")[0])
        assert f"{length} hex digits is {actual}, but you wrote {stated}" in exc.problem


@pytest.mark.parametrize(
    ("option", "argument", "fragment"),
    [
        ("checksum=" + "a" * 33, "checksum", "33 hex digits match no checksum type"),
        ("checksum=" + "g" * 64, "checksum", "is not hexadecimal"),
        ("sha256=" + "z" * 64, "sha256", "is not hexadecimal"),
        ("checksum=crc32:abcd", "checksum", "`crc32` is not a checksum type"),
        ("checksum=sha265:" + "a" * 64, "checksum", "Did you mean `sha256`?"),
        ("sha256=" + "a" * 63, "sha256", "63 hex digits, but you wrote sha256"),
        ("checksum=" + "a" * 64 + " sha256=" + "a" * 64, "sha256", "given twice"),
        ("md5=" + "a" * 32 + " sha1=" + "a" * 40, "sha1", "given twice (see `md5=`)"),
    ],
)
def test_checksum_errors(option, argument, fragment):
    assert fragment in str(error(f"{BASE} {option}", argument))


# ----------------------------------------------------------------------------- image type


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://x.example/a.qcow2", "qcow2"),
        ("https://x.example/A.QCOW2", "qcow2"),
        ("https://x.example/a.img", "raw"),
        ("https://x.example/a.raw", "raw"),
        ("http://x.example/dir.v2/a.img", "raw"),
        ("https://x.example/a.qcow2?X-Amz-Signature=abc", "qcow2"),
        ("https://x.example/a.raw?download=1#top", "raw"),
    ],
)
def test_type_is_inferred_from_the_extension(url, kind):
    assert parse(f"deploy {SERVER} {url}", now=NOW).spec.image_type == kind


@pytest.mark.parametrize(
    "url",
    [
        "https://x.example/a.qcow2.gz",
        "https://x.example/a.img.xz",
        "https://x.example/a.iso",
        "https://x.example/download",
        "https://x.example/a?name=b.qcow2",
        "https://x.example/",
    ],
)
def test_type_must_be_stated_when_not_inferable(url):
    exc = error(f"deploy {SERVER} {url}", "type")
    assert "cannot tell the image type" in exc.problem
    for kind in IMAGE_TYPES:
        assert parse(f"deploy {SERVER} {url} type={kind}", now=NOW).spec.image_type == kind


def test_stated_type_wins_over_extension():
    assert deploy("type=raw").image_type == "raw"


@pytest.mark.parametrize(("value", "hint"), [("qcow", "`qcow2`"), ("RAWW", "`raw`"), ("iso", "")])
def test_bad_type(value, hint):
    exc = error(f"{BASE} type={value}", "type")
    assert "is not an image type" in exc.problem and hint in exc.problem


@pytest.mark.parametrize("value", ["QCOW2", "Raw"])
def test_type_ignores_case(value):
    assert deploy(f"type={value}").image_type == value.lower()


# ----------------------------------------------------------------------------- URL


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("file:///etc/passwd", "`file:` URLs are not allowed"),
        ("file:/etc/passwd", "`file:` URLs are not allowed"),
        ("ftp://x.example/a.qcow2", "`ftp:` URLs are not allowed"),
        ("javascript:alert(1)", "`javascript:` URLs are not allowed"),
        ("data:text/plain,hi", "`data:` URLs are not allowed"),
        ("images.example.net/a.qcow2", "has no scheme"),
        ("x.example:8080/a.qcow2", "has no scheme"),
        ("/a.qcow2", "has no scheme"),
        ("https:///a.qcow2", "has no host"),
        ("http:/x.example/a.qcow2", "malformed"),
        ("http://[::1/a.qcow2", "not a valid URL"),
        ("http://x.example:99999/a.qcow2", "not a valid URL"),
        ("https://x.example/a\x00.qcow2", "control characters"),
        ("https://x.example/" + "a" * 2100 + ".qcow2", "too long"),
    ],
)
def test_only_http_urls_with_a_host(url, fragment):
    assert fragment in str(error(f"deploy {SERVER} url={url}", "url"))


@pytest.mark.parametrize(
    ("url", "argument"),
    [
        ("https://bob:pw@x.example/a.tar?token=T0P", "type"),
        ("ftp://bob:pw@x.example/a.qcow2?token=T0P", "url"),
        ("https://bob:pw@[::1/a.qcow2?token=T0P", "url"),
        ("bob:pw@x.example/a.qcow2?token=T0P", "url"),
    ],
)
def test_url_errors_mask_credentials_and_query(url, argument):
    exc = error(f"deploy {SERVER} url={url}", argument)
    assert "pw" not in str(exc) and "T0P" not in str(exc)


def test_type_error_names_the_extension():
    assert "ends in `.gz`" in error(f"deploy {SERVER} https://x.example/a.qcow2.gz", "type").problem


@pytest.mark.parametrize("scheme", ["http", "https", "HTTPS"])
def test_http_and_https_are_allowed(scheme):
    url = f"{scheme}://user:pw@x.example:8080/a.qcow2"
    assert parse(f"deploy {SERVER} {url}", now=NOW).spec.image_url == url


# ----------------------------------------------------------------------------- host names

BAD_NAMES = [
    "-ns1.example.net",
    "ns1-.example.net",
    "ns1.-example.net",
    "ns_1.example.net",
    "ns1..example.net",
    "ns1.example.net.",
    ".ns1.example.net",
    "a" * 64 + ".example.net",
    ".".join(["a" * 63] * 4),  # 255 characters
    "ns1.exämple.net",
    "ns1.example.net\u212a",  # Kelvin sign lower-cases to "k"
    "ns 1",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_server_names(name):
    assert "not a valid host name" in str(error(f'deploy server="{name}" {URL}', "server"))


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_hostnames(name):
    assert "not a valid host name" in str(error(f'{BASE} hostname="{name}"', "hostname"))


@pytest.mark.parametrize(
    "name",
    [
        "ns1001.ip-51-75-1.eu",
        "a",
        "web-1",
        "A" * 63 + ".example",
        ".".join(["a" * 63] * 3 + ["a" * 61]),  # 253 characters
    ],
)
def test_valid_host_names_are_accepted_and_lower_cased(name):
    spec = parse(f"deploy {name} {URL} hostname={name}", now=NOW).spec
    assert spec.server == spec.hostname == name.lower()


# ----------------------------------------------------------------------------- ssh keys


@pytest.mark.parametrize("kind", commands.SSH_KEY_TYPES)
@pytest.mark.parametrize("comment", ["alice@laptop", "", "two words"])
def test_public_keys_are_accepted(kind, comment):
    key = ssh_key(kind, comment)
    assert deploy(f'ssh-key="{key}"').ssh_key == key


def test_public_key_whitespace_is_normalised():
    key = ssh_key()
    assert deploy(f"ssh-key=“  {key.replace(' ', '   ')} ”").ssh_key == key


PRIVATE_KEYS = [
    "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAABG5vbmU= -----END …",
    "-----BEGIN RSA PRIVATE KEY----- MIIEowIBAAKCAQEA1 -----END RSA PRIVATE KEY-----",
    "-----BEGIN EC PRIVATE KEY----- MHcCAQEEIB -----END EC PRIVATE KEY-----",
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
    "PuTTY-User-Key-File-3: ssh-ed25519 Encryption: none",
]


@pytest.mark.parametrize("key", PRIVATE_KEYS)
def test_private_keys_are_refused_with_a_specific_message(key):
    exc = error(f'{BASE} ssh-key="{key}"', "ssh-key")
    assert "this is a PRIVATE key: never paste it; paste the .pub file" in exc.problem
    assert "MII" not in str(exc) and "b3BlbnNz" not in exc.problem + exc.expected


@pytest.mark.parametrize(
    "key",
    [
        "hello world",
        "AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f",
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
        "ssh-ed25519",
        "ssh-ed25519 not*base64!",
        "ssh-ed25519 AAAA",
        "ssh-ed25519 " + base64.b64encode(b"garbage bytes here").decode(),
        ssh_key("ssh-rsa").replace("ssh-rsa", "ssh-ed25519", 1),  # blob says rsa
        "ssh-ed25519 " + ssh_key("ssh-ed25519", "")[12:-2],  # truncated base64
        "SSH-ED25519 " + ssh_key(comment="").split()[1],
    ],
)
def test_garbage_keys_are_refused(key):
    exc = error(f'{BASE} ssh-key="{key}"', "ssh-key")
    assert "PRIVATE" not in exc.problem


def test_unquoted_public_key_is_explained():
    exc = error(f"{BASE} ssh-key={ssh_key()}", "ssh-key")
    assert "put the whole key in quotes" in exc.problem


# ----------------------------------------------------------------------------- headers


def test_headers_repeat_and_keep_their_order():
    spec = deploy("header=\"Authorization: Bearer a b\" header='X-Trace: 1' HEADER=X-Empty:x")
    assert spec.headers == (("Authorization", "Bearer a b"), ("X-Trace", "1"), ("X-Empty", "x"))


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        (f"{SECRET}", "must read `Name: value`"),
        (f"Bad Name: {SECRET}", "must read `Name: value`"),
        (f"Bad(Name): {SECRET}", "must read `Name: value`"),
        (f": {SECRET}", "must read `Name: value`"),
        ("X-Empty:", "header `X-Empty` has no value"),
        ("X-Empty:   ", "header `X-Empty` has no value"),
        (f"X-Bad: {SECRET}\n{SECRET}", "holds a line break"),
        (f"X-Bad: {SECRET}\x07", "holds a line break"),
    ],
)
def test_bad_headers_and_their_values_never_shown(header, fragment):
    exc = error(f"{BASE} header='{header}'", "header")
    assert fragment in exc.problem
    assert SECRET not in str(exc) and SECRET not in repr(exc.args)


@pytest.mark.parametrize(
    "text",
    [
        f"{BASE} header=Authorization: Bearer {SECRET}",  # unquoted: spills
        f"{BASE} header=Authorization:Bearer {SECRET}",
        f"deploy {SERVER} header=Authorization:Bearer {SECRET}",
        f"deploy {SERVER} header=Authorization:Bearer https://{SECRET}",
        f"deploy header=X:{SECRET} {SERVER}",
        f'{BASE} header="X: {SECRET}" hostname=bad_name type=zip',
        f'{BASE} header="X: {SECRET}" bogus=1',
        f'{BASE} header="X: {SECRET}" header="Y: {SECRET}" header="broken {SECRET}"',
        f'{BASE} header="X: {SECRET}" at=yesterday',
        f'{BASE} header="X: {SECRET}" description="unclosed',
    ],
)
def test_header_values_are_absent_from_errors(text):
    exc = error(text)
    assert SECRET not in str(exc) and SECRET not in repr(exc.args)


# ----------------------------------------------------------------------------- small values


@pytest.mark.parametrize(
    ("value", "number"), [("0", 0), ("7", 7), ("007", 7), ("123456789", 123456789)]
)
def test_disk_group(value, number):
    assert deploy(f"disk-group={value}").disk_group == number


@pytest.mark.parametrize("value", ["-1", "1.5", "abc", "１", "²", "1e3", "1234567890", "0x1"])
def test_bad_disk_group(value):
    assert "non-negative whole number" in str(error(f"{BASE} disk-group={value}", "disk-group"))


@pytest.mark.parametrize(
    ("value", "flag"),
    [("on", True), ("ON", True), ("yes", True), ("true", True), ("off", False), ("no", False)],
)
def test_config_drive(value, flag):
    assert deploy(f"config-drive={value}").config_drive is flag


@pytest.mark.parametrize("value", ["maybe", "1", "enabled"])
def test_bad_config_drive(value):
    assert "is not on or off" in str(error(f"{BASE} config-drive={value}", "config-drive"))


@pytest.mark.parametrize(
    ("value", "when"),
    [
        ("10:30", datetime(2026, 11, 27, 10, 30, tzinfo=UTC)),
        ("9:01", datetime(2026, 11, 27, 9, 1, tzinfo=UTC)),
        ("09:00", datetime(2026, 11, 28, 9, 0, tzinfo=UTC)),  # now: next occurrence
        ("08:59", datetime(2026, 11, 28, 8, 59, tzinfo=UTC)),
        ("00:00", datetime(2026, 11, 28, 0, 0, tzinfo=UTC)),
        ("2026-12-01T06:00", datetime(2026, 12, 1, 6, 0, tzinfo=UTC)),
        ("2026-12-01T06:00Z", datetime(2026, 12, 1, 6, 0, tzinfo=UTC)),
        ("2026-12-01T06:00+02:00", datetime(2026, 12, 1, 4, 0, tzinfo=UTC)),
        ('"2026-12-01 06:00:30"', datetime(2026, 12, 1, 6, 0, 30, tzinfo=UTC)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
    ],
)
def test_at(value, when):
    at = deploy(f"at={value}").at
    assert at == when and at.utcoffset() == timedelta(0)


def test_at_with_a_naive_now_means_utc():
    at = parse(f"{BASE} at=10:00", now=datetime(2026, 11, 27, 9, 0)).spec.at
    assert at == datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def test_the_parser_never_reads_the_wall_clock():
    with pytest.raises(TypeError):
        parse(f"{BASE} at=00:00")  # type: ignore[call-arg]  # `now` is the bot's clock
    a_year_on = NOW + timedelta(days=366)
    assert parse(f"{BASE} at=00:00", now=a_year_on).spec.at == datetime(
        a_year_on.year, a_year_on.month, a_year_on.day, tzinfo=UTC
    ) + timedelta(days=1)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2026-01-01T00:00", "is in the past"),
        ("2026-11-27T09:00Z", "is in the past"),
        ("2026-11-27T10:00+02:00", "is in the past"),
        ("25:00", "is not a time"),
        ("12:60", "is not a time"),
        ("tomorrow", "is not a time"),
        ("0001-01-01T00:00+01:00", "is not a time"),  # overflows on conversion
        ("2026-13-01", "is not a time"),
    ],
)
def test_bad_at(value, fragment):
    assert fragment in str(error(f"{BASE} at={value}", "at"))


def test_at_near_the_end_of_time_is_an_error_not_a_crash():
    with pytest.raises(CommandError):
        parse(f"{BASE} at=08:00", now=datetime.max.replace(tzinfo=UTC))


@pytest.mark.parametrize("value", ["monthly rebuild", "ünïcödé ✓"])
def test_description(value):
    assert deploy(f'description="{value}"').description == value


@pytest.mark.parametrize("value", ["x" * 501, "line\nbreak", "bell\x07"])
def test_bad_description(value):
    error(f'{BASE} description="{value}"', "description")


# ----------------------------------------------------------------------------- structure errors


@pytest.mark.parametrize(
    ("text", "argument", "fragment"),
    [
        (f"deploy {SERVER}", "url", "the image URL is missing"),
        (f"deploy url={URL}", "server", "the server name is missing"),
        ("deploy type=raw", "server", "the server name is missing"),
        (f"{BASE} hostname=a hostname=b", "hostname", "`hostname` is given twice"),
        (f"{BASE} type=raw TYPE=raw", "type", "given twice"),
        (f"{BASE} url={URL}", "url", "given twice"),
        (f"{BASE} image-url={URL}", "url", "given twice"),
        (f"{BASE} server={SERVER}", "server", "given twice"),
        (f"deploy server={SERVER} {URL} {SERVER}", "server", "given twice"),
        (f"deploy {SERVER} {SERVER} {URL}", "arguments", "unexpected `ns1.example.net`"),
        (f"{BASE} extra", "arguments", "unexpected `extra`"),
        (f"{BASE} {URL}", "url", "given twice"),
        (f"{BASE} hostname=", "hostname", "`hostname=` needs a value"),
        (f'{BASE} description=""', "description", "needs a value"),
    ],
)
def test_structure_errors(text, argument, fragment):
    assert fragment in str(error(text, argument))


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("checksun", "checksum"),
        ("hostnme", "hostname"),
        ("ssh_key", "ssh-key"),
        ("sha-256", "sha256"),
        ("diskgroup", "disk-group"),
        ("config_drive", "config-drive"),
        ("efi-boot-loader", "efi-bootloader"),
        ("headers", "header"),
    ],
)
def test_unknown_keys_suggest_the_nearest(key, suggestion):
    exc = error(f"{BASE} {key}=1", key)
    assert f"Did you mean `{suggestion}`?" in exc.problem


def test_unknown_key_without_a_near_one():
    exc = error(f"{BASE} zzzz=1", "zzzz")
    assert "Did you mean" not in exc.problem and "`checksum=`" in exc.expected


def test_error_message_reads_well_in_slack():
    exc = error(f"{BASE} checksum=sha256:{'a' * 40}", "checksum")
    assert str(exc).splitlines() == [
        "`checksum`: 40 hex digits is sha1, but you wrote sha256 (64 hex digits).",
        f"Expected: {exc.expected}",
        f"Example: `{exc.example}`",
    ]
    assert exc.example.startswith("/byoi deploy ") and "checksum=sha256:" in exc.example


def test_overlong_text_is_refused():
    error(f"{BASE} description=" + "<" * 9000, "text")


def test_user_text_in_errors_is_escaped_for_slack():
    exc = error("<!channel>", "command")
    assert "<!channel>" not in str(exc) and "&lt;!channel&gt;" in str(exc)


# ----------------------------------------------------------------------------- help and grammar


def test_grammar_fields_are_deploy_spec_fields_with_converters():
    spec_fields = {f.name for f in dataclasses.fields(DeploySpec)}
    fleet = {"fleet_pattern", "fleet_parallel", "fleet_canary", "fleet_stop"}
    assert {o.field for o in OPTIONS} - {"image"} - fleet <= spec_fields  # the catalog's, fleet
    assert set(commands.CONVERTERS) == {o.field for o in OPTIONS}
    assert len(all_keys()) == len(set(all_keys()))
    assert [o.name for o in OPTIONS if o.repeatable] == ["header", "metadata"]


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.name)
def test_every_option_example_parses_and_sets_its_field(option):
    for key in option.keys:
        example = option.example_command().replace(f"{option.name}=", f"{key}=", 1)
        command = parse(example.removeprefix("/byoi "), now=NOW)
        if option.field == "image":
            assert command.catalog.image == "debian-12"
            continue
        if option.field.startswith("fleet_"):
            assert command.fleet is not None and command.spec is not None
            continue
        assert getattr(command.spec, option.field) not in (None, ())


@pytest.mark.parametrize("topic", [None, "deploy"])
def test_help_lists_every_option_and_only_those(topic):
    text = help_text(topic)
    for key in all_keys():
        assert f"`{key}=" in text
    listed = set(re.findall(r"`([a-z0-9-]+)=", text))
    assert listed == set(all_keys())
    for key in listed:  # the parser accepts every key the help lists
        option = commands.BY_KEY[key]
        example = option.example_command().replace(f" {option.name}=", f" {key}=", 1)
        assert key in example
        parse(example.removeprefix("/byoi "), now=NOW)


def test_help_lists_every_subcommand():
    text = help_text()
    for command in SUBCOMMANDS:
        assert f"`/byoi {command.name}" in text
        assert command.name in usage_hint()


@pytest.mark.parametrize("topic", [c.name for c in SUBCOMMANDS] + all_keys())
def test_help_on_each_topic(topic):
    parsed = parse(f"help {topic}", now=NOW)
    assert isinstance(parsed, Help)
    text = help_text(parsed.topic)
    assert "Example: `/byoi " in text
    example = text.rsplit("Example: `", 1)[1].split("`")[0]
    if "…" not in example:
        parse(example.removeprefix("/byoi "), now=NOW)


def test_usage_hint_is_one_short_line():
    hint = usage_hint()
    assert "\n" not in hint and len(hint) < 200
    assert hint.startswith("deploy <server> <image-url>")


# ----------------------------------------------------------------------------- properties


def _round_trips(spec: DeploySpec) -> None:
    assert DeploySpec.from_public_dict(spec.public_dict(), spec.secrets()) == spec
    assert spec.image_type in IMAGE_TYPES
    if spec.checksum:
        assert len(spec.checksum.value) == CHECKSUM_LENGTHS[spec.checksum.type]


def _parse_or_error(text: str):
    try:
        command = parse(text, now=NOW)
    except CommandError as exc:
        assert str(exc) and exc.argument
        return None
    if isinstance(command, Deploy) and command.spec is not None:
        _round_trips(command.spec)
    return command


@examples(300)
@given(st.text())
def test_parse_raises_only_command_error_on_any_text(text):
    _parse_or_error(text)


@examples(300)
@given(st.sampled_from([c.name for c in SUBCOMMANDS]), st.text())
def test_parse_raises_only_command_error_after_any_subcommand(name, rest):
    _parse_or_error(f"{name} {rest}")


# What breaks tokenizers and number parsing: separators, quotes of every kind, digits that
# are not ASCII (str.isdigit accepts "²" and "١"), Slack markup and entities, and the
# grammar's own words.
TRICKY_PIECES = st.one_of(
    st.sampled_from(
        [*",=<>|&:;'\"“”„‘’‚«»²¹١０٣ .-/*?[]@\\\t\n", "&amp;", "&lt;", "&gt;", "ns1", "page"]
    ),
    st.sampled_from(["https://", "http://a.example/x.qcow2", "sha256:", "raid", "10:00"]),
    st.sampled_from([f"{key}=" for key in all_keys()]),
    st.from_regex(r"[0-9]{1,5}", fullmatch=True),
)


@examples(300)
@given(
    st.sampled_from(["deploy ", "deploy ns1,ns2 ", "list all page ", "status ", "help ", ""]),
    st.lists(TRICKY_PIECES, max_size=12).map("".join),
)
def test_parse_is_total_on_command_like_text(head, rest):
    _parse_or_error(head + rest)


QUOTES = st.sampled_from(['"{}"', "'{}'", "“{}”", "‘{}’", "{}", "<{}>", "<{}|label>", '"{}'])
VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from([o.example.split("=", 1)[1].strip('"') for o in OPTIONS]),
    st.sampled_from(["on", "off", "raw", "qcow2", "10:00", "a" * 64, "sha1:" + "b" * 40, "-1"]),
    st.from_regex(r"[a-z0-9-]{1,10}(\.[a-z0-9-]{1,10}){0,3}", fullmatch=True),
)


@st.composite
def grammar_commands(draw) -> str:
    """Commands built from the grammar: its keys (any alias, any case), mostly valid values,
    random quoting and order; sometimes a random value, a repeated field or a bogus key."""
    name = draw(st.sampled_from(["deploy", "DEPLOY", "deploy", "deploy", "status", "help"]))
    parts = draw(st.lists(st.sampled_from([SERVER, URL, f"<{URL}>", f"<{URL}|x>"]), max_size=3))
    options = draw(st.lists(st.sampled_from([*OPTIONS, None]), max_size=8))
    for option in options:
        if option is None:
            parts.append(f"bogus={draw(VALUES)}")
            continue
        key = draw(st.sampled_from(option.keys))
        key = key.upper() if draw(st.booleans()) else key
        value = option.example.split("=", 1)[1]
        if value.startswith('"'):
            value = draw(st.sampled_from(['"{}"', "“{}”", "'{}'"])).format(value.strip('"'))
        elif draw(st.booleans()):
            value = draw(QUOTES).format(draw(VALUES))
        parts.append(f"{key}={value}")
    return " ".join([name, *draw(st.permutations(parts))])


@examples(400)
@given(grammar_commands())
def test_structured_commands_raise_only_command_error_and_round_trip(text):
    _parse_or_error(text)


hosts = st.from_regex(
    r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?){0,3}", fullmatch=True
)
installed_hosts = st.from_regex(  # OVHcloud: each label starts with a letter
    r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?(\.[a-z]([a-z0-9-]{0,8}[a-z0-9])?){0,3}", fullmatch=True
)
header_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True)
header_values = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E),  # HTTP header values: ASCII
    min_size=1,
    max_size=20,
).filter(lambda v: not any(q in v for q in "\"“”„'‘’‚<>&:"))
free_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=40
).filter(lambda v: v.strip() == v and not any(q in v for q in '"“”„<>&'))


paths = st.from_regex(r"[a-z0-9_-]{1,12}", fullmatch=True)


@st.composite
def valid_specs(draw) -> DeploySpec:
    kind = draw(st.sampled_from(sorted(CHECKSUM_LENGTHS)))
    digest = draw(
        st.text(
            "0123456789abcdef", min_size=CHECKSUM_LENGTHS[kind], max_size=CHECKSUM_LENGTHS[kind]
        )
    )
    return DeploySpec(
        server=draw(hosts),
        image_url=f"https://{draw(hosts)}/{draw(paths)}"
        + draw(st.sampled_from([".qcow2", ".img", ".raw", ".bin"])),
        image_type=draw(st.sampled_from(IMAGE_TYPES)),
        checksum=draw(st.none() | st.just(Checksum(kind, digest))),
        disk_group=draw(st.none() | st.integers(0, 10**9 - 1)),
        hostname=draw(st.none() | installed_hosts),
        ssh_key=draw(st.none() | st.sampled_from(commands.SSH_KEY_TYPES).map(lambda k: ssh_key(k))),
        efi_bootloader=draw(
            st.none() | st.sampled_from([r"\efi\debian\grubx64.efi", "/EFI/x.efi"])
        ),
        description=draw(st.none() | free_text),
        headers=tuple(draw(st.lists(st.tuples(header_names, header_values), max_size=3))),
        config_drive=draw(st.none() | st.booleans()),
        at=draw(
            st.none()
            | st.datetimes(datetime(2027, 1, 1), datetime(2100, 1, 1)).map(
                lambda d: d.replace(tzinfo=UTC)
            )
        ),
    )


def command_text(spec: DeploySpec, draw) -> str:
    quote = draw(st.sampled_from(['"{}"', "“{}”"]))
    parts = [f"server={spec.server}", f"url=<{spec.image_url}>", f"type={spec.image_type}"]
    if spec.checksum:
        parts.append(
            draw(
                st.sampled_from(
                    [
                        f"checksum={spec.checksum.type}:{spec.checksum.value}",
                        f"checksum={spec.checksum.value.upper()}",
                        f"{spec.checksum.type}={spec.checksum.value}",
                    ]
                )
            )
        )
    optional = {
        "disk-group": spec.disk_group,
        "hostname": spec.hostname,
        "ssh-key": spec.ssh_key and quote.format(spec.ssh_key),
        "efi-bootloader": spec.efi_bootloader,
        "description": spec.description and quote.format(spec.description),
        "config-drive": {True: "on", False: "off", None: None}[spec.config_drive],
        "at": spec.at and spec.at.isoformat(),
    }
    parts += [f"{key}={value}" for key, value in optional.items() if value is not None]
    parts += [f'header="{name}: {value}"' for name, value in spec.headers]
    headers = [p for p in parts if p.startswith("header=")]
    others = draw(st.permutations([p for p in parts if not p.startswith("header=")]))
    return "deploy " + " ".join([*others, *headers])


@examples(200)
@given(valid_specs(), st.data())
def test_valid_specs_survive_the_command_text(spec, data):
    text = command_text(spec, data.draw)
    parsed = parse(text, now=NOW)
    assert parsed == Deploy(spec), text
    _round_trips(parsed.spec)


@examples(200)
@given(st.lists(st.sampled_from(all_keys()), max_size=4), VALUES, st.booleans())
def test_header_values_never_leak_into_errors(keys, value, unquoted):
    header = f"header=X-Key:{SECRET} {SECRET}" if unquoted else f'header="X-Key: {SECRET}"'
    text = f"deploy {SERVER} {header} " + " ".join(f"{k}={value}" for k in keys)
    try:
        parse(text, now=NOW)
    except CommandError as exc:
        assert SECRET not in str(exc)


@examples(100)
@given(valid_specs(), st.data())
def test_accepted_requests_round_trip_through_the_store(spec, data):
    from byoi_bot.core.request import Request
    from byoi_bot.core.states import State
    from byoi_bot.store import Store

    parsed = parse(command_text(spec, data.draw), now=NOW).spec
    store = Store(":memory:")
    request = Request(
        id="r-abcdef",
        spec=parsed.with_secrets(None),
        requester="U1",
        channel="C1",
        state=State.PENDING_APPROVAL,
        created_at=NOW,
        expires_at=NOW,
        fingerprint=parsed.fingerprint(),
    )
    store.create(request, parsed.secrets())
    again = store.get("r-abcdef")
    assert again == request
    assert again.spec.with_secrets(store.secrets("r-abcdef")) == parsed
    assert again.fingerprint == parsed.fingerprint()
    store.close()


@pytest.mark.parametrize("value", ["“quoted”", "café", "naïve-token"])
def test_header_values_must_be_ascii(value):
    exc = error(f"{BASE} header='X-Token: {value}'", "header")
    assert "plain ASCII" in str(exc) and value not in str(exc)


def test_errors_escape_syntax_so_slack_shows_it_literally():
    text = str(error("deploy ns1.example.net", "url"))
    assert "<server>" not in text and "<https://" not in text


# -- BYOLinux, config drive metadata, hardware RAID ------------------------------------------


def test_os_metadata_raid_and_automatic_disk_group():
    spec = parse(
        f'deploy {SERVER} https://x.example/img os=BYOLINUX metadata="role=web" '
        'metadata="tier=front end" raid=raid1 disk-group=0',
        now=NOW,
    ).spec
    assert (spec.os, spec.image_type, spec.raid, spec.disk_group) == ("byolinux", "qcow2", 1, 0)
    assert spec.metadata == (("role", "web"), ("tier", "front end"))
    assert parse(f"deploy {SERVER} {URL}", now=NOW).spec.os == "byoi"


@pytest.mark.parametrize(
    ("extra", "argument", "words"),
    [
        ("os=byolinux type=raw", "os", "qcow2 images only"),
        ("os=byolinux", "os", "qcow2 images only"),  # with a .raw URL below
        ("os=byolinux type=qcow2 efi-bootloader=x.efi", "os", "takes no `efi-bootloader=`"),
        ("os=windows", "os", "not byoi or byolinux"),
        ("raid=2", "raid", "not a hardware RAID level"),
        ("metadata=role", "metadata", "`key=value`"),
        ('metadata="=x"', "metadata", "`key=value`"),
    ],
)
def test_what_an_os_or_option_cannot_carry_is_refused_at_parse_time(extra, argument, words):
    with pytest.raises(CommandError) as caught:
        parse(f"deploy {SERVER} https://x.example/debian.raw {extra}", now=NOW)
    assert caught.value.argument == argument and words in str(caught.value)


def test_the_installed_hostname_follows_ovhclouds_rule():
    assert parse(f"deploy {SERVER} {URL} hostname=web-1.example.net", now=NOW).spec.hostname
    with pytest.raises(CommandError, match="start with a letter") as caught:
        parse(f"deploy {SERVER} {URL} hostname=1web", now=NOW)
    assert caught.value.argument == "hostname"

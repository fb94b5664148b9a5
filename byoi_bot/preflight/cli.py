"""`byoi-bot inspect <url>`: run preflight on an image from the terminal."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from typing import TextIO

from ..core.checks import Check, Severity
from ..core.ports import ImageReport, Provider, ProviderError, ServerFacts
from ..core.request import CHECKSUM_LENGTHS, IMAGE_TYPES, Checksum, DeploySpec, mask_url
from ..core.server_checks import server_checks
from .checksum import checksum_check
from .inspector import HttpImageInspector, format_size

EXIT_OK, EXIT_BLOCKING, EXIT_USAGE = 0, 1, 2
JSON_SCHEMA = "byoi-bot.inspect/1"  # docs/inspect.schema.json
_MARKS = {Severity.OK: "ok", Severity.WARNING: "WARNING", Severity.BLOCKING: "BLOCKING"}


class UsageError(ValueError):
    """A bad argument to `byoi-bot inspect`."""


def run_inspect(
    url: str,
    image_type: str | None = None,
    headers: Iterable[str | tuple[str, str]] = (),
    server: str | None = None,
    as_json: bool = False,
    provider: Provider | None = None,
    allowlist: str | Iterable[str] = (),
    out: TextIO | None = None,
    checksum: str | None = None,
    verify: bool = False,
) -> int:
    """Inspect `url` and print a report (text or one JSON object).

    Returns 0 when nothing blocks (warnings allowed), 1 when a check blocks, 2 on a usage
    error. `headers` are `"Name: value"` strings or pairs; `provider` gives the server facts
    when `server` is named. With `verify`, the whole image is streamed and hashed against
    `checksum` (`[<type>:]<hex>`), progress on standard error. The report goes to `out`
    (standard output by default).
    """
    out = out or sys.stdout
    try:
        spec = DeploySpec(
            server=server or "",
            image_url=url,
            image_type=_image_type(image_type),
            headers=tuple(_header(h) for h in headers),
            checksum=parse_checksum(checksum) if checksum else None,
        )
        if server and provider is None:
            raise UsageError("--server needs OVHcloud credentials (no provider configured)")
        if verify and spec.checksum is None:
            raise UsageError("--verify needs --checksum [<type>:]<hex>")
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    checks: list[Check] = []
    facts: ServerFacts | None = None
    if server and provider is not None:
        try:
            facts = provider.server_facts(server)
            checks += server_checks(facts)
        except ProviderError as exc:
            e = exc.explanation
            checks.append(Check("server", Severity.BLOCKING, f"{e.summary} {e.action}".strip()))
    inspector = HttpImageInspector(allowlist=allowlist)
    report = inspector.inspect(spec, facts)
    checks += report.checks
    if verify and not any(c.is_blocking for c in report.checks if c.name == "reachable"):
        check, verified = checksum_check(spec, inspector.guard, _progress_printer(sys.stderr))
        checks.append(check)
        report.facts.update(verified)
    if as_json:
        _print_json(url, facts, checks, report, out)
    else:
        _print_text(url, facts, checks, report, out)
    return EXIT_BLOCKING if any(c.is_blocking for c in checks) else EXIT_OK


def parse_checksum(text: str) -> Checksum:
    """`[<type>:]<hex>`; without a type, the type whose digest has that many hex digits."""
    stated, _, value = text.strip().rpartition(":")
    value, stated = value.lower(), stated.lower().replace("-", "") or None
    by_length = {n: kind for kind, n in CHECKSUM_LENGTHS.items()}
    kind = stated or by_length.get(len(value))
    if kind not in CHECKSUM_LENGTHS or not re.fullmatch(r"[0-9a-f]+", value):
        raise UsageError("--checksum must be [md5|sha1|sha256|sha512:]<hex digits>")
    if len(value) != CHECKSUM_LENGTHS[kind]:
        raise UsageError(f"a {kind} checksum has {CHECKSUM_LENGTHS[kind]} hex digits")
    return Checksum(kind, value)


def _progress_printer(stream: TextIO):
    def show(done: int, total: int | None) -> None:
        share = f"{done * 100 // total} %" if total else format_size(done)
        end = "\n" if total and done >= total else "\r"
        print(f"checksum: verifying… {share}", end=end, file=stream, flush=True)

    return show


def _image_type(value: str | None) -> str:
    if value is None:
        return ""
    if value not in IMAGE_TYPES:
        raise UsageError(f"--type must be one of {', '.join(IMAGE_TYPES)} (got {value!r})")
    return value


def _header(value: str | tuple[str, str]) -> tuple[str, str]:
    if isinstance(value, tuple):
        return value
    name, sep, rest = value.partition(":")
    if not sep or not name.strip() or " " in name.strip():
        raise UsageError('--header must look like "Name: value", e.g. "Authorization: Bearer …"')
    return name.strip(), rest.strip()


def _verdict(checks: list[Check]) -> str:
    severities = {c.severity for c in checks}
    for severity in (Severity.BLOCKING, Severity.WARNING):
        if severity in severities:
            return str(severity)
    return str(Severity.OK)


def _print_json(url, facts, checks, report: ImageReport, out: TextIO) -> None:
    data = {
        "schema": JSON_SCHEMA,
        "url": mask_url(url),
        "verdict": _verdict(checks),
        "checks": [c.to_dict() for c in checks],
        "image": report.facts,
        "server": facts.to_dict() if facts else None,
    }
    print(json.dumps(data, indent=2, default=str), file=out)


def _print_text(url, facts, checks, report: ImageReport, out: TextIO) -> None:
    f = report.facts
    lines = [f"Image   {mask_url(url)}"]
    if f.get("format"):
        declared = f" (declared {f['declared_type']})" if f.get("declared_type") else ""
        lines.append(
            f"        {f['format']}{declared}, download {format_size(f.get('download_size'))}, "
            f"virtual {format_size(f.get('virtual_size'))}"
        )
    if f.get("partition_table"):
        esp = "EFI System Partition" if f.get("has_esp") else "no EFI System Partition"
        sectors = " (4096-byte sectors)" if f.get("sector_size") == 4096 else ""
        lines.append(f"        {f['partition_table'].upper()}{sectors}, {esp}")
    if f.get("efi_bootloader"):
        others = [b for b in f.get("efi_bootloaders", []) if b != f["efi_bootloader"]]
        also = f" (also: {', '.join(others)})" if others else ""
        lines.append(f"        EFI bootloader {f['efi_bootloader']}{also}")
    lines.append(f"        read {f['requests']} request(s), {format_size(f['bytes_read'])}")
    if facts:
        lines.append(
            f"Server  {facts.name} ({facts.datacenter}), state {facts.state}, "
            f"boot {facts.boot_mode}, CPU {facts.architecture or 'unknown'}, "
            f"RAM {format_size(facts.ram_bytes)}"
        )
    lines.append("Checks")
    width = max(len(c.name) for c in checks)
    for check in checks:
        lines.append(f"  {_MARKS[check.severity]:<8}  {check.name:<{width}}  {check.message}")
    lines.append(f"Verdict: {_verdict(checks)}")
    print("\n".join(lines), file=out)

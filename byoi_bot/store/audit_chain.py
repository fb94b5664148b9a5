"""The audit trail as a hash chain: every row carries the hash of the row before it.

A row's `hash` is SHA-256 over a canonical encoding of its fields and `prev_hash` (JSON with
sorted keys, no spaces, UTF-8; times in UTC ISO 8601; an empty text counts as none), so
editing, deleting, inserting or reordering a row breaks the chain at that row. Both stores
extend the chain in the transaction that writes the row, holding the store's write lock
(SQLite's `BEGIN IMMEDIATE`, PostgreSQL's `pg_advisory_xact_lock`), so two replicas never
fork it.

`export` writes rows with their hashes as JSON lines or CSV; `verify` recomputes the chain
over rows from a store or an export and names the first row that does not fit.

>>> a = seal({"request_id": "r-1", "at": "2026-12-04T10:00:00+00:00", "actor": "U1",
...           "action": "created", "from_state": None, "to_state": "pending_approval",
...           "reason": "requested"}, GENESIS)
>>> verify([a]).ok
True
>>> verify([a | {"reason": "edited"}]).first_bad == 1
True
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

GENESIS = "0" * 64  # the `prev_hash` of the first row
FIELDS = ("request_id", "at", "actor", "action", "from_state", "to_state", "reason")
EXPORT_FIELDS = ("id", *FIELDS, "prev_hash", "hash")


def at_text(value: str | datetime) -> str:
    """A row's time as the chain hashes it: UTC, ISO 8601."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.astimezone(UTC).isoformat()


def row_hash(row: dict, prev_hash: str) -> str:
    """The hash of `row` (its `FIELDS`) chained to `prev_hash`."""
    data = {k: row.get(k) or None for k in FIELDS}  # an empty text and none are one
    data |= {"at": at_text(row["at"]), "prev_hash": prev_hash}
    payload = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def seal(row: dict, prev_hash: str) -> dict:
    """`row` with its `prev_hash` and `hash`, ready to insert."""
    return row | {"prev_hash": prev_hash, "hash": row_hash(row, prev_hash)}


@dataclass(frozen=True)
class Verdict:
    """What `verify` found: how many rows fit, and the first one that does not."""

    rows: int
    first_bad: int | None = None  # the row's `id` (its line number for an export without ids)
    why: str = ""

    @property
    def ok(self) -> bool:
        return self.first_bad is None

    def describe(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.rows} row(s), every hash fits"
        fit = f"{self.rows} row(s) fit before it"
        return f"audit chain broken at row {self.first_bad}: {self.why} ({fit})"


def verify(rows: Iterable[dict], *, anchor: str | None = GENESIS) -> Verdict:
    """Recompute the chain over `rows` (oldest first). With `anchor` None (an export that
    starts mid-chain), the first row's `prev_hash` is taken on trust."""
    expected = anchor
    count = 0
    for number, row in enumerate(rows, 1):
        where = row.get("id") or number
        prev = row.get("prev_hash")
        if expected is not None and prev != expected:
            why = "its prev_hash is not the hash of the row before it (a row was removed, "
            why += "inserted or moved)" if prev else "it has no hash (written outside the bot)"
            return Verdict(count, int(where), why)
        if row.get("hash") != row_hash(row, prev or ""):
            return Verdict(count, int(where), "its content does not match its hash (edited)")
        expected = row["hash"]
        count += 1
    return Verdict(count)


def export(rows: Iterable[dict], out: TextIO, fmt: str) -> int:
    """Write `rows` with their hashes to `out` as `jsonl` or `csv`; return how many."""
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, extrasaction="ignore")
        writer.writeheader()
    for row in rows:
        clean = {k: row.get(k) for k in EXPORT_FIELDS} | {"at": at_text(row["at"])}
        if fmt == "csv":
            writer.writerow({k: "" if v is None else v for k, v in clean.items()})
        else:
            out.write(json.dumps(clean, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    return count


def read_export(text: str) -> Iterator[dict]:
    """The rows of an export written by `export` (format told by its first character);
    raises `ValueError` naming the first line that is not an audit row."""
    if text.lstrip().startswith("{"):
        lines = (line for line in text.splitlines() if line.strip())
        rows = (json.loads(line) for line in lines)
    else:
        rows = ({k: v or None for k, v in row.items()} for row in csv.DictReader(io.StringIO(text)))
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise ValueError(f"row {number} is not an object")
        missing = [k for k in ("at", "action", "prev_hash", "hash") if not row.get(k)]
        if missing:
            raise ValueError(f"row {number} has no {', '.join(missing)}")
        yield row

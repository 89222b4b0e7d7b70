"""A bench store's chain as the clinic store receives it: its links after a point, in order, each with its
canonical content exactly as hashed, and a closed record's telemetry as the lines its closing hashed.

Reads the bench's SQLite store only (`ionctl.records.chain` defines what each link hashes); knows nothing of
PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ionctl.records.chain import (
    AUDIT_FIELDS,
    COURSE_FIELDS,
    EVENT_FIELDS,
    TELEMETRY_FIELDS,
    canonical,
    closing,
    opening,
)


@dataclass(frozen=True)
class Link:
    """One link of a bench's chain: its place, kind, canonical content (what was hashed) and stored hash.
    `record_id` is the record a closing closes (its telemetry travels with it)."""

    gseq: int
    kind: str  # open, close, event, audit, course
    content: str
    hash: str
    record_id: int | None = None


def links_after(db: sqlite3.Connection, after: int, limit: int) -> list[Link]:
    """Up to `limit` links with gseq > `after`, in gseq order (one indexed range query per table)."""
    found: list[Link] = []
    for row in db.execute("SELECT * FROM records WHERE open_gseq > ? ORDER BY open_gseq LIMIT ?", (after, limit)):
        r = dict(row)
        found.append(Link(r["open_gseq"], "open", canonical(opening(r)), r["open_hash"]))
    for row in db.execute("SELECT * FROM records WHERE close_gseq > ? ORDER BY close_gseq LIMIT ?", (after, limit)):
        r = dict(row)
        found.append(Link(r["close_gseq"], "close", canonical(closing(r)), r["chain_hash"], int(r["id"])))
    for table, kind, fields in (("events", "event", EVENT_FIELDS), ("audit", "audit", AUDIT_FIELDS),
                                ("courses", "course", COURSE_FIELDS)):  # fmt: skip
        for row in db.execute(f"SELECT * FROM {table} WHERE gseq > ? ORDER BY gseq LIMIT ?", (after, limit)):
            r = dict(row)
            found.append(Link(r["gseq"], kind, canonical({k: r[k] for k in fields}), r["chain_hash"]))
    found.sort(key=lambda link: link.gseq)
    return found[:limit]


def link_at(db: sqlite3.Connection, gseq: int) -> Link | None:
    """The link at `gseq`, or None."""
    found = links_after(db, gseq - 1, 1)
    return found[0] if found and found[0].gseq == gseq else None


def telemetry_lines(db: sqlite3.Connection, record_id: int) -> Iterator[str]:
    """A record's samples in the order its closing hashed them, each its canonical line (no newline)."""
    columns = ", ".join(TELEMETRY_FIELDS)
    for row in db.execute(f"SELECT {columns} FROM telemetry WHERE record_id = ? ORDER BY rowid", (record_id,)):
        yield canonical(dict(zip(TELEMETRY_FIELDS, tuple(row), strict=True)))


def sample(line: str) -> dict[str, Any]:
    """A telemetry line back as the sample it was."""
    import json

    return dict(json.loads(line))

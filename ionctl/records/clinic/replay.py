"""A bench's chain in the clinic store, replayed into a SQLite `Store` of the bench's own schema.

The clinic keeps each link as the canonical content its bench hashed (`ionctl.records.clinic.schema`). Replayed
link by link in chain order into an empty local store (an opening is a `records` row with its opening hash, an
event an `events` row, an audit entry an `audit` row, a course a `courses` row, a closing the record's telemetry
then the UPDATE of its closing columns and chain hash), the bench's chain becomes a store like the bench's own: so
everything that reads a store (`Store.get`, the exports and the chart page, `Store.verify`, the signatures'
check in `ionctl.config.verification`) reads a bench's records from the clinic unchanged.

The replay refuses what a store could not have produced (a link out of sequence, content that is not the
canonical form of exactly its kind's fields, numbered otherwise than its place), and stops at the first such
link: `Replayed.broken` names it. The hashes themselves are left to `Store.verify`, as for a bench's own store.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ionctl.records.chain import (
    AUDIT_FIELDS,
    CLOSE_FIELDS,
    COURSE_FIELDS,
    EVENT_FIELDS,
    OPEN_FIELDS,
    OPEN_FIELDS_LATER,
    TELEMETRY_FIELDS,
    BrokenLink,
    canonical,
)
from ionctl.records.clinic.schema import SCHEMA
from ionctl.records.store import Store

#: The columns of each kind of link (the opening's schema-2 fields are there only when set).
_FIELDS = {"event": EVENT_FIELDS, "audit": AUDIT_FIELDS, "course": COURSE_FIELDS,
           "close": ("id", "open_hash", *CLOSE_FIELDS)}  # fmt: skip
_TABLE = {"event": "events", "audit": "audit", "course": "courses"}
_NUMBERED = {"open": "open_gseq", "close": "close_gseq"}  # else "gseq"
#: Links fetched from the server per round trip (a server-side cursor: a long chain never sits in memory).
FETCH = 2000


@dataclass
class Replayed:
    """A bench's chain replayed: the store, the number of links and samples replayed, and the first link that
    could not be (None: every link the clinic holds for the bench is in the store)."""

    bench: str
    store: Store
    links: int = 0
    samples: int = 0
    broken: BrokenLink | None = None


def replay(clinic: Any, bench: str, path: Path, *, telemetry_of: frozenset[int] | None = None) -> Replayed:
    """Replay `bench`'s chain from the clinic connection `clinic` into a new store at `path` (which must not
    exist). `telemetry_of`: load only these records' telemetry (None: every record's). Every link is replayed
    either way (a record's addenda, its course and the chain's head stay right); a store replayed without some
    telemetry reads those records' samples as empty, so only a full replay is verified. psycopg errors pass
    through (the caller says the clinic could not be read)."""
    if path.exists():
        raise FileExistsError(path)
    store = Store(path)
    store.db.execute("PRAGMA synchronous=OFF")  # a throwaway copy: nothing to make durable
    done = Replayed(bench, store)
    lines = clinic.cursor()
    with clinic.transaction(), clinic.cursor(name="ionctl_replay") as links:
        links.itersize = FETCH
        links.execute(f"SELECT gseq, kind, content, hash FROM {SCHEMA}.links WHERE bench = %s ORDER BY gseq",
                      (bench,))  # fmt: skip
        store.db.execute("BEGIN")
        try:
            for gseq, kind, content, stored in links:
                problem = _replay_one(store.db, lines, bench, int(gseq), str(kind), str(content), str(stored),
                                      done, telemetry_of)  # fmt: skip
                if problem is not None:
                    done.broken = BrokenLink(int(gseq), f"{kind} link", problem)
                    break
                done.links += 1
        finally:
            store.db.execute("COMMIT")
    return done


def _replay_one(db: sqlite3.Connection, lines: Any, bench: str, gseq: int, kind: str, content: str, stored: str,
                done: Replayed, telemetry_of: frozenset[int] | None) -> str | None:  # fmt: skip
    """Insert one link; why it cannot be (None: it is in)."""
    if gseq != done.links + 1:
        return f"out of sequence: expected link {done.links + 1} (a link is missing from the clinic store)"
    try:
        doc = json.loads(content)
    except ValueError:
        return "its content is not JSON"
    if not isinstance(doc, dict):
        return "its content is not a JSON object"
    if canonical(doc) != content:
        return "its content is not in the canonical form it was hashed in"
    expected = _expected_fields(kind, doc)
    if expected is None:
        return f"unknown kind {kind!r}"
    if set(doc) != set(expected):
        return f"its content has the fields {sorted(doc)}, not a {kind} link's {sorted(expected)}"
    if doc[_NUMBERED.get(kind, "gseq")] != gseq:
        return f"its content is numbered {doc[_NUMBERED.get(kind, 'gseq')]!r}, not {gseq}"
    try:
        if kind == "close":
            record_id = int(doc["id"])
            if telemetry_of is None or record_id in telemetry_of:
                done.samples += _telemetry(db, lines, bench, record_id)
            sets = ", ".join(f"{k} = ?" for k in CLOSE_FIELDS)
            changed = db.execute(
                f"UPDATE records SET {sets}, chain_hash = ? WHERE id = ? AND open_hash = ?",
                [doc[k] for k in CLOSE_FIELDS] + [stored, record_id, doc["open_hash"]],
            ).rowcount
            if changed != 1:
                return f"it closes record {record_id}, which has no opening with that hash before it"
        else:
            table, hashed = ("records", "open_hash") if kind == "open" else (_TABLE[kind], "chain_hash")
            marks = ", ".join("?" * len(expected))
            db.execute(f"INSERT INTO {table} ({', '.join(expected)}, {hashed}) VALUES ({marks}, ?)",
                       [doc[k] for k in expected] + [stored])  # fmt: skip
    except (sqlite3.DatabaseError, KeyError, TypeError, ValueError) as exc:
        return f"a store would not take it: {exc}"
    return None


def _expected_fields(kind: str, doc: dict[str, Any]) -> tuple[str, ...] | None:
    if kind == "open":
        return (*OPEN_FIELDS, *(k for k in OPEN_FIELDS_LATER if doc.get(k) is not None))
    return _FIELDS.get(kind)


def _telemetry(db: sqlite3.Connection, lines: Any, bench: str, record_id: int) -> int:
    """Insert a record's samples, in the order its closing hashed them; how many."""
    lines.execute(f"SELECT line FROM {SCHEMA}.telemetry WHERE bench = %s AND record_id = %s ORDER BY n",
                  (bench, record_id))  # fmt: skip
    rows = []
    for (line,) in lines:
        sample = json.loads(line)
        rows.append((record_id, *(sample[k] for k in TELEMETRY_FIELDS)))
    db.executemany(f"INSERT INTO telemetry (record_id, {', '.join(TELEMETRY_FIELDS)}) "
                   f"VALUES (?{', ?' * len(TELEMETRY_FIELDS)})", rows)  # fmt: skip
    return len(rows)

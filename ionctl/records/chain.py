"""The record store's hash chain (21 CFR 11.10(e) audit trail): what each link hashes, and its verification.

The chain is global, in insertion order (`gseq`): a record's opening, each event, a record's closing, each
audit entry and each course are links; each link's hash is SHA-256 over the previous link's hash and the link's
canonical content (sorted-key compact JSON). At closing, the SHA-256 of the record's telemetry is part of the
closed record's hashed content, so a telemetry edit after closing breaks the chain too. `verify` recomputes
the chain and returns the first broken link.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64

# The opening columns (hashed at opening) and the closing columns (hashed at closing).
OPEN_FIELDS = ("id", "created_utc", "patient", "operator", "prescription", "limits", "limits_sha256", "open_gseq")
#: Opening columns added in schema 2: hashed only when not NULL, so records opened under schema 1 still verify.
OPEN_FIELDS_V2 = ("config_sha256", "course_id")
#: Added in schema 3: another bench's course a session belongs to ("bench-a/3"); hashed only when not NULL.
OPEN_FIELDS_V3 = ("course_ref",)
#: Added in schema 4: the chart details (treatment site, drug concentration and volume, prescriber, electrode
#: product; `ionctl.records.clinical`), canonical JSON; hashed only when not NULL.
OPEN_FIELDS_V4 = ("clinical",)
#: Every opening column added after schema 1, hashed only when set.
OPEN_FIELDS_LATER = (*OPEN_FIELDS_V2, *OPEN_FIELDS_V3, *OPEN_FIELDS_V4)
CLOSE_FIELDS = (
    "outcome", "fault", "message", "device", "dose_ma_min", "dose_source", "host_dose_ma_min",
    "device_dose_ma_min", "prescribed_dose_ma_min", "duration_s", "peak_current_ma", "peak_density_ma_cm2",
    "time_at_compliance_s", "impedance_start_ohm", "impedance_end_ohm", "impedance_min_ohm", "impedance_max_ohm",
    "energised", "alarm", "ended_utc", "telemetry_count", "telemetry_sha256", "close_gseq",
)  # fmt: skip
EVENT_FIELDS = ("record_id", "seq", "utc", "device_t_s", "kind", "text", "gseq")
TELEMETRY_FIELDS = ("t_s", "set_ma", "current_ma", "voltage_v", "impedance_ohm", "dose_ma_min",
                    "device_dose_ma_min", "at_compliance", "state")  # fmt: skip
AUDIT_FIELDS = ("seq", "utc", "actor", "action", "record_id", "course_id", "detail", "gseq")
COURSE_FIELDS = ("id", "created_utc", "patient", "operator", "preset", "sessions", "per_week", "min_interval_days",
                 "plan", "config_sha256", "gseq")  # fmt: skip


def canonical(content: dict[str, Any]) -> str:
    """The hashed form of a link's content: sorted keys, no spaces, floats as Python's repr."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def link_hash(previous: str, kind: str, content: dict[str, Any]) -> str:
    return hashlib.sha256(f"{previous}\n{kind}\n{canonical(content)}".encode()).hexdigest()


def opening(row: dict[str, Any]) -> dict[str, Any]:
    """The hashed content of a record's opening: the schema-1 fields, and the later ones that are set."""
    content = {k: row[k] for k in OPEN_FIELDS}
    content.update({k: row[k] for k in OPEN_FIELDS_LATER if row.get(k) is not None})
    return content


def head(db: sqlite3.Connection) -> tuple[int, str]:
    """(gseq, hash) of the last link, inside the caller's write transaction."""
    best = (0, GENESIS)
    for sql in ("SELECT open_gseq, open_hash FROM records ORDER BY open_gseq DESC LIMIT 1",
                "SELECT close_gseq, chain_hash FROM records WHERE close_gseq IS NOT NULL "
                "ORDER BY close_gseq DESC LIMIT 1",
                "SELECT gseq, chain_hash FROM events ORDER BY gseq DESC LIMIT 1",
                "SELECT gseq, chain_hash FROM audit ORDER BY gseq DESC LIMIT 1",
                "SELECT gseq, chain_hash FROM courses ORDER BY gseq DESC LIMIT 1"):  # fmt: skip
        row = db.execute(sql).fetchone()
        if row is not None and row[0] > best[0]:
            best = (int(row[0]), str(row[1]))
    return best


def first_link(db: sqlite3.Connection) -> str | None:
    """The stored hash of link 1, or None for an empty chain: the store's own identity (it depends on the
    store's first content, whatever the file is called or wherever it is copied). One lookup per table, each on
    its UNIQUE gseq index, never a walk of the chain."""
    for sql in ("SELECT open_hash FROM records WHERE open_gseq = 1",
                "SELECT chain_hash FROM records WHERE close_gseq = 1",
                "SELECT chain_hash FROM events WHERE gseq = 1",
                "SELECT chain_hash FROM audit WHERE gseq = 1",
                "SELECT chain_hash FROM courses WHERE gseq = 1"):  # fmt: skip
        row = db.execute(sql).fetchone()
        if row is not None and row[0] is not None:
            return str(row[0])
    return None


def closing(row: dict[str, Any]) -> dict[str, Any]:
    """The hashed content of a record's closing."""
    return {"id": row["id"], "open_hash": row["open_hash"], **{k: row[k] for k in CLOSE_FIELDS}}


def record_digest(db: sqlite3.Connection, record_id: int) -> str | None:
    """The SHA-256 of a closed record's content (its opening and closing, the telemetry's digest included) as
    it is now: what a sign-off signs (21 CFR 11.70), so a signature cannot be moved to another record or survive
    an edit of this one. None for no such record, or one still open."""
    row = db.execute("SELECT * FROM records WHERE id = ?", (record_id,)).fetchone()
    if row is None or row["outcome"] is None:
        return None
    r = dict(row)
    count, telemetry = telemetry_digest(db, record_id)
    content = {"opening": opening(r), "closing": closing(r), "telemetry": [count, telemetry]}
    return hashlib.sha256(canonical(content).encode()).hexdigest()


def link_hashes(db: sqlite3.Connection) -> dict[int, str]:
    """Every link's stored hash by its place in the chain (`gseq`)."""
    return {gseq: stored for gseq, _what, _kind, _content, stored in _links(db) if stored is not None}


def telemetry_digest(db: sqlite3.Connection, record_id: int) -> tuple[int, str]:
    """(count, SHA-256) of a record's telemetry, as its closing hashes it."""
    h = hashlib.sha256()
    count = 0
    for row in db.execute(f"SELECT {', '.join(TELEMETRY_FIELDS)} FROM telemetry WHERE record_id = ? "
                          "ORDER BY rowid", (record_id,)):  # fmt: skip
        h.update((canonical(dict(zip(TELEMETRY_FIELDS, tuple(row), strict=True))) + "\n").encode())
        count += 1
    return count, h.hexdigest()


@dataclass(frozen=True)
class BrokenLink:
    """The first link of the chain that does not verify."""

    gseq: int | None
    what: str  # e.g. "record 3 (opening)", "event 3/7"
    reason: str

    def __str__(self) -> str:
        at = f"link {self.gseq}: " if self.gseq is not None else ""
        return f"{at}{self.what}: {self.reason}"


def _links(db: sqlite3.Connection) -> Iterator[tuple[int, str, str, dict[str, Any], str | None]]:
    """(gseq, what, kind, content, stored hash) of every link, in gseq order."""
    links: list[tuple[int, str, str, dict[str, Any], str | None]] = []
    for row in db.execute("SELECT * FROM records"):
        r = dict(row)
        links.append((r["open_gseq"], f"record {r['id']} (opening)", "open", opening(r), r["open_hash"]))
        if r["close_gseq"] is not None or r["outcome"] is not None:
            content = closing(r)
            links.append((r["close_gseq"] if r["close_gseq"] is not None else -1,
                          f"record {r['id']} (closing)", "close", content, r["chain_hash"]))  # fmt: skip
    for row in db.execute("SELECT * FROM events"):
        e = dict(row)
        links.append((e["gseq"], f"event {e['record_id']}/{e['seq']}", "event",
                      {k: e[k] for k in EVENT_FIELDS}, e["chain_hash"]))  # fmt: skip
    for row in db.execute("SELECT * FROM audit"):
        a = dict(row)
        links.append((a["gseq"], f"audit entry {a['seq']} ({a['action']})", "audit",
                      {k: a[k] for k in AUDIT_FIELDS}, a["chain_hash"]))  # fmt: skip
    for row in db.execute("SELECT * FROM courses"):
        c = dict(row)
        links.append((c["gseq"], f"course {c['id']}", "course", {k: c[k] for k in COURSE_FIELDS},
                      c["chain_hash"]))  # fmt: skip
    links.sort(key=lambda link: link[0])
    return iter(links)


def verify(db: sqlite3.Connection) -> BrokenLink | None:
    """Walk the chain in insertion order; the first link that does not verify, or None."""
    previous, expected_gseq = GENESIS, 1
    for gseq, what, kind, content, stored in _links(db):
        if gseq != expected_gseq:
            return BrokenLink(gseq, what, f"out of sequence: expected link {expected_gseq} (a link is missing, "
                                          "or a sequence number was changed)")  # fmt: skip
        if kind == "close":
            count, digest = telemetry_digest(db, int(content["id"]))
            if (count, digest) != (content["telemetry_count"], content["telemetry_sha256"]):
                return BrokenLink(
                    gseq,
                    what,
                    f"its telemetry no longer matches the closed record's SHA-256 "
                    f"({count} samples now, {content['telemetry_count']} at closing)",
                )
        computed = link_hash(previous, kind, content)
        if stored != computed:
            return BrokenLink(gseq, what, f"hash mismatch: stored {stored}, content gives {computed}")
        previous, expected_gseq = computed, expected_gseq + 1
    return None

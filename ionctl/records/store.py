"""The session record store: SQLite, append-only, hash-chained (21 CFR 11.10(e) audit trail).

One file (default `platformdirs.user_data_dir("ionctl")/records.sqlite3`) in WAL mode with
`synchronous=FULL`. Three tables:

- `records`: one row per session (refused ones too), inserted when the prescription has been validated
  (the *opening*: patient, operator, prescription, limits and their SHA-256) and updated exactly once when
  the session ends (the *closing*: outcome, doses, device, summary). Triggers refuse every other UPDATE and
  every DELETE.
- `events`: the state timeline, faults and notes, appended as they happen; never updated or deleted.
- `audit` (schema 2): who did what outside a session's own timeline: configuration approvals and changes,
  supervisor PIN changes and refusals, course overrides, and addenda to a record (`append_addendum`: skin
  checks, adverse reactions, notes, corrections naming the addendum they correct), which may follow a closed
  record the way a chart addendum follows a note. A record whose session energised the patient and has no skin
  check after it is pending (`pending_skin_checks`): the patient's next session waits for it.
- `courses` (schema 2): treatment courses; a record names its course in `course_id`, or, for a session of
  another bench's course, in `course_ref` ("bench-a/3", schema 3: the clinic-wide name).
- `telemetry`: every sample, appended in batches (at most `FLUSH_EVERY_S` of host time at risk); never
  updated or deleted, and refused for a closed record. At closing, the SHA-256 of the record's telemetry is
  part of the closed record's hashed content, so a telemetry edit after closing breaks the chain too.

The hash chain (`ionctl.records.chain`) is global, in insertion order: a record's opening, each event, a
record's closing, each audit entry and each course are links. `verify()` recomputes it and returns the first
broken link. The schema and its migrations are `ionctl.records.schema`; a closing is a typed `RecordSummary`
(`ionctl.records.summary`).

Imports only the standard library (and platformdirs for the default path) and `ionctl.records.skin` (the typed
addenda): never the session or the CLI.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from ionctl.records.chain import (
    AUDIT_FIELDS,
    CLOSE_FIELDS,
    COURSE_FIELDS,
    EVENT_FIELDS,
    GENESIS,
    OPEN_FIELDS,
    OPEN_FIELDS_LATER,
    OPEN_FIELDS_V2,
    OPEN_FIELDS_V3,
    OPEN_FIELDS_V4,
    TELEMETRY_FIELDS,
    BrokenLink,
    canonical,
    first_link,
    head,
    link_hash,
    link_hashes,
    opening,
    record_digest,
    telemetry_digest,
)
from ionctl.records.chain import verify as verify_chain
from ionctl.records.errors import StoreError, StoreMissing
from ionctl.records.rows import RecordRow
from ionctl.records.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from ionctl.records.skin import ADDENDUM_KINDS, SKIN_CHECK_AFTER, Addendum
from ionctl.records.summary import RecordSummary

__all__ = [  # what callers import from here, wherever it is defined
    "AUDIT_FIELDS", "CLOSE_FIELDS", "COURSE_FIELDS", "EVENT_FIELDS", "FLUSH_EVERY_S", "GENESIS", "MIGRATIONS",
    "OPEN_FIELDS", "OPEN_FIELDS_V2", "OPEN_FIELDS_V3", "OPEN_FIELDS_V4", "SCHEMA_VERSION", "TELEMETRY_FIELDS",
    "BrokenLink", "Record", "RecordSummary", "SessionWriter", "Store", "StoreError", "StoreMissing", "canonical",
    "default_path", "link_hash", "migrate", "utc_now",
]  # fmt: skip

#: Telemetry is committed at least this often (host seconds) while samples arrive: < 1 s at risk.
FLUSH_EVERY_S = 0.5
OPEN = None  # the outcome of a record whose session has not ended

FORMAT = "ionctl.record"

EVENT_KINDS = ("state", "fault", "note")


def default_path() -> Path:
    """`records.sqlite3` in the user data directory (created on first use)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("ionctl")) / "records.sqlite3"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _json(value: Any) -> str | None:
    return None if value is None else canonical(value)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


# -- what a record is -----------------------------------------------------------------------------------------


@dataclass
class Record:
    """One stored record with its events and telemetry (the JSON export's content)."""

    fields: RecordRow
    events: list[dict[str, Any]] = field(default_factory=list)
    telemetry: list[dict[str, Any]] = field(default_factory=list)
    addenda: list[dict[str, Any]] = field(default_factory=list)  # audit entries about it (skin checks, ...)

    @property
    def id(self) -> int:
        return int(self.fields["id"])

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "schema_version": SCHEMA_VERSION, "record": self.fields, "events": self.events,
                "telemetry": self.telemetry, "addenda": self.addenda}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        if data.get("format") != FORMAT:
            raise StoreError(f"not an ionctl record export (format {data.get('format')!r})")
        version = data.get("schema_version")
        if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
            raise StoreError(f"record export schema version {version!r}, expected 1 to {SCHEMA_VERSION}")
        return cls(
            cast(RecordRow, dict(data["record"])),
            list(data["events"]),
            list(data["telemetry"]),
            list(data.get("addenda", [])),
        )


# -- the store --------------------------------------------------------------------------------------------------


class Store:
    """A records file. One connection; not shared between threads. `create=False` (what a command that only
    reads uses) opens an existing file or raises `StoreMissing`, never leaving a file or directory behind."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, create: bool = True) -> None:
        self.path = Path(path) if path is not None else default_path()
        if create:
            _private_file(self.path)
        elif not self.path.is_file():
            raise StoreMissing(self.path)
        try:
            # mode=rw: SQLite itself refuses to create the file (no window between the check above and here)
            target: Any = self.path if create else f"{self.path.resolve().as_uri()}?mode=rw"
            self.db = sqlite3.connect(target, isolation_level=None, timeout=10.0, uri=not create)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            migrate(self.db)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable records file: {exc}") from exc
        _drop_other_access(self.path)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self) -> _Tx:
        return _Tx(self.db)

    # -- writing ----------------------------------------------------------------------------------------------

    def open_record(self, *, patient: str, operator: str, prescription: dict[str, Any], limits: dict[str, Any],
                    limits_sha256: str, created_utc: str | None = None, config_sha256: str | None = None,
                    course_id: int | None = None, course_ref: str | None = None, clinical: dict[str, Any] | None = None,
                    before_commit: Callable[[int], None] | None = None) -> int:  # fmt: skip
        """Insert a record's opening (durable on return); its id. `config_sha256` is the site configuration
        in force, `course_id` the treatment course the session belongs to (`course_ref`: another bench's course,
        "bench-a/3"); `clinical` the chart details (`ClinicalDetails.to_dict()`: treatment site, drug concentration and
        volume, prescriber, electrode product). `before_commit(id)` runs inside the
        write transaction (the session takes its liveness lock there, before any other process can see it)."""
        with self._write():
            gseq, previous = head(self.db)
            (next_id,) = self.db.execute("SELECT coalesce(max(id), 0) + 1 FROM records").fetchone()
            if before_commit is not None:
                before_commit(int(next_id))
            row = {"id": int(next_id), "created_utc": created_utc or utc_now(), "patient": patient,
                   "operator": operator, "prescription": _json(prescription), "limits": _json(limits),
                   "limits_sha256": limits_sha256, "open_gseq": gseq + 1, "config_sha256": config_sha256,
                   "course_id": course_id, "course_ref": course_ref,
                   "clinical": _json(clinical) if clinical else None}  # fmt: skip
            digest = link_hash(previous, "open", opening(row))
            columns = (*OPEN_FIELDS, *OPEN_FIELDS_LATER)
            self.db.execute(
                f"INSERT INTO records ({', '.join(columns)}, open_hash) VALUES ({', '.join('?' * len(columns))}, ?)",
                [row[k] for k in columns] + [digest],
            )
        return int(next_id)

    def append_audit(self, action: str, actor: str, detail: dict[str, Any], *, record_id: int | None = None,
                     course_id: int | None = None, utc: str | None = None,
                     guard: Callable[[], None] | None = None) -> int:  # fmt: skip
        """Append an audit entry (durable on return); its sequence number. `action` says what happened
        (`config-approve`, `skin-check-after`, ...), `actor` who did it; `detail` is any JSON object. `guard`
        runs inside the write transaction, before the entry is written: what it reads cannot change until the
        entry is in, and an exception it raises writes nothing (a login attempt counted atomically with the
        lockout check, whatever other processes try at the same time)."""
        if not action or not actor:
            raise ValueError("an audit entry needs an action and an actor")
        with self._write():
            if guard is not None:
                guard()
            gseq, previous = head(self.db)
            (seq,) = self.db.execute("SELECT coalesce(max(seq), 0) + 1 FROM audit").fetchone()
            row = {"seq": int(seq), "utc": utc or utc_now(), "actor": actor, "action": action, "record_id": record_id,
                   "course_id": course_id, "detail": _json(detail), "gseq": gseq + 1}  # fmt: skip
            self.db.execute(
                f"INSERT INTO audit ({', '.join(AUDIT_FIELDS)}, chain_hash) VALUES ({', '.join('?' * 9)})",
                [row[k] for k in AUDIT_FIELDS] + [link_hash(previous, "audit", row)],
            )
        return int(seq)

    def append_addendum(self, record_id: int, actor: str, addendum: Addendum) -> int:
        """Append an addendum to a record (a skin check, a late adverse reaction, a note, a correction) to its
        audit trail, in the hash chain; its number (the audit entry's `seq`). The one way the console and the
        command line add to a chart. StoreError for no such record, or a correction of an addendum that is not
        this record's; the corrected addendum is never changed."""
        if not actor.strip():
            raise StoreError("an addendum needs the operator who makes it")
        if self.db.execute("SELECT 1 FROM records WHERE id = ?", (record_id,)).fetchone() is None:
            raise StoreError(f"no record {record_id} in {self.path}")
        if addendum.corrects is not None:
            row = self.db.execute("SELECT action FROM audit WHERE seq = ? AND record_id = ?",
                                  (addendum.corrects, record_id)).fetchone()  # fmt: skip
            if row is None or row["action"] not in ADDENDUM_KINDS:
                raise StoreError(f"record {record_id} has no addendum #{addendum.corrects} to correct "
                                 f"(`ionctl records show {record_id}` lists them)")  # fmt: skip
        return self.append_audit(addendum.kind, actor.strip(), addendum.detail(), record_id=record_id)

    def pending_skin_checks(self, patient: str | None = None) -> list[RecordRow]:
        """The closed records (of `patient`, if given) whose session energised the patient and that have no
        skin check after the session: oldest first. A new session of that patient waits for them."""
        sql = (
            "SELECT * FROM records WHERE outcome IS NOT NULL AND energised = 1 AND NOT EXISTS "
            "(SELECT 1 FROM audit WHERE audit.record_id = records.id AND audit.action = ?)"
        )
        params: list[Any] = [SKIN_CHECK_AFTER]
        if patient is not None:
            sql, params = sql + " AND patient = ?", [*params, patient]
        return [_record_row(row) for row in self.db.execute(sql + " ORDER BY id", params)]

    def insert_course(self, *, patient: str, operator: str, preset: str, sessions: int, per_week: float | None,
                      min_interval_days: float | None, plan: dict[str, Any], config_sha256: str | None,
                      created_utc: str | None = None) -> int:  # fmt: skip
        """Insert a treatment course (durable on return); its id. The rules live in `ionctl.core.courses`."""
        with self._write():
            gseq, previous = head(self.db)
            (next_id,) = self.db.execute("SELECT coalesce(max(id), 0) + 1 FROM courses").fetchone()
            row = {"id": int(next_id), "created_utc": created_utc or utc_now(), "patient": patient,
                   "operator": operator, "preset": preset, "sessions": sessions, "per_week": per_week,
                   "min_interval_days": min_interval_days, "plan": _json(plan), "config_sha256": config_sha256,
                   "gseq": gseq + 1}  # fmt: skip
            self.db.execute(
                f"INSERT INTO courses ({', '.join(COURSE_FIELDS)}, chain_hash) VALUES ({', '.join('?' * 12)})",
                [row[k] for k in COURSE_FIELDS] + [link_hash(previous, "course", row)],
            )
        return int(next_id)

    def append_event(self, record_id: int, kind: str, text: str, *, utc: str | None = None,
                     device_t_s: float | None = None) -> int:  # fmt: skip
        """Append an event (durable on return); its sequence number within the record."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"event kind must be one of {EVENT_KINDS}, got {kind!r}")
        with self._write():
            gseq, previous = head(self.db)
            (seq,) = self.db.execute("SELECT coalesce(max(seq), 0) + 1 FROM events WHERE record_id = ?",
                                     (record_id,)).fetchone()  # fmt: skip
            row = {"record_id": record_id, "seq": int(seq), "utc": utc or utc_now(),
                   "device_t_s": _finite(device_t_s), "kind": kind, "text": text, "gseq": gseq + 1}  # fmt: skip
            self.db.execute(
                f"INSERT INTO events ({', '.join(EVENT_FIELDS)}, chain_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [row[k] for k in EVENT_FIELDS] + [link_hash(previous, "event", row)],
            )
        return int(seq)

    def append_telemetry(self, record_id: int, rows: Sequence[Sequence[Any]]) -> None:
        """Append samples (tuples in `TELEMETRY_FIELDS` order) in one durable transaction."""
        if not rows:
            return
        with self._write():
            self.db.executemany(
                f"INSERT INTO telemetry (record_id, {', '.join(TELEMETRY_FIELDS)}) VALUES (?{', ?' * 9})",
                # inf/NaN are stored as NULL (not measured): SQLite keeps inf, which no hash (strict JSON) takes
                [(record_id, *(_finite(v) if isinstance(v, float) else v for v in row)) for row in rows],
            )

    def close_record(self, record_id: int, summary: RecordSummary | Mapping[str, Any], *,
                     ended_utc: str | None = None) -> None:  # fmt: skip
        """Close an open record with the session's summary (the one allowed UPDATE). A mapping is read as a
        `RecordSummary` (`RecordSummary.from_mapping`: ValueError for a key that is not a closing's, so a renamed
        field is refused rather than dropped). StoreError if the record is already closed."""
        closing = RecordSummary.of(summary)
        with self._write():
            row = self.db.execute("SELECT outcome FROM records WHERE id = ?", (record_id,)).fetchone()
            if row is None:
                raise StoreError(f"no record {record_id}")
            if row["outcome"] is not None:
                raise StoreError(f"record {record_id} is already closed ({row['outcome']})")
            gseq, previous = head(self.db)
            count, digest = telemetry_digest(self.db, record_id)
            values: dict[str, Any] = {
                "outcome": str(closing.outcome or "fault"),
                "fault": closing.fault,
                "message": str(closing.message or ""),
                "device": _json(closing.device),
                "dose_source": closing.dose_source,
                "energised": int(bool(closing.energised)),
                "alarm": int(bool(closing.alarm)),
                "ended_utc": ended_utc or utc_now(),
                "telemetry_count": count,
                "telemetry_sha256": digest,
                "close_gseq": gseq + 1,
            }
            for key in ("dose_ma_min", "host_dose_ma_min", "device_dose_ma_min", "prescribed_dose_ma_min",
                        "duration_s", "peak_current_ma", "peak_density_ma_cm2", "time_at_compliance_s",
                        "impedance_start_ohm", "impedance_end_ohm", "impedance_min_ohm",
                        "impedance_max_ohm"):  # fmt: skip
                values[key] = _finite(getattr(closing, key))
            opened = self._opened_hash(record_id)
            content = {"id": record_id, "open_hash": opened, **values}
            values["chain_hash"] = link_hash(previous, "close", content)
            self.db.execute(f"UPDATE records SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                            [*values.values(), record_id])  # fmt: skip

    def _opened_hash(self, record_id: int) -> str:
        return str(self.db.execute("SELECT open_hash FROM records WHERE id = ?", (record_id,)).fetchone()[0])

    def session_writer(self, record_id: int, *, flush_every_s: float = FLUSH_EVERY_S,
                       monotonic: Callable[[], float] = time.monotonic) -> SessionWriter:  # fmt: skip
        return SessionWriter(self, record_id, flush_every_s=flush_every_s, monotonic=monotonic)

    # -- reading ----------------------------------------------------------------------------------------------

    def list_records(self, *, patient: str | None = None, since: str | None = None) -> list[RecordRow]:
        """Record rows (no events or telemetry), oldest first; `since` is an ISO 8601 date or time (UTC)."""
        sql, params = "SELECT * FROM records WHERE 1", []
        if patient is not None:
            sql += " AND patient = ?"
            params.append(patient)
        if since is not None:
            sql += " AND created_utc >= ?"
            params.append(since)
        return [_record_row(row) for row in self.db.execute(sql + " ORDER BY id", params)]

    def audit(self, *, action: str | None = None, record_id: int | None = None,
              course_id: int | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """Audit entries, oldest first, `detail` decoded; filtered by action, record or course if given."""
        sql, params = "SELECT * FROM audit WHERE 1", []
        for column, value in (("action", action), ("record_id", record_id), ("course_id", course_id)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        return [_decoded(row, "detail") for row in self.db.execute(sql + " ORDER BY seq", params)]

    def course(self, course_id: int) -> dict[str, Any]:
        """A course row (`plan` decoded); StoreError if there is none."""
        row = self.db.execute("SELECT * FROM courses WHERE id = ?", (course_id,)).fetchone()
        if row is None:
            raise StoreError(f"no course {course_id} in {self.path}")
        return _decoded(row, "plan")

    def courses(self, *, patient: str | None = None) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM courses", []
        if patient is not None:
            sql, params = sql + " WHERE patient = ?", [patient]
        return [_decoded(row, "plan") for row in self.db.execute(sql + " ORDER BY id", params)]

    def course_records(self, course_id: int | None = None, *, ref: str | None = None) -> list[RecordRow]:
        """The records of a course's sessions, oldest first (open ones included): this store's course
        `course_id`, or another bench's course `ref` ("bench-a/3")."""
        if ref is not None:
            rows = self.db.execute("SELECT * FROM records WHERE course_ref = ? ORDER BY id", (ref,))
            return [_record_row(row) for row in rows]
        rows = self.db.execute("SELECT * FROM records WHERE course_id = ? ORDER BY id", (course_id,))
        return [_record_row(row) for row in rows]

    def open_ids(self) -> list[int]:
        return [int(r[0]) for r in self.db.execute("SELECT id FROM records WHERE outcome IS NULL ORDER BY id")]

    def get(self, record_id: int) -> Record:
        row = self.db.execute("SELECT * FROM records WHERE id = ?", (record_id,)).fetchone()
        if row is None:
            raise StoreError(f"no record {record_id} in {self.path}")
        events = [dict(r) for r in self.db.execute(
            "SELECT seq, utc, device_t_s, kind, text, gseq, chain_hash FROM events WHERE record_id = ? ORDER BY seq",
            (record_id,))]  # fmt: skip
        return Record(_record_row(row), events, self.telemetry(record_id), self.audit(record_id=record_id))

    def telemetry(self, record_id: int) -> list[dict[str, Any]]:
        rows = self.db.execute(f"SELECT {', '.join(TELEMETRY_FIELDS)} FROM telemetry WHERE record_id = ? "
                               "ORDER BY rowid", (record_id,))  # fmt: skip
        return [dict(r) for r in rows]

    # -- verification ------------------------------------------------------------------------------------------

    def chain_head(self) -> tuple[int, str]:
        """(gseq, hash) of the newest link of the chain."""
        return head(self.db)

    def first_link(self) -> str | None:
        """The hash of the chain's first link (`ionctl.records.chain.first_link`): the store's identity, the
        same in a copy of the file at another path; None while the chain is empty."""
        return first_link(self.db)

    def record_digest(self, record_id: int) -> str | None:
        """The SHA-256 a sign-off of record `record_id` signs (`ionctl.records.chain.record_digest`)."""
        return record_digest(self.db, record_id)

    def link_hashes(self) -> dict[int, str]:
        return link_hashes(self.db)

    def verify(self) -> BrokenLink | None:
        """Walk the chain in insertion order; the first link that does not verify, or None."""
        try:
            return verify_chain(self.db)
        except sqlite3.DatabaseError as exc:  # a flipped byte in the page structure itself
            return BrokenLink(None, str(self.path), f"the database file is damaged: {exc}")


#: A store and its directory are for the bench's accounts only (owner, and the group a site may share the store
#: with), never every account on the PC: the store holds the accounts' password verifiers and sealed keys
#: (docs/SAFETY.md, "brute force"). The group gets what the umask gives it (a site sharing the store with a group
#: sets `umask 007`: README, "Deploying on a clinic bench PC"); other accounts never get anything, whatever the
#: umask. SQLite gives the -wal and -shm files the main file's mode.
FILE_MODE, DIRECTORY_MODE = 0o660, 0o770


def _modes() -> tuple[int, int]:
    """(file, directory) modes: FILE_MODE and DIRECTORY_MODE as the process's umask allows, the owner's bits
    always, the other accounts' never."""
    umask = os.umask(0o077)
    os.umask(umask)
    return (FILE_MODE & ~umask) | 0o600, (DIRECTORY_MODE & ~umask) | 0o700


def _private_file(path: Path) -> None:
    """Create the store's missing directories and an empty store file (see FILE_MODE) before SQLite opens it, so
    that it and its -wal and -shm files are never readable by other accounts, whatever the umask."""
    file_mode, directory_mode = _modes()
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=directory_mode)
        except FileExistsError:
            continue
        os.chmod(directory, directory_mode)  # mkdir's mode is filtered by the umask; this is exact
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, file_mode))
    except FileExistsError:
        return
    os.chmod(path, file_mode)  # exact, whatever the umask did to os.open's mode


def _drop_other_access(path: Path) -> None:
    """A store made before this (0644) loses the other accounts' access when its owner opens it; the owner and
    group bits stay (a site may share the store with a group)."""
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = file.stat().st_mode & 0o777
            if mode & 0o007:
                os.chmod(file, mode & ~0o007)
        except OSError:  # not there, or not ours: the owner's next open does it
            continue


def _fields(row: sqlite3.Row) -> dict[str, Any]:
    return {k: row[k] for k in row.keys()}  # noqa: SIM118 - sqlite3.Row is not a mapping


def _record_row(row: sqlite3.Row) -> RecordRow:
    return cast(RecordRow, _fields(row))


def _decoded(row: sqlite3.Row, column: str) -> dict[str, Any]:
    fields = _fields(row)
    fields[column] = json.loads(fields[column]) if fields[column] is not None else None
    return fields


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on error): one durable write."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
                return
            except BaseException:
                self._rollback()  # a failed COMMIT leaves the transaction open: every later BEGIN would fail
                raise
        self._rollback()

    def _rollback(self) -> None:
        if self.db.in_transaction:  # SQLite may already have rolled back (disk full, I/O error)
            self.db.execute("ROLLBACK")


# -- the writer a running session uses -----------------------------------------------------------------------------


class SessionWriter:
    """Streams one session into its record: events at once (durable on return), telemetry in batches
    committed at least every `flush_every_s` of host time, from the caller's own thread."""

    def __init__(self, store: Store, record_id: int, *, flush_every_s: float = FLUSH_EVERY_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.store = store
        self.record_id = record_id
        self.flush_every_s = flush_every_s
        self.monotonic = monotonic
        self.pending: list[tuple[Any, ...]] = []
        self._last_flush = monotonic()
        self.samples = 0
        self.worst_flush_s = 0.0
        self.closed = False

    def sample(self, row: Sequence[Any]) -> None:
        """Queue one sample (`TELEMETRY_FIELDS` order); commits the batch when it is due."""
        self.pending.append(tuple(row))
        self.samples += 1
        if self.monotonic() - self._last_flush >= self.flush_every_s:
            self.flush()

    def event(self, kind: str, text: str, *, utc: str | None = None, device_t_s: float | None = None) -> None:
        """Flush the samples before it (so the order on disk is the order it happened), then append it."""
        self.flush()
        self.store.append_event(self.record_id, kind, text, utc=utc, device_t_s=device_t_s)

    def flush(self) -> None:
        start = time.perf_counter()
        if self.pending:
            batch = self.pending
            self.store.append_telemetry(self.record_id, batch)  # on error the batch stays queued: retried next time
            self.pending = []
        self._last_flush = self.monotonic()
        self.worst_flush_s = max(self.worst_flush_s, time.perf_counter() - start)

    def close(self, summary: RecordSummary | Mapping[str, Any], *, ended_utc: str | None = None) -> None:
        self.flush()
        self.store.close_record(self.record_id, summary, ended_utc=ended_utc)
        self.closed = True

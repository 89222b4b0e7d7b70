"""The record store's schema and its migrations (`ionctl.records.store` describes the tables).

Schema versions live in `PRAGMA user_version`; `MIGRATIONS[n]` takes a file from version n-1 to n, so a
later ionctl opens an earlier file by running the missing steps in one transaction each. Triggers make every
table append-only: they refuse every UPDATE but a record's one closing, and every DELETE and REPLACE.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator

from ionctl.records.errors import StoreError

SCHEMA_VERSION = 4


def _statements(script: str) -> Iterator[str]:
    """The statements of an SQL script, one at a time (so that they run inside the caller's transaction:
    `executescript` would commit it first)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement: {pending.strip()[:60]!r}")


def _v0_to_v1(db: sqlite3.Connection) -> None:
    for statement in _statements("""
        CREATE TABLE records (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created_utc TEXT NOT NULL, patient TEXT NOT NULL, operator TEXT NOT NULL,
            prescription TEXT NOT NULL, limits TEXT NOT NULL, limits_sha256 TEXT NOT NULL,
            open_gseq INTEGER NOT NULL UNIQUE, open_hash TEXT NOT NULL,
            outcome TEXT, fault TEXT, message TEXT, device TEXT,
            dose_ma_min REAL, dose_source TEXT, host_dose_ma_min REAL, device_dose_ma_min REAL,
            prescribed_dose_ma_min REAL, duration_s REAL, peak_current_ma REAL, peak_density_ma_cm2 REAL,
            time_at_compliance_s REAL, impedance_start_ohm REAL, impedance_end_ohm REAL,
            impedance_min_ohm REAL, impedance_max_ohm REAL, energised INTEGER, alarm INTEGER,
            ended_utc TEXT, telemetry_count INTEGER, telemetry_sha256 TEXT,
            close_gseq INTEGER UNIQUE, chain_hash TEXT
        );
        CREATE INDEX records_patient ON records(patient, created_utc);
        CREATE INDEX records_open ON records(outcome) WHERE outcome IS NULL;
        CREATE TABLE events (
            record_id INTEGER NOT NULL REFERENCES records(id), seq INTEGER NOT NULL,
            utc TEXT NOT NULL, device_t_s REAL, kind TEXT NOT NULL CHECK (kind IN ('state', 'fault', 'note')),
            text TEXT NOT NULL, gseq INTEGER NOT NULL UNIQUE, chain_hash TEXT NOT NULL,
            PRIMARY KEY (record_id, seq)
        );
        CREATE TABLE telemetry (
            record_id INTEGER NOT NULL REFERENCES records(id), t_s REAL NOT NULL, set_ma REAL,
            current_ma REAL NOT NULL, voltage_v REAL, impedance_ohm REAL, dose_ma_min REAL,
            device_dose_ma_min REAL, at_compliance INTEGER, state TEXT
        );
        CREATE INDEX telemetry_record ON telemetry(record_id);

        CREATE TRIGGER records_no_delete BEFORE DELETE ON records
        BEGIN SELECT RAISE(ABORT, 'records are append-only: a record cannot be deleted'); END;
        CREATE TRIGGER records_finished_immutable BEFORE UPDATE ON records WHEN OLD.outcome IS NOT NULL
        BEGIN SELECT RAISE(ABORT, 'records are append-only: a finished record cannot be changed'); END;
        CREATE TRIGGER records_close_only BEFORE UPDATE ON records
        WHEN OLD.outcome IS NULL AND (NEW.outcome IS NULL OR NEW.chain_hash IS NULL OR NEW.close_gseq IS NULL
            OR NEW.id IS NOT OLD.id OR NEW.created_utc IS NOT OLD.created_utc OR NEW.patient IS NOT OLD.patient
            OR NEW.operator IS NOT OLD.operator OR NEW.prescription IS NOT OLD.prescription
            OR NEW.limits IS NOT OLD.limits OR NEW.limits_sha256 IS NOT OLD.limits_sha256
            OR NEW.open_gseq IS NOT OLD.open_gseq OR NEW.open_hash IS NOT OLD.open_hash)
        BEGIN SELECT RAISE(ABORT, 'records are append-only: an open record may only be closed, once'); END;
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only: an event cannot be changed'); END;
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only: an event cannot be deleted'); END;
        CREATE TRIGGER events_open_record BEFORE INSERT ON events
        WHEN (SELECT outcome FROM records WHERE id = NEW.record_id) IS NOT NULL
        BEGIN SELECT RAISE(ABORT, 'events are append-only: the record is closed'); END;
        CREATE TRIGGER telemetry_no_update BEFORE UPDATE ON telemetry
        BEGIN SELECT RAISE(ABORT, 'telemetry is append-only: a sample cannot be changed'); END;
        CREATE TRIGGER telemetry_no_delete BEFORE DELETE ON telemetry
        BEGIN SELECT RAISE(ABORT, 'telemetry is append-only: a sample cannot be deleted'); END;
        CREATE TRIGGER telemetry_open_record BEFORE INSERT ON telemetry
        WHEN (SELECT outcome FROM records WHERE id = NEW.record_id) IS NOT NULL
        BEGIN SELECT RAISE(ABORT, 'telemetry is append-only: the record is closed'); END;
    """):
        db.execute(statement)
    _harden(db)


def _v1_to_v2(db: sqlite3.Connection) -> None:
    for statement in _statements("""
        ALTER TABLE records ADD COLUMN config_sha256 TEXT;
        ALTER TABLE records ADD COLUMN course_id INTEGER REFERENCES courses(id);
        CREATE INDEX records_course ON records(course_id) WHERE course_id IS NOT NULL;
        CREATE TABLE courses (
            id INTEGER PRIMARY KEY AUTOINCREMENT, created_utc TEXT NOT NULL, patient TEXT NOT NULL,
            operator TEXT NOT NULL, preset TEXT NOT NULL, sessions INTEGER NOT NULL, per_week REAL,
            min_interval_days REAL, plan TEXT NOT NULL, config_sha256 TEXT,
            gseq INTEGER NOT NULL UNIQUE, chain_hash TEXT NOT NULL
        );
        CREATE INDEX courses_patient ON courses(patient);
        CREATE TABLE audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, utc TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
            record_id INTEGER REFERENCES records(id), course_id INTEGER REFERENCES courses(id),
            detail TEXT NOT NULL, gseq INTEGER NOT NULL UNIQUE, chain_hash TEXT NOT NULL
        );
        CREATE INDEX audit_action ON audit(action);
        CREATE TRIGGER courses_no_update BEFORE UPDATE ON courses
        BEGIN SELECT RAISE(ABORT, 'courses are append-only: a course cannot be changed'); END;
        CREATE TRIGGER courses_no_delete BEFORE DELETE ON courses
        BEGIN SELECT RAISE(ABORT, 'courses are append-only: a course cannot be deleted'); END;
        CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: an entry cannot be changed'); END;
        CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: an entry cannot be deleted'); END;
        CREATE TRIGGER records_v2_fixed BEFORE UPDATE ON records
        WHEN NEW.config_sha256 IS NOT OLD.config_sha256 OR NEW.course_id IS NOT OLD.course_id
        BEGIN SELECT RAISE(ABORT, 'records are append-only: an open record may only be closed, once'); END;
    """):
        db.execute(statement)
    _harden(db)


def _v2_to_v3(db: sqlite3.Connection) -> None:
    """A record of a session of another bench's course names it clinic-wide (`course_ref`, "bench-a/3": the
    bench that started it and its id there); a session of this bench's own courses keeps `course_id`. Fixed once
    the record is open, like the schema-2 opening columns."""
    for statement in _statements("""
        ALTER TABLE records ADD COLUMN course_ref TEXT;
        CREATE INDEX records_course_ref ON records(course_ref) WHERE course_ref IS NOT NULL;
        CREATE TRIGGER records_v3_fixed BEFORE UPDATE ON records
        WHEN NEW.course_ref IS NOT OLD.course_ref
        BEGIN SELECT RAISE(ABORT, 'records are append-only: an open record may only be closed, once'); END;
    """):
        db.execute(statement)
    _harden(db)


def _v3_to_v4(db: sqlite3.Connection) -> None:
    """The chart details of a session (`clinical`, canonical JSON: treatment site, drug concentration, volume and
    lot, prescriber, electrode product, simulated; `ionctl.records.clinical`), part of the opening: fixed once the
    record is open. Older records have none (NULL, left out of their hashed opening, so they still verify)."""
    for statement in _statements("""
        ALTER TABLE records ADD COLUMN clinical TEXT;
        CREATE TRIGGER records_v4_fixed BEFORE UPDATE ON records
        WHEN NEW.clinical IS NOT OLD.clinical
        BEGIN SELECT RAISE(ABORT, 'records are append-only: an open record may only be closed, once'); END;
    """):
        db.execute(statement)
    _harden(db)


# REPLACE (`INSERT OR REPLACE`, `UPDATE OR REPLACE`) deletes the rows it conflicts with without firing the
# DELETE triggers (unless the writer's connection turned `recursive_triggers` on), so every insert or closing
# that would collide with an existing row is refused before the conflict is resolved. Files made before these
# triggers existed get them when opened (`_harden`).
_NO_REPLACE = {
    "records_insert_no_replace": """
        CREATE TRIGGER IF NOT EXISTS records_insert_no_replace BEFORE INSERT ON records
        WHEN EXISTS (SELECT 1 FROM records WHERE id = NEW.id OR open_gseq = NEW.open_gseq
                     OR close_gseq = NEW.close_gseq)
        BEGIN SELECT RAISE(ABORT, 'records are append-only: a record cannot be replaced'); END;""",
    "records_update_no_replace": """
        CREATE TRIGGER IF NOT EXISTS records_update_no_replace BEFORE UPDATE ON records
        WHEN EXISTS (SELECT 1 FROM records WHERE id <> OLD.id AND (id = NEW.id OR open_gseq = NEW.open_gseq
                     OR close_gseq = NEW.close_gseq))
        BEGIN SELECT RAISE(ABORT, 'records are append-only: a record cannot be replaced'); END;""",
    "events_insert_no_replace": """
        CREATE TRIGGER IF NOT EXISTS events_insert_no_replace BEFORE INSERT ON events
        WHEN EXISTS (SELECT 1 FROM events WHERE (record_id = NEW.record_id AND seq = NEW.seq) OR gseq = NEW.gseq)
        BEGIN SELECT RAISE(ABORT, 'events are append-only: an event cannot be replaced'); END;""",
    "telemetry_insert_no_replace": """
        CREATE TRIGGER IF NOT EXISTS telemetry_insert_no_replace BEFORE INSERT ON telemetry
        WHEN EXISTS (SELECT 1 FROM telemetry WHERE rowid = NEW.rowid)
        BEGIN SELECT RAISE(ABORT, 'telemetry is append-only: a sample cannot be replaced'); END;""",
}
_NO_REPLACE_V2 = {
    "courses_insert_no_replace": """
        CREATE TRIGGER IF NOT EXISTS courses_insert_no_replace BEFORE INSERT ON courses
        WHEN EXISTS (SELECT 1 FROM courses WHERE id = NEW.id OR gseq = NEW.gseq)
        BEGIN SELECT RAISE(ABORT, 'courses are append-only: a course cannot be replaced'); END;""",
    "audit_insert_no_replace": """
        CREATE TRIGGER IF NOT EXISTS audit_insert_no_replace BEFORE INSERT ON audit
        WHEN EXISTS (SELECT 1 FROM audit WHERE seq = NEW.seq OR gseq = NEW.gseq)
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: an entry cannot be replaced'); END;""",
}


def _harden(db: sqlite3.Connection) -> None:
    """Add the no-REPLACE triggers a records file lacks (in the caller's transaction)."""
    have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    wanted = {**_NO_REPLACE, **(_NO_REPLACE_V2 if "audit" in tables else {})}
    for name, statement in wanted.items():
        if name not in have:
            db.execute(statement.strip())


# `migrate` runs each missing step in its own transaction and bumps `user_version` with it, so a v1 file opened
# by this ionctl becomes v4 in place, and a v0 (empty) file goes through every step. Columns a step adds to an
# existing table are NULL in older rows and left out of the hashed content when NULL, so old hashes verify.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _v0_to_v1, 2: _v1_to_v2, 3: _v2_to_v3, 4: _v3_to_v4,
}


def migrate(db: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the file to `target`; returns the version it was at. StoreError for a newer file."""
    (found,) = db.execute("PRAGMA user_version").fetchone()
    if found > target:
        raise StoreError(f"the records file has schema version {found}; this ionctl knows up to {target}")
    for version in range(found + 1, target + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[version](db)
            db.execute(f"PRAGMA user_version = {version}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    if found == target and target >= 1:  # an existing file: add the triggers it may lack
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        if not names.issuperset(_NO_REPLACE) or (target >= 2 and not names.issuperset(_NO_REPLACE_V2)):
            db.execute("BEGIN IMMEDIATE")
            try:
                _harden(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
    return int(found)

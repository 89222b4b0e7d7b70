"""The record store on its own: the hash chain, the append-only triggers, verify() against a byte flipped in
the file, the exports, migrations and crash recovery of an open record."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from ionctl.cli import main as cli
from ionctl.records import SCHEMA_VERSION, Record, SessionLock, Store, StoreError, recover_interrupted
from ionctl.records.export import CSV_HEADER, to_csv, to_json
from ionctl.records.store import migrate

PRESCRIPTION = {"drug": "dexamethasone", "electrode_area_cm2": 10.0, "current_ma": 4.0, "planned_dose_ma_min": 40.0}
LIMITS = {"max_current_ma": 4.0, "max_density_ma_cm2": 0.5}


def sample(t_s: float, current_ma: float, dose: float = 0.0, state: str = "delivering") -> tuple[object, ...]:
    return (t_s, current_ma, current_ma, 12.5, 3125.0 if current_ma else None, dose, dose * 0.99, 0, state)


def finished_record(store: Store, patient: str = "P-CHAIN", samples: int = 50, tag: str = "EVENT-TEXT-MARKER") -> int:
    record_id = store.open_record(patient=patient, operator="O-1", prescription=PRESCRIPTION, limits=LIMITS,
                                  limits_sha256="ab" * 32)  # fmt: skip
    writer = store.session_writer(record_id)
    writer.event("state", "ramping_up: prescribed start", device_t_s=0.0)
    for i in range(samples):
        writer.sample(sample(i * 0.1, 4.0, i * 0.1 * 4 / 60))
    writer.event("fault", f"fault: open circuit ({tag})", device_t_s=samples * 0.1)
    writer.close({"outcome": "fault", "fault": "open_circuit", "dose_ma_min": 0.33, "host_dose_ma_min": 0.33,
                  "device": {"model": "X", "serial": patient}, "energised": True})  # fmt: skip
    return record_id


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "records.sqlite3")


def test_a_clean_chain_verifies_and_links_follow_insertion_order(store: Store) -> None:
    first = finished_record(store)
    second = finished_record(store, patient="P-OTHER")
    assert store.verify() is None
    a, b = store.get(first), store.get(second)
    assert a.fields["outcome"] == "fault" and a.fields["telemetry_count"] == 50
    assert a.fields["open_gseq"] == 1 and a.fields["close_gseq"] == 4  # open, 2 events, close
    assert b.fields["open_gseq"] == 5
    assert [e["gseq"] for e in a.events] == [2, 3]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE records SET patient = 'P-EVIL' WHERE id = 1",
        "UPDATE records SET dose_ma_min = 40 WHERE id = 1",
        "DELETE FROM records WHERE id = 1",
        "UPDATE events SET text = 'nothing happened'",
        "DELETE FROM events",
        "UPDATE telemetry SET current_ma = 0",
        "DELETE FROM telemetry",
        "INSERT INTO events VALUES (1, 99, '2026-01-01', NULL, 'note', 'late', 99, 'x')",
        "INSERT INTO telemetry (record_id, t_s, current_ma) VALUES (1, 99, 1)",
    ],
)
def test_update_and_delete_through_sqlite3_are_refused_by_the_triggers(store: Store, statement: str) -> None:
    finished_record(store)
    store.close()
    db = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute(statement)
    db.close()


def test_an_open_record_may_be_closed_once_and_only_its_summary_set(store: Store) -> None:
    record_id = store.open_record(patient="P", operator="O", prescription={}, limits={}, limits_sha256="")
    db = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.DatabaseError, match="only be closed"):
        db.execute("UPDATE records SET patient = 'Q', outcome = 'completed' WHERE id = ?", (record_id,))
    db.close()
    store.close_record(record_id, {"outcome": "completed"})
    with pytest.raises(StoreError, match="already closed"):
        store.close_record(record_id, {"outcome": "completed"})
    assert store.verify() is None


def flip_byte(path: Path, marker: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(marker)
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("marker", "link"), [(b"P-CHAIN", "record 1 (opening)"),
                                              (b"EVENT-TEXT-MARKER", "event 1/2"),
                                              (b'"serial":"P-CHAIN"', "record 1 (closing)")])  # fmt: skip
def test_verify_finds_one_byte_flipped_in_the_database_file(store: Store, marker: bytes, link: str) -> None:
    finished_record(store)
    finished_record(store, patient="P-AFTER", tag="later")
    store.close()  # checkpoints the WAL into the main file
    flip_byte(store.path, marker)
    with Store(store.path) as reopened:
        broken = reopened.verify()
    assert broken is not None and broken.what == link, broken
    assert cli(["records", "verify", "--db", str(store.path)]) == 1


def test_verify_finds_an_edit_made_after_dropping_the_triggers(store: Store) -> None:
    record_id = finished_record(store)
    store.close()
    db = sqlite3.connect(store.path)
    db.execute("DROP TRIGGER records_finished_immutable")
    db.execute("DROP TRIGGER telemetry_no_update")
    db.execute("UPDATE telemetry SET current_ma = 3.9 WHERE rowid = 7")  # telemetry after closing
    db.commit()
    db.close()
    with Store(store.path) as reopened:
        broken = reopened.verify()
    assert broken is not None and broken.what == f"record {record_id} (closing)"
    assert "telemetry" in broken.reason


def test_json_export_round_trips_into_the_same_record(store: Store, tmp_path: Path) -> None:
    record_id = finished_record(store)
    record = store.get(record_id)
    out = tmp_path / "r.json"
    assert cli(["records", "export", str(record_id), "--format", "json", "-o", str(out), "--db", str(store.path)]) == 0
    again = Record.from_dict(json.loads(out.read_text()))
    assert again == record
    assert json.loads(to_json(record))["schema_version"] == SCHEMA_VERSION


def test_csv_export_has_one_row_per_sample(store: Store) -> None:
    record = store.get(finished_record(store, samples=123))
    rows = list(csv.reader(io.StringIO(to_csv(record))))
    assert tuple(rows[0]) == CSV_HEADER
    assert len(rows) == 1 + 123
    assert float(rows[5][0]) == pytest.approx(0.4) and float(rows[5][1]) == 4.0 and rows[5][5] == "delivering"


def test_an_empty_v0_file_is_migrated_and_a_newer_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    sqlite3.connect(path).close()  # an empty file: user_version 0
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db) == 0
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert migrate(db) == SCHEMA_VERSION  # idempotent
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="schema version"):
        Store(path)


def test_recovery_closes_a_dead_sessions_record_as_interrupted_but_not_a_live_one(store: Store) -> None:
    dead = store.open_record(patient="P-DEAD", operator="O", prescription=PRESCRIPTION, limits={}, limits_sha256="")
    writer = store.session_writer(dead)
    for i in range(101):  # 10 s at 4 mA after the first sample: 0.6667 mA·min
        writer.sample(sample(100 + i * 0.1, 4.0))
    writer.flush()
    locks: list[SessionLock] = []
    live = store.open_record(patient="P-LIVE", operator="O", prescription={}, limits={}, limits_sha256="",
                             before_commit=lambda rid: locks.append(SessionLock(store, rid)))  # fmt: skip
    assert recover_interrupted(store) == [dead]
    record = store.get(dead)
    assert record.fields["outcome"] == "interrupted"
    assert record.fields["dose_ma_min"] == pytest.approx(4 * 10 / 60)
    assert record.fields["peak_current_ma"] == 4.0 and record.fields["energised"] == 1
    assert store.get(live).fields["outcome"] is None  # its session still holds the lock
    locks[0].release()
    assert store.verify() is None


@pytest.mark.parametrize(("state", "energised"), [("ramping_up", 1), ("armed", 0)])
def test_a_session_killed_before_its_first_sample_counts_as_energised_once_it_started(
    store: Store, state: str, energised: int
) -> None:
    """Events are durable at once, samples every half second: a `ramping_up` event with no sample yet means
    START went out and current may have flowed (a course counts that session); `armed` means it did not."""
    record_id = store.open_record(patient="P", operator="O", prescription=PRESCRIPTION, limits={}, limits_sha256="")
    store.append_event(record_id, "state", f"{state}: as the session went")
    assert recover_interrupted(store) == [record_id]
    fields = store.get(record_id).fields
    assert (fields["outcome"], fields["energised"]) == ("interrupted", energised)


@pytest.mark.parametrize(
    ("umask", "file_mode", "directory_mode"),
    [(0o022, 0o640, 0o750), (0o000, 0o660, 0o770), (0o007, 0o660, 0o770), (0o077, 0o600, 0o700)],
)
def test_a_new_store_its_wal_and_shm_and_its_directory_are_owner_and_group_only(
    tmp_path: Path, umask: int, file_mode: int, directory_mode: int
) -> None:
    """The store holds the accounts' password verifiers and sealed keys: no other account on the PC may read it,
    whatever the umask (docs/SAFETY.md, "brute force"); the group gets what the umask gives it, so a store a site
    shares with a group (`umask 007`) stays writable by its members."""
    path = tmp_path / "data" / "ionctl" / "records.sqlite3"
    old = os.umask(umask)
    try:
        with Store(path) as store:
            finished_record(store)
            files = [path, path.with_name("records.sqlite3-wal"), path.with_name("records.sqlite3-shm")]
            modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
    finally:
        os.umask(old)
    assert modes == {"records.sqlite3": file_mode, "records.sqlite3-wal": file_mode, "records.sqlite3-shm": file_mode}
    assert stat.S_IMODE(path.parent.stat().st_mode) == directory_mode
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == directory_mode


def test_an_existing_world_readable_store_loses_the_other_accounts_access_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite3"
    Store(path).close()
    os.chmod(path, 0o664)  # a store made before (0644), or shared with a group that writes it
    Store(path, create=False).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o660  # the group's bits stay; the others' are gone

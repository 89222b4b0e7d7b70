"""Review findings: each test makes one defect happen (and passes once it is fixed)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ionctl.records import Store

PRESCRIPTION = {"drug": "dexamethasone", "electrode_area_cm2": 10.0, "current_ma": 4.0, "planned_dose_ma_min": 40.0}
LIMITS = {"max_current_ma": 4.0}


def sample(t_s: float) -> tuple[object, ...]:
    return (t_s, 4.0, 4.0, 12.5, 3125.0, 0.0, 0.0, 0, "delivering")


def opened(store: Store) -> int:
    return store.open_record(patient="P", operator="O", prescription=PRESCRIPTION, limits=LIMITS,
                             limits_sha256="ab" * 32)  # fmt: skip


def finished(store: Store) -> int:
    record_id = opened(store)
    writer = store.session_writer(record_id)
    writer.event("state", "delivering: start", device_t_s=0.0)
    for i in range(5):
        writer.sample(sample(i * 0.1))
    writer.close({"outcome": "completed", "dose_ma_min": 1.0, "energised": True})
    return record_id


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "records.sqlite3")


def test_a_failed_telemetry_flush_keeps_the_batch_for_the_next_flush(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_id = opened(store)
    writer = store.session_writer(record_id, flush_every_s=1e9)
    for i in range(3):
        writer.sample(sample(i * 0.1))
    real = store.append_telemetry
    calls = {"n": 0}

    def flaky(rid: int, rows: object) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise sqlite3.OperationalError("database is locked")
        real(rid, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "append_telemetry", flaky)
    with pytest.raises(sqlite3.OperationalError):
        writer.flush()
    writer.close({"outcome": "completed"})
    assert len(store.telemetry(record_id)) == 3  # nothing lost: the batch was retried at closing


def row_counts(raw: sqlite3.Connection) -> list[int]:
    return [raw.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("records", "events", "telemetry")]


@pytest.mark.parametrize(
    "statement",
    [
        # REPLACE deletes the conflicting row without firing the DELETE triggers (recursive_triggers is off)
        "INSERT OR REPLACE INTO records (id, created_utc, patient, operator, prescription, limits, limits_sha256,"
        " open_gseq, open_hash) SELECT id, created_utc, patient, operator, prescription, limits, limits_sha256,"
        " open_gseq, open_hash FROM records WHERE id = {done}",
        "INSERT OR REPLACE INTO events (record_id, seq, utc, kind, text, gseq, chain_hash)"
        " SELECT {open}, 99, utc, kind, text, gseq, chain_hash FROM events WHERE record_id = {done}",
        "INSERT OR REPLACE INTO telemetry (rowid, record_id, t_s, current_ma)"
        " SELECT rowid, {open}, t_s, current_ma FROM telemetry WHERE record_id = {done} LIMIT 1",
        "UPDATE OR REPLACE records SET outcome = 'completed', chain_hash = 'x',"
        " close_gseq = (SELECT close_gseq FROM records WHERE id = {done}) WHERE id = {open}",
    ],
)
def test_replace_cannot_delete_a_finished_record_event_or_sample(store: Store, statement: str) -> None:
    done = finished(store)
    still_open = opened(store)
    raw = sqlite3.connect(store.path)
    counts = row_counts(raw)
    with pytest.raises(sqlite3.DatabaseError):
        raw.execute(statement.format(done=done, open=still_open))
    raw.commit()
    assert row_counts(raw) == counts
    assert store.get(done).fields["outcome"] == "completed"
    raw.close()


def test_a_v1_file_made_without_the_no_replace_triggers_gets_them_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    Store(path).close()
    raw = sqlite3.connect(path)
    for name in ("records_insert_no_replace", "records_update_no_replace", "events_insert_no_replace",
                 "telemetry_insert_no_replace"):  # fmt: skip
        raw.execute(f"DROP TRIGGER {name}")
    raw.commit()
    raw.close()
    with Store(path) as store:
        names = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        assert "telemetry_insert_no_replace" in names and "records_update_no_replace" in names


def test_a_failed_commit_does_not_wedge_the_connection(store: Store) -> None:
    record_id = opened(store)
    store.db.execute("PRAGMA defer_foreign_keys = ON")  # makes COMMIT itself fail (a sample of no record)
    with pytest.raises(sqlite3.DatabaseError):
        store.append_telemetry(record_id + 100, [sample(0.0)])
    store.db.execute("PRAGMA defer_foreign_keys = OFF")
    store.append_telemetry(record_id, [sample(0.0)])  # the next write must still work
    assert len(store.telemetry(record_id)) == 1
    assert store.telemetry(record_id + 100) == []


def test_without_flock_recovery_leaves_a_record_whose_lock_file_exists(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ionctl.records import SessionLock, recover_interrupted, recovery

    monkeypatch.setattr(recovery, "fcntl", None)
    record_id = opened(store)
    lock = SessionLock(store, record_id)  # a live session (no flock on this platform)
    assert recover_interrupted(store) == []
    assert store.get(record_id).fields["outcome"] is None
    lock.release()
    assert recover_interrupted(store) == [record_id]


def test_recovery_through_another_path_to_the_same_file_leaves_a_live_session_alone(tmp_path: Path) -> None:
    from ionctl.records import SessionLock, recover_interrupted

    real = tmp_path / "data" / "records.sqlite3"
    real.parent.mkdir()
    link = tmp_path / "records-link.sqlite3"
    link.symlink_to(real)
    with Store(link) as live, Store(real) as other:
        record_id = opened(live)
        lock = SessionLock(live, record_id)  # the live session, which opened the file through the link
        assert recover_interrupted(other) == []
        assert other.get(record_id).fields["outcome"] is None
        lock.release()


def test_a_non_finite_sample_value_does_not_make_the_record_unclosable(store: Store) -> None:
    record_id = opened(store)
    writer = store.session_writer(record_id)
    writer.sample((0.0, 4.0, 4.0, 12.5, float("inf"), 0.0, None, 0, "delivering"))
    writer.sample((0.1, 4.0, 4.0, 12.5, 3125.0, 0.0, None, 0, "delivering"))
    writer.close({"outcome": "completed", "dose_ma_min": 1.0, "energised": True})
    assert store.get(record_id).fields["outcome"] == "completed"
    assert len(store.telemetry(record_id)) == 2
    assert store.verify() is None

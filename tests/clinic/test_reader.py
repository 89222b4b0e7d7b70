"""Reading a bench's chain back from the clinic store: replayed into a store of the bench's own schema, it is the
bench's store, link for link, record for record; a tampered link is named; this bench's unsent records are
listed from its own store."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from ionctl.config import load_config
from ionctl.config.verification import verify_store
from ionctl.records import Store
from ionctl.records.clinic.reader import ClinicReader, merged_rows, parse_record_name, unsent
from ionctl.records.clinic.replay import replay
from tests.clinic.benches import add_record, bench_store, clinic_store, push_store


def test_record_names_are_bench_slash_id_or_this_benchs_id() -> None:
    assert parse_record_name("bench-a/12") == ("bench-a", 12)
    assert parse_record_name("12") == (None, 12)
    for wrong in ("bench-a/", "/12", "Bench A/3", "a/b/3", "x12", ""):
        with pytest.raises(ValueError, match="BENCH/ID"):
            parse_record_name(wrong)


def test_a_pushed_bench_replayed_from_the_clinic_is_its_store(tmp_path: Path, clinic_db: str) -> None:
    clinic, path = bench_store(tmp_path / "a", "p-100", records=3)
    clinic_store(clinic_db)
    pushed = push_store(path, clinic_db, "bench-a")
    with Store(path, create=False) as local, ClinicReader.open(clinic_db, timeout_s=3) as reader:
        done = replay(reader.connection, "bench-a", tmp_path / "replayed.sqlite3")
        copy = done.store
        assert done.broken is None and done.links == pushed.links == len(local.link_hashes())
        assert copy.verify() is None
        assert copy.link_hashes() == local.link_hashes()
        assert copy.chain_head() == local.chain_head() and copy.first_link() == local.first_link()
        ids = [r["id"] for r in local.list_records()]
        assert ids == [r["id"] for r in copy.list_records()] == [1, 2, 3]
        for record_id in ids:
            assert copy.record_digest(record_id) == local.record_digest(record_id) is not None
            assert copy.get(record_id).to_dict() == local.get(record_id).to_dict()
        assert copy.courses() == local.courses() and copy.audit() == local.audit()
        # the signatures verify on the copy exactly as on the bench (the site's administrator)
        result = verify_store(copy, load_config(clinic.config))
        assert result.ok, result.problems
        assert result.people.signatures == verify_store(local, load_config(clinic.config)).people.signatures > 0
        copy.close()


def test_a_demo_session_replayed_from_the_clinic_is_its_store(tmp_path: Path, clinic_db: str) -> None:
    """A realistic record: a session on the simulator (thousands of samples, the session's own events and
    figures, its operator's sign-off), pushed and replayed."""
    demo = subprocess.run([sys.executable, "-m", "ionctl", "demo", "--out", str(tmp_path / "demo"), "--time-scale",
                           "50"], capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    path = tmp_path / "demo" / "records.sqlite3"
    clinic_store(clinic_db)
    pushed = push_store(path, clinic_db, "bench-demo")
    with Store(path, create=False) as local, ClinicReader.open(clinic_db, timeout_s=3) as reader:
        done = replay(reader.connection, "bench-demo", tmp_path / "replayed.sqlite3")
        assert done.broken is None and done.samples == pushed.samples > 1000
        assert done.store.verify() is None and done.store.link_hashes() == local.link_hashes()
        assert done.store.record_digest(1) == local.record_digest(1) is not None
        assert done.store.get(1).to_dict() == local.get(1).to_dict()
        done.store.close()


def test_a_record_alone_loads_only_its_own_telemetry(tmp_path: Path, clinic_db: str) -> None:
    """`records show/export BENCH/ID` replay every link but one record's telemetry: that record reads the same,
    its digest too; the others read without samples (so such a copy is never verified)."""
    _clinic, path = bench_store(tmp_path / "a", "p-100", records=3)
    clinic_store(clinic_db)
    push_store(path, clinic_db, "bench-a")
    with Store(path, create=False) as local, ClinicReader.open(clinic_db, timeout_s=3) as reader:
        started = time.perf_counter()
        full = replay(reader.connection, "bench-a", tmp_path / "full.sqlite3")
        full_s = time.perf_counter() - started
        started = time.perf_counter()
        one = replay(reader.connection, "bench-a", tmp_path / "one.sqlite3", telemetry_of=frozenset({2}))
        one_s = time.perf_counter() - started
        assert one.samples == 40 and full.samples == 120
        assert one.store.get(2).to_dict() == local.get(2).to_dict()
        assert one.store.record_digest(2) == local.record_digest(2)
        assert one.store.chain_head() == local.chain_head()
        assert one.store.get(1).telemetry == []
        print(f"replay: full {full_s * 1000:.1f} ms, one record's telemetry {one_s * 1000:.1f} ms")
        full.store.close()
        one.store.close()


def _tamper(conninfo: str, sql: str, *params: object) -> None:
    """As the superuser: the append-only triggers off for one change, then on again."""
    with psycopg.connect(conninfo, autocommit=True) as db:
        for table in ("links", "telemetry"):
            db.execute(f"ALTER TABLE ionctl.{table} DISABLE TRIGGER ALL")
        db.execute(sql, params)
        for table in ("links", "telemetry"):
            db.execute(f"ALTER TABLE ionctl.{table} ENABLE TRIGGER ALL")


@pytest.mark.parametrize(
    ("change", "found"),
    [
        ("UPDATE ionctl.links SET content = replace(content, 'patient comfortable', 'patient in pain') "
         "WHERE bench = 'bench-a' AND kind = 'event' AND content LIKE '%%comfortable%%' AND gseq = "
         "(SELECT min(gseq) FROM ionctl.links WHERE bench = 'bench-a' AND content LIKE '%%comfortable%%')",
         "hash mismatch"),
        ("UPDATE ionctl.telemetry SET line = replace(line, '\"set_ma\":2.0', '\"set_ma\":3.0') "
         "WHERE bench = 'bench-a' AND record_id = 1 AND n = 3", "telemetry no longer matches"),
        ("DELETE FROM ionctl.links WHERE bench = 'bench-a' AND gseq = 20", "out of sequence"),
        ("UPDATE ionctl.links SET content = content || ' ' WHERE bench = 'bench-a' AND gseq = 20", "canonical"),
    ],
    ids=["event-text", "telemetry-sample", "link-removed", "content-not-canonical"],
)  # fmt: skip
def test_a_tampered_clinic_copy_does_not_verify(tmp_path: Path, clinic_db: str, change: str, found: str) -> None:
    _clinic, path = bench_store(tmp_path / "a", "p-100", records=2)
    clinic_store(clinic_db)
    push_store(path, clinic_db, "bench-a")
    _tamper(clinic_db, change)
    with ClinicReader.open(clinic_db, timeout_s=3) as reader:
        done = replay(reader.connection, "bench-a", tmp_path / "replayed.sqlite3")
        problem = done.broken or done.store.verify()
        done.store.close()
    assert problem is not None and found in str(problem), problem


def test_this_benchs_unsent_records_replace_the_clinics_copies(tmp_path: Path, clinic_db: str) -> None:
    clinic, path = bench_store(tmp_path / "a", "p-100", records=2)
    clinic_store(clinic_db)
    with Store(path) as store:
        open_one = add_record(store, clinic, "p-100", close=False)  # its opening is sent, its closing not yet
    push_store(path, clinic_db, "bench-a")
    with Store(path) as store:
        store.close_record(open_one, {"outcome": "completed", "energised": True})
        later = add_record(store, clinic, "p-200", sign=False)
        with ClinicReader.open(clinic_db, timeout_s=3) as reader:
            head = reader.heads()["bench-a"][0]
            rows = reader.list_rows()
            mine = unsent(store.db, head)
            assert [r["id"] for r in mine] == [open_one, later]
            listed = merged_rows(rows, mine, "bench-a")
            assert [(r.name, r.source, r.row["outcome"]) for r in listed] == [
                ("bench-a/1", "clinic", "completed"), ("bench-a/2", "clinic", "completed"),
                (f"bench-a/{open_one}", "local", "completed"), (f"bench-a/{later}", "local", "completed")]  # fmt: skip
            assert [
                r.name for r in merged_rows(reader.list_rows(patient="p-200"), mine, "bench-a", patient="p-200")
            ] == [f"bench-a/{later}"]
            assert [r.name for r in reader.list_rows(patient="p-100")] == ["bench-a/1", "bench-a/2", "bench-a/3"]


def test_a_records_chart_details_reach_the_clinic_and_read_back(tmp_path: Path, clinic_db: str) -> None:
    """Schema 4's opening column is hashed with the opening: the clinic re-verifies it on arrival, lists it, and
    a replay gives the bench's record back with its details."""
    from ionctl.records.clinical import ClinicalDetails, TreatmentSite

    details = ClinicalDetails(site=TreatmentSite.parse("both feet"), concentration="tap water", prescriber="Dr B")
    clinic, path = bench_store(tmp_path / "a", "p-200", records=1)
    with Store(path) as store:
        record_id = store.open_record(patient="p-200", operator="tess", prescription={"current_ma": 15.0},
                                      limits={}, limits_sha256="", clinical=details.to_dict())  # fmt: skip
        store.close_record(record_id, {"outcome": "completed"})
    clinic_store(clinic_db)
    push_store(path, clinic_db, "bench-a")
    with ClinicReader.open(clinic_db, timeout_s=3) as reader:
        listed = {row.row["id"]: row.row for row in reader.list_rows(patient="p-200")}
        assert ClinicalDetails.of_record(listed[record_id]) == details
        assert ClinicalDetails.of_record(listed[1]) is None  # a record without details stays without
        done = replay(reader.connection, "bench-a", tmp_path / "replayed.sqlite3")
        assert done.broken is None and done.store.verify() is None
        assert ClinicalDetails.of_record(done.store.get(record_id).fields) == details
        done.store.close()

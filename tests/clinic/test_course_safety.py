"""Course rules clinic-wide, where they could be escaped: a session outside any course at another bench than the
course's (bound by it, and refused or overridden as the site file says while the clinic cannot be reached), and a
bench store restored from an older copy (its reused record ids must not hide the clinic's sessions of it: the
rules are refused as not checkable, and `ionctl records list` warns). Judged on each store's rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from ionctl.records import Store
from ionctl.records.clinic.courses import FORKED, connection_options, history
from ionctl.records.clinic.schema import SCHEMA, initialise
from tests.clinic.syncing import bound_to
from tests.clinic.test_courses import (
    DAY,
    OVERRIDE,
    PATIENT,
    SAM,
    SESSION,
    TESS,
    at,
    bench,
    ionctl,
    records_of,
    run,
    skin_checked,
    sync,
)
from tests.people import SUPERVISOR, TECHNICIAN, Clinic
from tests.pg import PostgresServer
from tests.sim.endpoints import running_sim


@pytest.fixture
def clinic(clinic_db: str) -> str:
    initialise(clinic_db, benches=bound_to("postgres"))
    return clinic_db


def outside(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], where: Clinic, device: Path,
            *extra: str, stdin: str = TESS) -> tuple[int, str]:  # fmt: skip
    """`ionctl run` of the course's preset for its patient, with no --course."""
    code, _, err = ionctl(monkeypatch, capsys, "run", "--patient", PATIENT, "--preset", "dexamethasone",
                          "--electrode-area", "10",
                          "--site", "left forearm", "--device", str(device), *SESSION, "--operator", TECHNICIAN,
                          "--password-stdin", "--json", "--config", str(where.config), *extra, stdin=stdin)  # fmt: skip
    return code, err


def energised(where: Clinic) -> list[tuple[str, int | None, str | None]]:
    return [(r["patient"], r["course_id"], r["course_ref"]) for r in records_of(where) if r["energised"]]


def test_a_session_outside_any_course_at_another_bench_is_bound_by_the_course(
    tmp_path: Path, clinic: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    postgres: PostgresServer,
) -> None:  # fmt: skip
    a, b = bench(tmp_path / "a", "bench-a", clinic), bench(tmp_path / "b", "bench-b", clinic)
    code, _, err = ionctl(monkeypatch, capsys, "course", "start", "--patient", PATIENT, "--preset", "dexamethasone",
                          "--sessions", "3", "--min-interval-days", "3", "--electrode-area", "10",
                          "--config", str(a.config), "--operator", TECHNICIAN, "--password-stdin")  # fmt: skip
    assert code == 0, err
    link_a, link_b = tmp_path / "ionto-a", tmp_path / "ionto-b"
    with running_sim("--serial-link", str(link_a), "--time-scale", "10"), \
            running_sim("--serial-link", str(link_b), "--time-scale", "10"):  # fmt: skip
        assert run(monkeypatch, capsys, a, "1", link_a)[0] == 0
        skin_checked(monkeypatch, capsys, a)
        sync(a, "bench-a", clinic)
        # The same day at bench B, the same patient and preset with no --course: bench A's course binds it.
        code, err = outside(monkeypatch, capsys, b, link_b)
        assert code == 2, err
        assert "course bench-a/1 (dexamethasone" in err and "--course bench-a/1" in err
        # Sent or not, bench A's own course still binds it at bench A.
        code, err = outside(monkeypatch, capsys, a, link_a)
        assert code == 2 and "--course bench-a/1" in err, err
        # A supervisor may set it aside at bench B: it runs, and the audit entry names bench A's course.
        code, err = outside(monkeypatch, capsys, b, link_b, *OVERRIDE, stdin=TESS + SAM)
        assert code == 0, err
    assert energised(b) == [(PATIENT, None, None)]
    with Store(b.store) as store:
        (entry,) = store.audit(action="course-override")
        assert entry["actor"] == SUPERVISOR and entry["detail"]["outside_course"] is True
        assert entry["detail"]["course_ref"] == "bench-a/1" and "clinic" not in entry["detail"]
    # With the clinic server down, a session outside any course is judged on this bench's courses and says so
    # (only course sessions wait on offline_courses): at bench B, which holds none, it runs with the note; at
    # bench A its own course still binds it.
    skin_checked(monkeypatch, capsys, b)
    postgres.stop("immediate")
    try:
        link_b2 = tmp_path / "ionto-b2"
        with running_sim("--serial-link", str(link_b2), "--time-scale", "10"):
            code, err = outside(monkeypatch, capsys, b, link_b2)
        assert code == 0 and "the clinic store cannot be reached" in err and "this bench's were checked" in err, err
        code, err = outside(monkeypatch, capsys, a, tmp_path / "no-such-port")
        assert code == 2 and "--course 1" in err and "the clinic store cannot be reached" in err, err
    finally:
        postgres.start()
    assert energised(b) == [(PATIENT, None, None), (PATIENT, None, None)]
    assert energised(a) == [(PATIENT, 1, None)]


def test_a_store_restored_from_an_older_copy_refuses_course_rules_and_list_warns(
    tmp_path: Path, clinic: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a = bench(tmp_path / "a", "bench-a", clinic, "override")  # even "override" does not let it through
    code, _, err = ionctl(monkeypatch, capsys, "course", "start", "--patient", PATIENT, "--preset", "dexamethasone",
                          "--sessions", "2", "--min-interval-days", "3", "--electrode-area", "10",
                          "--config", str(a.config), "--operator", TECHNICIAN, "--password-stdin")  # fmt: skip
    assert code == 0, err
    backup = tmp_path / "backup.sqlite3"
    with Store(a.store) as store:
        store.db.execute(f"VACUUM INTO '{backup}'")  # the nightly copy: the course, no session yet
    link = tmp_path / "ionto-a"
    with running_sim("--serial-link", str(link), "--time-scale", "10"):
        assert run(monkeypatch, capsys, a, "1", link)[0] == 0
        skin_checked(monkeypatch, capsys, a)
        sync(a, "bench-a", clinic)  # the clinic has the course and session 1
        for suffix in ("", "-wal", "-shm"):  # the bench's disk replaced, its store restored from the copy
            Path(f"{a.store}{suffix}").unlink(missing_ok=True)
        shutil.copy(backup, a.store)
        for day in (4, 8):
            at(monkeypatch, day * DAY)
            for extra, stdin in (((), TESS), (OVERRIDE, TESS + SAM)):
                code, err = run(monkeypatch, capsys, a, "1", link, *extra, stdin=stdin)
                assert code == 2, err
                assert FORKED in err, err
        # A session outside any course is judged on this bench's courses, saying why the clinic's were not
        # read: the course this bench holds still binds it.
        code, err = outside(monkeypatch, capsys, a, link)
        assert code == 2 and "--course 1" in err and FORKED in err, err
    # Ground truth: nothing ran after the restore; the clinic holds the one session that did.
    assert energised(a) == []
    with psycopg.connect(clinic) as db:
        ran = db.execute(f"SELECT count(*) FROM {SCHEMA}.links WHERE bench = 'bench-a' AND kind = 'close' "
                         "AND (doc->>'energised')::int = 1").fetchone()  # fmt: skip
    assert ran is not None and ran[0] == 1
    # `ionctl records list` says so on stderr; `course show` falls back to this bench's store, saying why.
    code, _, err = ionctl(monkeypatch, capsys, "records", "list", "--config", str(a.config))
    assert code == 0 and f"warning: {FORKED}" in err, err
    code, _, err = ionctl(monkeypatch, capsys, "course", "show", "1", "--config", str(a.config))
    assert FORKED in err, err


def test_history_never_merges_two_sessions_that_share_an_id() -> None:
    clinic_row = {"bench": "bench-a", "id": 2, "open_hash": "c" * 64, "created_utc": "2030-01-01T00:00:00+00:00"}
    local_row = {"id": 2, "open_hash": "l" * 64, "created_utc": "2030-01-04T00:00:00+00:00"}
    same = {**clinic_row, "outcome": "completed"}
    merged = history([clinic_row], [local_row, {**same, "bench": None}], "bench-a")
    assert [(r["bench"], r["id"], r["open_hash"][0]) for r in merged] == [("bench-a", 2, "c"), ("bench-a", 2, "l")]
    assert merged[0]["outcome"] == "completed"  # the same record (its opening's hash): this bench's copy wins


def test_a_clinic_read_is_bounded_past_connecting() -> None:
    assert connection_options(2.0) == {"keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1,
                                       "keepalives_count": 2, "tcp_user_timeout": 2000}  # fmt: skip
    assert connection_options(0.1)["tcp_user_timeout"] == 1000

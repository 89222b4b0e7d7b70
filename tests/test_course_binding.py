"""Course rules bind the patient, not only the course: a session of the same preset or drug outside a course in
progress is refused (run it with --course ID) unless a supervisor overrides; a second course of the same preset
or drug while one is in progress, or inside its minimum interval, is a supervisor's act (the supervisor logs
in; signed in the audit trail); and the
rule is checked again in the transaction that opens the record. Over the simulator where current would flow."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ionctl.cli import main as cli
from ionctl.config import load_config
from ionctl.core.courses import START_OVERRIDE_ACTION, CourseRefused, start_course
from ionctl.records import Store
from tests.people import PASSWORDS, SUPERVISOR, TECHNICIAN, Clinic, make_clinic
from tests.sim.endpoints import ROOT, running_sim

TESS, SAM = PASSWORDS[TECHNICIAN] + "\n", PASSWORDS[SUPERVISOR] + "\n"  # what --password-stdin reads
PATIENT = "P-FAST"
DEXA_RX = {"current_ma": 2.0, "electrode_area_cm2": 10.0, "dose_ma_min": 0.5, "ramp_up_s": 5.0, "ramp_down_s": 5.0}
RX_OPTIONS = ("--current", "2", "--electrode-area", "10", "--dose", "0.5", "--ramp-up", "5", "--ramp-down", "5")
PLAN = ("--sessions", "6", "--per-week", "2", "--min-interval-days", "3")


def ionctl(*args: str, stdin: str = "", timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ionctl", *args], cwd=ROOT, input=stdin, capture_output=True,
                          text=True, timeout=timeout_s)  # fmt: skip


def where(clinic: Clinic) -> tuple[str, ...]:
    return ("--db", str(clinic.store), "--config", str(clinic.config))


def energised(db: str, patient: str = PATIENT) -> list[int]:
    with Store(db) as s:
        return [r["id"] for r in s.list_records() if r["patient"] == patient and r["energised"]]


def test_five_sessions_in_seconds_are_refused_from_the_second_one(tmp_path: Path) -> None:
    """The path that gave one patient 5 sessions in ~10 s: a course session, a run without --course, a new course
    of the same preset with no interval, its sessions. Only the first session delivers current."""
    clinic = make_clinic(tmp_path)
    db = str(clinic.store)
    start = ("course", "start", "--patient", PATIENT, "--preset", "dexamethasone", "--operator", TECHNICIAN,
             "--password-stdin", *where(clinic))  # fmt: skip
    assert ionctl(*start, *PLAN, *RX_OPTIONS, stdin=TESS).returncode == 0
    link = tmp_path / "ionto"
    session = ("--operator", TECHNICIAN, "--password-stdin", "--site", "left forearm", "--device", str(link), "--yes",
               *where(clinic))  # fmt: skip
    with running_sim("--serial-link", str(link), "--time-scale", "50"):
        first = ionctl("run", "--course", "1", *session, stdin=TESS)
        assert first.returncode == 0, first.stderr
        outside = ionctl("run", "--preset", "dexamethasone", "--patient", PATIENT, *RX_OPTIONS, *session, stdin=TESS)
        assert outside.returncode == 2, outside.stderr  # refused before the device: 5 would mean it was opened
        assert f"patient {PATIENT} has course 1 (dexamethasone" in outside.stderr
        assert "run it with --course 1" in outside.stderr and "--supervisor-override" in outside.stderr
        same_drug = ionctl("run", "--drug", "Dexamethasone_Sodium_Phosphate", "--polarity", "cathode", "--patient",
                           PATIENT, *RX_OPTIONS, *session, stdin=TESS)  # fmt: skip
        assert same_drug.returncode == 2 and "run it with --course 1" in same_drug.stderr
        again = ionctl("run", "--course", "1", *session, stdin=TESS)
        assert again.returncode == 2 and "minimum interval is 3 days" in again.stderr
        second_course = ionctl(*start, "--sessions", "6", "--min-interval-days", "0", *RX_OPTIONS, stdin=TESS)
        assert second_course.returncode == 2, second_course.stderr
        assert "already has course 1" in second_course.stderr and "supervisor" in second_course.stderr
    assert energised(db) == [first_record(db)]
    with Store(db) as s:
        assert [c["id"] for c in s.courses()] == [1]
        assert all(r["outcome"] == "refused" for r in s.list_records() if r["id"] != first_record(db))


def first_record(db: str) -> int:
    with Store(db) as s:
        return int(s.course_records(1)[0]["id"])


def test_a_session_outside_the_course_with_the_supervisor_runs_and_is_audited(tmp_path: Path) -> None:
    clinic = make_clinic(tmp_path)
    db = str(clinic.store)
    with Store(db) as s:
        course_id = start_course(s, load_config(clinic.config), patient=PATIENT, operator=TECHNICIAN,
                                 preset="dexamethasone", sessions=6, min_interval_days=3,
                                 prescription=DEXA_RX)  # fmt: skip
    link = tmp_path / "ionto"
    session = ("--preset", "dexamethasone", "--patient", PATIENT, *RX_OPTIONS, "--operator", TECHNICIAN,
               "--site", "left forearm", "--device",
               str(link), "--yes", *where(clinic), "--json", "--supervisor-override", "travelling", "--supervisor",
               SUPERVISOR, "--password-stdin")  # fmt: skip
    with running_sim("--serial-link", str(link), "--time-scale", "50"):
        wrong = ionctl("run", *session, stdin=TESS + "Wrong-pass-4321\n")
        assert wrong.returncode == 2 and "override refused" in wrong.stderr and "wrong password" in wrong.stderr
        done = ionctl("run", *session, stdin=TESS + SAM)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    with Store(db) as s:
        (override,) = s.audit(action="course-override")
        assert override["course_id"] == course_id and override["record_id"] == result["record_id"]
        assert override["detail"]["reason"] == "travelling" and override["detail"]["outside_course"] is True
        assert f"has course {course_id}" in override["detail"]["rule"]
        assert override["actor"] == SUPERVISOR and override["detail"]["signature"]["signer"] == SUPERVISOR
        assert [e["actor"] for e in s.audit(action="login-denied")] == [SUPERVISOR]
        assert s.verify() is None


@pytest.fixture
def course_in_progress(tmp_path: Path) -> Clinic:
    clinic = make_clinic(tmp_path)
    with Store(clinic.store) as s:
        start_course(s, load_config(clinic.config), patient=PATIENT, operator=TECHNICIAN, preset="dexamethasone",
                     sessions=6, prescription=DEXA_RX)  # fmt: skip
    return clinic


SECOND = ("course", "start", "--patient", PATIENT, "--preset", "dexamethasone", "--operator", TECHNICIAN,
          "--password-stdin", "--sessions", "3", *RX_OPTIONS)  # fmt: skip


def test_a_second_course_is_refused_without_the_supervisors_password(
    course_in_progress: Clinic, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(course_in_progress.store)
    monkeypatch.setattr("sys.stdin", io.StringIO(TESS))
    assert cli([*SECOND, *where(course_in_progress)]) == 2
    err = capsys.readouterr().err
    assert f"patient {PATIENT} already has course 1 (dexamethasone, dexamethasone-sodium-phosphate; 0 of 6 done) " \
           "in progress" in err  # fmt: skip
    monkeypatch.setattr("sys.stdin", io.StringIO(TESS + "Wrong-pass-4321\n"))
    override = ("--supervisor-override", "new plan", "--supervisor", SUPERVISOR)
    assert cli([*SECOND, *where(course_in_progress), *override]) == 2
    err = capsys.readouterr().err
    assert "override refused" in err and "wrong password" in err
    with Store(db) as s:
        assert [c["id"] for c in s.courses()] == [1]
        assert s.audit(action=START_OVERRIDE_ACTION) == []
        assert [e["actor"] for e in s.audit(action="login-denied")] == [SUPERVISOR]


def test_a_second_course_with_the_supervisor_is_started_and_audited(
    course_in_progress: Clinic, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(course_in_progress.store)
    monkeypatch.setattr("sys.stdin", io.StringIO(TESS + SAM))
    override = ("--supervisor-override", "new plan after review", "--supervisor", SUPERVISOR)
    assert cli([*SECOND, *where(course_in_progress), *override]) == 0
    assert "course 2: patient P-FAST" in capsys.readouterr().out
    with Store(db) as s:
        assert [c["id"] for c in s.courses()] == [1, 2]
        (entry,) = s.audit(action=START_OVERRIDE_ACTION)
        assert (entry["course_id"], entry["actor"]) == (2, SUPERVISOR)
        assert entry["detail"]["signature"]["full_name"] == "Sam Supervisor"
        assert entry["detail"]["reason"] == "new plan after review" and entry["detail"]["operator"] == TECHNICIAN
        assert "already has course 1" in entry["detail"]["rule"]
        assert s.verify() is None


class Terminal(io.StringIO):
    """A stdin that is a terminal: passwords are asked (getpass), not read from it."""

    def isatty(self) -> bool:
        return True


def test_with_an_override_the_operators_password_is_read_first_then_the_supervisors(
    course_in_progress: Clinic, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(course_in_progress.store)
    override = ("--supervisor-override", "new plan after review", "--supervisor", SUPERVISOR)
    monkeypatch.setattr("sys.stdin", io.StringIO(SAM + TESS))  # the two lines the wrong way round
    assert cli([*SECOND, *where(course_in_progress), *override]) == 2
    err = capsys.readouterr().err
    assert "course not started: 'tess': unknown account or wrong password" in err, err
    with Store(db) as s:
        assert [c["id"] for c in s.courses()] == [1]
        assert [e["actor"] for e in s.audit(action="login-denied")] == [TECHNICIAN]  # sam's, read as tess's
        assert s.audit(action=START_OVERRIDE_ACTION) == []

    asked: list[str] = []  # at a terminal: both asked without echo, the operator first

    def getpass(prompt: str) -> str:
        asked.append(prompt)
        return {f"password for {name}: ": PASSWORDS[name] for name in (TECHNICIAN, SUPERVISOR)}[prompt]

    monkeypatch.setattr("getpass.getpass", getpass)
    monkeypatch.setattr("sys.stdin", Terminal(""))
    at_terminal = [a for a in SECOND if a != "--password-stdin"]
    assert cli([*at_terminal, *where(course_in_progress), *override]) == 0
    assert asked == ["password for tess: ", "password for sam: "]
    with Store(db) as s:
        assert [(c["id"], c["operator"]) for c in s.courses()] == [(1, TECHNICIAN), (2, TECHNICIAN)]
        (entry,) = s.audit(action=START_OVERRIDE_ACTION)
        assert (entry["course_id"], entry["actor"], entry["detail"]["operator"]) == (2, SUPERVISOR, TECHNICIAN)
        assert [e["actor"] for e in s.audit(action="login")][-2:] == [TECHNICIAN, SUPERVISOR]


def test_a_course_of_the_same_drug_inside_the_last_ones_minimum_interval_is_refused(tmp_path: Path) -> None:
    """A finished course still binds until its minimum interval after the last session has passed."""
    with Store(tmp_path / "r.sqlite3") as s:
        config = load_config(None)
        first = start_course(s, config, patient=PATIENT, operator="T-1", preset="dexamethasone", sessions=1,
                             min_interval_days=3, prescription=DEXA_RX)  # fmt: skip
        record_id = s.open_record(patient=PATIENT, operator="T-1", prescription={}, limits={}, limits_sha256="",
                                  course_id=first)  # fmt: skip
        s.close_record(record_id, {"outcome": "completed", "energised": True, "dose_ma_min": 0.5})
        with pytest.raises(CourseRefused, match=r"course 1 .*all 1 done\) whose minimum interval of 3 days runs until"):
            start_course(s, config, patient=PATIENT, operator="T-1", preset="dexamethasone", sessions=2,
                         min_interval_days=0, prescription=DEXA_RX)  # fmt: skip
        # another drug is not bound by it
        start_course(s, config, patient=PATIENT, operator="T-1", preset="lidocaine", sessions=2,
                     prescription={"electrode_area_cm2": 10.0})  # fmt: skip
        assert [c["preset"] for c in s.courses()] == ["dexamethasone", "lidocaine"]


def test_the_rule_is_checked_again_as_the_record_opens(tmp_path: Path) -> None:
    """The session outside courses passed the check at the prompt; a course of the same drug started before its
    record opened refuses it in the opening transaction."""
    from ionctl.treatment import Recorder, opening_check

    config = load_config(None)
    rx = config.preset("dexamethasone").prescription(patient_id=PATIENT, operator_id="T-1", electrode_area_cm2=10.0)
    check = opening_check(config, None, course_rules=True, patient=PATIENT, preset=None, drug=rx.drug)
    with Store(tmp_path / "r.sqlite3") as s:
        start_course(s, config, patient=PATIENT, operator="T-1", preset="dexamethasone", sessions=6,
                     prescription=DEXA_RX)  # fmt: skip
        err = io.StringIO()
        assert Recorder.open(s, rx, config.limits, err, check=check) is None
        assert "not started" in err.getvalue() and "run it with --course 1" in err.getvalue()
        assert s.list_records() == []

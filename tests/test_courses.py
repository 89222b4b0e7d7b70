"""Treatment courses: the rules (interval, session count, per-week rate, which records count) on plain data at a
given time; starting a course from a preset; the seed case's regimen end to end in the store; supervisor
overrides through `ionctl run --course` (refused with a wrong supervisor password before the device is touched,
signed by the supervisor with the right one, on the simulator); `ionctl course start/show/list/export` and the
summary's JSON and PDF."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ionctl.cli import main as cli
from ionctl.config import load_config
from ionctl.core.courses import (
    CourseError,
    CourseRefused,
    Plan,
    check_next,
    evaluate,
    next_earliest,
    start_course,
    status,
    summary,
)
from ionctl.records import Store
from ionctl.records.clinical import TreatmentSite
from ionctl.records.course_export import DOSE_COLOUR, CourseExportError, CourseSummary, build_figure, to_json, to_pdf
from tests.people import ADMIN, AUDITOR, PASSWORDS, SUPERVISOR, TECHNICIAN, Clinic, make_clinic
from tests.sim.endpoints import ROOT, running_sim

MONDAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MONDAY_0 = MONDAY.replace(hour=0)  # its day's start (the tests run in UTC: tests/conftest.py)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
ASC = "asc-exosome-hand-eczema"
#: The exosome regimen at the packaged limits' 4 mA: the report's 50 mA is refused (max_current_ma 4.0).
ASC_RX = {"current_ma": 4.0, "electrode_area_cm2": 150.0, "duration_min": 20.0}
DEXA_RX = {"electrode_area_cm2": 10.0}
ASC_OPTIONS = ("--current", "4", "--electrode-area", "150", "--duration", "20")
TESS, SAM = PASSWORDS[TECHNICIAN] + "\n", PASSWORDS[SUPERVISOR] + "\n"  # what --password-stdin reads


def course_row(sessions: int = 6, per_week: float | None = 2, min_interval_days: float | None = 3) -> dict[str, Any]:
    return {"id": 3, "sessions": sessions, "per_week": per_week, "min_interval_days": min_interval_days}


def record(record_id: int, at: datetime, *, outcome: str | None = "completed", energised: int | None = 1,
           dose: float | None = 5.0) -> dict[str, Any]:  # fmt: skip
    return {"id": record_id, "created_utc": at.isoformat(timespec="milliseconds"), "outcome": outcome,
            "energised": energised, "dose_ma_min": dose, "prescribed_dose_ma_min": 5.0}  # fmt: skip


def refused(record_id: int, at: datetime) -> dict[str, Any]:
    return record(record_id, at, outcome="refused", energised=0, dose=None)


# -- the rules, on plain data -------------------------------------------------------------------------------


def test_a_session_the_evening_before_the_third_day_is_refused_naming_the_rule_and_dates() -> None:
    done = [record(1, MONDAY)]
    early = evaluate(course_row(per_week=None), done, MONDAY_0 + 3 * DAY - MINUTE)  # Wednesday 23:59
    assert not early.allowed_now
    assert early.refusal == (
        "course 3: the minimum interval is 3 days; the last session was on 2026-11-02 09:00 UTC, "
        "the next earliest is 2026-11-05 00:00 UTC"
    )
    assert early.next_earliest == MONDAY_0 + 3 * DAY


def test_3_days_are_calendar_days_whatever_the_hours_of_the_appointments() -> None:
    """Monday 10:00, then Thursday 09:00: a routine twice-a-week schedule, 3 days apart, not 71 hours."""
    monday_10 = MONDAY_0 + 10 * HOUR
    for now in (MONDAY_0 + 3 * DAY, MONDAY_0 + 3 * DAY + 9 * HOUR):
        assert evaluate(course_row(per_week=None), [record(1, monday_10)], now).allowed_now


def test_days_are_counted_in_the_clinics_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """In Tokyo (UTC+9) a Monday 08:00 session is on Monday; Thursday 07:00 local (Wednesday 22:00 UTC) is the
    third day after it, while Wednesday 23:00 local is not."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    monday_8_local = MONDAY_0 - 1 * HOUR  # 2026-11-01 23:00 UTC = Monday 08:00 in Tokyo
    plan = course_row(per_week=None)
    assert evaluate(plan, [record(1, monday_8_local)], monday_8_local + 3 * DAY - HOUR).allowed_now
    late = evaluate(plan, [record(1, monday_8_local)], monday_8_local + 2 * DAY + 15 * HOUR)
    assert late.refusal is not None and "next earliest is 2026-11-05 00:00 JST" in late.refusal


def test_the_seventh_session_of_a_six_session_plan_is_refused() -> None:
    done = [record(n + 1, MONDAY + n * 7 * DAY) for n in range(6)]
    later = evaluate(course_row(), done, MONDAY + 100 * DAY)
    assert (later.done, later.left, later.next_earliest) == (6, 0, None)
    assert later.refusal == "course 3: all 6 planned sessions are done"
    fifth = evaluate(course_row(), done[:5], MONDAY + 100 * DAY)
    assert (fifth.done, fifth.left) == (5, 1) and fifth.allowed_now


def test_at_most_per_week_sessions_in_any_rolling_7_days() -> None:
    plan = course_row(per_week=2, min_interval_days=None)
    done = [record(1, MONDAY), record(2, MONDAY + DAY)]
    third = evaluate(plan, done, MONDAY_0 + 7 * DAY - MINUTE)  # Sunday 23:59
    assert third.refusal is not None
    assert "at most 2 sessions in any 7 days (2 a week)" in third.refusal
    assert third.refusal.endswith("the next earliest is 2026-11-09 00:00 UTC")
    assert evaluate(plan, done, MONDAY_0 + 7 * DAY).allowed_now  # the first has left the window


def test_a_rate_below_one_a_week_spreads_one_session_over_a_longer_window() -> None:
    plan = Plan(sessions=3, per_week=0.5)
    assert next_earliest([MONDAY], plan) == MONDAY_0 + 14 * DAY
    assert evaluate(course_row(per_week=0.5, min_interval_days=None), [record(1, MONDAY)], MONDAY + 13 * DAY).refusal


def test_the_next_earliest_date_is_the_latest_of_the_interval_and_the_rate_rules() -> None:
    # Monday and Thursday done: the interval allows Sunday, two-a-week only the next Monday.
    done = [record(1, MONDAY), record(2, MONDAY + 3 * DAY)]
    sunday = evaluate(course_row(), done, MONDAY + 6 * DAY)
    assert sunday.next_earliest == MONDAY_0 + 7 * DAY
    assert sunday.refusal is not None and "at most 2 sessions in any 7 days" in sunday.refusal
    friday = evaluate(course_row(), done, MONDAY + 4 * DAY)
    assert friday.refusal is not None
    assert "minimum interval is 3 days" in friday.refusal and "at most 2 sessions" in friday.refusal
    assert friday.refusal.endswith("the next earliest is 2026-11-09 00:00 UTC")


def test_an_open_record_counts_and_blocks_a_second_session_even_without_an_interval() -> None:
    running = record(1, MONDAY, outcome=None, energised=None, dose=None)
    now = evaluate(course_row(per_week=None, min_interval_days=None), [running], MONDAY + 10 * DAY)
    assert now.done == 1 and now.running == (1,)
    assert now.refusal is not None and "still running (record 1 is open)" in now.refusal


def test_refused_records_do_not_count_nor_start_the_interval() -> None:
    done = [record(1, MONDAY), refused(2, MONDAY + 3 * DAY), refused(3, MONDAY + 4 * DAY)]
    now = evaluate(course_row(per_week=None), done, MONDAY + 4 * DAY + MINUTE)
    assert (now.done, now.left, now.last_session) == (1, 5, MONDAY)
    assert now.allowed_now
    assert [s.counts for s in now.sessions] == [True, False, False]
    assert [s.number for s in now.sessions] == [1, None, None]


def test_a_session_stopped_after_current_flowed_counts_and_its_dose_adds_up() -> None:
    done = [record(1, MONDAY, dose=40.0), record(2, MONDAY + 3 * DAY, outcome="stopped", dose=12.5),
            record(3, MONDAY + 7 * DAY, outcome="fault", energised=0, dose=0.0)]  # fmt: skip
    now = evaluate(course_row(), done, MONDAY + 20 * DAY)
    assert now.done == 2 and now.cumulative_dose_ma_min == pytest.approx(52.5)


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(course_row(), [], datetime(2026, 11, 2, 9, 0))


@pytest.mark.parametrize(
    ("values", "problem"),
    [({"sessions": 0}, "sessions"), ({"sessions": 2, "per_week": 0}, "per_week"),
     ({"sessions": 2, "min_interval_days": -1}, "min_interval_days"),
     ({"sessions": 2, "per_week": float("nan")}, "per_week")],
)  # fmt: skip
def test_a_plan_out_of_range_is_refused(values: dict[str, Any], problem: str) -> None:
    with pytest.raises(CourseError, match=problem):
        Plan(**values)


# -- starting a course --------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "records.sqlite3") as s:
        yield s


def test_a_course_takes_its_plan_from_the_preset_and_keeps_the_preset_as_it_was(store: Store) -> None:
    config = load_config(None)
    course_id = start_course(store, config, patient="P-1", operator="T-1", preset=ASC, prescription=ASC_RX)
    course = store.course(course_id)
    assert (course["sessions"], course["per_week"], course["min_interval_days"]) == (6, 2.0, 3.0)
    assert course["config_sha256"] == config.sha256
    assert course["plan"]["preset"]["current_ma"] == 50.0 and course["plan"]["preset"]["polarity"] == "cathode"
    assert course["plan"]["config_sha256"] == config.sha256


def test_values_given_replace_the_presets_plan(store: Store) -> None:
    course_id = start_course(store, load_config(None), patient="P-1", operator="T-1", preset=ASC, sessions=8,
                             min_interval_days=2, prescription=ASC_RX)  # fmt: skip
    course = store.course(course_id)
    assert (course["sessions"], course["per_week"], course["min_interval_days"]) == (8, 2.0, 2.0)
    assert course["plan"]["given"] == {"sessions": 8, "min_interval_days": 2}


def test_a_preset_without_a_plan_needs_the_number_of_sessions(store: Store) -> None:
    with pytest.raises(CourseError, match="--sessions"):
        start_course(store, load_config(None), patient="P-1", operator="T-1", preset="dexamethasone",
                     prescription=DEXA_RX)  # fmt: skip
    with pytest.raises(CourseError, match="no such preset"):
        start_course(store, load_config(None), patient="P-1", operator="T-1", preset="nope", sessions=2)
    assert store.courses() == []


# -- the seed case's regimen in the store --------------------------------------------------------------------


def stored_session(store: Store, course_id: int, at: datetime, *, dose: float = 8.0, site: str | None = None) -> int:
    """A session of the course that delivered `dose`, opened at `at` (on treatment site `site`)."""
    clinical = {"site": TreatmentSite.parse(site).to_dict()} if site else None
    record_id = store.open_record(patient="P-ECZ", operator="T-1", prescription={"drug": "asc-exosomes"},
                                  limits={}, limits_sha256="", created_utc=at.isoformat(timespec="milliseconds"),
                                  course_id=course_id, clinical=clinical)  # fmt: skip
    store.close_record(record_id, {"outcome": "completed", "energised": True, "dose_ma_min": dose,
                                   "prescribed_dose_ma_min": dose})  # fmt: skip
    return record_id


def test_the_asc_exosome_regimen_six_sessions_twice_a_week_3_days_apart(store: Store) -> None:
    course_id = start_course(store, load_config(None), patient="P-ECZ", operator="T-1", preset=ASC,
                             created_utc=(MONDAY - DAY).isoformat(), prescription=ASC_RX)  # fmt: skip
    schedule = [MONDAY + week * 7 * DAY + offset * DAY for week in range(3) for offset in (0, 3)]  # Mon, Thu
    for n, at in enumerate(schedule):
        check_next(store, course_id, now=at)  # each on its day passes the rules
        stored_session(store, course_id, at)
        if n == 0:
            with pytest.raises(CourseRefused, match="minimum interval is 3 days"):
                check_next(store, course_id, now=at + 2 * DAY)  # two days later: too early
    with pytest.raises(CourseRefused, match="all 6 planned sessions are done"):
        check_next(store, course_id, now=schedule[-1] + 30 * DAY)
    final = status(store, course_id, schedule[-1] + 30 * DAY)
    assert (final.done, final.left, final.last_session) == (6, 0, schedule[-1])
    assert final.cumulative_dose_ma_min == pytest.approx(48.0)


def test_a_session_on_the_sunday_after_a_thursday_is_refused_by_the_two_a_week_rule(store: Store) -> None:
    course_id = start_course(store, load_config(None), patient="P-ECZ", operator="T-1", preset=ASC,
                             prescription=ASC_RX)  # fmt: skip
    stored_session(store, course_id, MONDAY)
    stored_session(store, course_id, MONDAY + 3 * DAY)
    with pytest.raises(CourseRefused, match=r"at most 2 sessions in any 7 days .* next earliest is 2026-11-09 00:00"):
        check_next(store, course_id, now=MONDAY + 6 * DAY)


def test_two_sessions_of_a_course_started_together_cannot_both_open(store: Store) -> None:
    """Both pass the course check at the prompt; the check runs again inside the record's opening transaction,
    so the second finds the first's record open and is refused."""
    from ionctl.treatment import Recorder, opening_check

    config = load_config(None)
    course_id = start_course(store, config, patient="P-ECZ", operator="T-1", preset="dexamethasone", sessions=6,
                             prescription=DEXA_RX)  # fmt: skip
    rx = config.preset("dexamethasone").prescription(patient_id="P-ECZ", operator_id="T-1", electrode_area_cm2=10.0)
    check_next(store, course_id)  # both technicians' runs got this far
    check = opening_check(config, course_id, course_rules=True)
    first = Recorder.open(store, rx, config.limits, io.StringIO(), course_id=course_id, check=check)
    assert first is not None
    try:
        err = io.StringIO()
        second = Recorder.open(store, rx, config.limits, err, course_id=course_id, check=check)
        assert second is None and f"course {course_id}" in err.getvalue() and "open" in err.getvalue()
        assert [r["id"] for r in store.course_records(course_id)] == [first.record_id]
    finally:
        first.release()


# -- overrides through `ionctl run --course` -----------------------------------------------------------------


def ionctl(*args: str, stdin: str = "", timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ionctl", *args], cwd=ROOT, input=stdin, capture_output=True,
                          text=True, timeout=timeout_s)  # fmt: skip


@pytest.fixture
def course_done(tmp_path: Path) -> tuple[str, int]:
    """A clinic's store (tests/people.py) with a one-session dexamethasone course whose session is done."""
    clinic = make_clinic(tmp_path)
    with Store(clinic.store) as s:
        course_id = start_course(s, load_config(clinic.config), patient="P-RUN", operator="T-1",
                                 preset="dexamethasone", sessions=1, min_interval_days=3,
                                 prescription=DEXA_RX)  # fmt: skip
        stored_session(s, course_id, datetime.now(UTC) - DAY)
    return str(clinic.store), course_id


def clinic_options(db: str) -> tuple[str, ...]:
    """The clinic's site file next to its store `db`, and its technician logging in (password from stdin)."""
    return ("--config", str(Path(db).parent / "site.toml"), "--operator", TECHNICIAN, "--password-stdin")


SESSION = ("--electrode-area", "10", "--dose", "0.5", "--ramp-up", "5", "--ramp-down", "5", "--yes")


def test_a_course_session_beyond_the_plan_is_refused_without_an_override(
    tmp_path: Path, course_done: tuple[str, int]
) -> None:
    db, course_id = course_done
    done = ionctl("run", "--course", str(course_id),
                  "--site", "left forearm", "--device", str(tmp_path / "no-such-port"), *SESSION, "--db", db,
                  *clinic_options(db), stdin=TESS)  # fmt: skip
    assert done.returncode == 2, done.stderr  # 5 would mean the device was opened
    assert f"course {course_id}: all 1 planned sessions are done" in done.stderr
    assert "--supervisor-override" in done.stderr


def test_an_override_with_a_wrong_password_is_refused_before_the_device_and_recorded(
    tmp_path: Path, course_done: tuple[str, int]
) -> None:
    db, course_id = course_done
    done = ionctl("run", "--course", str(course_id),
                  "--site", "left forearm", "--device", str(tmp_path / "no-such-port"), *SESSION,
                  "--db", db, *clinic_options(db), "--supervisor-override", "patient travels", "--supervisor",
                  SUPERVISOR, stdin=TESS + "Wrong-pass-654\n")  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "override refused" in done.stderr and "wrong password" in done.stderr
    with Store(db) as s:
        assert s.audit(action="course-override") == []
        denied = s.audit(action="login-denied")
        assert [(e["actor"], e["detail"]["reason"]) for e in denied] == [(SUPERVISOR, "wrong password")]
        records = s.course_records(course_id)
        assert [(r["outcome"], r["energised"]) for r in records[1:]] == [("refused", 0)]
        assert status(s, course_id, datetime.now(UTC)).done == 1  # the refusal is not a session


def test_an_override_by_the_supervisor_runs_the_session_and_is_signed_in_the_audit_trail(
    tmp_path: Path, course_done: tuple[str, int]
) -> None:
    db, course_id = course_done
    link = tmp_path / "ionto"
    # 2 mA·min at 5x: the dose-overshoot monitor allows 2 % (0.04 mA·min here), about 160 ms of the host's time at
    # the simulated skin's compliance current; 0.5 mA·min at 50x left it 4 ms, which a loaded machine overran
    unhurried = ("--electrode-area", "10", "--dose", "2", "--ramp-up", "5", "--ramp-down", "5", "--yes")
    with running_sim("--serial-link", str(link), "--time-scale", "5"):
        override = ("--supervisor-override", "patient travels next week", "--supervisor", SUPERVISOR)
        done = ionctl("run", "--course", str(course_id),
                      "--site", "left forearm", "--device", str(link), *unhurried, "--db", db, "--json",
                      *clinic_options(db), *override, stdin=TESS + SAM)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["outcome"] == "completed" and result["record"]["course_id"] == course_id
    with Store(db) as s:
        (override,) = s.audit(action="course-override", course_id=course_id)
        assert override["actor"] == SUPERVISOR and override["detail"]["signature"]["signer"] == SUPERVISOR
        assert override["detail"]["reason"] == "patient travels next week"
        assert override["detail"]["rule"] == f"course {course_id}: all 1 planned sessions are done"
        assert override["detail"]["operator"] == TECHNICIAN
        assert override["record_id"] == result["record_id"]  # the override names the session it allowed
        now = status(s, course_id, datetime.now(UTC))
        assert (now.done, now.left) == (2, 0)
        shown = summary(s, course_id, datetime.now(UTC))
        assert shown.overrides[0]["detail"]["reason"] == "patient travels next week"
        assert s.verify() is None


# -- the command line and the exports --------------------------------------------------------------------------


def started_by(clinic: Clinic, name: str = TECHNICIAN) -> tuple[str, ...]:
    """`course start`'s options for the clinic's store and site file, `name` logging in (password from stdin)."""
    return ("--db", str(clinic.store), "--config", str(clinic.config), "--operator", name, "--password-stdin")


def cli_with(monkeypatch: pytest.MonkeyPatch, args: list[str], stdin: str = TESS) -> int:
    """`ionctl ARGS` in this process, `stdin` (not a terminal) what --password-stdin reads."""
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return cli(args)


def test_course_start_show_list_and_export_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clinic = make_clinic(tmp_path)
    db = str(clinic.store)
    assert cli_with(monkeypatch, ["course", "start", "--patient", "P-CLI", "--preset", ASC, *ASC_OPTIONS,
                                  *started_by(clinic)]) == 0  # fmt: skip
    assert "course 1: patient P-CLI, preset asc-exosome-hand-eczema, 6 sessions" in capsys.readouterr().out
    with Store(db) as s:
        stored_session(s, 1, datetime.now(UTC) - 2 * DAY, dose=7.5)
    assert cli(["course", "show", "1", "--db", db]) == 0
    shown = capsys.readouterr().out
    assert "1 done, 5 left of 6" in shown and "7.500 mA·min" in shown
    assert "A session now would be refused: course 1: the minimum interval is 3 days" in shown
    assert cli(["course", "show", "1", "--json", "--db", db]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == "ionctl.course" and data["status"]["done"] == 1
    assert data["status"]["next_earliest_utc"] is not None and data["status"]["allowed_now"] is False
    assert cli(["course", "list", "--patient", "P-CLI", "--json", "--db", db]) == 0
    assert [(r["id"], r["done"], r["left"]) for r in json.loads(capsys.readouterr().out)] == [(1, 1, 5)]
    out = tmp_path / "course.json"
    assert cli(["course", "export", "1", "--format", "json", "-o", str(out), "--db", db]) == 0
    assert json.loads(out.read_text())["sessions"][0]["dose_ma_min"] == 7.5


def test_course_start_refuses_bad_input_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clinic = make_clinic(tmp_path)
    db = str(clinic.store)
    assert cli_with(monkeypatch, ["course", "start", "--patient", "P", "--preset", "dexamethasone",
                                  *started_by(clinic)]) == 2  # fmt: skip
    assert "--sessions" in capsys.readouterr().err
    site = tmp_path / "edited.toml"
    site.write_text(clinic.config.read_text(encoding="utf-8") + "\n# edited by hand\n", encoding="utf-8")
    args = ["course", "start", "--patient", "P", "--preset", ASC, *ASC_OPTIONS, *started_by(clinic), "--config",
            str(site)]  # fmt: skip
    assert cli_with(monkeypatch, args, stdin="") == 2  # refused before a password is asked
    assert "is not approved" in capsys.readouterr().err
    assert cli(["course", "show", "9", "--db", db]) == 1


def test_the_course_names_the_account_that_logged_in_a_technician_or_a_supervisor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clinic = make_clinic(tmp_path)
    start = ["course", "start", "--preset", ASC, *ASC_OPTIONS]
    assert cli_with(monkeypatch, [*start, "--patient", "P-T", *started_by(clinic)]) == 0
    assert "run its sessions with: ionctl run --course 1 --operator NAME --device ADDR" in capsys.readouterr().out
    assert cli_with(monkeypatch, [*start, "--patient", "P-S", *started_by(clinic, SUPERVISOR)], stdin=SAM) == 0
    with Store(clinic.store) as s:
        assert [(c["patient"], c["operator"]) for c in s.courses()] == [("P-T", TECHNICIAN), ("P-S", SUPERVISOR)]
        assert [e["actor"] for e in s.audit(action="login")][-2:] == [TECHNICIAN, SUPERVISOR]
        assert s.audit(action="login-denied") == []


def test_a_wrong_password_an_unknown_account_or_a_lockout_starts_no_course(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clinic = make_clinic(tmp_path)
    start = ["course", "start", "--patient", "P-W", "--preset", ASC, *ASC_OPTIONS]
    assert cli_with(monkeypatch, [*start, *started_by(clinic)], stdin="Not-her-password-1\n") == 2
    assert "ionctl course: course not started: 'tess': unknown account or wrong password" in capsys.readouterr().err
    assert cli_with(monkeypatch, [*start, *started_by(clinic, "T-07")]) == 2  # typed free text is no account
    assert "course not started: 'T-07': unknown account or wrong password" in capsys.readouterr().err
    assert cli_with(monkeypatch, [*start, *started_by(clinic)], stdin="") == 2
    assert "course not started: password for tess: no line on stdin" in capsys.readouterr().err
    without_stdin = [a for a in started_by(clinic) if a != "--password-stdin"]
    assert cli_with(monkeypatch, [*start, *without_stdin]) == 2  # a pipe is no terminal to ask at
    assert "stdin is not a terminal" in capsys.readouterr().err
    for _ in range(4):  # five wrong passwords in all lock the account
        assert cli_with(monkeypatch, [*start, *started_by(clinic)], stdin="Not-her-password-1\n") == 2
    assert "'tess' is locked after 5 wrong passwords until" in capsys.readouterr().err
    assert cli_with(monkeypatch, [*start, *started_by(clinic)]) == 2  # her own password, while locked
    assert "course not started: 'tess' is locked" in capsys.readouterr().err
    with Store(clinic.store) as s:
        assert s.courses() == []
        denied = [(e["detail"]["name"], e["detail"]["reason"]) for e in s.audit(action="login-denied")]
        assert denied == [(TECHNICIAN, "wrong password"), ("T-07", "unknown account"),
                          *[(TECHNICIAN, "wrong password")] * 4, (TECHNICIAN, "locked")]  # fmt: skip
        assert [e["actor"] for e in s.audit(action="user-locked")] == [TECHNICIAN]
        assert s.verify() is None


def test_an_auditor_or_an_administrator_cannot_start_a_course(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clinic = make_clinic(tmp_path)
    start = ["course", "start", "--patient", "P-A", "--preset", ASC, *ASC_OPTIONS]
    for name in (AUDITOR, ADMIN):
        assert cli_with(monkeypatch, [*start, *started_by(clinic, name)], stdin=PASSWORDS[name] + "\n") == 2
        err = capsys.readouterr().err
        assert f"course not started: {name} is a" in err and "may run sessions" in err, err
    with Store(clinic.store) as s:
        assert s.courses() == []
        refusals = s.audit(action="act-denied")
        assert [e["actor"] for e in refusals] == [AUDITOR, ADMIN]
        assert all(e["detail"]["attempt"] == "start a course for patient P-A" for e in refusals)


def test_the_json_export_reads_back_into_the_same_summary(store: Store) -> None:
    course_id = start_course(store, load_config(None), patient="P-J", operator="T-1", preset=ASC, prescription=ASC_RX)
    stored_session(store, course_id, MONDAY)
    store.append_audit("course-override", "supervisor", {"reason": "r", "rule": "x"}, course_id=course_id)
    original = summary(store, course_id, MONDAY + DAY)
    again = CourseSummary.from_dict(json.loads(to_json(original)))
    assert again == original
    assert again.status["next_earliest_utc"] == "2026-11-05T00:00:00.000+00:00"
    with pytest.raises(CourseExportError):
        CourseSummary.from_dict({**original.to_dict(), "format": "ionctl.record"})


def course_with_sessions(store: Store) -> CourseSummary:
    course_id = start_course(store, load_config(None), patient="P-PDF", operator="T-1", preset=ASC,
                             prescription=ASC_RX)  # fmt: skip
    for n, at in enumerate([MONDAY, MONDAY + 3 * DAY, MONDAY + 7 * DAY]):
        stored_session(store, course_id, at, dose=6.0 + n)
    store.append_audit("course-override", "supervisor", {"reason": "r", "rule": "x"}, course_id=course_id)
    return summary(store, course_id, MONDAY + 8 * DAY)


def test_the_course_pdf_is_one_a4_page(store: Store) -> None:
    pytest.importorskip("matplotlib")
    data = to_pdf(course_with_sessions(store))
    assert data.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data)) == 1
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", data)
    assert box is not None
    assert float(box[1]) == pytest.approx(595.3, abs=1.0) and float(box[2]) == pytest.approx(841.9, abs=1.0)
    assert b"Iontophoresis treatment course" in data


def test_the_course_page_draws_the_cumulative_dose_not_a_blank(store: Store) -> None:
    pytest.importorskip("matplotlib")
    import numpy as np
    from matplotlib.colors import to_rgb
    from matplotlib.image import imread

    course = course_with_sessions(store)
    fig = build_figure(course)
    line = next(line for ax in fig.get_axes() for line in ax.get_lines() if line.get_gid() == "cumulative-dose")
    assert np.asarray(line.get_ydata(), dtype=float).tolist() == pytest.approx([6.0, 13.0, 21.0])
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100)
    out.seek(0)
    rgb = imread(out)[:, :, :3]
    assert float((rgb.min(axis=2) < 0.9).mean()) > 0.02
    drawn = int(np.all(np.abs(rgb - np.array(to_rgb(DOSE_COLOUR))) < 0.08, axis=2).sum())
    assert drawn > 200, drawn


def test_the_course_page_lists_each_sessions_site_and_the_cumulative_dose_per_site(store: Store) -> None:
    pytest.importorskip("matplotlib")
    pypdf = pytest.importorskip("pypdf")
    course_id = start_course(store, load_config(None), patient="P-PDF", operator="T-1", preset=ASC,
                             prescription=ASC_RX)  # fmt: skip
    for n, site in enumerate(["left hand", "right hand", "left hand"]):
        stored_session(store, course_id, MONDAY + 3 * n * DAY, dose=6.0 + n, site=site)
    text = pypdf.PdfReader(io.BytesIO(to_pdf(summary(store, course_id, MONDAY + 8 * DAY)))).pages[0].extract_text()
    assert "Cumulative dose by treatment site" in text
    assert re.search(r"left hand\s+2 sessions\s+14\.00 mA·min", text), text
    assert re.search(r"right hand\s+1 session\s+7\.00 mA·min", text), text
    rows = [line for line in text.splitlines() if "completed" in line]
    assert [("left hand" in r, "right hand" in r) for r in rows] == [(True, False), (False, True), (True, False)]


def test_course_export_pdf_from_the_command_line(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    db = tmp_path / "records.sqlite3"
    with Store(db) as s:
        course_id = course_with_sessions(s).id
    out = tmp_path / "course.pdf"
    assert cli(["course", "export", str(course_id), "--format", "pdf", "-o", str(out), "--db", str(db)]) == 0
    assert out.read_bytes().startswith(b"%PDF-")


def test_a_session_outside_a_course_in_progress_is_noted(tmp_path: Path) -> None:
    clinic: Clinic = make_clinic(tmp_path)
    db = str(clinic.store)
    with Store(db) as s:
        course_id = start_course(s, load_config(clinic.config), patient="P-NOTE", operator="T-1", preset=ASC,
                                 prescription=ASC_RX)  # fmt: skip
    done = ionctl("run", "--preset", "dexamethasone", "--electrode-area", "10", "--patient", "P-NOTE",
                  *clinic_options(db),
                  "--site", "left forearm", "--device", str(tmp_path / "no-port"), "--yes", "--db", db,
                  stdin=TESS)  # fmt: skip
    assert done.returncode == 5  # accepted, then the port is not there
    assert f"has course {course_id} ({ASC}, 0 of 6 done) in progress; this session is not part of it" in done.stderr


# -- what the summary says each session delivered ------------------------------------------------------------


def delivered(store: Store, course_id: int, at: datetime, *, current: float, peak: float, duration_s: float,
              dose: float, prescribed: float) -> int:  # fmt: skip
    """A session of the course as its record tells it: given at `current`, peaking at `peak`."""
    rx = {"drug": "asc-exosomes", "polarity": "cathode", "current_ma": current, "electrode_area_cm2": 150.0}
    record_id = store.open_record(patient="P-DLV", operator="T-1", prescription=rx, limits={}, limits_sha256="",
                                  created_utc=at.isoformat(timespec="milliseconds"), course_id=course_id)  # fmt: skip
    store.close_record(record_id, {"outcome": "completed", "energised": True, "dose_ma_min": dose,
                                   "prescribed_dose_ma_min": prescribed, "peak_current_ma": peak,
                                   "duration_s": duration_s})  # fmt: skip
    return record_id


def preset_only_course(store: Store) -> int:
    """A course as courses were kept before they carried their prescription: the preset's values (50 mA)."""
    from ionctl.core.courses import preset_values

    config = load_config(None)
    plan = {"version": 1, "sessions": 6, "per_week": 2.0, "min_interval_days": 3.0,
            "preset": preset_values(config.preset(ASC)), "config_sha256": config.sha256}  # fmt: skip
    return store.insert_course(patient="P-DLV", operator="T-1", preset=ASC, sessions=6, per_week=2.0,
                               min_interval_days=3.0, plan=plan, config_sha256=config.sha256,
                               created_utc=(MONDAY - DAY).isoformat())  # fmt: skip


def test_the_summary_shows_what_each_session_delivered_not_the_presets_current(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "records.sqlite3"
    with Store(db) as s:
        course_id = preset_only_course(s)
        delivered(s, course_id, MONDAY, current=4.0, peak=3.98, duration_s=1200.0, dose=77.5, prescribed=78.0)
        delivered(s, course_id, MONDAY + 3 * DAY, current=3.0, peak=2.97, duration_s=900.0, dose=42.25,
                  prescribed=43.5)  # fmt: skip
    assert cli(["course", "show", str(course_id), "--db", str(db)]) == 0
    shown = capsys.readouterr().out
    rows = [line.split() for line in shown.splitlines() if line.strip().startswith(("1 ", "2 "))]
    # number, record, date, time, zone, outcome, current prescribed, peak, minutes, dose, prescribed dose, site
    assert rows == [
        ["1", "1", "2026-11-02", "09:00", "UTC", "completed", "4.00", "3.98", "20.0", "77.500", "78.00", "-"],
        ["2", "2", "2026-11-05", "09:00", "UTC", "completed", "3.00", "2.97", "15.0", "42.250", "43.50", "-"],
    ]
    assert "3 to 4 mA prescribed" in shown and "2.97 to 3.98 mA measured" in shown
    # the preset's 50 mA is shown only as the preset's value, never as what was given
    fifty = [line for line in shown.splitlines() if re.search(r"\b50(\.0*)? mA\b", line)]
    assert fifty and all("preset's" in line for line in fifty), fifty
    assert cli(["course", "show", str(course_id), "--json", "--db", str(db)]) == 0
    sessions = json.loads(capsys.readouterr().out)["sessions"]
    assert [(r["current_ma"], r["peak_current_ma"], r["duration_s"]) for r in sessions] == [
        (4.0, 3.98, 1200.0), (3.0, 2.97, 900.0)]  # fmt: skip


def test_the_summary_shows_the_plan_as_planned_and_dates_in_the_clinics_time_zone(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ionctl.records.course_export import header_lines, session_lines

    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    course_id = start_course(store, load_config(None), patient="P-DLV", operator="T-1", preset=ASC,
                             prescription=ASC_RX)  # fmt: skip
    delivered(store, course_id, MONDAY, current=4.0, peak=3.99, duration_s=1200.0, dose=77.9, prescribed=78.0)
    shown = summary(store, course_id, MONDAY + DAY)
    left, _ = header_lines(shown)
    assert "Planned     4 mA on 150 cm² (0.027 mA/cm²)" in left and "  duration 20 min (about 78.00 mA·min)" in left
    assert not any(re.search(r"\b50(\.0*)? mA\b", line) for line in left)
    assert "2026-11-02 10:00 CET" in session_lines(shown)[1]  # 09:00 UTC is 10:00 in Paris in November


def test_the_course_page_shows_the_delivered_currents(store: Store) -> None:
    pytest.importorskip("matplotlib")
    course_id = preset_only_course(store)
    delivered(store, course_id, MONDAY, current=4.0, peak=3.98, duration_s=1200.0, dose=77.5, prescribed=78.0)
    fig = build_figure(summary(store, course_id, MONDAY + DAY))
    text = "\n".join(t.get_text() for t in fig.texts)
    rows = [line.split()[-7:] for line in text.splitlines() if "completed" in line]
    assert rows == [["completed", "4.00", "3.98", "20.0", "77.500", "78.00", "-"]]
    assert "current 50 mA" in text and "preset's  current 50 mA" in text


# -- a course carries the prescription it is given at ------------------------------------------------------


def test_a_course_whose_plan_breaks_the_limits_is_refused_naming_every_violation_and_nothing_is_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clinic = make_clinic(tmp_path)
    db = str(clinic.store)
    start = ["course", "start", "--patient", "P-LIM", "--preset", ASC, *started_by(clinic)]
    assert cli_with(monkeypatch, start) == 2  # the report's 50 mA, nothing else given
    assert "course not started" in capsys.readouterr().err
    assert cli_with(monkeypatch, [*start, "--electrode-area", "10", "--duration", "40"]) == 2
    err = capsys.readouterr().err
    assert "can never pass the limits in force" in err
    for named in ("current 50.00 mA exceeds the site limit of 4.00 mA (max_current_ma)", "max_density_ma_cm2",
                  "max_duration_min", "max_dose_ma_min"):  # fmt: skip
        assert named in err, err
    with Store(db) as s:
        assert s.courses() == []
    with Store(db) as s, pytest.raises(CourseError) as refused:
        start_course(s, load_config(None), patient="P-LIM", operator="T-1", preset=ASC,
                     prescription={"electrode_area_cm2": 150.0, "duration_min": 20.0})  # fmt: skip
    assert [v.limit_name for v in refused.value.violations] == ["max_current_ma", "max_dose_ma_min"]  # 50 mA × 20 min


def test_a_course_started_with_its_prescription_stores_it_and_its_sessions_are_given_at_it(tmp_path: Path) -> None:
    clinic = make_clinic(tmp_path)
    db = str(clinic.store)
    started = ionctl("course", "start", "--patient", "P-RX", "--preset", "dexamethasone", "--sessions", "2",
                     "--current", "2", "--electrode-area", "10", "--dose", "0.5", "--ramp-up", "5", "--ramp-down", "5",
                     *started_by(clinic), stdin=TESS)  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert "given at: 2 mA on 10 cm² (0.200 mA/cm²), dose 0.5 mA·min" in started.stdout
    with Store(db) as s:
        planned = s.course(1)["plan"]["prescription"]
    assert (planned["current_ma"], planned["electrode_area_cm2"], planned["dose_ma_min"]) == (2.0, 10.0, 0.5)
    assert planned["drug"] == "dexamethasone-sodium-phosphate" and planned["polarity"] == "cathode"
    link = tmp_path / "ionto"
    with running_sim("--serial-link", str(link), "--time-scale", "5"):
        done = ionctl("run", "--course", "1", *clinic_options(db),
                      "--site", "left forearm", "--device", str(link), "--yes", "--json",
                      "--db", db, stdin=TESS)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rx = json.loads(done.stdout)["prescription"]
    assert (rx["current_ma"], rx["electrode_area_cm2"], rx["dose_ma_min"], rx["ramp_up_s"]) == (2.0, 10.0, 0.5, 5.0)

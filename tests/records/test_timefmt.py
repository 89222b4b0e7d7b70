"""Times as the clinic reads them: `records list --since` parses dates in the clinic's time zone (the site's
`time_zone`, else the machine's), `records show` and the progress lines show local times with the zone and
session elapsed time, and the JSON export keeps ISO 8601 UTC with its offset."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import platformdirs
import pytest

from ionctl.cli import main as cli
from ionctl.config.site import packaged_text
from ionctl.records import Store, timefmt
from tests.sim.endpoints import ROOT

RX = {"drug": "dexamethasone", "electrode_area_cm2": 10.0, "current_ma": 4.0, "planned_dose_ma_min": 40.0}


@pytest.fixture(autouse=True)
def machine_zone_again() -> object:
    yield
    timefmt.use_zone(None)


def in_zone(monkeypatch: pytest.MonkeyPatch, zone: str) -> None:
    """The machine's own zone (TZ), as a bench PC set to local time has it."""
    monkeypatch.setenv("TZ", zone)
    time.tzset()


def store_with(path: Path, *created_utc: str) -> Path:
    with Store(path) as store:
        for n, created in enumerate(created_utc, start=1):
            store.open_record(patient=f"P-{n}", operator="O", prescription=RX, limits={}, limits_sha256="0" * 64,
                              created_utc=created)  # fmt: skip
    return path


def listed(db: Path, since: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert cli(["records", "list", "--json", "--db", str(db), "--since", since]) == 0
    return [r["patient"] for r in json.loads(capsys.readouterr().out)]


# Berlin is UTC+1 in March 2026 (summer time starts on 29 March): 22:59:59Z is 23:59:59 on the 11th there,
# 23:00:01Z is 00:00:01 on the 12th.
BEFORE_BERLIN_MIDNIGHT, AFTER_BERLIN_MIDNIGHT = "2026-03-11T22:59:59.000+00:00", "2026-03-11T23:00:01.000+00:00"


def test_since_a_date_is_local_midnight_of_the_machines_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    in_zone(monkeypatch, "Europe/Berlin")
    db = store_with(tmp_path / "r.sqlite3", BEFORE_BERLIN_MIDNIGHT, AFTER_BERLIN_MIDNIGHT)
    assert listed(db, "2026-03-12", capsys) == ["P-2"]
    assert listed(db, "2026-03-11T23:59:59", capsys) == ["P-1", "P-2"]  # naive: Berlin time
    assert listed(db, "2026-03-12T00:00:00+01:00", capsys) == ["P-2"]
    assert listed(db, "2026-03-11T23:00:00Z", capsys) == ["P-2"]
    assert listed(db, "2026-03-13", capsys) == []


def test_since_follows_the_sites_time_zone_over_the_machines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = Path(platformdirs.site_config_dir("ionctl", appauthor=False)) / "config.toml"
    site.parent.mkdir(parents=True)
    site.write_text('time_zone = "America/New_York"\n' + packaged_text(), encoding="utf-8")
    # New York is UTC-4 from 8 March 2026: 03:59:59Z is 23:59:59 on the 11th there, 04:00:01Z is 00:00:01 on the 12th
    db = store_with(tmp_path / "r.sqlite3", "2026-03-12T03:59:59.000+00:00", "2026-03-12T04:00:01.000+00:00")
    assert listed(db, "2026-03-12", capsys) == ["P-2"]
    assert cli(["records", "list", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "created (America/New_York)" in out and "2026-03-11 23:59:59 EDT" in out


def test_today_and_yesterday_are_local_midnights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    in_zone(monkeypatch, "Asia/Tokyo")  # UTC+9 all year: local midnight is 15:00 UTC the day before
    today = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    times = [today - timedelta(days=1, seconds=1), today - timedelta(seconds=1), today + timedelta(seconds=1)]
    db = store_with(tmp_path / "r.sqlite3", *(t.astimezone(UTC).isoformat(timespec="milliseconds") for t in times))
    assert listed(db, "today", capsys) == ["P-3"]
    assert listed(db, "yesterday", capsys) == ["P-2", "P-3"]
    assert listed(db, "Yesterday", capsys) == ["P-2", "P-3"]


@pytest.mark.parametrize("bad", ["03/12/2026", "last week", "2026-13-01", ""])
def test_a_since_that_is_not_a_date_exits_2_naming_it_and_the_accepted_forms(
    bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = store_with(tmp_path / "r.sqlite3", BEFORE_BERLIN_MIDNIGHT)
    with pytest.raises(SystemExit) as exited:
        cli(["records", "list", "--db", str(db), "--since", bad])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"--since {bad!r} is not a date or time" in err and "YYYY-MM-DD" in err and "yesterday" in err


def test_since_in_a_subprocess_under_tz(tmp_path: Path) -> None:
    """As a technician runs it: the process's TZ decides what a date means."""
    db = store_with(tmp_path / "r.sqlite3", BEFORE_BERLIN_MIDNIGHT, AFTER_BERLIN_MIDNIGHT)
    env = {**os.environ, "TZ": "Europe/Berlin"}
    done = subprocess.run([sys.executable, "-m", "ionctl", "records", "list", "--db", str(db), "--since",
                           "2026-03-12"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()[1:]
    assert len(rows) == 1 and "2026-03-12 00:00:01 CET" in rows[0] and "P-2" in rows[0]


def _record_with_events(db: Path) -> int:
    with Store(db) as store:
        record_id = store.open_record(patient="P-SHOW", operator="O", prescription=RX, limits={},
                                      limits_sha256="0" * 64, created_utc=BEFORE_BERLIN_MIDNIGHT)  # fmt: skip
        writer = store.session_writer(record_id)
        # a device that has been up for 1000 s: the session starts at device t = 1000
        writer.event("state", "checking_contact: start", utc="2026-03-11T22:59:59.500+00:00", device_t_s=1000.0)
        writer.event("state", "ramping_up: contact ok", utc="2026-03-11T23:00:04.500+00:00", device_t_s=1005.0)
        writer.event("state", "delivering: target reached", utc="2026-03-11T23:01:04.500+00:00", device_t_s=1065.0)
        writer.sample((1005.0, 1.0, 1.0, 5.0, 5000.0, 0.01, 0.01, 0, "ramping_up"))
        writer.close({"outcome": "completed", "energised": True}, ended_utc="2026-03-11T23:11:05.000+00:00")
    return record_id


def test_records_show_prints_local_times_with_the_zone_and_session_elapsed_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    in_zone(monkeypatch, "Europe/Berlin")
    db = tmp_path / "r.sqlite3"
    record_id = _record_with_events(db)
    assert cli(["records", "show", str(record_id), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "Started: 2026-03-11 23:59:59 CET" in out and "Ended: 2026-03-12 00:11:05 CET" in out
    events = [line for line in out.splitlines() if re.match(r"\s+\d\d:\d\d:\d\d \+", line)]
    assert [re.search(r"\+(\S+)", e)[1] for e in events] == ["0:00", "0:05", "1:05"]  # type: ignore[index]
    assert events[2].strip().startswith("00:01:04 +1:05")
    assert "1065" not in out  # not the device's uptime

    assert cli(["records", "export", str(record_id), "--format", "json", "--db", str(db)]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["record"]["created_utc"] == BEFORE_BERLIN_MIDNIGHT  # JSON: ISO 8601 UTC with its offset
    assert exported["events"][2]["utc"] == "2026-03-11T23:01:04.500+00:00"


def test_the_chart_pdf_shows_local_times_and_elapsed_times(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ionctl.records.pdf import build_pages

    in_zone(monkeypatch, "Europe/Berlin")
    db = tmp_path / "r.sqlite3"
    with Store(db) as store:
        record = store.get(_record_with_events(db))
    texts = [t.get_text() for t in build_pages(record)[0].texts]
    assert any("Started 2026-03-11 23:59:59 CET · ended 2026-03-12 00:11:05 CET" in t for t in texts)
    assert "23:59:59 +0:00" in texts and "00:01:04 +1:05" in texts, texts


def test_elapsed_is_minutes_and_seconds() -> None:
    assert [timefmt.elapsed(s) for s in (0, 5.4, 65, 3599.6, 7200)] == ["0:00", "0:05", "1:05", "60:00", "120:00"]
    assert timefmt.elapsed(float("nan")) == "--:--" and timefmt.since_start(10.0, 5.0) == "--:--"


def test_progress_lines_show_session_elapsed_time_not_device_uptime(tmp_path: Path) -> None:
    from tests.test_run import DEXAMETHASONE, TESS, in_clinic, ionctl, simulator, with_option

    run_as = in_clinic(tmp_path)  # the clinic is made before the device starts
    with simulator(tmp_path) as (device, _trace):
        time.sleep(0.5)  # the device has been up a while (25 device seconds at 50x) before the session starts
        done = ionctl("run", "--device", device, *with_option(DEXAMETHASONE, "--dose", "3"), *run_as, "--yes",
                      input=TESS)  # fmt: skip
    assert done.returncode == 0, done.stderr
    stamped = re.findall(r"^\[\+(\d+):(\d\d)\] (\S+)", done.stderr, flags=re.MULTILINE)
    assert stamped and stamped[0][:2] == ("0", "00"), done.stderr  # the first line is the session's start
    seconds = [int(m) * 60 + int(s) for m, s, _ in stamped]
    assert seconds == sorted(seconds)
    ramping_down = next(s for (_m, _s, what), s in zip(stamped, seconds, strict=True) if what == "ramping_down:")
    assert 30 <= ramping_down <= 90, done.stderr  # 3 mA·min after a 30 s ramp, counted from the session's start
    assert not re.search(r"\[\s*\d+\.\d s\]", done.stderr)  # no device-uptime stamps


def test_course_days_and_dates_follow_the_sites_time_zone() -> None:
    from ionctl.core.courses import day_start, when

    timefmt.use_zone("Asia/Tokyo")  # as the site's time_zone sets it; the machine is in UTC (conftest)
    assert when(datetime(2026, 3, 11, 15, 0, tzinfo=UTC)) == "2026-03-12 00:00 JST"
    assert day_start(datetime(2026, 3, 11, 16, 0, tzinfo=UTC)) == datetime(2026, 3, 11, 15, 0, tzinfo=UTC)


def test_elapsed_times_count_from_the_first_sample_when_the_early_events_have_no_device_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "r.sqlite3"
    with Store(db) as store:
        record_id = store.open_record(patient="P", operator="O", prescription=RX, limits={}, limits_sha256="0" * 64)
        writer = store.session_writer(record_id)
        writer.event("state", "ramping_up: prescribed start")  # before any sample: no device time
        for t in (500.0, 520.0, 553.0):
            writer.sample((t, 1.0, 1.0, 5.0, 5000.0, 0.01, 0.01, 0, "ramping_up"))
        writer.event("state", "ramping_down: dose reached", device_t_s=553.0)
        writer.close({"outcome": "completed", "energised": True})
    assert cli(["records", "show", str(record_id), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\+0:53\s+Current ramping down \(dose reached\)", out), out
    assert re.search(r"\d\d:\d\d:\d\d\s+Current ramping up", out), out  # no elapsed time where none is known

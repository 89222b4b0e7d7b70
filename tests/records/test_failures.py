"""Every failure of the record store ends safe, and the record tells the truth: a store held by another process,
a full disk, a deleted lock file, an internal error mid-session, a damaged store, recovery by a read command.
Real processes, the simulator over a pty; judged on the simulator's trace (its ground truth)."""

from __future__ import annotations

import bisect
import io
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from ionctl.records import Store
from ionctl.records.recovery import SETTLEMENT, summarise_samples
from tests.people import TECHNICIAN, make_clinic
from tests.records.test_kill import trace_rows
from tests.sim.endpoints import ROOT, running_sim
from tests.test_run import TESS

CURRENT_MA = 4.0


def rx(dose: float, patient: str) -> list[str]:
    return ["--drug", "dexamethasone", "--polarity", "cathode", "--electrode-area", "10", "--current",
            str(CURRENT_MA), "--dose", str(dose), "--ramp-up", "10", "--ramp-down", "10", "--patient",
            patient]  # fmt: skip


def as_tess(db: Path) -> list[str]:
    """`ionctl run` into `db` as the technician of a test clinic kept next to it (made on first use), who logs
    in with `--password-stdin` (the password: `TESS`)."""
    if not (db.parent / "site.toml").exists():
        make_clinic(db.parent, store_name=db.name)
    return ["--db", str(db), "--config", str(db.parent / "site.toml"), "--operator", TECHNICIAN, "--password-stdin"]


@contextmanager
def session(link: Path, db: Path, dose: float, patient: str) -> Iterator[subprocess.Popen[str]]:
    """`ionctl run --json` as a process, yielded once it is delivering (its stderr read on up to there)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ionctl", "run",
         "--site", "left forearm", "--device", str(link), *rx(dose, patient), *as_tess(db), "--yes",
         "--json"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None and process.stdin is not None
    process.stdin.write(TESS)
    process.stdin.close()
    process.stdin = None  # given and closed
    try:
        for line in process.stderr:
            if "] delivering:" in line:
                break
        else:
            raise AssertionError(f"never delivered; exit {process.wait()}")
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[dict[str, Any], str]:
    out, err = process.communicate(timeout=timeout)
    return json.loads(out), err


def wait_ramped(trace: Path, timeout: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = trace_rows(trace)
        if rows and rows[-1]["current_ua"] == 0 and rows[-1]["state"] != "RUNNING":
            return rows
        assert time.monotonic() < deadline, f"the device did not ramp to zero: {rows[-1] if rows else None}"
        time.sleep(0.2)


def records(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ionctl", "records", *args, "--db", str(db)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


# -- 1. a store held by another process does not blind the host --------------------------------------------------


def test_a_store_locked_by_another_process_mid_delivery_does_not_stop_supervision(tmp_path: Path) -> None:
    if shutil.which("sqlite3") is None:
        pytest.skip("the sqlite3 shell is not installed")
    link, trace, db = tmp_path / "ionto", tmp_path / "truth.jsonl", tmp_path / "records.sqlite3"
    dose = 8.0  # 2 min at 4 mA: 12 s of host time at scale 10
    with running_sim("--serial-link", str(link), "--time-scale", "10", "--trace", str(trace)):
        with session(link, db, dose, "P-LOCKED") as process:
            holder = subprocess.Popen(["sqlite3", str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)  # fmt: skip
            assert holder.stdin is not None and holder.stdout is not None
            holder.stdin.write("BEGIN EXCLUSIVE;\nINSERT INTO telemetry (record_id, t_s, current_ma) "
                               "SELECT 1, -1, 0 WHERE 0;\nSELECT 'held';\n")  # fmt: skip
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == "held"
            time.sleep(5.0)  # 50 device seconds with the store held
            holder.stdin.write("ROLLBACK;\n.quit\n")
            holder.stdin.flush()
            holder.wait(timeout=10)
            result, err = finish(process)
        rows = wait_ramped(trace)
    true_total = rows[-1]["dose_uas"] / 60_000
    assert result["outcome"] == "completed", err
    assert process.returncode == 0
    assert true_total == pytest.approx(dose, rel=0.02)  # the prescribed dose, not the device's +10 % cap
    with Store(db) as store:
        assert store.verify() is None
        record = store.get(result["record_id"])
    assert record.fields["outcome"] == "completed"
    assert record.fields["telemetry_count"] == len(record.telemetry) > 0
    assert abs(record.telemetry[-1]["dose_ma_min"] - true_total) <= 0.02 * dose


# -- 2. a full disk: the session stops ramped, the record is closed truthfully once space returns -----------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True,
                          text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f, suppress(OSError):
        while True:
            f.write(b"\0" * 4096)
    return filler


def test_a_full_disk_stops_the_session_ramped_and_the_record_closes_with_the_true_dose(
    tmp_path: Path, small_fs: Path
) -> None:
    link, trace, db = tmp_path / "ionto", tmp_path / "truth.jsonl", small_fs / "records.sqlite3"
    with running_sim("--serial-link", str(link), "--time-scale", "5", "--trace", str(trace)):
        with session(link, db, 40.0, "P-FULL") as process:
            time.sleep(1.0)
            filler = fill(small_fs)
            result, err = finish(process)
        rows = wait_ramped(trace)
        # while the disk stays full, reading works and says why nothing was closed
        listed = records(db, "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert "Traceback" not in listed.stderr and "cannot be closed now" in listed.stderr, listed.stderr
        assert json.loads(listed.stdout)[0]["outcome"] is None
        shown = records(db, "show", "1")
        assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert result["outcome"] == "record_failed" and process.returncode == 6, err
    assert "the record cannot be written" in result["message"]
    assert [r for r in rows if r["state"] == "RAMP_DOWN"], "the device was not ramped down"
    true_total = rows[-1]["dose_uas"] / 60_000
    assert 1.0 < true_total < 30.0  # stopped well before the prescribed 40 mA·min
    filler.unlink()
    listed = records(db, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (record,) = json.loads(listed.stdout)
    assert record["outcome"] == "record_failed"
    assert abs(record["dose_ma_min"] - true_total) <= 0.02 * true_total, (record["dose_ma_min"], true_total)
    assert records(db, "verify", "--config", str(db.parent / "site.toml")).returncode == 0


# -- 3. liveness cannot be unlinked ------------------------------------------------------------------------------


def test_deleting_a_live_sessions_lock_file_does_not_let_a_reader_close_its_record(tmp_path: Path) -> None:
    link, trace, db = tmp_path / "ionto", tmp_path / "truth.jsonl", tmp_path / "records.sqlite3"
    with running_sim("--serial-link", str(link), "--time-scale", "20", "--trace", str(trace)):
        with session(link, db, 8.0, "P-LIVE") as process:
            for leftover in tmp_path.glob("records.sqlite3.lock.*"):
                leftover.unlink()
            listed = records(db, "list", "--json")
            assert listed.returncode == 0, listed.stderr
            assert json.loads(listed.stdout)[0]["outcome"] is None  # still open: its session is running
            result, err = finish(process)
    assert result["outcome"] == "completed", err
    with Store(db) as store:
        assert store.get(result["record_id"]).fields["outcome"] == "completed"
        assert store.verify() is None


# -- 4. a session abandoned on an internal error keeps its dose ----------------------------------------------------


def test_a_session_abandoned_on_an_internal_error_is_closed_with_the_dose_of_its_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ionctl.cli import run
    from ionctl.treatment import Recorder

    original = Recorder.on_sample
    seen = {"n": 0}

    def on_sample(self: Recorder, session: Any, sample: Any) -> None:
        original(self, session, sample)
        seen["n"] += session.state == "delivering"
        if seen["n"] == 50:  # into the hold
            raise RuntimeError("a bug in a callback")

    monkeypatch.setattr(Recorder, "on_sample", on_sample)
    link, trace, db = tmp_path / "ionto", tmp_path / "truth.jsonl", tmp_path / "records.sqlite3"
    with running_sim("--serial-link", str(link), "--time-scale", "10", "--trace", str(trace)):
        args = run.parse(["--site", "left forearm", "--device", str(link), *rx(40.0, "P-BUG"), *as_tess(db), "--yes"])
        with Store(db) as store:
            report = run.execute(args, err=io.StringIO(), stdin=io.StringIO(TESS), store=store)
            record = store.get(report.record_id)
        rows = wait_ramped(trace)
    assert (report.result.outcome, report.result.fault) == ("fault", "internal")
    from_samples = summarise_samples(record.telemetry, 10.0)
    assert record.fields["dose_ma_min"] == pytest.approx(from_samples["dose_ma_min"])
    assert record.fields["peak_current_ma"] == pytest.approx(CURRENT_MA, rel=0.05)
    last_t = record.telemetry[-1]["t_s"]
    times = [r["t_s"] for r in rows]
    truth_at_last = rows[min(bisect.bisect_left(times, last_t), len(rows) - 1)]["dose_uas"] / 60_000
    assert abs(record.fields["dose_ma_min"] - truth_at_last) <= CURRENT_MA * 1.0 / 60
    assert record.fields["dose_ma_min"] > 0.5


# -- 5. a damaged store is not written into ------------------------------------------------------------------------


def test_run_refuses_a_store_that_does_not_verify_before_touching_the_device(tmp_path: Path) -> None:
    from ionctl.cli import main as cli
    from tests.records.test_store import finished_record

    db = tmp_path / "records.sqlite3"
    with Store(db) as store:
        finished_record(store)
    raw = sqlite3.connect(db)
    raw.execute("DROP TRIGGER records_finished_immutable")
    raw.execute("UPDATE records SET dose_ma_min = 40 WHERE id = 1")
    raw.commit()
    raw.close()
    device = tmp_path / "no-such-device"  # opening it would fail with exit 5: the refusal comes first
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(sys, "stderr", err)
        code = cli(["run",
                    "--site", "left forearm", "--device", str(device),
                    *rx(8.0, "P-DAMAGED"), "--db", str(db), "--operator", TECHNICIAN,
                    "--yes"])  # refused before anyone is asked for a password  # fmt: skip
    assert code == 2
    assert "does not verify" in err.getvalue() and "record 1 (closing)" in err.getvalue()
    assert "the device was not opened" in err.getvalue()
    with Store(db) as store:
        assert [r["id"] for r in store.list_records()] == [1]


# -- 6. a read command's recovery does not lose the device's counter ------------------------------------------------


def test_recovery_by_a_read_command_is_settled_with_the_device_counter_by_the_next_run(tmp_path: Path) -> None:
    link, trace, db = tmp_path / "ionto", tmp_path / "truth.jsonl", tmp_path / "records.sqlite3"
    with running_sim("--serial-link", str(link), "--time-scale", "50", "--trace", str(trace)):
        with session(link, db, 40.0, "P-SETTLE") as process:
            time.sleep(0.5)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        wait_ramped(trace)
        listed = records(db, "list", "--json")
        assert "closed as interrupted" in listed.stderr
        (closed,) = json.loads(listed.stdout)
        assert "counter was not read" in closed["message"]
        again = subprocess.run([sys.executable, "-m", "ionctl", "run", "--site", "left forearm", "--device", str(link),
                                *rx(40.0, "P-SETTLE"), "--current", "6", *as_tess(db), "--yes"], cwd=ROOT,
                               capture_output=True, text=True, input=TESS, timeout=60)  # fmt: skip
    assert "settled with the device's own dose counter" in again.stderr, again.stderr
    true_total = trace_rows(trace)[-1]["dose_uas"] / 60_000
    with Store(db) as store:
        (entry,) = store.audit(action=SETTLEMENT, record_id=1)
        assert store.verify() is None
    assert abs(entry["detail"]["device_dose_ma_min"] - true_total) <= 0.01 * true_total
    assert closed["dose_ma_min"] < true_total


# -- the writer on its own --------------------------------------------------------------------------------------


def test_the_writer_says_the_record_cannot_be_written_when_its_queue_fills_and_catches_up_after(tmp_path: Path) -> None:
    from ionctl.records.writer import RecordWriter
    from tests.records.test_store import PRESCRIPTION, sample

    db = tmp_path / "records.sqlite3"
    with Store(db) as store:
        record_id = store.open_record(patient="P", operator="O", prescription=PRESCRIPTION, limits={},
                                      limits_sha256="")  # fmt: skip
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction
    writer = RecordWriter(db, record_id, capacity=5, flush_every_s=0.0)
    for i in range(11):  # at most 5 in the writer's hands and 5 in the queue
        writer.sample(sample(i * 0.1, 4.0))
    assert writer.failure is not None and "waiting to be written" in writer.failure
    holder.execute("ROLLBACK")
    holder.close()
    assert writer.close({"outcome": "stopped", "energised": True}, timeout_s=30)
    with Store(db) as store:
        assert store.get(record_id).fields["outcome"] == "stopped"
        assert 1 <= store.get(record_id).fields["telemetry_count"] <= 10
        assert store.verify() is None

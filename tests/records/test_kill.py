"""Nothing lost: `ionctl run` killed with SIGKILL mid-delivery (a real process, the simulator over a pty).
The device's watchdog takes the current to zero; the next `ionctl records list` closes the record as
`interrupted` with the dose integrated up to the host's last stored sample, which matches the simulator's
ground truth at that device time within one second of samples."""

from __future__ import annotations

import bisect
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from ionctl.records import Store
from tests.sim.endpoints import ROOT, running_sim
from tests.test_run import TESS, in_clinic

RX = ("--drug", "dexamethasone", "--polarity", "cathode", "--electrode-area", "10", "--current", "4",
      "--dose", "40", "--patient", "P-KILL")  # fmt: skip
CURRENT_MA = 4.0


def trace_rows(trace: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in trace.read_text().splitlines() if line.endswith("}")]


def test_sigkill_mid_delivery_leaves_an_interrupted_record_with_the_dose_up_to_the_last_sample(tmp_path: Path) -> None:
    link, trace, db = tmp_path / "ionto", tmp_path / "truth.jsonl", tmp_path / "clinic" / "records.sqlite3"
    run_as = in_clinic(tmp_path)  # the clinic's technician, who logs in with --password-stdin
    with running_sim("--serial-link", str(link), "--time-scale", "50", "--trace", str(trace)):
        process = subprocess.Popen(
            [sys.executable, "-m", "ionctl", "run",
             "--site", "left forearm", "--device", str(link), *RX, *run_as, "--yes", "--json"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stderr is not None and process.stdin is not None
        process.stdin.write(TESS)
        process.stdin.close()
        for line in process.stderr:
            if "] delivering:" in line:
                break
        else:
            raise AssertionError(f"never delivered; exit {process.wait()}")
        time.sleep(1.0)  # 50 device seconds into the hold
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        deadline = time.monotonic() + 15  # the device's host-loss watchdog, then its ramp to zero
        while True:
            rows = trace_rows(trace)
            if rows and rows[-1]["current_ua"] == 0 and rows[-1]["state"] != "RUNNING":
                break
            assert time.monotonic() < deadline, f"the device did not ramp to zero: {rows[-1]}"
            time.sleep(0.2)
    assert process.returncode == -signal.SIGKILL

    listed = subprocess.run([sys.executable, "-m", "ionctl", "records", "list", "--db", str(db), "--json"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "closed as interrupted" in listed.stderr
    (record,) = json.loads(listed.stdout)
    assert record["outcome"] == "interrupted" and record["patient"] == "P-KILL"

    with Store(db) as store:
        samples = store.telemetry(record["id"])
        assert store.verify() is None
    last_t_s = samples[-1]["t_s"]
    times = [row["t_s"] for row in rows]
    truth_at_last = rows[min(bisect.bisect_left(times, last_t_s), len(rows) - 1)]["dose_uas"] / 60_000
    true_total = rows[-1]["dose_uas"] / 60_000
    one_second_ma_min = CURRENT_MA * 1.0 / 60
    assert abs(record["dose_ma_min"] - truth_at_last) <= one_second_ma_min, (record["dose_ma_min"], truth_at_last)
    assert record["dose_ma_min"] > 2.0  # it had been delivering for a while
    assert true_total >= truth_at_last  # what flowed after the last sample (watchdog delay + ramp) is not claimed


def test_a_restart_on_the_same_device_settles_the_interrupted_record_with_the_devices_own_counter(
    tmp_path: Path,
) -> None:
    link, trace, db = tmp_path / "ionto", tmp_path / "truth.jsonl", tmp_path / "clinic" / "records.sqlite3"
    run_as = in_clinic(tmp_path)  # the clinic's technician, who logs in with --password-stdin
    with running_sim("--serial-link", str(link), "--time-scale", "50", "--trace", str(trace)):
        process = subprocess.Popen(
            [sys.executable, "-m", "ionctl", "run",
             "--site", "left forearm", "--device", str(link), *RX, *run_as, "--yes"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stderr is not None and process.stdin is not None
        process.stdin.write(TESS)
        process.stdin.close()
        next(line for line in process.stderr if "] delivering:" in line)
        time.sleep(0.5)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        deadline = time.monotonic() + 15
        while not ((rows := trace_rows(trace)) and rows[-1]["current_ua"] == 0 and rows[-1]["state"] != "RUNNING"):
            assert time.monotonic() < deadline, "the device did not ramp to zero"
            time.sleep(0.2)
        # The technician starts again on the same device; this prescription is refused (6 mA on 10 cm²), but
        # recovery runs first and reads the device's counter before anything else touches it.
        again = subprocess.run([sys.executable, "-m", "ionctl", "run",
                                "--site", "left forearm", "--device", str(link), *RX, "--current", "6",
                                *run_as, "--yes"], cwd=ROOT, capture_output=True, text=True, input=TESS,
                               timeout=60)  # fmt: skip
    assert "closed as interrupted" in again.stderr, again.stderr
    with Store(db) as store:
        first = store.get(1).fields
        assert store.verify() is None
    true_total = trace_rows(trace)[-1]["dose_uas"] / 60_000
    assert first["outcome"] == "interrupted"
    assert abs(first["device_dose_ma_min"] - true_total) <= 0.01 * true_total  # the watchdog's ramp included
    assert first["dose_ma_min"] < true_total  # the host's own count stops at its last stored sample

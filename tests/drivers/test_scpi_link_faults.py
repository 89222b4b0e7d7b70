"""Every failure of the link to a SourceMeter ends safe: made to happen over the real VISA path (pyvisa-py on a
TCPIP socket to the simulator on 127.0.0.1) and judged on the simulator's ground truth (`--scpi-trace`: the
instrument's output and source level at every change, and as the simulator stops).

A SourceMeter has no watchdog: whatever the host does not switch off keeps flowing. So a reply the driver
cannot read is a lost link, closing tries every way to switch the output off, and when the output cannot be
confirmed off the operator is told to remove the electrodes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ionctl.drivers import DeviceLimits, LinkLost, OutputState, Polarity, open_device
from ionctl.drivers.scpi import ScpiSourceMeter
from ionctl.treatment import ALARM_TEXT
from sim.cli import ScpiFault
from tests.sim.endpoints import ROOT, running_sim
from tests.test_run import TESS, in_clinic

SCALE = "50"  # device seconds per wall second, as tests/test_run.py
DEXAMETHASONE = ("--drug", "dexamethasone", "--polarity", "cathode", "--electrode-area", "10", "--current", "4",
                 "--dose", "40", "--patient", "P-TEST")  # fmt: skip
GARBLE_AT_S, GARBLE_FOR_S = 60.0, 50.0  # device seconds after the output was first switched on: mid-delivery


def ionctl(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m ionctl ARGS`; what `--password-stdin` reads is the clinic technician's password."""
    return subprocess.run([sys.executable, "-m", "ionctl", *args], cwd=ROOT, input=TESS, capture_output=True,
                          text=True, timeout=timeout_s)  # fmt: skip


def rows(trace: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in trace.read_text().splitlines()]


def true_charge_ma_min(trace: Path) -> float:
    """The source level integrated over the time the output was on (the programmed current, mA·min)."""
    total, rs = 0.0, rows(trace)
    for row, after in zip(rs, rs[1:], strict=False):
        if row["output"] and row["source"] == "CURR":
            total += abs(row["level"]) * 1000 * (after["t_s"] - row["t_s"]) / 60
    return total


def record_of(result: dict[str, Any], db: str) -> dict[str, Any]:
    exported = ionctl("records", "export", str(result["record_id"]), "--format", "json", "--db", db)
    assert exported.returncode == 0, exported.stderr
    return dict(json.loads(exported.stdout)["record"])


# -- ionctl run over the real VISA path ----------------------------------------------------------------------


def test_replies_garbled_mid_delivery_end_with_the_output_off_and_the_dose_on_record(tmp_path: Path) -> None:
    trace, db = tmp_path / "meter.jsonl", str(tmp_path / "clinic" / "records.sqlite3")
    fault = f"garble-replies@{GARBLE_AT_S:g}:{GARBLE_FOR_S:g}"
    with running_sim("--scpi-port", "0", "--time-scale", SCALE, "--scpi-fault", fault,
                     "--scpi-trace", str(trace)) as sim:  # fmt: skip
        done = ionctl("run",
                      "--site", "left forearm", "--device", f"visa:{sim.endpoints['scpi']}",
                      *DEXAMETHASONE, "--accept-no-watchdog",
                      "--yes", "--json", *in_clinic(tmp_path))  # fmt: skip
    # The ground truth: the output went off while the replies were still garbled (the driver's close, not the
    # reconnect after the garbling ended), and stayed off.
    truth = rows(trace)
    first_on = next(r["t_s"] for r in truth if r["output"])  # the contact probe: the fault's time origin
    went_off = [
        after["t_s"] for row, after in zip(truth, truth[1:], strict=False) if row["output"] and not after["output"]
    ][-1]
    assert first_on + GARBLE_AT_S <= went_off < first_on + GARBLE_AT_S + GARBLE_FOR_S, (first_on, went_off)
    assert not truth[-1]["output"]
    result = json.loads(done.stdout)
    assert done.returncode == 3, done.stderr
    assert (result["outcome"], result["fault"]) == ("fault", "host_lost"), result["message"]
    assert "link lost" in result["message"] and "unreadable reply" in result["message"]
    assert not result["alarm"] and ALARM_TEXT not in done.stderr  # the reconnected instrument confirmed it off
    # The dose delivered, not 0: the host's count of measured current to its last reading before the loss. At
    # 50x the host reads every ~5 device seconds while the instrument sources on to the loss, so the count is
    # below the instrument's charge, by a few readings' worth at most.
    charge = true_charge_ma_min(trace)
    assert 0.5 * charge <= result["dose_ma_min"] <= charge, (result["dose_ma_min"], charge)
    record = record_of(result, db)
    assert record["outcome"] == "fault" and record["fault"] == "host_lost"
    assert record["dose_ma_min"] == result["dose_ma_min"]


def test_a_link_cut_after_a_garbled_reply_leaves_the_output_unconfirmed_and_raises_the_alarm(tmp_path: Path) -> None:
    # Nothing the host sends after the garbled reply arrives: the instrument goes on sourcing (the trace shows
    # it), and the only safe end is the alarm telling the operator to remove the electrodes.
    trace, db = tmp_path / "meter.jsonl", str(tmp_path / "clinic" / "records.sqlite3")
    with running_sim("--scpi-port", "0", "--time-scale", SCALE, "--scpi-fault", "garble-then-unreachable@60",
                     "--scpi-trace", str(trace)) as sim:  # fmt: skip
        done = ionctl("run",
                      "--site", "left forearm", "--device", f"visa:{sim.endpoints['scpi']}",
                      *DEXAMETHASONE, "--accept-no-watchdog",
                      "--yes", "--json", *in_clinic(tmp_path))  # fmt: skip
    result = json.loads(done.stdout)
    assert done.returncode == 3, done.stderr
    assert result["alarm"] and ALARM_TEXT in done.stderr
    assert "could not be confirmed off" in result["message"] and "remove the electrodes" in result["message"]
    assert rows(trace)[-1]["output"]  # ground truth: still sourcing when the simulator stopped
    assert "unreadable reply" in result["message"]  # the garbled reply is what the host saw first
    assert result["dose_ma_min"] > 0  # the host's count to the loss (the instrument sources on past it)
    record = record_of(result, db)
    assert record["outcome"] == "fault" and record["alarm"] and record["dose_ma_min"] == result["dose_ma_min"]


def test_a_visa_address_that_reaches_a_firmware_device_is_refused_before_any_current(tmp_path: Path) -> None:
    trace, db = tmp_path / "device.jsonl", str(tmp_path / "clinic" / "records.sqlite3")
    with running_sim("--tcp", "0", "--time-scale", SCALE, "--trace", str(trace)) as sim:
        port = sim.endpoints["tcp"].rsplit(":", 1)[1]
        done = ionctl("run",
                      "--site", "left forearm", "--device", f"visa:TCPIP0::127.0.0.1::{port}::SOCKET", *DEXAMETHASONE,
                      "--accept-no-watchdog", "--yes", "--json", *in_clinic(tmp_path))  # fmt: skip
    assert done.returncode == 5, done.stderr
    assert "Traceback" not in done.stderr
    result = json.loads(done.stdout)
    assert result["outcome"] == "fault" and not result["energised"]
    assert "no SCPI SourceMeter answered" in result["message"] and "firmware device" in result["message"]
    assert record_of(result, db)["outcome"] == "fault"
    assert all(row["current_ua"] == 0 for row in rows(trace))  # the firmware device never sourced


# -- the driver on its own -----------------------------------------------------------------------------------

LIMITS = DeviceLimits(
    max_current_ma=5.0, max_slew_ma_per_s=1.0, max_dose_ma_min=80.0, max_voltage_v=60.0, max_duration_s=3600.0,
    min_impedance_ohm=500.0, max_impedance_ohm=100_000.0, area_cm2=10.0, watchdog_s=1.0, compliance_timeout_s=600.0,
)  # fmt: skip


def delivering(resource: str) -> ScpiSourceMeter:
    meter = ScpiSourceMeter.open(resource, timeout_s=0.5, sample_interval_s=0.005)
    meter.configure(LIMITS)
    meter.set_polarity(Polarity.ANODE)
    meter.arm()
    meter.start(1.0, 0.5)
    return meter


def test_a_garbled_reply_is_a_lost_link_from_the_decode_error_and_close_reports_it_cannot_confirm_off(
    tmp_path: Path,
) -> None:
    trace = tmp_path / "meter.jsonl"
    with running_sim("--scpi-port", "0", "--time-scale", "20", "--scpi-fault", "garble-replies@1",
                     "--scpi-trace", str(trace)) as sim:  # fmt: skip
        meter = delivering(sim.endpoints["scpi"])
        with pytest.raises(LinkLost, match="unreadable reply") as lost:
            for _ in range(10_000):
                assert meter.read_telemetry(0.5)[-1].state is not OutputState.FAULT
        assert isinstance(lost.value.__cause__, UnicodeDecodeError)
        meter.close()  # does not raise
        assert meter.unconfirmed_off is not None and "could not be confirmed off" in meter.unconfirmed_off
    assert not rows(trace)[-1]["output"]  # the commands got through: :OUTP OFF and *RST switched it off


def test_close_after_a_clean_delivery_confirms_the_output_off(tmp_path: Path) -> None:
    trace = tmp_path / "meter.jsonl"
    with running_sim("--scpi-port", "0", "--time-scale", "20", "--scpi-trace", str(trace)) as sim:
        meter = delivering(sim.endpoints["scpi"])
        meter.read_telemetry(0.5)
        meter.close()
        assert meter.unconfirmed_off is None
    assert not rows(trace)[-1]["output"]


def test_open_device_on_a_firmware_device_names_what_answered() -> None:
    with running_sim("--tcp", "0") as sim:
        port = sim.endpoints["tcp"].rsplit(":", 1)[1]
        with pytest.raises(Exception) as refused:
            open_device(f"visa:TCPIP0::127.0.0.1::{port}::SOCKET", timeout_s=1.0)
    assert type(refused.value).__name__ == "VersionMismatch"
    assert "no SCPI SourceMeter answered" in str(refused.value) and "b'" in str(refused.value)


@pytest.mark.parametrize("text", ["garble@5", "garble-replies", "garble-replies@-1", "unreachable@5:0",
                                  "unreachable@x"])  # fmt: skip
def test_a_bad_scpi_fault_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match="SCPI fault"):
        ScpiFault.parse(text)
    done = subprocess.run([sys.executable, "-m", "sim", "--scpi-port", "0", "--scpi-fault", text], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 2 and text in done.stderr

"""`ionctl run` and `ionctl demo`, run as a user runs them (a subprocess) against the real simulator over
its pty (or its SCPI socket), with the simulator's ground-truth trace as the judge of the dose."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.sim.endpoints import ROOT, running_sim

#: Device seconds per wall second: a full 10.7-minute session takes ~13 s. Not faster: the session's
#: stuck-output deadline has a 2 device-second margin, which at 200x is only 10 ms of wall time for the stop
#: command to reach the device (see the report on the session), and a ramp must last long enough (0.6 s of
#: wall time or more) to be interrupted on purpose.
SCALE = "50"
DEXAMETHASONE = ("--drug", "dexamethasone", "--polarity", "cathode", "--electrode-area", "10", "--current", "4",
                 "--dose", "40", "--patient", "P-TEST", "--operator", "O-TEST")  # fmt: skip


def ionctl(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m ionctl ARGS` with stdin not a terminal (as under a test runner or a script)."""
    return subprocess.run([sys.executable, "-m", "ionctl", *args], cwd=ROOT, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout_s)  # fmt: skip


def with_option(args: tuple[str, ...], option: str, value: str) -> tuple[str, ...]:
    i = args.index(option)
    return (*args[: i + 1], value, *args[i + 2 :])


@contextmanager
def simulator(tmp_path: Path, *sim_args: str, time_scale: str = SCALE) -> Iterator[tuple[str, Path]]:
    """A simulated firmware device on a pty: yields (its address, its trace path)."""
    link, trace = tmp_path / "ionto", tmp_path / "truth.jsonl"
    with running_sim("--serial-link", str(link), "--time-scale", time_scale, "--trace", str(trace), *sim_args):
        yield str(link), trace


def trace_rows(trace: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in trace.read_text().splitlines()]


def true_dose_ma_min(trace: Path) -> float:
    return float(trace_rows(trace)[-1]["dose_uas"]) / 60_000


def within_1pct(value: float, reference: float) -> bool:
    return abs(value - reference) <= 0.01 * reference


def wait_for_line(process: subprocess.Popen[str], pattern: str) -> list[str]:
    """Read the process's stderr until a line matches; the lines read (fails if it ends first)."""
    assert process.stderr is not None
    seen: list[str] = []
    for line in process.stderr:
        seen.append(line)
        if re.search(pattern, line):
            return seen
    raise AssertionError(f"no line matching {pattern!r} before the end; stderr was:\n{''.join(seen)}")


# -- completed ---------------------------------------------------------------------------------------------


def test_dexamethasone_completes_with_the_dose_the_simulator_measured(tmp_path: Path) -> None:
    with simulator(tmp_path) as (device, trace):
        done = ionctl("run", "--device", device, *DEXAMETHASONE, "--yes", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # the whole of stdout is one JSON object
    assert result["outcome"] == "completed" and result["exit_code"] == 0
    truth = true_dose_ma_min(trace)
    assert within_1pct(result["dose_ma_min"], truth), (result["dose_ma_min"], truth)
    assert within_1pct(result["dose_ma_min"], 40.0)


def test_json_output_carries_the_records_own_export(tmp_path: Path) -> None:
    db = str(tmp_path / "records.sqlite3")
    args = with_option(DEXAMETHASONE, "--dose", "5")
    with simulator(tmp_path) as (device, _):
        done = ionctl("run", "--device", device, *args, "--yes", "--json", "--db", db)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    exported = ionctl("records", "export", str(result["record_id"]), "--format", "json", "--db", db)
    assert exported.returncode == 0, exported.stderr
    record_export = json.loads(exported.stdout)
    assert {key: result[key] for key in record_export} == record_export
    assert result["record"]["outcome"] == result["outcome"] == "completed"
    assert len(result["telemetry"]) > 100


# -- refused before the device is touched --------------------------------------------------------------------


def test_six_milliamps_is_refused_for_density_naming_the_limit_and_both_values(tmp_path: Path) -> None:
    # The device path does not exist: had ionctl tried to open it, the exit would be 5, not 2.
    args = with_option(DEXAMETHASONE, "--current", "6")
    done = ionctl("run", "--device", str(tmp_path / "no-such-port"), *args, "--yes")
    assert done.returncode == 2, done.stderr
    density = next(line for line in done.stderr.splitlines() if "max_density_ma_cm2" in line)
    assert "0.50" in density and "0.60" in density


def test_the_anode_is_refused_for_an_anionic_drug(tmp_path: Path) -> None:
    args = with_option(DEXAMETHASONE, "--polarity", "anode")
    done = ionctl("run", "--device", str(tmp_path / "no-such-port"), *args, "--yes")
    assert done.returncode == 2, done.stderr
    assert "must be delivered from the cathode" in done.stderr


def test_a_refusal_with_json_prints_one_refused_result_object(tmp_path: Path) -> None:
    args = with_option(DEXAMETHASONE, "--current", "6")
    done = ionctl("run", "--device", str(tmp_path / "no-such-port"), *args, "--yes", "--json")
    result = json.loads(done.stdout)
    assert result["outcome"] == "refused" and result["exit_code"] == 2 and not result["energised"]
    assert "max_density_ma_cm2" in {v["limit_name"] for v in result["violations"]}


def test_without_yes_a_stdin_that_is_not_a_terminal_is_refused(tmp_path: Path) -> None:
    done = ionctl("run", "--device", str(tmp_path / "no-such-port"), *DEXAMETHASONE)
    assert done.returncode == 2, done.stderr
    assert "--yes" in done.stderr


def test_an_unreachable_device_exits_5(tmp_path: Path) -> None:
    done = ionctl("run", "--device", str(tmp_path / "no-such-port"), *DEXAMETHASONE, "--yes", "--json")
    assert done.returncode == 5, done.stderr
    result = json.loads(done.stdout)
    assert result["outcome"] == "fault" and not result["energised"]


def test_a_sourcemeter_without_accept_no_watchdog_is_refused(tmp_path: Path) -> None:
    with running_sim("--scpi-port", "0", "--time-scale", SCALE) as sim:
        done = ionctl("run", "--device", f"visa:{sim.endpoints['scpi']}", *DEXAMETHASONE, "--yes", "--json")
    assert done.returncode == 2, done.stderr
    result = json.loads(done.stdout)
    assert result["outcome"] == "refused" and not result["energised"]
    assert "--accept-no-watchdog" in result["message"]


# -- faults and the operator ---------------------------------------------------------------------------------


def test_a_lifted_electrode_is_an_open_circuit_fault_with_the_measured_dose(tmp_path: Path) -> None:
    with simulator(tmp_path, "--fault", "electrode-lift@60") as (device, trace):
        done = ionctl("run", "--device", device, *DEXAMETHASONE, "--yes", "--json")
    assert done.returncode == 3, done.stderr
    result = json.loads(done.stdout)
    assert (result["outcome"], result["fault"]) == ("fault", "open_circuit")
    assert "FAULT" in done.stderr
    truth = true_dose_ma_min(trace)
    assert truth > 0 and within_1pct(result["dose_ma_min"], truth), (result["dose_ma_min"], truth)


def run_in_background(device: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ionctl", "run", "--device", device, *DEXAMETHASONE, "--yes",
                             "--json", *extra], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_sigint_during_delivery_ramps_down_and_stops(tmp_path: Path) -> None:
    with simulator(tmp_path) as (device, trace):
        process = run_in_background(device)
        wait_for_line(process, r"\] delivering:")
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 4
    assert json.loads(stdout)["outcome"] == "stopped"
    rows = trace_rows(trace)
    ramp_down_s = sum(0.01 for row in rows if row["state"] == "RAMP_DOWN")
    assert ramp_down_s >= 25  # the prescribed 30 s ramp, not a step
    assert rows[-1]["current_ua"] == 0 and rows[-1]["state"] == "DONE"


def test_a_second_sigint_aborts(tmp_path: Path) -> None:
    with simulator(tmp_path) as (device, trace):
        process = run_in_background(device, "--ramp-down", "60")  # 1.2 s of wall time to interrupt
        wait_for_line(process, r"\] delivering:")
        process.send_signal(signal.SIGINT)
        wait_for_line(process, r"\] ramping_down:")
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 4
    assert json.loads(stdout)["outcome"] == "aborted"
    assert trace_rows(trace)[-1]["current_ua"] == 0


# -- the demo ------------------------------------------------------------------------------------------------


def test_demo_completes_prints_the_true_dose_and_writes_its_record_and_chart(tmp_path: Path) -> None:
    done = ionctl("demo", "--time-scale", SCALE, "--out", str(tmp_path / "demo"))
    assert done.returncode == 0, done.stderr
    match = re.search(r"true dose \(simulator trace\) ([\d.]+) mA·min; host ([\d.]+) mA·min", done.stdout)
    assert match, done.stdout
    truth, host = float(match[1]), float(match[2])
    assert within_1pct(host, truth) and within_1pct(truth, 40.0)
    pdf = Path(re.search(r"chart PDF (\S+)", done.stdout)[1])  # type: ignore[index]
    assert pdf.parent == tmp_path / "demo" and pdf.read_bytes().startswith(b"%PDF")
    shown = ionctl("records", "export", "1", "--format", "json", "--db", str(tmp_path / "demo" / "records.sqlite3"))
    record = json.loads(shown.stdout)["record"]
    assert record["outcome"] == "completed" and record["patient"] == "DEMO"
    assert within_1pct(record["dose_ma_min"], truth) and record["config_sha256"]

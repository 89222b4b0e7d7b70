"""`ionctl run` and `ionctl demo`, run as a user runs them (a subprocess) against the real simulator over
its pty (or its SCPI socket), with the simulator's ground-truth trace as the judge of the dose. `ionctl run`
runs in a test clinic (`tests.people`) as its technician, who logs in with `--password-stdin`."""

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

import pytest

from tests.people import PASSWORDS, TECHNICIAN, make_clinic
from tests.sim.endpoints import ROOT, running_sim

#: Device seconds per wall second: a full 10.7-minute session takes ~13 s. Not faster: the session's
#: stuck-output deadline has a 2 device-second margin, which at 200x is only 10 ms of wall time for the stop
#: command to reach the device (see the report on the session), and a ramp must last long enough (0.6 s of
#: wall time or more) to be interrupted on purpose.
SCALE = "50"
DEXAMETHASONE = ("--drug", "dexamethasone", "--polarity", "cathode", "--electrode-area", "10", "--current", "4",
                 "--dose", "40", "--patient", "P-TEST", "--site", "left forearm")  # fmt: skip
#: What `--password-stdin` reads for the clinic's technician.
TESS = PASSWORDS[TECHNICIAN] + "\n"


def in_clinic(folder: Path, name: str = TECHNICIAN) -> tuple[str, ...]:
    """The options that run `ionctl run` in the test clinic in `folder/clinic` (made on first use) as `name`,
    their password read from stdin: its record store, its approved site file, the operator."""
    where = folder / "clinic"
    if not (where / "site.toml").exists():
        make_clinic(where)
    return ("--db", str(where / "records.sqlite3"), "--config", str(where / "site.toml"), "--operator", name,
            "--password-stdin")  # fmt: skip


def ionctl(*args: str, timeout_s: float = 60, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m ionctl ARGS` with stdin not a terminal (as under a test runner or a script): `input`, else
    nothing."""
    stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run([sys.executable, "-m", "ionctl", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout_s, **stdin)  # type: ignore[call-overload]  # fmt: skip


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
        done = ionctl("run", "--device", device, *DEXAMETHASONE, *in_clinic(tmp_path), "--yes", "--json", input=TESS)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # the whole of stdout is one JSON object
    assert result["outcome"] == "completed" and result["exit_code"] == 0
    truth = true_dose_ma_min(trace)
    assert within_1pct(result["dose_ma_min"], truth), (result["dose_ma_min"], truth)
    assert within_1pct(result["dose_ma_min"], 40.0)


def test_json_output_carries_the_records_own_export(tmp_path: Path) -> None:
    db = str(tmp_path / "clinic" / "records.sqlite3")
    args = with_option(DEXAMETHASONE, "--dose", "5")
    with simulator(tmp_path) as (device, _):
        done = ionctl("run", "--device", device, *args, *in_clinic(tmp_path), "--yes", "--json", input=TESS)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    exported = ionctl("records", "export", str(result["record_id"]), "--format", "json", "--db", db)
    assert exported.returncode == 0, exported.stderr
    record_export = json.loads(exported.stdout)
    assert {key: result[key] for key in record_export} == record_export
    assert result["record"]["outcome"] == result["outcome"] == "completed"
    assert len(result["telemetry"]) > 100


def test_the_chart_options_go_into_the_records_opening(tmp_path: Path) -> None:
    from ionctl.records import Store
    from ionctl.records.clinical import ClinicalDetails

    args = (*with_option(with_option(DEXAMETHASONE, "--dose", "2"), "--site", "Right hand"), "--concentration",
            "4 mg/mL", "--volume-ml", "2.5", "--lot", "L-2291", "--prescriber", "Dr. A. Rivera")  # fmt: skip
    done = ionctl("run", "--device", "sim:", *args, *in_clinic(tmp_path), "--yes", "--json", input=TESS)
    assert done.returncode == 0, done.stderr
    with Store(tmp_path / "clinic" / "records.sqlite3") as store:
        details = ClinicalDetails.of_record(store.get(json.loads(done.stdout)["record_id"]).fields)
    assert details is not None and details.site is not None and details.site.text == "right hand"
    assert (details.concentration, details.volume_ml, details.lot, details.prescriber) == (
        "4 mg/mL", 2.5, "L-2291", "Dr. A. Rivera")  # fmt: skip
    assert details.simulated  # a sim: address is ionctl's simulator, not a treatment


# -- refused before the device is touched --------------------------------------------------------------------


def test_six_milliamps_is_refused_for_density_naming_the_limit_and_both_values(tmp_path: Path) -> None:
    # The device path does not exist: had ionctl tried to open it, the exit would be 5, not 2.
    args = with_option(DEXAMETHASONE, "--current", "6")
    done = ionctl("run", "--device", str(tmp_path / "no-such-port"), *args, *in_clinic(tmp_path), "--yes", input=TESS)
    assert done.returncode == 2, done.stderr
    density = next(line for line in done.stderr.splitlines() if "max_density_ma_cm2" in line)
    assert "0.50" in density and "0.60" in density


@pytest.mark.parametrize(("site", "said"), [((), "give a treatment site"),
                                             (("--site", "left hnd"), "is not a treatment site")])  # fmt: skip
def test_a_session_without_a_known_treatment_site_is_refused_before_the_device_opens_with_no_record(
    tmp_path: Path, site: tuple[str, ...], said: str
) -> None:
    from ionctl.records import Store

    rx = DEXAMETHASONE[: DEXAMETHASONE.index("--site")]
    done = ionctl("run", "--device", str(tmp_path / "no-such-port"), *rx, *site, *in_clinic(tmp_path), "--yes",
                  input=TESS)  # fmt: skip
    assert done.returncode == 2, done.stderr  # had the device been opened: 5
    assert said in done.stderr and "hand, foot, wrist, forearm" in done.stderr
    assert "No current flowed; the device was not opened." in done.stderr
    with Store(tmp_path / "clinic" / "records.sqlite3") as store:
        assert store.list_records() == []


def test_the_anode_is_refused_for_an_anionic_drug(tmp_path: Path) -> None:
    args = with_option(DEXAMETHASONE, "--polarity", "anode")
    done = ionctl("run", "--device", str(tmp_path / "no-such-port"), *args, *in_clinic(tmp_path), "--yes", input=TESS)
    assert done.returncode == 2, done.stderr
    assert "must be delivered from the cathode" in done.stderr


def test_a_refusal_with_json_prints_one_refused_result_object(tmp_path: Path) -> None:
    args = with_option(DEXAMETHASONE, "--current", "6")
    done = ionctl(
        "run", "--device", str(tmp_path / "no-such-port"), *args, *in_clinic(tmp_path), "--yes", "--json", input=TESS
    )
    result = json.loads(done.stdout)
    assert result["outcome"] == "refused" and result["exit_code"] == 2 and not result["energised"]
    assert "max_density_ma_cm2" in {v["limit_name"] for v in result["violations"]}


def test_without_yes_a_stdin_that_is_not_a_terminal_is_refused(tmp_path: Path) -> None:
    done = ionctl("run", "--device", str(tmp_path / "no-such-port"), *DEXAMETHASONE, *in_clinic(tmp_path), input=TESS)
    assert done.returncode == 2, done.stderr
    assert "--yes" in done.stderr


def test_an_unreachable_device_exits_5(tmp_path: Path) -> None:
    done = ionctl(
        "run",
        "--device",
        str(tmp_path / "no-such-port"),
        *DEXAMETHASONE,
        *in_clinic(tmp_path),
        "--yes",
        "--json",
        input=TESS,
    )
    assert done.returncode == 5, done.stderr
    result = json.loads(done.stdout)
    assert result["outcome"] == "fault" and not result["energised"]


def test_a_sourcemeter_without_accept_no_watchdog_is_refused(tmp_path: Path) -> None:
    with running_sim("--scpi-port", "0", "--time-scale", SCALE) as sim:
        done = ionctl(
            "run",
            "--device",
            f"visa:{sim.endpoints['scpi']}",
            *DEXAMETHASONE,
            *in_clinic(tmp_path),
            "--yes",
            "--json",
            input=TESS,
        )
    assert done.returncode == 2, done.stderr
    result = json.loads(done.stdout)
    assert result["outcome"] == "refused" and not result["energised"]
    assert "--accept-no-watchdog" in result["message"]


# -- faults and the operator ---------------------------------------------------------------------------------


def test_a_lifted_electrode_is_an_open_circuit_fault_with_the_measured_dose(tmp_path: Path) -> None:
    with simulator(tmp_path, "--fault", "electrode-lift@60") as (device, trace):
        done = ionctl("run", "--device", device, *DEXAMETHASONE, *in_clinic(tmp_path), "--yes", "--json", input=TESS)
    assert done.returncode == 3, done.stderr
    result = json.loads(done.stdout)
    assert (result["outcome"], result["fault"]) == ("fault", "open_circuit")
    assert "FAULT" in done.stderr
    truth = true_dose_ma_min(trace)
    assert truth > 0 and within_1pct(result["dose_ma_min"], truth), (result["dose_ma_min"], truth)


def run_in_background(device: str, folder: Path, *extra: str) -> subprocess.Popen[str]:
    """`ionctl run` in the clinic in `folder`, its password given and stdin closed."""
    process = subprocess.Popen([sys.executable, "-m", "ionctl", "run", "--device", device, *DEXAMETHASONE,
                                *in_clinic(folder), "--yes", "--json", *extra], cwd=ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdin is not None
    process.stdin.write(TESS)
    process.stdin.close()
    process.stdin = None  # given and closed: `communicate` has nothing more to send
    return process


def test_sigint_during_delivery_ramps_down_and_stops(tmp_path: Path) -> None:
    with simulator(tmp_path) as (device, trace):
        process = run_in_background(device, tmp_path)
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
        process = run_in_background(device, tmp_path, "--ramp-down", "60")  # 1.2 s of wall time to interrupt
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


# -- the operator: who runs a session, and their signature ---------------------------------------------------


def test_the_record_names_and_is_signed_by_its_authenticated_operator_and_the_anchor_gains_a_checkpoint(
    tmp_path: Path,
) -> None:
    from ionctl.config import load_config
    from ionctl.config.anchor import read_checkpoints
    from ionctl.records import Store
    from tests.treatment.conftest import anchor_site, signatures_verify

    run_as = in_clinic(tmp_path)
    clinic = make_clinic_view(tmp_path)
    anchor = tmp_path / "anchor"
    anchor.mkdir()
    with Store(clinic.store) as store:
        anchor_site(clinic, store, anchor)
    with simulator(tmp_path) as (device, _):
        done = ionctl("run", "--device", device, *with_option(DEXAMETHASONE, "--dose", "5"), *run_as, "--yes",
                      input=TESS)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "signed Tess Technician (tess, technician)" in done.stdout and "performed" in done.stdout
    with Store(clinic.store) as store:
        (record,) = store.list_records()
        assert record["operator"] == TECHNICIAN
        (sign,) = store.audit(action="record-sign", record_id=record["id"])
        assert (sign["actor"], sign["detail"]["meaning"]) == (TECHNICIAN, "performed")
        assert signatures_verify(clinic, store) > 0
        head = store.chain_head()
    (checkpoint,) = read_checkpoints(anchor, clinic.store)
    assert (checkpoint.gseq, checkpoint.hash) == head
    assert load_config(clinic.config).accounts.anchor == anchor


def make_clinic_view(folder: Path) -> Any:
    """The clinic `in_clinic(folder)` made (its administrator read back from its site file)."""
    from ionctl.config import load_config
    from tests.people import Clinic

    where = folder / "clinic"
    (admin,) = load_config(where / "site.toml").accounts.administrators
    return Clinic(where / "site.toml", where / "records.sqlite3", admin)


def test_a_wrong_password_refuses_before_the_device_opens_and_writes_no_record(tmp_path: Path) -> None:
    from ionctl.records import Store

    run_as = in_clinic(tmp_path)
    with simulator(tmp_path) as (device, trace):
        done = ionctl("run", "--device", device, *DEXAMETHASONE, *run_as, "--yes", "--json",
                      input="Not-her-password-1\n")  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "unknown account or wrong password" in done.stderr and "the device was not opened" in done.stderr
    result = json.loads(done.stdout)
    assert result["outcome"] == "refused" and result["record_id"] is None and not result["energised"]
    assert all(row["current_ua"] == 0 for row in trace_rows(trace))  # never energised
    with Store(tmp_path / "clinic" / "records.sqlite3") as store:
        assert store.list_records() == []
        (denied,) = store.audit(action="login-denied")
        assert denied["detail"] == {"name": TECHNICIAN, "reason": "wrong password"}


def test_no_password_at_all_refuses_before_the_device_opens(tmp_path: Path) -> None:
    run_as = tuple(a for a in in_clinic(tmp_path) if a != "--password-stdin")
    done = ionctl("run", "--device", str(tmp_path / "no-such-port"), *DEXAMETHASONE, *run_as, "--yes")
    assert done.returncode == 2, done.stderr  # not 5: the device was never tried
    assert "stdin is not a terminal" in done.stderr and "--password-stdin" in done.stderr


def test_an_auditor_or_an_administrator_cannot_run_a_session(tmp_path: Path) -> None:
    from ionctl.records import Store
    from tests.people import ADMIN, AUDITOR

    for name in (AUDITOR, ADMIN):
        done = ionctl("run", "--device", str(tmp_path / "no-such-port"), *DEXAMETHASONE, *in_clinic(tmp_path, name),
                      "--yes", input=PASSWORDS[name] + "\n")  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert f"{name} is a" in done.stderr and "may run sessions" in done.stderr, done.stderr
    with Store(tmp_path / "clinic" / "records.sqlite3") as store:
        assert store.list_records() == []


def test_a_supervisor_who_logs_in_overrides_a_course_rule_and_signs_the_override(tmp_path: Path) -> None:
    from ionctl.config import load_config
    from ionctl.core.courses import start_course
    from ionctl.records import Store
    from tests.people import SUPERVISOR
    from tests.treatment.conftest import signatures_verify

    run_as = in_clinic(tmp_path)
    clinic = make_clinic_view(tmp_path)
    with Store(clinic.store) as store:
        course = start_course(store, load_config(clinic.config), patient="P-TEST", operator=TECHNICIAN,
                              preset="dexamethasone", sessions=6, min_interval_days=3,
                              prescription={"electrode_area_cm2": 10.0})  # fmt: skip
        done_just_now = store.open_record(patient="P-TEST", operator=TECHNICIAN, prescription={}, limits={},
                                          limits_sha256="", course_id=course)  # fmt: skip
        store.close_record(done_just_now, {"outcome": "completed", "energised": True, "dose_ma_min": 40.0})
    checked = ionctl("records", "addendum", str(done_just_now), "--db", str(clinic.store), "--config",
                     str(clinic.config), "--as", TECHNICIAN, "--password-stdin", "--skin-check", "erythema=no",
                     "blistering=no", "pain=no", "itching=no", "other=no", input=TESS)  # fmt: skip
    assert checked.returncode == 0 and "by tess" in checked.stdout, checked.stderr
    base = ("run", "--device", str(tmp_path / "no-such-port"), "--course", str(course), "--site", "left forearm",
            *run_as, "--yes")  # fmt: skip
    refused = ionctl(*base, "--supervisor-override", "missed visit", input=TESS)
    assert refused.returncode == 2 and "--supervisor NAME" in refused.stderr, refused.stderr
    wrong = ionctl(*base, "--supervisor-override", "missed visit", "--supervisor", SUPERVISOR,
                   input=TESS + "Wrong-password-9\n")  # fmt: skip
    assert wrong.returncode == 2 and "override refused" in wrong.stderr, wrong.stderr
    by_tess = ionctl(*base, "--supervisor-override", "missed visit", "--supervisor", TECHNICIAN, input=TESS + TESS)
    assert by_tess.returncode == 2 and "only a supervisor may override" in by_tess.stderr, by_tess.stderr
    done = ionctl(*base, "--supervisor-override", "missed visit", "--supervisor", SUPERVISOR,
                  input=TESS + PASSWORDS[SUPERVISOR] + "\n")  # fmt: skip
    assert done.returncode == 5, done.stderr  # past the course rule, to the (missing) device
    with Store(clinic.store) as store:
        (override,) = store.audit(action="course-override")
        assert override["actor"] == SUPERVISOR and override["detail"]["signature"]["signer"] == SUPERVISOR
        assert override["detail"]["reason"] == "missed visit" and override["detail"]["operator"] == TECHNICIAN
        assert signatures_verify(clinic, store) > 0

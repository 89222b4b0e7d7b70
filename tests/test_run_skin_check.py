"""`ionctl run` and the skin check after a patient's previous session: a session that energised the patient and
has no skin check after it (the record store says so) is asked for first at a terminal; without one, the run is
refused (exit 2) naming the record and the command that records it. A session refused before current flowed
leaves nothing pending."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path

from ionctl.cli import run
from ionctl.records import Store
from ionctl.records.skin import ITEMS
from tests.test_run import DEXAMETHASONE, TESS, in_clinic, ionctl, simulator, trace_rows, with_option

ANSWERS = "erythema=ANSWER blistering=ANSWER pain=ANSWER itching=ANSWER other=ANSWER"


class Terminal(io.StringIO):
    """Typed answers, as from a person at a terminal."""

    def isatty(self) -> bool:
        return True


def energised_record(db: Path, patient: str = "P-TEST") -> int:
    with Store(db) as store:
        record_id = store.open_record(patient=patient, operator="O-1", prescription={}, limits={}, limits_sha256="")
        store.close_record(record_id, {"outcome": "stopped", "energised": True, "dose_ma_min": 1.5})
    return record_id


def test_after_a_faulted_session_the_next_run_without_a_terminal_is_refused_naming_the_record_and_command(
    tmp_path: Path,
) -> None:
    run_as = in_clinic(tmp_path)
    db, config = str(tmp_path / "clinic" / "records.sqlite3"), str(tmp_path / "clinic" / "site.toml")
    with simulator(tmp_path, "--fault", "electrode-lift@20") as (device, trace):
        faulted = ionctl("run", "--device", device, *DEXAMETHASONE, "--yes", *run_as, input=TESS)
        assert faulted.returncode == 3, faulted.stderr
        flowed = max(row["current_ua"] for row in trace_rows(trace))
        samples = len(trace_rows(trace))
        again = ionctl("run", "--device", device, *DEXAMETHASONE, "--yes", *run_as, "--json", input=TESS)
        later = trace_rows(trace)[samples:]
    # the simulator's truth: no current the 2nd time (the trace leaves out only rows that repeat an idle one, so
    # current flowing would have been written)
    assert all(row["current_ua"] == 0 for row in later)
    assert flowed > 1000  # the simulator's own trace: current flowed through the patient before the fault
    assert again.returncode == 2, again.stderr
    command = f"ionctl records addendum 1 --db {db} --as tess --skin-check {ANSWERS}"
    assert "patient P-TEST: the session of record 1 of " in again.stderr and "fault (open_circuit)" in again.stderr
    assert f"not started: record the skin check after record 1 first: {command}" in again.stderr
    result = json.loads(again.stdout)
    assert result["outcome"] == "refused" and result["exit_code"] == 2 and result["record"]["energised"] == 0

    # The command, as named, with the answers given, records it; the next run goes on to the device.
    filled = shlex.split(command.replace("=ANSWER", "=no").split(" --skin-check")[0]) + ["--skin-check"]
    recorded = ionctl(*filled[1:], *(f"{item}=no" for item in ITEMS), "--config", config, "--password-stdin",
                      input=TESS)  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    onward = ionctl("run", "--device", str(tmp_path / "no-such-port"), *DEXAMETHASONE, "--yes", *run_as, input=TESS)
    assert onward.returncode == 5, onward.stderr  # past the check; the port is not there
    assert ionctl("records", "verify", "--db", db, "--config", config).returncode == 0


def test_a_session_refused_before_current_flowed_leaves_no_skin_check_pending(tmp_path: Path) -> None:
    run_as = in_clinic(tmp_path)
    db = str(tmp_path / "clinic" / "records.sqlite3")
    refused = ionctl("run", "--device", str(tmp_path / "no-such-port"), *with_option(DEXAMETHASONE, "--current", "6"),
                     "--yes", *run_as, input=TESS)  # fmt: skip
    assert refused.returncode == 2 and "max_density_ma_cm2" in refused.stderr
    unreachable = ionctl("run", "--device", str(tmp_path / "no-such-port"), *DEXAMETHASONE, "--yes", *run_as,
                         input=TESS)  # fmt: skip
    assert unreachable.returncode == 5, unreachable.stderr
    again = ionctl("run", "--device", str(tmp_path / "no-such-port"), *DEXAMETHASONE, "--yes", *run_as, input=TESS)
    assert again.returncode == 5, again.stderr  # not 2: nothing is pending
    assert "skin check" not in again.stderr
    with Store(db) as store:
        assert len(store.list_records(patient="P-TEST")) == 3 and store.pending_skin_checks("P-TEST") == []


def test_at_a_terminal_the_pending_skin_check_is_asked_first_and_stored_as_answered(tmp_path: Path) -> None:
    run_as = in_clinic(tmp_path)
    db = tmp_path / "clinic" / "records.sqlite3"
    record_id = energised_record(db)
    args = run.parse(["--device", str(tmp_path / "no-such-port"), *DEXAMETHASONE, *run_as])
    typed = "\n".join(["maybe", "n",  # a wrong answer is asked again
                       "no", "ni", "", "patient asleep",  # not inspected: the reason is asked until given
                       "Y", "NO",  # itching yes (either case), other no
                       "", "itching under the anode",  # a yes needs the reaction described
                       "", "n"]) + "\n"  # no note; then "Start? [y/N]" is answered no  # fmt: skip
    typed = TESS + typed  # the operator's password first
    err = io.StringIO()
    with Store(db) as store:
        report = run.execute(args, err=err, stdin=Terminal(typed), store=store)
        (after,) = store.audit(action="skin-check-after", record_id=record_id)
        assert store.pending_skin_checks("P-TEST") == []
    assert report.exit_code == 2 and report.result.message == "not started: the operator did not confirm"
    said = err.getvalue()
    assert said.index("Skin check after record 1") < said.index("Start? [y/N]")
    assert "answer 'maybe': give yes, no or not-inspected" in said
    assert after["actor"] == "tess"  # the operator who logged in
    assert after["detail"] == {
        "when": "after", "note": "", "reaction": "itching under the anode",
        "items": {"erythema": {"answer": "no"}, "blistering": {"answer": "no"},
                  "pain": {"answer": "not inspected", "reason": "patient asleep"}, "itching": {"answer": "yes"},
                  "other": {"answer": "no"}},
    }  # fmt: skip


def test_at_a_terminal_input_that_ends_before_the_check_is_complete_refuses_and_stores_nothing(tmp_path: Path) -> None:
    run_as = in_clinic(tmp_path)
    db = tmp_path / "clinic" / "records.sqlite3"
    record_id = energised_record(db)
    args = run.parse(["--device", str(tmp_path / "no-such-port"), *DEXAMETHASONE, *run_as])
    with Store(db) as store:
        report = run.execute(args, err=io.StringIO(), stdin=Terminal(TESS + "no\nno\n"), store=store)
        assert store.audit(action="skin-check-after", record_id=record_id) == []
        assert [r["id"] for r in store.pending_skin_checks("P-TEST")] == [record_id]
    assert report.exit_code == 2
    assert report.result.message == f"not started: the skin check after record {record_id} was not completed"


def test_yes_at_a_terminal_does_not_skip_the_pending_skin_check(tmp_path: Path) -> None:
    run_as = in_clinic(tmp_path)
    db = tmp_path / "clinic" / "records.sqlite3"
    record_id = energised_record(db)
    args = run.parse(["--device", str(tmp_path / "no-such-port"), *DEXAMETHASONE, *run_as, "--yes"])
    with Store(db) as store:
        report = run.execute(args, err=io.StringIO(), stdin=Terminal(TESS), store=store)
    assert report.exit_code == 2 and f"ionctl records addendum {record_id} --db" in report.result.message

"""Identifiers (patient, operator, drug, course preset) are printable text: a line break, tab, escape sequence,
other control or invisible format character is refused where it is typed, naming the field and the character;
and `ionctl records list` shows such characters of older records as escapes instead of forging rows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ionctl.records import Store
from ionctl.safety.identifiers import escape_controls, identifier_problem
from tests.console.driving import console_setup, log_in, on_screen, run_async, shows
from tests.people import TECHNICIAN
from tests.test_run import TESS, in_clinic, with_option

ROOT = Path(__file__).resolve().parents[1]
RX = ("--drug", "dexamethasone", "--polarity", "cathode", "--electrode-area", "10", "--current", "4", "--dose", "40")

REFUSED = {
    "\n": "\\n",  # Cc: a new row in the listing
    "\t": "\\t",  # Cc: a new column
    "\r": "\\r",
    "\x1b": "\\x1b",  # Cc: ESC, the start of a terminal escape sequence
    "\x7f": "\\x7f",  # Cc: DEL
    "\x85": "\\x85",  # Cc (C1): NEXT LINE
    "\u200b": "\\u200b",  # Cf: ZERO WIDTH SPACE
    "\u202e": "\\u202e",  # Cf: RIGHT-TO-LEFT OVERRIDE
    "\u2028": "\\u2028",  # Zl: LINE SEPARATOR
    "\u2029": "\\u2029",  # Zp: PARAGRAPH SEPARATOR
    "\udcff": "\\udcff",  # Cs: an undecodable command-line byte (surrogateescape)
}


@pytest.mark.parametrize("char", sorted(REFUSED))
def test_each_kind_of_control_character_is_refused_naming_the_field_and_the_character(char: str) -> None:
    problem = identifier_problem("patient_id", f"P-00{char}42")
    assert problem is not None
    assert problem.startswith(f"patient_id contains the character '{REFUSED[char]}' (U+{ord(char):04X}")
    assert "position 5" in problem
    assert escape_controls(f"P{char}1") == f"P{REFUSED[char]}1"


@pytest.mark.parametrize("value", ["P-0042", "Müller, Anna", "O'Neil #7", "患者 12", "a\\nb"])
def test_printable_identifiers_are_accepted_and_shown_as_they_are(value: str) -> None:
    assert identifier_problem("patient_id", value) is None
    assert escape_controls(value) == value


def ionctl(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run([sys.executable, "-m", "ionctl", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, **stdin)  # type: ignore[call-overload]  # fmt: skip


def test_ionctl_run_refuses_a_patient_id_with_an_escape_sequence_before_the_device(tmp_path: Path) -> None:
    db = tmp_path / "clinic" / "records.sqlite3"  # in_clinic's store
    done = ionctl("run",
                  "--site", "left forearm", "--device", str(tmp_path / "no-device"),
                  *RX, "--patient", "P1\x1b[2J", *in_clinic(tmp_path),
                  "--yes", input=TESS)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "patient_id contains the character '\\x1b' (U+001B)" in done.stderr
    assert "the device was not opened" in done.stderr
    if db.exists():
        with Store(db) as store:
            assert store.list_records() == []


def test_ionctl_run_refuses_an_operator_id_with_a_line_break(tmp_path: Path) -> None:
    # The operator is an account name now: a name with a line break is no account, so the login is refused
    # (before the prescription, the store or the device is used), the name echoed escaped, nothing recorded.
    forged = "T07\n4\t2026-01-01\tP9"
    done = ionctl("run", "--site", "left forearm", "--device", str(tmp_path / "no-device"), *RX, "--patient", "P1",
                  *with_option(in_clinic(tmp_path), "--operator", forged), "--yes", input=TESS)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "'T07\\n4\\t2026-01-01\\tP9': unknown account or wrong password" in done.stderr
    assert "the device was not opened" in done.stderr and "\t" not in done.stderr
    db = tmp_path / "clinic" / "records.sqlite3"
    with Store(db) as store:
        assert store.list_records() == []
        (denied,) = store.audit(action="login-denied")
        assert denied["detail"] == {"name": forged, "reason": "unknown account"}
    audit = ionctl("config", "audit", "--db", str(db))  # the refusal's row shows the name as escapes: one row
    assert audit.returncode == 0, audit.stderr
    (row,) = [line for line in audit.stdout.splitlines() if "login-denied" in line]
    assert "T07\\n4\\t2026-01-01\\tP9" in row and "\t" not in audit.stdout
    assert all(re.match(r" *\d+  ", line) for line in audit.stdout.splitlines())  # each line an entry of its own


@pytest.mark.parametrize(("option", "refusal"), [
    ("--patient", "patient contains the character '\\t' (U+0009)"),
    ("--preset", "preset contains the character '\\t' (U+0009)"),
    # the operator is an account name: a name with a tab is no account, so the login is refused, the name escaped
    ("--operator", "course not started: 'tess\\t\\u202e': unknown account or wrong password"),
])  # fmt: skip
def test_ionctl_course_start_refuses_control_characters(tmp_path: Path, option: str, refusal: str) -> None:
    db = tmp_path / "clinic" / "records.sqlite3"  # in_clinic's store
    store_and_site = in_clinic(tmp_path)[:4]  # --db, --config
    given = {"--patient": "P1", "--operator": TECHNICIAN, "--preset": "dexamethasone"}
    given[option] += "\t\u202e"
    done = ionctl("course", "start", *store_and_site, "--password-stdin", "--sessions", "3",
                  *[part for pair in given.items() for part in pair], input=TESS)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"ionctl course: {refusal}" in done.stderr
    with Store(db) as store:
        assert store.courses() == []


def test_records_list_shows_control_characters_of_an_older_record_as_escapes(tmp_path: Path) -> None:
    db = tmp_path / "records.sqlite3"
    with Store(db) as store:  # as a record stored before identifiers were checked
        forged = store.open_record(patient="P1\n99\t2026-01-01\tP-FORGED\tT1\tcompleted", operator="T\x1b[31m07",
                                   prescription={}, limits={}, limits_sha256="")  # fmt: skip
        store.close_record(forged, {"outcome": "completed"})
    done = ionctl("records", "list", "--db", str(db))
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()  # one row, not two
    columns = row.split("\t")
    assert len(columns) == len(header.split("\t"))
    assert columns[2] == "P1\\n99\\t2026-01-01\\tP-FORGED\\tT1\\tcompleted"
    assert columns[3] == "T\\x1b[31m07" and "\x1b" not in done.stdout


@run_async
async def test_the_console_refuses_a_pasted_patient_id_with_a_line_break(tmp_path: Path) -> None:
    from textual.widgets import Input

    from ionctl.console.app import ConsoleApp
    from ionctl.console.screens.setup import PatientScreen, PresetScreen

    setup, _source, _gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=(100, 36)) as pilot:
        await log_in(pilot)
        await pilot.press("enter")
        await on_screen(pilot, PatientScreen)
        app.screen.query_one("#patient", Input).value = "P0042\nP0043"  # as a paste would put it there
        await pilot.press("ctrl+n")
        await shows(pilot, "patient ID contains the character '\\n' (U+000A)")
        assert isinstance(app.screen, PatientScreen) and app.flow.patient_id == ""
        app.screen.query_one("#patient", Input).value = "P0042"
        await pilot.press("ctrl+n")
        await on_screen(pilot, PresetScreen)
        assert app.flow.patient_id == "P0042"


def test_an_unknown_preset_or_electrode_typed_with_an_escape_sequence_is_echoed_escaped(tmp_path: Path) -> None:
    for option, value in (("--preset", "dexa\x1b[2Jmethasone"), ("--electrode", "patch\n10")):
        args = ["--preset", "dexamethasone", option, value] if option == "--electrode" else [option, value]
        done = ionctl("run",
                      "--site", "left forearm", "--device", str(tmp_path / "no-device"),
                      *args, "--patient", "P1", *in_clinic(tmp_path),
                      "--yes", input=TESS)  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "\x1b" not in done.stderr and "patch\n" not in done.stderr
        assert ("presets.dexa\\x1b[2Jmethasone: no such preset" if option == "--preset"
                else "electrodes.patch\\n10: no such electrode") in done.stderr  # fmt: skip

"""The console and the chart after the session: a skin check left pending is remembered by the record store (not
by the console), asked for first when the patient is entered again; and an addendum to a recent record of the
patient (a late adverse reaction, a correction)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import OptionList

from ionctl.console.app import ConsoleApp
from ionctl.console.screens.addenda import AddendumScreen, PendingScreen, RecordsScreen
from ionctl.console.screens.fault import FaultScreen
from ionctl.console.screens.setup import PatientScreen, PresetScreen
from ionctl.records import Store
from ionctl.records.skin import ITEMS, SKIN_CHECK_AFTER, SkinCheck
from tests.console.driving import answer_skin, console_setup, fill, log_in, on_screen, run_async, shows
from tests.console.test_console import SIZE, ended, prepare
from tests.people import TECHNICIAN


async def enter_patient(pilot: Pilot[Any], patient: str = "P0042", operator: str = TECHNICIAN) -> None:
    await log_in(pilot, operator)
    await pilot.press("enter")  # the simulator's address
    await on_screen(pilot, PatientScreen)
    await pilot.press(*patient, "enter")


@run_async
async def test_a_skin_check_pending_when_the_console_quit_is_asked_for_first_when_it_reopens(tmp_path: Path) -> None:
    # A session that faults (an electrode lifts) after current flowed; the console is quit at the end screen
    # without the skin check after.
    setup, _, _ = console_setup(tmp_path, faults=("electrode-lift@20",))
    async with ConsoleApp(setup).run_test(size=SIZE) as pilot:
        await prepare(pilot)
        await pilot.press("y")
        await on_screen(pilot, FaultScreen)
        await shows(pilot, "the output is off")
        await pilot.press("enter")
        await ended(pilot)
        await pilot.press("ctrl+q")
    with Store(setup.store_path) as store:
        (record,) = store.list_records()
        assert record["fault"] == "open_circuit" and record["energised"] == 1

    # A new console on the same record store: entering that patient shows the pending check before anything.
    setup, _, _ = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await enter_patient(pilot)
        await on_screen(pilot, PendingScreen)
        await shows(pilot, "Skin check pending for patient P0042")
        await shows(pilot, f"record {record['id']}")
        await pilot.press("ctrl+n")  # no way on while it is pending
        await shows(pilot, "Record the pending skin check first")
        await pilot.press("ctrl+s")  # nothing answered: refused by name
        await shows(pilot, "Not recorded: skin check item 'erythema'")
        assert isinstance(app.screen, PendingScreen)
        await answer_skin(pilot, {"blistering": "I"}, reasons={"blistering": "dressing left on"})
        await pilot.press("ctrl+s")
        await on_screen(pilot, PresetScreen)
    with Store(setup.store_path) as store:
        (after,) = store.audit(action=SKIN_CHECK_AFTER, record_id=record["id"])
        assert store.pending_skin_checks("P0042") == [] and store.verify() is None
    assert after["actor"] == TECHNICIAN
    assert SkinCheck.from_detail(after["detail"]).items["blistering"].reason == "dressing left on"


@run_async
async def test_another_patient_or_a_session_refused_before_current_flowed_has_nothing_pending(tmp_path: Path) -> None:
    setup, _, _ = console_setup(tmp_path)
    with Store(setup.store_path) as store:
        energised = store.open_record(patient="P-OTHER", operator="T1", prescription={}, limits={}, limits_sha256="")
        store.close_record(energised, {"outcome": "completed", "energised": True})
        refused = store.open_record(patient="P0042", operator="T1", prescription={}, limits={}, limits_sha256="")
        store.close_record(refused, {"outcome": "refused", "energised": False})
    async with ConsoleApp(setup).run_test(size=SIZE) as pilot:
        await enter_patient(pilot)
        await on_screen(pilot, PresetScreen)


@run_async
async def test_a_late_adverse_reaction_and_a_correction_are_added_to_a_recent_record(tmp_path: Path) -> None:
    setup, _, _ = console_setup(tmp_path)
    with Store(setup.store_path) as store:
        record_id = store.open_record(patient="P0042", operator="T1", prescription={}, limits={}, limits_sha256="")
        store.close_record(record_id, {"outcome": "completed", "energised": True, "dose_ma_min": 5.0})
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await pilot.press("enter")
        await on_screen(pilot, PatientScreen)
        await pilot.press(*"P0042")
        await pilot.press("ctrl+r")
        await on_screen(pilot, RecordsScreen)
        options = app.screen.query_one("#records", OptionList)
        line = str(options.get_option_at_index(0).prompt)
        assert line.startswith(f"record {record_id} ") and line.endswith("5.00 mA·min  skin check after PENDING")
        await pilot.press("enter")
        await on_screen(pilot, AddendumScreen)
        await shows(pilot, "no addenda yet")
        await pilot.press("down", "enter")  # kind: late adverse reaction
        await fill(pilot, "#addendum-text", "blister under the anode, seen the next day")
        await pilot.press("ctrl+s")
        await shows(pilot, "recorded in record")
        await shows(pilot, "adverse-reaction by tess: blister under the anode, seen the next day")
        with Store(setup.store_path) as store:
            (reaction,) = store.get(record_id).addenda
        app.screen.query_one("#kind").focus()
        await pilot.press("down", "enter")  # kind: correction
        await fill(pilot, "#addendum-text", "the blister was under the cathode")
        await pilot.press("ctrl+s")
        await shows(pilot, "a correction names the addendum it corrects")  # not without the addendum it corrects
        await fill(pilot, "#addendum-corrects", str(reaction["seq"]))
        await pilot.press("ctrl+s")
        await shows(pilot, f"corrects #{reaction['seq']}: the blister was under the cathode")
        app.screen.query_one("#kind").focus()
        await pilot.press("up", "up", "enter")  # kind: the skin check after
        await answer_skin(pilot)
        await fill(pilot, "#addendum-corrects", "")
        await pilot.press("ctrl+s")
        await shows(pilot, "skin-check-after by tess: erythema: no")
    with Store(setup.store_path) as store:
        first, correction, skin = store.get(record_id).addenda
        assert store.pending_skin_checks("P0042") == [] and store.verify() is None
    assert first == reaction  # the corrected addendum is unchanged
    assert correction["detail"] == {"text": "the blister was under the cathode", "corrects": reaction["seq"]}
    assert skin["detail"]["items"] == {item: {"answer": "no"} for item in ITEMS}

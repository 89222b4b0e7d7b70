"""`ionctl console`, driven by keyboard through Textual's pilot against the in-process simulator. Each test
checks what the screen shows and what came of it: the session's result and the stored record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Digits, Input

from ionctl.console.app import ConsoleApp
from ionctl.console.controller import SessionController
from ionctl.console.faults import FAULT_ADVICE
from ionctl.console.screens.checks import ConfirmScreen, ContactScreen, SkinBeforeScreen
from ionctl.console.screens.end import EndScreen
from ionctl.console.screens.fault import FaultScreen
from ionctl.console.screens.prescription import PrescriptionScreen
from ionctl.console.screens.run import ConfirmAction, RunScreen
from ionctl.console.screens.setup import BlockedScreen, PatientScreen, PresetScreen
from ionctl.console.setup import ConsoleSetup
from ionctl.drivers.base import FaultCode
from ionctl.records import Store
from ionctl.records.clinical import ClinicalDetails
from ionctl.records.skin import AFTER, ITEMS, SKIN_CHECK_AFTER, Addendum, SkinCheck
from tests.console.driving import (
    Gate,
    answer_skin,
    console_setup,
    energised_for,
    fill,
    log_in,
    on_screen,
    run_async,
    shows,
    text_of,
    trace_text,
    until,
)
from tests.people import TECHNICIAN

SIZE = (100, 36)
PRESETS = ("dexamethasone", "lidocaine", "tap-water-hands", "asc-exosome-hand-eczema")


def controller_of(app: ConsoleApp) -> SessionController:
    controller = app.flow.controller
    assert controller is not None
    return controller


def records(setup: ConsoleSetup) -> list[dict[str, Any]]:
    with Store(setup.store_path) as store:
        return store.list_records()


async def choose(pilot: Pilot[Any], preset: str = "dexamethasone", *, option: int | None = None,
                 name: str = TECHNICIAN) -> None:  # fmt: skip
    """Device -> patient and operator -> the preset (or the option at index `option`: the patient's courses
    come first, then the presets), as `name` logged in (the clinic's technician unless given)."""
    await log_in(pilot, name)
    await pilot.press("enter")  # the address offered (--device) is the simulator's
    await on_screen(pilot, PatientScreen)
    await pilot.press(*"P0042", "enter")
    await on_screen(pilot, PresetScreen)
    await pilot.press(*["down"] * (PRESETS.index(preset) if option is None else option), "enter")


async def prescribe(pilot: Pilot[Any], preset: str = "dexamethasone", *, option: int | None = None,
                    name: str = TECHNICIAN, **fields: str) -> None:  # fmt: skip
    """`choose`, then the prescription screen with `fields` typed in (the treatment site, unless given, the left
    forearm)."""
    await choose(pilot, preset, option=option, name=name)
    await on_screen(pilot, PrescriptionScreen)
    for name, value in {"site": "left forearm", **fields}.items():
        await fill(pilot, f"#{name}", value)


async def prepare(pilot: Pilot[Any], option: int | None = None, name: str = TECHNICIAN) -> None:
    """A 5 mA·min dexamethasone session at 2 mA on 10 cm² (10 s ramps), through the checks to confirm. 2 mA
    stays below the simulated skin's compliance, so the current holds at the set point."""
    await prescribe(pilot, option=option, name=name, current_ma="2", electrode_area_cm2="10", dose_ma_min="5",
                    ramp_up_s="10", ramp_down_s="10")  # fmt: skip
    await shows(pilot, "0.200 mA/cm²")
    await pilot.press("ctrl+n")
    await on_screen(pilot, ContactScreen)
    await shows(pilot, "within the window")
    await pilot.press("ctrl+n")
    await on_screen(pilot, SkinBeforeScreen)
    await answer_skin(pilot)
    await pilot.press("ctrl+n")
    await on_screen(pilot, ConfirmScreen)
    await shows(pilot, "Prescription (checked against the site limits)")


async def start_and_hold(pilot: Pilot[Any], gate: Gate, at_s: float = 20.0) -> SessionController:
    """Start the current (Y) and hold the session `at_s` device seconds after it energised."""
    gate.hold_when(energised_for(at_s))
    await pilot.press("y")
    await on_screen(pilot, RunScreen)
    await until(pilot, lambda: gate.held, "the session to reach the hold")
    return controller_of(pilot.app)  # type: ignore[arg-type]


async def ended(pilot: Pilot[Any]) -> EndScreen:
    await on_screen(pilot, EndScreen)
    await shows(pilot, "Session ended:")
    screen = pilot.app.screen
    assert isinstance(screen, EndScreen)
    return screen


# -- a whole session ---------------------------------------------------------------------------------------


@run_async
async def test_a_full_session_shows_the_current_live_and_ends_in_a_completed_record_with_skin_checks(
    tmp_path: Path,
) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot)
        controller = await start_and_hold(pilot, gate)
        await shows(pilot, "State: DELIVERING")
        await until(pilot, lambda: "█" in trace_text(app), "the live trace")
        assert float(app.screen.query_one("#current", Digits).value) == pytest.approx(2.0, abs=0.05)
        for name in ("state", "current", "electrical", "left", "dose", "progress", "trace"):  # all in view
            region = app.screen.query_one(f"#{name}").region
            assert region.height > 0 and region.bottom <= SIZE[1], name
        screen = text_of(app)
        assert "Voltage" in screen and " V" in screen and " Ω" in screen and "of 5.00 mA·min" in screen
        assert ":" in app.screen.query_one("#left", Digits).value  # the time left, as min:s
        gate.release()

        end = await ended(pilot)
        await shows(pilot, "Session ended: COMPLETED")
        await answer_skin(pilot)
        await pilot.press("ctrl+s")
        await shows(pilot, "no adverse reaction")
        await pilot.press("ctrl+o")
        await shows(pilot, "Chart PDF written")
        assert end.pdf_path is not None and end.pdf_path.read_bytes().startswith(b"%PDF")

    report = controller.report
    assert report is not None and report.result.outcome == "completed"
    assert report.result.dose_ma_min == pytest.approx(5.0, rel=0.01)
    (row,) = records(setup)
    assert row["outcome"] == "completed" and row["patient"] == "P0042" and row["operator"] == TECHNICIAN
    details = ClinicalDetails.of_record(row)
    assert details is not None and details.site is not None and details.site.text == "left forearm"
    with Store(setup.store_path) as store:
        before = store.audit(action="skin-check-before", record_id=row["id"])
        after = store.audit(action="skin-check-after", record_id=row["id"])
        assert store.audit(action="adverse-reaction") == []
        assert len(store.telemetry(row["id"])) > 100
        assert store.verify() is None
    every_no = {item: {"answer": "no"} for item in ITEMS}
    assert [e["actor"] for e in before] == [TECHNICIAN] and before[0]["detail"]["items"] == every_no
    assert after[0]["detail"]["items"] == every_no and after[0]["detail"]["reaction"] == ""


@run_async
async def test_an_adverse_reaction_typed_at_the_end_is_stored_against_the_record(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot)
        await pilot.press("y")
        await ended(pilot)
        await pilot.press("ctrl+n")  # a new session before the skin check after is refused
        await shows(pilot, "Record the skin check after the session first")
        await pilot.press("ctrl+s")  # nothing answered: refused, nothing is taken for "no"
        await shows(pilot, "Not recorded: skin check item 'erythema' (erythema (redness)) is not answered")
        await answer_skin(pilot, {"erythema": "Y"}, key="N")  # either case
        await pilot.press("ctrl+s")
        await shows(pilot, "'erythema' is yes: describe the adverse reaction")
        await fill(pilot, "#skin-reaction", "mild erythema under the cathode")
        await pilot.press("ctrl+s")
        await shows(pilot, "adverse reaction noted: mild erythema under the cathode")
        record_id = controller_of(app).record_id
    with Store(setup.store_path) as store:
        (after,) = store.audit(action="skin-check-after", record_id=record_id)
    assert after["detail"]["reaction"] == "mild erythema under the cathode"
    assert after["detail"]["items"] == {item: {"answer": "yes" if item == "erythema" else "no"} for item in ITEMS}


@run_async
async def test_the_skin_check_after_is_refused_with_an_item_unanswered_or_not_inspected_without_a_reason(
    tmp_path: Path,
) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot)
        await pilot.press("y")
        await ended(pilot)
        await answer_skin(pilot, {"itching": ""})  # every item but one
        await pilot.press("ctrl+s")
        await shows(pilot, "Not recorded: skin check item 'itching' (itching or tingling) is not answered")
        await answer_skin(pilot, {"pain": "i"})
        await pilot.press("ctrl+s")
        await shows(pilot, "'pain' is 'not inspected' without a reason")
        record_id = controller_of(app).record_id
        with Store(setup.store_path) as store:
            assert store.audit(action="skin-check-after", record_id=record_id) == []
        await fill(pilot, "#skin-pain-reason", "patient asleep")
        await pilot.press("ctrl+s")
        await shows(pilot, "Skin check after recorded")
    with Store(setup.store_path) as store:
        (after,) = store.audit(action="skin-check-after", record_id=record_id)
    assert after["detail"]["items"]["pain"] == {"answer": "not inspected", "reason": "patient asleep"}


@run_async
async def test_the_skin_check_before_must_find_every_item_inspected_and_clear(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prescribe(pilot, current_ma="2", electrode_area_cm2="10", dose_ma_min="5")
        await shows(pilot, "0.200 mA/cm²")
        await pilot.press("ctrl+n")
        await on_screen(pilot, ContactScreen)
        await shows(pilot, "within the window")
        await pilot.press("ctrl+n")
        await on_screen(pilot, SkinBeforeScreen)
        await pilot.press("ctrl+n")
        await shows(pilot, "Not complete: skin check item 'erythema'")
        await answer_skin(pilot, {"other": "y"}, key="n")
        await fill(pilot, "#skin-reaction", "a small cut on the left palm")
        await pilot.press("ctrl+n")
        await shows(pilot, "Do not treat until the skin is inspected and clear at both sites")
        await shows(pilot, "- other: yes")
        assert isinstance(app.screen, SkinBeforeScreen) and app.flow.skin_before is None
    assert records(setup) == []


# -- a refused prescription --------------------------------------------------------------------------------


@run_async
async def test_a_session_without_a_known_treatment_site_goes_no_further_naming_the_sites_accepted(
    tmp_path: Path,
) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prescribe(pilot, current_ma="2", electrode_area_cm2="10", dose_ma_min="5", site="")
        await shows(pilot, "give a treatment site")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, PrescriptionScreen) and app.flow.prescription is None
        await fill(pilot, "#site", "left hnd")
        await shows(pilot, "hand, foot, wrist, forearm")
        assert app.flow.prescription is None
        await fill(pilot, "#site", "Left hand")
        await until(pilot, lambda: app.flow.prescription is not None, "the prescription to be accepted")
        assert app.flow.chart["site"] == "left hand"
    assert records(setup) == []
    assert not {"configure", "check_contact", "arm", "start"} & set(source.commands)


@run_async
async def test_a_prescription_over_the_limits_is_refused_live_naming_each_limit_and_nothing_reaches_the_device(
    tmp_path: Path,
) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        # the seed case's "50 mA", on a 20 cm² electrode
        await prescribe(pilot, "asc-exosome-hand-eczema", electrode_area_cm2="20", dose_ma_min="40")
        await shows(pilot, "current 50.00 mA exceeds the site limit of 4.00 mA (max_current_ma)")
        await shows(pilot, "current density 2.50 mA/cm² exceeds the site limit of 0.50 mA/cm² (max_density_ma_cm2)")
        assert "REFUSED" in text_of(app)
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, PrescriptionScreen) and app.flow.prescription is None
        await fill(pilot, "#current_ma", "4")  # within the limits: the refusal goes as it is typed
        await until(pilot, lambda: "REFUSED" not in text_of(app), "the refusal to clear")
        assert app.flow.prescription is not None and app.flow.prescription.current_ma == 4.0
    assert records(setup) == []
    assert not {"configure", "check_contact", "arm", "start"} & set(source.commands)
    assert source.device.energised_at_s is None


@run_async
async def test_a_contact_outside_the_window_is_shown_and_blocks_the_next_step(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path, load="high-impedance")  # ≈ 60 kΩ at rest
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prescribe(pilot, electrode_area_cm2="10")
        await pilot.press("ctrl+n")
        await on_screen(pilot, ContactScreen)
        await shows(pilot, "OUTSIDE the window 500–50000 Ω (min/max_contact_impedance_ohm)")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, ContactScreen)
        await pilot.press("r")  # check again: the same skin, the same answer
        await shows(pilot, "OUTSIDE the window")
    assert records(setup) == [] and source.commands.count("check_contact") == 2
    assert source.device.energised_at_s is None


# -- operator actions --------------------------------------------------------------------------------------


@run_async
async def test_pause_ramps_the_current_to_zero_and_resume_completes_the_dose(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot)
        controller = await start_and_hold(pilot, gate)
        await pilot.press("p")

        def paused_at_zero(_: Any) -> bool:
            snap = controller.snapshot()
            return snap.state == "paused" and snap.sample is not None and snap.sample.measured_ma < 0.05

        gate.hold_when(paused_at_zero)
        gate.release()
        await until(pilot, lambda: gate.held, "the pause to reach zero")
        await shows(pilot, "State: PAUSED")
        current = app.screen.query_one("#current", Digits)
        await until(pilot, lambda: float(current.value) < 0.05, "the current readout at zero")  # the next redraw
        assert app.screen.query_one("#left", Digits).value == "--:--"  # no time left while paused
        await pilot.press("r")
        gate.release()
        await ended(pilot)
        await shows(pilot, "Session ended: COMPLETED")

    result = controller.report.result  # type: ignore[union-attr]
    states = [c.state for c in result.timeline]
    assert result.outcome == "completed" and "paused" in states
    assert states[states.index("paused") + 1] == "ramping_up"
    assert result.dose_ma_min == pytest.approx(5.0, rel=0.01)
    with Store(setup.store_path) as store:
        texts = [e["text"] for e in store.get(controller.record_id).events]  # type: ignore[arg-type]
    assert "paused: paused by the operator" in texts and "ramping_up: resumed by the operator" in texts


@run_async
async def test_abort_needs_a_second_different_key_and_then_ends_the_session_aborted(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot)
        controller = await start_and_hold(pilot, gate)
        await pilot.press("a", "a")  # the opening key again does not confirm
        await on_screen(pilot, ConfirmAction)
        await shows(pilot, "ABORT the session?")
        await pilot.press("escape")  # and going back leaves the session running
        await on_screen(pilot, RunScreen)
        gate.hold_when(energised_for(25.0))
        gate.release()
        await until(pilot, lambda: gate.held, "the session to run on to 25 s")
        assert controller.snapshot().state == "delivering"
        await pilot.press("a")
        await on_screen(pilot, ConfirmAction)
        await pilot.press("y")
        await on_screen(pilot, RunScreen)
        gate.release()
        await ended(pilot)
        await shows(pilot, "Session ended: ABORTED")

    result = controller.report.result  # type: ignore[union-attr]
    assert result.outcome == "aborted" and not result.alarm
    assert 0 < result.dose_ma_min < 5.0 * 0.9
    (row,) = records(setup)
    assert row["outcome"] == "aborted"
    assert source.device.firmware.measured_ua < 100  # the simulated current really is at zero


@run_async
async def test_a_session_on_the_simulator_over_a_socket_runs_through_the_real_driver(tmp_path: Path) -> None:
    """The same flow with `ionctl.drivers.open_device` on the simulator's TCP endpoint, as on hardware. The
    driver's reader thread keeps the process busy, and the pilot waits up to a second per key for the process
    to go idle, so the forms are filled in directly here (typing is covered above) and only the steps are keys."""
    from ionctl.config import load_config
    from ionctl.drivers.discovery import Found
    from tests.console.driving import clinic_in
    from tests.people import TEST_COST
    from tests.sim.endpoints import running_sim

    def put(selector: str, value: str) -> None:
        app.screen.query_one(selector, Input).value = value

    # 20x, not 60x: the device's dose cap is 0.2 mA·min past the dose, 6 s of the device's time at 2 mA, which at
    # 60x left the host 100 ms to start its ramp-down; a loaded machine running the console overran it once
    with running_sim("--tcp", "0", "--time-scale", "20") as sim:
        address = sim.endpoints["tcp"]
        clinic = clinic_in(tmp_path)
        setup = ConsoleSetup.from_config(
            load_config(clinic.config), clinic.store, device=address, export_dir=tmp_path,
            discover=lambda: ([Found(address, "serial", "simulator")], None), cost=TEST_COST,
        )  # fmt: skip
        app = ConsoleApp(setup)
        async with app.run_test(size=SIZE) as pilot:
            await log_in(pilot)
            await pilot.press("enter")
            await on_screen(pilot, PatientScreen)
            put("#patient", "P0042")
            await pilot.press("ctrl+n")
            await on_screen(pilot, PresetScreen)
            await pilot.press("enter")
            await on_screen(pilot, PrescriptionScreen)
            for name, value in (("current_ma", "2"), ("electrode_area_cm2", "10"), ("dose_ma_min", "5"),
                                ("ramp_up_s", "10"), ("ramp_down_s", "10"), ("site", "left forearm")):  # fmt: skip
                put(f"#{name}", value)
            await shows(pilot, "0.200 mA/cm²")
            await pilot.press("ctrl+n")
            await on_screen(pilot, ContactScreen)
            await shows(pilot, "within the window")
            await pilot.press("ctrl+n")
            await on_screen(pilot, SkinBeforeScreen)
            await answer_skin(pilot)
            await pilot.press("ctrl+n")
            await on_screen(pilot, ConfirmScreen)
            await pilot.press("y")
            await on_screen(pilot, RunScreen)
            await shows(pilot, "State: DELIVERING")
            await ended(pilot)
            await shows(pilot, "Session ended: COMPLETED")
    result = controller_of(app).report.result  # type: ignore[union-attr]
    assert result.outcome == "completed" and result.device is not None and result.device["address"] == address
    assert result.dose_ma_min == pytest.approx(5.0, rel=0.01)
    (row,) = records(setup)
    assert row["outcome"] == "completed"


# -- faults ------------------------------------------------------------------------------------------------


@run_async
async def test_an_open_circuit_takes_over_the_screen_with_what_to_do(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path, faults=("electrode-lift@20",))
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot)
        await pilot.press("y")
        await on_screen(pilot, FaultScreen)
        await shows(pilot, "FAULT (open_circuit): Open circuit")
        await shows(pilot, "Check that both electrodes are on the skin")
        await shows(pilot, "the output is off")
        await pilot.press("enter")
        await ended(pilot)
        await shows(pilot, "Session ended: FAULT")

    result = controller_of(app).report.result  # type: ignore[union-attr]
    assert result.outcome == "fault" and result.fault == "open_circuit" and not result.alarm
    (row,) = records(setup)
    assert row["outcome"] == "fault" and row["fault"] == "open_circuit"


@run_async
async def test_a_welded_output_raises_the_alarm_remove_the_electrodes(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path, faults=("stuck-output=welded@20",))
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot)
        await pilot.press("y")
        await on_screen(pilot, FaultScreen)
        await shows(pilot, "REMOVE THE ELECTRODES FROM THE PATIENT NOW")
        await shows(pilot, "CURRENT STILL FLOWS")

    result = controller_of(app).report.result  # type: ignore[union-attr]
    assert result.alarm and result.fault == "stuck_output"
    (row,) = records(setup)
    assert row["alarm"] == 1 and row["fault"] == "stuck_output"
    assert source.device.firmware.measured_ua > 100  # the simulated output really is still on


def test_every_device_and_session_fault_code_has_plain_instructions() -> None:
    from ionctl.core.vocabulary import SessionFault

    codes = {code.value for code in FaultCode} - {"none"}
    # the session's own codes, from the vocabulary it raises them from, so a new one cannot go without advice
    session_codes = {code.value for code in SessionFault}
    assert {"stuck_output", "ramp_stalled", "stale_telemetry", "dose_short", "host_lost"} <= session_codes
    assert codes | session_codes | {"dose_mismatch", "link_lost"} <= set(FAULT_ADVICE)


# -- courses -----------------------------------------------------------------------------------------------


def start_dexamethasone_course(setup: ConsoleSetup) -> int:
    """Six sessions, twice a week, at least 3 days apart, for patient P0042."""
    from ionctl.core.courses import start_course

    assert setup.config is not None
    with Store(setup.store_path) as store:
        return start_course(store, setup.config, patient="P0042", operator="T07", preset="dexamethasone",
                            sessions=6, per_week=2, min_interval_days=3,
                            prescription={"electrode_area_cm2": 10.0})  # fmt: skip


@run_async
async def test_a_course_session_is_recorded_as_part_of_its_course(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    course_id = start_dexamethasone_course(setup)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot, option=0)  # the patient's course, listed before the presets
        await shows(pilot, f"Course {course_id}")
        await pilot.press("y")
        await ended(pilot)
        await shows(pilot, "Session ended: COMPLETED")
    (row,) = records(setup)
    assert row["course_id"] == course_id and row["config_sha256"] == setup.config_sha256
    with Store(setup.store_path) as store:
        from datetime import UTC, datetime

        from ionctl.core.courses import status

        assert status(store, course_id, datetime.now(UTC)).done == 1


@run_async
async def test_a_course_session_too_soon_is_refused_naming_the_rule(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    course_id = start_dexamethasone_course(setup)
    with Store(setup.store_path) as store:  # a session of the course, done just now
        record_id = store.open_record(patient="P0042", operator="T07", prescription={}, limits={}, limits_sha256="",
                                      course_id=course_id)  # fmt: skip
        store.close_record(record_id, {"outcome": "completed", "energised": True, "dose_ma_min": 40.0})
        check = SkinCheck.of(AFTER, dict.fromkeys(ITEMS, "no"))  # its skin check after is recorded: none pending
        store.append_addendum(record_id, "T07", Addendum(SKIN_CHECK_AFTER, skin=check))
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, option=0)
        await shows(pilot, "REFUSED: course 1: the minimum interval is 3 days")
        assert isinstance(app.screen, PresetScreen) and app.flow.course_id is None
    assert len(records(setup)) == 1
    assert "configure" not in source.commands


# -- configuration and the command -------------------------------------------------------------------------


@run_async
async def test_an_unapproved_configuration_is_shown_and_no_session_can_start(tmp_path: Path) -> None:
    import argparse

    from ionctl.config.site import packaged_text

    edited = tmp_path / "site.toml"
    edited.write_text(packaged_text() + "\n# edited by hand\n", encoding="utf-8")
    args = argparse.Namespace(config=str(edited), db=str(tmp_path / "records.sqlite3"), device=None)
    setup = ConsoleSetup.from_args(args)
    assert setup.blocked is not None
    opened: list[str] = []
    setup.open_device = lambda address: opened.append(address)  # type: ignore[assignment,func-returns-value,return-value]
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await on_screen(pilot, BlockedScreen)
        await shows(pilot, "SESSIONS CANNOT START")
        await shows(pilot, "is not approved")
        await pilot.press("enter", "ctrl+n", "y")
        assert isinstance(app.screen, BlockedScreen)
    assert opened == [] and records(setup) == []


def test_ionctl_help_does_not_import_textual() -> None:
    code = ("import runpy, sys\nsys.argv = ['ionctl', '--help']\ntry:\n    runpy.run_module('ionctl', "
            "run_name='__main__')\nexcept SystemExit:\n    pass\nprint(json.dumps(sorted(m for m in sys.modules "
            "if m.split('.')[0] == 'textual')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, check=True)
    assert "console" in out.stdout  # the subcommand is listed
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []

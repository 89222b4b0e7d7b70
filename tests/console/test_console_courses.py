"""The console keeps the course rules as `ionctl run` does: a session outside a course, for a patient with a
course of the same preset or drug in progress, is refused before the device is energised, naming the course."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from ionctl.console.app import ConsoleApp
from ionctl.console.screens.checks import ConfirmScreen, ContactScreen, SkinBeforeScreen
from ionctl.console.screens.override import OverrideScreen
from ionctl.console.screens.prescription import PrescriptionScreen
from ionctl.console.setup import ConsoleSetup
from ionctl.records import Store
from tests.console.driving import answer_skin, console_setup, fill, on_screen, run_async, shows, until
from tests.console.test_console import SIZE, choose, ended, prepare, records, start_dexamethasone_course
from tests.people import PASSWORDS, SUPERVISOR, TECHNICIAN


@run_async
async def test_a_session_outside_the_patients_course_of_the_same_preset_is_refused(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    course_id = start_dexamethasone_course(setup)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot, option=1)  # the dexamethasone preset, below the patient's course
        assert app.flow.course_id is None
        await pilot.press("y")

        def refused() -> bool:
            return any(f"has course {course_id} (dexamethasone" in n.message and f"--course {course_id}" in n.message
                       for n in app._notifications)  # fmt: skip

        await until(pilot, refused, "the refusal naming the course")
        assert isinstance(app.screen, ConfirmScreen) and app.flow.controller is None
    assert records(setup) == []
    assert not {"arm", "start"} & set(source.commands)  # the contact check ran; no current was started
    with Store(setup.store_path) as store:
        assert store.course_records(course_id) == []


# -- the supervisor override, as `ionctl run --supervisor-override --supervisor NAME` has it -------------------

REASON = "visit moved by the clinic"


def course_done_just_now(setup: ConsoleSetup) -> int:
    """The patient's dexamethasone course with a session done just now (its skin check after recorded): its
    minimum interval refuses the next one."""
    from ionctl.records.skin import AFTER, ITEMS, SKIN_CHECK_AFTER, Addendum, SkinCheck

    course_id = start_dexamethasone_course(setup)
    with Store(setup.store_path) as store:
        record_id = store.open_record(patient="P0042", operator=TECHNICIAN, prescription={}, limits={},
                                      limits_sha256="", course_id=course_id)  # fmt: skip
        store.close_record(record_id, {"outcome": "completed", "energised": True, "dose_ma_min": 40.0})
        store.append_addendum(record_id, TECHNICIAN, Addendum(SKIN_CHECK_AFTER, skin=SkinCheck.of(AFTER, dict.fromkeys(
            ITEMS, "no"))))  # fmt: skip
    return course_id


async def give_override(pilot: Pilot[Any], name: str, password: str) -> None:
    """The override dialog: the reason, the supervisor's name and password."""
    await on_screen(pilot, OverrideScreen)
    await shows(pilot, "Supervisor's password")
    await pilot.press(*REASON, "enter", *name, "enter", *password, "enter")


async def override_the_course(pilot: Pilot[Any], name: str, password: str) -> None:
    """Choose the refused course, give the override (reason, `name` and `password`), and go through the checks
    to confirm."""
    await choose(pilot, option=0)
    await shows(pilot, "REFUSED: course 1: the minimum interval is 3 days")
    await pilot.press("o")
    await give_override(pilot, name, password)
    await on_screen(pilot, PrescriptionScreen)
    for name, value in dict(current_ma="2", electrode_area_cm2="10", dose_ma_min="5", ramp_up_s="10",
                            ramp_down_s="10", site="left forearm").items():  # fmt: skip
        await fill(pilot, f"#{name}", value)
    await shows(pilot, "0.200 mA/cm²")
    await pilot.press("ctrl+n")
    await on_screen(pilot, ContactScreen)
    await shows(pilot, "within the window")
    await pilot.press("ctrl+n")
    await on_screen(pilot, SkinBeforeScreen)
    await answer_skin(pilot)
    await pilot.press("ctrl+n")
    await on_screen(pilot, ConfirmScreen)
    await shows(pilot, f"Supervisor override: {REASON}")


@run_async
async def test_a_refused_course_session_overridden_by_a_supervisor_runs_and_the_override_is_recorded(
    tmp_path: Path,
) -> None:
    setup, source, gate = console_setup(tmp_path)
    course_id = course_done_just_now(setup)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await override_the_course(pilot, SUPERVISOR, PASSWORDS[SUPERVISOR])
        await pilot.press("y")
        await ended(pilot)
        await shows(pilot, "Session ended: COMPLETED")
    with Store(setup.store_path) as store:
        first, session = store.course_records(course_id)
        (entry,) = store.audit(action="course-override")
        assert (entry["record_id"], entry["course_id"]) == (session["id"], course_id)
        assert entry["detail"]["reason"] == REASON and "minimum interval is 3 days" in entry["detail"]["rule"]
        assert entry["detail"]["operator"] == TECHNICIAN and session["operator"] == TECHNICIAN
        assert [e["actor"] for e in store.audit(action="login")][-1] == SUPERVISOR  # the supervisor logged in
        assert store.audit(action="login-denied") == []
    assert "start" in source.commands


@run_async
async def test_the_override_given_at_the_console_is_signed_by_the_supervisor(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    course_done_just_now(setup)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await override_the_course(pilot, SUPERVISOR, PASSWORDS[SUPERVISOR])
        await pilot.press("y")
        await ended(pilot)
    with Store(setup.store_path) as store:
        (entry,) = store.audit(action="course-override")
        assert entry["actor"] == SUPERVISOR and entry["detail"]["signature"]["signer"] == SUPERVISOR


@pytest.mark.parametrize(("name", "password", "said", "denied"), [
    (TECHNICIAN, PASSWORDS[TECHNICIAN], "tess is a technician: only a supervisor may override a course rule", 0),
    (SUPERVISOR, "Not-sams-password-1", "'sam': unknown account or wrong password (4 tries before a lockout)", 1),
])  # fmt: skip
@run_async
async def test_a_refused_course_session_is_not_overridden_by_a_technician_or_a_wrong_password(
    tmp_path: Path, name: str, password: str, said: str, denied: int
) -> None:
    setup, source, gate = console_setup(tmp_path)
    course_id = course_done_just_now(setup)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await override_the_course(pilot, name, password)
        await pilot.press("y")

        def refused() -> bool:
            return any(said in n.message for n in app._notifications)

        await until(pilot, refused, f"the override refused; said: {[n.message for n in app._notifications]}")
        assert isinstance(app.screen, ConfirmScreen) and app.flow.controller is None
        assert app.flow.override_reason is None and app.flow.override_supervisor is None
    with Store(setup.store_path) as store:
        assert len(store.course_records(course_id)) == 1  # only the session done before
        assert store.audit(action="course-override") == [] and len(store.audit(action="login-denied")) == denied
    assert not {"arm", "start"} & set(source.commands)


@run_async
async def test_a_session_outside_the_course_refused_at_the_start_may_be_overridden_there(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    course_id = start_dexamethasone_course(setup)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot, option=1)  # the dexamethasone preset, below the patient's course
        await pilot.press("y")
        await until(pilot, lambda: any("press O" in n.message for n in app._notifications), "the refusal")
        await pilot.press("o")
        await give_override(pilot, SUPERVISOR, PASSWORDS[SUPERVISOR])
        await on_screen(pilot, ConfirmScreen)
        await shows(pilot, f"Supervisor override: {REASON}")
        await pilot.press("y")
        await ended(pilot)
        await shows(pilot, "Session ended: COMPLETED")
    (row,) = records(setup)
    assert row["course_id"] is None
    with Store(setup.store_path) as store:
        (entry,) = store.audit(action="course-override")
        assert (entry["record_id"], entry["course_id"]) == (row["id"], course_id)
        assert entry["detail"]["outside_course"] is True and entry["detail"]["reason"] == REASON

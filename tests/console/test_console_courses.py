"""The console keeps the course rules as `ionctl run` does: a session outside a course, for a patient with a
course of the same preset or drug in progress, is refused before the device is energised, naming the course."""

from __future__ import annotations

from pathlib import Path

from ionctl.console.app import ConsoleApp
from ionctl.console.screens.checks import ConfirmScreen
from ionctl.records import Store
from tests.console.driving import console_setup, run_async, until
from tests.console.test_console import SIZE, prepare, records, start_dexamethasone_course


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

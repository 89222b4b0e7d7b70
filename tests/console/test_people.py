"""Who is at the bench: the console's login, the first-use password, the roles that may run sessions, and the
idle lock, which never stands between the technician and Stop during a running session. Driven by keyboard
through Textual's pilot against the in-process simulator, in a clinic (tests/people.py); judged on the screen,
the record store and the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from ionctl.config.proof import check
from ionctl.console.app import ConsoleApp
from ionctl.console.screens.end import EndScreen
from ionctl.console.screens.login import LockScreen, LoginScreen
from ionctl.console.screens.run import ConfirmAction
from ionctl.console.screens.setup import DeviceScreen, PatientScreen, PresetScreen
from ionctl.console.setup import ConsoleSetup
from ionctl.records import Store
from tests.console.driving import (
    Clock,
    answer_skin,
    console_setup,
    fill,
    log_in,
    on_screen,
    run_async,
    shows,
    text_of,
    until,
)
from tests.console.test_console import SIZE, prepare, records, start_and_hold
from tests.console.test_keys import descent, keep_truth, record_of
from tests.people import ADMIN, AUDITOR, PASSWORDS, SUPERVISOR, TECHNICIAN

#: The idle lock of the clinics below ([accounts] idle_lock_minutes), in seconds.
IDLE_S = 120.0
ACCOUNTS = f"idle_lock_minutes = {IDLE_S / 60:g}"


def clock_of(setup: ConsoleSetup) -> Clock:
    assert isinstance(setup.clock, Clock)
    return setup.clock


async def type_login(pilot: Pilot[Any], name: str, password: str) -> None:
    await fill(pilot, "#login-name", name)
    await pilot.press("enter", *password, "enter")


async def locked(pilot: Pilot[Any]) -> None:
    """The lock, with the cursor in its password field (no session running)."""
    app = pilot.app
    await on_screen(pilot, LockScreen)
    await until(pilot, lambda: app.focused is not None and app.focused.id == "login-password", "the password")


def audit(setup: ConsoleSetup, action: str) -> list[dict[str, Any]]:
    with Store(setup.store_path) as store:
        return store.audit(action=action)


# -- the login ---------------------------------------------------------------------------------------------


@run_async
async def test_nothing_opens_before_a_login_and_a_wrong_password_is_refused_with_the_tries_left(
    tmp_path: Path,
) -> None:
    setup, source, gate = console_setup(tmp_path)
    commands = list(source.commands)  # the simulator's own start-up
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await on_screen(pilot, LoginScreen)
        await pilot.press("ctrl+n", "escape", "enter", "enter")  # no step answers: the login has the keys
        await shows(pilot, "Give your name and your password.")
        assert isinstance(app.screen, LoginScreen) and app.identity is None
        assert not any(isinstance(s, DeviceScreen) for s in app.screen_stack)
        await type_login(pilot, TECHNICIAN, "Not-the-password-9")
        await shows(pilot, "'tess': unknown account or wrong password (4 tries before a lockout)")
        assert isinstance(app.screen, LoginScreen) and app.identity is None
        assert app.screen.query_one("#login-password").value == ""  # type: ignore[attr-defined]
        await type_login(pilot, TECHNICIAN, PASSWORDS[TECHNICIAN])
        await on_screen(pilot, DeviceScreen)
        assert app.identity is not None and app.identity.name == TECHNICIAN
    assert [e["detail"]["reason"] for e in audit(setup, "login-denied")] == ["wrong password"]
    assert source.commands == commands  # the device was never touched before the login


@run_async
async def test_the_fifth_wrong_password_locks_the_account_and_says_until_when(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await on_screen(pilot, LoginScreen)
        for attempt in range(5):
            await type_login(pilot, TECHNICIAN, f"Wrong-password-{attempt}")
            await shows(pilot, "'tess'")
            await until(pilot, lambda: not app.screen.busy, "the attempt")  # type: ignore[attr-defined]
        await shows(pilot, "'tess' is locked after 5 wrong passwords until ")
        await shows(pilot, "here.")  # and in the clinic's time
        await type_login(pilot, TECHNICIAN, PASSWORDS[TECHNICIAN])  # the right one, too late
        await shows(pilot, "is locked after 5 wrong passwords")
        await pilot.pause(0.2)
        assert isinstance(app.screen, LoginScreen) and app.identity is None
    assert len(audit(setup, "user-locked")) == 1


@run_async
async def test_an_initial_password_must_be_replaced_typed_twice_before_anything_else(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    with Store(setup.store_path) as store:
        people = setup.people(store)
        people.add(people.login(ADMIN, PASSWORDS[ADMIN]), "nina", "Nina Newcomer", "technician", "Initial-pw-77x")
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await on_screen(pilot, LoginScreen)
        await type_login(pilot, "nina", "Initial-pw-77x")
        await shows(pilot, "nina has an initial password: set a password of your own")
        await until(pilot, lambda: app.focused is not None and app.focused.id == "login-new", "the new password")
        await pilot.press(*"Own-garden-42", "enter", *"Own-garden-43", "enter")
        await shows(pilot, "The two new passwords differ")
        assert isinstance(app.screen, LoginScreen) and app.identity is None
        await pilot.press(*"12345678", "enter", *"12345678", "enter")
        await shows(pilot, "an all-digit password, or digits and separators (a date), is refused")  # weak: again
        assert app.identity is None
        await pilot.press(*"Own-garden-42", "enter", *"Own-garden-42", "enter")
        await on_screen(pilot, DeviceScreen)
        assert app.identity is not None and app.identity.name == "nina"
    with Store(setup.store_path) as store:
        people = setup.people(store)
        assert people.login("nina", "Own-garden-42").name == "nina"  # the password set is the one that works
        assert not people.account("nina").must_change


@run_async
async def test_an_administrator_or_an_auditor_is_told_the_console_runs_sessions_and_not_let_in(
    tmp_path: Path,
) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await on_screen(pilot, LoginScreen)
        for name, role in ((AUDITOR, "an auditor"), (ADMIN, "an administrator")):
            await type_login(pilot, name, PASSWORDS[name])
            await shows(pilot, f"{name} is {role}: the console is for running sessions, which only a technician or "
                               "a supervisor may do")  # fmt: skip
            assert isinstance(app.screen, LoginScreen) and app.identity is None
        await type_login(pilot, SUPERVISOR, PASSWORDS[SUPERVISOR])  # a supervisor runs sessions too
        await on_screen(pilot, DeviceScreen)


@run_async
async def test_the_record_names_the_person_logged_in_as_its_operator_and_is_signed_performed_by_them(
    tmp_path: Path,
) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, SUPERVISOR)
        await pilot.press("enter")
        await on_screen(pilot, PatientScreen)
        await shows(pilot, "Operator: Sam Supervisor (sam, supervisor), logged in")
        assert not app.screen.query("Input#operator")  # nothing to type: the operator is who logged in
        await pilot.press(*"P0042", "enter")
        await on_screen(pilot, PresetScreen)
        await pilot.press("enter")
        await prescription_to_run(pilot)
        await on_screen(pilot, EndScreen)
        await answer_skin(pilot)
        await pilot.press("ctrl+s")
        await shows(pilot, "Skin check after recorded")
    (row,) = records(setup)
    assert row["operator"] == SUPERVISOR
    with Store(setup.store_path) as store:  # the skin checks' author is the person logged in
        checks = store.audit(action="skin-check-before") + store.audit(action="skin-check-after")
    assert [e["actor"] for e in checks] == [SUPERVISOR, SUPERVISOR]
    with Store(setup.store_path) as store:  # signed "performed" by that person, and the signature verifies
        (signed,) = store.audit(action="record-sign", record_id=row["id"])
        assert signed["actor"] == SUPERVISOR and signed["detail"]["meaning"] == "performed"
        assert signed["detail"]["record_sha256"] == store.record_digest(row["id"])
        hashes = store.link_hashes()
        checked = check(store.audit(), setup.config.accounts.administrators, record_digest=store.record_digest,
                        chain_hash=hashes.get)  # fmt: skip
    assert checked.problem is None and checked.signatures > 0, checked


async def prescription_to_run(pilot: Pilot[Any]) -> None:
    """From the prescription screen (the preset chosen) through the checks, then Y."""
    from ionctl.console.screens.checks import ConfirmScreen, ContactScreen, SkinBeforeScreen
    from ionctl.console.screens.prescription import PrescriptionScreen

    await on_screen(pilot, PrescriptionScreen)
    for name, value in (("current_ma", "2"), ("electrode_area_cm2", "10"), ("dose_ma_min", "1"),
                        ("ramp_up_s", "5"), ("ramp_down_s", "5"), ("site", "left forearm")):  # fmt: skip
        await fill(pilot, f"#{name}", value)
    await pilot.press("ctrl+n")
    await on_screen(pilot, ContactScreen)
    await shows(pilot, "within the window")
    await pilot.press("ctrl+n")
    await on_screen(pilot, SkinBeforeScreen)
    await answer_skin(pilot)
    await pilot.press("ctrl+n")
    await on_screen(pilot, ConfirmScreen)
    await shows(pilot, "operator sam")
    await pilot.press("y")


# -- the idle lock ------------------------------------------------------------------------------------------


@run_async
async def test_the_console_locks_after_the_sites_idle_time_and_the_same_password_opens_it(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path, accounts=ACCOUNTS)
    assert setup.idle_lock_s == IDLE_S  # from the site file's [accounts]
    clock = clock_of(setup)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await pilot.press("enter")
        await on_screen(pilot, PatientScreen)
        await pilot.press(*"P00")
        clock.advance(IDLE_S - 1)
        await pilot.pause(1.5)  # the lock looks once a second
        assert isinstance(app.screen, PatientScreen)
        await pilot.press("4")  # a key: the idle time starts again
        clock.advance(IDLE_S - 1)
        await pilot.pause(1.5)
        assert isinstance(app.screen, PatientScreen)
        clock.advance(2)
        await locked(pilot)
        await shows(pilot, "Tess Technician (tess) is logged in; the console locked after 2 min without a key.")
        assert "P004" not in text_of(app)  # the patient's details are covered
        await pilot.press(*"Wrong-password-1", "enter")
        await shows(pilot, "'tess': unknown account or wrong password")
        assert isinstance(app.screen, LockScreen)
        await pilot.press(*PASSWORDS[TECHNICIAN], "enter")
        await on_screen(pilot, PatientScreen)
        assert app.screen.query_one("#patient").value == "P004"  # type: ignore[attr-defined]
        assert app.identity is not None and app.identity.name == TECHNICIAN


@run_async
async def test_another_person_logging_in_at_the_lock_ends_the_first_ones_login(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await pilot.press("enter")
        await on_screen(pilot, PatientScreen)
        await pilot.press(*"P0042")
        clock_of(setup).advance(setup.idle_lock_s)
        await locked(pilot)
        await type_login(pilot, AUDITOR, PASSWORDS[AUDITOR])  # not one who runs sessions: tess stays
        await shows(pilot, "otto is an auditor")
        assert isinstance(app.screen, LockScreen) and app.identity is not None and app.identity.name == TECHNICIAN
        await type_login(pilot, SUPERVISOR, PASSWORDS[SUPERVISOR])
        await on_screen(pilot, DeviceScreen)  # tess's unfinished steps went with her login
        assert app.identity is not None and app.identity.name == SUPERVISOR
        assert app.flow.patient_id == "" and len(app.screen_stack) == 2


@run_async
async def test_stop_works_over_the_lock_during_a_running_session_which_goes_on_until_stopped(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot)
        rows = keep_truth(source)
        controller = await start_and_hold(pilot, gate)
        clock_of(setup).advance(setup.idle_lock_s + 1)
        await on_screen(pilot, LockScreen)
        await shows(pilot, "A session is running: DELIVERING, ")
        assert app.focused is None  # the letters are keys here, not a password
        await pilot.press("p", "r")  # the run screen's pause and resume are not the lock's
        assert isinstance(app.screen, LockScreen) and controller.running
        samples = controller.snapshot().samples
        gate.hold_when(lambda _: controller.snapshot().samples >= samples + 20)
        gate.release()  # locked, the session runs on: samples keep coming, the current holds
        await until(pilot, lambda: gate.held, "twenty more samples under the lock")
        assert controller.snapshot().state == "delivering"
        await pilot.press("s")
        await on_screen(pilot, ConfirmAction)
        await shows(pilot, "STOP the session?")
        await pilot.press("y")
        await on_screen(pilot, LockScreen)
        gate.release()
        await until(pilot, lambda: not controller.running, "the session to end")
        await until(pilot, lambda: any(isinstance(s, EndScreen) for s in app.screen_stack), "the end screen")
        await locked(pilot)  # still locked, over the end screen
        await pilot.press(*PASSWORDS[TECHNICIAN], "enter")
        await on_screen(pilot, EndScreen)
        await shows(pilot, "Session ended: STOPPED")
    assert controller.report is not None and controller.report.result.outcome == "stopped"
    assert "paused" not in [c.state for c in controller.report.result.timeline]
    took_s, largest_drop_ma = descent(rows, 2.0)
    assert took_s >= 0.8 * 10 and largest_drop_ma < 0.1  # the prescribed ramp down, not a cut
    assert source.device.firmware.measured_ua < 5  # the simulated current really is at zero
    record = record_of(setup, controller)
    assert record["outcome"] == "stopped" and "ramping_down: stopped by the operator" in record["events"]


@run_async
async def test_abort_and_ctrl_c_work_over_the_lock_while_a_field_has_the_cursor(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot)
        controller = await start_and_hold(pilot, gate)
        clock_of(setup).advance(setup.idle_lock_s + 1)
        await on_screen(pilot, LockScreen)
        await pilot.press("enter", *"abc")  # into the password field: the letters are typed, nothing else
        assert app.focused is not None and app.focused.id == "login-password"
        assert isinstance(app.screen, LockScreen) and controller.running
        await pilot.press("ctrl+c")  # no field takes it: a ramped stop
        gate.hold_when(lambda _: controller.snapshot().state == "ramping_down")
        gate.release()
        await until(pilot, lambda: gate.held, "the ramped stop to begin")
        await pilot.press("escape", "a")  # out of the field, then A
        await on_screen(pilot, ConfirmAction)
        await pilot.press("y")
        gate.release()
        await until(pilot, lambda: not controller.running, "the session to end")
    assert controller.report is not None and controller.report.result.outcome == "aborted"


@run_async
async def test_a_fault_under_the_lock_shows_its_fault_screen_over_it(tmp_path: Path) -> None:
    from ionctl.console.screens.fault import FaultScreen

    setup, source, gate = console_setup(tmp_path, faults=("electrode-lift@25",))
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot)
        await start_and_hold(pilot, gate)
        clock_of(setup).advance(setup.idle_lock_s + 1)
        await on_screen(pilot, LockScreen)
        gate.release()
        await on_screen(pilot, FaultScreen)
        await shows(pilot, "FAULT (open_circuit)")
        await shows(pilot, "the output is off")
        await pilot.press("enter")  # on to the end: still locked over it
        await until(pilot, lambda: any(isinstance(s, EndScreen) for s in app.screen_stack), "the end screen")
        await on_screen(pilot, LockScreen)

"""The console at the sizes of real terminals: 80×24 (the smallest it must serve) and 120×40. Every screen
shows its essential content and its key help; the run screen fills the terminal and its trace grows with it,
drawn with block elements (every terminal font has them; braille is missing from many)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widgets import Input, Static

from ionctl.console.app import ConsoleApp
from ionctl.console.screens.checks import ContactScreen, SkinBeforeScreen
from ionctl.console.screens.fault import FaultScreen
from ionctl.console.screens.login import LockScreen, LoginScreen
from ionctl.console.screens.prescription import FIELDS
from ionctl.console.screens.run import Trace
from ionctl.console.screens.setup import BlockedScreen, DeviceScreen, PatientScreen, PresetScreen
from tests.console.driving import (
    console_setup,
    fully_visible,
    has_braille,
    key_help,
    log_in,
    on_screen,
    run_async,
    shows,
    text_of,
    trace_text,
)
from tests.console.test_console import ended, prepare, prescribe, start_and_hold

SMALL, LARGE = (80, 24), (120, 40)
#: What the run screen must show at a glance, whatever the size.
RUN_ESSENTIALS = ("#state", "#current", "#left", "#electrical", "#dose", "#progress", "#trace")

# -- the run screen ----------------------------------------------------------------------------------------


@run_async
async def test_the_run_screen_fills_80x24_and_its_trace_grows_at_120x40(tmp_path: Path) -> None:
    traces: dict[tuple[int, int], Region] = {}
    for size in (SMALL, LARGE):
        setup, source, gate = console_setup(tmp_path / f"{size[0]}x{size[1]}")
        app = ConsoleApp(setup)
        async with app.run_test(size=size) as pilot:
            await prepare(pilot)
            await start_and_hold(pilot, gate, 40.0)
            await shows(pilot, "State: DELIVERING")
            await pilot.pause(0.3)  # a redraw with the trace at its full size
            for name in RUN_ESSENTIALS:
                assert fully_visible(app, app.screen.query_one(name)), (name, size)
            keys = key_help(app)
            assert {"Stop (ramped)", "ABORT", "Pause", "Resume"} <= {str(k.description) for k in keys}
            assert all(fully_visible(app, key) for key in keys), size
            trace = app.screen.query_one("#trace", Trace)
            traces[size] = trace.region
            assert trace.region.bottom >= size[1] - 3  # the trace fills the screen down to the message and keys
            drawn = trace_text(app)
            assert "█" in drawn and not has_braille(drawn)
            screenshot = app.save_screenshot(f"run-{size[0]}x{size[1]}.svg", str(tmp_path))
            assert not has_braille(Path(screenshot).read_text(encoding="utf-8"))
            gate.release()
    small, large = traces[SMALL], traces[LARGE]
    assert large.width > small.width and large.height > small.height


# -- the prescription at 80×24 -----------------------------------------------------------------------------


@run_async
async def test_at_80x24_every_prescription_field_can_be_seen_beside_a_long_list_of_refusals(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SMALL) as pilot:
        # the seed case's 50 mA on 1 cm², 400 mA·min, 1 s ramps: five limits broken
        await prescribe(pilot, "asc-exosome-hand-eczema", electrode_area_cm2="1", dose_ma_min="400",
                        ramp_up_s="1", ramp_down_s="1")  # fmt: skip
        await shows(pilot, "ramp-down 1.00 s is below the site minimum of 5.00 s (min_ramp_s)")
        listed = str(app.screen.query_one("#violations", Static).render())
        for limit in ("max_current_ma", "max_density_ma_cm2", "max_dose_ma_min", "ramp-up 1.00 s", "ramp-down 1.00 s"):
            assert limit in listed, limit
        for name in FIELDS:
            field = app.screen.query_one(f"#{name}", Input)
            field.focus()
            await pilot.pause()
            assert fully_visible(app, field), name
        assert fully_visible(app, app.screen.query_one("#rx-check"))  # the list has room of its own
        assert all(fully_visible(app, key) for key in key_help(app))


# -- every screen at 80×24 ---------------------------------------------------------------------------------

Reach = Callable[[Pilot[Any], Any], Awaitable[None]]


async def to_login(pilot: Pilot[Any], gate: Any) -> None:
    await on_screen(pilot, LoginScreen)


async def to_device(pilot: Pilot[Any], gate: Any) -> None:
    await log_in(pilot)
    await on_screen(pilot, DeviceScreen)
    await shows(pilot, "1 found")


async def to_patient(pilot: Pilot[Any], gate: Any) -> None:
    await log_in(pilot)
    await pilot.press("enter")
    await on_screen(pilot, PatientScreen)


async def to_preset(pilot: Pilot[Any], gate: Any) -> None:
    await to_patient(pilot, gate)
    await pilot.press(*"P0042", "enter")
    await on_screen(pilot, PresetScreen)


async def to_prescription(pilot: Pilot[Any], gate: Any) -> None:
    await prescribe(pilot, current_ma="2", electrode_area_cm2="10", dose_ma_min="5")
    await shows(pilot, "0.200 mA/cm²")


async def to_contact(pilot: Pilot[Any], gate: Any) -> None:
    await to_prescription(pilot, gate)
    await pilot.press("ctrl+n")
    await on_screen(pilot, ContactScreen)
    await shows(pilot, "within the window")


async def to_skin(pilot: Pilot[Any], gate: Any) -> None:
    await to_contact(pilot, gate)
    await pilot.press("ctrl+n")
    await on_screen(pilot, SkinBeforeScreen)


async def to_confirm(pilot: Pilot[Any], gate: Any) -> None:
    await prepare(pilot)


async def to_run(pilot: Pilot[Any], gate: Any) -> None:
    await prepare(pilot)
    await start_and_hold(pilot, gate)
    await shows(pilot, "State: DELIVERING")


async def to_lock(pilot: Pilot[Any], gate: Any) -> None:
    await to_run(pilot, gate)
    pilot.app.setup.clock.advance(pilot.app.setup.idle_lock_s)  # type: ignore[attr-defined]
    await on_screen(pilot, LockScreen)
    await shows(pilot, "A session is running: DELIVERING")


async def to_fault(pilot: Pilot[Any], gate: Any) -> None:
    await prepare(pilot)
    await pilot.press("y")
    await on_screen(pilot, FaultScreen)
    await shows(pilot, "the output is off")


async def to_end(pilot: Pilot[Any], gate: Any) -> None:
    await to_fault(pilot, gate)
    await pilot.press("enter")
    await ended(pilot)


#: screen -> how to get there, what it must show in full, a key its help must offer, the simulated faults.
SCREENS: dict[str, tuple[Reach, tuple[str, ...], str, tuple[str, ...]]] = {
    "login": (to_login, ("#login-name", "#login-password"), "Quit", ()),
    "device": (to_device, ("#found", "#address"), "Next", ()),
    "patient": (to_patient, ("#patient", "#operator"), "Next", ()),
    "preset": (to_preset, ("#presets", "#preset-source"), "Next", ()),
    "prescription": (to_prescription, ("#rx-form", "#rx-check", "#planned"), "Next", ()),
    "contact": (to_contact, ("#contact",), "Check again", ()),
    "skin-before": (to_skin, ("#skin", "#skin-note"), "Next", ()),
    "confirm": (to_confirm, ("#summary", ".title"), "Start the current", ()),  # .title: "Press Y to start"
    "run": (to_run, RUN_ESSENTIALS, "ABORT", ()),
    "lock": (to_lock, ("#lock-who", "#lock-session", "#login-name", "#login-password", "#lock-hint"), "ABORT", ()),
    "fault": (
        to_fault,
        ("#fault-title", "#fault-what", "#fault-steps", "#fault-current", "#fault-next"),
        "Continue",
        ("electrode-lift@20",),
    ),  # fmt: skip
    "end": (to_end, ("#outcome", "#result"), "New session", ("electrode-lift@20",)),
}


@pytest.mark.parametrize("name", list(SCREENS))
@run_async
async def test_each_screen_shows_its_content_and_key_help_at_80x24(tmp_path: Path, name: str) -> None:
    reach, essentials, offered, faults = SCREENS[name]
    setup, source, gate = console_setup(tmp_path, faults=faults)
    app = ConsoleApp(setup)
    async with app.run_test(size=SMALL) as pilot:
        await reach(pilot, gate)
        await pilot.pause(0.2)
        for selector in essentials:
            widgets = list(app.screen.query(selector))
            assert widgets, selector
            for widget in widgets:
                assert fully_visible(app, widget), f"{selector}:\n{text_of(app)}"
        keys = key_help(app)
        assert offered in {str(key.description) for key in keys}
        assert all(fully_visible(app, key) for key in keys), [str(k.description) for k in keys]
        gate.release()


@run_async
async def test_the_blocked_screen_says_why_at_80x24(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    setup.blocked = "the site configuration in force is not approved " * 3
    app = ConsoleApp(setup)
    async with app.run_test(size=SMALL) as pilot:
        await on_screen(pilot, BlockedScreen)
        await pilot.pause(0.2)
        assert fully_visible(app, app.screen.query_one("#blocked"))
        keys = key_help(app)
        assert "Quit" in {str(key.description) for key in keys} and all(fully_visible(app, key) for key in keys)

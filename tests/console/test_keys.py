"""The console's keys: every letter key works in both cases (Caps Lock on or off), Ctrl-C means what it means
under `ionctl run` (a ramped stop, then an abort; leave the console when no session runs), and the console
never quits while a session runs. Judged on the session's record and on the simulator's ground truth."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any

import pytest
from textual.binding import BindingsMap
from textual.dom import DOMNode

import ionctl.console.screens
from ionctl.console.app import ConsoleApp
from ionctl.console.controller import SessionController
from ionctl.console.screens.run import ConfirmAction, RunScreen
from ionctl.records import Store
from tests.console.driving import console_setup, log_in, on_screen, run_async, shows, until
from tests.console.test_console import SIZE, ended, prepare, start_and_hold

# -- every letter key in both cases ------------------------------------------------------------------------


def console_classes() -> list[type[DOMNode]]:
    """The app and every screen or widget class of the console that declares key bindings of its own."""
    modules = [importlib.import_module("ionctl.console.app")]
    for info in pkgutil.iter_modules(ionctl.console.screens.__path__, "ionctl.console.screens."):
        modules.append(importlib.import_module(info.name))
    found: dict[str, type[DOMNode]] = {}
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, DOMNode) and cls.__module__ == module.__name__ and "BINDINGS" in vars(cls):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return list(found.values())


def letter_keys() -> list[tuple[type[DOMNode], str, str]]:
    """(class, letter key, action) for every single-letter key a console class binds, in either case."""
    rows = []
    for cls in console_classes():
        for key, bindings in BindingsMap(vars(cls)["BINDINGS"]).key_to_bindings.items():
            if len(key) == 1 and key.isalpha():
                rows.extend((cls, key, binding.action) for binding in bindings)
    return rows


LETTER_KEYS = letter_keys()


@pytest.mark.parametrize(("cls", "key", "action"), LETTER_KEYS,
                         ids=[f"{cls.__name__}-{key}" for cls, key, _ in LETTER_KEYS])  # fmt: skip
def test_every_letter_key_does_the_same_in_the_other_case(cls: type[DOMNode], key: str, action: str) -> None:
    other = BindingsMap(vars(cls)["BINDINGS"]).key_to_bindings.get(key.swapcase(), [])
    assert action in [binding.action for binding in other], (
        f"{cls.__name__}: {key!r} does {action!r} but {key.swapcase()!r} does not (Caps Lock would disable it)"
    )


def test_the_letter_keys_are_found_where_the_console_has_them() -> None:
    """The table above is read from the code: it must hold the keys that matter, or it proves nothing."""
    found = {(cls.__name__, key, action) for cls, key, action in LETTER_KEYS}
    assert {("RunScreen", "s", "stop"), ("RunScreen", "a", "abort"), ("RunScreen", "p", "pause"),
            ("RunScreen", "r", "resume"), ("ConfirmAction", "y", "confirm"), ("ConfirmAction", "n", "cancel"),
            ("ConfirmScreen", "y", "start"), ("ContactScreen", "r", "recheck"),
            ("BlockedScreen", "q", "app.quit")} <= found  # fmt: skip


# -- judged on the simulator -------------------------------------------------------------------------------


def keep_truth(source: Any) -> list[dict[str, object]]:
    """Keep every step of the simulator's ground truth (10 ms of device time each) from now on."""
    truth = source.device.trace
    truth.keep = []
    return truth.keep  # type: ignore[no-any-return]


def descent(rows: list[dict[str, object]], from_ma: float) -> tuple[float, float]:
    """The true current's last fall from `from_ma` to zero: (its duration in device seconds, the largest drop in
    one 10 ms step, in mA). A ramp takes time in small steps; a cut is one step."""
    current = [(float(r["t_s"]), float(r["current_ua"]) / 1000) for r in rows]  # type: ignore[arg-type]
    start = max(i for i, (_, ma) in enumerate(current) if ma >= 0.9 * from_ma)
    end = next(i for i in range(start, len(current)) if current[i][1] <= 0.005)
    drops = [current[i][1] - current[i + 1][1] for i in range(start, end)]
    return current[end][0] - current[start][0], max(drops, default=0.0)


def record_of(setup: Any, controller: SessionController) -> dict[str, Any]:
    with Store(setup.store_path) as store:
        record = store.get(controller.record_id)  # type: ignore[arg-type]
        assert store.verify() is None  # the chain holds, the closing included
    return {"outcome": record.fields["outcome"], "events": [e["text"] for e in record.events]}


@run_async
async def test_with_caps_lock_on_S_then_Y_stops_the_session_along_its_ramp(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot)
        rows = keep_truth(source)
        controller = await start_and_hold(pilot, gate)
        await pilot.press("S")
        await on_screen(pilot, ConfirmAction)
        await pilot.press("Y")
        await on_screen(pilot, RunScreen)
        gate.release()
        await ended(pilot)
        await shows(pilot, "Session ended: STOPPED")

    result = controller.report.result  # type: ignore[union-attr]
    assert result.outcome == "stopped" and 0 < result.dose_ma_min < 5.0 * 0.9
    took_s, largest_drop_ma = descent(rows, 2.0)
    assert took_s >= 0.8 * 10 and largest_drop_ma < 0.1  # the prescribed 10 s ramp down, not a cut
    assert source.device.firmware.measured_ua < 5
    record = record_of(setup, controller)
    assert record["outcome"] == "stopped" and "ramping_down: stopped by the operator" in record["events"]


# -- Ctrl-C and quitting -----------------------------------------------------------------------------------


@run_async
async def test_ctrl_c_while_delivering_is_a_ramped_stop_recorded_as_the_operators(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot)
        rows = keep_truth(source)
        controller = await start_and_hold(pilot, gate)
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert app.is_running and isinstance(app.screen, RunScreen)  # no quit prompt, no quitting
        gate.release()
        await ended(pilot)
        await shows(pilot, "Session ended: STOPPED")

    assert controller.report.result.outcome == "stopped"  # type: ignore[union-attr]
    took_s, largest_drop_ma = descent(rows, 2.0)
    assert took_s >= 0.8 * 10 and largest_drop_ma < 0.1
    record = record_of(setup, controller)
    assert record["outcome"] == "stopped" and "ramping_down: stopped by the operator" in record["events"]


@run_async
async def test_a_second_ctrl_c_aborts_with_the_fastest_safe_ramp(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot)
        rows = keep_truth(source)
        controller = await start_and_hold(pilot, gate)
        await pilot.press("ctrl+c")
        gate.hold_when(lambda _: controller.snapshot().state == "ramping_down")
        gate.release()
        await until(pilot, lambda: gate.held, "the ramped stop to begin")
        await pilot.press("ctrl+c")
        await pilot.pause()
        gate.release()
        await ended(pilot)
        await shows(pilot, "Session ended: ABORTED")

    assert controller.report.result.outcome == "aborted"  # type: ignore[union-attr]
    took_s, _ = descent(rows, 2.0)
    assert 0.02 < took_s < 0.8 * 10  # faster than the prescribed ramp, and still a ramp, not a cut
    assert source.device.firmware.measured_ua < 5
    record = record_of(setup, controller)
    assert record["outcome"] == "aborted" and "aborted: aborted by the operator" in record["events"]


@run_async
async def test_ctrl_q_while_delivering_asks_for_a_ramped_stop_and_the_console_stays_open(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot)
        controller = await start_and_hold(pilot, gate)
        await pilot.press("ctrl+q")
        await on_screen(pilot, ConfirmAction)
        await shows(pilot, "STOP the session now?")
        await pilot.press("n")  # going back: the session goes on, the console stays open
        await on_screen(pilot, RunScreen)
        assert app.is_running and controller.running
        await pilot.press("ctrl+q")
        await on_screen(pilot, ConfirmAction)
        await pilot.press("y")
        gate.release()
        await ended(pilot)
        assert app.is_running
        await shows(pilot, "Session ended: STOPPED")

    assert source.device.firmware.measured_ua < 5
    record = record_of(setup, controller)
    assert record["outcome"] == "stopped" and "ramping_down: stopped by the operator" in record["events"]


@run_async
async def test_ctrl_c_on_a_setup_screen_leaves_the_console(tmp_path: Path) -> None:
    from ionctl.console.screens.setup import DeviceScreen

    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await on_screen(pilot, DeviceScreen)
        assert app.focused is not None and app.focused.id == "address"  # an input has the focus (and its copy key)
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert app.return_code == 0  # exited, as by Ctrl-Q
    assert source.device.energised_at_s is None

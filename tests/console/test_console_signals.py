"""The console and the signals that end it: SIGHUP (its terminal closed) and SIGTERM during a session ramp the
current down as a stop does, the record closes `stopped` naming the signal, and the console is not gone before
the record is closed. Signals are real (sent to this process, handled by the console's event loop), judged on
the simulator's ground truth; the console's end is whatever `run_test` does when the app leaves."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest

from ionctl.console.app import ConsoleApp
from ionctl.console.controller import SessionController
from ionctl.records import Store
from tests.console.driving import console_setup, run_async, until
from tests.console.test_console import SIZE, prepare, start_and_hold
from tests.console.test_keys import descent, keep_truth
from tests.sim.endpoints import ROOT
from tests.test_signals import ON_TERMINAL, read_until


@pytest.fixture(autouse=True)
def signals_survived() -> Iterator[None]:
    """Without the console's handlers, SIGHUP and SIGTERM are noted here (not the test runner's end): the
    session then runs on, and the test fails on its outcome."""
    seen: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: seen.append(signum)) for s in (signal.SIGHUP, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stopped_record(setup: object, controller: SessionController) -> dict[str, object]:
    with Store(setup.store_path) as store:  # type: ignore[attr-defined]
        return dict(store.get(controller.record_id).fields)  # type: ignore[arg-type]


@run_async
async def test_sighup_mid_delivery_ramps_down_and_the_console_leaves_once_the_record_is_closed(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot)
        rows = keep_truth(source)
        controller = await start_and_hold(pilot, gate)
        os.kill(os.getpid(), signal.SIGHUP)
        await pilot.pause(0.1)
        gate.release()
    # The app has ended: the session must have ended too, its record closed, not left to a killed thread.
    assert not controller.running and controller.report is not None
    assert controller.report.result.outcome == "stopped"
    took_s, largest_drop_ma = descent(rows, 2.0)
    assert took_s >= 0.8 * 10 and largest_drop_ma < 0.1  # the prescribed 10 s ramp down, not a cut
    assert source.device.firmware.measured_ua < 5
    record = stopped_record(setup, controller)
    assert record["outcome"] == "stopped"
    assert str(record["message"]).startswith("stopped: SIGHUP, the terminal closed"), record["message"]


@run_async
async def test_sigterm_mid_delivery_ramps_down_shows_the_end_and_then_leaves(tmp_path: Path) -> None:
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot)
        rows = keep_truth(source)
        controller = await start_and_hold(pilot, gate)
        os.kill(os.getpid(), signal.SIGTERM)
        await until(pilot, lambda: getattr(app, "leave_when_ended", False), "the console to take SIGTERM")
        assert app.is_running and controller.running  # it stays up while the current ramps down
        gate.release()
        await until(pilot, lambda: not app.is_running, "the console to leave after the session")
    assert not controller.running and controller.report is not None
    assert controller.report.result.outcome == "stopped"
    took_s, largest_drop_ma = descent(rows, 2.0)
    assert took_s >= 0.8 * 10 and largest_drop_ma < 0.1
    record = stopped_record(setup, controller)
    assert record["outcome"] == "stopped" and str(record["message"]).startswith("stopped: SIGTERM")


@run_async
async def test_a_console_that_ends_during_a_session_waits_for_its_ramped_stop(tmp_path: Path) -> None:
    """However the console ends (here: Textual told to exit, as when it dies with its terminal), the running
    session is asked for a ramped stop and its record closed before the console is gone."""
    setup, source, gate = console_setup(tmp_path)
    app = ConsoleApp(setup)
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot)
        rows = keep_truth(source)
        controller = await start_and_hold(pilot, gate)
        app.exit()
        await pilot.pause(0.1)
        gate.release()
    assert not controller.running and controller.report is not None
    assert controller.report.result.outcome == "stopped"
    took_s, largest_drop_ma = descent(rows, 2.0)
    assert took_s >= 0.8 * 10 and largest_drop_ma < 0.1
    assert str(stopped_record(setup, controller)["message"]).startswith("stopped: the console closed")


def test_the_console_on_a_real_terminal_that_closes_leaves_cleanly(tmp_path: Path) -> None:
    """`ionctl console` on a pseudo-terminal that is then closed (the kernel's hang-up): Textual's terminal is
    gone, and the console leaves with exit 0 instead of being killed by SIGHUP or hanging on the dead terminal."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-c", ON_TERMINAL, "console", "--db", str(tmp_path / "records.sqlite3")],
        cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    try:
        read_until(master, "Password")
    finally:
        os.close(master)
    try:
        returncode = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert returncode == 0, returncode

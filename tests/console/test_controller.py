"""The console's session controller without any UI: it runs the session as `ionctl run` does and keeps the
record whole whether or not anyone draws the screen."""

from __future__ import annotations

from pathlib import Path

import pytest

from ionctl.config import load_config
from ionctl.console.controller import ContactCheck, Finished, SessionController, StateChanged
from ionctl.drivers.base import ContactReading
from ionctl.records import Store
from sim.plant import LOAD_PRESETS
from tests.session.inprocess import InProcessSource, simulated

CONFIG = load_config(None)
#: 2 mA (below the simulated skin's compliance), 5 mA·min, 10 s ramps.
RX = CONFIG.presets["dexamethasone"].prescription(
    patient_id="P1", operator_id="O1", current_ma=2.0, electrode_area_cm2=10.0, dose_ma_min=5.0,
    ramp_up_s=10.0, ramp_down_s=10.0,
)  # fmt: skip
WAIT_S = 60.0


def controller(tmp_path: Path, source: InProcessSource, **options: object) -> SessionController:
    return SessionController(source, RX, CONFIG.limits, store_path=tmp_path / "records.sqlite3",
                             **options)  # type: ignore[arg-type]  # fmt: skip


def test_every_sample_reaches_the_record_though_nobody_draws_the_screen(tmp_path: Path) -> None:
    source, truth = simulated(LOAD_PRESETS["normal"])
    c = controller(tmp_path, source)
    c.start()
    report = c.wait(WAIT_S)
    assert report is not None and report.result.outcome == "completed"
    assert report.result.dose_ma_min == pytest.approx(truth.dose_ma_min, rel=0.01)
    snap = c.snapshot()
    assert snap.state == "completed" and len(snap.trace_ma) == min(snap.samples, 300)
    with Store(tmp_path / "records.sqlite3") as store:
        assert len(store.telemetry(report.record_id)) == snap.samples  # type: ignore[arg-type]


def test_a_stop_asked_before_the_session_exists_cancels_it_before_any_current(tmp_path: Path) -> None:
    source, _ = simulated(LOAD_PRESETS["normal"])
    c = controller(tmp_path, source)
    c.request("stop")
    c.start()
    report = c.wait(WAIT_S)
    assert report is not None and report.result.outcome == "stopped" and not report.result.energised
    assert "start" not in source.commands and source.device.energised_at_s is None


def test_the_ui_hears_each_state_change_and_the_end_and_a_broken_ui_does_not_stop_the_session(
    tmp_path: Path,
) -> None:
    heard: list[StateChanged | Finished] = []

    def notify(event: StateChanged | Finished) -> None:
        heard.append(event)
        raise RuntimeError("the screen went away")

    source, _ = simulated(LOAD_PRESETS["normal"])
    c = controller(tmp_path, source, notify=notify)
    c.start()
    report = c.wait(WAIT_S)
    assert report is not None and report.result.outcome == "completed"
    states = [e.change.state for e in heard if isinstance(e, StateChanged)]
    assert states == [change.state for change in report.result.timeline]
    assert isinstance(heard[-1], Finished) and heard[-1].report is report


def test_a_contact_reading_is_judged_against_the_site_window() -> None:
    def check(z: float | None) -> ContactCheck:
        return ContactCheck(ContactReading(z, 1.0, 0.1), 500.0, 50_000.0)

    assert check(20_000.0).ok and "within the window" in check(20_000.0).text()
    assert not check(60_000.0).ok and "OUTSIDE" in check(60_000.0).text()
    assert not check(None).ok and "open circuit" in check(None).text()
    assert not ContactCheck(None, 500.0, 50_000.0, "link lost").ok


def test_the_current_trace_keeps_a_fixed_scale_so_a_steady_current_looks_steady() -> None:
    from ionctl.console.screens.run import trace_lines

    steady = trace_lines([2.0, 2.02, 1.98, 2.0], width=4, rows=2, top=4.0)
    assert steady == ["    ", "████"]  # half scale: the bottom row full, the top one empty, noise invisible
    assert trace_lines([0.0, 4.0], width=2, rows=1, top=4.0) == [" █"]
    assert trace_lines([1.0] * 10 + [4.0], width=2, rows=1, top=4.0) == ["▂█"]  # a column shows its highest


def test_a_sourcemeter_whose_output_cannot_be_confirmed_off_raises_the_alarm_in_the_record(tmp_path: Path) -> None:
    """The console closes the device as `ionctl run` does: a SourceMeter (no watchdog) whose link is cut after a
    garbled reply may still be sourcing (the simulator's trace shows it is), so the record and the fault screen
    carry the alarm: remove the electrodes."""
    from ionctl.drivers import open_device
    from tests.drivers.test_scpi_link_faults import SCALE, rows
    from tests.sim.endpoints import running_sim

    trace = tmp_path / "meter.jsonl"
    with running_sim("--scpi-port", "0", "--time-scale", SCALE, "--scpi-fault", "garble-then-unreachable@30",
                     "--scpi-trace", str(trace)) as sim:  # fmt: skip
        source = open_device(f"visa:{sim.endpoints['scpi']}")
        c = SessionController(source, RX, CONFIG.limits, store_path=tmp_path / "records.sqlite3",
                              accept_no_watchdog=True)  # fmt: skip
        c.start()
        report = c.wait(120.0)
    assert report is not None and report.result.outcome == "fault"
    assert report.result.alarm and "remove the electrodes" in report.result.message
    assert "watchdog ramps" not in report.result.message  # a SourceMeter has none: the message must not say so
    assert rows(trace)[-1]["output"]  # the ground truth: still sourcing when the simulator stopped
    with Store(tmp_path / "records.sqlite3") as store:
        record = store.get(report.record_id)  # type: ignore[arg-type]
    assert record.fields["alarm"] and "remove the electrodes" in str(record.fields["message"])

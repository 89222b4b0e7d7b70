"""Findings of the session review: each test makes one defect happen (in-process simulator on the synthetic
clock, ground truth from the simulator's trace) and states the behaviour that was missing."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ionctl.core.session import Session, exit_code
from ionctl.drivers.base import DeviceError, Polarity, Telemetry
from ionctl.safety import Prescription
from sim.device import FaultSpec, SimulatedDevice
from sim.plant import LOAD_PRESETS
from tests.session.inprocess import FLOOR_UA, GroundTruth, InProcessSource
from tests.session.invariants import LIMITS, check_outcome, run_scenario

DEXAMETHASONE = Prescription(
    drug="dexamethasone", polarity=Polarity.CATHODE, electrode_area_cm2=10.0, current_ma=4.0, dose_ma_min=10.0,
    ramp_up_s=10.0, ramp_down_s=10.0, patient_id="P-1", operator_id="O-1",
)  # fmt: skip
#: Below compliance on the normal load: the ramp-down runs from 180 s to 190 s after the output first energised.
BELOW_COMPLIANCE = dataclasses.replace(DEXAMETHASONE, current_ma=2.0, dose_ma_min=6.0)
REPO = Path(__file__).resolve().parents[2]


def simulated_as(cls: type[InProcessSource], faults: tuple[str, ...] = ()) -> tuple[InProcessSource, GroundTruth]:
    """As `tests.session.inprocess.simulated`, with a subclass of the in-process source."""
    truth = GroundTruth()
    device = SimulatedDevice(LOAD_PRESETS["normal"], faults=[FaultSpec.parse(f) for f in faults], seed=0, trace=truth)
    truth.device = device
    return cls(device), truth


# -- midpoint reversal ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dose_ma_min", "ramp_up_s"), [(5.0, 60.0), (8.0, 10.0)])
def test_a_midpoint_reached_while_still_ramping_up_reverses_instead_of_raising(
    dose_ma_min: float, ramp_up_s: float
) -> None:
    """Finding: `reverse` was valid only from `delivering`, but the session fires it from `ramping_up` too. At
    compliance (a tap-water protocol on a skin-like load) the device stays in RAMP_UP while the midpoint dose
    comes due: `RuntimeError: session bug` escaped `run()` with the current flowing."""
    p = dataclasses.replace(
        DEXAMETHASONE, drug="tap-water", protocol_class="tap-water", polarity_reversal_at_midpoint=True,
        dose_ma_min=dose_ma_min, ramp_up_s=ramp_up_s,
    )  # fmt: skip
    run = run_scenario(p, load=LOAD_PRESETS["normal"])
    assert run.result.outcome == "completed"
    assert "reversing" in [change.state for change in run.result.timeline]
    assert run.truth.polarity_changes_with_current == []
    check_outcome(run.session, run.result, run.truth, run.source, run.faults, run.watch)


# -- a link that comes back -----------------------------------------------------------------------------------


@pytest.mark.parametrize("lost_s", [1.2, 2.0, 3.0])
def test_after_a_short_link_loss_the_device_is_brought_to_zero_and_the_dose_settled_there(lost_s: float) -> None:
    """Finding: on reconnecting, the session read one batch of samples and took the dose counter from it. The
    device was still delivering (its watchdog not yet tripped, and fed again by the new link) or still in its
    watchdog ramp: a false "current still flows" alarm, a dose settled 2-5 % short of the trace, and a device
    left at the full current after `run()` returned."""
    run = run_scenario(DEXAMETHASONE, faults=[f"link-drop@60:{lost_s}"])
    r = run.result
    assert (r.outcome, r.fault, r.alarm, r.dose_source) == ("fault", "host_lost", False, "device")
    assert run.truth.current_ua < FLOOR_UA  # before the host goes silent: the session itself brought it down
    assert r.dose_ma_min == pytest.approx(run.truth.dose_ma_min, rel=0.01)
    check_outcome(run.session, r, run.truth, run.source, run.faults, run.watch)


def test_a_link_lost_again_right_after_reconnecting_ends_in_fault_without_raising() -> None:
    """Finding: `_link_lost` read the reconnected device outside any `except`: a `LinkLost` there escaped `run()`."""
    source, truth = simulated_as(InProcessSource, ("link-drop@60:2",))

    def reconnect() -> InProcessSource:
        again = source.reopen()
        again.close()  # lost again at once: every read raises LinkLost
        return again

    r = Session(source, DEXAMETHASONE, LIMITS, reconnect=reconnect).run()
    assert (r.outcome, r.fault, exit_code(r)) == ("fault", "host_lost", 3)
    assert "after reconnecting" in r.message


class StartAnswerLost(InProcessSource):
    """The device executes START, but its answer never gets back: the link is lost."""

    def start(self, target_ma: float, ramp_s: float) -> None:
        super().start(target_ma, ramp_s)
        raise self._lose(f"{self.address}: no answer to START")


def test_a_start_whose_answer_is_lost_counts_as_energised_not_as_no_current() -> None:
    """Finding: `energised` came from the timeline only, so a START the device executed but whose answer was lost
    ended as exit 5 ("device or link error before any current flowed") while current flowed."""
    source, truth = simulated_as(StartAnswerLost)
    r = Session(source, DEXAMETHASONE, LIMITS).run()
    source.advance(1.0)
    assert truth.dose_ma_min > 0  # current did flow
    assert (r.outcome, r.energised, exit_code(r)) == ("fault", True, 3)


# -- a stuck output below the monitor floor ---------------------------------------------------------------------


def test_a_ramp_down_stuck_just_above_zero_is_cut_when_overdue_not_left_to_the_devices_dose_limit() -> None:
    """Finding: a ramp to zero counted as stuck only with the measured current at or above 0.1 mA. Stuck in its
    last 0.3 s (set point ~0.06 mA), the device never reached DONE: the session sat in `ramping_down` for
    about 200 device seconds, until the device tripped its own dose or duration limit."""
    p = BELOW_COMPLIANCE
    run = run_scenario(p, faults=["stuck-output@189.7"])
    assert (run.result.outcome, run.result.fault) == ("fault", "stuck_output")
    assert run.result.duration_s < 190 + 5  # the ramp's nominal end + its margins, not minutes later
    assert run.truth.dose_ma_min <= p.planned_dose_ma_min * 1.01
    assert run.truth.current_ua < FLOOR_UA


# -- stale or missing telemetry ------------------------------------------------------------------------------


class FrozenTelemetry(InProcessSource):
    """From 30 device seconds after energising, every read repeats the last sample (a device whose clock and
    measurements stopped while its link runs on); `silent`: reads bring nothing, and the link is never called
    lost (a source whose telemetry stopped). The device itself runs on and obeys commands."""

    silent = False
    freeze_at_s = 30.0
    max_frozen_reads = 3000  # 300 device seconds: far past any bound the session should keep

    def read_telemetry(self, timeout_s: float) -> list[Telemetry]:
        samples = super().read_telemetry(timeout_s)
        since = self.since_energised_s
        if since is None or since < self.freeze_at_s or not hasattr(self, "frozen"):
            if samples:
                self.frozen = samples[-1]
            return samples
        self.frozen_reads = getattr(self, "frozen_reads", 0) + 1
        if self.frozen_reads > self.max_frozen_reads:
            raise RuntimeError("the session is still reading stale telemetry: it hangs")
        return [] if self.silent else [self.frozen]


class SilentTelemetry(FrozenTelemetry):
    silent = True


@pytest.mark.parametrize("cls", [FrozenTelemetry, SilentTelemetry], ids=["stale-samples", "no-samples"])
def test_telemetry_that_stops_advancing_ends_the_session_with_the_alarm_instead_of_hanging(
    cls: type[FrozenTelemetry],
) -> None:
    """Finding: every end of a ramp was judged on the device's clock only. Samples that keep coming with one
    device time (or none at all, from a source that does not call the link lost) left `_deliver` and
    `_settle` reading for ever, with the current flowing."""
    source, truth = simulated_as(cls)
    r = Session(source, DEXAMETHASONE, LIMITS).run()
    assert (r.outcome, r.fault, exit_code(r)) == ("fault", "stale_telemetry", 3)
    assert r.alarm and "cannot be confirmed" in r.message  # the host cannot see the current: remove the electrodes
    assert truth.current_ua < FLOOR_UA  # the abort, then output-off, did bring it down
    assert source.frozen_reads < 200  # ~15 host seconds, not for ever


class GarbledAfterFault(InProcessSource):
    """From 30 device seconds after energising, every read fails with a non-link `DeviceError` (garbled
    replies)."""

    def read_telemetry(self, timeout_s: float) -> list[Telemetry]:
        since = self.since_energised_s
        if since is not None and since >= 30.0:
            raise DeviceError(f"{self.address}: unexpected reply to a telemetry read")
        return super().read_telemetry(timeout_s)


def test_a_device_error_while_settling_after_a_fault_ends_in_fault_without_raising() -> None:
    """Finding: `_device_error` watched the current down with `_settle` catching only `LinkLost`: a second
    `DeviceError` there escaped `run()`."""
    source, truth = simulated_as(GarbledAfterFault)
    r = Session(source, DEXAMETHASONE, LIMITS).run()
    assert (r.outcome, exit_code(r)) == ("fault", 3)
    assert "could not be watched down to zero" in r.message
    source.advance(LIMITS.min_ramp_s + 1.0)
    assert truth.current_ua < FLOOR_UA  # the abort sent before the watching failed brings it down


# -- operator requests from a signal handler ------------------------------------------------------------------


def test_a_sigint_arriving_while_the_session_holds_its_request_lock_does_not_deadlock() -> None:
    """Finding: `request()` took a plain `threading.Lock`; `ionctl run`'s SIGINT handler calls it on the main
    thread, which may be inside `_serve_requests` or `_prepare` holding that lock: a deadlock, for ever, with
    the current flowing (the driver's heartbeat thread runs on)."""
    code = textwrap.dedent(
        """
        import signal, sys
        from unittest import mock
        from ionctl.drivers.base import Polarity
        from ionctl.cli.signals import operator_signals
        from ionctl.safety import Prescription, SiteLimits
        from ionctl.core.session import Session

        p = Prescription(drug="dexamethasone", polarity=Polarity.CATHODE, electrode_area_cm2=10.0, current_ma=4.0,
                         dose_ma_min=10.0, patient_id="P-1", operator_id="O-1")
        session = Session(mock.Mock(), p, SiteLimits.load(None))
        with operator_signals(session, sys.stderr):
            with session._requests_lock:  # as in _serve_requests, when Ctrl-C is pressed
                signal.raise_signal(signal.SIGINT)
                held = True
        print(session._requests)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['stop']"


def test_an_electrode_lifted_during_the_ramp_down_is_a_fault_not_a_short_completion() -> None:
    # Found by the stateful test: the lifted electrode lets the device's set point fall with the current
    # (anti-windup), the ramp "ends" early in DONE, and the session used to call 4.84 of 5.14 mA·min complete.
    p = Prescription(drug="lidocaine", polarity=Polarity.ANODE, electrode_area_cm2=7.6, current_ma=3.78,
                     dose_ma_min=5.14, ramp_up_s=47.0, ramp_down_s=46.0, patient_id="P", operator_id="O")  # fmt: skip
    run = run_scenario(p, faults=["electrode-lift@119.7", "impedance-step=20000@69.0:4"], seed=1000)
    assert (run.result.outcome, run.result.fault, exit_code(run.result)) == ("fault", "dose_short", 3)
    assert run.result.dose_ma_min == pytest.approx(run.truth.dose_ma_min, rel=0.01)

"""The session's supervision of the device itself: a device that stops delivering on its own, or reports another
polarity than prescribed, ends the session in a named fault with the current at zero and the dose settled where it
stopped; a reconnect that reaches another device never commands it. Judged on the in-process simulator's ground
truth (`tests/session/inprocess.py`)."""

from __future__ import annotations

import dataclasses

import pytest

from ionctl.core.session import Session
from ionctl.drivers.base import Polarity
from ionctl.safety import Prescription
from sim.device import FaultSpec
from sim.firmware import DeviceSpec
from sim.plant import LOAD_PRESETS
from tests.session.inprocess import FLOOR_UA, InProcessSource, simulated
from tests.session.invariants import LIMITS, check_outcome, run_scenario

DEXAMETHASONE = Prescription(
    drug="dexamethasone", polarity=Polarity.CATHODE, electrode_area_cm2=10.0, current_ma=4.0, dose_ma_min=10.0,
    ramp_up_s=10.0, ramp_down_s=10.0, patient_id="P-1", operator_id="O-1",
)  # fmt: skip

#: Device seconds after which the operator stops a session that has not ended (without it, a session waiting at
#: 0 mA for a device that stopped would never end).
PATIENCE = [(600.0, "stop")]


@pytest.mark.parametrize("at_s", [5.0, 60.0])  # during the ramp up, and while delivering
def test_a_device_that_stops_on_its_own_ends_in_device_stopped_with_the_dose_settled_there(at_s: float) -> None:
    run = run_scenario(DEXAMETHASONE, faults=[f"device-stop@{at_s:g}"], actions=PATIENCE)
    r = run.result
    assert (r.outcome, r.fault, r.alarm) == ("fault", "device_stopped", False)
    assert "stopped delivering on its own" in r.message and "settled where the device stopped" in r.message
    assert run.truth.current_ua < FLOOR_UA
    assert run.truth.dose_ma_min < DEXAMETHASONE.planned_dose_ma_min * 0.8  # it really stopped early
    assert r.dose_ma_min == pytest.approx(run.truth.dose_ma_min, rel=0.01)
    assert r.device_dose_ma_min == pytest.approx(run.truth.dose_ma_min, rel=0.01)
    assert r.timeline[-1].state == "fault" and "stopped by the operator" not in r.message
    check_outcome(run.session, run.result, run.truth, run.source, run.faults, run.watch)


def test_a_device_that_stops_while_paused_ends_in_device_stopped() -> None:
    actions = [(30.0, "pause"), (60.0, "resume"), *PATIENCE]
    run = run_scenario(DEXAMETHASONE, faults=["device-stop@40"], actions=actions)
    assert (run.result.outcome, run.result.fault) == ("fault", "device_stopped")
    assert "paused" in run.result.message
    check_outcome(run.session, run.result, run.truth, run.source, run.faults, run.watch)


#: 2 mA into the normal load stays below compliance, so the session's course is the prescription's to the second.
BELOW_COMPLIANCE = dataclasses.replace(DEXAMETHASONE, current_ma=2.0, dose_ma_min=6.0)
RAMP_DOWN_AT_S = BELOW_COMPLIANCE.planned_duration_s - BELOW_COMPLIANCE.ramp_down_s


def test_a_device_stop_late_in_the_host_ramp_down_completes_with_the_dose_within_1_percent() -> None:
    run = run_scenario(BELOW_COMPLIANCE, faults=[f"device-stop@{RAMP_DOWN_AT_S + 9.0:g}"])  # its last second
    assert (run.result.outcome, run.result.fault) == ("completed", None)
    assert run.truth.dose_ma_min == pytest.approx(BELOW_COMPLIANCE.planned_dose_ma_min, rel=0.01)


def test_a_device_stop_early_in_the_host_ramp_down_is_a_short_dose_not_a_completion() -> None:
    run = run_scenario(BELOW_COMPLIANCE, faults=[f"device-stop@{RAMP_DOWN_AT_S + 1.0:g}"], actions=PATIENCE)
    assert (run.result.outcome, run.result.fault) == ("fault", "dose_short")
    assert run.truth.dose_ma_min < BELOW_COMPLIANCE.planned_dose_ma_min * 0.99


def test_a_polarity_the_device_reports_other_than_prescribed_ramps_to_zero_as_polarity_mismatch() -> None:
    run = run_scenario(DEXAMETHASONE, faults=["polarity-flip@30"], keep_trace=True)
    r = run.result
    assert (r.outcome, r.fault) == ("fault", "polarity_mismatch")
    assert "anode" in r.message and "cathode" in r.message
    assert run.truth.current_ua < FLOOR_UA
    rows = run.truth.keep or []
    energised = run.source.device.energised_at_s or 0.0
    after = [float(row["current_ua"]) for row in rows if float(row["t_s"]) >= energised + 30.0]  # type: ignore[arg-type]
    # ramped (at the maximum slew: 4 mA over min_ramp_s), not stepped, and zero well within that ramp + 1 s
    steps = [abs(b - a) for a, b in zip(after, after[1:], strict=False)]
    assert max(steps) < 100
    zero_at = next(i for i, current in enumerate(after) if current < FLOOR_UA)
    assert zero_at * 0.01 <= LIMITS.min_ramp_s + 1.0
    check_outcome(run.session, run.result, run.truth, run.source, run.faults, run.watch)


def test_a_polarity_reversal_at_the_midpoint_is_not_a_polarity_mismatch() -> None:
    tap_water = dataclasses.replace(DEXAMETHASONE, drug="tap-water", protocol_class="tap-water",
                                    polarity_reversal_at_midpoint=True)  # fmt: skip
    run = run_scenario(tap_water)
    assert (run.result.outcome, run.result.fault) == ("completed", None)


# -- reconnecting to another device ----------------------------------------------------------------------


def test_a_reconnect_that_reaches_another_device_never_commands_it_and_raises_the_alarm() -> None:
    source, truth = simulated(LOAD_PRESETS["normal"], faults=[FaultSpec.parse("link-drop@60:5")])
    other_source, other_truth = simulated(LOAD_PRESETS["normal"], spec=DeviceSpec(serial="SIM-000002"))
    reached: list[InProcessSource] = []

    def reconnect() -> InProcessSource:
        other = InProcessSource(other_source.device, address=source.address, harness=other_source.harness)
        reached.append(other)
        return other

    session = Session(source, DEXAMETHASONE, LIMITS, reconnect=reconnect)
    r = session.run()
    assert reached, "the session did not reconnect"
    assert (r.outcome, r.fault, r.alarm) == ("fault", "wrong_device", True)
    assert "SIM-000002" in r.message and "SIM-000001" in r.message
    assert reached[0].commands == ["identify", "set_telemetry"]  # identified, never commanded
    assert other_truth.dose_ma_min == 0.0 and other_source.device.energised_at_s is None
    assert (r.dose_source, r.device_dose_ma_min) == ("host", None)
    assert 0 < r.dose_ma_min <= truth.dose_ma_min  # the first device's, counted by the host to the loss
    assert r.device is not None and r.device["serial"] == "SIM-000001"

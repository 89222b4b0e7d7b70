"""The session, one behaviour at a time, against the in-process simulator (`InProcessSource`) and its
ground-truth trace. Each test states the behaviour it proves in its name."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from transitions import MachineError

from firmware_protocol import Capability
from ionctl.core.dose import DoseMeter
from ionctl.core.monitors import FLOOR_MA, Monitors
from ionctl.core.session import STATES, TRANSITIONS, Session, SessionResult, mermaid
from ionctl.drivers.base import CommandRefused, DeviceFault, FaultCode, OutputState, Polarity, Telemetry
from ionctl.safety import Prescription
from sim.device import FaultSpec
from sim.firmware import DeviceSpec
from sim.plant import LOAD_PRESETS, LoadParams
from tests.session.inprocess import FLOOR_UA, InProcessSource, simulated
from tests.session.invariants import LIMITS, Run, check_outcome, run_scenario

DEXAMETHASONE = Prescription(
    drug="dexamethasone", polarity=Polarity.CATHODE, electrode_area_cm2=10.0, current_ma=4.0, dose_ma_min=10.0,
    ramp_up_s=10.0, ramp_down_s=10.0, patient_id="P-1", operator_id="O-1",
)  # fmt: skip
TAP_WATER_REVERSAL = dataclasses.replace(
    DEXAMETHASONE, drug="tap-water", protocol_class="tap-water", polarity_reversal_at_midpoint=True
)


def samples_of(
    run_options: dict[str, object], prescription: Prescription = DEXAMETHASONE
) -> tuple[Run, list[Telemetry]]:
    """Run a scenario; also return every sample the session saw."""
    run = run_scenario(prescription, **run_options)  # type: ignore[arg-type]
    return run, run.watch.seen


def run_on(source: InProcessSource, prescription: Prescription, **options: Any) -> SessionResult:
    return Session(source, prescription, LIMITS, **options).run()


def states(run: Run) -> list[str]:
    return [change.state for change in run.result.timeline]


def largest_true_step_ua(run: Run) -> float:
    """The largest change of the true current between two 10 ms steps of the plant, once energised (the
    contact probe before it is a 100 µA step by design)."""
    rows, energised = run.truth.keep, run.source.device.energised_at_s
    assert rows is not None and energised is not None
    currents = [float(row["current_ua"]) for row in rows if float(row["t_s"]) >= energised]  # type: ignore[arg-type]
    return max(abs(b - a) for a, b in zip(currents, currents[1:], strict=False))


#: 2 mA into the normal load stays below compliance (60 V / 20.3 kΩ ≈ 3 mA), so the true current is the set point.
BELOW_COMPLIANCE = dataclasses.replace(DEXAMETHASONE, current_ma=2.0, dose_ma_min=6.0)


# -- completing -------------------------------------------------------------------------------------------


def test_a_completed_session_delivers_the_prescribed_dose_within_1_percent_of_the_trace() -> None:
    run = run_scenario(dataclasses.replace(DEXAMETHASONE, dose_ma_min=40.0, ramp_up_s=30.0, ramp_down_s=30.0))
    assert run.result.outcome == "completed"
    assert run.truth.dose_ma_min == pytest.approx(40.0, rel=0.01)
    assert run.result.dose_ma_min == pytest.approx(run.truth.dose_ma_min, rel=0.01)
    check_outcome(run.session, run.result, run.truth, run.source, run.faults, run.watch)


def test_a_completed_session_ends_with_the_output_off_at_zero() -> None:
    run = run_scenario(DEXAMETHASONE)
    assert run.result.outcome == "completed"
    assert run.session.last is not None and run.session.last.state is OutputState.DONE
    assert not run.session.last.output_on
    assert run.truth.current_ua < FLOOR_UA


# -- operator actions ---------------------------------------------------------------------------------------


def test_pause_ramps_to_zero_holds_and_resume_ramps_back_with_the_dose_continuing() -> None:
    run, seen = samples_of({"actions": [(60.0, "pause"), (120.0, "resume")]})
    assert run.result.outcome == "completed"
    assert states(run).count("paused") == 1 and states(run).count("ramping_up") == 2
    paused = [s for s in seen if 85.0 <= s.t_s - run.source.device.energised_at_s <= 115.0]  # type: ignore[operator]
    assert paused and all(s.output_on and s.set_ma == 0 and s.measured_ma < FLOOR_MA for s in paused)
    assert run.truth.dose_ma_min == pytest.approx(DEXAMETHASONE.planned_dose_ma_min, rel=0.01)


def test_pause_and_resume_never_step_the_current() -> None:
    p = BELOW_COMPLIANCE
    run = run_scenario(p, actions=[(60.0, "pause"), (120.0, "resume")], keep_trace=True)
    assert states(run).count("paused") == 1
    steepest_ua_per_step = p.current_ma * 1000 / min(p.ramp_up_s, p.ramp_down_s) * 0.010
    assert largest_true_step_ua(run) <= steepest_ua_per_step * 1.01


def test_an_operator_stop_ramps_down_to_stopped_with_the_output_at_zero() -> None:
    p = BELOW_COMPLIANCE
    run = run_scenario(p, actions=[(60.0, "stop")], keep_trace=True)
    assert run.result.outcome == "stopped"
    assert states(run)[-2:] == ["ramping_down", "stopped"]
    assert run.truth.current_ua < FLOOR_UA and run.watch.seen and not run.watch.seen[-1].output_on
    assert largest_true_step_ua(run) <= p.current_ma * 1000 / min(p.ramp_up_s, p.ramp_down_s) * 0.010 * 1.01


def test_an_operator_abort_ends_aborted_with_the_output_at_zero() -> None:
    run = run_scenario(DEXAMETHASONE, actions=[(60.0, "abort")])
    assert run.result.outcome == "aborted"
    assert run.truth.current_ua < FLOOR_UA
    assert run.session.last is not None and run.session.last.measured_ma < FLOOR_MA


def test_an_abort_reaches_zero_faster_than_a_stop() -> None:
    stop = run_scenario(dataclasses.replace(DEXAMETHASONE, ramp_down_s=60.0), actions=[(60.0, "stop")])
    abort = run_scenario(dataclasses.replace(DEXAMETHASONE, ramp_down_s=60.0), actions=[(60.0, "abort")])
    assert abort.result.duration_s < stop.result.duration_s - 30.0


def test_an_operator_stop_settles_the_dose_within_1_percent_of_the_trace() -> None:
    run = run_scenario(DEXAMETHASONE, actions=[(45.0, "stop")])
    assert run.result.dose_ma_min == pytest.approx(run.truth.dose_ma_min, rel=0.01)


# -- polarity reversal --------------------------------------------------------------------------------------


def test_midpoint_reversal_changes_polarity_only_at_zero_current() -> None:
    run, seen = samples_of({}, TAP_WATER_REVERSAL)
    changes = [(a, b) for a, b in zip(seen, seen[1:], strict=False) if a.polarity != b.polarity]
    assert len(changes) == 1
    before, after = changes[0]
    assert before.polarity is Polarity.CATHODE and after.polarity is Polarity.ANODE
    assert before.measured_ma < FLOOR_MA and after.measured_ma < FLOOR_MA
    assert run.truth.polarity_changes_with_current == []


def test_midpoint_reversal_ramps_down_and_up_again_and_completes_the_dose() -> None:
    run = run_scenario(TAP_WATER_REVERSAL)
    assert run.result.outcome == "completed"
    assert states(run).count("reversing") == 1 and states(run).count("ramping_up") == 2
    assert run.truth.dose_ma_min == pytest.approx(TAP_WATER_REVERSAL.planned_dose_ma_min, rel=0.01)
    assert run.result.dose_ma_min == pytest.approx(run.truth.dose_ma_min, rel=0.01)


# -- refusals ------------------------------------------------------------------------------------------------

NO_WATCHDOG = DeviceSpec(
    model="SOURCEMETER-LIKE",
    capabilities=int(Capability.NATIVE_RAMP | Capability.COULOMB_COUNTER | Capability.CONTACT_CHECK),
)


def test_a_source_without_a_watchdog_is_refused_before_any_current() -> None:
    source, truth = simulated(LOAD_PRESETS["normal"], spec=NO_WATCHDOG)
    result = run_on(source, DEXAMETHASONE)
    assert result.outcome == "refused" and "watchdog" in result.message
    assert "start" not in source.commands and truth.dose_ma_min == 0


def test_a_source_without_a_watchdog_runs_when_accepted_for_bench_use() -> None:
    source, truth = simulated(LOAD_PRESETS["normal"], spec=NO_WATCHDOG)
    result = run_on(source, DEXAMETHASONE, accept_no_watchdog=True)
    assert result.outcome == "completed"
    assert truth.dose_ma_min == pytest.approx(DEXAMETHASONE.planned_dose_ma_min, rel=0.01)


def test_a_contact_impedance_above_the_window_is_refused_before_any_current() -> None:
    dry = LoadParams(rs_ohm=500.0, rp_rest_ohm=200_000.0, rp_min_ohm=100_000.0)
    source, truth = simulated(dry)
    result = run_on(source, DEXAMETHASONE)
    assert result.outcome == "refused" and "contact check failed" in result.message
    assert result.impedance_start_ohm is not None and result.impedance_start_ohm > LIMITS.max_contact_impedance_ohm
    assert "start" not in source.commands and not result.energised


def test_a_prescription_above_the_density_limit_is_refused_before_any_current() -> None:
    source, truth = simulated(LOAD_PRESETS["normal"])
    result = run_on(source, dataclasses.replace(DEXAMETHASONE, electrode_area_cm2=4.0))
    assert result.outcome == "refused" and "max_density_ma_cm2" in result.message
    assert "start" not in source.commands


# -- the machine ----------------------------------------------------------------------------------------------


def test_an_invalid_trigger_raises_and_leaves_the_state_unchanged() -> None:
    source, _ = simulated(LOAD_PRESETS["normal"])
    session = Session(source, DEXAMETHASONE, LIMITS)
    with pytest.raises(MachineError):
        session.trigger("finish")  # type: ignore[attr-defined]
    assert session.state == "disconnected"


def test_the_mermaid_diagram_names_every_state_and_every_trigger() -> None:
    diagram = mermaid()
    for state in STATES:
        assert state in diagram, state
    for transition in TRANSITIONS:
        assert transition["trigger"] in diagram, transition["trigger"]


# -- the adapter itself -------------------------------------------------------------------------------------


def test_the_in_process_source_raises_command_refused_for_a_command_in_the_wrong_state() -> None:
    source, _ = simulated(LOAD_PRESETS["normal"])
    with pytest.raises(CommandRefused) as refused:
        source.start(1.0, 5.0)  # not armed
    assert refused.value.result == "bad_state"


def test_the_in_process_source_raises_device_fault_for_a_command_refused_in_fault() -> None:
    source, _ = simulated(LOAD_PRESETS["normal"], faults=[FaultSpec.parse("reboot@0")])
    run_on(source, DEXAMETHASONE)
    with pytest.raises(DeviceFault) as fault:
        source.arm()
    assert fault.value.fault is FaultCode.BROWNOUT


def test_the_in_process_source_runs_a_20_minute_session_in_synthetic_time() -> None:
    p = dataclasses.replace(DEXAMETHASONE, current_ma=2.0, dose_ma_min=40.0, ramp_up_s=30.0, ramp_down_s=30.0)
    run = run_scenario(p)
    assert run.result.outcome == "completed"
    assert run.result.duration_s == pytest.approx(p.planned_duration_s, abs=2.0)  # 20.5 device minutes


# -- faults, and the findings of the stateful test -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("electrode-lift@60", "open_circuit"),
        ("short=50@60", "low_impedance"),
        ("reboot@60", "brownout"),
        ("sensor-drift=40@60", "overcurrent"),
        ("sensor-drift=-40@60", "current_mismatch"),
    ],
)
def test_a_fault_ends_the_session_in_fault_with_the_output_at_zero_and_the_dose_settled(fault: str, code: str) -> None:
    run = run_scenario(DEXAMETHASONE, faults=[fault])
    assert (run.result.outcome, run.result.fault) == ("fault", code)
    check_outcome(run.session, run.result, run.truth, run.source, run.faults, run.watch)


def test_a_welded_output_raises_the_alarm() -> None:
    run = run_scenario(DEXAMETHASONE, faults=["stuck-output=welded@60"])
    assert run.result.alarm and run.result.outcome == "fault"
    assert run.truth.current_ua >= FLOOR_UA  # the alarm is true: current still flows


def test_a_stuck_output_during_the_ramp_down_is_cut_before_the_dose_passes_1_percent() -> None:
    """Finding: the host calls the output stuck only at the ramp-down's nominal end + 2 s, and meanwhile the full
    current flows: the dose overshoots by I·(ramp_down/2 + 2 s) (5 % here), though the telemetry shows the set
    point frozen (state RAMP_DOWN, not ramping) from the first sample after STOP."""
    p = dataclasses.replace(DEXAMETHASONE, ramp_down_s=60.0)
    clean = run_scenario(p, load=EASY_LOAD)  # where the ramp-down begins, on a load without compliance
    down_at = _since_energised(clean, "ramping_down")
    run = run_scenario(p, faults=[f"stuck-output@{down_at + 5:.1f}"], load=EASY_LOAD)
    states = [c.state for c in run.result.timeline]
    assert states[-2:] == ["ramping_down", "fault"]  # it really was stuck on the way down
    assert run.result.fault in ("stuck_output", "dose_limit")
    assert run.truth.current_ua < FLOOR_UA  # cut in the end (output-off works: the relay is not welded)
    assert run.truth.dose_ma_min <= p.planned_dose_ma_min * 1.01
    ramp_down_dose = p.current_ma * p.ramp_down_s / 2 / 60
    assert run.truth.dose_ma_min > p.planned_dose_ma_min - ramp_down_dose  # all but the ramp-down had flowed


@pytest.mark.parametrize(
    ("fault", "pause_at_s"),
    [("stuck-output@30", 60.0), ("stuck-output@0:1", 0.5)],
    ids=["stuck-before-the-pause", "stuck-for-1-s-as-the-pause-arrives"],
)
def test_a_pause_that_does_not_bring_the_current_down_is_cut_before_the_dose_passes_1_percent(
    fault: str, pause_at_s: float
) -> None:
    """Finding: a pause whose ramp to zero does not happen is never checked (no stuck deadline, no dose check in
    `paused`): the full current flows on, the host believing it paused, until the device's own dose limit (+2 %,
    or the 0.2 mA·min floor) and the settle escalation. The second case: the device ignores the pause for 1 s
    only, then ramps back up to the prescription, for good."""
    run = run_scenario(DEXAMETHASONE, faults=[fault], actions=[(pause_at_s, "pause")])
    assert run.truth.current_ua < FLOOR_UA
    assert run.truth.dose_ma_min <= DEXAMETHASONE.planned_dose_ma_min * 1.01


def test_an_overcurrent_held_for_one_telemetry_period_faults_at_the_second_sample_whatever_the_device_time() -> None:
    """Finding: `Monitors._held` compares float differences of device times exactly (`t - start >= hold`), so
    whether a one-period hold ends at the second or the third sample depends on the absolute time: 0.3 - 0.2 is
    0.09999999999999998 < 0.1. Here: over-current samples at t = 0.2 s and 0.3 s."""
    monitors, meter = Monitors(LIMITS, 4.0, 0.1), DoseMeter()
    over = monitors.overcurrent_ma + 0.2

    def sample(t_s: float) -> Telemetry:
        return Telemetry(t_s, OutputState.RUNNING, FaultCode.NONE, Polarity.CATHODE, 4.0, over, 30.0, 7000.0, None,
                         False, True, False)  # fmt: skip

    assert monitors.check(sample(0.2), meter) is None
    verdict = monitors.check(sample(0.3), meter)
    assert verdict is not None and verdict.fault == "overcurrent"


# A load whose 4 mA needs about 21 V, so the ramp up is not held at compliance (where the set point waits).
EASY_LOAD = dataclasses.replace(LOAD_PRESETS["normal"], rp_rest_ohm=5000.0,
                                rp_min_ohm=min(LOAD_PRESETS["normal"].rp_min_ohm, 5000.0))  # fmt: skip


def _since_energised(run: Run, state: str) -> float:
    """Device seconds from the first sample with the output on (the origin of fault times) to `state`."""
    first = next(s.t_s for s in run.watch.seen if s.output_on)
    then = next(c.device_t_s for c in run.result.timeline if c.state == state)
    assert then is not None
    return then - first


def test_a_ramp_up_that_stops_rising_is_a_fault_within_the_stall_window() -> None:
    """Found by the fault matrix: with the set point frozen half-way up, the session used to deliver the whole
    dose at half the current (twice as long) and find the fault only when the ramp-down did not come."""
    run = run_scenario(DEXAMETHASONE, faults=["stuck-output@5"], load=EASY_LOAD)  # half-way up a 10 s ramp
    assert (run.result.outcome, run.result.fault) == ("fault", "ramp_stalled")
    assert _since_energised(run, "fault") < 5 + 3.0 + 0.5
    assert run.truth.current_ua < FLOOR_UA  # its ramp down was stuck too: cut
    assert run.truth.dose_ma_min < DEXAMETHASONE.planned_dose_ma_min / 4


def test_a_resume_the_device_ignores_ends_the_session_instead_of_waiting_at_zero() -> None:
    """Found by the fault matrix: stuck at zero while paused, the device ignored the resume and the session sat
    in ramping_up at 0 mA until the device's duration cap (minutes)."""
    run = run_scenario(DEXAMETHASONE, faults=["stuck-output@60"], actions=[(40.0, "pause"), (70.0, "resume")],
                       load=EASY_LOAD)  # fmt: skip
    assert (run.result.outcome, run.result.fault) == ("fault", "ramp_stalled")
    assert _since_energised(run, "fault") < 70 + 3.0 + 1.0
    assert run.truth.current_ua < FLOOR_UA


def test_a_ramp_up_held_at_compliance_is_not_called_stalled() -> None:
    """The normal load starts 4 mA at compliance, where the firmware holds its set point for ~100 s."""
    run = run_scenario(DEXAMETHASONE)
    assert run.result.outcome == "completed" and run.result.time_at_compliance_s > 30


@pytest.mark.parametrize("jump_ma_min", [1.0, -1.0])
def test_a_device_dose_counter_that_jumps_is_a_dose_mismatch_and_the_current_ramps_down(jump_ma_min: float) -> None:
    """The host cross-checks the device's coulomb counter against its own integral of the measured current: a
    counter that jumps (a firmware fault, a flipped bit) ends the session, ramped, within a sample."""
    source, truth = simulated(EASY_LOAD)
    firmware = source.device.firmware

    def corrupt_counter() -> None:
        firmware.dose_uas += jump_ma_min * 60_000  # the device's own count, off by 1 mA·min from now on

    source.at(30.0, corrupt_counter)
    result = Session(source, DEXAMETHASONE, LIMITS).run()
    assert (result.outcome, result.fault) == ("fault", "dose_mismatch")
    assert "differ by more than" in result.message
    assert truth.current_ua < FLOOR_UA
    assert truth.dose_ma_min < DEXAMETHASONE.planned_dose_ma_min / 2  # stopped near 30 s, not at the end

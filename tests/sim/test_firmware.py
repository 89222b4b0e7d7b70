"""The firmware model against PROTOCOL.md, one behaviour per test, through the wire (frames in, frames out)."""

from __future__ import annotations

import pytest

from firmware_protocol import (
    Ack,
    Arm,
    CheckContact,
    ClearFault,
    Configure,
    Contact,
    Fault,
    HeaderFlags,
    Heartbeat,
    Identify,
    Identity,
    OutputOff,
    Packet,
    Polarity,
    Reset,
    Result,
    SetPolarity,
    SetTarget,
    SetTelemetry,
    Start,
    State,
    Stop,
    TelemetryFlags,
    decode_frame,
    encode,
)
from sim.device import MAX_CATCH_UP_S, FaultSpec, FaultSpecError
from sim.firmware import DeviceSpec
from tests.sim.conftest import LIMITS, MakeHarness, arm, ok


def result_of(response: object) -> Result:
    assert isinstance(response, Ack), response
    return response.result


def run_to(h, state: State, max_wall_s: float = 120.0) -> None:
    waited = 0.0
    while h.last.state is not state:
        assert waited < max_wall_s, f"still {h.last.state.name} ({h.last.fault.name}) after {max_wall_s} s"
        h.wait(0.1)
        waited += 0.1


# --- identity, versions, retransmission ---------------------------------------------------------------


def test_identify_reports_the_device_and_its_hardware_limits(make: MakeHarness) -> None:
    identity = make().request(Identify())
    assert isinstance(identity, Identity)
    assert identity == DeviceSpec().identity()
    assert identity.hw_max_current_ua == 30_000 and identity.capabilities == 0x1F


def test_identify_is_answered_whatever_version_it_carries(make: MakeHarness) -> None:
    h = make()
    h.device.receive(encode(Identify(), seq=9, ver=5), h.wall_s)
    packet = decode_frame(h.device.take_output().split(b"\0")[0])
    assert isinstance(packet.message, Identity) and packet.ack == 9


def test_a_command_in_a_foreign_major_version_is_refused_unexecuted(make: MakeHarness) -> None:
    h = make()
    h.device.receive(encode(SetPolarity(Polarity.ANODE), seq=3, ver=2), h.wall_s)
    packet = decode_frame(h.device.take_output().split(b"\0")[0])
    assert packet.message.result is Result.UNSUPPORTED_VERSION and packet.ack == 3
    assert h.device.firmware.polarity is Polarity.NONE


def test_an_unknown_msg_id_is_answered_unknown_message(make: MakeHarness) -> None:
    import struct
    import zlib

    from cobs import cobs

    h = make()
    body = struct.pack("<BBBBB", 1, HeaderFlags.ACK_REQ, 4, 0, 0x70)
    h.device.receive(cobs.encode(body + zlib.crc32(body).to_bytes(4, "little")) + b"\0", h.wall_s)
    packet = decode_frame(h.device.take_output().split(b"\0")[0])
    assert packet.message == Ack(0x70, Result.UNKNOWN_MESSAGE, State.IDLE, Fault.NONE)


def test_a_retransmitted_request_is_answered_from_the_cache_not_executed_again(make: MakeHarness) -> None:
    h = make()
    arm(h)
    seq = h.send(Start(1000, 1000))
    h.wait(2.0)  # RUNNING now: executing START again would be refused BAD_STATE
    first = [p for p in h.responses if p.ack == seq]
    h.responses.clear()
    h.send(Start(1000, 1000), flags=HeaderFlags.ACK_REQ | HeaderFlags.RETX, seq=seq)
    (replay,) = [p for p in h.responses if p.ack == seq]
    assert replay.message == first[0].message and result_of(replay.message) is Result.OK
    assert replay.seq == first[0].seq and replay.is_retransmit
    assert h.device.firmware.state is State.RUNNING


def test_a_retransmission_with_a_new_seq_is_executed(make: MakeHarness) -> None:
    h = make()
    seq = h.send(SetPolarity(Polarity.ANODE), flags=HeaderFlags.ACK_REQ | HeaderFlags.RETX)
    (response,) = [p for p in h.responses if p.ack == seq]
    assert result_of(response.message) is Result.OK and not response.is_retransmit
    assert h.device.firmware.polarity is Polarity.ANODE


def test_damaged_frames_are_dropped_without_answer(make: MakeHarness) -> None:
    h = make()
    frame = bytearray(encode(SetPolarity(Polarity.ANODE), seq=1))
    frame[3] ^= 0x04
    h.device.receive(bytes(frame), h.wall_s)
    assert h.device.take_output() == b""
    assert h.device.firmware.polarity is Polarity.NONE


# --- configuration and legality -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"max_current_ua": 30_001}, Result.LIMIT_EXCEEDED),
        ({"max_voltage_mv": 60_001}, Result.LIMIT_EXCEEDED),
        ({"max_current_ua": 0}, Result.BAD_ARGUMENT),
        ({"watchdog_ms": 50}, Result.BAD_ARGUMENT),
        ({"min_impedance_ohm": 5000, "max_impedance_ohm": 5000}, Result.BAD_ARGUMENT),
        ({"max_slew_ua_per_s": 0}, Result.BAD_ARGUMENT),
    ],
)
def test_configure_refuses_limits_outside_the_hardware_or_their_ranges(make: MakeHarness, change, expected) -> None:
    h = make()
    assert result_of(h.request(Configure(**{**LIMITS, **change}))) is expected
    assert h.device.firmware.limits is None


def test_arm_needs_limits_and_a_polarity(make: MakeHarness) -> None:
    h = make()
    assert result_of(h.request(Arm())) is Result.NOT_CONFIGURED
    ok(h.request(Configure(**LIMITS)))
    assert result_of(h.request(Arm())) is Result.NOT_CONFIGURED
    ok(h.request(SetPolarity(Polarity.CATHODE)))
    ok(h.request(Arm()))
    assert h.last.state is State.ARMED


def test_commands_outside_their_states_are_refused(make: MakeHarness) -> None:
    h = make()
    assert result_of(h.request(Start(1000, 0))) is Result.BAD_STATE
    arm(h)
    assert result_of(h.request(Configure(**LIMITS))) is Result.BAD_STATE
    ok(h.request(Start(1000, 1000)))
    assert result_of(h.request(SetPolarity(Polarity.ANODE))) is Result.BAD_STATE
    assert h.device.firmware.polarity is Polarity.CATHODE


def test_start_above_the_configured_maximum_is_refused(make: MakeHarness) -> None:
    h = make()
    arm(h, max_current_ua=2000)
    assert result_of(h.request(Start(2001, 0))) is Result.LIMIT_EXCEEDED
    assert h.last.state is State.ARMED


# --- ramps, stop, telemetry ---------------------------------------------------------------------------


def test_start_ramps_at_the_requested_rate_then_runs(make: MakeHarness) -> None:
    h = make()
    arm(h)
    ok(h.request(Start(2000, 10_000)))  # 200 µA/s
    h.wait(5.0)
    assert h.last.state is State.RAMP_UP
    assert h.last.set_ua == pytest.approx(1000, abs=30)
    h.wait(5.5)
    assert h.last.state is State.RUNNING and h.last.set_ua == 2000


def test_a_ramp_faster_than_max_slew_is_carried_out_at_max_slew(make: MakeHarness) -> None:
    h = make()
    arm(h, max_slew_ua_per_s=500)
    ok(h.request(Start(2000, 100)))  # asks for 20 mA/s
    h.wait(2.0)
    assert h.last.set_ua == pytest.approx(1000, abs=30)


def test_stop_ramps_down_and_ends_in_done_with_the_relay_open(make: MakeHarness) -> None:
    h = make()
    arm(h)
    ok(h.request(Start(1000, 1000)))
    h.wait(2.0)
    ok(h.request(Stop(2000)))
    h.wait(1.0)
    assert h.last.state is State.RAMP_DOWN and 300 < h.last.set_ua < 700
    run_to(h, State.DONE)
    assert h.last.set_ua == 0 and not h.last.flags & TelemetryFlags.OUTPUT_ON


def test_every_state_change_is_reported_at_once(make: MakeHarness) -> None:
    h = make()
    ok(h.request(SetTelemetry(0)))  # periodic telemetry off
    count = len(h.telemetry)
    arm(h)
    assert [t.state for t in h.telemetry[count:]] == [State.ARMED]


def test_telemetry_follows_the_requested_period_on_the_device_clock(make: MakeHarness) -> None:
    h = make(time_scale=10)
    ok(h.request(SetTelemetry(200)))
    count = len(h.telemetry)
    h.wait(1.0)  # 10 s of device time
    stamps = [t.t_ms for t in h.telemetry[count:]]
    assert len(stamps) == pytest.approx(50, abs=2)
    assert all(b - a == pytest.approx(200, abs=10) for a, b in zip(stamps, stamps[1:], strict=False))


def test_contact_check_measures_the_load_and_adds_nothing_to_the_dose(make: MakeHarness) -> None:
    h = make()
    ok(h.request(Configure(**LIMITS)))
    contact = h.request(CheckContact(100, 200))
    assert isinstance(contact, Contact)
    assert contact.impedance_ohm == pytest.approx(20_300, rel=0.05)  # R_s + R_p at rest
    h.wait(0.2)
    assert h.last.dose_uas == 0 and not h.last.flags & TelemetryFlags.OUTPUT_ON


def test_dose_counter_integrates_measured_current(make: MakeHarness) -> None:
    trace: list[dict] = []
    h = make(trace=trace, load="tap-water-hands")
    arm(h)
    ok(h.request(Start(2000, 0)))
    h.wait(10.0)
    true_dose = trace[-1]["dose_uas"]
    assert h.last.dose_uas == pytest.approx(true_dose, rel=0.01)
    ramp_loss = 2000**2 / (2 * LIMITS["max_slew_ua_per_s"])  # START with ramp 0 ramps at max slew
    assert h.last.dose_uas == pytest.approx(2000 * 10 - ramp_loss, rel=0.01)


# --- faults the device detects on its own -------------------------------------------------------------


def test_silence_of_heartbeats_latches_host_lost_and_ramps_down(make: MakeHarness) -> None:
    h = make()
    arm(h, watchdog_ms=500)
    ok(h.request(Start(1000, 0)))
    h.wait(2.0)
    assert h.last.state is State.RUNNING  # heartbeats keep it alive
    h.send(Heartbeat(1000))
    h.heartbeat_s = None
    h.wait(0.45)
    assert h.last.state is State.RUNNING
    h.wait(0.1)
    assert (h.last.state, h.last.fault) == (State.FAULT, Fault.HOST_LOST)
    h.wait(2.0)
    assert h.last.set_ua == 0 and not h.last.flags & TelemetryFlags.OUTPUT_ON
    assert h.last.dose_uas > 0  # kept for the host that comes back


def test_watchdog_runs_on_link_time_even_when_the_device_clock_is_fast(make: MakeHarness) -> None:
    h = make(time_scale=100)
    arm(h, watchdog_ms=1000)
    ok(h.request(Start(1000, 0)))
    h.heartbeat_s = None
    h.wait(0.9)  # 90 s of device time, under a second of link time
    assert h.last.state is State.RUNNING
    h.wait(0.2)
    assert h.last.fault is Fault.HOST_LOST


def test_a_lifted_electrode_opens_the_relay_at_once(make: MakeHarness) -> None:
    trace: list[dict] = []
    h = make(faults=("electrode-lift@5",), trace=trace)
    arm(h)
    ok(h.request(Start(2000, 1000)))
    run_to(h, State.FAULT, 10)
    assert h.last.fault is Fault.OPEN_CIRCUIT
    lifted = next(r["t_s"] for r in trace if r["fault"] == "OPEN_CIRCUIT")
    assert lifted - h.device.energised_at_s == pytest.approx(5.1, abs=0.05)  # 100 ms window
    assert not h.last.flags & TelemetryFlags.OUTPUT_ON


def test_a_short_latches_low_impedance_and_ramps_down(make: MakeHarness) -> None:
    h = make(faults=("short@3",))
    arm(h, min_impedance_ohm=1000)
    ok(h.request(Start(2000, 1000)))
    run_to(h, State.FAULT, 10)
    assert h.last.fault is Fault.LOW_IMPEDANCE
    assert h.last.set_ua > 0 and h.last.flags & TelemetryFlags.OUTPUT_ON  # ramping, not cut
    h.wait(3.0)
    assert h.last.set_ua == 0 and not h.last.flags & TelemetryFlags.OUTPUT_ON


def test_a_drifting_current_sensor_latches_current_mismatch(make: MakeHarness) -> None:
    h = make(load="tap-water-hands", faults=("sensor-drift=20@5",))
    arm(h)
    ok(h.request(Start(2000, 1000)))
    run_to(h, State.FAULT, 10)
    assert h.last.fault is Fault.CURRENT_MISMATCH


def test_compliance_held_past_its_timeout_latches_compliance(make: MakeHarness) -> None:
    h = make(load="high-impedance")
    arm(h, compliance_timeout_ms=3000, max_impedance_ohm=1_000_000)
    ok(h.request(Start(4000, 1000)))
    run_to(h, State.FAULT, 20)
    assert h.last.fault is Fault.COMPLIANCE


def test_the_dose_cap_ends_delivery_without_passing_it(make: MakeHarness) -> None:
    trace: list[dict] = []
    h = make(trace=trace, load="tap-water-hands", time_scale=20)
    arm(h, max_dose_uas=60_000, max_slew_ua_per_s=1000)  # 1 mA·min
    ok(h.request(Start(2000, 2000)))
    run_to(h, State.FAULT)
    assert h.last.fault is Fault.DOSE_LIMIT
    h.wait(1.0)
    one_step_uas = 2000 * 0.010  # PROTOCOL.md §7.2: never past the cap by more than one monitor period
    assert h.last.dose_uas <= 60_000 + one_step_uas
    assert trace[-1]["dose_uas"] <= 60_000 * 1.01


def test_the_duration_cap_ends_delivery_on_time(make: MakeHarness) -> None:
    h = make(load="tap-water-hands", time_scale=10)
    arm(h, max_duration_ms=20_000, max_slew_ua_per_s=1000)
    ok(h.request(Start(2000, 2000)))
    run_to(h, State.FAULT)
    assert h.last.fault is Fault.DURATION_LIMIT
    h.wait(1.0)
    assert h.last.energised_ms <= 20_000 + 10


def test_a_reboot_comes_back_in_fault_brownout_with_counters_lost(make: MakeHarness) -> None:
    h = make(faults=("reboot@3",))
    arm(h)
    ok(h.request(Start(1000, 0)))
    run_to(h, State.FAULT, 10)
    before = max(t.t_ms for t in h.telemetry if t.fault is not Fault.BROWNOUT)
    assert before >= 2900  # telemetry ran for the 3 s before the reboot
    assert h.last.fault is Fault.BROWNOUT and h.last.t_ms < before
    assert h.last.dose_uas == 0 and not h.last.flags & TelemetryFlags.CONFIGURED
    ok(h.request(ClearFault()))
    assert result_of(h.request(Arm())) is Result.NOT_CONFIGURED


# --- ending, clearing, continuing ---------------------------------------------------------------------


def test_clear_fault_waits_for_zero_current_then_keeps_the_dose(make: MakeHarness) -> None:
    h = make(load="tap-water-hands")
    arm(h, watchdog_ms=300, max_slew_ua_per_s=500)
    ok(h.request(Start(2000, 0)))
    h.wait(5.0)
    h.heartbeat_s = None
    h.wait(0.5)
    assert h.last.fault is Fault.HOST_LOST and h.last.set_ua > 0
    h.heartbeat_s = 0.25
    assert result_of(h.request(ClearFault())) is Result.BUSY
    h.wait(5.0)
    dose = h.last.dose_uas
    ok(h.request(ClearFault()))
    assert h.last.state is State.DONE and h.last.dose_uas == dose > 0
    ok(h.request(Arm()))  # a continued session keeps its dose
    assert h.last.dose_uas == dose
    ok(h.request(Reset()))
    assert h.last.dose_uas == 0 and h.last.state is State.IDLE


def test_a_polarity_reversal_goes_through_zero_and_keeps_the_dose(make: MakeHarness) -> None:
    h = make(load="tap-water-hands")
    arm(h, polarity=Polarity.ANODE)
    ok(h.request(Start(1000, 500)))
    h.wait(3.0)
    ok(h.request(Stop(500)))
    run_to(h, State.DONE)
    dose = h.last.dose_uas
    ok(h.request(Arm()))
    ok(h.request(SetPolarity(Polarity.CATHODE)))
    ok(h.request(Start(1000, 500)))
    h.wait(3.0)
    assert h.last.polarity is Polarity.CATHODE and h.last.dose_uas > dose


def test_set_target_zero_holds_the_output_energised_at_zero(make: MakeHarness) -> None:
    h = make()
    arm(h)
    ok(h.request(Start(1000, 500)))
    h.wait(2.0)
    ok(h.request(SetTarget(0, 500)))
    h.wait(2.0)
    assert h.last.state is State.RUNNING and h.last.set_ua == 0 and h.last.flags & TelemetryFlags.OUTPUT_ON


def test_a_stuck_output_ignores_stop_but_output_off_cuts_it(make: MakeHarness) -> None:
    h = make(faults=("stuck-output@2",), load="tap-water-hands")
    arm(h)
    ok(h.request(Start(1000, 500)))
    h.wait(3.0)
    ok(h.request(Stop(500)))
    h.wait(3.0)
    assert h.last.measured_ua > 900  # still flowing
    ok(h.request(OutputOff()))
    h.wait(0.1)
    assert h.last.measured_ua < 20 and (h.last.state, h.last.fault) == (State.FAULT, Fault.OUTPUT_CUT)


def test_a_welded_relay_keeps_current_flowing_after_output_off(make: MakeHarness) -> None:
    h = make(faults=("stuck-output=welded@2",), load="tap-water-hands")
    arm(h)
    ok(h.request(Start(1000, 500)))
    h.wait(3.0)
    ok(h.request(OutputOff()))
    h.wait(0.5)
    assert h.last.measured_ua > 900 and h.last.flags & TelemetryFlags.OUTPUT_ON


def test_link_drop_silences_the_device_both_ways(make: MakeHarness) -> None:
    h = make(faults=("link-drop@2:1",), heartbeat_s=0.25)
    arm(h, watchdog_ms=500)
    ok(h.request(Start(1000, 0)))
    h.wait(2.05)
    count = len(h.telemetry)
    h.wait(0.9)
    assert len(h.telemetry) == count  # nothing came out
    h.wait(0.5)
    assert h.last.fault is Fault.HOST_LOST  # and heartbeats did not get in


# --- fault specifications -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("electrode-lift@60", FaultSpec("electrode-lift", 60.0)),
        ("corrupt=0.01@0:30", FaultSpec("corrupt", 0.0, 30.0, 0.01)),
        ("stuck-output=welded@5", FaultSpec("stuck-output", 5.0, None, "welded")),
        ("sensor-drift=-15@1.5:2", FaultSpec("sensor-drift", 1.5, 2.0, -15.0)),
    ],
)
def test_fault_specs_parse(text: str, expected: FaultSpec) -> None:
    assert FaultSpec.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "electrode-lift", "melt@3", "corrupt@3", "corrupt=2@3", "reboot=1@3", "short@x", "link-drop@3:0",
        "short=0@3", "short=inf@3", "impedance-step=-500@3", "impedance-step=nan@3", "sensor-drift=-100@3",
        "corrupt=nan@3", "electrode-lift@nan", "electrode-lift@inf", "link-drop@3:inf", "link-drop@3:nan",
    ],
)  # fmt: skip
def test_bad_fault_specs_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(FaultSpecError, match="fault"):
        FaultSpec.parse(text)


def test_a_device_that_falls_behind_its_time_scale_catches_up_a_bounded_step_per_call(make: MakeHarness) -> None:
    # Ten hours of wall time at once: the device must not try to run them in one call (the loop would
    # stall and ignore signals); it runs MAX_CATCH_UP_S and keeps the rest for later calls.
    h = make(time_scale=1000.0)
    h.device.advance(36_000.0)
    assert h.device.firmware.t == pytest.approx(MAX_CATCH_UP_S, abs=0.011)
    h.device.advance(36_000.0)
    assert h.device.firmware.t == pytest.approx(2 * MAX_CATCH_UP_S, abs=0.011)


def test_packets_from_the_harness_are_real_frames(make: MakeHarness) -> None:
    # Guard against the harness short-circuiting the codec: what it reads went through bytes.
    h = make()
    h.request(Identify())
    assert all(isinstance(p, Packet) for p in h.responses) and h.errors == []


def test_current_held_down_by_compliance_comes_back_along_a_ramp(make: MakeHarness) -> None:
    # A drying sponge (+40 kΩ) holds the output at compliance for 5 s; when it is re-wetted, the current
    # must return at the ramp rate, not as a step to the old set point (the "mild shock" of docs/SOURCES.md).
    trace: list[dict] = []
    h = make(faults=("impedance-step=40000@12:5",), trace=trace)
    arm(h, max_slew_ua_per_s=200)
    ok(h.request(Start(2000, 10_000)))
    h.wait(30.0)
    currents = [r["current_ua"] for r in trace]
    assert min(currents[-2000:]) < 1500  # it really was held down by compliance
    steps_up = [b - a for a, b in zip(currents, currents[1:], strict=False)]
    margin = max(0.05 * 2000, 100)  # anti-windup headroom above what flows (PROTOCOL.md §7.1)
    assert max(steps_up) <= 200 * 0.010 + margin + 20  # slew per step + headroom + noise
    assert h.last.set_ua == 2000 and h.last.measured_ua == pytest.approx(2000, rel=0.02)


def test_a_probe_cut_by_output_off_is_not_run_again_by_its_retransmission(make: MakeHarness) -> None:
    h = make()
    ok(h.request(Configure(**LIMITS)))
    probe_seq = h.send(CheckContact(500, 1000))
    h.wait(0.1)
    ok(h.request(OutputOff()))  # cuts the probe; its CONTACT reply goes out (and, here, is "lost")
    h.responses.clear()
    h.send(CheckContact(500, 1000), flags=HeaderFlags.ACK_REQ | HeaderFlags.RETX, seq=probe_seq)
    h.wait(0.1)
    (replay,) = h.responses
    assert isinstance(replay.message, Contact) and replay.is_retransmit
    assert not h.last.flags & (TelemetryFlags.OUTPUT_ON | TelemetryFlags.PROBING)


def test_configure_checks_its_fields_in_the_documented_order(make: MakeHarness) -> None:
    h = make()
    slew_first = Configure(**{**LIMITS, "max_slew_ua_per_s": 0, "max_voltage_mv": 70_000})
    assert result_of(h.request(slew_first)) is Result.BAD_ARGUMENT
    current_first = Configure(**{**LIMITS, "max_current_ua": 40_000, "max_voltage_mv": 0})
    assert result_of(h.request(current_first)) is Result.LIMIT_EXCEEDED


def test_running_at_the_hardware_maximum_does_not_trip_overcurrent(make: MakeHarness) -> None:
    h = make(faults=("short=1000@0",))  # a 1 kΩ load: 30 mA needs 30 V
    arm(h, max_current_ua=30_000, max_slew_ua_per_s=20_000, min_impedance_ohm=0)
    ok(h.request(Start(30_000, 0)))
    h.wait(5.0)
    assert h.last.state is State.RUNNING and h.last.measured_ua == pytest.approx(30_000, rel=0.02)

"""The firmware driver: pure unit conversions, then the real simulator process over its pty and TCP.

Integration tests run the simulator's device clock 20x fast (`--time-scale 20`): a 2 s device ramp takes
0.1 s of wall time, while the link (response timeouts, link loss, the device's watchdog) keeps wall time.
Each fault scenario runs once in a module fixture that records what happened; the tests then state, one
each, what must have happened.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import serial
from hypothesis import given
from hypothesis import strategies as st

import firmware_protocol as wire
from ionctl.drivers import (
    AddressError,
    CommandRefused,
    DeviceFault,
    DeviceLimits,
    FaultCode,
    LinkLost,
    OutputState,
    Polarity,
    Telemetry,
    VersionMismatch,
)
from ionctl.drivers.firmware import FirmwareDevice, check_version, configure_message, telemetry_sample
from tests.drivers.proxy import frame_dropper
from tests.sim.endpoints import running_sim

LIMITS = DeviceLimits(
    max_current_ma=5.0, max_slew_ma_per_s=2.0, max_dose_ma_min=80.0, max_voltage_v=60.0, max_duration_s=3600.0,
    min_impedance_ohm=500.0, max_impedance_ohm=100_000.0, area_cm2=10.0, watchdog_s=1.0, compliance_timeout_s=30.0,
)  # fmt: skip
TARGET_MA = 2.0
WIRE_ENERGISED = frozenset({wire.State.RAMP_UP, wire.State.RUNNING, wire.State.RAMP_DOWN})
TIME_SCALE = "20"


@pytest.fixture(autouse=True)
def no_leaked_reader_threads() -> Iterator[None]:
    yield
    leaked = [t.name for t in threading.enumerate() if t.name.startswith("ionctl-firmware")]
    assert not leaked, f"driver threads still running (a device was not closed): {leaked}"


# -- helpers ---------------------------------------------------------------------------------------------


@contextmanager
def device_on_sim(
    tmp_path: Path, *sim_args: str, transport: str = "pty", trace: Path | None = None, **options: Any
) -> Iterator[FirmwareDevice]:
    extra = ["--trace", str(trace)] if trace else []
    args = ("--serial-link", str(tmp_path / "ionto"), "--tcp", "0", "--time-scale", TIME_SCALE, *extra, *sim_args)
    with running_sim(*args) as sim:
        device = FirmwareDevice.open(sim.endpoints["serial" if transport == "pty" else "tcp"], **options)
        try:
            yield device
        finally:
            device.close()


def read_until(device: FirmwareDevice, done: Callable[[Telemetry], bool], timeout_s: float = 5.0) -> list[Telemetry]:
    """Telemetry up to and including the first sample for which `done` holds."""
    samples: list[Telemetry] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for sample in device.read_telemetry(0.1):
            samples.append(sample)
            if done(sample):
                return samples
    last = samples[-1] if samples else None
    raise AssertionError(f"condition not reached within {timeout_s} s; last sample {last}")


def in_state(*states: OutputState) -> Callable[[Telemetry], bool]:
    return lambda sample: sample.state in states


def arm(device: FirmwareDevice, limits: DeviceLimits = LIMITS) -> None:
    device.configure(limits)
    device.set_polarity(Polarity.CATHODE)
    device.arm()


def trace_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def non_decreasing(values: list[float]) -> bool:
    return all(a <= b for a, b in zip(values, values[1:], strict=False))


# -- pure: units and rounding ----------------------------------------------------------------------------


def test_limits_are_converted_to_wire_units() -> None:
    limits = DeviceLimits(
        max_current_ma=4.1, max_slew_ma_per_s=0.5, max_dose_ma_min=40.0, max_voltage_v=60.0, max_duration_s=1200.0,
        min_impedance_ohm=500.2, max_impedance_ohm=20_000.7, area_cm2=12.5, watchdog_s=1.0, compliance_timeout_s=30.0,
    )  # fmt: skip
    assert configure_message(limits) == wire.Configure(
        max_current_ua=4100, max_slew_ua_per_s=500, max_dose_uas=2_400_000, max_voltage_mv=60_000,
        max_duration_ms=1_200_000, min_impedance_ohm=501, max_impedance_ohm=20_000, area_mm2=1250,
        watchdog_ms=1000, compliance_timeout_ms=30_000,
    )  # fmt: skip


positive = st.floats(min_value=0.001, max_value=1000.0)


@given(current=positive, slew=st.floats(0.001, 100.0), dose=positive, volts=st.floats(0.001, 60.0),
       low=st.floats(1.0, 1000.0), watchdog=st.floats(0.1, 10.0))  # fmt: skip
def test_rounding_to_wire_units_never_loosens_a_limit(
    current: float, slew: float, dose: float, volts: float, low: float, watchdog: float
) -> None:
    limits = replace(
        LIMITS, max_current_ma=current, max_slew_ma_per_s=slew, max_dose_ma_min=dose, max_voltage_v=volts,
        min_impedance_ohm=low, max_impedance_ohm=low + 10, watchdog_s=watchdog,
    )  # fmt: skip
    try:
        m = configure_message(limits)
    except ValueError:
        return  # below the smallest wire value: refused, which is also safe
    eps = 1e-6
    assert m.max_current_ua <= current * 1000 + eps
    assert m.max_slew_ua_per_s <= slew * 1000 + eps
    assert m.max_dose_uas <= dose * 60_000 + eps
    assert m.max_voltage_mv <= volts * 1000 + eps
    assert m.watchdog_ms <= watchdog * 1000 + eps
    assert m.min_impedance_ohm >= low - eps


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"watchdog_s": 20.0}, "watchdog_s"),  # the device accepts 0.1..10 s
        ({"max_slew_ma_per_s": 200.0}, "max_slew_ma_per_s"),  # above 100 000 µA/s
        ({"max_current_ma": 31.0}, "max_current_ma"),  # above the hardware's 30 mA
        ({"max_voltage_v": 61.0}, "max_voltage_v"),  # above the hardware's 60 V
        ({"max_dose_ma_min": 80_000.0}, "max_dose_ma_min"),  # beyond u32 µA·s
        ({"compliance_timeout_s": 0.0004}, "compliance_timeout_s"),  # 0 ms would mean "never fault"
        ({"min_impedance_ohm": 500.2, "max_impedance_ohm": 500.9}, "min_impedance_ohm"),  # 501 >= 500
    ],
)
def test_limits_outside_the_wire_range_are_refused_before_sending(change: dict[str, float], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        configure_message(replace(LIMITS, **change), hw_max_current_ua=30_000, hw_compliance_mv=60_000)


def test_telemetry_is_converted_to_host_units_with_unmeasurable_impedance_as_none() -> None:
    frame = wire.Telemetry(
        t_ms=12_345, state=wire.State.RUNNING, fault=wire.Fault.NONE,
        flags=wire.TelemetryFlags.OUTPUT_ON | wire.TelemetryFlags.AT_COMPLIANCE, polarity=wire.Polarity.CATHODE,
        set_ua=2000, measured_ua=-1990, output_mv=-24_500, impedance_ohm=wire.IMPEDANCE_UNKNOWN,
        dose_uas=120_000, energised_ms=60_000, heartbeat=3,
    )  # fmt: skip
    sample = telemetry_sample(frame)
    assert sample == Telemetry(
        t_s=12.345, state=OutputState.RUNNING, fault=FaultCode.NONE, polarity=Polarity.CATHODE, set_ma=2.0,
        measured_ma=1.99, voltage_v=24.5, impedance_ohm=None, device_dose_ma_min=2.0, at_compliance=True,
        output_on=True, ramping=False,
    )  # fmt: skip


def test_a_port_that_cannot_be_opened_raises_link_lost_naming_it() -> None:
    with pytest.raises(LinkLost, match="/dev/ionctl-no-such-port"):
        FirmwareDevice.open("/dev/ionctl-no-such-port")


def test_an_unknown_url_scheme_raises_address_error_naming_it() -> None:
    with pytest.raises(AddressError, match="nosuch://x"):
        FirmwareDevice.open("nosuch://x")


def test_a_port_that_never_answers_is_lost_after_the_last_retransmission() -> None:
    started = time.monotonic()
    with pytest.raises(LinkLost, match="IDENTIFY"):
        FirmwareDevice.open("loop://")  # echoes our own requests back: nothing ever answers them
    assert 0.55 <= time.monotonic() - started < 1.0  # 4 tries of 150 ms


# -- the simulator: identify and deliver -----------------------------------------------------------------


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_identify_reports_the_device_and_its_capabilities(tmp_path: Path, transport: str) -> None:
    with device_on_sim(tmp_path, transport=transport) as device:
        identity = device.identify()
    assert (identity.model, identity.serial, identity.protocol) == ("IONTO-SIM 1", "SIM-000001", "1.0")
    assert (identity.hw_max_current_ma, identity.compliance_v) == (30.0, 60.0)
    assert identity.native_ramp and identity.watchdog and identity.coulomb_counter and identity.contact_check


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_a_delivery_ramps_up_to_target_holds_and_ramps_down_to_done(tmp_path: Path, transport: str) -> None:
    with device_on_sim(tmp_path, transport=transport) as device:
        arm(device)
        device.start(TARGET_MA, ramp_s=2.0)
        up = read_until(device, in_state(OutputState.RUNNING))
        device.stop(ramp_s=2.0)
        down = read_until(device, in_state(OutputState.DONE))
    ramp_up = [s.set_ma for s in up if s.state is OutputState.RAMP_UP]
    ramp_down = [s.set_ma for s in down if s.state is OutputState.RAMP_DOWN]
    assert len(ramp_up) >= 5 and non_decreasing(ramp_up) and ramp_up[0] < TARGET_MA / 2
    assert up[-1].set_ma == TARGET_MA and up[-1].polarity is Polarity.CATHODE
    assert len(ramp_down) >= 5 and non_decreasing(ramp_down[::-1])
    assert down[-1].set_ma == 0 and not down[-1].output_on and down[-1].device_dose_ma_min > 0  # type: ignore[operator]


def test_a_contact_check_reports_the_skin_impedance(tmp_path: Path) -> None:
    with device_on_sim(tmp_path) as device:
        device.configure(LIMITS)
        reading = device.check_contact(probe_ma=0.1, duration_s=0.1)
    assert reading.impedance_ohm is not None and 1_000 < reading.impedance_ohm < 100_000
    assert reading.current_ma == pytest.approx(0.1, abs=0.01)


def test_a_refused_command_raises_command_refused_with_the_reason(tmp_path: Path) -> None:
    with device_on_sim(tmp_path) as device:
        device.configure(LIMITS)
        with pytest.raises(CommandRefused) as refused:
            device.start(TARGET_MA, ramp_s=1.0)  # not armed
    assert (refused.value.command, refused.value.result) == ("start", "bad_state")


def test_stop_during_ramp_up_ramps_down_to_done_without_reaching_target(tmp_path: Path) -> None:
    with device_on_sim(tmp_path) as device:
        arm(device)
        device.start(TARGET_MA, ramp_s=20.0)
        read_until(device, lambda s: s.set_ma >= 0.3)
        device.stop(ramp_s=1.0)
        samples = read_until(device, in_state(OutputState.DONE))
    assert max(s.set_ma for s in samples) < TARGET_MA / 2
    assert samples[-1].set_ma == 0 and samples[-1].fault is FaultCode.NONE


def test_abort_ramps_to_zero_at_the_maximum_slew(tmp_path: Path) -> None:
    with device_on_sim(tmp_path) as device:
        arm(device)
        device.start(TARGET_MA, ramp_s=1.0)
        running = read_until(device, in_state(OutputState.RUNNING))[-1]
        device.abort()
        samples = read_until(device, in_state(OutputState.DONE))
    ramp_s = samples[-1].t_s - running.t_s  # device seconds: 2 mA at 2 mA/s is 1 s
    assert 0.8 <= ramp_s <= 1.4
    assert samples[-1].set_ma == 0 and samples[-1].fault is FaultCode.NONE


def test_output_off_opens_the_output_at_once_and_latches_output_cut(tmp_path: Path) -> None:
    with device_on_sim(tmp_path) as device:
        arm(device)
        device.start(TARGET_MA, ramp_s=1.0)
        read_until(device, in_state(OutputState.RUNNING))
        device.output_off()
        after = read_until(device, in_state(OutputState.FAULT))[-1]
    assert after.fault is FaultCode.OUTPUT_CUT and not after.output_on


def test_reset_after_a_delivery_lets_a_new_session_configure_from_zero(tmp_path: Path) -> None:
    with device_on_sim(tmp_path) as device:
        arm(device)
        device.start(TARGET_MA, ramp_s=0.5)
        read_until(device, in_state(OutputState.RUNNING))
        device.stop(ramp_s=0.5)
        done = read_until(device, in_state(OutputState.DONE))[-1]
        with pytest.raises(CommandRefused, match="bad_state"):
            device.configure(LIMITS)  # DONE keeps the session's configuration
        device.reset()
        arm(device)  # configure, polarity and arm are accepted again
        after = read_until(device, in_state(OutputState.ARMED))[-1]
    assert done.device_dose_ma_min and done.device_dose_ma_min > 0
    assert after.device_dose_ma_min == 0


def test_heartbeats_keep_the_device_energised_without_caller_traffic(tmp_path: Path) -> None:
    with device_on_sim(tmp_path) as device:
        arm(device, replace(LIMITS, watchdog_s=0.2))
        device.start(TARGET_MA, ramp_s=1.0)
        time.sleep(1.5)  # the caller is silent for 7 watchdog periods
        samples = device.read_telemetry(0.1)
    assert samples[-1].state is OutputState.RUNNING
    assert all(s.fault is FaultCode.NONE for s in samples)


# -- version refusal -------------------------------------------------------------------------------------


def test_another_protocol_major_is_refused_and_the_port_released(tmp_path: Path) -> None:
    with running_sim("--serial-link", str(tmp_path / "ionto"), "--protocol-version", "2.0") as sim:
        with pytest.raises(VersionMismatch, match=r"2\.0.*1\.0"):
            FirmwareDevice.open(sim.endpoints["serial"])
        serial.serial_for_url(sim.endpoints["serial"], exclusive=True).close()  # no lock left behind


def test_the_same_version_built_from_another_schema_draft_is_refused() -> None:
    identity = wire.Identity(
        proto_major=wire.PROTOCOL_MAJOR, proto_minor=wire.PROTOCOL_MINOR, fw_major=1, fw_minor=0, fw_patch=0,
        hw_rev=1, model="X", serial="Y", schema_hash=wire.SCHEMA_HASH ^ 1, hw_max_current_ua=30_000,
        hw_compliance_mv=60_000, capabilities=0x1F,
    )  # fmt: skip
    with pytest.raises(VersionMismatch, match="schema"):
        check_version("/dev/x", identity)
    check_version("/dev/x", replace(identity, proto_minor=wire.PROTOCOL_MINOR + 1))  # a later minor only adds


# -- faults ----------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a scenario observed, for the tests to judge."""

    samples: list[Telemetry] = field(default_factory=list)
    errors: dict[str, BaseException | None] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    trace: list[dict[str, Any]] = field(default_factory=list)


def attempt(call: Callable[[], object]) -> BaseException | None:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the test judges which
        return exc
    return None


@pytest.fixture(scope="module")
def electrode_lift(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    out = Outcome()
    with device_on_sim(tmp_path_factory.mktemp("lift"), "--fault", "electrode-lift@2") as device:
        arm(device)
        device.start(TARGET_MA, ramp_s=4.0)
        out.samples = read_until(device, in_state(OutputState.FAULT))
        out.errors["set_target"] = attempt(lambda: device.set_target(1.0, 1.0))
    return out


def test_a_lifted_electrode_is_reported_as_open_circuit_fault_telemetry(electrode_lift: Outcome) -> None:
    assert electrode_lift.samples[-1].fault is FaultCode.OPEN_CIRCUIT


def test_a_command_in_fault_raises_device_fault_with_its_code(electrode_lift: Outcome) -> None:
    error = electrode_lift.errors["set_target"]
    assert isinstance(error, DeviceFault) and error.fault is FaultCode.OPEN_CIRCUIT


@pytest.fixture(scope="module")
def link_drop(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    out, tmp = Outcome(), tmp_path_factory.mktemp("drop")
    with device_on_sim(tmp, "--fault", "link-drop@1", trace=tmp / "trace.jsonl") as device:
        arm(device, replace(LIMITS, watchdog_s=0.4))
        device.start(TARGET_MA, ramp_s=2.0)
        last_sample_at = time.monotonic()
        try:
            while time.monotonic() < last_sample_at + 5:
                if device.read_telemetry(0.05):
                    last_sample_at = time.monotonic()
        except LinkLost as exc:
            out.errors["read_telemetry"] = exc
        out.seconds["detection"] = time.monotonic() - last_sample_at
        started = time.monotonic()
        out.errors["stop"] = attempt(lambda: device.stop(1.0))
        out.errors["read_again"] = attempt(lambda: device.read_telemetry(1.0))
        out.seconds["latched"] = time.monotonic() - started
        time.sleep(0.2)  # let the device's ramp to zero finish in the trace
    out.trace = trace_rows(tmp / "trace.jsonl")
    return out


def test_a_silent_link_is_detected_as_link_lost_within_the_bound(link_drop: Outcome) -> None:
    assert isinstance(link_drop.errors["read_telemetry"], LinkLost)
    assert 0.9 <= link_drop.seconds["detection"] <= 1.0 + 0.25  # max(3 x 100 ms, 1 s) + one read timeout


def test_after_link_loss_every_call_raises_link_lost_at_once(link_drop: Outcome) -> None:
    assert isinstance(link_drop.errors["stop"], LinkLost)
    assert isinstance(link_drop.errors["read_again"], LinkLost)
    assert link_drop.seconds["latched"] < 0.1  # no retransmissions, no waiting: latched


def test_the_device_latched_host_lost_once_heartbeats_stopped(link_drop: Outcome) -> None:
    host_lost = [row for row in link_drop.trace if row["fault"] == "HOST_LOST"]
    assert host_lost and host_lost[-1]["state"] == "FAULT" and host_lost[-1]["current_ua"] < 1


@pytest.fixture(scope="module")
def corrupt_link(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    out, tmp = Outcome(), tmp_path_factory.mktemp("corrupt")
    sim_args = ("--fault", "corrupt=0.01@0", "--seed", "7")
    with device_on_sim(tmp, *sim_args, trace=tmp / "trace.jsonl") as device:
        arm(device)
        device.start(TARGET_MA, ramp_s=2.0)
        out.samples = read_until(device, in_state(OutputState.RUNNING))
        out.samples += read_until(device, lambda s: s.t_s >= out.samples[-1].t_s + 6)  # hold 6 device s
        device.stop(ramp_s=2.0)
        out.samples += read_until(device, in_state(OutputState.DONE))
        out.counters = {"damaged": device.frames_damaged, "lost": device.frames_lost}
    out.trace = trace_rows(tmp / "trace.jsonl")
    return out


def test_a_corrupted_link_still_ends_the_session_in_done_without_a_fault(corrupt_link: Outcome) -> None:
    assert corrupt_link.samples[-1].state is OutputState.DONE
    assert {row["fault"] for row in corrupt_link.trace} == {"NONE"}


def test_damaged_frames_are_counted_and_dropped(corrupt_link: Outcome) -> None:
    assert corrupt_link.counters["damaged"] > 0 and corrupt_link.counters["lost"] > 0
    stamps = [s.t_s for s in corrupt_link.samples]
    assert stamps == sorted(stamps)  # nothing misread: device time only moves forward


def test_a_corrupted_link_never_drives_current_above_target(corrupt_link: Outcome) -> None:
    assert max(row["current_ua"] for row in corrupt_link.trace) <= TARGET_MA * 1000 * 1.02
    assert max(s.set_ma for s in corrupt_link.samples) == TARGET_MA


def test_an_unanswered_request_is_retransmitted_counted_and_executed(tmp_path: Path) -> None:
    # The link drops for 6 device s (0.3 s wall) as the output is energised: SET_TARGET's first tries are
    # lost, a retransmission gets through before the three allowed run out.
    with device_on_sim(tmp_path, "--fault", "link-drop@0:6") as device:
        arm(device)
        device.start(TARGET_MA, ramp_s=2.0)
        time.sleep(0.02)
        device.set_target(3.0, ramp_s=1.0)
        samples = read_until(device, lambda s: s.state is OutputState.RUNNING and math.isclose(s.set_ma, 3.0))
        retransmissions = device.retransmissions
    assert retransmissions >= 1
    assert samples[-1].fault is FaultCode.NONE


# -- review: arguments the wire cannot carry are refused like any refusal ---------------------------------


@pytest.mark.parametrize(
    ("call", "command", "result"),
    [
        (lambda d: d.configure(replace(LIMITS, max_current_ma=31.0)), "configure", "limit_exceeded"),  # hw: 30 mA
        (lambda d: d.configure(replace(LIMITS, watchdog_s=20.0)), "configure", "bad_argument"),
        (lambda d: d.start(-1.0, 1.0), "start", "bad_argument"),
        (lambda d: d.set_target(1.0, float("nan")), "set_target", "bad_argument"),
        (lambda d: d.stop(float("inf")), "stop", "bad_argument"),
        (lambda d: d.check_contact(100.0, 0.1), "check_contact", "bad_argument"),  # 100 mA is beyond u16 µA
    ],
    ids=["configure-above-hardware", "configure-watchdog", "start-negative", "set_target-nan", "stop-inf", "probe"],
)
def test_an_argument_the_device_cannot_take_is_refused_as_command_refused_like_the_sourcemeter(
    tmp_path: Path, call: Callable[[FirmwareDevice], object], command: str, result: str
) -> None:
    # The session must not care which driver it has: the SCPI driver refuses these with CommandRefused, and so
    # must this one, not with a bare ValueError.
    with device_on_sim(tmp_path) as device:
        with pytest.raises(CommandRefused) as refused:
            call(device)
        assert (refused.value.command, refused.value.result) == (command, result)
        assert device.read_telemetry(0.5)[-1].state is OutputState.IDLE  # nothing was sent


# -- review: frames lost on purpose (tests/drivers/proxy.py) ----------------------------------------------


def first_copy_of(msg_type: type[wire.Message]) -> Callable[[wire.Packet], bool]:
    """Drops the first transmission of the first `msg_type` request; its retransmissions pass."""
    dropped: list[wire.Packet] = []

    def drop(packet: wire.Packet) -> bool:
        if isinstance(packet.message, msg_type) and not packet.is_retransmit and not dropped:
            dropped.append(packet)
            return True
        return False

    return drop


def test_a_reconnected_driver_never_gets_the_previous_hosts_answer_to_its_own_request(tmp_path: Path) -> None:
    # Host A configures the device for a tap-water session (20 mA) and goes away. Host B connects for a drug
    # session (4 mA); the line loses the first copy of its CONFIGURE. Its retransmission must be executed, not
    # answered from the device's cache of host A's CONFIGURE under the same (seq, msg_id) (PROTOCOL.md §4.4:
    # "a restarted host may reuse a seq"), or the device would go on enforcing host A's limits.
    args = ("--serial-link", str(tmp_path / "ionto"), "--tcp", "0", "--time-scale", TIME_SCALE)
    with running_sim(*args) as sim:
        with FirmwareDevice.open(sim.endpoints["serial"]) as host_a:
            host_a.configure(replace(LIMITS, max_current_ma=20.0))
        with frame_dropper(sim.endpoints["tcp"], to_device=first_copy_of(wire.Configure)) as url:
            with FirmwareDevice.open(url) as host_b:
                arm(host_b, replace(LIMITS, max_current_ma=4.0))
                retransmissions = host_b.retransmissions
                with pytest.raises(CommandRefused) as refused:
                    host_b.start(10.0, ramp_s=1.0)  # above B's limit: the device must refuse it
                host_b.abort()
    assert retransmissions == 1  # the first CONFIGURE was lost and resent
    assert refused.value.result == "limit_exceeded"


def news_of_start_lost_until_a_replay() -> Callable[[wire.Packet], bool]:
    """Drops START's answer and every energised TELEMETRY until the device replays an answer (RETX): the host
    learns that the output is on only from the replayed ACK of its retransmitted START, ~150 ms late."""
    replayed: list[bool] = []

    def drop(packet: wire.Packet) -> bool:
        message = packet.message
        if packet.is_retransmit:
            replayed.append(True)
            return False
        if isinstance(message, wire.Ack):
            return message.acked_msg_id == wire.Start.MSG_ID
        return isinstance(message, wire.Telemetry) and message.state in WIRE_ENERGISED and not replayed

    return drop


def test_the_watchdog_is_fed_from_the_start_even_when_the_answer_to_start_is_lost(tmp_path: Path) -> None:
    # The device's watchdog runs from the moment it executes START, which the host cannot see until an answer
    # gets through; heartbeats that wait for that news come too late for a short watchdog.
    dropping = news_of_start_lost_until_a_replay()
    with running_sim("--tcp", "0", "--time-scale", TIME_SCALE) as sim:
        with frame_dropper(sim.endpoints["tcp"], to_host=dropping) as url, FirmwareDevice.open(url) as device:
            arm(device, replace(LIMITS, watchdog_s=0.1))
            device.start(TARGET_MA, ramp_s=1.0)
            retransmissions = device.retransmissions
            samples = read_until(device, in_state(OutputState.RUNNING, OutputState.FAULT), timeout_s=3.0)
            device.abort()
    assert retransmissions >= 1  # START's answer was lost indeed
    assert samples[-1].state is OutputState.RUNNING and samples[-1].fault is FaultCode.NONE

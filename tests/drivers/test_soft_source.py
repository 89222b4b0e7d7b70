"""The SourceMeter's host-side device layer on its own: readings at given instrument times in, writes out.

No instrument, no link, no clock: a `Port` that records what would be written, and a load that answers every
level with a fixed resistance, so each behaviour is a short script of (time, reading) pairs.
"""

from __future__ import annotations

import pytest

from ionctl.drivers.base import (
    CommandRefused,
    DeviceFault,
    DeviceIdentity,
    DeviceLimits,
    FaultCode,
    OutputState,
    Polarity,
)
from ionctl.drivers.scpi import Reading, SoftSource
from ionctl.drivers.scpi.dialect import STAT_COMPLIANCE
from ionctl.drivers.scpi.soft_source import TIME_WRAP_S

LIMITS = DeviceLimits(
    max_current_ma=5.0, max_slew_ma_per_s=1.0, max_dose_ma_min=80.0, max_voltage_v=60.0, max_duration_s=3600.0,
    max_impedance_ohm=50_000.0, min_impedance_ohm=200.0, compliance_timeout_s=2.0, area_cm2=10.0, watchdog_s=1.0,
)  # fmt: skip
IDENTITY = DeviceIdentity(
    address="visa:TEST", model="KEITHLEY MODEL 2400", serial="1", firmware="C32", protocol="SCPI",
    hw_max_current_ma=105.0, compliance_v=210.0, native_ramp=False, watchdog=False, coulomb_counter=False,
    contact_check=False,
)  # fmt: skip


class RecordingPort:
    """What the soft source asked of the instrument, in order; the level in force and the relay."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float | bool]] = []
        self.level_ma = 0.0
        self.on = False

    def level(self, signed_ma: float) -> None:
        self.calls.append(("level", signed_ma))
        self.level_ma = signed_ma

    def output(self, on: bool) -> None:
        self.calls.append(("output", on))
        self.on = on


def armed(polarity: Polarity = Polarity.ANODE, limits: DeviceLimits = LIMITS) -> tuple[SoftSource, RecordingPort]:
    port = RecordingPort()
    soft = SoftSource(port, max_step_ma=0.1)
    soft.check_configure(limits, IDENTITY)
    soft.configured(limits)
    soft.set_polarity(polarity)
    soft.arm()
    return soft, port


def reading(port: RecordingPort, t_s: float, ohm: float = 1000.0, *, status: int = 0) -> Reading:
    """What the instrument reads at `t_s` with the level in force across `ohm` (0 A with the relay open)."""
    amps = port.level_ma / 1000 if port.on else 0.0
    return Reading(voltage_v=amps * ohm, current_a=amps, time_s=t_s, status=status)


def run(soft: SoftSource, port: RecordingPort, t0: float, t1: float, step: float = 0.1, ohm: float = 1000.0) -> float:
    t = t0
    while t <= t1 + 1e-9 and soft.output_on:
        soft.observe(reading(port, t, ohm))
        t = round(t + step, 9)
    return t


def started(soft: SoftSource, port: RecordingPort, target_ma: float, ramp_s: float) -> None:
    soft.check_start(target_ma, ramp_s)
    port.output(True)
    soft.started(target_ma, ramp_s)


def test_a_ramp_moves_at_most_one_step_per_reading_and_reaches_running_at_the_target() -> None:
    soft, port = armed()
    started(soft, port, 1.0, 1.0)
    run(soft, port, 0.0, 2.0)
    levels = [value for name, value in port.calls if name == "level"]
    assert levels[-1] == 1.0
    assert all(abs(b - a) <= 0.1 + 1e-9 for a, b in zip([0.0, *levels], levels, strict=False))
    assert soft.state is OutputState.RUNNING


def test_a_cathode_session_drives_negative_levels() -> None:
    soft, port = armed(Polarity.CATHODE)
    started(soft, port, 0.5, 0.5)
    run(soft, port, 0.0, 1.0)
    assert port.level_ma == pytest.approx(-0.5)


def test_stop_ramps_to_zero_and_then_opens_the_output() -> None:
    soft, port = armed()
    started(soft, port, 1.0, 1.0)
    t = run(soft, port, 0.0, 1.5)
    soft.stop(1.0)
    assert soft.state is OutputState.RAMP_DOWN and soft.output_on
    run(soft, port, t, t + 2.0)
    assert port.calls[-2:] == [("level", 0.0), ("output", False)]
    assert soft.state is OutputState.DONE and not soft.output_on


def test_an_open_circuit_held_for_its_window_cuts_the_output_at_once() -> None:
    soft, port = armed()
    started(soft, port, 1.0, 1.0)
    t = run(soft, port, 0.0, 1.5)
    run(soft, port, t, t + 0.5, ohm=1e6)  # electrode off: impedance far above the maximum
    assert soft.fault is FaultCode.OPEN_CIRCUIT and soft.state is OutputState.FAULT
    assert port.calls[-2:] == [("output", False), ("level", 0.0)]  # a cut, not a ramp


def test_the_dose_limit_latches_ahead_of_the_cap_and_ramps_rather_than_cuts() -> None:
    limits = DeviceLimits(**{**LIMITS.__dict__, "max_dose_ma_min": 0.05})
    soft, port = armed(limits=limits)
    started(soft, port, 1.0, 1.0)
    run(soft, port, 0.0, 10.0)
    assert soft.fault is FaultCode.DOSE_LIMIT
    assert soft.dose_ma_min <= 0.05
    levels = [value for name, value in port.calls if name == "level"]
    assert levels[-1] == 0.0 and len([v for v in levels if 0 < v < 1.0]) > 10  # it came down along a ramp


def test_compliance_for_longer_than_its_timeout_latches_compliance() -> None:
    soft, port = armed()
    started(soft, port, 1.0, 1.0)
    t = run(soft, port, 0.0, 1.5)
    while soft.state is not OutputState.FAULT and t < 10:
        soft.observe(reading(port, t, status=STAT_COMPLIANCE))
        t = round(t + 0.1, 9)
    assert soft.fault is FaultCode.COMPLIANCE
    assert t - 1.6 == pytest.approx(LIMITS.compliance_timeout_s, abs=0.15)


def test_the_instrument_clock_wrapping_does_not_restart_the_dose() -> None:
    soft, port = armed()
    started(soft, port, 1.0, 0.0)
    near_wrap = TIME_WRAP_S - 0.2
    for t in (near_wrap, near_wrap + 0.1, 0.0, 0.1):  # 99 999.8, 99 999.9, then TIME restarts from zero
        soft.observe(reading(port, t))
    assert soft.t_s == pytest.approx(TIME_WRAP_S + 0.1)
    assert soft.energised_s == pytest.approx(0.3)


def test_an_output_found_on_that_was_not_switched_on_is_switched_off_and_latched() -> None:
    soft, port = armed()
    sample = soft.idle(reported_on=True)
    assert port.calls[0] == ("output", False)
    assert sample.fault is FaultCode.INTERNAL and soft.state is OutputState.FAULT


def test_commands_out_of_state_are_refused_and_a_latched_fault_names_itself() -> None:
    soft, port = armed()
    with pytest.raises(CommandRefused) as refused:
        soft.set_target(1.0, 1.0)
    assert refused.value.result == "bad_state"
    soft.idle(reported_on=True)
    with pytest.raises(DeviceFault) as fault:
        soft.arm()
    assert fault.value.fault is FaultCode.INTERNAL


def test_a_start_above_the_configured_maximum_is_refused_before_anything_is_written() -> None:
    soft, port = armed()
    with pytest.raises(CommandRefused) as refused:
        soft.check_start(LIMITS.max_current_ma + 1, 1.0)
    assert refused.value.result == "limit_exceeded" and port.calls == []

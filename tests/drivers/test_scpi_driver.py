"""The SCPI SourceMeter driver against the simulator process, over TCP (and its pty) with pyvisa-py.

The simulator runs its instrument clock 20x fast, so a 2 s ramp takes 0.1 s of wall time; the driver
samples every 5 ms (0.1 device s). Every assertion about time uses the instrument clock (`t_s`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

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
    open_device,
)
from ionctl.drivers.scpi import ScpiSourceMeter, parse_identity
from tests.sim.endpoints import ROOT, SimProcess, running_sim

TIME_SCALE = "20"
SLEW = 1.0  # mA/s
MAX_STEP = 0.1  # mA, the driver's default cap on one :SOUR:CURR change
LIMITS = DeviceLimits(
    max_current_ma=5.0, max_slew_ma_per_s=SLEW, max_dose_ma_min=80.0, max_voltage_v=60.0, max_duration_s=3600.0,
    min_impedance_ohm=500.0, max_impedance_ohm=100_000.0, area_cm2=10.0, watchdog_s=1.0, compliance_timeout_s=600.0,
)  # fmt: skip
OPEN_LOAD = ("--rp", "1e9", "--cp", "0.001")  # electrodes off the skin: ~1 GΩ, next to no capacitance


# -- helpers -------------------------------------------------------------------------------------------------


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimProcess]:
    with running_sim("--scpi-port", "0", "--scpi-link", str(tmp_path / "scpi"), "--time-scale", TIME_SCALE) as s:
        yield s


@pytest.fixture
def meter(sim: SimProcess) -> Iterator[ScpiSourceMeter]:
    with connect(sim) as m:
        yield m


def connect(sim: SimProcess, **options: float) -> ScpiSourceMeter:
    return ScpiSourceMeter.open(sim.endpoints["scpi"], **{"timeout_s": 1.0, "sample_interval_s": 0.005, **options})


def armed(m: ScpiSourceMeter, polarity: Polarity = Polarity.ANODE, **limits: float) -> ScpiSourceMeter:
    m.configure(DeviceLimits(**{**vars(LIMITS), **limits}))
    m.set_polarity(polarity)
    m.arm()
    return m


def poll_until(m: ScpiSourceMeter, done: Callable[[Telemetry], bool], timeout_s: float = 5.0) -> list[Telemetry]:
    samples: list[Telemetry] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        samples += m.read_telemetry(0.5)
        if samples and done(samples[-1]):
            return samples
    raise AssertionError(f"not reached within {timeout_s} s; last sample {samples[-1:]}")


def running(m: ScpiSourceMeter, target_ma: float = 1.0, ramp_s: float = 1.0) -> list[Telemetry]:
    m.start(target_ma, ramp_s)
    return poll_until(m, lambda t: t.state is OutputState.RUNNING) + m.read_telemetry(0.5)


def assert_bounded_steps(samples: list[Telemetry]) -> None:
    """Each set point change is at most MAX_STEP and at most SLEW x the instrument time it was computed from
    (the change seen at sample k was made on sample k-1, from the interval before it)."""
    for before, computed_on, seen in zip(samples, samples[1:], samples[2:], strict=False):
        step = abs(seen.set_ma - computed_on.set_ma)
        assert step <= MAX_STEP + 1e-9, (computed_on, seen)
        assert step <= SLEW * (computed_on.t_s - before.t_s) + 1e-6, (before, computed_on, seen)


def assert_took(device_s: float, expected_s: float) -> None:
    """A ramp is never faster than asked (one 0.1 s sample of slack); it may be slower when samples come late
    (a loaded machine), since a late sample still moves the set point by at most MAX_STEP."""
    assert expected_s - 0.15 <= device_s <= expected_s + 0.8


def ask(m: ScpiSourceMeter, query: str) -> str:
    """A query on the driver's own connection: the simulator serves one host at a time."""
    return m._link.query(query)


def ask_raw(sim: SimProcess, query: str) -> str:
    """A query as a second host, over the simulator's pty (only once the driver has let go)."""
    with serial.Serial(sim.endpoints["scpi-serial"], timeout=2) as port:
        port.write(query.encode() + b"\n")
        return port.readline().decode().strip()


# -- connecting ----------------------------------------------------------------------------------------------


def test_open_reads_the_identity_of_a_2400_with_no_native_safety_features(meter: ScpiSourceMeter) -> None:
    ident = meter.identify()
    assert (ident.model, ident.serial, ident.protocol) == ("KEITHLEY INSTRUMENTS INC. MODEL 2400", "4000001", "SCPI")
    assert ident.firmware.startswith("C32 Oct 4 2010")
    assert (ident.hw_max_current_ma, ident.compliance_v) == (105.0, 210.0)
    assert not (ident.native_ramp or ident.watchdog or ident.coulomb_counter or ident.contact_check)


def test_an_instrument_that_is_not_a_2400_class_sourcemeter_is_refused() -> None:
    with pytest.raises(VersionMismatch, match="MODEL 2450"):  # a 2450 speaks another command set
        parse_identity("KEITHLEY INSTRUMENTS,MODEL 2450,04096331,1.7.12b", "TCPIP::10.0.0.2::5025::SOCKET")


def test_open_device_routes_a_visa_address_to_the_scpi_driver(sim: SimProcess) -> None:
    with open_device("visa:" + sim.endpoints["scpi"], timeout_s=1.0) as device:
        assert isinstance(device, ScpiSourceMeter)
        assert device.identity.address == "visa:" + sim.endpoints["scpi"]


def test_visa_prefix_with_nothing_after_it_is_an_address_error() -> None:
    with pytest.raises(AddressError, match="nothing after 'visa:'"):
        open_device("visa:")


def test_a_malformed_visa_resource_is_an_address_error() -> None:
    with pytest.raises(AddressError, match="not a VISA resource name"):
        open_device("visa:no-such-interface::1")


def test_an_unreachable_instrument_raises_link_lost_naming_the_resource() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        resource = f"TCPIP::127.0.0.1::{s.getsockname()[1]}::SOCKET"
    with pytest.raises(LinkLost, match=resource):
        ScpiSourceMeter.open(resource, timeout_s=0.5)


# -- configuration and refusals ------------------------------------------------------------------------------


def test_configure_sets_the_compliance_and_a_fixed_current_range(meter: ScpiSourceMeter) -> None:
    meter.configure(DeviceLimits(**{**vars(LIMITS), "max_voltage_v": 30.0, "max_current_ma": 4.0}))
    assert float(ask(meter, ":SENS:VOLT:PROT?")) == 30.0
    assert float(ask(meter, ":SOUR:CURR:RANG?")) == pytest.approx(1.05e-2)  # the 10 mA range holds 4 mA
    assert ask(meter, ":SOUR:CURR:RANG:AUTO?") == "0"


def test_configure_beyond_the_instrument_is_refused(meter: ScpiSourceMeter) -> None:
    with pytest.raises(CommandRefused) as refused:
        meter.configure(DeviceLimits(**{**vars(LIMITS), "max_current_ma": 200.0}))
    assert refused.value.result == "limit_exceeded"


def test_start_above_the_configured_max_current_is_refused_and_nothing_flows(meter: ScpiSourceMeter) -> None:
    armed(meter)
    with pytest.raises(CommandRefused) as refused:
        meter.start(LIMITS.max_current_ma + 0.1, 1.0)
    assert refused.value.result == "limit_exceeded"
    assert ask(meter, ":OUTP?") == "0"
    assert meter.read_telemetry(0.5)[-1].state is OutputState.ARMED


def test_set_target_above_the_configured_max_current_is_refused(meter: ScpiSourceMeter) -> None:
    running(armed(meter))
    with pytest.raises(CommandRefused) as refused:
        meter.set_target(LIMITS.max_current_ma + 0.1, 1.0)
    assert refused.value.result == "limit_exceeded"
    assert float(ask(meter, ":SOUR:CURR?")) == pytest.approx(1e-3)


def test_polarity_change_is_refused_while_the_output_is_on(meter: ScpiSourceMeter) -> None:
    running(armed(meter, Polarity.ANODE))
    with pytest.raises(CommandRefused) as refused:
        meter.set_polarity(Polarity.CATHODE)
    assert refused.value.result == "bad_state"
    assert meter.read_telemetry(0.5)[-1].polarity is Polarity.ANODE


def test_cathode_polarity_is_a_negative_source_current(meter: ScpiSourceMeter) -> None:
    samples = running(armed(meter, Polarity.CATHODE))
    assert float(ask(meter, ":SOUR:CURR?")) == pytest.approx(-1e-3)
    assert samples[-1].measured_ma == pytest.approx(1.0, rel=0.05)  # reported as a magnitude


# -- the software ramp ---------------------------------------------------------------------------------------


def test_ramp_up_reaches_the_target_in_bounded_monotonic_steps(meter: ScpiSourceMeter) -> None:
    armed(meter)
    time.sleep(0.1)  # 2 device s between arming and starting, as while a technician checks the electrodes
    samples = running(meter, target_ma=1.0, ramp_s=2.0)
    set_points = [t.set_ma for t in samples]
    assert set_points == sorted(set_points)
    assert_bounded_steps(samples)
    first, second = samples[:2]  # no jump at the start: the clock of the ramp starts with the first reading
    assert second.set_ma - first.set_ma <= 0.5 * (second.t_s - first.t_s) + 1e-6
    assert samples[-1].set_ma == 1.0 and samples[-1].output_on
    assert samples[-1].measured_ma == pytest.approx(1.0, rel=0.05)
    assert_took(samples[-1].t_s - samples[0].t_s, 2.0)


def test_sparse_samples_cap_each_step_and_slow_the_ramp_rather_than_jump(sim: SimProcess) -> None:
    with connect(sim, sample_interval_s=0.025) as m:  # 0.5 device s apart: 0.5 mA per sample at 1 mA/s
        samples = running(armed(m), target_ma=1.0, ramp_s=1.0)
    assert max(b.set_ma - a.set_ma for a, b in zip(samples, samples[1:], strict=False)) == pytest.approx(MAX_STEP)
    assert samples[-1].t_s - samples[0].t_s >= 1.0 / MAX_STEP * 0.45  # ten capped steps, 0.5 s apart


def test_stop_ramps_down_over_the_requested_time_and_opens_the_output(meter: ScpiSourceMeter) -> None:
    before = running(armed(meter))[-1]
    meter.stop(2.0)
    samples = poll_until(meter, lambda t: t.state is OutputState.DONE)
    set_points = [t.set_ma for t in samples]
    assert set_points == sorted(set_points, reverse=True)
    assert_bounded_steps([before, *samples])
    assert_took(samples[-1].t_s - before.t_s, 2.0)
    assert not samples[-1].output_on and ask(meter, ":OUTP?") == "0"
    after = meter.read_telemetry(0.5)[-1]
    assert (after.state, after.fault, after.set_ma) == (OutputState.DONE, FaultCode.NONE, 0.0)


def test_abort_ramps_down_at_max_slew_and_opens_the_output_before_returning(meter: ScpiSourceMeter) -> None:
    before = running(armed(meter), target_ma=2.0)[-1]
    meter.abort()
    assert ask(meter, ":OUTP?") == "0"
    samples = meter.read_telemetry(0.5)  # what abort sampled on its way down
    assert_bounded_steps([before, *samples])
    assert samples[-1].state is OutputState.DONE and not samples[-1].output_on
    assert_took(samples[-1].t_s - before.t_s, 2.0 / SLEW)


def test_output_off_opens_the_output_at_once_and_latches_output_cut(meter: ScpiSourceMeter) -> None:
    running(armed(meter), target_ma=2.0)
    meter.output_off()
    assert ask(meter, ":OUTP?") == "0"
    after = meter.read_telemetry(0.5)[-1]
    assert after.state is OutputState.FAULT and after.fault is FaultCode.OUTPUT_CUT and not after.output_on


# -- host-side safety ----------------------------------------------------------------------------------------


def test_open_circuit_latches_a_fault_and_cuts_the_output_at_once() -> None:
    with running_sim("--scpi-port", "0", "--time-scale", TIME_SCALE, *OPEN_LOAD) as sim, connect(sim) as meter:
        armed(meter, max_voltage_v=20.0).start(1.0, 1.0)
        samples = poll_until(meter, lambda t: t.state is OutputState.FAULT)
        assert samples[-1].fault is FaultCode.OPEN_CIRCUIT
        assert not samples[-1].output_on and ask(meter, ":OUTP?") == "0"
        assert samples[-1].t_s - samples[0].t_s < 1.0  # not a ramp down: off within the detection window


def test_dose_limit_latches_a_fault_and_ramps_to_zero_within_the_limit(meter: ScpiSourceMeter) -> None:
    armed(meter, max_dose_ma_min=0.1).start(1.0, 0.5)
    samples = poll_until(meter, lambda t: not t.output_on)
    assert (samples[-1].state, samples[-1].fault) == (OutputState.FAULT, FaultCode.DOSE_LIMIT)
    dose = sum(b.measured_ma * (b.t_s - a.t_s) for a, b in zip(samples, samples[1:], strict=False)) / 60
    assert 0.09 <= dose <= 0.1  # within the limit, and not stopped far short of it
    assert_bounded_steps(samples)


def test_duration_limit_latches_a_fault_and_ramps_to_zero_within_the_limit(meter: ScpiSourceMeter) -> None:
    armed(meter, max_duration_s=3.0).start(1.0, 0.5)
    samples = poll_until(meter, lambda t: not t.output_on)
    assert (samples[-1].state, samples[-1].fault) == (OutputState.FAULT, FaultCode.DURATION_LIMIT)
    assert 2.3 <= samples[-1].t_s - samples[0].t_s <= 3.0  # within the limit; short of it by a late sample or so


def test_clear_fault_after_the_ramp_down_returns_to_done(meter: ScpiSourceMeter) -> None:
    armed(meter, max_duration_s=1.0).start(0.5, 0.1)
    poll_until(meter, lambda t: not t.output_on)
    meter.clear_fault()
    assert (meter.read_telemetry(0.5)[-1].state, meter.read_telemetry(0.5)[-1].fault) == (
        OutputState.DONE,
        FaultCode.NONE,
    )


def test_reset_is_refused_in_fault_and_returns_a_cleared_source_to_idle(meter: ScpiSourceMeter) -> None:
    armed(meter, max_duration_s=1.0).start(0.5, 0.1)
    poll_until(meter, lambda t: not t.output_on)
    with pytest.raises(DeviceFault):
        meter.reset()
    meter.clear_fault()
    meter.reset()
    assert meter.read_telemetry(0.5)[-1].state is OutputState.IDLE
    with pytest.raises(CommandRefused):
        meter.arm()  # the limits are gone: configure first


# -- contact check -------------------------------------------------------------------------------------------


def test_check_contact_measures_the_load_and_leaves_the_output_off(meter: ScpiSourceMeter) -> None:
    meter.configure(LIMITS)
    reading = meter.check_contact(0.1, 0.1)
    assert reading.impedance_ohm == pytest.approx(20_300, rel=0.1)  # R_s + R_p of the "normal" load
    assert reading.current_ma == pytest.approx(0.1, rel=0.1)  # sensor noise: 2 µA + 0.2 %
    assert ask(meter, ":OUTP?") == "0"


def test_check_contact_on_an_open_circuit_reports_no_impedance() -> None:
    with running_sim("--scpi-port", "0", "--time-scale", TIME_SCALE, *OPEN_LOAD) as sim, connect(sim) as meter:
        meter.configure(DeviceLimits(**{**vars(LIMITS), "max_voltage_v": 20.0}))
        reading = meter.check_contact(0.1, 0.1)
        assert reading.impedance_ohm is None and reading.voltage_v == pytest.approx(20.0, rel=0.05)
        assert ask(meter, ":OUTP?") == "0"


# -- the link ------------------------------------------------------------------------------------------------


def _bare_sim() -> tuple[subprocess.Popen[str], str]:
    """A simulator this test may kill (running_sim requires a clean exit)."""
    process = subprocess.Popen([sys.executable, "-m", "sim", "--scpi-port", "0", "--time-scale", TIME_SCALE],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout is not None
    resource = process.stdout.readline().strip().split(": ", 1)[1]
    assert process.stdout.readline().strip() == "ready"
    return process, resource


def test_a_killed_instrument_raises_link_lost_naming_the_resource() -> None:
    process, resource = _bare_sim()
    try:
        meter = ScpiSourceMeter.open(resource, timeout_s=0.5, sample_interval_s=0.005)
        running(armed(meter))
        process.kill()
        process.wait()
        with pytest.raises(LinkLost, match=resource):
            poll_until(meter, lambda t: False, timeout_s=2.0)
        with pytest.raises(LinkLost):  # latched: no second wait for a dead link
            meter.read_telemetry(0.1)
        meter.close()  # does not raise
    finally:
        process.kill()
        process.wait()


def test_a_silent_instrument_raises_link_lost_after_the_timeout(sim: SimProcess) -> None:
    meter = connect(sim, timeout_s=0.3)
    try:
        running(armed(meter))
        os.kill(sim.process.pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(LinkLost, match=sim.endpoints["scpi"]):
            poll_until(meter, lambda t: False, timeout_s=2.0)
        assert time.monotonic() - started < 1.0
    finally:
        os.kill(sim.process.pid, signal.SIGCONT)
        meter.close()


def test_close_turns_a_running_output_off(sim: SimProcess) -> None:
    meter = connect(sim)
    running(armed(meter))
    meter.close()
    assert ask_raw(sim, ":OUTP?") == "0"
    assert float(ask_raw(sim, ":SOUR:CURR?")) == 0.0


def test_close_is_idempotent(sim: SimProcess) -> None:
    meter = connect(sim)
    meter.close()
    meter.close()
    assert ask_raw(sim, "*IDN?").startswith("KEITHLEY")  # the link was released


def test_the_pty_link_delivers_a_ramp_like_tcp(sim: SimProcess) -> None:
    resource = f"ASRL{sim.endpoints['scpi-serial']}::INSTR"
    with ScpiSourceMeter.open(resource, timeout_s=1.0, sample_interval_s=0.005) as m:
        meter = armed(m)
        samples = running(meter)
        meter.stop(1.0)
        samples += poll_until(meter, lambda t: t.state is OutputState.DONE)
        assert max(t.set_ma for t in samples) == 1.0 and not samples[-1].output_on
        assert_bounded_steps(samples)


def test_closing_one_meter_leaves_other_visa_resources_in_the_process_open(sim: SimProcess) -> None:
    # pyvisa shares one ResourceManager per backend; a driver that closed it would cut off every other
    # instrument this process talks to.
    with running_sim("--scpi-port", "0") as other_sim:
        other = connect(other_sim)
        try:
            connect(sim).close()
            assert other.identify().model.endswith("2400")
        finally:
            other.close()


# -- review: defects shown against the simulator -------------------------------------------------------------

SHORTED_LOAD = ("--rs", "50", "--rp", "50", "--cp", "0.001")  # the electrodes touch: ~100 Ω


def test_a_short_between_the_electrodes_latches_low_impedance_and_ramps_down() -> None:
    # The firmware device faults LOW_IMPEDANCE on a short (PROTOCOL.md §6.2); the SourceMeter cannot, so the
    # driver must, from the same `min_impedance_ohm` the session hands both.
    with running_sim("--scpi-port", "0", "--time-scale", TIME_SCALE, *SHORTED_LOAD) as sim, connect(sim) as meter:
        armed(meter).start(1.0, 0.5)
        samples = poll_until(meter, lambda t: not t.output_on, timeout_s=3.0)
        assert (samples[-1].state, samples[-1].fault) == (OutputState.FAULT, FaultCode.LOW_IMPEDANCE)
        assert_bounded_steps(samples)  # ramped down, not cut
        assert ask(meter, ":OUTP?") == "0"


def test_set_target_zero_pauses_at_zero_current_with_the_output_on_and_resumes(meter: ScpiSourceMeter) -> None:
    running(armed(meter))
    meter.set_target(0.0, 1.0)  # the session's pause (CurrentSource.set_target)
    paused = poll_until(meter, lambda t: t.set_ma == 0.0)[-1]
    assert (paused.state, paused.output_on, paused.fault) == (OutputState.RUNNING, True, FaultCode.NONE)
    assert ask(meter, ":OUTP?") == "1"
    meter.set_target(1.0, 1.0)
    resumed = poll_until(meter, lambda t: t.set_ma == 1.0)[-1]
    assert resumed.state is OutputState.RUNNING and resumed.output_on


@pytest.mark.parametrize("ramp_s", [float("nan"), float("inf"), -1.0])
def test_stop_with_a_ramp_time_that_is_not_a_finite_non_negative_number_is_refused(
    meter: ScpiSourceMeter, ramp_s: float
) -> None:
    running(armed(meter))
    with pytest.raises(CommandRefused) as refused:
        meter.stop(ramp_s)
    assert refused.value.result == "bad_argument"
    after = meter.read_telemetry(0.5)[-1]  # nothing changed: still running at the target
    assert (after.state, after.set_ma) == (OutputState.RUNNING, 1.0)
    meter.stop(0.5)  # and a good stop still ends the delivery
    poll_until(meter, lambda t: t.state is OutputState.DONE)
    assert ask(meter, ":OUTP?") == "0"

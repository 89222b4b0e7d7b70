"""The session's pure watch over ramps and telemetry (`ionctl.core.supervision`), case by case: time is data."""

from __future__ import annotations

import pytest

from ionctl.core.supervision import (
    RAMP_STALL_S,
    STALE_TELEMETRY_S,
    STUCK_LINK_MARGIN_S,
    STUCK_MARGIN_S,
    Descent,
    FreshnessWatch,
    HoldTimer,
    RampSupervisor,
)
from ionctl.core.vocabulary import ExitCode, Outcome, SessionFault, SessionState, fault_of
from ionctl.drivers.base import (
    AddressError,
    CommandRefused,
    DeviceError,
    DeviceFault,
    FaultCode,
    LinkLost,
    OutputState,
    Polarity,
    Telemetry,
    VersionMismatch,
)


def sample(t_s: float, *, set_ma: float = 0.0, measured_ma: float = 0.0, at_compliance: bool = False) -> Telemetry:
    return Telemetry(t_s=t_s, state=OutputState.RUNNING, fault=FaultCode.NONE, polarity=Polarity.CATHODE,
                     set_ma=set_ma, measured_ma=measured_ma, voltage_v=1.0, impedance_ohm=1000.0,
                     device_dose_ma_min=None, at_compliance=at_compliance, output_on=True, ramping=False)  # fmt: skip


# -- HoldTimer ---------------------------------------------------------------------------------------------

HOLDS = [
    # (hold_s, [(condition, t_s), ...], what update() says at each step)
    (1.0, [(True, 0.0), (True, 0.5), (True, 1.0)], [False, False, True]),
    (1.0, [(True, 0.0), (False, 0.5), (True, 0.6), (True, 1.5)], [False, False, False, False]),  # broken: restarts
    (1.0, [(True, 5.0), (True, 1.0), (True, 1.9), (True, 2.0)], [False, False, False, True]),  # clock reset
    (0.0, [(True, 3.0)], [True]),  # no hold: at once
    (1.0, [(False, 0.0), (False, 9.0)], [False, False]),
]


@pytest.mark.parametrize(("hold_s", "steps", "expected"), HOLDS)
def test_a_hold_timer_counts_a_condition_once_it_held_long_enough(
    hold_s: float, steps: list[tuple[bool, float]], expected: list[bool]
) -> None:
    timer = HoldTimer(hold_s)
    assert [timer.update(condition, t_s) for condition, t_s in steps] == expected


def test_a_hold_timer_tolerance_absorbs_sums_of_device_steps() -> None:
    strict, tolerant = HoldTimer(0.1), HoldTimer(0.1, tolerance_s=1e-9)
    for timer in (strict, tolerant):
        timer.update(True, 0.2)
    assert 0.3 - 0.2 < 0.1  # the float sum the tolerance is for
    assert (strict.update(True, 0.3), tolerant.update(True, 0.3)) == (False, True)


def test_a_reset_hold_timer_starts_over() -> None:
    timer = HoldTimer(1.0)
    timer.update(True, 0.0)
    timer.reset()
    assert not timer.update(True, 1.0)
    assert timer.update(True, 2.0)


# -- FreshnessWatch ----------------------------------------------------------------------------------------

FRESHNESS = [
    # (reads: (previous device t, device times read, host s), host s asked, stale?)
    ([(1.0, [1.0], 0.0)], STALE_TELEMETRY_S - 0.01, False),
    ([(1.0, [1.0], 0.0)], STALE_TELEMETRY_S, True),
    ([(1.0, [], 0.0)], STALE_TELEMETRY_S, True),  # reads that bring nothing at all
    ([(1.0, [1.0], 0.0), (1.0, [1.1], 2.0)], 10.0, False),  # a new device time makes it fresh again
    ([(1.0, [1.0], 0.0), (1.0, [1.0], 2.0)], STALE_TELEMETRY_S, True),  # since the first stale read
    ([(None, [0.0], 0.0)], 10.0, False),  # the first sample is new
]


@pytest.mark.parametrize(("reads", "host_s", "stale"), FRESHNESS)
def test_telemetry_is_stale_after_reads_without_a_new_device_time(
    reads: list[tuple[float | None, list[float], float]], host_s: float, stale: bool
) -> None:
    watch = FreshnessWatch()
    for previous, times, at in reads:
        watch.observe(previous, times, at)
    assert watch.stale(host_s) is stale


def test_a_reset_freshness_watch_is_fresh() -> None:
    watch = FreshnessWatch()
    watch.observe(1.0, [], 0.0)
    watch.reset()
    assert not watch.stale(100.0)


# -- RampSupervisor: a ramp to zero -------------------------------------------------------------------------


def ramp_down(from_ma: float = 2.0, ramp_s: float = 10.0, t_s: float = 100.0, host_s: float = 50.0) -> RampSupervisor:
    ramp = RampSupervisor(prescribed_ma=2.0, mismatch_fraction=0.1, mismatch_floor_ma=0.05)
    ramp.expect_zero_within(ramp_s, sample(t_s, set_ma=from_ma, measured_ma=from_ma), host_s)
    return ramp


END_T = 100.0 + 10.0 + STUCK_MARGIN_S
END_HOST = 50.0 + STUCK_LINK_MARGIN_S
DEADLINE_HOST = END_HOST + 10.0 + STUCK_MARGIN_S

OVERDUE = [
    # (device t of the sample, host s, stale telemetry, overdue?)
    (END_T - 0.1, 1000.0, False, False),  # device time not yet there
    (END_T, END_HOST - 0.1, False, False),  # the command's way to the device is still allowed
    (END_T, END_HOST, False, True),
    (0.0, DEADLINE_HOST - 0.1, True, False),  # the device's clock stopped: the host's supervises
    (0.0, DEADLINE_HOST, True, True),
]


@pytest.mark.parametrize(("t_s", "host_s", "stale", "overdue"), OVERDUE)
def test_a_ramp_to_zero_is_overdue_by_device_time_and_link_margin_or_by_host_time_once_stale(
    t_s: float, host_s: float, stale: bool, overdue: bool
) -> None:
    assert ramp_down().overdue(sample(t_s, measured_ma=1.0), host_s, stale=stale) is overdue


LAGGING = [
    # (device t, measured mA, host s, lagging?); from 2 mA over 10 s, 1 s lag allowed, tolerance 0.2 mA
    (101.0, 2.0, 60.0, False),  # within the lag allowed
    (106.0, 1.2, 60.0, False),  # course 1.0 mA at 5 s in: within tolerance
    (106.0, 1.3, 60.0, True),
    (106.0, 1.3, END_HOST - 0.01, False),  # before the link margin: not judged
    (120.0, 0.19, 60.0, False),  # course 0 after the end: the tolerance still holds
]


@pytest.mark.parametrize(("t_s", "measured_ma", "host_s", "lagging"), LAGGING)
def test_a_ramp_to_zero_lags_when_the_current_is_above_its_course_beyond_tolerance(
    t_s: float, measured_ma: float, host_s: float, lagging: bool
) -> None:
    assert ramp_down().lagging(sample(t_s, measured_ma=measured_ma), host_s) is lagging


def test_a_faster_ramp_ordered_during_a_slower_keeps_the_slower_course_and_a_new_end() -> None:
    ramp = ramp_down(ramp_s=10.0)
    ramp.expect_zero_within(0.0, sample(103.0, set_ma=1.4, measured_ma=1.4), 53.0)
    assert ramp.descent == Descent(100.0, 2.0, 10.0)
    assert ramp.end_t_s == 103.0 + STUCK_MARGIN_S


def test_a_cancelled_ramp_to_zero_is_neither_overdue_nor_lagging() -> None:
    ramp = ramp_down()
    ramp.cancel_descent()
    assert not ramp.expecting_zero
    assert not ramp.overdue(sample(1e6, measured_ma=2.0), 1e6, stale=True)
    assert not ramp.lagging(sample(1e6, measured_ma=2.0), 1e6)


# -- RampSupervisor: a ramp up -----------------------------------------------------------------------------

STALLS = [
    # (set points at device times, ramping up, stalled at the last?)
    ([(0.0, 0.5), (RAMP_STALL_S, 0.5)], True, True),
    ([(0.0, 0.5), (RAMP_STALL_S - 0.1, 0.5)], True, False),
    ([(0.0, 0.5), (1.5, 0.6), (RAMP_STALL_S, 0.6)], True, False),  # it rose meanwhile
    ([(0.0, 0.5), (RAMP_STALL_S, 0.5)], False, False),  # not ramping up
    ([(0.0, 2.0), (RAMP_STALL_S, 2.0)], True, False),  # at the prescribed current
    ([(0.0, 0.5), (RAMP_STALL_S, 0.5002)], True, True),  # below the set point's resolution is no rise
]


@pytest.mark.parametrize(("points", "ramping_up", "stalled"), STALLS)
def test_a_ramp_up_stalls_when_its_set_point_stops_rising_below_the_prescription(
    points: list[tuple[float, float]], ramping_up: bool, stalled: bool
) -> None:
    ramp = RampSupervisor(prescribed_ma=2.0, mismatch_fraction=0.1, mismatch_floor_ma=0.05)
    said = [ramp.stalled(sample(t, set_ma=ma), ramping_up=ramping_up, telemetry_period_s=0.1) for t, ma in points]
    assert said[-1] is stalled and not any(said[:-1])


def test_a_ramp_up_at_compliance_never_stalls() -> None:
    ramp = RampSupervisor(prescribed_ma=2.0, mismatch_fraction=0.1, mismatch_floor_ma=0.05)
    for t in (0.0, 10.0, 20.0):
        assert not ramp.stalled(sample(t, set_ma=0.5, at_compliance=True), ramping_up=True, telemetry_period_s=0.1)


def test_a_stall_is_reported_once_and_the_watch_starts_over() -> None:
    ramp = RampSupervisor(prescribed_ma=2.0, mismatch_fraction=0.1, mismatch_floor_ma=0.05)
    ramp.stalled(sample(0.0, set_ma=0.5), ramping_up=True, telemetry_period_s=0.1)
    assert ramp.stalled(sample(RAMP_STALL_S, set_ma=0.5), ramping_up=True, telemetry_period_s=0.1)
    assert not ramp.stalled(sample(RAMP_STALL_S + 0.1, set_ma=0.5), ramping_up=True, telemetry_period_s=0.1)


def test_a_slow_telemetry_stretches_the_stall_window_to_three_periods() -> None:
    ramp = RampSupervisor(prescribed_ma=2.0, mismatch_fraction=0.1, mismatch_floor_ma=0.05)
    ramp.stalled(sample(0.0, set_ma=0.5), ramping_up=True, telemetry_period_s=2.0)
    assert not ramp.stalled(sample(5.9, set_ma=0.5), ramping_up=True, telemetry_period_s=2.0)
    assert ramp.stalled(sample(6.0, set_ma=0.5), ramping_up=True, telemetry_period_s=2.0)


# -- the vocabulary ----------------------------------------------------------------------------------------

FAULTS = [
    (DeviceFault(FaultCode.OVERCURRENT), "overcurrent"),
    (LinkLost("gone"), SessionFault.LINK_LOST),
    (VersionMismatch("v2"), SessionFault.VERSION_MISMATCH),
    (AddressError("nowhere"), SessionFault.DEVICE_ERROR),
    (CommandRefused("START", "bad_state"), SessionFault.DEVICE_ERROR),
    (DeviceError("odd reply"), SessionFault.DEVICE_ERROR),
    (RuntimeError("bug"), SessionFault.INTERNAL),
    (KeyError("x"), SessionFault.INTERNAL),
]


@pytest.mark.parametrize(("exc", "code"), FAULTS)
def test_every_exception_has_a_named_fault_code_never_its_class_name(exc: BaseException, code: str) -> None:
    assert fault_of(exc) == code
    assert type(exc).__name__ not in fault_of(exc)


def test_the_vocabulary_compares_equal_to_the_strings_records_hold() -> None:
    assert SessionState.RAMPING_UP == "ramping_up" and Outcome.RECORD_FAILED == "record_failed"
    assert f"{SessionFault.STUCK_OUTPUT}" == "stuck_output"
    assert ExitCode.FAULT == 3

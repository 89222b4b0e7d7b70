"""Dose accounting, pure: integrate measured current on the device clock, and decide when to ramp down.

Dose is measured, not assumed (docs/ARCHITECTURE.md, principle 5): `DoseMeter` integrates the *measured* current of
each `Telemetry` sample over the *device's* clock (`t_s`) with the trapezoid rule. It never reads a clock;
time arrives in the samples.

- A sample whose `t_s` is below the previous one means the device's clock restarted (a reboot): the meter
  does not integrate across it, records a `ClockReset`, and carries the device's coulomb counter over.
- A gap longer than `max_gap_s` between samples (lost telemetry) is still integrated (the trapezoid is the
  best estimate there is) but recorded as a `Gap`, so the session can decide whether to trust it.

Ramp-down (`should_begin_ramp_down`): a linear ramp from I to 0 over T delivers I·T/2. Begin it when the
measured dose, plus what the ramp-down will still deliver, plus what flows before the ramp actually
starts (`lookahead_s`), reaches the prescription. Decisions happen only at samples, so the ramp starts up
to one telemetry period P away from the ideal moment; `lookahead_s`:

- `= P` (the conservative rule): never overshoots by more than the command latency's dose, undershoots by
  up to one period's dose (I·P);
- `= P/2 + latency` (`centred_lookahead_s`): the error is centred, at most half a period's dose (I·P/2).

At 10 mA and P = 250 ms one period is 0.042 mA·min: 0.8 % of a 5 mA·min dose, so either rule meets ±1 %
(tests/test_dose.py proves it over random sessions); the centred rule has twice the margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ionctl.drivers.base import Telemetry

#: A gap between samples longer than this (device seconds) is flagged; the session may pass its own bound,
#: e.g. a few telemetry periods.
DEFAULT_MAX_GAP_S = 1.0


@dataclass(frozen=True)
class ClockReset:
    """The device clock went backwards between two samples (a reboot): nothing integrated across it."""

    before_t_s: float
    after_t_s: float
    device_dose_before_ma_min: float | None  # the counter's last value before the reset


@dataclass(frozen=True)
class Gap:
    """No sample for longer than the meter's bound; integrated all the same."""

    start_t_s: float
    end_t_s: float

    @property
    def length_s(self) -> float:
        return self.end_t_s - self.start_t_s


class DoseMeter:
    """Integrates measured current over device time, one `Telemetry` sample at a time (`add`)."""

    def __init__(self, *, max_gap_s: float = DEFAULT_MAX_GAP_S) -> None:
        if not (math.isfinite(max_gap_s) and max_gap_s > 0):
            raise ValueError(f"max_gap_s must be a positive finite number, got {max_gap_s!r}")
        self.max_gap_s = max_gap_s
        self.delivered_ma_min = 0.0  # host-integrated dose, every interval since the first sample
        self.peak_current_ma = 0.0  # highest measured current seen
        self.time_at_compliance_s = 0.0  # total device time at compliance (an interval counts if it began so)
        self.compliance_streak_s = 0.0  # device time continuously at compliance up to the last sample
        self.integrated_s = 0.0  # device time covered by integrated intervals
        self.samples = 0
        self.last: Telemetry | None = None
        self.clock_resets: list[ClockReset] = []
        self.gaps: list[Gap] = []
        self._device_dose_carried_ma_min = 0.0  # device counter values from before clock resets

    def add(self, sample: Telemetry) -> None:
        """Account for one sample (oldest first). ValueError for a non-finite time or current."""
        if not (math.isfinite(sample.t_s) and math.isfinite(sample.measured_ma)):
            raise ValueError(f"telemetry with a non-finite time or current: t_s={sample.t_s}, {sample.measured_ma} mA")
        previous, self.last = self.last, sample
        self.samples += 1
        self.peak_current_ma = max(self.peak_current_ma, abs(sample.measured_ma))
        if previous is None:
            return
        dt_s = sample.t_s - previous.t_s
        if dt_s < 0:
            self._clock_reset(previous, sample)
            return
        if dt_s > self.max_gap_s:
            self.gaps.append(Gap(previous.t_s, sample.t_s))
        self.delivered_ma_min += (abs(previous.measured_ma) + abs(sample.measured_ma)) / 2 * dt_s / 60
        self.integrated_s += dt_s
        if previous.at_compliance:
            self.time_at_compliance_s += dt_s
            self.compliance_streak_s += dt_s
        if not sample.at_compliance:
            self.compliance_streak_s = 0.0

    def _clock_reset(self, previous: Telemetry, sample: Telemetry) -> None:
        self.clock_resets.append(ClockReset(previous.t_s, sample.t_s, previous.device_dose_ma_min))
        self._device_dose_carried_ma_min += previous.device_dose_ma_min or 0.0
        self.compliance_streak_s = 0.0

    @property
    def device_dose_ma_min(self) -> float | None:
        """The device's coulomb counter as of the last sample, plus what it counted before any reboot;
        None if the source has no counter."""
        if self.last is None or self.last.device_dose_ma_min is None:
            return None
        return self._device_dose_carried_ma_min + self.last.device_dose_ma_min


# -- the ramp-down decision --------------------------------------------------------------------------------


def ramp_down_dose_ma_min(current_ma: float, ramp_down_s: float) -> float:
    """Dose a linear ramp from `current_ma` to zero over `ramp_down_s` delivers: I·T/2."""
    return current_ma * ramp_down_s / 2 / 60


def centred_lookahead_s(telemetry_period_s: float, command_latency_s: float = 0.0) -> float:
    """The lookahead that centres the ramp-down error: half a telemetry period plus the time from a sample
    to the device acting on the ramp-down command (module docstring)."""
    return telemetry_period_s / 2 + command_latency_s


def should_begin_ramp_down(
    delivered_ma_min: float, current_ma: float, ramp_down_s: float, prescribed_ma_min: float, lookahead_s: float
) -> bool:
    """True when `delivered_ma_min` + the ramp-down's dose + `current_ma` × `lookahead_s` reaches the
    prescription. `current_ma`: the current the ramp starts from, i.e. the sample's set point, or the
    measured current when at compliance (the set point is not reached then)."""
    projected_ma_min = delivered_ma_min + ramp_down_dose_ma_min(current_ma, ramp_down_s) + current_ma * lookahead_s / 60
    return projected_ma_min >= prescribed_ma_min


def remaining_time_s(delivered_ma_min: float, current_ma: float, ramp_down_s: float, prescribed_ma_min: float) -> float:
    """Device seconds until the session ends if `current_ma` holds, ramp-down included, for a progress
    display; infinite with no current flowing (paused, or not yet started). Once the ramp-down is due this
    is just `ramp_down_s` (the session knows how far into it it is)."""
    if current_ma <= 0:
        return math.inf
    hold_ma_min = prescribed_ma_min - delivered_ma_min - ramp_down_dose_ma_min(current_ma, ramp_down_s)
    return max(hold_ma_min, 0.0) * 60 / current_ma + ramp_down_s


#: A completed session delivers the prescribed dose within this fraction (issue: ±1 % of what flowed).
DOSE_TOLERANCE = 0.01


def dose_overshoot(delivered_ma_min: float, device_ma_min: float | None, planned_ma_min: float,
                   mismatch_fraction: float) -> str | None:  # fmt: skip
    """Why a delivery that ended above the prescription by more than the site's `dose_mismatch_fraction` is not a
    completion, or None (link latency delays both the samples the ramp-down is decided on and the STOP itself).
    The floor (dose_mismatch_floor_ma_min) is left out: it absorbs counter noise for the mismatch monitor, and
    with it the device's own dose cap (planned + max(fraction, floor)) would be the only bound on small doses."""
    allowed = planned_ma_min * mismatch_fraction
    if delivered_ma_min <= planned_ma_min + allowed:
        return None
    counted = f"{device_ma_min:.3f} mA·min" if device_ma_min is not None else "not counted"
    return (
        f"dose overshoot: delivered {delivered_ma_min:.3f} mA·min (host), device counter {counted}, prescribed "
        f"{planned_ma_min:.3f} mA·min: more than {allowed:.3f} mA·min over (dose_mismatch_fraction)"
    )


def dose_shortfall(delivered_ma_min: float, planned_ma_min: float) -> str | None:
    """Why a ramp-down that ended with the dose short by more than `DOSE_TOLERANCE` is not a completion, or
    None: the device ended it early (an electrode lifted during the ramp-down lets the set point fall with the
    current). An operator's stop is short by intent: the caller does not ask."""
    if delivered_ma_min >= planned_ma_min * (1 - DOSE_TOLERANCE):
        return None
    return (
        f"the ramp-down ended early: delivered {delivered_ma_min:.2f} of {planned_ma_min:.2f} mA·min "
        "(open circuit or compliance during the ramp-down?); check the electrodes"
    )

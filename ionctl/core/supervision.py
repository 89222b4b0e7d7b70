"""The session's watch over the device's ramps and its telemetry, pure: time arrives as arguments.

Two clocks, never mixed (docs/ARCHITECTURE.md, the clock rule): a ramp follows the *device's* clock
(`Telemetry.t_s`); the host's monotonic clock only allows for the link (a command's way to the device) and
takes over when the device's clock stops. So every method here takes the device time in its sample and the
host time as `host_s`, and nothing reads a clock.

- `HoldTimer`: a condition that must hold for some seconds before it counts (the runtime monitors, stale
  telemetry).
- `FreshnessWatch`: reads that bring no sample with a new device time, for `STALE_TELEMETRY_S` host seconds,
  make the telemetry stale.
- `RampSupervisor`: a commanded ramp to zero must follow its course and end in time (else the output is
  stuck), and a ramp up must keep rising (else it stalled). docs/SESSION.md describes both faults.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ionctl.drivers.base import Telemetry

#: Allowed beyond a ramp's nominal end before the current is called stuck: device seconds, and host seconds
#: for the command's way to the device (link time does not scale with a fast simulated clock).
STUCK_MARGIN_S = 2.0
STUCK_LINK_MARGIN_S = 0.5
#: Device seconds a ramp to zero may lag its nominal course (samples in flight, the skin's capacitance)
#: before a current still above that course counts as not falling.
DESCENT_LAG_S = 1.0
#: A ramp up whose set point has not risen for this many device seconds (or 3 telemetry periods, if longer)
#: while below the prescribed current and not at compliance has stalled: the device ignores its target (a stuck
#: output, or a resume it did not act on). 3 s is well above the slowest rise the limits allow to show (a
#: 0.1 mA ramp over 60 s rises 1 µA, the set point's resolution, every 0.6 s).
RAMP_STALL_S = 3.0
#: A rise of the set point smaller than this (mA) is not a rise (half the set point's 1 µA resolution).
RISE_MA = 5e-4
#: Host seconds of reads that bring no sample with a new device time (the device's clock stopped, or a source
#: that neither sends telemetry nor reports the link lost) before the telemetry counts as stale: a fault, and
#: from then on the host's clock supervises the ramp to zero.
STALE_TELEMETRY_S = 3.0


class HoldTimer:
    """A condition that counts once it has held for `hold_s` seconds, on whichever clock the caller gives.

    `tolerance_s` absorbs float sums (device times are sums of steps: 0.3 - 0.2 < 0.1). A time earlier than
    the condition's start (a device clock reset) restarts it there."""

    def __init__(self, hold_s: float, *, tolerance_s: float = 0.0) -> None:
        self.hold_s = hold_s
        self.tolerance_s = tolerance_s
        self.since: float | None = None  # when the condition began, or None while it does not hold

    def reset(self) -> None:
        self.since = None

    def update(self, condition: bool, t_s: float) -> bool:
        """Note the condition at `t_s`; True once it has held for `hold_s`."""
        if not condition:
            self.since = None
            return False
        if self.since is None or t_s < self.since:
            self.since = t_s
        return self.held(t_s)

    def held(self, t_s: float) -> bool:
        """Whether the condition, still holding at `t_s`, has held for `hold_s`."""
        return self.since is not None and t_s - self.since >= self.hold_s - self.tolerance_s


class FreshnessWatch:
    """Whether reads still bring samples with a new device time (host seconds)."""

    def __init__(self, stale_after_s: float = STALE_TELEMETRY_S) -> None:
        self._timer = HoldTimer(stale_after_s)

    def reset(self) -> None:
        self._timer.reset()

    def observe(self, previous_t_s: float | None, sample_t_s: Iterable[float], host_s: float) -> None:
        """One read: the device time of the last sample seen before it, those of the samples it brought."""
        self._timer.update(not any(t != previous_t_s for t in sample_t_s), host_s)

    def stale(self, host_s: float) -> bool:
        return self._timer.held(host_s)


@dataclass(frozen=True)
class Descent:
    """The course of a commanded ramp to zero: from `from_ma` at device time `t0_s`, over `ramp_s`."""

    t0_s: float
    from_ma: float
    ramp_s: float

    def course_ma(self, t_s: float) -> float | None:
        """Where the current should be at device time `t_s` (allowing DESCENT_LAG_S); None before that."""
        elapsed = t_s - self.t0_s - DESCENT_LAG_S
        if elapsed <= 0:
            return None
        return self.from_ma * max(0.0, 1 - elapsed / self.ramp_s) if self.ramp_s > 0 else 0.0


class RampSupervisor:
    """Watches the ramps a session commands: a ramp to zero that is overdue or behind its course (a stuck
    output), and a ramp up whose set point stopped rising (stalled).

    A falling current may be above its course by the site's current-mismatch tolerance (`mismatch_fraction` of
    where the ramp began, at least `mismatch_floor_ma`); `prescribed_ma` is where a ramp up ends."""

    def __init__(self, prescribed_ma: float, mismatch_fraction: float, mismatch_floor_ma: float) -> None:
        self.prescribed_ma = prescribed_ma
        self.mismatch_fraction = mismatch_fraction
        self.mismatch_floor_ma = mismatch_floor_ma
        self.end_t_s: float | None = None  # device time by which a commanded ramp to zero must be done
        self.end_host_s = 0.0  # and the host time before which it is not yet overdue
        self.deadline_host_s = 0.0  # and the host time by which it must be done, if the device clock stops
        self.descent: Descent | None = None  # the course of that ramp
        self._rise: tuple[float, float] | None = None  # (device t, set mA) of a ramp up's last rise

    def reset(self) -> None:
        """Nothing commanded is being watched (a new session, or a device found again after a link loss)."""
        self.cancel_descent()
        self._rise = None

    @property
    def expecting_zero(self) -> bool:
        """A ramp to zero was commanded and is being watched."""
        return self.end_t_s is not None

    def expect_zero_within(self, ramp_s: float, last: Telemetry | None, host_s: float) -> None:
        """A ramp to zero over `ramp_s` was just commanded, `last` the latest sample: it must follow its course
        and end by `ramp_s` + margin. A faster ramp ordered during a slower one keeps the slower's course."""
        now = last.t_s if last is not None else 0.0
        self.end_t_s = now + ramp_s + STUCK_MARGIN_S
        self.end_host_s = host_s + STUCK_LINK_MARGIN_S
        self.deadline_host_s = self.end_host_s + ramp_s + STUCK_MARGIN_S
        if self.descent is None:
            self.descent = Descent(now, max(last.set_ma, last.measured_ma) if last is not None else 0.0, ramp_s)

    def cancel_descent(self) -> None:
        """The ramp to zero is no longer expected (a resume, a restart, or its fault was acted on)."""
        self.end_t_s = None
        self.descent = None

    def overdue(self, s: Telemetry, host_s: float, *, stale: bool) -> bool:
        """The ramp to zero should have ended by `s`: by device time (and host time, for the link), or by host
        time alone once the telemetry is `stale` (the device's clock stopped)."""
        if self.end_t_s is None:
            return False
        if stale:
            return host_s >= self.deadline_host_s
        return s.t_s >= self.end_t_s and host_s >= self.end_host_s

    def lagging(self, s: Telemetry, host_s: float) -> bool:
        """The measured current is above the ramp's course (allowing DESCENT_LAG_S device seconds and
        STUCK_LINK_MARGIN_S host seconds for the command to arrive) by more than the mismatch tolerance."""
        if self.descent is None or host_s < self.end_host_s:
            return False
        course_ma = self.descent.course_ma(s.t_s)
        if course_ma is None:
            return False
        from_ma = self.descent.from_ma
        tolerance_ma = max(from_ma * self.mismatch_fraction, self.mismatch_floor_ma)
        return s.measured_ma > course_ma + tolerance_ma

    def stalled(self, s: Telemetry, *, ramping_up: bool, telemetry_period_s: float) -> bool:
        """While `ramping_up`, below the prescribed current and not at compliance (where the firmware holds its
        set point), the set point has not risen for `RAMP_STALL_S` device seconds (or 3 telemetry periods).
        A stall is reported once: the watch starts over after it."""
        if not ramping_up or s.at_compliance or s.set_ma >= self.prescribed_ma - 1e-3:
            self._rise = None
            return False
        if self._rise is None or s.set_ma > self._rise[1] + RISE_MA or s.t_s < self._rise[0]:
            self._rise = (s.t_s, s.set_ma)
            return False
        if s.t_s - self._rise[0] >= max(RAMP_STALL_S, 3 * telemetry_period_s):
            self._rise = None
            return True
        return False

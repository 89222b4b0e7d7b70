"""The host's runtime monitors, pure: one telemetry sample in, at most one `Verdict` out.

They are the host half of the two safety layers (docs/ARCHITECTURE.md, principle 3): the device enforces its own hard
limits; these cross-check it with the site's limits and tolerances, on the device's clock (`t_s`), so a
simulator running 50x fast meets the same conditions at the same device times.

| monitor | condition | action |
|---|---|---|
| device fault | the device reports FAULT | follow the device (it already cut or ramps) |
| open circuit | impedance above the running window, or at compliance with < 10 % of set | output off at once |
| short | impedance below the running window with current flowing | ramp to zero (abort) |
| compliance | at compliance for longer than `compliance_tolerance_s` | ramp to zero |
| overcurrent | measured above the prescription + tolerance for more than one telemetry period | ramp to zero |
| current mismatch | measured off the set point by more than the tolerance while holding, for 1 s | ramp to zero |
| dose mismatch | host-integrated and device-counted dose disagree beyond the tolerance | ramp to zero |

`device_disagreement` judges one sample against the session's state: the device reports the other polarity,
or stopped delivering on its own (both ramp to zero).

Open circuit is the one fault handled by a step (output off): there is no current to ramp, and a
returning contact must not meet a closed output (docs/ARCHITECTURE.md, principle 4; ActivaDose II "electrode reject").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ionctl.core.dose import DoseMeter
from ionctl.core.machine import EXPECTS_DELIVERY
from ionctl.core.supervision import HoldTimer
from ionctl.core.vocabulary import SessionFault, SessionState
from ionctl.drivers.base import ENERGISED as DEVICE_ENERGISED
from ionctl.drivers.base import FaultCode, OutputState, Polarity, Telemetry
from ionctl.safety import SiteLimits

#: Below this measured current, impedance and mismatch mean nothing (the firmware's 100 µA monitor floor).
FLOOR_MA = 0.1
#: How long (device s) a mismatch must hold before it is a fault: longer than the skin's RC settling.
MISMATCH_HOLD_S = 1.0
#: How long (device s) an open- or short-circuit reading must hold: a few samples, not one noisy one.
IMPEDANCE_HOLD_S = 0.2
#: Device times are sums of steps (0.3 - 0.2 < 0.1): a hold this close to its length has held.
HOLD_TOLERANCE_S = 1e-9


class Action(enum.Enum):
    FOLLOW = "follow"  # the device already acts (it latched the fault itself)
    RAMP = "ramp"  # abort: ramp to zero at the maximum slew
    OFF = "off"  # open the output at once


@dataclass(frozen=True)
class Verdict:
    fault: str  # a FaultCode value, or a host-only `SessionFault`
    action: Action
    message: str


class Monitors:
    """Hold timers and thresholds for one session. Call `check` once per sample, after the dose meter."""

    def __init__(self, limits: SiteLimits, prescribed_ma: float, telemetry_period_s: float) -> None:
        self.limits = limits
        self.prescribed_ma = prescribed_ma
        self.overcurrent_ma = prescribed_ma + self._tolerance_ma(prescribed_ma)
        self.overcurrent_hold_s = telemetry_period_s
        # device seconds each condition must hold (a clock reset restarts it); device times are sums of steps
        self._open = HoldTimer(IMPEDANCE_HOLD_S, tolerance_s=HOLD_TOLERANCE_S)
        self._short = HoldTimer(IMPEDANCE_HOLD_S, tolerance_s=HOLD_TOLERANCE_S)
        self._over = HoldTimer(self.overcurrent_hold_s, tolerance_s=HOLD_TOLERANCE_S)
        self._mismatch_held = HoldTimer(MISMATCH_HOLD_S, tolerance_s=HOLD_TOLERANCE_S)

    def _tolerance_ma(self, current_ma: float) -> float:
        return max(current_ma * self.limits.current_mismatch_fraction, self.limits.current_mismatch_floor_ma)

    def check(self, sample: Telemetry, meter: DoseMeter) -> Verdict | None:
        if sample.state is OutputState.FAULT:
            return Verdict(sample.fault.value, Action.FOLLOW, f"the device reports {sample.fault.value}")
        if not sample.output_on:
            for timer in (self._open, self._short, self._over, self._mismatch_held):
                timer.reset()
            return None
        return (
            self._impedance(sample)
            or self._compliance(sample, meter)
            or self._overcurrent(sample)
            or self._mismatch(sample)
            or self._dose_mismatch(meter)
        )

    def _impedance(self, s: Telemetry) -> Verdict | None:
        lim, t = self.limits, s.t_s
        high = s.impedance_ohm is not None and s.impedance_ohm > lim.max_running_impedance_ohm
        starved = s.at_compliance and s.set_ma >= FLOOR_MA and s.measured_ma < 0.1 * s.set_ma
        if self._open.update((high and s.set_ma >= FLOOR_MA) or starved, t):
            return Verdict(
                FaultCode.OPEN_CIRCUIT.value,
                Action.OFF,
                f"open circuit: impedance {_ohm(s.impedance_ohm)} above {lim.max_running_impedance_ohm:.0f} Ω "
                f"(max_running_impedance_ohm) or no current at compliance",
            )
        low = (
            s.impedance_ohm is not None
            and s.measured_ma >= FLOOR_MA
            and s.impedance_ohm < lim.min_running_impedance_ohm
        )
        if self._short.update(low, t):
            return Verdict(
                FaultCode.LOW_IMPEDANCE.value,
                Action.RAMP,
                f"short: impedance {_ohm(s.impedance_ohm)} below {lim.min_running_impedance_ohm:.0f} Ω "
                "(min_running_impedance_ohm)",
            )
        return None

    def _compliance(self, s: Telemetry, meter: DoseMeter) -> Verdict | None:
        if s.at_compliance and meter.compliance_streak_s > self.limits.compliance_tolerance_s:
            return Verdict(
                FaultCode.COMPLIANCE.value,
                Action.RAMP,
                f"at the compliance voltage for {meter.compliance_streak_s:.1f} s, longer than "
                f"{self.limits.compliance_tolerance_s:.0f} s (compliance_tolerance_s)",
            )
        return None

    def _overcurrent(self, s: Telemetry) -> Verdict | None:
        if self._over.update(s.measured_ma > self.overcurrent_ma, s.t_s):
            return Verdict(
                FaultCode.OVERCURRENT.value,
                Action.RAMP,
                f"measured {s.measured_ma:.2f} mA above the prescribed {self.prescribed_ma:.2f} mA plus tolerance "
                f"({self.overcurrent_ma:.2f} mA)",
            )
        return None

    def _mismatch(self, s: Telemetry) -> Verdict | None:
        holding = s.state is OutputState.RUNNING and not s.ramping and not s.at_compliance and s.set_ma >= FLOOR_MA
        off_by = abs(s.measured_ma - s.set_ma)
        if self._mismatch_held.update(holding and off_by > self._tolerance_ma(s.set_ma), s.t_s):
            return Verdict(
                FaultCode.CURRENT_MISMATCH.value,
                Action.RAMP,
                f"measured {s.measured_ma:.3f} mA against a set point of {s.set_ma:.3f} mA, off by more than "
                f"{self._tolerance_ma(s.set_ma):.3f} mA (current_mismatch_fraction/_floor_ma)",
            )
        return None

    def _dose_mismatch(self, meter: DoseMeter) -> Verdict | None:
        device = meter.device_dose_ma_min
        if device is None:
            return None
        host = meter.delivered_ma_min
        allowed = max(host * self.limits.dose_mismatch_fraction, self.limits.dose_mismatch_floor_ma_min)
        if abs(host - device) > allowed:
            return Verdict(
                SessionFault.DOSE_MISMATCH,
                Action.RAMP,
                f"host dose {host:.3f} mA·min and device dose {device:.3f} mA·min differ by more than "
                f"{allowed:.3f} mA·min (dose_mismatch_fraction/_floor_ma_min)",
            )
        return None


def device_disagreement(state: str, s: Telemetry, polarity: Polarity, *, judge_stop: bool) -> Verdict | None:
    """The device is not doing what the session, in `state`, expects of it: it reports a polarity other than the
    one this phase of the prescription set (a firmware or wiring fault: the drug would be driven back out), or it
    stopped delivering on its own while the session expects delivery (`EXPECTS_DELIVERY`). Both ramp to zero.

    Samples read in the same batch as the START that began this delivery phase are older than it (the device's
    DONE before a reversal's restart): the caller passes `judge_stop` False for them."""
    if state not in (*EXPECTS_DELIVERY, SessionState.RAMPING_DOWN):
        return None
    if s.output_on and s.polarity is not None and s.polarity is not polarity:
        return Verdict(SessionFault.POLARITY_MISMATCH, Action.RAMP,
                       f"the device reports {s.polarity.value} polarity, the prescription {polarity.value}: "
                       "ramping to zero")  # fmt: skip
    if state not in EXPECTS_DELIVERY or not judge_stop:
        return None
    if s.output_on and s.state in DEVICE_ENERGISED and s.state is not OutputState.RAMP_DOWN:
        return None
    output = "on" if s.output_on else "off"
    return Verdict(SessionFault.DEVICE_STOPPED, Action.RAMP,
                   f"the device stopped delivering on its own (state {s.state.value}, output {output}) while the "
                   f"session was {state}: a front-panel stop, the firmware ending the delivery, or another "
                   "program's STOP")  # fmt: skip


def _ohm(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0f} Ω"

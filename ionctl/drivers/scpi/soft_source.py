"""What a SourceMeter lacks, supplied on the host: the firmware's state machine, ramps, monitors and dose.

`SoftSource` is pure: it reads no clock and does no I/O of its own. Time arrives as the instrument's TIME in each
`Reading`; the level and the output reach the instrument through a `Port` the driver gives it (two calls: set a
signed level, switch the output), so the order of writes and what happens when one fails stay the driver's. It
mirrors `sim/firmware.py` and firmware_protocol/PROTOCOL.md §6–§7 (IDLE → ARMED → RAMP_UP → RUNNING → RAMP_DOWN →
DONE, FAULT latched with its first code), so the session cannot tell the two apart except by the identity's
capability flags.
"""

from __future__ import annotations

import math
from typing import Protocol

from ionctl.drivers.base import (
    CommandRefused,
    DeviceFault,
    DeviceIdentity,
    DeviceLimits,
    FaultCode,
    OutputState,
    Polarity,
    Telemetry,
)
from ionctl.drivers.scpi.dialect import Reading

S = OutputState

TIME_WRAP_S = 100_000.0  # the TIME element restarts from zero after 99,999.999 s
IMPEDANCE_FLOOR_MA = 0.05  # below this measured current V/I means nothing (as the firmware's 50 µA)
MONITOR_FLOOR_MA = 0.1  # the firmware's monitor floor: currents below it do not arm the monitors
OPEN_CIRCUIT_WINDOW_S = 0.1  # device seconds the open-circuit condition must hold (as PROTOCOL.md §6.2)
LOW_IMPEDANCE_WINDOW_S = 0.1  # ... and a short (impedance below the minimum), as the firmware's LOW_IMPEDANCE
PROBE_RANGE_MA = (0.05, 1.0)
PROBE_DURATION_S = (0.01, 1.0)
CUT_FAULTS = frozenset({FaultCode.OPEN_CIRCUIT, FaultCode.INTERNAL})  # output off at once; others ramp
ABORT_GUARD_S = 2.0  # host seconds beyond 1.5 × the ramp at max slew before an abort cuts the output


class Port(Protocol):
    """How the soft source reaches the instrument. Each call returns once the instrument executed it, or raises."""

    def level(self, signed_ma: float) -> None:
        """Set the source level (positive: out of Force HI)."""
        ...

    def output(self, on: bool) -> None:
        """Close or open the output relay."""
        ...


class SoftSource:
    """The host-side device layer of a SourceMeter (module docstring). One per connected instrument."""

    def __init__(self, port: Port, *, max_step_ma: float = 0.1) -> None:
        self._port = port
        self.max_step_ma = max_step_ma
        self.state = S.IDLE
        self.fault = FaultCode.NONE
        self.polarity: Polarity | None = None
        self.limits: DeviceLimits | None = None
        self.output_on = False
        self.set_ma = 0.0  # magnitude in force on the instrument
        self.target_ma = 0.0
        self.rate_ma_per_s = 0.0
        self.t_s = 0.0  # instrument time of the last reading, unwrapped
        self._t_offset_s = 0.0
        self._raw_t_s: float | None = None
        self._anchor = True  # the next reading starts a new dt (after the output was switched on)
        self.dose_ma_min = 0.0
        self.energised_s = 0.0
        self._since: dict[FaultCode, float] = {}

    # -- commands: checks and state -------------------------------------------------------------------------

    def require(self, command: str, states: set[OutputState]) -> None:
        """Refuse `command` outside `states`: a latched fault as `DeviceFault`, else `CommandRefused`."""
        if self.state not in states:
            if self.state is S.FAULT:
                raise DeviceFault(self.fault, f"{command} refused: the source is in FAULT ({self.fault.value})")
            raise CommandRefused(command, "bad_state", f"{command} refused in state {self.state.value}")

    def check_configure(self, limits: DeviceLimits, identity: DeviceIdentity) -> None:
        self.require("configure", {S.IDLE, S.ARMED, S.DONE})
        if limits.max_current_ma > identity.hw_max_current_ma or limits.max_voltage_v > identity.compliance_v:
            raise CommandRefused(
                "configure",
                "limit_exceeded",
                f"configure refused: {limits.max_current_ma} mA / {limits.max_voltage_v} V is beyond the "
                f"{identity.model}'s {identity.hw_max_current_ma} mA / {identity.compliance_v} V",
            )

    def configured(self, limits: DeviceLimits) -> None:
        """A new configuration restarts the dose and duration counters (the instrument has no session)."""
        self.limits = limits
        self.dose_ma_min = self.energised_s = 0.0
        self.state = S.IDLE

    def reset(self) -> None:
        """As the firmware's RESET: forget the limits, the polarity and the counters."""
        self.limits = None
        self.polarity = None
        self.dose_ma_min = self.energised_s = 0.0
        self.state = S.IDLE

    def set_polarity(self, polarity: Polarity) -> None:
        self.require("set_polarity", {S.IDLE, S.ARMED, S.DONE})
        self.polarity = polarity  # the sign is applied with the next non-zero level

    def arm(self) -> None:
        self.require("arm", {S.IDLE, S.ARMED, S.DONE})
        if self.limits is None or self.polarity is None:
            raise CommandRefused("arm", "not_configured", "arm refused: configure and set_polarity first")
        self.state = S.ARMED

    def check_probe(self, probe_ma: float, duration_s: float) -> None:
        self.require("check_contact", {S.IDLE, S.ARMED, S.DONE})
        limits = self.limits
        if limits is None:
            raise CommandRefused("check_contact", "not_configured", "check_contact refused: configure first")
        lo, hi = PROBE_RANGE_MA
        if not (lo <= probe_ma <= hi and PROBE_DURATION_S[0] <= duration_s <= PROBE_DURATION_S[1]):
            raise CommandRefused("check_contact", "bad_argument")
        if probe_ma > limits.max_current_ma:
            raise CommandRefused("check_contact", "limit_exceeded")

    def check_start(self, target_ma: float, ramp_s: float) -> None:
        self.require("start", {S.ARMED})
        limits = self._check_target("start", target_ma, ramp_s)
        if self.dose_ma_min >= limits.max_dose_ma_min or self.energised_s >= limits.max_duration_s:
            raise CommandRefused("start", "limit_exceeded", "start refused: the dose or duration limit is used up")

    def started(self, target_ma: float, ramp_s: float) -> None:
        """The output is on at zero: ramp to `target_ma`."""
        self.output_on, self._anchor = True, True
        self._since.clear()
        self.state = S.RAMP_UP
        self._ramp_to(target_ma, ramp_s)

    def set_target(self, target_ma: float, ramp_s: float) -> None:
        self.require("set_target", {S.RAMP_UP, S.RUNNING})
        self._check_target("set_target", target_ma, ramp_s, pause=True)
        self._ramp_to(target_ma, ramp_s)

    def stop(self, ramp_s: float) -> None:
        """Ramp to zero over `ramp_s` device seconds; the output opens when the ramp reaches zero (DONE)."""
        if not (math.isfinite(ramp_s) and ramp_s >= 0):  # NaN or inf would never bring the current down
            raise CommandRefused("stop", "bad_argument")
        if self.state in (S.RAMP_UP, S.RUNNING):
            self._ramp_to(0.0, ramp_s)
            self.state = S.RAMP_DOWN
        elif self.state is S.RAMP_DOWN:
            previous = self.rate_ma_per_s
            self._ramp_to(0.0, ramp_s)
            self.rate_ma_per_s = max(previous, self.rate_ma_per_s)

    def begin_abort(self) -> float | None:
        """Aim at zero at max slew. Returns the host seconds the ramp may take before the driver cuts the output
        (1.5 × the ramp at max slew, plus `ABORT_GUARD_S`), or None when the output is already off."""
        if not self.output_on:
            return None
        if self.state in (S.RAMP_UP, S.RUNNING):
            self.state = S.RAMP_DOWN
        self._ramp_to(0.0, 0.0)
        return 1.5 * self.set_ma / self._slew() + ABORT_GUARD_S

    def clear_fault(self) -> None:
        if self.state is not S.FAULT:
            raise CommandRefused("clear_fault", "bad_state")
        if self.output_on:
            raise CommandRefused("clear_fault", "busy", "clear_fault refused: the output is still ramping down")
        self.fault = FaultCode.NONE
        self.state = S.DONE

    def output_off(self) -> None:
        """Open the output now, as the firmware's OUTPUT_OFF: FAULT OUTPUT_CUT if it was on."""
        was_on = self.output_on
        self.cut()
        if was_on and self.state is not S.FAULT:
            self.fault, self.state = FaultCode.OUTPUT_CUT, S.FAULT

    def cut(self) -> None:
        """Output off at once and the level to zero (a step: only for CUT_FAULTS and as a last resort)."""
        self._port.output(False)
        self.output_on = False
        self._write_level(0.0)
        self.target_ma = 0.0
        if self.state is S.RAMP_DOWN:
            self.state = S.DONE

    def sign(self) -> float:
        return -1.0 if self.polarity is Polarity.CATHODE else 1.0

    def sample_interval_s(self, base_s: float) -> float:
        """Host seconds to the next sample: `base_s`, or less while ramping so that each step stays small."""
        if self.output_on and self.set_ma != self.target_ma:
            return min(base_s, self.max_step_ma / self.rate_ma_per_s)
        return base_s

    # -- samples --------------------------------------------------------------------------------------------

    def observe(self, reading: Reading) -> Telemetry:
        """One reading with the output on, acted on: dose, monitors, then the ramp's next step."""
        dt = self._clock(reading.time_s)
        in_force_ma = self.set_ma
        measured_ma, voltage_v = abs(reading.current_a) * 1000, abs(reading.voltage_v)
        at_compliance = reading.at_compliance
        self.dose_ma_min += measured_ma * dt / 60
        self.energised_s += dt
        self._monitor(dt, measured_ma, voltage_v, at_compliance)
        self._step(dt, measured_ma, at_compliance)
        impedance = voltage_v / measured_ma * 1000 if measured_ma >= IMPEDANCE_FLOOR_MA else None
        return self._telemetry(in_force_ma, measured_ma, voltage_v, impedance, at_compliance)

    def idle(self, reported_on: bool) -> Telemetry:
        """A sample with the output off (nothing to read). An output the instrument reports on that this source
        did not switch on is switched off and latched INTERNAL."""
        if reported_on:
            self._port.output(False)
            self.latch(FaultCode.INTERNAL)
        return self._telemetry(0.0, 0.0, 0.0, None, False)

    def latch(self, fault: FaultCode) -> None:
        """FAULT keeps its first code; the output ramps to zero at max slew, or is cut for CUT_FAULTS."""
        if self.state is not S.FAULT:
            self.fault, self.state = fault, S.FAULT
            self._ramp_to(0.0, 0.0)
        if fault in CUT_FAULTS:
            self.cut()

    def _telemetry(
        self, set_ma: float, measured_ma: float, voltage_v: float, impedance: float | None, at_compliance: bool
    ) -> Telemetry:
        # set_ma is the level in force when the reading was taken; state and output are after acting on it.
        return Telemetry(
            t_s=self.t_s,
            state=self.state,
            fault=self.fault,
            polarity=self.polarity,
            set_ma=set_ma,
            measured_ma=measured_ma,
            voltage_v=voltage_v,
            impedance_ohm=impedance,
            device_dose_ma_min=None,
            at_compliance=at_compliance,
            output_on=self.output_on,
            ramping=self.set_ma != self.target_ma,
        )

    def _clock(self, raw_s: float) -> float:
        """Unwrap the instrument TIME and return the device seconds since the previous reading."""
        if self._raw_t_s is not None and raw_s < self._raw_t_s - TIME_WRAP_S / 2:
            self._t_offset_s += TIME_WRAP_S
        self._raw_t_s = raw_s
        now = raw_s + self._t_offset_s
        dt = 0.0 if self._anchor else max(0.0, now - self.t_s)
        self.t_s, self._anchor = now, False
        return dt

    def _step(self, dt: float, measured_ma: float, at_compliance: bool) -> None:
        """Move the set point toward the target by rate·dt (at most max_step_ma); finish ramps."""
        target, present = self.target_ma, self.set_ma
        move = min(self.rate_ma_per_s * dt, self.max_step_ma)
        new = target if abs(target - present) <= move else present + math.copysign(move, target - present)
        if at_compliance:  # anti-windup (PROTOCOL.md §7.1): never run ahead of what the load accepts
            new = min(new, measured_ma + max(0.05 * target, MONITOR_FLOOR_MA))
        new = round(new, 9)  # no float residue: a ramp to zero ends at exactly zero
        if new != present:
            self._write_level(new)
        if self.state is S.RAMP_UP and self.set_ma == self.target_ma:
            self.state = S.RUNNING
        elif self.state in (S.RAMP_DOWN, S.FAULT) and self.output_on and self.set_ma == self.target_ma == 0.0:
            self._port.output(False)
            self.output_on = False
            if self.state is S.RAMP_DOWN:
                self.state = S.DONE

    def _monitor(self, dt: float, measured_ma: float, voltage_v: float, at_compliance: bool) -> None:
        """The firmware's host-enforceable monitors (PROTOCOL.md §6.2), on the instrument clock. Dose looks one
        sample interval (`dt`) ahead, duration two: the next reading may come too late to stop in time, and on a
        loaded host one may come a whole interval late (the host paces the readings; nothing on the instrument
        enforces the limit)."""
        limits = self.limits
        if limits is None or self.state is S.FAULT:
            return
        set_ma, target = self.set_ma, self.target_ma
        impedance = voltage_v / measured_ma * 1000 if measured_ma >= IMPEDANCE_FLOOR_MA else math.inf
        open_circuit = (
            set_ma >= MONITOR_FLOOR_MA and math.isfinite(impedance) and impedance > limits.max_impedance_ohm
        ) or (target >= MONITOR_FLOOR_MA and at_compliance and measured_ma < 0.1 * target)
        short = measured_ma >= MONITOR_FLOOR_MA and impedance < limits.min_impedance_ohm
        if self._held(FaultCode.OPEN_CIRCUIT, open_circuit, OPEN_CIRCUIT_WINDOW_S):
            self.latch(FaultCode.OPEN_CIRCUIT)
        elif self._held(FaultCode.LOW_IMPEDANCE, short, LOW_IMPEDANCE_WINDOW_S):
            self.latch(FaultCode.LOW_IMPEDANCE)
        elif self._held(FaultCode.COMPLIANCE, at_compliance, limits.compliance_timeout_s):
            self.latch(FaultCode.COMPLIANCE)
        else:  # count the ramp-down that stopping will still take: at max slew, or slower if samples are sparse
            slew = min(limits.max_slew_ma_per_s, self.max_step_ma / dt) if dt > 0 else limits.max_slew_ma_per_s
            if self.dose_ma_min + (measured_ma * dt + set_ma * set_ma / (2 * slew)) / 60 >= limits.max_dose_ma_min:
                self.latch(FaultCode.DOSE_LIMIT)
            elif self.energised_s + 2 * dt + set_ma / slew >= limits.max_duration_s:
                self.latch(FaultCode.DURATION_LIMIT)

    def _held(self, fault: FaultCode, condition: bool, window_s: float) -> bool:
        """True once `condition` has held on every reading for `window_s` device seconds."""
        if not condition:
            self._since.pop(fault, None)
            return False
        return self.t_s - self._since.setdefault(fault, self.t_s) >= window_s - 1e-9

    def _slew(self) -> float:
        return self.limits.max_slew_ma_per_s if self.limits else 1.0

    def _ramp_to(self, target_ma: float, ramp_s: float) -> None:
        """Aim at `target_ma` at |Δ|/ramp_s, never faster than max slew (as the firmware, §7.1)."""
        slew = self._slew()
        delta = abs(target_ma - self.set_ma)
        self.target_ma = target_ma
        self.rate_ma_per_s = min(delta / ramp_s, slew) if delta and ramp_s > 0 else slew

    def _write_level(self, magnitude_ma: float) -> None:
        self._port.level(self.sign() * magnitude_ma)
        self.set_ma = magnitude_ma

    def _check_target(self, command: str, target_ma: float, ramp_s: float, *, pause: bool = False) -> DeviceLimits:
        """`pause`: a target of 0 is legal (set_target's pause, as the firmware's SET_TARGET 0)."""
        limits = self.limits
        assert limits is not None  # ARMED and later imply configured
        lowest_ok = target_ma >= 0 if pause else target_ma > 0
        if not (lowest_ok and ramp_s >= 0 and math.isfinite(target_ma) and math.isfinite(ramp_s)):
            raise CommandRefused(command, "bad_argument")
        if target_ma > limits.max_current_ma:
            raise CommandRefused(
                command,
                "limit_exceeded",
                f"{command} refused: {target_ma} mA is above the configured maximum {limits.max_current_ma} mA",
            )
        return limits

"""The firmware's protection, in software: the checks CONFIGURE makes of the limits a host sets (PROTOCOL.md
§5.1), the monitors that latch a fault once their condition has held for its window, and the dose and
duration limits that end a delivery with its ramp down in hand (§6.2).

Pure functions of what `sim.firmware.Firmware` measures each step; the firmware's state machine decides what
a tripped monitor does (`FAULT_CUTS` there). All times are device seconds.
"""

from __future__ import annotations

import math

from firmware_protocol import Configure, Fault, Result

# Monitor thresholds and windows (PROTOCOL.md §6.2), device time.
OVERCURRENT_WINDOW_S = 0.010
OVERVOLTAGE_WINDOW_S = 0.010
OPEN_CIRCUIT_WINDOW_S = 0.100
LOW_IMPEDANCE_WINDOW_S = 0.100
MISMATCH_WINDOW_S = 0.500
STRAY_WINDOW_S = 0.100  # current through an output commanded open, before INTERNAL latches
IMPEDANCE_FLOOR_UA = 50  # below this measured current, impedance is not measurable
MONITOR_FLOOR_UA = 100


def configure_result(m: Configure, *, hw_max_current_ua: int, hw_compliance_mv: int) -> Result:
    """CONFIGURE's answer: the first failing check, in PROTOCOL.md §5.1's documented order, or OK."""
    checks = (
        (m.max_current_ua == 0, Result.BAD_ARGUMENT),
        (m.max_current_ua > hw_max_current_ua, Result.LIMIT_EXCEEDED),
        (not 1 <= m.max_slew_ua_per_s <= 100_000, Result.BAD_ARGUMENT),
        (m.max_dose_uas < 1, Result.BAD_ARGUMENT),
        (m.max_voltage_mv == 0, Result.BAD_ARGUMENT),
        (m.max_voltage_mv > hw_compliance_mv, Result.LIMIT_EXCEEDED),
        (m.max_duration_ms < 1, Result.BAD_ARGUMENT),
        (m.min_impedance_ohm >= m.max_impedance_ohm, Result.BAD_ARGUMENT),
        (m.area_mm2 < 1, Result.BAD_ARGUMENT),
        (not 100 <= m.watchdog_ms <= 10_000, Result.BAD_ARGUMENT),
    )
    return next((result for failed, result in checks if failed), Result.OK)


def limit_reached(limits: Configure, *, dose_uas: float, energised_s: float, set_ua: float) -> Fault | None:
    """DOSE_LIMIT or DURATION_LIMIT once a ramp down at the maximum slew, started now, would reach the limit
    (so the limit itself is never passed), else None."""
    slew = limits.max_slew_ua_per_s
    if dose_uas + set_ua * set_ua / (2 * slew) >= limits.max_dose_uas:
        return Fault.DOSE_LIMIT
    if (energised_s + set_ua / slew) * 1000 >= limits.max_duration_ms:
        return Fault.DURATION_LIMIT
    return None


class Monitors:
    """The windowed monitors: each fault's condition must hold continuously for its window to trip it."""

    def __init__(self) -> None:
        self._since: dict[Fault, float] = {}  # fault -> device time its condition began to hold

    def clear(self) -> None:
        """Forget every open window (a new delivery starts)."""
        self._since.clear()

    def _held(self, fault: Fault, condition: bool, window_s: float, t: float) -> bool:
        """True once `condition` has held continuously for `window_s` of device time up to `t`."""
        if not condition:
            self._since.pop(fault, None)
            return False
        start = self._since.setdefault(fault, t)
        return t - start >= window_s - 1e-9

    def stray(self, t: float, measured_ua: float, *, probing: bool) -> bool:
        """With the output commanded open: True once current has flowed through it for STRAY_WINDOW_S
        (INTERNAL). A contact probe's current is not stray."""
        stray = not probing and abs(measured_ua) >= MONITOR_FLOOR_UA
        return (stray or Fault.INTERNAL in self._since) and self._held(Fault.INTERNAL, stray, STRAY_WINDOW_S, t)

    def tripped(
        self,
        t: float,
        limits: Configure,
        *,
        measured_ua: float,
        output_mv: float,
        set_ua: float,
        target_ua: float,
        at_compliance: bool,
    ) -> list[Fault]:
        """The faults whose windows have run out at `t`, in the order they are latched, while energised."""
        meas = abs(measured_ua)
        impedance = abs(output_mv) * 1000 / meas if meas >= IMPEDANCE_FLOOR_UA else math.inf
        # max_current_ua never exceeds the hardware maximum (CONFIGURE refuses it), so one bound covers both.
        over = limits.max_current_ua + max(0.05 * limits.max_current_ua, MONITOR_FLOOR_UA)
        overcurrent = meas > over
        overvoltage = abs(output_mv) > limits.max_voltage_mv * 1.05
        open_circuit = (
            set_ua >= MONITOR_FLOOR_UA and impedance != math.inf and impedance > limits.max_impedance_ohm
        ) or (target_ua >= MONITOR_FLOOR_UA and at_compliance and meas < 0.1 * target_ua)
        low_impedance = meas >= MONITOR_FLOOR_UA and impedance < limits.min_impedance_ohm
        mismatch = not at_compliance and abs(meas - set_ua) > max(0.05 * set_ua, MONITOR_FLOOR_UA)
        compliance = limits.compliance_timeout_ms > 0 and at_compliance
        since = self._since
        # Most steps: no condition holds and no window is open, so there is nothing to look at.
        if not (since or overcurrent or overvoltage or open_circuit or low_impedance or mismatch or compliance):
            return []
        checks = (
            (Fault.OVERCURRENT, overcurrent, OVERCURRENT_WINDOW_S),
            (Fault.OVERVOLTAGE, overvoltage, OVERVOLTAGE_WINDOW_S),
            (Fault.OPEN_CIRCUIT, open_circuit, OPEN_CIRCUIT_WINDOW_S),
            (Fault.LOW_IMPEDANCE, low_impedance, LOW_IMPEDANCE_WINDOW_S),
            (Fault.CURRENT_MISMATCH, mismatch, MISMATCH_WINDOW_S),
            (Fault.COMPLIANCE, compliance, limits.compliance_timeout_ms / 1000),
        )
        return [
            fault
            for fault, condition, window in checks
            if (condition or fault in since) and self._held(fault, condition, window, t)
        ]

"""What each transition of the session's machine commands the device: the `before` callbacks that
`ionctl.core.machine.TRANSITIONS` names. They run before the state changes, so a refused or failed command
leaves the state as it was and raises (docs/ARCHITECTURE.md, the state machine).

`DeviceSteps` is a base of `ionctl.core.session.Session`, which owns every attribute declared here."""

from __future__ import annotations

from typing import Any

from ionctl.core.monitors import Monitors
from ionctl.core.result import SessionResult
from ionctl.core.supervision import FreshnessWatch, RampSupervisor
from ionctl.drivers.base import (
    CommandRefused,
    CurrentSource,
    DeviceFault,
    DeviceIdentity,
    HostClock,
    Polarity,
    Telemetry,
)
from ionctl.safety import Prescription, SiteLimits, ValidatedPrescription, device_limits, validate

#: Contact probe: 100 µA for 0.5 s (PROTOCOL.md allows 50–1000 µA, up to 1 s), well under any therapy current.
PROBE_MA = 0.1
PROBE_S = 0.5


class SessionError(Exception):
    """A session-level refusal before any current flowed (contact, missing watchdog acknowledgement)."""


class DeviceSteps:
    """The device commands of the session's transitions (see the module docstring)."""

    device: CurrentSource
    prescription: Prescription
    limits: SiteLimits
    accept_no_watchdog: bool
    validated: ValidatedPrescription | None
    monitors: Monitors
    ramp: RampSupervisor
    freshness: FreshnessWatch
    clock: HostClock
    result: SessionResult
    polarity: Polarity
    last: Telemetry | None
    _identity: DeviceIdentity | None
    _start_sent: bool
    _reads: int
    _started_at_read: int
    _operator_stop: bool
    _reversed: bool

    def _do_connect(self, event: Any) -> None:
        identity = self.device.identity
        self._identity = identity
        if not identity.watchdog and not self.accept_no_watchdog:
            raise SessionError(
                f"{identity.model} has no host-loss watchdog: if this PC stops, nothing turns the current off. "
                "Refused; for bench or research use only, pass --accept-no-watchdog"
            )
        self.validated = validate(self.prescription, self.limits, identity)

    def _do_configure(self, event: Any) -> None:
        assert self.validated is not None
        self._fresh_start()
        self.device.configure(device_limits(self.validated))
        self.device.set_polarity(self.polarity)

    def _fresh_start(self) -> None:
        """RESET the source: no limits, polarity or dose left from an earlier session. A fault latched before
        this session (a lost link, say) is cleared first, with the output at zero, and noted."""
        try:
            self.device.reset()
        except DeviceFault as exc:
            self.device.clear_fault()  # refused (busy) while current still flows: the session is refused
            self.device.reset()
            self.result.notes.append(f"cleared a fault latched before this session: {exc.fault.value}")

    def _do_check_contact(self, event: Any) -> None:
        site = self.monitors.limits
        reading = self.device.check_contact(PROBE_MA, PROBE_S)
        self.result.impedance_start_ohm = reading.impedance_ohm
        low, high = site.min_contact_impedance_ohm, site.max_contact_impedance_ohm
        if reading.impedance_ohm is None or not low <= reading.impedance_ohm <= high:
            shown = "no current (open circuit)" if reading.impedance_ohm is None else f"{reading.impedance_ohm:.0f} Ω"
            raise SessionError(
                f"contact check failed: impedance {shown} outside {low:.0f}–{high:.0f} Ω "
                "(min/max_contact_impedance_ohm); check the electrodes and their wetting"
            )

    def _do_arm(self, event: Any) -> None:
        self.device.arm()

    def _do_start(self, event: Any) -> None:
        self._start_sent = True  # from here current may flow, whether or not the device's answer gets back
        self._started_at_read = self._reads
        try:
            self.device.start(self.prescription.current_ma, self.prescription.ramp_up_s)
        except (CommandRefused, DeviceFault):
            self._start_sent = False  # the device answered: it did not start
            raise
        # Samples the device sent before it executed START (a fault latched before this session, the idle
        # stream) are queued ahead of START's answer: they describe the past, not this delivery.
        self.device.read_telemetry(0.0)

    def _do_pause(self, event: Any) -> None:
        self.device.set_target(0.0, self.prescription.ramp_down_s)
        self._expect_zero_within(self.prescription.ramp_down_s)

    def _do_resume(self, event: Any) -> None:
        self.device.set_target(self.prescription.current_ma, self.prescription.ramp_up_s)
        self.ramp.cancel_descent()

    def _do_ramp_down(self, event: Any) -> None:
        self.device.stop(self.prescription.ramp_down_s)
        self._expect_zero_within(self.prescription.ramp_down_s)

    def _do_operator_stop(self, event: Any) -> None:
        self._operator_stop = True
        self._do_ramp_down(event)

    def _do_restart_reversed(self, event: Any) -> None:
        self._reversed = True
        self.ramp.cancel_descent()
        self.polarity = Polarity.ANODE if self.polarity is Polarity.CATHODE else Polarity.CATHODE
        self.device.arm()  # from DONE, keeping the dose counter (PROTOCOL.md §7.4)
        self.device.set_polarity(self.polarity)  # at zero current, output open
        self._started_at_read = self._reads
        self.device.start(self.prescription.current_ma, self.prescription.ramp_up_s)
        self.device.read_telemetry(0.0)  # samples from before START (DONE, ARMED) describe the past: as _do_start

    def _do_abort(self, event: Any) -> None:
        self.device.abort()
        self._expect_zero_within(self._fastest_ramp_s())

    def _stopped_by_operator(self, event: Any) -> bool:
        return self._operator_stop

    def _expect_zero_within(self, ramp_s: float) -> None:
        """Watch a ramp to zero just commanded: it must follow its course and end by `ramp_s` + margin."""
        self.ramp.expect_zero_within(ramp_s, self.last, self.clock.monotonic())

    def _reset_supervision(self) -> None:
        """Forget what was being watched: the freshness of the telemetry and any commanded ramp (a device found
        again after a link loss is watched from its first new sample)."""
        self.freshness.reset()
        self.ramp.reset()

    def _fastest_ramp_s(self) -> float:
        site = self.monitors.limits
        return site.min_ramp_s  # device_limits: max slew = max current / min_ramp_s

"""The one interface every current source implements, and what crosses it.

Everything above the drivers (the session, the console, the records) talks to a `CurrentSource` and sees
frozen values in host units (mA, V, Ω, s, mA·min); it never learns whether a firmware device or a SCPI
SourceMeter is on the other end. Wire units and wire enums stay inside the drivers.

Two clocks, never mixed (docs/ARCHITECTURE.md, principle 2): `Telemetry.t_s` is the *device's* clock and is
what session timing (ramps, dose, duration) follows; timeouts given to driver methods are host monotonic
seconds and only supervise the link.
"""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

# -- errors ------------------------------------------------------------------------------------------------


class DeviceError(Exception):
    """Base of every error a driver raises."""


class AddressError(DeviceError, ValueError):
    """A device address that names no supported transport (a typo, a missing `visa:` prefix...)."""


class LinkLost(DeviceError, ConnectionError):
    """The link to the device is gone: no answer after the last retransmission, or silence past the
    link timeout, or the port vanished. The device's own watchdog takes the output to zero."""


class VersionMismatch(DeviceError):
    """The device speaks a protocol (major version or schema) this host does not; refused at connect."""


class CommandRefused(DeviceError):
    """The device answered a command with a refusal (bad state, limit exceeded...); nothing changed.

    `result` is the device's reason as a lower-case name (`"bad_state"`, `"limit_exceeded"`, ...)."""

    def __init__(self, command: str, result: str, message: str = "") -> None:
        self.command = command
        self.result = result
        super().__init__(message or f"{command} refused by the device: {result}")


class DeviceFault(DeviceError):
    """The device is in FAULT (it latched one, or a command was refused because of one)."""

    def __init__(self, fault: FaultCode, message: str = "") -> None:
        self.fault = fault
        super().__init__(message or f"device fault: {fault.value}")


# -- values ------------------------------------------------------------------------------------------------


class OutputState(enum.Enum):
    """The source's own state, as it reports it (PROTOCOL.md §6 for the firmware device)."""

    IDLE = "idle"
    ARMED = "armed"
    RAMP_UP = "ramp_up"
    RUNNING = "running"
    RAMP_DOWN = "ramp_down"
    DONE = "done"
    FAULT = "fault"


#: States in which current may flow (the output relay is closed).
ENERGISED = frozenset({OutputState.RAMP_UP, OutputState.RUNNING, OutputState.RAMP_DOWN})


class FaultCode(enum.Enum):
    """Why a source latched FAULT (PROTOCOL.md §6.4). `NONE` outside FAULT."""

    NONE = "none"
    HOST_LOST = "host_lost"
    OVERCURRENT = "overcurrent"
    CURRENT_MISMATCH = "current_mismatch"
    COMPLIANCE = "compliance"
    OPEN_CIRCUIT = "open_circuit"
    LOW_IMPEDANCE = "low_impedance"
    OVERVOLTAGE = "overvoltage"
    DOSE_LIMIT = "dose_limit"
    DURATION_LIMIT = "duration_limit"
    INTERNAL = "internal"
    BROWNOUT = "brownout"
    OUTPUT_CUT = "output_cut"


class Polarity(enum.Enum):
    """Which electrode is the active (drug) electrode: the anode delivers cations, the cathode anions."""

    ANODE = "anode"
    CATHODE = "cathode"


@dataclass(frozen=True)
class DeviceIdentity:
    """Who answered, and what it can do. Capabilities decide what the session may rely on."""

    address: str
    model: str
    serial: str
    firmware: str
    protocol: str  # firmware protocol "MAJOR.MINOR", or the instrument's SCPI identification
    hw_max_current_ma: float
    compliance_v: float
    native_ramp: bool  # the source ramps by itself (else the driver ramps in software)
    watchdog: bool  # the source takes the output to zero by itself when the host goes silent
    coulomb_counter: bool  # the source counts delivered charge (Telemetry.device_dose_ma_min)
    contact_check: bool  # the source runs a contact probe by itself


@dataclass(frozen=True)
class DeviceLimits:
    """The limits a session hands the source to enforce on its own (the device's safety layer)."""

    max_current_ma: float
    max_slew_ma_per_s: float
    max_dose_ma_min: float
    max_voltage_v: float
    max_duration_s: float
    min_impedance_ohm: float
    max_impedance_ohm: float
    area_cm2: float
    watchdog_s: float
    compliance_timeout_s: float

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0 or value != value or value == float("inf"):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if self.min_impedance_ohm >= self.max_impedance_ohm:
            raise ValueError(
                f"min_impedance_ohm ({self.min_impedance_ohm}) must be below max_impedance_ohm "
                f"({self.max_impedance_ohm})"
            )


@dataclass(frozen=True)
class ContactReading:
    """What a contact probe measured. `impedance_ohm` is None when the probe was cut short or no
    current flowed (an open circuit)."""

    impedance_ohm: float | None
    voltage_v: float
    current_ma: float


@dataclass(frozen=True)
class Telemetry:
    """One sample from the source, on the device's clock (`t_s`)."""

    t_s: float
    state: OutputState
    fault: FaultCode
    polarity: Polarity | None
    set_ma: float  # the set point the source is driving toward now (ramps included)
    measured_ma: float  # the magnitude of the measured current
    voltage_v: float  # the magnitude of the output voltage
    impedance_ohm: float | None  # None when it cannot be measured (output off, current too small)
    device_dose_ma_min: float | None  # the source's own coulomb counter; None if it has none
    at_compliance: bool
    output_on: bool
    ramping: bool


# -- the host's clock -------------------------------------------------------------------------------------


class HostClock(Protocol):
    """The host's monotonic clock, which supervises the link (docs/ARCHITECTURE.md, the clock rule).

    Passed in, never read from a module global: an in-process simulated source runs on a synthetic clock
    (`ionctl.drivers.simulated`), so a 20-minute session takes a fraction of a second and its host-time margins
    (stale telemetry, a stuck ramp, the reconnect window) pass in step with its device time."""

    def monotonic(self) -> float:
        """Host seconds from an arbitrary origin; never goes back."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let `seconds` of host time pass."""
        ...


class SystemClock:
    """The real host clock: `time.monotonic` and `time.sleep`."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK: HostClock = SystemClock()


# -- the interface -----------------------------------------------------------------------------------------


class CurrentSource(ABC):
    """A constant-current source the session can drive. Not thread-safe for callers: one session owns it.

    Every command either completes (the source accepted it) or raises: `CommandRefused`, `DeviceFault`,
    `LinkLost`. Ramps are the source's (or the driver's) job: `start`, `set_target` and `stop` never step
    the current. `abort` is the fastest safe stop the source offers.
    """

    @property
    @abstractmethod
    def identity(self) -> DeviceIdentity:
        """Who is connected (read at connect; `identify()` asks again)."""

    @abstractmethod
    def identify(self) -> DeviceIdentity: ...

    @abstractmethod
    def configure(self, limits: DeviceLimits) -> None:
        """Hand the source the limits it enforces on its own for this session."""

    @abstractmethod
    def reset(self) -> None:
        """Return a source whose output is off (IDLE, ARMED or DONE) to its power-up state for a new
        session: no configuration, no polarity, dose counter at zero. In FAULT it raises `DeviceFault`
        (clear the fault first); with the output on, `CommandRefused`."""

    @abstractmethod
    def set_polarity(self, polarity: Polarity) -> None:
        """Select the active electrode's polarity; only legal with the output off."""

    @abstractmethod
    def check_contact(self, probe_ma: float, duration_s: float) -> ContactReading:
        """Apply a small probe current briefly and report the electrode impedance."""

    @abstractmethod
    def arm(self) -> None:
        """Get ready to deliver (configured, polarity set); no current flows yet."""

    @abstractmethod
    def start(self, target_ma: float, ramp_s: float) -> None:
        """Close the output and ramp from zero to `target_ma` over `ramp_s` device seconds."""

    @abstractmethod
    def set_target(self, target_ma: float, ramp_s: float) -> None:
        """Ramp from the present set point to `target_ma` over `ramp_s` while energised. A target of 0 holds
        the output on at zero current: the session's pause (resumed by a later `set_target`)."""

    @abstractmethod
    def stop(self, ramp_s: float) -> None:
        """Ramp to zero over `ramp_s`, then open the output (state DONE)."""

    @abstractmethod
    def abort(self) -> None:
        """Fastest safe stop: ramp to zero at the configured maximum slew, then open the output."""

    @abstractmethod
    def output_off(self) -> None:
        """Last resort: open the output at once, in any state (a step, so only when a ramp did not bring
        the current down). A firmware device latches FAULT OUTPUT_CUT if the output was on."""

    @abstractmethod
    def clear_fault(self) -> None:
        """Leave FAULT once the output is at zero."""

    @abstractmethod
    def read_telemetry(self, timeout_s: float) -> list[Telemetry]:
        """The samples that arrived since the last call, oldest first, waiting up to `timeout_s` (host
        seconds) for at least one. Raises `LinkLost` when the link is gone."""

    @abstractmethod
    def keep_alive(self) -> None:
        """Tell the source the host is alive now (drivers also do this on their own while energised)."""

    @abstractmethod
    def close(self) -> None:
        """Release the port. A source with a watchdog is left as it is (its watchdog ramps it down once
        the host is silent); one without (a SourceMeter) is ramped down and switched off first, since
        nothing else would. Idempotent."""

    @property
    def host_clock(self) -> HostClock:
        """The host clock that supervises this source's link: the real one, unless the source lives on a
        synthetic clock of its own (the in-process simulator). The session reads host time through it."""
        return SYSTEM_CLOCK

    def __enter__(self) -> CurrentSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

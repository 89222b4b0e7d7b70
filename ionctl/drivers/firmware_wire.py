"""The firmware device in host terms, over any transport: unit conversions and `FirmwareCommands`.

The pure half of the firmware drivers (`ionctl.drivers.firmware` over a serial port, `ionctl.drivers.simulated`
in-process): wire integers and enums to and from `ionctl.drivers.base` values in mA, V, Ω, s (PROTOCOL.md §1,
§5), the link options of PROTOCOL.md §8, and the `CurrentSource` commands written once in protocol terms. The
link itself (seq/ack, retransmission, heartbeats, link loss) is `firmware_protocol.HostLink`; a driver only
moves its bytes and its time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import firmware_protocol as wire
from firmware_protocol import (
    IMPEDANCE_UNKNOWN,
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    SCHEMA_HASH,
    Ack,
    Capability,
    Configure,
    HostLink,
    Message,
    Reply,
    Result,
    State,
    TelemetryFlags,
)
from firmware_protocol.link import RESPONSE_CACHE, UNCONFIGURED_WATCHDOG_S
from ionctl.drivers.base import (
    CommandRefused,
    ContactReading,
    CurrentSource,
    DeviceError,
    DeviceFault,
    DeviceIdentity,
    DeviceLimits,
    FaultCode,
    OutputState,
    Polarity,
    Telemetry,
    VersionMismatch,
)

U16 = 0xFFFF
U32 = 0xFFFF_FFFF
UA_PER_MA = 1000
UAS_PER_MA_MIN = 60_000  # 1 mA·min = 60 000 µA·s
MM2_PER_CM2 = 100

_STATES = {s: OutputState[s.name] for s in State}
_FAULTS = {f: FaultCode[f.name] for f in wire.Fault}
_POLARITIES: dict[wire.Polarity, Polarity | None] = {
    wire.Polarity.NONE: None,
    wire.Polarity.ANODE: Polarity.ANODE,
    wire.Polarity.CATHODE: Polarity.CATHODE,
}
_WIRE_POLARITIES = {Polarity.ANODE: wire.Polarity.ANODE, Polarity.CATHODE: wire.Polarity.CATHODE}


# -- options ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkOptions:
    """Link supervision, host monotonic seconds; defaults are PROTOCOL.md §8's reference host."""

    response_timeout_s: float = 0.150
    retransmissions: int = 3
    telemetry_period_s: float = 0.100  # asked of the device; it runs on the device's clock
    link_timeout_s: float | None = None  # None: max(3 telemetry periods, 1 s); unsupervised if telemetry off
    read_timeout_s: float = 0.010  # how long the reader thread blocks; bounds close() and detection lag

    def __post_init__(self) -> None:
        if not 0.1 <= self.response_timeout_s <= 10:
            raise ValueError(f"response_timeout_s must be 0.1..10 s (PROTOCOL.md §4.4), got {self.response_timeout_s}")
        if not 0 <= self.retransmissions <= 10:
            raise ValueError(f"retransmissions must be 0..10, got {self.retransmissions}")
        if self.telemetry_period_s != 0 and not 0.01 <= self.telemetry_period_s <= 10:
            raise ValueError(f"telemetry_period_s must be 0 (off) or 0.01..10 s, got {self.telemetry_period_s}")
        if self.link_timeout_s is not None and not self.link_timeout_s > 0:
            raise ValueError(f"link_timeout_s must be positive, got {self.link_timeout_s}")
        if not 0 < self.read_timeout_s <= 0.1:
            raise ValueError(f"read_timeout_s must be within (0, 0.1] s, got {self.read_timeout_s}")

    @property
    def link_timeout(self) -> float | None:
        if self.link_timeout_s is not None:
            return self.link_timeout_s
        return max(3 * self.telemetry_period_s, 1.0) if self.telemetry_period_s else None

    def host_link(self, now: float, *, max_silence_step_s: float | None = None) -> HostLink:
        """A fresh `HostLink` supervised as these options say, from host time `now`."""
        return HostLink(
            now,
            response_timeout_s=self.response_timeout_s,
            retransmissions=self.retransmissions,
            link_timeout_s=self.link_timeout,
            watchdog_s=UNCONFIGURED_WATCHDOG_S,
            max_silence_step_s=max_silence_step_s,
        )


# -- wire <-> host units (pure) --------------------------------------------------------------------------


class OutOfRange(ValueError):
    """A value the wire or the hardware cannot carry; `result` is the refusal the device would answer."""

    def __init__(self, message: str, result: str = "bad_argument") -> None:
        super().__init__(message)
        self.result = result


def to_wire(
    name: str,
    value: float,
    scale: float,
    lo: int,
    hi: int,
    rounding: Callable[[float], int],
    above: str = "bad_argument",
) -> int:
    """`value * scale` as a wire integer, or `OutOfRange` naming `name` when it falls outside `lo..hi`
    (`above` is its result when the value is too high).

    Float noise is removed before rounding (4.1 mA is 4100 µA, not 4099)."""
    if not math.isfinite(value):
        raise OutOfRange(f"{name} must be a finite number, got {value!r}")
    number = rounding(round(value * scale, 6))
    if not lo <= number <= hi:
        result = above if number > hi else "bad_argument"
        raise OutOfRange(f"{name} = {value:g} is {number} in wire units; the device accepts {lo}..{hi}", result)
    return number


#: CONFIGURE field, DeviceLimits field, scale to wire units, rounding, wire range (PROTOCOL.md §5.1).
#: Maxima round down and the minimum impedance rounds up, so rounding never loosens a limit.
_LIMIT_FIELDS: tuple[tuple[str, str, float, Callable[[float], int], int, int], ...] = (
    ("max_current_ua", "max_current_ma", UA_PER_MA, math.floor, 1, U32),
    ("max_slew_ua_per_s", "max_slew_ma_per_s", UA_PER_MA, math.floor, 1, 100_000),
    ("max_dose_uas", "max_dose_ma_min", UAS_PER_MA_MIN, math.floor, 1, U32),
    ("max_voltage_mv", "max_voltage_v", 1000, math.floor, 1, U32),
    ("max_duration_ms", "max_duration_s", 1000, math.floor, 1, U32),
    ("min_impedance_ohm", "min_impedance_ohm", 1, math.ceil, 0, U32 - 1),
    ("max_impedance_ohm", "max_impedance_ohm", 1, math.floor, 1, U32),
    ("area_mm2", "area_cm2", MM2_PER_CM2, round, 1, U32),
    ("watchdog_ms", "watchdog_s", 1000, math.floor, 100, 10_000),
    ("compliance_timeout_ms", "compliance_timeout_s", 1000, math.floor, 1, U32),  # 0 would mean "never"
)


def configure_message(limits: DeviceLimits, *, hw_max_current_ua: int = U32, hw_compliance_mv: int = U32) -> Configure:
    """CONFIGURE for `limits`, range-checked (`OutOfRange`, a ValueError) against the protocol and the hardware
    (above the hardware is `limit_exceeded`, as the device would answer)."""
    hardware = {"max_current_ua": hw_max_current_ua, "max_voltage_mv": hw_compliance_mv}
    values = {
        field: to_wire(
            name,
            getattr(limits, name),
            scale,
            lo,
            min(hi, hardware.get(field, hi)),
            rounding,
            "limit_exceeded" if field in hardware else "bad_argument",
        )
        for field, name, scale, rounding, lo, hi in _LIMIT_FIELDS
    }
    if values["min_impedance_ohm"] >= values["max_impedance_ohm"]:
        raise OutOfRange(
            f"min_impedance_ohm {values['min_impedance_ohm']} must stay below max_impedance_ohm "
            f"{values['max_impedance_ohm']} after rounding to whole ohms"
        )
    return Configure(**values)


def telemetry_sample(message: wire.Telemetry, *, coulomb_counter: bool = True) -> Telemetry:
    """A TELEMETRY frame in host units (magnitudes; impedance `0xFFFFFFFF` is None)."""
    flags = message.flags
    return Telemetry(
        t_s=message.t_ms / 1000,
        state=_STATES[message.state],
        fault=_FAULTS[message.fault],
        polarity=_POLARITIES[message.polarity],
        set_ma=message.set_ua / UA_PER_MA,
        measured_ma=abs(message.measured_ua) / UA_PER_MA,
        voltage_v=abs(message.output_mv) / 1000,
        impedance_ohm=None if message.impedance_ohm == IMPEDANCE_UNKNOWN else float(message.impedance_ohm),
        device_dose_ma_min=message.dose_uas / UAS_PER_MA_MIN if coulomb_counter else None,
        at_compliance=bool(flags & TelemetryFlags.AT_COMPLIANCE),
        output_on=bool(flags & TelemetryFlags.OUTPUT_ON),
        ramping=bool(flags & TelemetryFlags.RAMPING),
    )


def device_identity(address: str, m: wire.Identity) -> DeviceIdentity:
    caps = m.capabilities
    return DeviceIdentity(
        address=address,
        model=m.model,
        serial=m.serial,
        firmware=f"{m.fw_major}.{m.fw_minor}.{m.fw_patch} (hw rev {m.hw_rev})",
        protocol=f"{m.proto_major}.{m.proto_minor}",
        hw_max_current_ma=m.hw_max_current_ua / UA_PER_MA,
        compliance_v=m.hw_compliance_mv / 1000,
        native_ramp=bool(caps & Capability.NATIVE_RAMP),
        watchdog=bool(caps & Capability.WATCHDOG),
        coulomb_counter=bool(caps & Capability.COULOMB_COUNTER),
        contact_check=bool(caps & Capability.CONTACT_CHECK),
    )


def check_version(address: str, m: wire.Identity) -> None:
    """PROTOCOL.md §3: refuse another major version, or the same minor built from another schema."""
    device, host = f"{m.proto_major}.{m.proto_minor}", f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}"
    if m.proto_major != PROTOCOL_MAJOR:
        raise VersionMismatch(f"{address}: the device speaks firmware protocol {device}, this host {host}; refused")
    if m.proto_minor == PROTOCOL_MINOR and m.schema_hash != SCHEMA_HASH:
        raise VersionMismatch(
            f"{address}: the device speaks protocol {device} with schema 0x{m.schema_hash:08x}, this host "
            f"{host} with schema 0x{SCHEMA_HASH:08x} (different drafts of one version); refused"
        )


M = TypeVar("M", bound=Message)


class FirmwareCommands(CurrentSource):
    """The `CurrentSource` commands in firmware-protocol terms, once, over any transport.

    A subclass supplies the transport: `_request` (send a request through its `HostLink` and return the `Reply`,
    raising `LinkLost` once the link is lost) and the read side of the interface. `_connect` is the opening
    every link makes: IDENTIFY first and alone (§3), the device's response cache flushed, telemetry started."""

    address: str
    options: LinkOptions
    _identity: DeviceIdentity | None = None
    _wire_identity: wire.Identity | None = None
    _link: HostLink  # the subclass's link, which the counters below read

    # -- link counters ---------------------------------------------------------------------------------------

    @property
    def frames_lost(self) -> int:
        """Device frames missing by `seq` gaps (§4.1)."""
        return self._link.frames_lost

    @property
    def frames_damaged(self) -> int:
        """Frames the decoder dropped (COBS, CRC, length, version)."""
        return self._link.frames_damaged

    @property
    def retransmissions(self) -> int:
        """Requests resent with RETX."""
        return self._link.retransmissions_sent

    def _request(self, message: Message, wait_s: float) -> Reply:
        raise NotImplementedError

    def _exchange(self, message: Message, wait_s: float) -> Message:
        """The reply to one command (a hook for a transport that watches its commands)."""
        return self._request(message, wait_s).reply

    def _configured(self, message: Configure) -> None:
        """Hook: the device accepted `message` (its watchdog is now `message.watchdog_ms`)."""

    def _connect(self) -> None:
        self.identify()  # first, and alone until the version is known to be ours (§3)
        self._flush_response_cache()
        self._command(wire.SetTelemetry(round(self.options.telemetry_period_s * 1000)))

    def _flush_response_cache(self) -> None:
        """Make the device's cache of its last four responses hold only this link's answers.

        A link numbers its frames from 0, as a previous host's did: a retransmission of ours whose first copy was
        lost would otherwise be answered from that host's cached response under the same (seq, msg_id), and not
        executed (§4.4) -- a previous session's CONFIGURE, say. Each fresh answer replaces the oldest entry; a
        replayed one (RETX) replaces nothing, so only fresh ones count."""
        fresh = 0
        for _ in range(4 * RESPONSE_CACHE):  # bounded: a replay needs a lost first copy
            answered = self._request(wire.Identify(), 0.0)
            _expect(answered.reply, wire.Identity, "identify")
            fresh += not answered.replayed
            if fresh == RESPONSE_CACHE:
                return
        raise DeviceError(f"{self.address}: the device kept replaying old answers to IDENTIFY; refused")

    @property
    def identity(self) -> DeviceIdentity:
        if self._identity is None:
            raise DeviceError(f"{self.address}: the device has not been identified")
        return self._identity

    def identify(self) -> DeviceIdentity:
        reply = _expect(self._command(wire.Identify()), wire.Identity, "identify")
        check_version(self.address, reply)
        self._wire_identity = reply
        self._identity = device_identity(self.address, reply)
        return self._identity

    def configure(self, limits: DeviceLimits) -> None:
        hw = self._wire_identity
        with _refused_unsent("configure"):
            message = configure_message(
                limits,
                hw_max_current_ua=hw.hw_max_current_ua if hw else U32,
                hw_compliance_mv=hw.hw_compliance_mv if hw else U32,
            )
        self._command(message)
        self._configured(message)

    def set_polarity(self, polarity: Polarity) -> None:
        self._command(wire.SetPolarity(_WIRE_POLARITIES[polarity]))

    def check_contact(self, probe_ma: float, duration_s: float) -> ContactReading:
        with _refused_unsent("check_contact"):
            probe_ua = to_wire("probe_ma", probe_ma, UA_PER_MA, 0, U16, math.floor)
            duration_ms = to_wire("duration_s", duration_s, 1000, 0, U16, round)
        reply = self._command(wire.CheckContact(probe_ua, duration_ms), wait_s=duration_ms / 1000)
        contact = _expect(reply, wire.Contact, "check_contact")
        return ContactReading(
            impedance_ohm=None if contact.impedance_ohm == IMPEDANCE_UNKNOWN else float(contact.impedance_ohm),
            voltage_v=abs(contact.voltage_mv) / 1000,
            current_ma=abs(contact.current_ua) / UA_PER_MA,
        )

    def arm(self) -> None:
        self._command(wire.Arm())

    def start(self, target_ma: float, ramp_s: float) -> None:
        with _refused_unsent("start"):
            message = wire.Start(_target_ua(target_ma), _ramp_ms(ramp_s))
        self._command(message)

    def set_target(self, target_ma: float, ramp_s: float) -> None:
        with _refused_unsent("set_target"):
            message = wire.SetTarget(_target_ua(target_ma), _ramp_ms(ramp_s))
        self._command(message)

    def stop(self, ramp_s: float) -> None:
        with _refused_unsent("stop"):
            message = wire.Stop(_ramp_ms(ramp_s))
        self._command(message)

    def abort(self) -> None:
        self._command(wire.Abort())

    def reset(self) -> None:
        self._command(wire.Reset())

    def output_off(self) -> None:
        self._command(wire.OutputOff())

    def clear_fault(self) -> None:
        self._command(wire.ClearFault())

    # -- requests ----------------------------------------------------------------------------------------

    def _command(self, message: Message, *, wait_s: float = 0.0) -> Message:
        """Send a request and return its reply, raising for any refusal (PROTOCOL.md §4.3)."""
        reply = self._exchange(message, wait_s)
        if isinstance(reply, Ack) and reply.result is not Result.OK:
            name = message.NAME.lower()
            if reply.result is Result.FAULT_LATCHED:
                fault = _FAULTS[reply.fault]
                raise DeviceFault(fault, f"{name} refused: the device is in FAULT ({fault.value})")
            if reply.result is Result.UNSUPPORTED_VERSION:
                raise VersionMismatch(f"{name} refused by {self.address}: unsupported protocol version")
            raise CommandRefused(name, reply.result.name.lower())
        return reply


@contextmanager
def _refused_unsent(command: str) -> Iterator[None]:
    """An argument the wire cannot carry is refused before anything is sent, as `CommandRefused` (the type
    every other refusal has, on every driver), never as a bare ValueError."""
    try:
        yield
    except OutOfRange as exc:
        raise CommandRefused(command, exc.result, f"{command} refused before sending: {exc}") from exc


def _expect(reply: Message, cls: type[M], command: str) -> M:
    if not isinstance(reply, cls):
        raise DeviceError(f"{command}: the device answered {reply.NAME}, expected {cls.NAME}")
    return reply


def _target_ua(target_ma: float) -> int:
    return to_wire("target_ma", target_ma, UA_PER_MA, 0, U32, math.floor)  # never above what was asked


def _ramp_ms(ramp_s: float) -> int:
    return to_wire("ramp_s", ramp_s, 1000, 0, U32, math.ceil)  # never steeper than asked

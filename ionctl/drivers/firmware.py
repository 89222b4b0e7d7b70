"""The ionctl firmware device over pyserial: `FirmwareDevice.open("/dev/ttyUSB0")` (PROTOCOL.md).

Theory of operation
-------------------
One background thread owns reading the port. It decodes the stream (damaged frames are counted and
dropped, never guessed at), hands each RESPONSE to the request waiting for it, queues TELEMETRY for
`read_telemetry`, counts lost device frames by `seq` gaps (§4.1), and sends HEARTBEAT every
`watchdog / 4` from its own timer, whatever the caller is doing (§7.3) -- in every state, since the
device's watchdog starts when it executes START, before the host can know it did. Callers' commands go
out stop-and-wait under a lock, with the same `seq` and payload resent with RETX at most
`retransmissions` times (§4.4).

The link is lost when a request goes unanswered after its last retransmission, when no valid frame
arrives for `link_timeout_s` (§8: three telemetry periods or 1 s, whichever is longer), or when the
port fails. Silence is judged only after the port was drained, and counted on the reader's own time
(`READER_PASS_S` at most per pass): a host that stalled finds the device's frames waiting, not a silent
device (docs/SESSION.md, "Link supervision": the timeout keeps half the device's watchdog as margin).
Loss is latched, as Klipper's host does: from then on every command and `read_telemetry` raise `LinkLost`,
and no more heartbeats are sent, so the device's own watchdog takes the output to zero. A new driver (a new
`open`) is the only way back.

Wire units stay in this module: the rest of ionctl sees `ionctl.drivers.base` values in mA, V, Ω, s.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import serial

import firmware_protocol as wire
from firmware_protocol import (
    IMPEDANCE_UNKNOWN,
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    REPLIES,
    SCHEMA_HASH,
    Ack,
    Capability,
    Configure,
    Decoder,
    HeaderFlags,
    Message,
    Packet,
    ProtocolError,
    Result,
    State,
    TelemetryFlags,
    encode,
)
from ionctl.drivers.base import (
    AddressError,
    CommandRefused,
    ContactReading,
    CurrentSource,
    DeviceError,
    DeviceFault,
    DeviceIdentity,
    DeviceLimits,
    FaultCode,
    LinkLost,
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
#: Until CONFIGURE names the watchdog, heartbeat as if it were the shortest a device accepts (100 ms).
UNCONFIGURED_WATCHDOG_S = 0.100
#: Samples kept for a caller that does not read (at 10 Hz, more than two hours).
TELEMETRY_QUEUE = 100_000
WRITE_TIMEOUT_S = 0.5
JOIN_TIMEOUT_S = 2.0
RETRANSMIT = HeaderFlags.ACK_REQ | HeaderFlags.RETX
RESPONSE_CACHE = 4  # responses a device remembers for duplicate detection (PROTOCOL.md §4.4)
#: The most one pass of the reader thread counts toward the link's silence (host seconds): a pass blocks for
#: `read_timeout_s` (at most 0.1 s); a longer one means the host itself did not run, and that is not the device's
#: silence. Under a host so loaded that every pass is late, detection slows by at most pass / READER_PASS_S; the
#: device's watchdog does not wait for it.
READER_PASS_S = 0.25

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


def _open_port(address: str, read_timeout_s: float) -> serial.SerialBase:
    # An exclusive lock keeps a second host off a real port or pty; URL transports have no such lock.
    extra = {} if "://" in address else {"exclusive": True}
    try:
        return serial.serial_for_url(address, timeout=read_timeout_s, write_timeout=WRITE_TIMEOUT_S, **extra)
    except ValueError as exc:  # pyserial's answer to an unknown URL scheme or a bad URL option
        raise AddressError(f"{address!r}: not a serial port or a pyserial URL ({exc})") from exc
    except (serial.SerialException, OSError) as exc:
        raise LinkLost(f"cannot open the device port {address!r}: {exc}") from exc


# -- the driver ------------------------------------------------------------------------------------------

M = TypeVar("M", bound=Message)


class _Waiting:
    """The one outstanding request: which response it takes (`ack` = its seq, one of its reply types)."""

    def __init__(self, seq: int, message: Message) -> None:
        self.seq = seq
        self.msg_id = message.MSG_ID
        reply = REPLIES.get(message.MSG_ID)
        self.replies: tuple[type[Message], ...] = (Ack, wire.REGISTRY[reply]) if reply else (Ack,)
        self.reply: Message | None = None
        self.replayed = False  # the reply carried RETX: the device answered from its cache

    def matches(self, packet: Packet) -> bool:
        message = packet.message
        return (
            packet.ack == self.seq
            and type(message) in self.replies
            and (not isinstance(message, Ack) or message.acked_msg_id == self.msg_id)
        )


class FirmwareCommands(CurrentSource):
    """The `CurrentSource` commands in firmware-protocol terms, once, over any request transport.

    A subclass supplies the transport: `_exchange` (send a request, return its reply, retransmitting as
    PROTOCOL.md §4.4 says, raising `LinkLost` when it runs out) and the read side of the interface."""

    address: str
    _identity: DeviceIdentity | None = None
    _wire_identity: wire.Identity | None = None

    def _exchange(self, message: Message, wait_s: float) -> Message:
        raise NotImplementedError

    def _configured(self, message: Configure) -> None:
        """Hook: the device accepted `message` (e.g. to heartbeat at its watchdog / 4)."""

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


class FirmwareDevice(FirmwareCommands):
    """A device speaking the ionctl firmware protocol; see the module docstring for how the link runs.

    `frames_lost`, `frames_damaged` and `retransmissions` count link trouble since open."""

    def __init__(self, port: serial.SerialBase, address: str, options: LinkOptions | None = None) -> None:
        self.address = address
        self.options = options or LinkOptions()
        self.frames_lost = 0  # device frames missing by seq gaps (§4.1)
        self.frames_damaged = 0  # frames the decoder dropped (COBS, CRC, length, version)
        self.retransmissions = 0  # requests resent with RETX
        self._port = port
        self._decoder = Decoder()
        self._cond = threading.Condition()  # guards the telemetry queue, the waiting request, `_lost`
        self._write_lock = threading.RLock()  # guards the port's write side, `_seq`, the heartbeat counter
        self._request_lock = threading.Lock()  # stop-and-wait: one request in flight
        self._telemetry: deque[Telemetry] = deque(maxlen=TELEMETRY_QUEUE)
        self._waiting: _Waiting | None = None
        self._lost: str | None = None
        self._stop = threading.Event()
        self._seq = 0
        self._heartbeat_counter = 0
        self._recent: deque[tuple[int, int]] = deque(maxlen=4)  # (seq, msg_id) the device may still cache
        self._device_seq: int | None = None
        self._watchdog_s = UNCONFIGURED_WATCHDOG_S
        self._next_heartbeat = 0.0
        self._last_frame = time.monotonic()
        self._polled = self._last_frame  # the reader's last pass (host monotonic)
        self._silent_s = 0.0  # reading time since the last valid frame
        self._identity: DeviceIdentity | None = None
        self._wire_identity: wire.Identity | None = None
        self._thread = threading.Thread(target=self._run, name=f"ionctl-firmware {address}", daemon=True)

    @classmethod
    def open(cls, address: str, **options: Any) -> FirmwareDevice:
        """Open the port, identify the device (refusing another protocol) and start its telemetry.

        Options: the fields of `LinkOptions`. Raises `LinkLost`, `VersionMismatch`, `DeviceError`."""
        link = LinkOptions(**options)
        device = cls(_open_port(address, link.read_timeout_s), address, link)
        try:
            device._connect()
        except BaseException:
            device.close()
            raise
        return device

    def _connect(self) -> None:
        self._thread.start()
        with self._write_lock:
            self._write(b"\x00")  # ends any partial frame held by the device's decoder (§2.4)
        self.identify()  # first, and alone until the version is known to be ours (§3)
        self._flush_response_cache()
        self._command(wire.SetTelemetry(round(self.options.telemetry_period_s * 1000)))

    def _flush_response_cache(self) -> None:
        """Make the device's cache of its last four responses hold only this connection's answers.

        This driver numbers its frames from 0 on every connection, as a previous host did: a retransmission
        of ours whose first copy was lost would otherwise be answered from that host's cached response under
        the same (seq, msg_id), and not executed (§4.4) -- a previous session's CONFIGURE, say. Each fresh
        answer replaces the oldest entry; a replayed one (RETX) replaces nothing, so only fresh ones count."""
        fresh = 0
        for _ in range(4 * RESPONSE_CACHE):  # bounded: a replay needs a lost first copy
            answered = self._request(wire.Identify(), 0.0)
            assert answered.reply is not None  # _request returns answered requests only
            _expect(answered.reply, wire.Identity, "identify")
            fresh += not answered.replayed
            if fresh == RESPONSE_CACHE:
                return
        raise DeviceError(f"{self.address}: the device kept replaying old answers to IDENTIFY; refused")

    # -- CurrentSource (the commands are FirmwareCommands') ---------------------------------------------------

    def read_telemetry(self, timeout_s: float) -> list[Telemetry]:
        """Samples received so far, waiting up to `timeout_s` for one. A FAULT sample is returned, not
        raised: the session must see it. Samples that arrived before a link loss are still handed out;
        after them, `LinkLost`."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while not self._telemetry and self._lost is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if not self._telemetry and self._lost is not None:
                raise LinkLost(self._lost)
            samples = list(self._telemetry)
            self._telemetry.clear()
        return samples

    def keep_alive(self) -> None:
        self._raise_if_lost()
        self._send_heartbeat()

    def close(self) -> None:
        """Stop the reader thread and release the port; idempotent, bounded in time."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT_S)
        with self._cond:
            if self._lost is None:
                self._lost = f"{self.address}: the driver was closed"
            self._cond.notify_all()
        try:
            self._port.close()
        except (serial.SerialException, OSError):
            pass  # the port is gone already: nothing left to release

    # -- requests ----------------------------------------------------------------------------------------

    def _configured(self, message: Configure) -> None:
        self._watchdog_s = message.watchdog_ms / 1000

    def _exchange(self, message: Message, wait_s: float) -> Message:
        reply = self._request(message, wait_s).reply
        assert reply is not None  # _request returns answered requests only
        return reply

    def _request(self, message: Message, wait_s: float) -> _Waiting:
        """Stop-and-wait with bounded retransmission (§4.4); latches the link lost when it runs out."""
        timeout_s = wait_s + self.options.response_timeout_s
        with self._request_lock:
            self._raise_if_lost()
            waiting = self._send_request(message)
            try:
                for attempt in range(self.options.retransmissions + 1):
                    if attempt:
                        self.retransmissions += 1
                        with self._write_lock:
                            self._write(encode(message, seq=waiting.seq, flags=RETRANSMIT))
                    if self._await_reply(waiting, timeout_s) is not None:
                        return waiting
            finally:
                with self._cond:
                    self._waiting = None
        tries = self.options.retransmissions + 1
        raise self._lose(f"{self.address}: no answer to {message.NAME} after {tries} tries")

    def _send_request(self, message: Message) -> _Waiting:
        with self._write_lock:
            # The device answers a RETX from its cache of the last four (seq, msg_id): never let a new
            # request reuse one of those, or its retransmission would get a stale answer (§4.4).
            while (self._seq, message.MSG_ID) in self._recent:
                self._send_heartbeat()
            seq = self._take_seq()
            self._recent.append((seq, message.MSG_ID))
            waiting = _Waiting(seq, message)
            with self._cond:
                self._waiting = waiting
            self._write(encode(message, seq=seq))
        return waiting

    def _await_reply(self, waiting: _Waiting, timeout_s: float) -> Message | None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while waiting.reply is None and self._lost is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if waiting.reply is None:
                raise LinkLost(self._lost)
            return waiting.reply

    def _send_heartbeat(self) -> None:
        with self._write_lock:
            self._heartbeat_counter = (self._heartbeat_counter + 1) & U16
            self._write(encode(wire.Heartbeat(self._heartbeat_counter), seq=self._take_seq()))

    def _take_seq(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) & 0xFF
        return seq

    def _write(self, frame: bytes) -> None:
        """Write under `_write_lock`; a failing port latches the link lost."""
        try:
            self._port.write(frame)
        except (serial.SerialException, OSError) as exc:
            raise self._lose(f"{self.address}: write failed: {exc}") from exc

    def _raise_if_lost(self) -> None:
        with self._cond:
            if self._lost is not None:
                raise LinkLost(self._lost)

    def _lose(self, reason: str) -> LinkLost:
        """Latch the link lost (the first reason sticks), wake every waiter, stop the reader thread."""
        with self._cond:
            if self._lost is None:
                self._lost = reason
            self._cond.notify_all()
            error = LinkLost(self._lost)
        self._stop.set()
        return error

    # -- the reader thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        port = self._port
        try:
            while not self._stop.is_set():
                data = port.read(max(1, port.in_waiting))
                while data and port.in_waiting:  # drain what waited (a stalled host finds a backlog)
                    data += port.read(port.in_waiting)
                now = time.monotonic()
                if data:
                    self._on_bytes(data, now)
                self._supervise(now)
        except LinkLost:
            pass  # already latched by _lose
        except (serial.SerialException, OSError) as exc:
            self._lose(f"{self.address}: read failed: {exc}")

    def _on_bytes(self, data: bytes, now: float) -> None:
        for event in self._decoder.feed(data):
            if isinstance(event, ProtocolError):
                self.frames_damaged += 1
                continue
            self._last_frame = now
            if not event.is_retransmit:
                if self._device_seq is not None:
                    self.frames_lost += (event.seq - self._device_seq - 1) & 0xFF
                self._device_seq = event.seq
            self._route(event)

    def _route(self, packet: Packet) -> None:
        message = packet.message
        with self._cond:
            if isinstance(message, wire.Telemetry):
                counter = self._identity.coulomb_counter if self._identity else True
                self._telemetry.append(telemetry_sample(message, coulomb_counter=counter))
                self._cond.notify_all()
            elif packet.is_response:
                waiting = self._waiting
                if waiting is not None and waiting.reply is None and waiting.matches(packet):
                    waiting.reply = message
                    waiting.replayed = packet.is_retransmit
                    self._cond.notify_all()

    def _supervise(self, now: float) -> None:
        # Silence is counted on the reader's own time, and only after the port was drained: each pass adds at most
        # READER_PASS_S, so a host that did not run (a stall, a suspended process) does not count its own absence
        # as the device's silence. A device that is silent while the reader runs is found within the link timeout.
        step = min(max(0.0, now - self._polled), READER_PASS_S)
        self._polled = now
        self._silent_s = 0.0 if self._last_frame == now else self._silent_s + step
        timeout = self.options.link_timeout
        if timeout is not None and self._silent_s > timeout:
            silent = f"{self._silent_s:.2f} s of reading"
            raise self._lose(f"{self.address}: no valid frame for {silent} (limit {timeout} s)")
        # In every state, not only once the device is known to be energised: its watchdog runs from the moment
        # it executes START, which the host learns only when an answer gets through (§7.3). Outside RAMP_UP,
        # RUNNING and RAMP_DOWN a heartbeat has no effect.
        if now >= self._next_heartbeat:
            self._send_heartbeat()
            self._next_heartbeat = now + self._watchdog_s / 4


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

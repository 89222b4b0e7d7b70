"""Every message of the wire protocol, as a frozen dataclass with its fixed little-endian layout.

PROTOCOL.md is normative; this module is its executable form. Each message class is declared once with
`@message(msg_id, direction, layout)`, which registers it, builds its `struct.Struct` and checks that the
layout matches the dataclass fields. The schema hash that IDENTITY reports is computed from this table,
so a layout change anywhere changes the hash.

Wire types: `u8 u16 u32` unsigned, `i32` signed, `str16` 16 bytes of ASCII padded with NUL. A field whose
annotation is an enum is carried as `u8` and must hold one of the enum's values.
"""

from __future__ import annotations

import enum
import hashlib
import operator
import struct
import typing
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from firmware_protocol.errors import InvalidMessage

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 0

#: The frame header: ver flags seq ack msg_id (PROTOCOL.md §2).
HEADER_FORMAT = "<BBBBB"
#: Largest body (header + payload) a frame may carry.
MAX_BODY = 250

_WIRE: dict[str, tuple[str, int, int]] = {
    # wire type: (struct code, min, max)
    "u8": ("B", 0, 0xFF),
    "u16": ("H", 0, 0xFFFF),
    "u32": ("I", 0, 0xFFFF_FFFF),
    "i32": ("i", -0x8000_0000, 0x7FFF_FFFF),
    "str16": ("16s", 0, 16),
}

#: Telemetry's impedance when it cannot be measured (output off or current below the floor).
IMPEDANCE_UNKNOWN = 0xFFFF_FFFF


class Direction(enum.Enum):
    HOST = "host"  # sent by the host, executed by the device
    DEVICE = "device"  # sent by the device


class HeaderFlags(enum.IntFlag):
    """Bits of the header's `flags` byte. Reserved bits are sent as 0 and ignored on receipt."""

    NONE = 0
    ACK_REQ = 0x01  # the sender wants exactly one response frame for this one
    RETX = 0x02  # this frame repeats an earlier one with the same seq
    RESPONSE = 0x04  # this frame answers the peer's frame whose seq is in `ack`


class State(enum.IntEnum):
    """The device's own state (PROTOCOL.md, "Device state machine")."""

    IDLE = 0
    ARMED = 1
    RAMP_UP = 2
    RUNNING = 3
    RAMP_DOWN = 4
    DONE = 5
    FAULT = 6


class Fault(enum.IntEnum):
    """Why the device latched FAULT. NONE outside FAULT."""

    NONE = 0
    HOST_LOST = 1
    OVERCURRENT = 2
    CURRENT_MISMATCH = 3
    COMPLIANCE = 4
    OPEN_CIRCUIT = 5
    LOW_IMPEDANCE = 6
    OVERVOLTAGE = 7
    DOSE_LIMIT = 8
    DURATION_LIMIT = 9
    INTERNAL = 10
    BROWNOUT = 11
    OUTPUT_CUT = 12


class Result(enum.IntEnum):
    """ACK result codes."""

    OK = 0
    BAD_STATE = 1
    BAD_ARGUMENT = 2
    LIMIT_EXCEEDED = 3
    NOT_CONFIGURED = 4
    FAULT_LATCHED = 5
    MALFORMED = 6
    UNKNOWN_MESSAGE = 7
    UNSUPPORTED_VERSION = 8
    BUSY = 9


class Polarity(enum.IntEnum):
    """Which electrode is the active (drug) electrode. NONE only until the host sets one."""

    NONE = 0
    ANODE = 1  # active electrode positive: delivers cations
    CATHODE = 2  # active electrode negative: delivers anions


class TelemetryFlags(enum.IntFlag):
    AT_COMPLIANCE = 0x0001  # the source is voltage-limited: delivering less than set
    OUTPUT_ON = 0x0002  # the output relay is closed
    RAMPING = 0x0004  # the set point is moving toward a target
    CONFIGURED = 0x0008  # limits have been accepted since the last RESET or power-up
    WATCHDOG_ARMED = 0x0010  # the host-loss watchdog is running (energised states)
    PROBING = 0x0020  # a contact check is applying its probe current


class Capability(enum.IntFlag):
    NATIVE_RAMP = 0x01
    WATCHDOG = 0x02
    COULOMB_COUNTER = 0x04
    CONTACT_CHECK = 0x08
    OUTPUT_RELAY = 0x10


class Message:
    """Base of all messages. Subclasses are frozen dataclasses declared with `@message`."""

    __slots__ = ()
    MSG_ID: ClassVar[int]
    NAME: ClassVar[str]
    DIRECTION: ClassVar[Direction]
    LAYOUT: ClassVar[tuple[tuple[str, str], ...]]  # ((field name, wire type), ...)
    STRUCT: ClassVar[struct.Struct]  # the payload
    FRAME: ClassVar[struct.Struct]  # header (ver flags seq ack msg_id) followed by the payload
    DEFAULT_FLAGS: ClassVar[int]  # header flags of a fresh frame of this message (PROTOCOL.md §4.2)
    _ENUMS: ClassVar[tuple[type[enum.IntEnum] | None, ...]]
    _CHECKS: ClassVar[tuple[tuple[str, str, int, int, type[enum.IntEnum] | None], ...]]  # for __post_init__
    _GET: ClassVar[Any]  # staticmethod: message -> field values in wire form, in order

    def __post_init__(self) -> None:
        fields = self.__dict__
        for name, wire, lo, hi, enum_cls in self._CHECKS:
            value = fields[name]
            if enum_cls is not None:
                if type(value) is not enum_cls:
                    try:
                        fields[name] = enum_cls(value)  # the instance dict: past the frozen __setattr__
                    except ValueError:
                        raise InvalidMessage(f"{self.NAME}.{name}: {value!r} is not a {enum_cls.__name__}") from None
            elif wire == "str16":
                if not isinstance(value, str) or not value.isascii() or "\0" in value or len(value) > 16:
                    raise InvalidMessage(f"{self.NAME}.{name}: {value!r} is not ASCII text of at most 16 chars")
            elif not (type(value) is int or (isinstance(value, int) and not isinstance(value, bool))) or not (
                lo <= value <= hi
            ):
                raise InvalidMessage(f"{self.NAME}.{name}: {value!r} is not an integer in {lo}..{hi} ({wire})")

    def payload(self) -> bytes:
        """The message's payload bytes (the part of the body after msg_id)."""
        return self.STRUCT.pack(*self._GET(self))

    @classmethod
    def from_payload(cls, payload: bytes) -> Message:
        """Build the message from its payload bytes; raises `InvalidMessage` if they do not fit."""
        try:
            return cls._from_frame((0, 0, 0, 0, 0, *cls.STRUCT.unpack(payload)))
        except (struct.error, KeyError, ValueError, UnicodeError) as exc:
            raise InvalidMessage(f"{cls.NAME}: payload {payload.hex()} does not decode: {exc!r}") from None

    @classmethod
    def _from_frame(cls, values: tuple[Any, ...]) -> Message:
        """Build from the values of `FRAME.unpack` (header first). Generated per class by @message."""
        raise NotImplementedError

    def to_fields(self) -> dict[str, Any]:
        """Field values as plain JSON-able types (enums by name)."""
        out: dict[str, Any] = {}
        for name, _ in self.LAYOUT:
            value = getattr(self, name)
            out[name] = value.name if isinstance(value, enum.Enum) else value
        return out

    @classmethod
    def from_fields(cls, values: dict[str, Any]) -> Message:
        """Inverse of `to_fields` (enum fields may be given by name or number)."""
        kwargs: dict[str, Any] = {}
        for (name, _), enum_cls in zip(cls.LAYOUT, cls._ENUMS, strict=True):
            value = values[name]
            if enum_cls is not None and isinstance(value, str):
                value = enum_cls[value]
            kwargs[name] = value
        return cls(**kwargs)


REGISTRY: dict[int, type[Message]] = {}
_M = typing.TypeVar("_M", bound=type[Message])


@typing.dataclass_transform(frozen_default=True)
def message(msg_id: int, direction: Direction, layout: str) -> typing.Callable[[_M], _M]:
    """Register a frozen-dataclass message class with its msg_id, direction and wire layout."""

    def wrap(cls: _M) -> _M:
        cls = dataclass(frozen=True)(cls)  # type: ignore[assignment]
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        wires = layout.split()
        if len(names) != len(wires):
            raise TypeError(f"{cls.__name__}: {len(names)} fields but {len(wires)} wire types")
        hints = typing.get_type_hints(cls)
        enums: list[type[enum.IntEnum] | None] = []
        for name, wire in zip(names, wires, strict=True):
            hint = hints[name]
            is_enum = isinstance(hint, type) and issubclass(hint, enum.IntEnum)
            if is_enum and wire != "u8":
                raise TypeError(f"{cls.__name__}.{name}: enum fields are u8 on the wire")
            enums.append(hint if is_enum else None)
        if msg_id in REGISTRY:
            raise TypeError(f"msg_id 0x{msg_id:02X} registered twice")
        if (direction is Direction.HOST) != (msg_id < 0x80):
            raise TypeError("host messages use msg_id 0x01-0x7F, device messages 0x80-0xFF")
        cls.MSG_ID = msg_id
        cls.NAME = "".join("_" + c if c.isupper() and i else c for i, c in enumerate(cls.__name__)).upper()
        cls.DIRECTION = direction
        cls.LAYOUT = tuple(zip(names, wires, strict=True))
        cls.STRUCT = struct.Struct("<" + "".join(_WIRE[w][0] for w in wires))
        cls.FRAME = struct.Struct(HEADER_FORMAT + cls.STRUCT.format[1:])
        if cls.FRAME.size > MAX_BODY:
            raise TypeError(f"{cls.__name__}: body of {cls.FRAME.size} bytes exceeds {MAX_BODY}")
        cls._ENUMS = tuple(enums)
        cls._CHECKS = tuple(
            (name, wire, _WIRE[wire][1], _WIRE[wire][2], enum_cls)
            for (name, wire), enum_cls in zip(cls.LAYOUT, enums, strict=True)
        )
        cls._GET = staticmethod(_make_getter(cls.LAYOUT))
        cls._from_frame = classmethod(_make_from_frame(cls))  # type: ignore[assignment]
        REGISTRY[msg_id] = cls
        return cls

    return wrap


def _make_getter(layout: tuple[tuple[str, str], ...]) -> typing.Callable[[Message], tuple[Any, ...]]:
    """A function returning a message's field values as `struct.pack` wants them."""
    names = [name for name, _ in layout]
    if any(wire == "str16" for _, wire in layout):
        return lambda msg: tuple(
            getattr(msg, name).encode("ascii") if wire == "str16" else getattr(msg, name) for name, wire in layout
        )
    if len(names) > 1:
        return operator.attrgetter(*names)  # C-level: returns the tuple directly
    if names:
        one = operator.attrgetter(names[0])
        return lambda msg: (one(msg),)
    return lambda msg: ()


def _text(raw: bytes) -> str:
    text = raw.rstrip(b"\0").decode("ascii")
    if "\0" in text:
        raise ValueError("NUL inside text")
    return text


def _make_from_frame(cls: type[Message]) -> typing.Callable[..., Message]:
    """Generate the decode-side constructor for `cls`.

    Decoding is the hot path (every telemetry frame), so, as `dataclasses` itself does, the constructor
    is generated as straight-line code: one dict lookup per enum field (KeyError for an undefined value)
    and no range checks, which the struct layout already guarantees.
    """
    env: dict[str, Any] = {"new": object.__new__, "text": _text}
    items = []
    for i, ((name, wire), enum_cls) in enumerate(zip(cls.LAYOUT, cls._ENUMS, strict=True)):
        if enum_cls is not None:
            env[f"e{i}"] = enum_cls._value2member_map_
            items.append(f"{name!r}: e{i}[v[{i + 5}]]")
        elif wire == "str16":
            items.append(f"{name!r}: text(v[{i + 5}])")
        else:
            items.append(f"{name!r}: v[{i + 5}]")
    # Filling the instance dict in one step goes past the frozen __setattr__ exactly as the dataclass's
    # own __init__ does with object.__setattr__, at a fraction of the cost.
    lines = [
        "def _from_frame(cls, v):",
        " obj = new(cls)",
        f" obj.__dict__.update({{{', '.join(items)}}})",
        " return obj",
    ]
    exec("\n".join(lines), env)  # noqa: S102 - code built from the class's own field names only
    return env["_from_frame"]  # type: ignore[no-any-return]


# --- host -> device -----------------------------------------------------------------------------------

H, D = Direction.HOST, Direction.DEVICE


@message(0x01, H, "")
class Identify(Message):
    """Ask who the device is. Answered by IDENTITY in any protocol version (frozen layout)."""


@message(0x02, H, "u32 u32 u32 u32 u32 u32 u32 u32 u32 u32")
class Configure(Message):
    """The limits the device enforces for this session (each at most its hardware limit)."""

    max_current_ua: int
    max_slew_ua_per_s: int
    max_dose_uas: int
    max_voltage_mv: int
    max_duration_ms: int
    min_impedance_ohm: int
    max_impedance_ohm: int
    area_mm2: int
    watchdog_ms: int
    compliance_timeout_ms: int


@message(0x03, H, "u8")
class SetPolarity(Message):
    polarity: Polarity


@message(0x04, H, "u16 u16")
class CheckContact(Message):
    """Apply a small probe current and report the impedance (answered by CONTACT)."""

    probe_ua: int
    duration_ms: int


@message(0x05, H, "")
class Arm(Message):
    pass


@message(0x06, H, "")
class Disarm(Message):
    pass


@message(0x07, H, "u32 u32")
class Start(Message):
    target_ua: int
    ramp_ms: int


@message(0x08, H, "u32 u32")
class SetTarget(Message):
    target_ua: int
    ramp_ms: int


@message(0x09, H, "u32")
class Stop(Message):
    ramp_ms: int


@message(0x0A, H, "")
class Abort(Message):
    """Ramp to zero at the configured maximum slew (the fastest safe stop)."""


@message(0x0B, H, "")
class OutputOff(Message):
    """Open the output relay at once (last resort) and latch FAULT(OUTPUT_CUT) if energised."""


@message(0x0C, H, "")
class ClearFault(Message):
    pass


@message(0x0D, H, "")
class Reset(Message):
    pass


@message(0x0E, H, "u16")
class Heartbeat(Message):
    """Feeds the host-loss watchdog; `counter` is echoed in TELEMETRY.heartbeat."""

    counter: int


@message(0x0F, H, "u16")
class SetTelemetry(Message):
    period_ms: int


# --- device -> host -----------------------------------------------------------------------------------


@message(0x80, D, "u8 u8 u8 u8")
class Ack(Message):
    acked_msg_id: int
    result: Result
    state: State
    fault: Fault


@message(0x81, D, "u8 u8 u8 u8 u8 u8 str16 str16 u32 u32 u32 u32")
class Identity(Message):
    proto_major: int
    proto_minor: int
    fw_major: int
    fw_minor: int
    fw_patch: int
    hw_rev: int
    model: str
    serial: str
    schema_hash: int
    hw_max_current_ua: int
    hw_compliance_mv: int
    capabilities: int


@message(0x82, D, "u32 i32 i32")
class Contact(Message):
    impedance_ohm: int
    voltage_mv: int
    current_ua: int


@message(0x83, D, "u32 u8 u8 u16 u8 u32 i32 i32 u32 u32 u32 u16")
class Telemetry(Message):
    t_ms: int
    state: State
    fault: Fault
    flags: int
    polarity: Polarity
    set_ua: int
    measured_ua: int
    output_mv: int
    impedance_ohm: int
    dose_uas: int
    energised_ms: int
    heartbeat: int


del H, D

#: IDENTIFY and IDENTITY keep their layout in every major version, so any host can learn any device's version.
VERSION_INDEPENDENT = frozenset({Identify.MSG_ID, Identity.MSG_ID})

#: Host messages that a host sends without ACK_REQ (everything else requests an ACK).
UNACKNOWLEDGED = frozenset({Heartbeat.MSG_ID})

#: Device messages sent on the device's own initiative (everything else the device sends is a response).
UNSOLICITED = frozenset({Telemetry.MSG_ID})

#: Host messages answered by a dedicated reply instead of ACK when they succeed.
REPLIES: dict[int, int] = {Identify.MSG_ID: Identity.MSG_ID, CheckContact.MSG_ID: Contact.MSG_ID}

for _cls in REGISTRY.values():
    if _cls.DIRECTION is Direction.DEVICE:
        _cls.DEFAULT_FLAGS = 0 if _cls.MSG_ID in UNSOLICITED else int(HeaderFlags.RESPONSE)
    else:
        _cls.DEFAULT_FLAGS = 0 if _cls.MSG_ID in UNACKNOWLEDGED else int(HeaderFlags.ACK_REQ)
del _cls

_SCHEMA_ENUMS: tuple[type[enum.Enum], ...] = (State, Fault, Result, Polarity, HeaderFlags, TelemetryFlags, Capability)


def schema_text() -> str:
    """The canonical text the schema hash is computed from (PROTOCOL.md, "Schema hash")."""
    lines = [f"protocol {PROTOCOL_MAJOR}"]
    for msg_id in sorted(REGISTRY):
        cls = REGISTRY[msg_id]
        layout = " ".join(f"{name}:{wire}" for name, wire in cls.LAYOUT)
        lines.append(f"0x{msg_id:02X} {cls.NAME} {cls.DIRECTION.value} {layout}".rstrip())
    for enum_cls in _SCHEMA_ENUMS:
        members = " ".join(f"{m.name}={int(m.value)}" for m in enum_cls)
        lines.append(f"enum {enum_cls.__name__} {members}")
    return "\n".join(lines) + "\n"


def _schema_hash() -> int:
    return int.from_bytes(hashlib.sha256(schema_text().encode("ascii")).digest()[:4], "little")


#: First four bytes (little-endian u32) of SHA-256 over `schema_text()`.
SCHEMA_HASH = _schema_hash()

"""Sans-I/O codec: messages to framed bytes and back.

    frame := COBS( body || CRC32_LE(body) ) 0x00
    body  := ver:u8 flags:u8 seq:u8 ack:u8 msg_id:u8 payload

`encode` builds one frame. `decode_frame` parses the bytes between two delimiters. `Decoder` is fed
arbitrary chunks of a byte stream and returns, in order, a `Packet` for every good frame and a
`ProtocolError` instance for every damaged or unacceptable one; it never raises on input and never
buffers more than one maximum frame, so garbage cannot make it grow.

Decoding runs for every telemetry frame, so `encode` and `decode_frame` are written as straight-line code
over each message's precomputed `FRAME` struct (header and payload packed in one call).
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

from cobs import cobs

from firmware_protocol.errors import (
    CobsError,
    CrcMismatch,
    FrameTooLong,
    FrameTooShort,
    InvalidMessage,
    MalformedPayload,
    ProtocolError,
    UnknownMessage,
    UnsupportedVersion,
)
from firmware_protocol.messages import (
    HEADER_FORMAT,
    MAX_BODY,
    PROTOCOL_MAJOR,
    REGISTRY,
    VERSION_INDEPENDENT,
    HeaderFlags,
    Message,
)

HEADER = struct.Struct(HEADER_FORMAT)
CRC_SIZE = 4
#: Largest COBS-encoded frame, delimiter excluded (one overhead byte per 254 data bytes, plus one).
MAX_ENCODED = MAX_BODY + CRC_SIZE + (MAX_BODY + CRC_SIZE) // 254 + 1
MIN_RAW = HEADER.size + CRC_SIZE
DELIMITER = b"\x00"
#: zlib's CRC-32 of any bytes followed by their own CRC-32 (little-endian) is this constant, so one
#: crc32() call over body and trailer checks a frame without slicing the trailer off.
CRC32_RESIDUE = 0x2144DF1C

_crc32 = zlib.crc32
_cobs_encode = cobs.encode
_cobs_decode = cobs.decode
_CobsDecodeError = cobs.DecodeError


class Packet(NamedTuple):
    """One decoded frame: the header fields and the message they carry (immutable).

    A named tuple rather than a dataclass: one is built for every frame received, and a tuple is the
    cheapest immutable record Python has.
    """

    message: Message
    seq: int = 0
    ack: int = 0
    flags: int = 0
    ver: int = PROTOCOL_MAJOR

    @property
    def is_response(self) -> bool:
        return bool(self.flags & HeaderFlags.RESPONSE)

    @property
    def is_retransmit(self) -> bool:
        return bool(self.flags & HeaderFlags.RETX)

    @property
    def wants_ack(self) -> bool:
        return bool(self.flags & HeaderFlags.ACK_REQ)


def default_flags(message: Message) -> int:
    """The flags a conforming sender uses for a fresh (not retransmitted) frame of this message."""
    return message.DEFAULT_FLAGS


def encode(
    message: Message, *, seq: int = 0, ack: int = 0, flags: int | None = None, ver: int = PROTOCOL_MAJOR
) -> bytes:
    """One complete frame for `message`, trailing delimiter included."""
    cls = type(message)
    try:
        body = cls.FRAME.pack(
            ver, cls.DEFAULT_FLAGS if flags is None else flags, seq, ack, cls.MSG_ID, *cls._GET(message)
        )
    except (struct.error, UnicodeEncodeError) as exc:
        raise InvalidMessage(f"{cls.NAME}: header or payload out of range: {exc}") from exc
    encoded: bytes = _cobs_encode(body + _crc32(body).to_bytes(4, "little"))
    return encoded + DELIMITER


def encode_packet(packet: Packet) -> bytes:
    return encode(packet.message, seq=packet.seq, ack=packet.ack, flags=packet.flags, ver=packet.ver)


def decode_frame(encoded: bytes) -> Packet:
    """Decode the bytes between two delimiters (without them). Raises a `ProtocolError` subclass."""
    if len(encoded) > MAX_ENCODED:
        raise FrameTooLong(f"frame of {len(encoded)} encoded bytes exceeds {MAX_ENCODED}", encoded)
    try:
        raw: bytes = _cobs_decode(encoded)
    except _CobsDecodeError as exc:
        raise CobsError(f"invalid COBS: {exc}", encoded) from None
    size = len(raw)
    if size < MIN_RAW:
        raise FrameTooShort(f"frame of {size} bytes is shorter than header and CRC", encoded)
    if _crc32(raw) != CRC32_RESIDUE:
        raise CrcMismatch("CRC-32 mismatch", encoded)
    ver = raw[0]
    msg_id = raw[4]
    if ver != PROTOCOL_MAJOR and msg_id not in VERSION_INDEPENDENT:
        raise UnsupportedVersion(f"protocol major version {ver}, this side speaks {PROTOCOL_MAJOR}", **_header(raw))
    cls = REGISTRY.get(msg_id)
    if cls is None:
        raise UnknownMessage(f"unknown msg_id 0x{msg_id:02X}", **_header(raw))
    frame = cls.FRAME
    if size - CRC_SIZE != frame.size:
        raise MalformedPayload(
            f"{cls.NAME}: payload of {size - CRC_SIZE - HEADER.size} bytes, expected {cls.STRUCT.size}",
            **_header(raw),
        )
    values = frame.unpack_from(raw)
    try:
        message = cls._from_frame(values)
    except KeyError as exc:
        raise MalformedPayload(f"{cls.NAME}: undefined value {exc}", **_header(raw)) from None
    except (ValueError, UnicodeError) as exc:
        raise MalformedPayload(f"{cls.NAME}: {exc}", **_header(raw)) from None
    return Packet(message, values[2], values[3], values[1], ver)


def _header(raw: bytes) -> dict[str, int]:
    ver, flags, seq, ack, msg_id = HEADER.unpack_from(raw)
    return {"ver": ver, "flags": flags, "seq": seq, "ack": ack, "msg_id": msg_id}


class Decoder:
    """Incremental stream decoder. Feed it any chunks; it returns what completed, in order."""

    def __init__(self) -> None:
        self._buffer = b""
        self._discarding = False  # inside an over-long frame: drop bytes until the next delimiter
        self.frames_ok = 0
        self.frames_bad = 0

    def feed(self, data: bytes) -> list[Packet | ProtocolError]:
        buffer = self._buffer + data if self._buffer else bytes(data)
        frames = buffer.split(DELIMITER)
        rest = frames.pop()
        if self._discarding and frames:
            self._discarding = False
            del frames[0]  # the tail of a frame already reported as too long
        events: list[Packet | ProtocolError] = []
        append = events.append
        bad = 0
        for encoded in frames:
            if not encoded:
                continue  # back-to-back delimiters are idle line, not frames
            try:
                append(decode_frame(encoded))
            except ProtocolError as exc:
                append(exc)
                bad += 1
        if len(rest) > MAX_ENCODED:
            if not self._discarding:
                append(FrameTooLong(f"more than {MAX_ENCODED} bytes without a delimiter", rest[:64]))
                bad += 1
            self._discarding = True
            rest = b""
        self._buffer = rest
        self.frames_bad += bad
        self.frames_ok += len(events) - bad
        return events

    @property
    def pending(self) -> int:
        """Bytes held while waiting for a delimiter."""
        return len(self._buffer)

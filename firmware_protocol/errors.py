"""The protocol's own error types.

Everything the codec can complain about is a `ProtocolError`. Decoding never lets a `struct.error`,
`IndexError` or a `cobs` exception escape: it reports one of these instead. Damaged frames are yielded by
the decoder as values (so one bad frame does not stop the stream); `encode` raises `InvalidMessage`.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error the wire protocol reports."""


class InvalidMessage(ProtocolError, ValueError):
    """A message was built with a field out of its range (the caller's fault, before anything is sent)."""


class FrameError(ProtocolError):
    """A frame arrived damaged and was dropped; the decoder resynchronises at the next delimiter.

    `raw` holds the bytes between delimiters as received (COBS-encoded), for logging.
    """

    def __init__(self, message: str, raw: bytes = b"") -> None:
        super().__init__(message)
        self.raw = raw


class CobsError(FrameError):
    """The bytes between two delimiters are not valid COBS."""


class CrcMismatch(FrameError):
    """The CRC-32 trailer does not match the body: at least one bit was damaged."""


class FrameTooShort(FrameError):
    """Fewer bytes than a header and a CRC: no body can be in it."""


class FrameTooLong(FrameError):
    """More bytes than the largest legal frame arrived without a delimiter; they were discarded."""


class PacketError(ProtocolError):
    """A frame passed its CRC but its content cannot be accepted.

    Carries the header fields so that a device can still answer (for example with UNSUPPORTED_VERSION
    or UNKNOWN_MESSAGE for `seq`).
    """

    def __init__(self, message: str, *, ver: int, flags: int, seq: int, ack: int, msg_id: int) -> None:
        super().__init__(message)
        self.ver = ver
        self.flags = flags
        self.seq = seq
        self.ack = ack
        self.msg_id = msg_id


class UnsupportedVersion(PacketError):
    """The frame's major version is not the one this codec speaks."""


class UnknownMessage(PacketError):
    """The msg_id is not defined in this major version."""


class MalformedPayload(PacketError):
    """The payload has the wrong length for its msg_id, or a field holds an undefined value."""

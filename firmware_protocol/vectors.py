"""The golden vectors: field values <-> frame bytes, for this codec's tests and any firmware's.

`vectors.json` is committed and reviewed; it is the conformance suite of PROTOCOL.md and must only change
together with the protocol version. `python -m firmware_protocol.vectors` prints what this codec would
write, so a deliberate protocol change can regenerate the file (and the diff shows what changed).

Invalid vectors are built here from raw bytes (struct, zlib, COBS), not through `encode`, so that they
stay damaged in exactly the documented way.
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from importlib import resources
from typing import Any

from cobs import cobs

from firmware_protocol import messages as m
from firmware_protocol.codec import default_flags, encode

VECTORS_FILE = "vectors.json"

_U32_MAX = 0xFFFF_FFFF


def _valid_cases() -> list[tuple[str, m.Message, dict[str, int]]]:
    """(name, message, header) for every message type, with edge values where a field has them."""
    seq = {"seq": 0x2A}
    resp = {"seq": 0x11, "ack": 0x2A}
    return [
        ("identify", m.Identify(), seq),
        ("identify_foreign_version", m.Identify(), {"seq": 0, "ver": 7}),
        (
            "configure_dexamethasone",
            m.Configure(4000, 200, 2_400_000, 60_000, 900_000, 500, 50_000, 1000, 1000, 0),
            seq,
        ),
        ("configure_max", m.Configure(*(_U32_MAX,) * 10), {"seq": 0xFF}),
        ("set_polarity_cathode", m.SetPolarity(m.Polarity.CATHODE), seq),
        ("set_polarity_anode_retx", m.SetPolarity(m.Polarity.ANODE), {"seq": 3, "flags": 0x03}),
        ("check_contact", m.CheckContact(100, 200), seq),
        ("arm", m.Arm(), seq),
        ("disarm", m.Disarm(), seq),
        ("start", m.Start(4000, 30_000), seq),
        ("set_target_pause", m.SetTarget(0, 10_000), seq),
        ("stop", m.Stop(30_000), seq),
        ("abort", m.Abort(), seq),
        ("output_off", m.OutputOff(), seq),
        ("clear_fault", m.ClearFault(), seq),
        ("reset", m.Reset(), seq),
        ("heartbeat", m.Heartbeat(65535), {"seq": 0x00}),
        ("set_telemetry", m.SetTelemetry(100), seq),
        ("ack_ok", m.Ack(m.Start.MSG_ID, m.Result.OK, m.State.RAMP_UP, m.Fault.NONE), resp),
        ("ack_fault_latched", m.Ack(m.Start.MSG_ID, m.Result.FAULT_LATCHED, m.State.FAULT, m.Fault.HOST_LOST), resp),
        ("ack_unknown_message", m.Ack(0x7E, m.Result.UNKNOWN_MESSAGE, m.State.IDLE, m.Fault.NONE), resp),
        (
            "identity",
            m.Identity(
                m.PROTOCOL_MAJOR,
                m.PROTOCOL_MINOR,
                1,
                2,
                3,
                4,
                "IONTO-SIM 1",
                "SN-000123",
                m.SCHEMA_HASH,
                50_000,
                60_000,
                0x1F,
            ),
            resp,
        ),
        ("identity_long_text", m.Identity(9, 1, 0, 0, 0, 0, "M" * 16, "S" * 16, 0, 0, 0, 0), resp),
        ("contact", m.Contact(20_300, 2_030, 100), resp),
        ("contact_open", m.Contact(m.IMPEDANCE_UNKNOWN, 60_000, 0), resp),
        (
            "telemetry_running",
            m.Telemetry(
                123_456,
                m.State.RUNNING,
                m.Fault.NONE,
                0x001A,
                m.Polarity.CATHODE,
                4000,
                3987,
                44_100,
                11_061,
                1_234_567,
                345_678,
                42,
            ),
            {"seq": 0x80},
        ),
        (
            "telemetry_fault_negative",
            m.Telemetry(
                _U32_MAX,
                m.State.FAULT,
                m.Fault.OPEN_CIRCUIT,
                0x0003,
                m.Polarity.ANODE,
                0,
                -12,
                -60_000,
                m.IMPEDANCE_UNKNOWN,
                _U32_MAX,
                0,
                0,
            ),
            {"seq": 0xFF},
        ),
    ]


def _frame(body: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(body) if crc is None else crc
    encoded: bytes = cobs.encode(body + crc.to_bytes(4, "little"))
    return encoded + b"\x00"


def _invalid_cases() -> list[dict[str, Any]]:
    good_body = struct.pack("<BBBBB", 1, 1, 5, 0, m.Arm.MSG_ID)
    good = _frame(good_body)
    flipped = bytearray(good)
    flipped[2] ^= 0x10  # one bit inside the CRC trailer
    return [
        {"name": "crc_bit_flip", "hex": bytes(flipped).hex(), "error": "CrcMismatch"},
        {"name": "crc_wrong", "hex": _frame(good_body, zlib.crc32(good_body) ^ 1).hex(), "error": "CrcMismatch"},
        {"name": "cobs_overrun", "hex": "05010200", "error": "CobsError"},
        {"name": "header_incomplete", "hex": _frame(b"\x01\x01\x05\x00").hex(), "error": "FrameTooShort"},
        {"name": "shorter_than_crc", "hex": cobs.encode(b"\x01\x02\x03").hex() + "00", "error": "FrameTooShort"},
        {
            "name": "unsupported_version",
            "hex": _frame(struct.pack("<BBBBB", 2, 1, 5, 0, m.Arm.MSG_ID)).hex(),
            "error": "UnsupportedVersion",
        },
        {
            "name": "unknown_msg_id",
            "hex": _frame(struct.pack("<BBBBB", 1, 1, 5, 0, 0x7E)).hex(),
            "error": "UnknownMessage",
        },
        {
            "name": "payload_too_long",
            "hex": _frame(struct.pack("<BBBBBB", 1, 1, 5, 0, m.Arm.MSG_ID, 0)).hex(),
            "error": "MalformedPayload",
        },
        {
            "name": "payload_too_short",
            "hex": _frame(struct.pack("<BBBBBH", 1, 1, 5, 0, m.Start.MSG_ID, 7)).hex(),
            "error": "MalformedPayload",
        },
        {
            "name": "undefined_polarity",
            "hex": _frame(struct.pack("<BBBBBB", 1, 1, 5, 0, m.SetPolarity.MSG_ID, 3)).hex(),
            "error": "MalformedPayload",
        },
    ]


def generate() -> dict[str, Any]:
    """The vectors document this codec produces (see module docstring)."""
    valid = []
    for name, msg, header in _valid_cases():
        frame = encode(msg, **header)
        valid.append(
            {
                "name": name,
                "message": msg.NAME,
                "msg_id": msg.MSG_ID,
                "header": {
                    "ver": header.get("ver", m.PROTOCOL_MAJOR),
                    "flags": int(header.get("flags", default_flags(msg))),
                    "seq": header.get("seq", 0),
                    "ack": header.get("ack", 0),
                },
                "fields": msg.to_fields(),
                "hex": frame.hex(),
            }
        )
    return {
        "protocol": f"{m.PROTOCOL_MAJOR}.{m.PROTOCOL_MINOR}",
        "schema_hash": f"0x{m.SCHEMA_HASH:08X}",
        "schema_text": m.schema_text(),
        "crc32_check": {"ascii": "123456789", "crc32": f"0x{zlib.crc32(b'123456789'):08X}"},
        "valid": valid,
        "invalid": _invalid_cases(),
    }


def load() -> dict[str, Any]:
    """The committed vectors file."""
    text = resources.files("firmware_protocol").joinpath(VECTORS_FILE).read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def main() -> None:
    json.dump(generate(), sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

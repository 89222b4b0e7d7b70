"""The golden vectors are the conformance suite: this codec must meet them in both directions.

The frames are also checked with a reference COBS decoder written here from Cheshire & Baker, so the
vectors do not merely restate whatever the `cobs` package does.
"""

from __future__ import annotations

import struct
import zlib

import pytest

import firmware_protocol as fp
from firmware_protocol import REGISTRY, SCHEMA_HASH, Packet, decode_frame, encode, schema_text
from firmware_protocol.vectors import generate, load

VECTORS = load()
VALID = VECTORS["valid"]
INVALID = VECTORS["invalid"]


def reference_cobs_decode(data: bytes) -> bytes:
    """COBS decoding as the paper describes it: each code byte n is followed by n-1 data bytes and,
    unless n is 0xFF or the block ends the frame, an implied zero."""
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        assert code != 0 and i + code <= len(data), "not COBS"
        out += data[i + 1 : i + code]
        i += code
        if code != 0xFF and i < len(data):
            out.append(0)
    return bytes(out)


def test_every_message_type_has_a_vector() -> None:
    assert {v["msg_id"] for v in VALID} == set(REGISTRY)


@pytest.mark.parametrize("vector", VALID, ids=[v["name"] for v in VALID])
def test_vector_fields_encode_to_its_bytes(vector: dict) -> None:
    cls = REGISTRY[vector["msg_id"]]
    message = cls.from_fields(vector["fields"])
    assert encode(message, **vector["header"]).hex() == vector["hex"]


@pytest.mark.parametrize("vector", VALID, ids=[v["name"] for v in VALID])
def test_vector_bytes_decode_to_its_fields(vector: dict) -> None:
    frame = bytes.fromhex(vector["hex"])
    packet = decode_frame(frame[:-1])
    assert isinstance(packet, Packet)
    assert packet.message.NAME == vector["message"]
    assert packet.message.to_fields() == vector["fields"]
    header = vector["header"]
    assert (packet.ver, packet.flags, packet.seq, packet.ack) == (
        header["ver"],
        header["flags"],
        header["seq"],
        header["ack"],
    )


@pytest.mark.parametrize("vector", VALID, ids=[v["name"] for v in VALID])
def test_vector_bytes_match_the_documented_layout(vector: dict) -> None:
    frame = bytes.fromhex(vector["hex"])
    assert frame[-1] == 0 and 0 not in frame[:-1]
    raw = reference_cobs_decode(frame[:-1])
    body, crc = raw[:-4], struct.unpack("<I", raw[-4:])[0]
    assert zlib.crc32(body) == crc
    h = vector["header"]
    assert tuple(body[:5]) == (h["ver"], h["flags"], h["seq"], h["ack"], vector["msg_id"])
    assert len(body) - 5 == REGISTRY[vector["msg_id"]].STRUCT.size


@pytest.mark.parametrize("vector", INVALID, ids=[v["name"] for v in INVALID])
def test_invalid_vector_is_rejected_with_its_error(vector: dict) -> None:
    frame = bytes.fromhex(vector["hex"])
    with pytest.raises(getattr(fp, vector["error"])):
        decode_frame(frame[:-1])
    (event,) = fp.Decoder().feed(frame)
    assert type(event).__name__ == vector["error"]


def test_schema_text_and_hash_match_the_vectors() -> None:
    assert VECTORS["schema_text"] == schema_text()
    assert VECTORS["schema_hash"] == f"0x{SCHEMA_HASH:08X}"


def test_crc_check_value_is_the_standard_one() -> None:
    assert VECTORS["crc32_check"]["crc32"] == "0xCBF43926" == f"0x{zlib.crc32(b'123456789'):08X}"


def test_committed_vectors_are_what_the_codec_generates() -> None:
    # A codec change that alters any byte must come with regenerated (and reviewed) vectors.
    assert generate() == VECTORS

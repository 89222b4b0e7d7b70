"""The codec's contract: round trips, stream splitting, damage detection and resynchronisation."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_protocol import (
    MAX_ENCODED,
    Arm,
    CobsError,
    CrcMismatch,
    Decoder,
    FrameTooLong,
    HeaderFlags,
    Heartbeat,
    Identify,
    Identity,
    Packet,
    ProtocolError,
    Start,
    Telemetry,
    UnknownMessage,
    UnsupportedVersion,
    decode_frame,
    encode,
    encode_packet,
)
from firmware_protocol.vectors import load
from tests.firmware_protocol.strategies import frames, packets


def decode_all(data: bytes) -> list[Packet | ProtocolError]:
    return Decoder().feed(data)


@given(packets())
def test_encode_then_decode_returns_the_same_packet(packet: Packet) -> None:
    frame = encode_packet(packet)
    assert frame.endswith(b"\x00") and b"\x00" not in frame[:-1]
    assert decode_frame(frame[:-1]) == packet


@given(frames(max_size=8), st.data())
def test_a_stream_split_at_arbitrary_points_decodes_to_the_same_packets(items, data) -> None:
    stream = b"".join(frame for _, frame in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    decoder = Decoder()
    events: list[Packet | ProtocolError] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        events += decoder.feed(stream[start:end])
    assert events == [packet for packet, _ in items]
    assert decoder.pending == 0


@given(frames(max_size=6), st.data())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_garbage_between_frames_loses_at_most_the_frame_it_touches(items, data) -> None:
    stream = b""
    expected = []
    for packet, frame in items:
        garbage = data.draw(st.binary(max_size=40) | st.binary(min_size=MAX_ENCODED, max_size=MAX_ENCODED + 40))
        stream += garbage + frame
        # Garbage not ending in a delimiter glues onto the next frame and damages it; nothing else is lost.
        if not garbage or garbage.endswith(b"\x00"):
            expected.append(packet)
    events = decode_all(stream)
    assert [e for e in events if isinstance(e, Packet)] == expected
    assert all(isinstance(e, (Packet, ProtocolError)) for e in events)


def _valid_frames() -> list[bytes]:
    return [bytes.fromhex(v["hex"]) for v in load()["valid"]]


@pytest.mark.parametrize("frame", _valid_frames(), ids=[v["name"] for v in load()["valid"]])
def test_every_single_bit_flip_of_a_frame_is_rejected(frame: bytes) -> None:
    # Exhaustive over every bit of every golden frame, the delimiter included; a trailing delimiter
    # flushes whatever a flipped delimiter left pending.
    for index in range(len(frame)):
        for bit in range(8):
            damaged = bytearray(frame)
            damaged[index] ^= 1 << bit
            events = decode_all(bytes(damaged) + b"\x00")
            assert events, f"byte {index} bit {bit}: nothing reported"
            assert not [e for e in events if isinstance(e, Packet)], f"byte {index} bit {bit} accepted"


def test_a_damaged_frame_does_not_hide_the_next_one() -> None:
    good = encode(Heartbeat(1), seq=1)
    bad = bytearray(encode(Heartbeat(2), seq=2))
    bad[3] ^= 0x01
    events = decode_all(bytes(bad) + good)
    assert isinstance(events[0], CrcMismatch)
    assert events[1] == Packet(Heartbeat(1), seq=1, flags=0)


def test_an_endless_run_without_delimiter_is_reported_once_and_memory_stays_bounded() -> None:
    decoder = Decoder()
    events = []
    for _ in range(100):
        events += decoder.feed(b"\x55" * 100)
        assert decoder.pending <= MAX_ENCODED
    assert [type(e) for e in events] == [FrameTooLong]
    # The tail of the over-long frame is dropped at the next delimiter; the frame after it survives.
    assert decoder.feed(b"\x55\x00" + encode(Arm(), seq=9)) == [Packet(Arm(), seq=9, flags=HeaderFlags.ACK_REQ)]


def test_idle_delimiters_between_frames_are_ignored() -> None:
    frame = encode(Arm(), seq=4)
    assert decode_all(b"\x00\x00" + frame + b"\x00\x00\x00") == [Packet(Arm(), seq=4, flags=HeaderFlags.ACK_REQ)]


def test_a_foreign_major_version_is_reported_with_its_header() -> None:
    event = decode_all(encode(Start(1000, 0), seq=77, ver=2))[0]
    assert isinstance(event, UnsupportedVersion)
    assert (event.ver, event.seq, event.msg_id) == (2, 77, Start.MSG_ID)


def test_identify_and_identity_decode_in_any_version() -> None:
    identity = Identity(3, 1, 0, 0, 1, 0, "FUTURE", "SN9", 0, 1, 2, 0)
    assert decode_frame(encode(Identify(), ver=3)[:-1]).ver == 3
    assert decode_frame(encode(identity, ver=3)[:-1]).message == identity


def test_an_unknown_msg_id_is_reported_not_crashed_on() -> None:
    event = decode_all(bytes.fromhex(next(v["hex"] for v in load()["invalid"] if v["name"] == "unknown_msg_id")))[0]
    assert isinstance(event, UnknownMessage) and event.msg_id == 0x7E and event.seq == 5


def test_invalid_cobs_is_reported_as_a_cobs_error() -> None:
    assert isinstance(decode_all(b"\x05\x01\x02\x00")[0], CobsError)


def test_default_flags_follow_the_message_kind() -> None:
    assert decode_frame(encode(Arm())[:-1]).wants_ack
    assert decode_frame(encode(Heartbeat(0))[:-1]).flags == 0
    telemetry = Telemetry(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    assert decode_frame(encode(telemetry)[:-1]).flags == 0
    assert decode_frame(encode(Identity(1, 0, 0, 0, 0, 0, "", "", 0, 0, 0, 0))[:-1]).is_response


@pytest.mark.slow
@settings(max_examples=20_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_nothing_but_protocol_errors(data: bytes) -> None:
    try:
        decode_frame(data)
    except ProtocolError:
        pass
    events = Decoder().feed(data + b"\x00")
    assert all(isinstance(e, (Packet, ProtocolError)) for e in events)

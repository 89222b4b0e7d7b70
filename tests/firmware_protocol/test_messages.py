"""Messages are validated when built, so nothing out of range can reach the wire."""

from __future__ import annotations

import struct
import zlib

import pytest
from cobs import cobs

from firmware_protocol import (
    Configure,
    Fault,
    Heartbeat,
    Identity,
    InvalidMessage,
    MalformedPayload,
    ProtocolError,
    SetPolarity,
    State,
    Telemetry,
    decode_frame,
    encode,
)


def telemetry(**overrides: object) -> Telemetry:
    fields = dict(
        t_ms=0,
        state=State.IDLE,
        fault=Fault.NONE,
        flags=0,
        polarity=0,
        set_ua=0,
        measured_ua=0,
        output_mv=0,
        impedance_ohm=0,
        dose_uas=0,
        energised_ms=0,
        heartbeat=0,
    )
    fields.update(overrides)
    return Telemetry(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "overrides",
    [
        {"set_ua": -1},
        {"set_ua": 2**32},
        {"measured_ua": 2**31},
        {"heartbeat": 65536},
        {"flags": 1.5},
        {"dose_uas": True},
        {"state": 7},
        {"fault": 99},
        {"polarity": 3},
    ],
)
def test_a_field_out_of_range_is_refused_when_built(overrides: dict) -> None:
    with pytest.raises(InvalidMessage) as info:
        telemetry(**overrides)
    assert "TELEMETRY." + next(iter(overrides)) in str(info.value)


def test_invalid_message_is_both_a_protocol_error_and_a_value_error() -> None:
    with pytest.raises(ProtocolError):
        Heartbeat(-1)
    with pytest.raises(ValueError):
        Heartbeat(-1)


def test_enum_fields_accept_their_numbers_and_become_enums() -> None:
    assert telemetry(state=3, fault=5).state is State.RUNNING
    assert telemetry(fault=5).fault is Fault.OPEN_CIRCUIT


@pytest.mark.parametrize("text", ["x" * 17, "caf\u00e9", "a\0b"])
def test_text_fields_must_be_short_ascii_without_nul(text: str) -> None:
    with pytest.raises(InvalidMessage):
        Identity(1, 0, 0, 0, 0, 0, text, "S", 0, 0, 0, 0)


def test_messages_are_immutable() -> None:
    message = Heartbeat(1)
    with pytest.raises(AttributeError):
        message.counter = 2  # type: ignore[misc]


def test_header_out_of_range_is_refused_by_encode() -> None:
    with pytest.raises(InvalidMessage):
        encode(Heartbeat(1), seq=256)


def test_an_undefined_enum_value_on_the_wire_is_a_malformed_payload() -> None:
    # Built from the raw layout: the dataclass itself would refuse polarity 9.
    body = struct.pack("<BBBBBB", 1, 1, 1, 0, SetPolarity.MSG_ID, 9)
    with pytest.raises(MalformedPayload) as info:
        decode_frame(cobs.encode(body + zlib.crc32(body).to_bytes(4, "little")))
    assert info.value.seq == 1 and info.value.msg_id == SetPolarity.MSG_ID


def test_from_fields_accepts_enum_names() -> None:
    fields = telemetry(state=State.FAULT, fault=Fault.HOST_LOST).to_fields()
    assert fields["state"] == "FAULT"
    assert Telemetry.from_fields(fields) == telemetry(state=State.FAULT, fault=Fault.HOST_LOST)


def test_configure_has_the_limits_a_host_sends() -> None:
    names = {name for name, _ in Configure.LAYOUT}
    assert {
        "max_current_ua",
        "max_slew_ua_per_s",
        "max_dose_uas",
        "max_voltage_mv",
        "max_duration_ms",
        "min_impedance_ohm",
        "max_impedance_ohm",
        "area_mm2",
        "watchdog_ms",
    } <= names


@pytest.mark.parametrize("payload", [b"", b"\x00" * 34, b"\x00" * 4 + b"\x09" + b"\x00" * 30])
def test_from_payload_reports_bad_bytes_as_invalid_message(payload: bytes) -> None:
    with pytest.raises(InvalidMessage):
        Telemetry.from_payload(payload)

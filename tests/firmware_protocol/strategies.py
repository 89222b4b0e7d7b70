"""Hypothesis strategies for arbitrary valid messages and packets, derived from the message table."""

from __future__ import annotations

from hypothesis import strategies as st

from firmware_protocol import PROTOCOL_MAJOR, REGISTRY, VERSION_INDEPENDENT, Message, Packet, encode_packet

_INT_RANGES = {"u8": (0, 0xFF), "u16": (0, 0xFFFF), "u32": (0, 0xFFFF_FFFF), "i32": (-(2**31), 2**31 - 1)}
_TEXT = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=127), max_size=16)


def _field(wire: str, enum_cls: type | None) -> st.SearchStrategy[object]:
    if enum_cls is not None:
        return st.sampled_from(list(enum_cls))
    if wire == "str16":
        return _TEXT
    lo, hi = _INT_RANGES[wire]
    return st.integers(lo, hi)


def message_of(cls: type[Message]) -> st.SearchStrategy[Message]:
    fields = {name: _field(wire, enum_cls) for (name, wire), enum_cls in zip(cls.LAYOUT, cls._ENUMS, strict=True)}
    return st.builds(cls, **fields)


messages: st.SearchStrategy[Message] = st.one_of([message_of(cls) for cls in REGISTRY.values()])


@st.composite
def packets(draw: st.DrawFn) -> Packet:
    msg = draw(messages)
    ver = draw(st.integers(0, 255)) if msg.MSG_ID in VERSION_INDEPENDENT else PROTOCOL_MAJOR
    return Packet(
        msg, seq=draw(st.integers(0, 255)), ack=draw(st.integers(0, 255)), flags=draw(st.integers(0, 255)), ver=ver
    )


def frames(min_size: int = 1, max_size: int = 12) -> st.SearchStrategy[list[tuple[Packet, bytes]]]:
    return st.lists(packets().map(lambda p: (p, encode_packet(p))), min_size=min_size, max_size=max_size)

"""Fuzz target: the incremental frame decoder (`firmware_protocol.Decoder`).

`test_one_input` takes any bytes: the first byte picks a chunk size (1..64), the rest is a byte stream fed to
a `Decoder` in chunks of that size. Only the protocol's own `ProtocolError` types may come out of the decoder,
and only as yielded values; anything raised is a crash. Besides, the stream must decode to the same events
whether it arrives in chunks or in one piece, the decoder must never hold more than one maximum frame, and
every packet it yields must survive `encode_packet` -> `decode_frame` unchanged.

Run it under atheris (coverage-guided; libFuzzer options such as `-runs=N` and corpus directories pass
through)::

    python -m tests.fuzz.fuzz_decoder -runs=1000000 CORPUS_DIR
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

try:
    import atheris
except ImportError:  # the hypothesis fallback in tests/fuzz/test_fuzz.py drives test_one_input instead
    atheris = None

# Instrument the package under test for coverage when run as the fuzzer, and only then.
_fuzzing = atheris is not None and __name__ == "__main__"
with atheris.instrument_imports(include=["firmware_protocol"]) if _fuzzing else contextlib.nullcontext():
    from firmware_protocol import MAX_ENCODED, Decoder, Packet, ProtocolError, decode_frame, encode_packet

VECTORS = Path(__file__).resolve().parents[2] / "firmware_protocol" / "vectors.json"
MAX_CHUNK = 64


def _signature(event: Packet | ProtocolError) -> object:
    return event if isinstance(event, Packet) else type(event).__name__


def test_one_input(data: bytes) -> None:
    if not data:
        return
    chunk, stream = data[0] % MAX_CHUNK + 1, data[1:]
    decoder = Decoder()
    events: list[Packet | ProtocolError] = []
    for start in range(0, len(stream), chunk):
        events += decoder.feed(stream[start : start + chunk])
        assert decoder.pending <= MAX_ENCODED, f"decoder holds {decoder.pending} bytes"
    assert decoder.frames_ok + decoder.frames_bad == len(events)
    for event in events:
        assert isinstance(event, Packet | ProtocolError), f"decoder yielded {event!r}"
        if isinstance(event, Packet):
            again = decode_frame(encode_packet(event)[:-1])
            assert again == event, f"{event!r} re-encoded decodes to {again!r}"
    whole = Decoder().feed(stream)
    assert [_signature(e) for e in whole] == [_signature(e) for e in events], "chunking changed the events"


def seeds() -> list[bytes]:
    """Every golden vector, valid and invalid, as one stream each (chunk-size byte first), and all in one stream."""
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))
    frames = [bytes.fromhex(v["hex"]) for v in vectors["valid"] + vectors["invalid"]]
    return [bytes([i % MAX_CHUNK]) + frame for i, frame in enumerate(frames)] + [b"\x07" + b"".join(frames)]


def main(argv: list[str]) -> None:
    if atheris is None:
        raise SystemExit("atheris is not installed: pip install 'ionctl[fuzz]'")
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)

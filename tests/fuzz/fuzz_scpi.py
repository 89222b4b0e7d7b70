"""Fuzz target: the simulated SourceMeter's SCPI parser (`sim.scpi_syntax`, `sim.scpi.SourceMeter`).

`test_one_input` takes any bytes and sends them, line by line, through the simulator's own line framing
(`sim.cli.ScpiLink`, as the TCP and pty endpoints do) to a fresh `SourceMeter` on the normal skin load, the
instrument clock moving 10 ms per line. The instrument must answer everything without raising (a bad unit
queues an SCPI error). Each message unit is also parsed on its own with `parse_unit`, and each parameter read as
every kind of program data the command table uses; those may raise the parser's `ScpiError`, and nothing else.

Run it under atheris (libFuzzer options such as `-runs=N` and corpus directories pass through)::

    python -m tests.fuzz.fuzz_scpi -runs=1000000 CORPUS_DIR
"""

from __future__ import annotations

import contextlib
import random
import sys

try:
    import atheris
except ImportError:  # the hypothesis fallback in tests/fuzz/test_fuzz.py drives test_one_input instead
    atheris = None

# Instrument the package under test for coverage when run as the fuzzer, and only then.
_fuzzing = atheris is not None and __name__ == "__main__"
with atheris.instrument_imports(include=["sim"]) if _fuzzing else contextlib.nullcontext():
    from sim.cli import ScpiLink
    from sim.plant import LOAD_PRESETS, Plant
    from sim.scpi import SourceMeter
    from sim.scpi_syntax import (
        ScpiError,
        boolean,
        message_units,
        number,
        numeric_value,
        parse_unit,
        string,
    )

STEP_S = 0.01

#: Program messages a host really sends: the SCPI driver's set-up and sampling, and a few compound ones.
SEED_LINES = (
    "*RST;*CLS;*IDN?",
    ":SOUR:FUNC CURR;:SOUR:CURR:MODE FIX;:SOUR:CURR 0;:SOUR:CLE:AUTO OFF",
    ":SENS:FUNC:CONC ON;:SENS:VOLT:PROT 21;:FORM:ELEM VOLT,CURR,TIME,STAT;:SYST:TIME:RES",
    ":SOUR:CURR:RANG 0.005;:SENS:VOLT:PROT 60",
    ":SOUR:CURR -0.001;:OUTP ON;:READ?",
    ":OUTP?;:SYST:ERR:ALL?",
    "SOUR:CURR:LEV 1.5 mA;LEV?;:MEAS:VOLT?;:MEAS:CURR?",
    ":sense:function 'volt','curr';:sens:func?;*ESR?;*STB?;*OPC?",
    ':TRIG:COUN 3;:INIT;:FETC?;:SYST:BEEP 1000,0.1;:DISP:TEXT "a""b"',
    ":SOUR:CURR? MAX;:SOUR:VOLT:RANG DEF;:SYST:ERR?;*ESE 255;*SRE?",
)


def test_one_input(data: bytes) -> None:
    meter = SourceMeter(Plant(LOAD_PRESETS["normal"], rng=random.Random(0)))
    link = ScpiLink(meter, start_s=0.0, time_scale=1.0)
    lines = data.split(b"\n")
    for i, line in enumerate(lines, start=1):
        link.receive(line + b"\n", now_s=i * STEP_S)
        _parse_alone(line.decode("ascii", "replace").rstrip("\r"))
    output = link.take_output()
    assert not output or output.endswith(b"\n"), f"unterminated response {output[-40:]!r}"
    output.decode("ascii")  # responses are ASCII (IEEE 488.2 response data)


def _parse_alone(program_message: str) -> None:
    path: tuple[str, ...] = ()
    for text in message_units(program_message):
        try:
            unit = parse_unit(text, path)
        except ScpiError:
            continue
        path = unit.path
        for param in unit.params:
            for read in (number, boolean, string, lambda p: numeric_value(p, "A", -1.05, 1.05, 0.0)):
                try:
                    read(param)
                except ScpiError:
                    pass


def seeds() -> list[bytes]:
    """Each seed line alone, and all of them as one session."""
    return [line.encode() for line in SEED_LINES] + ["\r\n".join(SEED_LINES).encode()]


def main(argv: list[str]) -> None:
    if atheris is None:
        raise SystemExit("atheris is not installed: pip install 'ionctl[fuzz]'")
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)

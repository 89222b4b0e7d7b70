"""The SCPI SourceMeter on a line-based link: `ScpiLink` frames the sans-I/O `sim.scpi.SourceMeter` (one
command per `\\n`-terminated line) on the simulator's scaled clock, injects the link's faults (`ScpiFault`,
`--scpi-fault`) and writes the instrument's ground truth (`--scpi-trace`). `sim.server` carries its bytes over
a pty or a TCP socket.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from sim.plant import MAX_CATCH_UP_S

if TYPE_CHECKING:
    from sim.scpi import SourceMeter

SCPI_FAULT_KINDS = ("garble-replies", "unreachable", "garble-then-unreachable")


@dataclass(frozen=True)
class ScpiFault:
    """A fault of the link to the SourceMeter (not of the instrument), from `at_s` instrument seconds after
    the output was first switched on, for `duration_s` (None: to the end).

    * `garble-replies`: the first byte of every reply arrives damaged (its top bit set, so it is not ASCII
      or UTF-8 text), as on a serial line at the wrong baud rate or a noisy link. Commands still arrive and
      are executed.
    * `unreachable`: nothing gets through either way (a pulled cable): commands are lost, nothing is
      answered, and the output stays as it was.
    * `garble-then-unreachable`: one reply arrives damaged, then the link is cut as `unreachable` (a link
      failing: the host sees the bad reply first, and nothing it sends afterwards arrives)."""

    kind: str
    at_s: float
    duration_s: float | None = None

    @classmethod
    def parse(cls, text: str) -> ScpiFault:
        kind, sep, when = text.partition("@")
        if kind not in SCPI_FAULT_KINDS or not sep:
            raise ValueError(f"SCPI fault {text!r}: expected KIND@T[:D], KIND one of {', '.join(SCPI_FAULT_KINDS)}")
        at, colon, duration = when.partition(":")
        try:
            at_s, duration_s = float(at), float(duration) if colon else None
        except ValueError:
            raise ValueError(f"SCPI fault {text!r}: T and D are device seconds, e.g. garble-replies@5:10") from None
        if not (math.isfinite(at_s) and at_s >= 0) or (
            duration_s is not None and not (math.isfinite(duration_s) and duration_s > 0)
        ):
            raise ValueError(f"SCPI fault {text!r}: T must be >= 0 and D > 0 (device seconds)")
        return cls(kind, at_s, duration_s)

    def active(self, since_on_s: float | None) -> bool:
        if since_on_s is None or since_on_s < self.at_s:
            return False
        return self.duration_s is None or since_on_s < self.at_s + self.duration_s


class ScpiLink:
    """Line framing (`\\n`) around the sans-I/O SourceMeter, on the same scaled clock as the device, with the
    link's faults (`ScpiFault`) and the instrument's ground truth (`trace`: a JSONL row at every change of
    the output or the source level, and at the end)."""

    def __init__(
        self, meter: SourceMeter, *, start_s: float, time_scale: float, faults: Sequence[ScpiFault] = (),
        trace: str | None = None,
    ) -> None:  # fmt: skip
        self.meter = meter
        self.start_s = start_s
        self.time_scale = time_scale
        self.faults = tuple(faults)
        self._first_on_s: float | None = None  # instrument time the output was first switched on
        self._garbled_once = False
        self._in = b""
        self._out = bytearray()
        self._trace: IO[str] | None = open(trace, "w", encoding="utf-8") if trace else None  # noqa: SIM115
        self._traced: tuple[object, ...] | None = None
        self._observe()  # the first row: the instrument at power-on

    def _t(self, now_s: float) -> float:
        return (now_s - self.start_s) * self.time_scale

    def _faulty(self, kind: str) -> bool:
        since = None if self._first_on_s is None else self.meter.t_s - self._first_on_s
        if kind == "unreachable" and self._garbled_once and self._faulty("garble-then-unreachable"):
            return True
        if kind == "garble-replies" and not self._garbled_once and self._faulty("garble-then-unreachable"):
            return True
        return any(f.kind == kind and f.active(since) for f in self.faults)

    def receive(self, data: bytes, now_s: float) -> None:
        self.advance(now_s)
        if self._faulty("unreachable"):
            return  # the command never arrives
        self._in += data
        *lines, self._in = self._in.split(b"\n")
        for raw in lines:
            reply = self.meter.handle(raw.decode("ascii", "replace").rstrip("\r"))
            self._observe()
            if reply is not None and not self._faulty("unreachable"):
                out = reply.encode("ascii", "replace") + b"\n"
                if self._faulty("garble-replies"):
                    out = bytes([out[0] | 0x80]) + out[1:]
                    self._garbled_once = True
                self._out += out
        if len(self._in) > 65536:
            self._in = b""  # a runaway line without terminator: drop it, as the input buffer would

    def advance(self, now_s: float) -> None:
        # Bounded catch-up per call, as SimulatedDevice.advance: a machine that cannot keep up slows
        # the instrument clock rather than stalling the loop.
        t_s = min(self._t(now_s), self.meter.t_s + MAX_CATCH_UP_S)
        self.meter.advance(t_s)

    def _observe(self) -> None:
        meter = self.meter
        if meter.output_on and self._first_on_s is None:
            self._first_on_s = meter.t_s
        if self._trace is None:
            return
        function, level = meter.source_level
        now = (meter.output_on, function, level)
        if now != self._traced:
            self._traced = now
            self._write_trace()

    def _write_trace(self) -> None:
        if self._trace is None:
            return
        meter = self.meter
        function, level = meter.source_level
        row = {"t_s": round(meter.t_s, 6), "output": meter.output_on, "source": function, "level": level}
        self._trace.write(json.dumps(row, separators=(",", ":")) + "\n")
        self._trace.flush()

    def close(self) -> None:
        """The last row (the instrument as the simulator leaves it), then close the trace."""
        if self._trace is not None:
            self._write_trace()
            self._trace.close()
            self._trace = None

    def reset_input(self) -> None:
        self._in = b""  # a new host: a partial line from the previous one is not its first command

    def take_output(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

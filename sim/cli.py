"""`python -m sim` (and `ionctl sim`, which passes its arguments here): run the simulated devices.

Prints one line per endpoint, then `ready`, on stdout; runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import IO, Any

from sim.device import FAULT_KINDS, MAX_CATCH_UP_S, FaultSpec, FaultSpecError, SimulatedDevice
from sim.firmware import DeviceSpec
from sim.plant import LOAD_PRESETS, LoadParams, Plant
from sim.server import Link, PtyChannel, Server, TcpChannel, TraceWriter

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
        self, meter: object, *, start_s: float, time_scale: float, faults: Sequence[ScpiFault] = (),
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
        since = None if self._first_on_s is None else self.meter.t_s - self._first_on_s  # type: ignore[attr-defined]
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
            reply = self.meter.handle(raw.decode("ascii", "replace").rstrip("\r"))  # type: ignore[attr-defined]
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
        t_s = min(self._t(now_s), self.meter.t_s + MAX_CATCH_UP_S)  # type: ignore[attr-defined]
        self.meter.advance(t_s)  # type: ignore[attr-defined]

    def _observe(self) -> None:
        meter: Any = self.meter
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
        meter: Any = self.meter
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


MAX_TIME_SCALE = 1000.0  # about what one core sustains with 100 ms telemetry (benchmarks: sim_speedup)


def _version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    try:
        version = int(major), int(minor or 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MAJOR.MINOR, got {text!r}") from None
    if not all(0 <= part <= 255 for part in version):
        raise argparse.ArgumentTypeError(f"{text!r}: MAJOR and MINOR are each 0..255 (one byte on the wire)")
    return version


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a TCP port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 0..65535 (0 picks a free one)")
    return port


def _time_scale(text: str) -> float:
    try:
        scale = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(scale) and 0 < scale <= MAX_TIME_SCALE):
        raise argparse.ArgumentTypeError(f"{text}: the time scale must be > 0 and <= {MAX_TIME_SCALE:g}")
    return scale


def _serial(text: str) -> str:
    if not (0 < len(text.encode("utf-8")) <= 16):
        raise argparse.ArgumentTypeError(f"{text!r}: a serial number is 1..16 bytes (str16 in IDENTITY)")
    return text


def _fault(text: str) -> FaultSpec:
    try:
        return FaultSpec.parse(text)
    except FaultSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _scpi_fault(text: str) -> ScpiFault:
    try:
        return ScpiFault.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser(prog: str = "python -m sim") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Simulated iontophoresis device (firmware protocol) and SCPI SourceMeter, served on "
        "pseudo-terminals and 127.0.0.1 sockets.",
    )
    ep = parser.add_argument_group("endpoints (at least one)")
    ep.add_argument("--serial-link", metavar="PATH", help="firmware protocol on a pty; PATH becomes a symlink to it")
    ep.add_argument("--tcp", metavar="PORT", type=_port, help="firmware protocol on 127.0.0.1:PORT (0: any free port)")
    ep.add_argument("--scpi-port", metavar="PORT", type=_port, help="SCPI SourceMeter on 127.0.0.1:PORT (0: any)")
    ep.add_argument("--scpi-link", metavar="PATH", help="SCPI SourceMeter on a pty; PATH becomes a symlink to it")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--time-scale",
        type=_time_scale,
        default=1.0,
        metavar="X",
        help=f"device clock runs X times faster than wall time, 0 < X <= {MAX_TIME_SCALE:g} (the watchdog and "
        "the link do not; fault times are device seconds)",
    )
    model.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="KIND[=V]@T[:D]",
        help=f"schedule a fault on the firmware device, T and D in device seconds since the output was first "
        f"energised; "
        f"kinds: {', '.join(FAULT_KINDS)} (repeatable)",
    )
    model.add_argument(
        "--scpi-fault",
        type=_scpi_fault,
        action="append",
        default=[],
        metavar="KIND@T[:D]",
        help="schedule a fault of the link to the SCPI SourceMeter, T and D in instrument seconds since its output "
        "was first switched on; kinds: garble-replies (the first byte of each reply damaged: a wrong baud rate, a "
        "noisy link), unreachable (nothing gets through either way) (repeatable)",
    )
    model.add_argument("--scpi-trace", metavar="PATH",
                       help="write the SCPI SourceMeter's JSONL ground truth: its output and source level at every "
                       "change, and as the simulator stops")
    model.add_argument("--seed", type=int, default=0, help="seed for noise and faults (reproducible runs)")
    model.add_argument(
        "--trace",
        metavar="PATH",
        help="write the firmware device's JSONL ground truth: every 10 ms step while the output is energised "
        "or anything changes; a quiet device's repeated rows are left out (the last of them is kept)",
    )
    model.add_argument("--trace-every-step", action="store_true",
                       help="with --trace: write every 10 ms step, idle ones too (~100 lines per device second)")
    model.add_argument("--load", choices=sorted(LOAD_PRESETS), default="normal", help="skin/electrode preset")
    model.add_argument("--rs", type=float, metavar="OHM", help="series resistance (overrides the preset)")
    model.add_argument("--rp", type=float, metavar="OHM", help="resting parallel resistance (overrides the preset)")
    model.add_argument("--cp", type=float, metavar="UF", help="parallel capacitance in µF (overrides the preset)")
    model.add_argument(
        "--device-serial",
        metavar="TEXT",
        type=_serial,
        help="the serial number the firmware device gives in IDENTITY (default SIM-000001)",
    )
    model.add_argument(
        "--protocol-version",
        type=_version,
        metavar="MAJOR.MINOR",
        help="claim another protocol version in IDENTITY (to test a host's version check)",
    )
    return parser  # fmt: skip


def load_from(args: argparse.Namespace) -> LoadParams:
    load = LOAD_PRESETS[args.load]
    changes: dict[str, float] = {}
    if args.rs is not None:
        changes["rs_ohm"] = args.rs
    if args.rp is not None:
        changes["rp_rest_ohm"] = args.rp
        changes["rp_min_ohm"] = min(load.rp_min_ohm, args.rp)
    if args.cp is not None:
        changes["cp_uf"] = args.cp
    return replace(load, **changes)


def main(argv: Sequence[str] | None = None, prog: str = "python -m sim") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    firmware = bool(args.serial_link or args.tcp is not None)
    scpi = bool(args.scpi_port is not None or args.scpi_link)
    if not (firmware or scpi):
        parser.error("give at least one endpoint: --serial-link, --tcp, --scpi-port or --scpi-link")
    if args.trace_every_step and not args.trace:
        parser.error("--trace-every-step needs --trace")
    if not firmware and (args.fault or args.trace or args.protocol_version or args.device_serial):
        parser.error(
            "--fault, --trace, --protocol-version and --device-serial act on the firmware device: add "
            "--serial-link or --tcp"
        )
    if not scpi and (args.scpi_fault or args.scpi_trace):
        parser.error("--scpi-fault and --scpi-trace act on the SCPI SourceMeter: add --scpi-port or --scpi-link")
    if args.serial_link and args.scpi_link and os.path.abspath(args.serial_link) == os.path.abspath(args.scpi_link):
        parser.error("--serial-link and --scpi-link must be different paths")
    try:
        load = load_from(args)
    except ValueError as exc:
        parser.error(str(exc))
    spec = DeviceSpec()
    if args.protocol_version:
        spec = replace(spec, proto_major=args.protocol_version[0], proto_minor=args.protocol_version[1])
    if args.device_serial:
        spec = replace(spec, serial=args.device_serial)

    server = Server()
    server.install_signals()  # before any endpoint exists, so a signal during start-up still cleans up
    trace: TraceWriter | None = None
    scpi_link: ScpiLink | None = None
    lines: list[str] = []
    try:
        start = time.monotonic()
        if firmware:
            trace = TraceWriter(args.trace, every_step=args.trace_every_step) if args.trace else None
            device = SimulatedDevice(load, spec=spec, faults=args.fault, seed=args.seed, time_scale=args.time_scale,
                                     start_wall_s=start, trace=trace)  # fmt: skip
            link = Link(device)  # one device, one host at a time, whichever endpoint it comes through
            if args.serial_link:
                lines.append(f"serial: {server.add(PtyChannel(link, args.serial_link)).address()}")
            if args.tcp is not None:
                lines.append(f"tcp: socket://{server.add(TcpChannel(link, args.tcp)).address()}")
        if scpi:
            from sim.scpi import SourceMeter

            plant = Plant(load, rng=random.Random(args.seed + 2))
            scpi_link = ScpiLink(SourceMeter(plant), start_s=start, time_scale=args.time_scale,
                                 faults=args.scpi_fault, trace=args.scpi_trace)  # fmt: skip
            meter = Link(scpi_link)
            if args.scpi_port is not None:
                port = server.add(TcpChannel(meter, args.scpi_port)).address().rsplit(":", 1)[1]
                lines.append(f"scpi: TCPIP::127.0.0.1::{port}::SOCKET")
            if args.scpi_link:
                lines.append(f"scpi-serial: {server.add(PtyChannel(meter, args.scpi_link)).address()}")
    except OSError as exc:
        server.close()
        if scpi_link is not None:
            scpi_link.close()
        if trace is not None:
            trace.close()
            os.unlink(args.trace)  # we made it empty: a failed start leaves no trace file to mistake
        print(f"{prog}: cannot start: {exc}", file=sys.stderr)
        return 1

    try:
        print("\n".join(lines), flush=True)
        print("ready", flush=True)
        server.serve_forever()
    except BrokenPipeError:  # whoever started us stopped reading stdout: shut down quietly
        server.close()
    finally:
        if trace is not None:
            trace.close()
        if scpi_link is not None:
            scpi_link.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

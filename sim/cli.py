"""`python -m sim` (and `ionctl sim`, which passes its arguments here): run the simulated devices.

Prints one line per endpoint, then `ready`, on stdout; runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import replace

from sim.device import FAULT_KINDS, FaultSpec, FaultSpecError, SimulatedDevice
from sim.firmware import DeviceSpec
from sim.plant import LOAD_PRESETS, LoadParams, Plant
from sim.server import Channel, PtyChannel, Server, TcpChannel, TraceWriter


class ScpiLink:
    """Line framing (`\\n`) around the sans-I/O SourceMeter, on the same scaled clock as the device."""

    def __init__(self, meter: object, *, start_s: float, time_scale: float) -> None:
        self.meter = meter
        self.start_s = start_s
        self.time_scale = time_scale
        self._in = b""
        self._out = bytearray()

    def _t(self, now_s: float) -> float:
        return (now_s - self.start_s) * self.time_scale

    def receive(self, data: bytes, now_s: float) -> None:
        self._in += data
        *lines, self._in = self._in.split(b"\n")
        for raw in lines:
            self.meter.advance(self._t(now_s))  # type: ignore[attr-defined]
            reply = self.meter.handle(raw.decode("ascii", "replace").rstrip("\r"))  # type: ignore[attr-defined]
            if reply is not None:
                self._out += reply.encode("ascii", "replace") + b"\n"
        if len(self._in) > 65536:
            self._in = b""  # a runaway line without terminator: drop it, as the input buffer would

    def advance(self, now_s: float) -> None:
        self.meter.advance(self._t(now_s))  # type: ignore[attr-defined]

    def take_output(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out


def _version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MAJOR.MINOR, got {text!r}") from None


def _fault(text: str) -> FaultSpec:
    try:
        return FaultSpec.parse(text)
    except FaultSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser(prog: str = "python -m sim") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Simulated iontophoresis device (firmware protocol) and SCPI SourceMeter, served on "
        "pseudo-terminals and 127.0.0.1 sockets.",
    )
    ep = parser.add_argument_group("endpoints (at least one)")
    ep.add_argument("--serial-link", metavar="PATH", help="firmware protocol on a pty; PATH becomes a symlink to it")
    ep.add_argument("--tcp", metavar="PORT", type=int, help="firmware protocol on 127.0.0.1:PORT (0: any free port)")
    ep.add_argument("--scpi-port", metavar="PORT", type=int, help="SCPI SourceMeter on 127.0.0.1:PORT (0: any)")
    ep.add_argument("--scpi-link", metavar="PATH", help="SCPI SourceMeter on a pty; PATH becomes a symlink to it")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="device clock runs X times faster than wall time (the watchdog and the link do not)",
    )
    model.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="KIND[=V]@T[:D]",
        help=f"schedule a fault, T and D in device seconds since the output was first energised; "
        f"kinds: {', '.join(FAULT_KINDS)} (repeatable)",
    )
    model.add_argument("--seed", type=int, default=0, help="seed for noise and faults (reproducible runs)")
    model.add_argument("--trace", metavar="PATH", help="write the JSONL ground truth, one line per step")
    model.add_argument("--load", choices=sorted(LOAD_PRESETS), default="normal", help="skin/electrode preset")
    model.add_argument("--rs", type=float, metavar="OHM", help="series resistance (overrides the preset)")
    model.add_argument("--rp", type=float, metavar="OHM", help="resting parallel resistance (overrides the preset)")
    model.add_argument("--cp", type=float, metavar="UF", help="parallel capacitance in µF (overrides the preset)")
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
    if not (args.serial_link or args.tcp is not None or args.scpi_port is not None or args.scpi_link):
        parser.error("give at least one endpoint: --serial-link, --tcp, --scpi-port or --scpi-link")
    if args.time_scale <= 0:
        parser.error("--time-scale must be positive")
    try:
        load = load_from(args)
    except ValueError as exc:
        parser.error(str(exc))
    spec = DeviceSpec()
    if args.protocol_version:
        spec = replace(spec, proto_major=args.protocol_version[0], proto_minor=args.protocol_version[1])

    start = time.monotonic()
    trace = TraceWriter(args.trace) if args.trace else None
    channels: list[Channel] = []
    lines: list[str] = []
    try:
        if args.serial_link or args.tcp is not None:
            device = SimulatedDevice(load, spec=spec, faults=args.fault, seed=args.seed, time_scale=args.time_scale,
                                     start_wall_s=start, trace=trace)  # fmt: skip
            if args.serial_link:
                channels.append(PtyChannel(device, args.serial_link))
                lines.append(f"serial: {channels[-1].address()}")
            if args.tcp is not None:
                channels.append(TcpChannel(device, args.tcp))
                lines.append(f"tcp: socket://{channels[-1].address()}")
        if args.scpi_port is not None or args.scpi_link:
            from sim.scpi import SourceMeter

            plant = Plant(load, rng=random.Random(args.seed + 2))
            link = ScpiLink(SourceMeter(plant), start_s=start, time_scale=args.time_scale)
            if args.scpi_port is not None:
                channels.append(TcpChannel(link, args.scpi_port))
                port = channels[-1].address().rsplit(":", 1)[1]
                lines.append(f"scpi: TCPIP::127.0.0.1::{port}::SOCKET")
            if args.scpi_link:
                channels.append(PtyChannel(link, args.scpi_link))
                lines.append(f"scpi-serial: {channels[-1].address()}")
    except OSError as exc:
        for channel in channels:
            channel.close()
        print(f"{prog}: cannot open endpoint: {exc}", file=sys.stderr)
        return 1

    server = Server(channels, on_tick=trace.flush if trace else None)
    server.install_signals()
    print("\n".join(lines), flush=True)
    print("ready", flush=True)
    try:
        server.serve_forever()
    finally:
        if trace is not None:
            trace.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

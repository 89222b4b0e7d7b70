"""`python -m sim` and `ionctl sim`: run the simulated devices.

Prints one line per endpoint, then `ready`, on stdout; runs until SIGINT or SIGTERM.

The options are defined once, by `add_arguments()`: `python -m sim` builds its own parser with it
(`build_parser()`), `ionctl sim` adds them to its subcommand (ionctl/cli/sim.py). `check()` refuses
contradictory options before anything opens and `serve()` runs what they describe. Only the parsing is
imported with this module, so a command line that merely lists `sim` stays fast: the device model and the
endpoints are imported when `serve()` runs.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import replace

from sim.faults import FAULT_KINDS, FaultSpec, FaultSpecError
from sim.plant import LOAD_PRESETS, LoadParams
from sim.scpi_link import SCPI_FAULT_KINDS as SCPI_FAULT_KINDS  # importable from here, as before
from sim.scpi_link import ScpiFault
from sim.scpi_link import ScpiLink as ScpiLink

DESCRIPTION = (
    "Simulated iontophoresis device (firmware protocol) and SCPI SourceMeter, served on pseudo-terminals and "
    "127.0.0.1 sockets."
)


class UsageError(Exception):
    """Options that contradict each other, or a load no skin has: the command line's error (exit 2)."""


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


def time_scale(text: str) -> float:
    """An argparse type: a finite time scale in (0, MAX_TIME_SCALE] (also `ionctl demo --time-scale`)."""
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulator's options, on `parser` (`python -m sim`'s own, or `ionctl sim`)."""
    ep = parser.add_argument_group("endpoints (at least one)")
    ep.add_argument("--serial-link", metavar="PATH", help="firmware protocol on a pty; PATH becomes a symlink to it")
    ep.add_argument("--tcp", metavar="PORT", type=_port, help="firmware protocol on 127.0.0.1:PORT (0: any free port)")
    ep.add_argument("--scpi-port", metavar="PORT", type=_port, help="SCPI SourceMeter on 127.0.0.1:PORT (0: any)")
    ep.add_argument("--scpi-link", metavar="PATH", help="SCPI SourceMeter on a pty; PATH becomes a symlink to it")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--time-scale",
        type=time_scale,
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
    model.add_argument(
        "--scpi-trace",
        metavar="PATH",
        help="write the SCPI SourceMeter's JSONL ground truth: its output and source level at every "
        "change, and as the simulator stops",
    )
    model.add_argument("--seed", type=int, default=0, help="seed for noise and faults (reproducible runs)")
    model.add_argument(
        "--trace",
        metavar="PATH",
        help="write the firmware device's JSONL ground truth: every 10 ms step while the output is energised "
        "or anything changes; a quiet device's repeated rows are left out (the last of them is kept)",
    )
    model.add_argument(
        "--trace-every-step",
        action="store_true",
        help="with --trace: write every 10 ms step, idle ones too (~100 lines per device second)",
    )
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


def build_parser(prog: str = "python -m sim") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(parser)
    return parser


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


def check(args: argparse.Namespace) -> None:
    """Refuse what cannot run, before anything opens: raise UsageError saying why."""
    firmware, scpi = _endpoints(args)
    if not (firmware or scpi):
        raise UsageError("give at least one endpoint: --serial-link, --tcp, --scpi-port or --scpi-link")
    if args.trace_every_step and not args.trace:
        raise UsageError("--trace-every-step needs --trace")
    if not firmware and (args.fault or args.trace or args.protocol_version or args.device_serial):
        raise UsageError(
            "--fault, --trace, --protocol-version and --device-serial act on the firmware device: add "
            "--serial-link or --tcp"
        )
    if not scpi and (args.scpi_fault or args.scpi_trace):
        raise UsageError("--scpi-fault and --scpi-trace act on the SCPI SourceMeter: add --scpi-port or --scpi-link")
    if args.serial_link and args.scpi_link and os.path.abspath(args.serial_link) == os.path.abspath(args.scpi_link):
        raise UsageError("--serial-link and --scpi-link must be different paths")
    try:
        load_from(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _endpoints(args: argparse.Namespace) -> tuple[bool, bool]:
    """(firmware device wanted, SCPI SourceMeter wanted)."""
    return bool(args.serial_link or args.tcp is not None), bool(args.scpi_port is not None or args.scpi_link)


def main(argv: Sequence[str] | None = None, prog: str = "python -m sim") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        check(args)
    except UsageError as exc:
        parser.error(str(exc))
    return serve(args, prog)


def serve(args: argparse.Namespace, prog: str = "python -m sim") -> int:
    """Open the endpoints `args` describe (already `check`ed), print them and `ready`, and serve until SIGINT or
    SIGTERM; 0, or 1 (after saying why on stderr) if an endpoint or the trace cannot be opened."""
    import random
    import time

    from sim.device import SimulatedDevice
    from sim.firmware import DeviceSpec
    from sim.plant import Plant
    from sim.scpi import SourceMeter
    from sim.server import Link, PtyChannel, Server, TcpChannel, TraceWriter

    firmware, scpi = _endpoints(args)
    load = load_from(args)
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

"""`python -m sim` and `ionctl sim`: run the simulated devices.

Prints one line per endpoint, then `ready`, on stdout; runs until SIGINT or SIGTERM. With `--devices N` it serves
N independent firmware devices, numbered from 1, each with its own endpoints, plant, serial number, seed, load,
faults and loop (see `device_endpoints()` for where each is served and what its lines are called).

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
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

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
MAX_DEVICES = 16  # a visit's channels and a bench of devices; each device is a thread and its endpoints
SEED_STRIDE = 1000  # device K's seed is --seed + SEED_STRIDE * (K - 1): device 1 keeps the seed it always had

T = TypeVar("T")


@dataclass(frozen=True)
class ForDevice(Generic[T]):
    """An option's value aimed at one device (`K:VALUE`; without `K:`, device 1), and the text it came from."""

    device: int
    value: T
    text: str


def _aimed(text: str, *, required: str = "") -> tuple[int, str]:
    """`K:REST` -> (K, REST); `REST` -> (1, REST) unless the device number is `required` (its form, for the error)."""
    match = re.fullmatch(r"([+-]?\d+):(.*)", text, re.DOTALL)
    if match is None:
        if required:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {required}, K the device number (from 1)")
        return 1, text
    device = int(match.group(1))
    if device < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: there is no device {device}; devices are numbered from 1")
    return device, match.group(2)


def _devices(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of devices, got {text!r}") from None
    if not 1 <= count <= MAX_DEVICES:
        raise argparse.ArgumentTypeError(f"{count}: the number of devices must be within 1..{MAX_DEVICES}")
    return count


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


def _serial(text: str) -> ForDevice[str]:
    device, serial = _aimed(text)
    if not (0 < len(serial.encode("utf-8")) <= 16):
        raise argparse.ArgumentTypeError(f"{serial!r}: a serial number is 1..16 bytes (str16 in IDENTITY)")
    return ForDevice(device, serial, text)


def _fault(text: str) -> ForDevice[FaultSpec]:
    device, spec = _aimed(text)
    try:
        return ForDevice(device, FaultSpec.parse(spec), text)
    except FaultSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _device_load(text: str) -> ForDevice[str]:
    device, preset = _aimed(text, required="K:PRESET")
    if preset not in LOAD_PRESETS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: unknown load preset {preset!r}; known: {', '.join(sorted(LOAD_PRESETS))}"
        )
    return ForDevice(device, preset, text)


def _scpi_fault(text: str) -> ScpiFault:
    try:
        return ScpiFault.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulator's options, on `parser` (`python -m sim`'s own, or `ionctl sim`)."""
    ep = parser.add_argument_group("endpoints (at least one)")
    ep.add_argument(
        "--serial-link",
        metavar="PATH",
        help="firmware protocol on a pty; PATH becomes a symlink to it (with --devices N > 1: PATH-1 .. PATH-N)",
    )
    ep.add_argument(
        "--tcp",
        metavar="PORT",
        type=_port,
        help="firmware protocol on 127.0.0.1:PORT (0: any free port; with --devices N > 1, PORT .. PORT+N-1, or a "
        "free port each)",
    )
    ep.add_argument("--scpi-port", metavar="PORT", type=_port, help="SCPI SourceMeter on 127.0.0.1:PORT (0: any)")
    ep.add_argument("--scpi-link", metavar="PATH", help="SCPI SourceMeter on a pty; PATH becomes a symlink to it")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--devices",
        type=_devices,
        default=1,
        metavar="N",
        help=f"serve N independent firmware devices (1..{MAX_DEVICES}), numbered from 1, each with its own "
        f"endpoints, plant, serial number (SIM-00000K), seed (SEED + {SEED_STRIDE}*(K-1)), load and faults",
    )
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
        metavar="[K:]KIND[=V]@T[:D]",
        help=f"schedule a fault on firmware device K (default 1), T and D in device seconds since its output was "
        f"first energised; "
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
        help="write the firmware devices' JSONL ground truth, each row naming its device: every 10 ms step while "
        "the output is energised or anything changes; a quiet device's repeated rows are left out (the last of "
        "them is kept)",
    )
    model.add_argument(
        "--trace-every-step",
        action="store_true",
        help="with --trace: write every 10 ms step, idle ones too (~100 lines per device second)",
    )
    model.add_argument(
        "--load", choices=sorted(LOAD_PRESETS), default="normal", help="skin/electrode preset of every device"
    )
    model.add_argument(
        "--device-load",
        type=_device_load,
        action="append",
        default=[],
        metavar="K:PRESET",
        help="device K's skin/electrode preset instead of --load's (repeatable; --rs/--rp/--cp still apply)",
    )
    model.add_argument("--rs", type=float, metavar="OHM", help="series resistance (overrides the preset)")
    model.add_argument("--rp", type=float, metavar="OHM", help="resting parallel resistance (overrides the preset)")
    model.add_argument("--cp", type=float, metavar="UF", help="parallel capacitance in µF (overrides the preset)")
    model.add_argument(
        "--device-serial",
        metavar="[K:]TEXT",
        type=_serial,
        action="append",
        default=[],
        help="the serial number firmware device K (default 1) gives in IDENTITY (default SIM-00000K; repeatable)",
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


def load_from(args: argparse.Namespace, device: int = 1) -> LoadParams:
    """Device `device`'s load: its --device-load preset (else --load), with --rs/--rp/--cp applied."""
    presets: dict[int, str] = {aimed.device: aimed.value for aimed in args.device_load}
    load = LOAD_PRESETS[presets.get(device, args.load)]
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
    if not firmware and (
        args.fault or args.trace or args.protocol_version or args.device_serial or args.device_load or args.devices > 1
    ):
        raise UsageError(
            "--fault, --trace, --protocol-version, --device-serial, --device-load and --devices act on the firmware "
            "devices: add --serial-link or --tcp"
        )
    if not scpi and (args.scpi_fault or args.scpi_trace):
        raise UsageError("--scpi-fault and --scpi-trace act on the SCPI SourceMeter: add --scpi-port or --scpi-link")
    _check_aimed(args)
    if args.tcp and args.tcp + args.devices - 1 > 65535:
        raise UsageError(f"--tcp {args.tcp} with --devices {args.devices}: the ports would pass 65535")
    if args.scpi_link:
        for device in range(1, args.devices + 1):
            path = device_endpoints(args, device)[0]
            if path and os.path.abspath(path) == os.path.abspath(args.scpi_link):
                raise UsageError("--serial-link and --scpi-link must be different paths")
    try:
        for device in range(1, args.devices + 1):
            load_from(args, device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _check_aimed(args: argparse.Namespace) -> None:
    """Every option aimed at a device names one that exists, at most once where it sets one value."""
    for option, items in (("--fault", args.fault), ("--device-load", args.device_load),
                          ("--device-serial", args.device_serial)):  # fmt: skip
        for aimed in items:
            if aimed.device > args.devices:
                known = f"--devices {args.devices}: 1..{args.devices}"
                raise UsageError(f"{option} {aimed.text}: there is no device {aimed.device} ({known})")
        if option != "--fault":
            devices = [aimed.device for aimed in items]
            twice = sorted({d for d in devices if devices.count(d) > 1})
            if twice:
                raise UsageError(f"{option} given twice for device {twice[0]}")
    serials = [serial_of(args, device) for device in range(1, args.devices + 1)]
    if len(set(serials)) != len(serials):
        raise UsageError(f"two devices would share a serial number: {', '.join(serials)}")


def serial_of(args: argparse.Namespace, device: int) -> str:
    """Device `device`'s serial number: its --device-serial, else SIM-00000K."""
    given: dict[int, str] = {aimed.device: aimed.value for aimed in args.device_serial}
    return given.get(device, f"SIM-{device:06d}")


def device_endpoints(args: argparse.Namespace, device: int) -> tuple[str | None, int | None, str]:
    """Where device `device` is served: (its pty symlink or None, its TCP port or None, the suffix of its endpoint
    lines). One device is served as ever (`serial: ...`, `tcp: ...`); of N > 1, device K's pty is linked from
    PATH-K, its port is PORT+K-1 (or any free one for 0), and its lines are `serial.K: ...`, `tcp.K: ...`."""
    if args.devices == 1:
        return args.serial_link, args.tcp, ""
    path = f"{args.serial_link}-{device}" if args.serial_link else None
    port = None if args.tcp is None else args.tcp and args.tcp + device - 1
    return path, port, f".{device}"


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
    from sim.server import Bench, Link, PtyChannel, Server, TcpChannel
    from sim.trace import TraceFile, TraceWriter

    firmware, scpi = _endpoints(args)
    spec = DeviceSpec()
    if args.protocol_version:
        spec = replace(spec, proto_major=args.protocol_version[0], proto_minor=args.protocol_version[1])

    bench = Bench()
    bench.install_signals()  # before any endpoint exists, so a signal during start-up still cleans up
    trace_file: TraceFile | None = None
    traces: list[TraceWriter] = []
    scpi_link: ScpiLink | None = None
    lines: list[str] = []

    def close_traces() -> None:
        for trace in traces:
            trace.close()
        if trace_file is not None:
            trace_file.close()

    try:
        start = time.monotonic()
        if firmware and args.trace:
            trace_file = TraceFile(args.trace)
        for number in range(1, args.devices + 1) if firmware else ():
            trace = TraceWriter(trace_file, every_step=args.trace_every_step) if trace_file else None
            traces += [trace] if trace else []
            device = SimulatedDevice(
                load_from(args, number), spec=replace(spec, serial=serial_of(args, number)),
                faults=[aimed.value for aimed in args.fault if aimed.device == number],
                seed=args.seed + SEED_STRIDE * (number - 1), time_scale=args.time_scale, start_wall_s=start,
                trace=trace, number=number,
            )  # fmt: skip
            link = Link(device)  # one device, one host at a time, whichever endpoint it comes through
            server = bench.add(Server())  # each device on a loop of its own
            path, port, suffix = device_endpoints(args, number)
            if path:
                lines.append(f"serial{suffix}: {server.add(PtyChannel(link, path)).address()}")
            if port is not None:
                lines.append(f"tcp{suffix}: socket://{server.add(TcpChannel(link, port)).address()}")
        if scpi:
            plant = Plant(load_from(args), rng=random.Random(args.seed + 2))
            scpi_link = ScpiLink(SourceMeter(plant), start_s=start, time_scale=args.time_scale,
                                 faults=args.scpi_fault, trace=args.scpi_trace)  # fmt: skip
            meter = Link(scpi_link)
            server = bench.add(Server())
            if args.scpi_port is not None:
                scpi_port = server.add(TcpChannel(meter, args.scpi_port)).address().rsplit(":", 1)[1]
                lines.append(f"scpi: TCPIP::127.0.0.1::{scpi_port}::SOCKET")
            if args.scpi_link:
                lines.append(f"scpi-serial: {server.add(PtyChannel(meter, args.scpi_link)).address()}")
    except OSError as exc:
        bench.close()
        if scpi_link is not None:
            scpi_link.close()
        if trace_file is not None:
            close_traces()
            os.unlink(args.trace)  # we made it empty: a failed start leaves no trace file to mistake
        print(f"{prog}: cannot start: {exc}", file=sys.stderr)
        return 1

    try:
        print("\n".join(lines), flush=True)
        print("ready", flush=True)
        bench.serve_forever()
    except BrokenPipeError:  # whoever started us stopped reading stdout: shut down quietly
        bench.stop()
        bench.close()
    finally:
        close_traces()  # after every loop has ended: no device steps while its trace closes
        if scpi_link is not None:
            scpi_link.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

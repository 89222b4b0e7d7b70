"""`ionctl devices`: list the places a current source may be, and with --probe ask each who it is.

Listing stays on this machine (serial ports, local VISA resources); `--lan` also broadcasts for VISA
instruments on the local network. Exit 1 when addresses were given and one of them did not answer a probe.
"""

from __future__ import annotations

import argparse
import sys

from ionctl.core.vocabulary import ExitCode


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    devices = commands.add_parser(
        "devices",
        help="list serial ports and VISA resources (--probe asks each who it is)",
        description="List the places a current source may be: serial ports (ionctl firmware protocol) and "
        "VISA resources (SCPI SourceMeters, as visa:RESOURCE), one per line, tab-separated. Listing stays "
        "on this machine; --lan also broadcasts on the local network for VISA instruments.",
    )
    devices.add_argument("address", nargs="*", help="only these addresses (e.g. a simulator's pty or visa:TCPIP::...)")
    devices.add_argument("--probe", action="store_true", help="send IDENTIFY / *IDN? and print the answer")
    devices.add_argument("--lan", action="store_true", help="also discover VISA instruments on the network")
    devices.add_argument("--timeout", type=float, default=1.0, metavar="S", help="probe timeout (default 1 s)")
    devices.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from ionctl.drivers import discovery

    if args.address:
        found = [discovery.Found(a, discovery.kind_of(a), "given") for a in args.address]
    else:
        found = discovery.serial_ports()
        visa, note = discovery.visa_resources(lan=args.lan)
        found += visa
        if note:
            print(f"ionctl devices: {note}", file=sys.stderr)
        if not found:
            print("ionctl devices: no serial ports or VISA resources found", file=sys.stderr)
    silent = 0
    for item in found:
        if args.probe:
            item = discovery.probe(item, timeout_s=args.timeout)
            silent += item.answer is None or item.answer.startswith("no answer")
        print(item.line(), flush=True)
    return ExitCode.FAILED if args.address and silent else ExitCode.OK

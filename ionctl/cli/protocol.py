"""`ionctl protocol`: inspect the device wire protocol (`firmware_protocol/PROTOCOL.md`).

`decode` prints the header and fields of frames given in hexadecimal (one JSON object a frame; a damaged frame
is an `error` object and exit 1); `schema` prints the protocol version, the schema hash and the schema.
"""

from __future__ import annotations

import argparse
import sys

from ionctl.core.vocabulary import ExitCode


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    protocol = commands.add_parser("protocol", help="inspect the device wire protocol")
    actions = protocol.add_subparsers(dest="protocol_command", metavar="ACTION", required=True)
    decode_parser = actions.add_parser("decode", help="decode frames given in hexadecimal")
    decode_parser.add_argument("hex", nargs="+", help="frame bytes in hex (spaces allowed); delimiter optional")
    actions.add_parser("schema", help="print the protocol version, schema hash and schema")
    protocol.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run the action the arguments name."""
    return decode(args) if args.protocol_command == "decode" else schema(args)


def decode(args: argparse.Namespace) -> int:
    import json

    from firmware_protocol import Decoder, ProtocolError

    try:
        data = bytes.fromhex("".join(args.hex))
    except ValueError as exc:
        print(f"ionctl protocol decode: not hexadecimal: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    if not data.strip(b"\x00"):
        print("ionctl protocol decode: no frame bytes given", file=sys.stderr)
        return ExitCode.REFUSED
    if not data.endswith(b"\x00"):
        data += b"\x00"  # accept a frame given without its delimiter
    failed = False
    for event in Decoder().feed(data):
        if isinstance(event, ProtocolError):
            failed = True
            print(json.dumps({"error": type(event).__name__, "detail": str(event)}))
        else:
            msg = event.message
            header = {"ver": event.ver, "flags": event.flags, "seq": event.seq, "ack": event.ack}
            print(json.dumps({"message": msg.NAME, "header": header, "fields": msg.to_fields()}))
    return ExitCode.FAILED if failed else ExitCode.OK


def schema(args: argparse.Namespace) -> int:
    from firmware_protocol import PROTOCOL_MAJOR, PROTOCOL_MINOR, SCHEMA_HASH, schema_text

    print(f"protocol {PROTOCOL_MAJOR}.{PROTOCOL_MINOR}  schema_hash 0x{SCHEMA_HASH:08X}")
    sys.stdout.write(schema_text())
    return ExitCode.OK

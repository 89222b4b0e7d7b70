"""The `ionctl` command line.

Each subcommand imports what it needs when it runs, so `ionctl --help` and `ionctl --version` stay fast.
Exit codes: 0 success; 1 failure of the command itself; 2 bad arguments (argparse's own convention).
`ionctl run` and `ionctl demo` exit with the session's code (`ionctl.cli.run`): 0 completed, 2 refused,
3 fault, 4 stopped or aborted by the operator, 5 device or link error before any current flowed, 6 the
session's record could not be written (`record_failed`: stopped with a ramp).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ionctl import __version__
from ionctl.cli import addendum as addendum_command
from ionctl.cli import config as config_command
from ionctl.cli import course as course_command
from ionctl.cli import demo as demo_command  # light modules: what they need is imported when they run
from ionctl.cli import run as run_command
from ionctl.cli import sim as sim_command  # the simulator's option parsing only (see ionctl/cli/sim.py)

EXIT_OK = 0
EXIT_FAILED = 1


def _cmd_run(args: argparse.Namespace) -> int:
    return run_command.main(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    return demo_command.main(args)


def _cmd_protocol_decode(args: argparse.Namespace) -> int:
    import json

    from firmware_protocol import Decoder, ProtocolError

    try:
        data = bytes.fromhex("".join(args.hex))
    except ValueError as exc:
        print(f"ionctl protocol decode: not hexadecimal: {exc}", file=sys.stderr)
        return 2
    if not data.strip(b"\x00"):
        print("ionctl protocol decode: no frame bytes given", file=sys.stderr)
        return 2
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
    return EXIT_FAILED if failed else EXIT_OK


def _cmd_protocol_schema(args: argparse.Namespace) -> int:
    from firmware_protocol import PROTOCOL_MAJOR, PROTOCOL_MINOR, SCHEMA_HASH, schema_text

    print(f"protocol {PROTOCOL_MAJOR}.{PROTOCOL_MINOR}  schema_hash 0x{SCHEMA_HASH:08X}")
    sys.stdout.write(schema_text())
    return EXIT_OK


def _cmd_devices(args: argparse.Namespace) -> int:
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
    return EXIT_FAILED if args.address and silent else EXIT_OK


# -- records -------------------------------------------------------------------------------------------------


def _records_store(args: argparse.Namespace) -> object:
    """The store named by --db (else the site's, else the user's; `ionctl.config.bench`), after closing any record
    a killed session left open. Reading never creates a store: a path with none is refused."""
    from ionctl.config.bench import open_store
    from ionctl.records import recover_interrupted

    store = open_store(args.db, create=False)
    notes: list[str] = []  # a store that cannot be written now (a full disk): read without recovering, say so
    for record_id in recover_interrupted(store, notes=notes):
        print(f"ionctl records: record {record_id} was left open by a session that never ended; closed as "
              "interrupted", file=sys.stderr)  # fmt: skip
    for note in notes:
        print(f"ionctl records: note: {note}", file=sys.stderr)
    return store


def _cmd_records(args: argparse.Namespace) -> int:
    from ionctl.config import ConfigError
    from ionctl.records import Store, StoreError
    from ionctl.records.export import ExportError

    try:
        store = _records_store(args)
    except (StoreError, OSError, ConfigError) as exc:
        print(f"ionctl records: {exc}", file=sys.stderr)
        return EXIT_FAILED
    assert isinstance(store, Store)
    with store:
        try:
            return int(args.records_handler(store, args))
        except (StoreError, ExportError) as exc:
            print(f"ionctl records: {exc}", file=sys.stderr)
            return EXIT_FAILED


def _records_list(store: object, args: argparse.Namespace) -> int:
    import json

    from ionctl.records import Store, timefmt

    assert isinstance(store, Store)
    since = None  # the stored form (UTC, as `created_utc` is written), compared in SQL
    if args.since is not None:  # parsed again now that the clinic's time zone is in force
        since = timefmt.parse_since(args.since).isoformat(timespec="milliseconds")
    rows = store.list_records(patient=args.patient, since=since)
    if args.json:
        print(json.dumps(rows))
        return EXIT_OK
    from ionctl.safety.identifiers import escape_controls  # a record stored before IDs were checked shows safely

    print(f"id\tcreated ({timefmt.zone_label()})\tpatient\toperator\toutcome\tdose mA·min\tprescribed mA·min")
    for r in rows:
        dose = f"{r['dose_ma_min']:.3f}" if r["dose_ma_min"] is not None else "-"
        planned = f"{r['prescribed_dose_ma_min']:.2f}" if r["prescribed_dose_ma_min"] is not None else "-"
        outcome = r["outcome"] or "open (running)"
        shown = [escape_controls(str(text)) for text in (timefmt.local_text(r["created_utc"]), r["patient"],
                                                          r["operator"], outcome)]
        print("\t".join([str(r["id"]), *shown, dose, planned]))
    return EXIT_OK


def _records_show(store: object, args: argparse.Namespace) -> int:

    from ionctl.records import Store, timefmt

    assert isinstance(store, Store)
    record = store.get(args.id)
    from ionctl.safety.identifiers import escape_controls

    for key, value in record.fields.items():
        if key.endswith("_utc"):  # stored in UTC; shown in the clinic's time zone (the JSON export keeps UTC)
            print(f"{key[: -len('_utc')]}: {timefmt.local_text(value)}")
        else:
            print(f"{key}: {escape_controls(str(value))}")
    start = timefmt.session_start_s(record.events, record.telemetry)
    print(f"events ({len(record.events)}; +m:ss is the time since the session started):")
    for e in record.events:
        at = f"+{timefmt.since_start(start, e['device_t_s'])}" if e["device_t_s"] is not None else ""
        print(f"  {e['seq']:>3} {timefmt.local_text(e['utc'])} {at:>7} {e['kind']}: {e['text']}")
    print(f"telemetry: {len(record.telemetry)} samples (ionctl records export {args.id} --format csv)")
    if record.addenda:
        from ionctl.records.skin import addendum_text, corrected_by

        print(f"addenda ({len(record.addenda)}):")
        later = corrected_by(record.addenda)
        for a in record.addenda:
            mark = f" [corrected by {', '.join(f'#{n}' for n in later[a['seq']])}]" if a["seq"] in later else ""
            when = timefmt.local_text(a["utc"])
            print(f"  #{a['seq']} {when} {a['action']} by {a['actor']}: {addendum_text(a)}{mark}")
    return EXIT_OK


def _records_export(store: object, args: argparse.Namespace) -> int:
    from ionctl.records import Store
    from ionctl.records.export import deliver, to_csv, to_fhir, to_json

    assert isinstance(store, Store)
    record = store.get(args.id)
    if args.format == "pdf":  # binary; a file always (-o FILE, or record-ID.pdf here)
        from ionctl.records.export import to_pdf

        content: str | bytes = to_pdf(record)
    else:
        content = {"json": to_json, "csv": to_csv, "fhir": to_fhir}[args.format](record)
    deliver(content, args.output, pdf_name=f"record-{args.id}.pdf", command="ionctl records export")
    return EXIT_OK


def _records_verify(store: object, args: argparse.Namespace) -> int:
    from ionctl.records import Store

    assert isinstance(store, Store)
    broken = store.verify()
    if broken is not None:
        print(f"BROKEN: {broken}")
        return EXIT_FAILED
    print(f"ok: the chain of {store.path} verifies")
    return EXIT_OK


def _since(text: str) -> str:
    """`--since` checked when parsed (exit 2 naming the value); `_records_list` parses it in the clinic's zone."""
    from ionctl.records.timefmt import parse_since

    try:
        parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _add_records(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    records = commands.add_parser(
        "records",
        help="session records: list, show, export, verify the audit chain, add an addendum",
        description="The session record store (SQLite, append-only, hash-chained). Every command first closes "
        "any record a killed session left open, as `interrupted`.",
    )
    actions = records.add_subparsers(dest="records_command", metavar="ACTION", required=True)
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", metavar="PATH", help="the record store, which must exist (default: the site "
                    "configuration's [records] store, else records.sqlite3 in the user data dir)")  # fmt: skip
    lst = actions.add_parser("list", parents=[db], help="list records (oldest first)")
    lst.add_argument("--patient", metavar="ID", help="only this patient's records")
    lst.add_argument("--since", metavar="WHEN", type=_since,
                     help="only records created at or after WHEN: YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (the clinic's "
                     "local time unless an offset such as +01:00 or Z is given), today or yesterday")  # fmt: skip
    lst.add_argument("--json", action="store_true", help="one JSON array of the record rows")
    lst.set_defaults(records_handler=_records_list)
    show = actions.add_parser("show", parents=[db], help="show one record and its events")
    show.add_argument("id", type=int)
    show.set_defaults(records_handler=_records_show)
    export = actions.add_parser(
        "export", parents=[db], help="export one record (json, csv, fhir R4 bundle, pdf page for the chart)"
    )
    export.add_argument("id", type=int)
    export.add_argument("--format", required=True, choices=("json", "csv", "pdf", "fhir"))
    export.add_argument(
        "-o", "--output", metavar="FILE", help="write here instead of stdout (pdf: default record-ID.pdf)"
    )
    export.set_defaults(records_handler=_records_export)
    verify = actions.add_parser("verify", parents=[db], help="walk the hash chain; print the first broken link")
    verify.set_defaults(records_handler=_records_verify)
    addendum = addendum_command.add_parser(actions, db)
    addendum.set_defaults(records_handler=addendum_command.records_addendum)
    records.set_defaults(handler=_cmd_records)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ionctl",
        description="Controller for constant-current iontophoresis devices (serial firmware devices and "
        "SCPI SourceMeters), with a built-in device simulator.",
    )
    parser.add_argument("--version", action="version", version=f"ionctl {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run one treatment session on a device (non-interactive)",
        description="Check a prescription against the site limits (before the device is touched), confirm,\n"
        "and deliver it: contact check, ramp up, hold, ramp down at the measured dose.",
        epilog=run_command.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run_command.add_arguments(run)
    run.set_defaults(handler=_cmd_run)

    demo = commands.add_parser(
        "demo",
        help="run a full treatment session on the built-in simulator",
        description="Start the built-in simulator with the load model of the preset's electrodes, run a packaged "
        "preset (default: dexamethasone, 4 mA, 40 mA·min, cathode, 10 cm²) through `ionctl run`, and print the true "
        "dose from the simulator's trace next to the host's. Exits with the session's exit code.",
    )
    demo_command.add_arguments(demo)
    demo.set_defaults(handler=_cmd_demo)

    sim_command.register(commands)

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
    devices.set_defaults(handler=_cmd_devices)

    protocol = commands.add_parser("protocol", help="inspect the device wire protocol")
    protocol_commands = protocol.add_subparsers(dest="protocol_command", metavar="ACTION", required=True)
    decode = protocol_commands.add_parser("decode", help="decode frames given in hexadecimal")
    decode.add_argument("hex", nargs="+", help="frame bytes in hex (spaces allowed); delimiter optional")
    decode.set_defaults(handler=_cmd_protocol_decode)
    schema = protocol_commands.add_parser("schema", help="print the protocol version, schema hash and schema")
    schema.set_defaults(handler=_cmd_protocol_schema)

    from ionctl.console import command as console_command  # light: Textual is imported only when it runs

    console = commands.add_parser(
        "console",
        help="the technician's keyboard-first terminal UI: device, prescription, checks, run, record",
        description="Interactive session console (Textual): pick a device, the patient, a course or preset, edit the "
        "prescription within the site limits, check contact and skin, run and watch the session, record the "
        "skin check after it and export the chart PDF.",
    )
    console_command.add_arguments(console)
    console.set_defaults(handler=console_command.main)

    _add_records(commands)
    config_command.add_parser(commands)
    course_command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; whatever stops it, end with an exit code and at most one line on stderr (see
    `ionctl.cli.failures`: a reader gone away, a bug, Ctrl-C outside a session)."""
    from ionctl.cli import failures as cli_failures

    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "handler", None) is None:
            parser.print_help()
            code = EXIT_OK
        else:
            code = int(args.handler(args))
        sys.stdout.flush()  # a reader gone away shows here, not in Python's flush at exit
        return code
    except BrokenPipeError:
        return cli_failures.silence_stdout()
    except KeyboardInterrupt:
        return cli_failures.EXIT_INTERRUPTED
    except Exception as exc:
        return cli_failures.internal_error(exc, argv)


if __name__ == "__main__":
    sys.exit(main())

"""`ionctl run`: one treatment session from the command line, non-interactively.

The operator logs in first (`--operator NAME`: the password at the terminal without echo, or the first line of
stdin with `--password-stdin`), before the device is opened, so that no signal ever waits on a password prompt
once current may flow; the record names and is signed by that account. `ionctl.treatment.prepare` checks the
prescription against the site limits *before* the device is opened (a refusal names every limit broken); the
operator confirms (`--yes`, or `y` on a terminal); `SessionRunner` runs the session, its record written as it
runs. Progress goes to stderr, so `--json` leaves one JSON object on stdout; signals are `ionctl.cli.signals`';
exit codes `ionctl.core.vocabulary.ExitCode` (EPILOG lists them).
Heavy modules are imported when a session runs, not when the parser is built: `ionctl --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ionctl.cli.args import non_negative, positive
from ionctl.cli.visit import channel_spec

if TYPE_CHECKING:
    from ionctl.config import SiteConfig
    from ionctl.config.people import Identity
    from ionctl.records import Store
    from ionctl.safety import Prescription
    from ionctl.treatment import Report, TreatmentRequest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `ionctl run` options (shared by `ionctl demo`, which runs the same code path)."""
    rx = parser.add_argument_group(
        "prescription", "Either a preset of the site configuration (--preset; the options below then change what "
        "it gives, and must give what it leaves to the clinician) or every value: drug, polarity, electrode, "
        "current, and dose or duration.")  # fmt: skip
    rx.add_argument("--preset", metavar="NAME", help="start from this preset (`ionctl config show` lists them)")
    rx.add_argument(
        "--drug", metavar="NAME", help="a drug of the site's drug catalog, e.g. dexamethasone, lidocaine, tap-water"
    )
    # Not accepted: a drug's charge comes from the built-in table or the site's drug catalog (a supervisor's
    # addition), never from the technician. Kept, hidden, to refuse it with what to do instead.
    rx.add_argument("--drug-charge", metavar="+|-|0", help=argparse.SUPPRESS)
    rx.add_argument("--polarity", choices=("anode", "cathode"), help="the active (drug) electrode")
    area = rx.add_mutually_exclusive_group()
    area.add_argument(
        "--electrode-area",
        type=positive,
        metavar="CM2",
        help="active electrode area in cm² (sets the current density)",
    )
    area.add_argument("--electrode", metavar="NAME", help="an electrode of the site catalog (its area)")
    rx.add_argument("--current", type=positive, metavar="MA", help="hold current in mA")
    amount = rx.add_mutually_exclusive_group()
    amount.add_argument("--dose", type=positive, metavar="MA_MIN", help="dose in mA·min (ramps included)")
    amount.add_argument("--duration", type=positive, metavar="MIN", help="whole session in minutes, ramps included")
    rx.add_argument("--ramp-up", type=non_negative, metavar="S", help="ramp-up time in seconds (default 30)")
    rx.add_argument("--ramp-down", type=non_negative, metavar="S", help="ramp-down time in seconds (default 30)")
    rx.add_argument(
        "--protocol-class",
        metavar="CLASS",
        help="which class of site limits applies: drug-electrode (default) or tap-water, or a site's own",
    )
    rx.add_argument(
        "--reverse-at-midpoint",
        action="store_true",
        help="reverse polarity at the midpoint (at zero current); neutral solutions only",
    )
    rx.add_argument("--patient", metavar="ID", help="patient identifier for the record (a course gives its own)")
    chart = parser.add_argument_group(
        "chart", "What the record holds for the chart beyond the prescription (CPT 97033 practice: docs/SOURCES.md, "
        "\"The chart note\"). A session without a treatment site is refused before the device is opened.")  # fmt: skip
    chart.add_argument("--site", metavar="SITE",
                       help="the treatment site: a side and a body site, e.g. 'left hand', 'both feet', 'right "
                       "forearm', or 'back' (default: the preset's)")  # fmt: skip
    chart.add_argument("--concentration", metavar="TEXT",
                       help="the preparation's concentration as labelled, e.g. '4 mg/mL' (default: the "
                       "preset's)")  # fmt: skip
    chart.add_argument("--volume-ml", type=positive, metavar="ML",
                       help="the volume of the preparation applied, in mL (default: the preset's)")  # fmt: skip
    chart.add_argument("--lot", metavar="TEXT", help="the preparation's lot number")
    chart.add_argument("--prescriber", metavar="NAME", help="who prescribed the treatment")
    who = parser.add_argument_group("operator", "The session runs as the operator who logs in: the record names and "
                                    "is signed by their account.")  # fmt: skip
    who.add_argument("--operator", required=True, metavar="NAME",
                     help="your account (a technician or supervisor; `ionctl users list`); its password is asked "
                     "before the device is opened")  # fmt: skip
    who.add_argument("--password-stdin", action="store_true",
                     help="read the password(s) from stdin, one per line (the operator's, then a supervisor's for "
                     "an override), not at the terminal")  # fmt: skip
    course = parser.add_argument_group("treatment course")
    course.add_argument(
        "--course", type=_course_name, metavar="ID|BENCH/ID",
        help="this session belongs to course ID (`ionctl course start`), or to course BENCH/ID of the clinic "
        "(e.g. bench-a/3, started at another bench: [clinic] in the site file): its preset, patient, interval "
        "and session count apply, counting its sessions at every bench",
    )  # fmt: skip
    course.add_argument(
        "--supervisor-override", metavar="REASON",
        help="run a session a course rule refuses (early, beyond the plan, outside the course): a supervisor "
        "(--supervisor) logs in to set the rule aside; recorded with REASON, signed by them",
    )  # fmt: skip
    course.add_argument("--supervisor", metavar="NAME",
                        help="the supervisor who sets a course rule aside (their password is asked, or is the next "
                        "line of stdin with --password-stdin)")  # fmt: skip
    run = parser.add_argument_group("session")
    where = run.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--device",
        metavar="ADDR",
        help="serial port or pyserial URL (firmware device), or visa:RESOURCE (SCPI SourceMeter)",
    )
    where.add_argument(
        "--channel", action="append", type=channel_spec, metavar="[SITE=]ADDR[,KEY=VALUE...]",
        help="a visit: one channel (repeat it, one per treatment site and device) with what differs from the "
        "options above: area=CM2, electrode=NAME, current=MA, dose=MA_MIN, duration=MIN, return=NAME (channels "
        "naming the same return share a return electrode: their sum is held to the site's limit); one "
        "confirmation for all; e.g. --channel 'left hand=/dev/ttyUSB0' --channel 'right hand=/dev/ttyUSB1'. "
        "ADDR alone (every channel): the sites of the preset's visit, in order, e.g. --preset "
        "asc-exosome-hand-eczema --channel /dev/ttyUSB0 --channel /dev/ttyUSB1",
    )  # fmt: skip
    run.add_argument(
        "--config", metavar="FILE", help="site configuration (default: the site's, else the packaged defaults); "
        "a file a supervisor has not approved is refused")  # fmt: skip
    run.add_argument(
        "--db",
        metavar="PATH",
        help="session record store (SQLite; default: the site configuration's [records] store, else "
        "records.sqlite3 in the user data directory); the record is written as the session runs",
    )
    run.add_argument(
        "--accept-no-watchdog",
        action="store_true",
        help="allow a source without a host-loss watchdog (a SCPI SourceMeter): bench/research only",
    )
    run.add_argument("--yes", action="store_true", help="start without asking (required when stdin is not a terminal)")
    run.add_argument(
        "--json",
        action="store_true",
        help="print the session result and the record's JSON export as one JSON object on stdout",
    )


def _course_name(text: str) -> str:
    """A course's name as given: ID (this bench's) or BENCH/ID (the clinic's name of any bench's course)."""
    from ionctl.records.clinic.courses import parse_name

    try:
        parse_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


def _course_of(value: str | None) -> tuple[int | None, str | None]:
    """(course_id, course_ref) of `--course`: "3" is this bench's course 3, "bench-a/3" the clinic's name."""
    if value is None:
        return None, None
    return (int(value), None) if value.isdigit() else (None, value)


EPILOG = """\
exit codes: 0 completed as prescribed; 2 refused (bad arguments or limits, not confirmed; no current
flowed); 3 fault (or the stuck-output alarm); 4 stopped or aborted by the operator; 5 device or link
error before any current flowed; 6 the session's record could not be written (stopped with a ramp).
signals: SIGINT (Ctrl-C) ramps the current down and stops; a second SIGINT aborts (fastest safe ramp);
SIGTERM and SIGHUP (the terminal closed) ramp down and stop. Progress goes to stderr; --json prints one
object on stdout at the end."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `ionctl run` to the command line's subcommands."""
    run = commands.add_parser(
        "run",
        help="run one treatment session on a device (non-interactive)",
        description="Check a prescription against the site limits (before the device is touched), confirm,\n"
        "and deliver it: contact check, ramp up, hold, ramp down at the measured dose.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(run)
    run.set_defaults(handler=main)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse `ionctl run` arguments on their own."""
    add_arguments(parser := argparse.ArgumentParser(prog="ionctl run"))
    return parser.parse_args(list(argv))


def request_of(args: argparse.Namespace) -> TreatmentRequest:
    """What the options ask for, as the application layer takes it."""
    from ionctl.treatment import TreatmentRequest

    course_id, course_ref = _course_of(args.course)
    return TreatmentRequest(
        device=args.device or "", operator=args.operator, patient=args.patient, preset=args.preset, drug=args.drug,
        drug_charge=getattr(args, "drug_charge", None), polarity=args.polarity, electrode=args.electrode,
        electrode_area_cm2=args.electrode_area, current_ma=args.current, dose_ma_min=args.dose,
        duration_min=args.duration, ramp_up_s=args.ramp_up, ramp_down_s=args.ramp_down,
        protocol_class=args.protocol_class, reverse_at_midpoint=args.reverse_at_midpoint, course_id=course_id,
        course_ref=course_ref, override_reason=args.supervisor_override, accept_no_watchdog=args.accept_no_watchdog,
        db=args.db, site=args.site, concentration=args.concentration, volume_ml=args.volume_ml, lot=args.lot,
        prescriber=args.prescriber,
    )  # fmt: skip


def main(args: argparse.Namespace) -> int:
    """`ionctl run`: open the record store (closing any record a killed session left open), run the session
    into it and print the result; returns the exit code. No store, no session (docs/SAFETY.md)."""
    from ionctl.cli.signals import signals_held
    from ionctl.config import ConfigError
    from ionctl.config.bench import open_store
    from ionctl.records import StoreError, recover_interrupted
    from ionctl.records.recovery import settle_counters
    from ionctl.treatment import not_started
    from ionctl.treatment.recovery import devices_counter

    def refuse(message: str) -> int:
        print(f"ionctl run: {message}\nNo current flowed; the device was not opened.", file=sys.stderr)
        report = not_started(message, db=args.db)
        emit(report, as_json=args.json)
        return report.exit_code

    try:
        store = open_store(args.db, args.config, create=True)  # --db, else the site's store, else the user's
    except (StoreError, OSError, ConfigError) as exc:
        return refuse(f"not started: cannot open the record store: {exc}")
    with signals_held(), store:  # a session's signal handlers stay until its record, result and store are done
        broken = store.verify()  # a session is not written into a store whose chain is broken
        if broken is not None:
            return refuse(f"not started: the record store {store.path} does not verify (`ionctl records verify`): "
                          f"{broken}")  # fmt: skip
        counter = devices_counter([args.device] if args.device else [spec[1] for spec in args.channel])
        notes: list[str] = []
        for record_id in recover_interrupted(store, device_counter=counter, notes=notes):
            print(f"ionctl run: record {record_id} in {store.path} was left open by a session that never ended; "
                  "closed as interrupted", file=sys.stderr)  # fmt: skip
        for note in notes:
            print(f"ionctl run: {note}", file=sys.stderr)
        for record_id in settle_counters(store, counter):
            print(f"ionctl run: record {record_id} (interrupted) settled with the device's own dose counter",
                  file=sys.stderr)  # fmt: skip
        if args.channel:
            from ionctl.cli.visit import emit_visit, execute_visit

            visit = execute_visit(args, store=store)
            if isinstance(visit, int):
                return visit
            emit_visit(visit, as_json=args.json, store=store)
            return visit.exit_code
        report = execute(args, store=store)
        export: dict[str, Any] = {}
        if args.json and report.record_id is not None:
            export = store.get(report.record_id).to_dict()  # the record's own JSON export, as stored
        emit(report, as_json=args.json, extra=export)
    return report.exit_code


def execute(args: argparse.Namespace, *, err: TextIO | None = None, stdin: TextIO | None = None,
            store: Store | None = None, config: SiteConfig | None = None,
            skin_checks: bool = True) -> Report:  # fmt: skip
    """Log the operator in, check, confirm, connect and run; everything but printing the result (`treat` with
    the options). With a `store` the operator's password is asked (or read) here, before anything is opened: a
    refused login is exit 2 with no record and the device never opened."""
    stdin, err = stdin or sys.stdin, err or sys.stderr
    request = request_of(args)
    if store is None:
        return treat(request, err=err, stdin=stdin, store=None, config=config, config_file=args.config, yes=args.yes,
                     skin_checks=skin_checks)  # fmt: skip
    who = log_in(args, store=store, config=config, stdin=stdin, err=err)
    if isinstance(who, str):
        return refused(who, request, err)
    config, operator, supervisor = who
    return treat(request, err=err, stdin=stdin, store=store, config=config, config_file=args.config, yes=args.yes,
                 skin_checks=skin_checks, operator=operator, supervisor=supervisor)  # fmt: skip


def log_in(args: argparse.Namespace, *, store: Store, config: SiteConfig | None, stdin: TextIO,
           err: TextIO) -> tuple[SiteConfig, Identity, Callable[[], Identity]] | str:  # fmt: skip
    """(site configuration, the logged-in operator, how to log a supervisor in for an override), or why not
    (a refusal message: nothing was opened)."""
    from ionctl.cli.login import PasswordUnavailable, login, people_of
    from ionctl.config import ConfigError, load_config
    from ionctl.config.people import Act, PeopleError

    try:
        config = config if config is not None else load_config(args.config)
        people = people_of(store, config)
        operator = login(people, args.operator, from_stdin=args.password_stdin, stdin=stdin, act=Act.RUN_SESSION,
                         err=err)  # fmt: skip
    except (ConfigError, PeopleError, PasswordUnavailable) as exc:
        return f"not started: {exc}"
    except KeyboardInterrupt:
        return "not started: interrupted at the password prompt"

    def supervisor() -> Identity:
        if not args.supervisor:
            raise PeopleError("name the supervisor who sets the rule aside: --supervisor NAME")
        return login(people, args.supervisor, from_stdin=args.password_stdin, stdin=stdin, act=Act.OVERRIDE_COURSE,
                     err=err)  # fmt: skip

    return config, operator, supervisor


def refused(message: str, request: TreatmentRequest, err: TextIO) -> Report:
    """The report of a session refused before anything was prepared (no record: there is no prescription)."""
    from ionctl.treatment import not_started

    print(f"ionctl run: {message}\nNo current flowed; the device was not opened.", file=err)
    return not_started(message, db=request.db)


def treat(request: TreatmentRequest, *, err: TextIO, stdin: TextIO, store: Store | None, config: SiteConfig | None,
          config_file: str | None = None, yes: bool = False, skin_checks: bool = True,
          operator: Identity | None = None, supervisor: Callable[[], Identity] | None = None) -> Report:  # fmt: skip
    """Prepare the request, show it, confirm it and run it at this terminal as `operator` (logged in: with a
    `store` the session needs one); never raises for the prescription, the limits or the device: every way
    out is a `Report`. With a `store`, a refused session gets a record too, signed as a session's is. A session
    of the patient that energised them and has no skin check after it is asked for first (`skin_checks`)."""
    from ionctl.cli.progress import Progress
    from ionctl.cli.signals import operator_signals, signals_held
    from ionctl.drivers import open_device
    from ionctl.treatment import CourseRuleRefused, Refused, SessionRunner, not_started, prepare, record_refusal

    try:
        prepared = prepare(request, store=store, config=config, config_file=config_file, operator=operator,
                           supervisor=supervisor)  # fmt: skip
    except Refused as exc:
        message = exc.message
        if isinstance(exc, CourseRuleRefused) and exc.denied is None and exc.overridable:
            message = f"{exc.rule}; a supervisor may override with --supervisor-override REASON --supervisor NAME"
        print(f"ionctl run: {message}\nNo current flowed; the device was not opened.", file=err)
        report = not_started(message, db=request.db, prescription=exc.prescription, limits=exc.limits,
                             violations=exc.violations)  # fmt: skip
        if exc.prescription is None or exc.limits is None:
            return report
        return record_refusal(store, report, exc.prescription, exc.limits, err, config_sha256=exc.config_sha256,
                              course_id=exc.course_id, course_ref=exc.course_ref, clinical=exc.clinical,
                              operator=operator,
                              anchor=config.accounts.anchor if config is not None else None)  # fmt: skip
    for note in prepared.notes:
        print(f"ionctl run: note: {note}", file=err)
    print(prepared.summary(), file=err)
    rx = prepared.prescription
    refusal = _skin_checks_pending(rx, store, stdin, err, yes=yes, db=request.db) if skin_checks else None
    refusal = refusal or confirm(yes, stdin, err)
    if refusal is not None:
        print(f"ionctl run: {refusal}", file=err)
        report = not_started(refusal, db=request.db, prescription=rx, limits=prepared.limits)
        return record_refusal(store, report, rx, prepared.limits, err, config_sha256=prepared.config.sha256,
                              course_id=prepared.request.course_id, course_ref=prepared.request.course_ref,
                              clinical=prepared.clinical, operator=prepared.operator,
                              anchor=prepared.config.accounts.anchor)  # fmt: skip
    progress = Progress(err, rx, tty=_isatty(err))

    def say(text: str) -> None:
        progress.end_line()
        print(f"ionctl run: {text}", file=err)

    runner = SessionRunner.of(prepared, lambda: open_device(request.device), store=store, messages=err, say=say,
                              reconnect=lambda: open_device(request.device), display=progress,
                              watch=lambda session: operator_signals(session, err))  # fmt: skip
    with signals_held():  # a signal as the session ends is acknowledged until its record is closed
        return runner.run()


def _skin_checks_pending(rx: Prescription, store: Store | None, stdin: TextIO, err: TextIO, *, yes: bool,
                         db: str | None) -> str | None:  # fmt: skip
    """Why not to start while a session of this patient lacks its skin check after (asked for at a terminal)."""
    from ionctl.cli.addendum import settle_pending

    if store is None:
        return None
    return settle_pending(store, rx.patient_id, rx.operator_id, ask=not yes and _isatty(stdin), stdin=stdin, err=err,
                          db=db)  # fmt: skip


def confirm(yes: bool, stdin: TextIO, err: TextIO) -> str | None:
    """None to go ahead; else why not. Without `--yes` only a person at a terminal may say yes."""
    if yes:
        return None
    if not stdin.isatty():
        return "not started: stdin is not a terminal, so nobody can confirm; pass --yes to start without asking"
    err.write("Start? [y/N] ")
    err.flush()
    try:
        answer = stdin.readline()
    except KeyboardInterrupt:
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return None
    return "not started: the operator did not confirm"


def emit(report: Report, *, as_json: bool, extra: dict[str, Any] | None = None, out: TextIO | None = None) -> None:
    """Print the result: one JSON object (with `extra` merged in) on stdout, or a summary for a person."""
    from ionctl.treatment import result_text

    out = out or sys.stdout
    if as_json:
        out.write(json.dumps({**report.to_dict(), **(extra or {})}) + "\n")
    else:
        out.write(result_text(report) + "\n")
    out.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False

"""`ionctl run`: one treatment session from the command line, non-interactively.

The order is the safety argument: the prescription is built and checked against the site limits *before*
the device is opened (a refusal names every limit broken; no port is touched); then the operator confirms
(`--yes`, or `y` on a terminal); then the device is opened and a `Session` runs it to an outcome. Progress
goes to stderr so that `--json` leaves exactly one JSON object on stdout. SIGINT asks for a ramped stop, a
second SIGINT for an abort; SIGTERM and SIGHUP (the terminal closed) ask for a ramped stop.

Exit codes (`ionctl.core.session.exit_code`): 0 completed as prescribed; 2 refused (bad arguments or limits,
or not confirmed; no current flowed); 3 fault (or the stuck-output alarm); 4 stopped or aborted by the
operator; 5 device or link error before any current flowed; 6 the record could not be written
(`record_failed`, `Recorder`: the session was stopped with a ramp).

Heavy modules (the session and its `transitions`, the drivers and pyserial/pyvisa) are imported when a
session runs, not when the parser is built, so `ionctl --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ionctl.config import SiteConfig
    from ionctl.core.session import Session, SessionResult, StateChange
    from ionctl.drivers.base import CurrentSource, Telemetry
    from ionctl.records import SessionLock, Store
    from ionctl.records.writer import ClosingJournal
    from ionctl.safety import Prescription, SiteLimits

#: Without a terminal, one progress line every this many device seconds.
PROGRESS_EVERY_DEVICE_S = 5.0
#: On a terminal, redraw the status line at most this often (host seconds; display only).
REDRAW_EVERY_S = 0.1


ALARM_TEXT = (
    "!!! ALARM: CURRENT IS STILL FLOWING after the output was switched off.\n"
    "!!! REMOVE THE ELECTRODES FROM THE PATIENT NOW, then disconnect the device."
)


# -- arguments ---------------------------------------------------------------------------------------------


def _positive(text: str) -> float:
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or a positive number, got {text!r}")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


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
        type=_positive,
        metavar="CM2",
        help="active electrode area in cm² (sets the current density)",
    )
    area.add_argument("--electrode", metavar="NAME", help="an electrode of the site catalog (its area)")
    rx.add_argument("--current", type=_positive, metavar="MA", help="hold current in mA")
    amount = rx.add_mutually_exclusive_group()
    amount.add_argument("--dose", type=_positive, metavar="MA_MIN", help="dose in mA·min (ramps included)")
    amount.add_argument("--duration", type=_positive, metavar="MIN", help="whole session in minutes, ramps included")
    rx.add_argument("--ramp-up", type=_non_negative, metavar="S", help="ramp-up time in seconds (default 30)")
    rx.add_argument("--ramp-down", type=_non_negative, metavar="S", help="ramp-down time in seconds (default 30)")
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
    rx.add_argument("--operator", required=True, metavar="ID", help="operator identifier for the record")
    course = parser.add_argument_group("treatment course")
    course.add_argument(
        "--course", type=int, metavar="ID",
        help="this session belongs to course ID (`ionctl course start`): its preset, patient, interval and "
        "session count apply",
    )  # fmt: skip
    course.add_argument(
        "--supervisor-override", metavar="REASON",
        help="run a course session early or beyond the plan: needs the supervisor PIN (on stdin with "
        "--pin-stdin), recorded with REASON",
    )  # fmt: skip
    course.add_argument("--pin-stdin", action="store_true", help="read the supervisor PIN from stdin")
    run = parser.add_argument_group("session")
    run.add_argument(
        "--device",
        required=True,
        metavar="ADDR",
        help="serial port or pyserial URL (firmware device), or visa:RESOURCE (SCPI SourceMeter)",
    )
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


EPILOG = """\
exit codes: 0 completed as prescribed; 2 refused (bad arguments or limits, not confirmed; no current
flowed); 3 fault (or the stuck-output alarm); 4 stopped or aborted by the operator; 5 device or link
error before any current flowed; 6 the session's record could not be written (stopped with a ramp).
signals: SIGINT (Ctrl-C) ramps the current down and stops; a second SIGINT aborts (fastest safe ramp);
SIGTERM and SIGHUP (the terminal closed) ramp down and stop. Progress goes to stderr; --json prints one
object on stdout at the end."""


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse `ionctl run` arguments on their own (how `ionctl demo` builds its session)."""
    parser = argparse.ArgumentParser(prog="ionctl run")
    add_arguments(parser)
    return parser.parse_args(list(argv))


# -- the report --------------------------------------------------------------------------------------------


@dataclass
class Report:
    """The session's result and what `ionctl run` adds to it for the caller."""

    result: SessionResult
    exit_code: int
    db: str | None
    violations: list[dict[str, Any]] = field(default_factory=list)
    record_id: int | None = None  # the session's record in the store (None: no store, e.g. `ionctl demo`)
    record_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = self.result.to_dict()
        d["db"] = self.db
        d["record_id"] = self.record_id
        d["exit_code"] = self.exit_code
        if self.violations:
            d["violations"] = self.violations
        return d


def _report(result: SessionResult, args: argparse.Namespace, violations: list[dict[str, Any]] | None = None) -> Report:
    from ionctl.core.session import exit_code

    return Report(result, exit_code(result), args.db, violations or [])


def _not_started(
    args: argparse.Namespace,
    message: str,
    *,
    outcome: str,
    fault: str | None = None,
    prescription: Prescription | None = None,
    limits: SiteLimits | None = None,
    violations: list[dict[str, Any]] | None = None,
) -> Report:
    """A result for a session that never reached the device (refused, declined, or the device unreachable)."""
    from ionctl.core.session import SessionResult, prescription_dict

    result = SessionResult(outcome=outcome, fault=fault, message=message)
    if prescription is not None:
        result.prescription = prescription_dict(prescription)
        result.prescribed_dose_ma_min = prescription.planned_dose_ma_min
    if limits is not None and prescription is not None and prescription.protocol_class in limits.classes:
        site = limits.for_class(prescription.protocol_class)
        result.limits, result.limits_sha256 = site.values(), site.sha256
    return _report(result, args, violations)


# -- the command -------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    """`ionctl run`: open the record store (closing any record a killed session left open), run the session
    into it and print the result; returns the exit code. No store, no session: principle 7."""
    from ionctl.config import ConfigError
    from ionctl.config.bench import open_store
    from ionctl.records import StoreError, recover_interrupted
    from ionctl.records.recovery import settle_counters

    try:
        store = open_store(args.db, args.config, create=True)  # --db, else the site's store, else the user's
    except (StoreError, OSError, ConfigError) as exc:
        message = f"not started: cannot open the record store: {exc}"
        print(f"ionctl run: {message}\nNo current flowed; the device was not opened.", file=sys.stderr)
        report = _not_started(args, message, outcome="refused")
        emit(report, as_json=args.json)
        return report.exit_code
    with signals_held(), store:  # a session's signal handlers stay until its record, result and store are done
        broken = store.verify()  # a session is not written into a store whose chain is broken
        if broken is not None:
            message = (f"not started: the record store {store.path} does not verify (`ionctl records verify`): "
                       f"{broken}")  # fmt: skip
            print(f"ionctl run: {message}\nNo current flowed; the device was not opened.", file=sys.stderr)
            report = _not_started(args, message, outcome="refused")
            emit(report, as_json=args.json)
            return report.exit_code
        counter = _counter_reader(args.device)
        notes: list[str] = []
        for record_id in recover_interrupted(store, device_counter=counter, notes=notes):
            print(f"ionctl run: record {record_id} in {store.path} was left open by a session that never ended; "
                  "closed as interrupted", file=sys.stderr)  # fmt: skip
        for note in notes:
            print(f"ionctl run: {note}", file=sys.stderr)
        for record_id in settle_counters(store, counter):
            print(f"ionctl run: record {record_id} (interrupted) settled with the device's own dose counter",
                  file=sys.stderr)  # fmt: skip
        report = execute(args, store=store)
        export: dict[str, Any] = {}
        if args.json and report.record_id is not None:
            export = store.get(report.record_id).to_dict()  # the record's own JSON export, as stored
        emit(report, as_json=args.json, extra=export)
    return report.exit_code


def _counter_reader(address: str) -> Callable[[dict[str, Any]], float | None]:
    """For crash recovery: the dose counter of the device at `address`, if it is the interrupted record's
    device (same serial). Not for a SourceMeter: it has no counter, and opening one resets it."""

    def read(identity: dict[str, Any]) -> float | None:
        from ionctl.drivers import VISA_PREFIX, DeviceError, open_device

        if address.lower().startswith(VISA_PREFIX):
            return None
        try:
            with open_device(address) as device:
                if device.identity.serial != identity.get("serial"):
                    return None
                samples = device.read_telemetry(1.0)
        except DeviceError:
            return None
        return samples[-1].device_dose_ma_min if samples else None

    return read


def execute(
    args: argparse.Namespace,
    *,
    err: TextIO | None = None,
    stdin: TextIO | None = None,
    store: Store | None = None,
    config: SiteConfig | None = None,
    skin_checks: bool = True,
) -> Report:
    """Check, confirm, connect and run; everything but printing the result. Never raises for the
    prescription, the limits or the device: every way out is a `Report`. With a `store` (`ionctl run`; not
    `ionctl demo`), the record is opened once the prescription has been checked against the limits (refused
    ones get a record too), written as the session runs, and closed with the result. A session of the patient
    that energised them and has no skin check after it is asked for first (`skin_checks`; not in the demo)."""
    from ionctl.config import ConfigError, ConfigNotApproved, load_config, require_approved
    from ionctl.core.courses import CourseRefused
    from ionctl.records import StoreError
    from ionctl.safety import PrescriptionError, PrescriptionRefused, validate

    err = err or sys.stderr
    try:
        config = config if config is not None else load_config(args.config)
        if store is not None:
            require_approved(config, store)
        course = _course(store, args.course) if args.course is not None else None
        prescription = build_prescription(args, config, course)
    except (PrescriptionError, ConfigError, ConfigNotApproved, StoreError) as exc:
        print(f"ionctl run: {exc}\nNo current flowed; the device was not opened.", file=err)
        return _not_started(args, str(exc), outcome="refused")
    limits = config.limits
    opening = {"config_sha256": config.sha256, "course_id": args.course}
    try:
        validated = validate(prescription, limits, catalog=config.drugs)
    except PrescriptionRefused as exc:
        print(f"ionctl run: {exc}\nNo current flowed; the device was not opened.", file=err)
        violations = [asdict(v) for v in exc.violations]
        report = _not_started(args, str(exc), outcome="refused", prescription=prescription, limits=limits,
                              violations=violations)  # fmt: skip
        return _recorded(store, report, prescription, limits, err, opening)
    override: dict[str, Any] | None = None
    if course is not None and store is not None:
        try:
            override = _admit(store, args, course, stdin or sys.stdin)
            changed = _preset_changed(config, course)
            if changed:
                print(f"ionctl run: note: preset {course['preset']} has changed since course {course['id']} started "
                      f"({changed}); the preset in force applies", file=err)  # fmt: skip
        except CourseRefused as exc:
            print(f"ionctl run: {exc}\nNo current flowed; the device was not opened.", file=err)
            report = _not_started(args, str(exc), outcome="refused", prescription=prescription, limits=limits)
            return _recorded(store, report, prescription, limits, err, opening)
    if course is None and store is not None:
        try:  # a course of the same preset or drug in progress binds this session too
            override = _admit_outside(store, args, prescription, stdin or sys.stdin)
        except CourseRefused as exc:
            print(f"ionctl run: {exc}\nNo current flowed; the device was not opened.", file=err)
            report = _not_started(args, str(exc), outcome="refused", prescription=prescription, limits=limits)
            return _recorded(store, report, prescription, limits, err, opening)
        for note in _courses_in_progress(store, prescription.patient_id):
            print(f"ionctl run: note: {note}", file=err)
    print(summary(prescription, validated.drug_charge.name.lower(), limits, args.device, config), file=err)
    refusal = _skin_checks_pending(args, store, prescription, stdin or sys.stdin, err) if skin_checks else None
    refusal = refusal or confirm(args.yes, stdin or sys.stdin, err)
    if refusal is not None:
        print(f"ionctl run: {refusal}", file=err)
        report = _not_started(args, refusal, outcome="refused", prescription=prescription, limits=limits)
        return _recorded(store, report, prescription, limits, err, opening)
    check = opening_check(config, args.course, course_rules=override is None, patient=prescription.patient_id,
                          preset=args.preset, drug=prescription.drug)  # fmt: skip
    recorder = Recorder.open(store, prescription, limits, err, **opening, check=check) if store is not None else None
    if store is not None and recorder is None:
        message = "not started: the session record could not be opened (see above)"
        return _not_started(args, message, outcome="refused", prescription=prescription, limits=limits)
    try:
        if override is not None and store is not None and recorder is not None:  # the override names its session
            try:
                store.append_audit("course-override", "supervisor", override,
                                   course_id=args.course if args.course is not None else override["course_id"],
                                   record_id=recorder.record_id)  # fmt: skip
            except Exception as exc:  # an override that is not on record allows nothing
                message = f"not started: the supervisor's override could not be recorded: {exc}"
                print(f"ionctl run: {message}", file=err)
                report = _not_started(args, message, outcome="refused", prescription=prescription, limits=limits)
                recorder.finish(report)
                return report
        report = _run_on_device(args, prescription, limits, err, recorder)
    finally:
        if recorder is not None:
            recorder.release()
    return report


def _skin_checks_pending(args: argparse.Namespace, store: Store | None, prescription: Prescription, stdin: TextIO,
                         err: TextIO) -> str | None:  # fmt: skip
    """Why not to start while a session of this patient lacks its skin check after (asked for at a terminal)."""
    from ionctl.cli.addendum import settle_pending

    if store is None:
        return None
    ask = not args.yes and _isatty(stdin)
    return settle_pending(store, prescription.patient_id, prescription.operator_id, ask=ask, stdin=stdin, err=err,
                          db=args.db)  # fmt: skip


def _course(store: Store | None, course_id: int) -> dict[str, Any]:
    from ionctl.records import StoreError

    if store is None:
        raise StoreError("a course session needs the record store")
    return store.course(course_id)


def opening_check(config: SiteConfig, course_id: int | None, *, course_rules: bool, patient: str | None = None,
                  preset: str | None = None, drug: str | None = None) -> Callable[[Store], None]:  # fmt: skip
    """What to check again as the record opens (`Recorder.open`): the configuration is still the approved one,
    and the course (unless a supervisor overrode its rules) still allows a session; a session outside any
    course (given its `patient`, `preset` and `drug`) is still not bound by a course in progress."""

    def check(store: Store) -> None:
        from ionctl.config import require_approved
        from ionctl.core.courses import check_next, check_outside

        require_approved(config, store)
        if course_id is not None and course_rules:
            check_next(store, course_id)
        elif course_id is None and course_rules and patient is not None:
            check_outside(store, patient, preset=preset, drug=drug)

    return check


def _courses_in_progress(store: Store, patient: str) -> list[str]:
    """A line for each course of `patient` with sessions left: a session outside it is not counted in it."""
    from datetime import UTC, datetime

    from ionctl.core.courses import status

    lines = []
    for course in store.courses(patient=patient):
        now = status(store, course["id"], datetime.now(UTC))
        if now.left:
            lines.append(f"patient {patient} has course {course['id']} ({course['preset']}, {now.done} of "
                         f"{now.plan.sessions} done) in progress; this session is not part of it (--course "
                         f"{course['id']} to make it one)")  # fmt: skip
    return lines


def _preset_changed(config: SiteConfig, course: dict[str, Any]) -> str:
    """Which of the course's preset values differ now ("" if none, or if the course kept none)."""
    from ionctl.core.courses import preset_values

    then = (course.get("plan") or {}).get("preset")
    if not isinstance(then, dict) or course["preset"] not in config.presets:
        return ""
    now = preset_values(config.presets[course["preset"]])
    return ", ".join(f"{k} {then.get(k)!r} -> {now[k]!r}" for k in sorted(now) if then.get(k) != now[k])


def _admit(store: Store, args: argparse.Namespace, course: dict[str, Any], stdin: TextIO) -> dict[str, Any] | None:
    """None if the course allows a session now; the override to record once the session's record is open if a
    supervisor overrides the rule; else CourseRefused."""
    from ionctl.core.courses import CourseRefused, check_next

    try:
        check_next(store, course["id"])
        return None
    except CourseRefused as exc:
        _supervisor_overrides(store, args, exc, f"override course {course['id']}: {exc}", stdin)
        return {"reason": args.supervisor_override, "rule": str(exc), "operator": args.operator}


def _supervisor_overrides(store: Store, args: argparse.Namespace, refused: Exception, attempt: str,
                          stdin: TextIO) -> None:  # fmt: skip
    """Return if a supervisor sets the course rule `refused` aside (`--supervisor-override` and the right PIN,
    the attempt recorded); else CourseRefused saying how, or why the override was refused."""
    from ionctl.cli.config import PinUnavailable, read_pin
    from ionctl.config import AuthorityError, authenticate
    from ionctl.core.courses import CourseRefused

    if not args.supervisor_override:
        raise CourseRefused(f"{refused}; a supervisor may override with --supervisor-override REASON") from None
    try:
        pin = read_pin("supervisor PIN", from_stdin=args.pin_stdin, stdin=stdin)
        authenticate(store, pin, attempt=attempt)
    except (AuthorityError, PinUnavailable) as denied:
        raise CourseRefused(f"{refused}; override refused: {denied}") from None


def _admit_outside(store: Store, args: argparse.Namespace, prescription: Prescription,
                   stdin: TextIO) -> dict[str, Any] | None:  # fmt: skip
    """None if no course of the patient's binds this session outside courses; the override to record once the
    record is open if a supervisor sets the rule aside; else CourseRefused naming the course and `--course`."""
    from ionctl.core.courses import CourseRefused, check_outside, conflicting_courses

    try:
        check_outside(store, prescription.patient_id, preset=args.preset, drug=prescription.drug)
        return None
    except CourseRefused as exc:
        _supervisor_overrides(store, args, exc, f"run outside a course: {exc}", stdin)
        from datetime import UTC, datetime

        held = conflicting_courses(store, prescription.patient_id, preset=args.preset, drug=prescription.drug,
                                   now=datetime.now(UTC))  # fmt: skip
        return {"reason": args.supervisor_override, "rule": str(exc), "operator": args.operator,
                "course_id": held[0][0] if held else None, "outside_course": True}  # fmt: skip


def _recorded(store: Store | None, report: Report, prescription: Prescription, limits: SiteLimits,
              err: TextIO, opening: dict[str, Any]) -> Report:  # fmt: skip
    """Open and at once close the record of a session refused before the device was touched."""
    recorder = Recorder.open(store, prescription, limits, err, **opening) if store is not None else None
    if recorder is not None:
        try:
            for v in report.violations:
                recorder.note(f"limit broken: {json.dumps(v, sort_keys=True)}")
            recorder.finish(report)
        finally:
            recorder.release()
    return report


DRUG_CHARGE_REFUSED = (
    "--drug-charge is not accepted: a drug's charge comes from the built-in table or the site's drug catalog. A "
    "supervisor adds a drug to the catalog ([drugs.NAME] with its charge and source in the site configuration; "
    "`ionctl config init` writes one to edit) and approves it with `ionctl config approve`"
)


def build_prescription(
    args: argparse.Namespace, config: SiteConfig, course: dict[str, Any] | None = None
) -> Prescription:
    """The `Prescription` the arguments describe (from `--preset`, or the course's preset, with the options
    changing it); `PrescriptionError` (or `ConfigError` for an unknown preset or electrode) if it cannot be built."""
    from ionctl.drivers.base import Polarity
    from ionctl.safety import Prescription, PrescriptionError

    if getattr(args, "drug_charge", None) is not None:
        raise PrescriptionError(DRUG_CHARGE_REFUSED)
    patient = args.patient
    preset_name = args.preset
    if course is not None:
        if patient is not None and patient != course["patient"]:
            raise PrescriptionError(f"course {course['id']} is patient {course['patient']}'s, not {patient}'s")
        if preset_name is not None and preset_name != course["preset"]:
            raise PrescriptionError(f"course {course['id']} follows preset {course['preset']}, not {preset_name}")
        patient, preset_name = course["patient"], course["preset"]
    if patient is None:
        raise PrescriptionError("give --patient (or --course)")
    drug, charge = config.resolve_drug(args.drug) if args.drug is not None else (None, None)
    values: dict[str, Any] = {
        "drug": drug,
        "drug_charge": charge,  # the catalog's, for a drug the built-in table does not know
        "polarity": Polarity(args.polarity) if args.polarity is not None else None,
        "electrode_area_cm2": config.electrode(args.electrode).area_cm2 if args.electrode else args.electrode_area,
        "current_ma": args.current,
        "dose_ma_min": args.dose,
        "duration_min": args.duration,
        "ramp_up_s": args.ramp_up,
        "ramp_down_s": args.ramp_down,
        "protocol_class": args.protocol_class,
        "polarity_reversal_at_midpoint": args.reverse_at_midpoint or None,
    }
    if course is not None:  # the course's planned prescription is the default; what is given here changes it
        from ionctl.core.courses import planned_values

        planned = planned_values(course)
        if values["dose_ma_min"] is not None or values["duration_min"] is not None:
            planned = {k: v for k, v in planned.items() if k not in ("dose_ma_min", "duration_min")}
        values.update({k: v for k, v in planned.items() if values[k] is None})
    if preset_name is not None:
        return config.preset(preset_name).prescription(patient_id=patient, operator_id=args.operator, **values)
    missing = [option for option, key in (("--drug", "drug"), ("--polarity", "polarity"),
                                          ("--electrode-area or --electrode", "electrode_area_cm2"),
                                          ("--current", "current_ma")) if values[key] is None]  # fmt: skip
    if values["dose_ma_min"] is None and values["duration_min"] is None:
        missing.append("--dose or --duration")
    if missing:
        raise PrescriptionError(f"give {', '.join(missing)} (or --preset NAME)")
    return Prescription(patient_id=patient, operator_id=args.operator,
                        **{k: v for k, v in values.items() if v is not None})  # fmt: skip


def summary(p: Prescription, charge: str, limits: SiteLimits, device: str, config: SiteConfig | None = None) -> str:
    """What is about to be delivered, for the operator to confirm."""
    site = limits.for_class(p.protocol_class)
    if p.dose_ma_min is not None:
        amount = f"dose {p.dose_ma_min:.2f} mA·min, about {p.planned_duration_min:.1f} min"
    else:
        amount = f"duration {p.planned_duration_min:.2f} min, about {p.planned_dose_ma_min:.2f} mA·min"
    reversal = "; polarity reversed at the midpoint" if p.polarity_reversal_at_midpoint else ""
    return "\n".join([
        "Prescription (checked against the site limits):",
        f"  patient {p.patient_id}   operator {p.operator_id}",
        f"  drug {p.drug} ({charge}), active electrode: {p.polarity.value}{reversal}",
        f"  current {p.current_ma:.2f} mA on {p.electrode_area_cm2:.2f} cm² = {p.density_ma_cm2:.2f} mA/cm² "
        f"(limit {site.max_density_ma_cm2:.2f})",
        f"  {amount}; ramps {p.ramp_up_s:g} s up, {p.ramp_down_s:g} s down",
        f"  limits: {limits.source}, class {p.protocol_class}",
        *([f"  configuration: {config.source} (SHA-256 {config.sha256[:12]}…)"] if config is not None else []),
        *([f"  {note}"] if config is not None and (note := config.usual_dose_note(p)) else []),
        f"  device: {device}",
    ])  # fmt: skip


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


def _run_on_device(
    args: argparse.Namespace, prescription: Prescription, limits: SiteLimits, err: TextIO, recorder: Recorder | None
) -> Report:
    with signals_held():  # a signal as the session ends is acknowledged until its record is closed
        report = _run_device(args, prescription, limits, err, recorder)
        if recorder is not None:
            recorder.finish(report)
    return report


def _run_device(
    args: argparse.Namespace, prescription: Prescription, limits: SiteLimits, err: TextIO, recorder: Recorder | None
) -> Report:
    from ionctl.core.session import Session
    from ionctl.drivers import DeviceError, open_device

    address = args.device
    try:
        device = open_device(address)
    except KeyboardInterrupt:
        print("ionctl run: interrupted while opening the device; not started, no current flowed", file=err)
        return _not_started(args, "interrupted before the session started", outcome="refused",
                            prescription=prescription, limits=limits)  # fmt: skip
    except DeviceError as exc:
        print(f"ionctl run: cannot reach the device at {address}: {exc}\nNo current flowed.", file=err)
        return _not_started(args, str(exc), outcome="fault", fault=_error_name(exc), prescription=prescription,
                            limits=limits)  # fmt: skip
    progress = Progress(err, prescription, tty=_isatty(err))
    on_sample, on_state = progress.on_sample, progress.on_state
    if recorder is not None:  # the record first (durable), then the display
        on_sample, on_state = recorder.chain(progress)
    session: Session | None = None
    try:
        session = Session(
            device, prescription, limits, accept_no_watchdog=args.accept_no_watchdog,
            reconnect=lambda: open_device(address), on_sample=on_sample, on_state=on_state,
        )  # fmt: skip
        with operator_signals(session, err) as interrupts:
            result = session.run()
        interrupts.apply(result)
    except Exception as exc:  # a bug, not the device: the watchdog (or the SourceMeter's close) makes it safe
        progress.end_line()
        result = _abandoned(session, exc, err)
    finally:
        unconfirmed = _close(device, session.device if session is not None else None)
    progress.end_line()
    if unconfirmed:  # a source without a watchdog that may still be sourcing: nothing else will stop it
        result.alarm = True
        result.message += f"; {unconfirmed}: remove the electrodes from the patient now"
    if result.alarm:
        print(ALARM_TEXT, file=err, flush=True)
    return _report(result, args)


def _abandoned(session: Session | None, exc: Exception, err: TextIO) -> SessionResult:
    """The result of a session that raised (a bug): a fault, energised if it had started the current."""
    from ionctl.core.session import SessionResult

    print(f"ionctl run: INTERNAL ERROR, session abandoned: {exc!r}; closing the device (its watchdog, or for a "
          "SourceMeter the driver, takes the output to zero)", file=err)  # fmt: skip
    result = session.result if session is not None else SessionResult(outcome="fault")
    result.outcome, result.fault, result.message = "fault", "internal", f"internal error: {exc!r}"
    result.energised = any(change.state == "ramping_up" for change in result.timeline)
    return result


def _close(*sources: CurrentSource | None) -> str | None:
    """Close the device and, after a reconnect, the session's new one (closing is idempotent). Returns why the
    output could not be confirmed off by the last one closed (a SourceMeter's `unconfirmed_off`), else None."""
    unconfirmed = None
    for source in {id(s): s for s in sources if s is not None}.values():
        try:
            source.close()
        except Exception as exc:  # closing must not hide the result
            print(f"ionctl run: while closing the device: {exc}", file=sys.stderr)
        unconfirmed = getattr(source, "unconfirmed_off", None)
    return unconfirmed


def _error_name(exc: Exception) -> str:
    from ionctl.drivers import LinkLost

    return "link_lost" if isinstance(exc, LinkLost) else type(exc).__name__


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# -- the record ------------------------------------------------------------------------------------------


class Recorder:
    """Writes one session into its record as it runs: state changes and faults as events, telemetry in batches,
    the result at the end, all through `ionctl.records.writer.RecordWriter`: the session's callbacks only
    enqueue, a thread of the writer's own commits, so a store held by another process or a full disk never
    blocks the session's supervision. When the record cannot be written (the writer's queue fills, or writes
    keep failing past `STALL_S`) the session is stopped with a ramp and ends `record_failed` (exit 6): a session
    must not run on without its record (DESIGN.md principle 7). The closing is also kept in the record's
    closing journal, in space reserved at opening, so that the record can be closed truthfully later."""

    def __init__(self, store: Store, record_id: int, lock: SessionLock, err: TextIO,
                 journal: ClosingJournal | None = None) -> None:  # fmt: skip
        from ionctl.records.recovery import summarise_samples
        from ionctl.records.writer import RecordWriter

        self.store = store
        self.record_id = record_id
        self.lock = lock
        self.err = err
        self.journal = journal
        area = _area(store, record_id)
        self.writer = RecordWriter(store.path, record_id, summarise=lambda rows: summarise_samples(rows, area))
        self.failed: str | None = None

    @classmethod
    def open(cls, store: Store, prescription: Prescription, limits: SiteLimits, err: TextIO, *,
             config_sha256: str | None = None, course_id: int | None = None,
             check: Callable[[Store], None] | None = None) -> Recorder | None:  # fmt: skip
        """The record's opening, durable on return; None (after saying why) if it cannot be written, or if
        `check(store)` raises: it runs inside the opening's write transaction, so what it checks (the approval,
        a course's rules) cannot change before the record exists (two sessions of a course started together).
        The session's liveness lock and its closing journal are taken inside that transaction too."""
        from ionctl.config import ConfigNotApproved
        from ionctl.core.courses import CourseRefused
        from ionctl.core.session import prescription_dict
        from ionctl.records import SessionLock
        from ionctl.records.writer import ClosingJournal

        locks: list[SessionLock] = []
        journals: list[ClosingJournal] = []

        def before_commit(record_id: int) -> None:
            if check is not None:
                check(store)
            locks.append(SessionLock(store, record_id))
            journals.append(ClosingJournal(store.path, record_id))

        site = limits.for_class(prescription.protocol_class) if prescription.protocol_class in limits.classes else None
        try:
            record_id = store.open_record(
                patient=prescription.patient_id, operator=prescription.operator_id,
                prescription=prescription_dict(prescription), limits=site.values() if site is not None else {},
                limits_sha256=site.sha256 if site is not None else "", config_sha256=config_sha256,
                course_id=course_id, before_commit=before_commit,
            )  # fmt: skip
        except (ConfigNotApproved, CourseRefused) as exc:
            for lock in locks:
                lock.release()
            print(f"ionctl run: not started: {exc}", file=err)
            return None
        except Exception as exc:
            for lock in locks:
                lock.release()
            for journal in journals:
                journal.discard()
            print(f"ionctl run: cannot write the session record in {store.path}: {exc}", file=err)
            return None
        return cls(store, record_id, locks[0], err, journals[0] if journals else None)

    def chain(self, progress: Progress) -> tuple[Any, Any]:
        """(on_sample, on_state) for the session: this record first, then the display."""

        def on_sample(session: Session, sample: Telemetry) -> None:
            self.on_sample(session, sample)
            progress.on_sample(session, sample)

        def on_state(session: Session, change: StateChange) -> None:
            self.on_state(session, change)
            progress.on_state(session, change)

        return on_sample, on_state

    def on_sample(self, session: Session, s: Telemetry) -> None:
        # Enqueues only; after a failure the writes go on being retried: the ramp-down belongs in the record.
        try:
            self.writer.sample((s.t_s, s.set_ma, s.measured_ma, s.voltage_v, s.impedance_ohm,
                                session.meter.delivered_ma_min, s.device_dose_ma_min, int(s.at_compliance),
                                session.state))  # fmt: skip
        except Exception as exc:
            self.writer.failure = self.writer.failure or str(exc)
        self._check(session)

    def on_state(self, session: Session, change: StateChange) -> None:
        try:
            kind = "fault" if change.state == "fault" else "state"
            self.writer.event(kind, f"{change.state}: {change.reason}", utc=change.utc, device_t_s=change.device_t_s)
            if change.state == "connected":
                identity = asdict(session.device.identity)
                self.writer.event("note", "device: " + json.dumps(identity, sort_keys=True), utc=change.utc)
        except Exception as exc:
            self.writer.failure = self.writer.failure or str(exc)
        self._check(session)

    def note(self, text: str) -> None:
        self.writer.event("note", text)

    def _check(self, session: Session) -> None:
        """Stop the session (ramped) once the writer says the record cannot be written; said once."""
        if self.failed is not None or self.writer.failure is None:
            return
        self.failed = self.writer.failure
        print(f"\nionctl run: {RECORD_FAILED}: {self.failed}; stopping the session", file=self.err)
        session.request("stop")

    def finish(self, report: Report) -> None:
        """Close the record with the result (its notes as events first); sets `report.record_id`. A session that
        was stopped because its record could not be written ends `record_failed`; a session abandoned on an
        internal error is closed with the dose its own stored samples show."""
        report.record_path = str(self.store.path)
        report.record_id = self.record_id
        result = report.result
        if self.failed is not None and result.outcome != "refused":
            prior = f"{result.outcome}" + (f" ({result.fault})" if result.fault else "")
            result.outcome, result.fault = "record_failed", result.fault or "record"
            result.message = f"{RECORD_FAILED}: {self.failed}; the session was stopped ({prior}: {result.message})"
            if not result.alarm:
                report.exit_code = EXIT_RECORD_FAILED
        from ionctl.records.summary import RecordSummary

        from_samples = result.fault == "internal"
        summary = RecordSummary.from_result(result)
        if self.journal is not None:
            try:
                self.journal.write({"record_id": self.record_id, "summary": summary.to_dict(),
                                    "from_samples": from_samples, "notes": list(result.notes),
                                    "failure": self.failed})  # fmt: skip
            except Exception as exc:
                print(f"ionctl run: cannot write the closing journal of record {self.record_id}: {exc}", file=self.err)
        for text in result.notes:
            self.writer.event("note", text)
        if self.failed is not None:
            self.writer.event("note", f"record writing failed during the session: {self.failed}")
        if self.writer.close(summary, from_samples=from_samples):
            if from_samples and self.writer.closing is not None:
                for key in ("dose_ma_min", "host_dose_ma_min", "device_dose_ma_min", "duration_s", "peak_current_ma",
                            "peak_density_ma_cm2", "time_at_compliance_s"):  # fmt: skip
                    if hasattr(result, key):
                        setattr(result, key, self.writer.closing.get(key))
            if self.journal is not None:
                self.journal.discard()
            return
        self.writer.stop()
        where = f" (its closing is kept in {self.journal.path})" if self.journal is not None else ""
        print(f"ionctl run: cannot close the session record {self.record_id} in {self.store.path}"
              f"{where}: {self.writer.error or self.writer.failure}; the next ionctl command that can write the "
              "store closes it", file=self.err)  # fmt: skip
        if report.exit_code == 0:
            report.exit_code = EXIT_RECORD_FAILED

    def release(self) -> None:
        if self.journal is not None:
            self.journal.release()
        self.lock.release()


#: What a session stopped for its record says, and its exit code (`ionctl run`).
RECORD_FAILED = "the record cannot be written"
EXIT_RECORD_FAILED = 6


def _area(store: Store, record_id: int) -> float | None:
    try:
        area = json.loads(store.get(record_id).fields["prescription"]).get("electrode_area_cm2")
    except Exception:
        return None
    return float(area) if isinstance(area, int | float) else None


# -- signals -----------------------------------------------------------------------------------------------


#: The signals a session answers, and what each one is called in the record.
SIGNAL_REASONS: dict[int, str] = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM",
                  signal.SIGHUP: "SIGHUP, the terminal closed"}  # fmt: skip

#: Handlers that `operator_signals` left installed past a session's end for `signals_held` to restore.
_held: list[dict[int, Any]] | None = None


@dataclass
class Interrupts:
    """What the operator's signals asked of a session: the first one names the reason in its record."""

    reasons: list[str] = field(default_factory=list)
    ended: bool = False  # the session has ended: a signal now is acknowledged, its record is being closed

    def apply(self, result: SessionResult) -> None:
        """Name the signal in the message of a session it stopped (`stopped: SIGHUP, the terminal closed`)."""
        if self.reasons and result.outcome in ("stopped", "aborted"):
            said = f"{result.outcome}: {self.reasons[0]}"
            result.message = f"{said}; {result.message}" if result.message else said


@contextmanager
def signals_held() -> Iterator[None]:
    """Keep a session's signal handlers installed past its end until this block ends (the record closed, the
    result printed): a Ctrl-C arriving as the session completes is acknowledged, never an interrupt that
    leaves a completed session's record open. Nested blocks defer to the outermost; main thread only."""
    global _held
    if threading.current_thread() is not threading.main_thread() or _held is not None:
        yield
        return
    _held = []
    try:
        yield
    finally:
        held, _held = _held, None
        for previous in reversed(held):
            for signum, handler in previous.items():
                signal.signal(signum, handler)


@contextmanager
def operator_signals(session: Session, err: TextIO) -> Iterator[Interrupts]:
    """While the session runs: SIGINT = ramped stop, a second SIGINT = abort; SIGTERM and SIGHUP (the terminal
    closed, an SSH link dropped) = ramped stop. After a hang-up, the standard streams that were the terminal
    are pointed at /dev/null, so that no write to the dead terminal can end the process; SIGTTOU is ignored
    (a write from the background does not suspend it) and Ctrl-Z (SIGTSTP) is refused with a word: a host
    suspended mid-session would leave the device to its watchdog (a SourceMeter, sourcing on). The previous
    handlers are restored afterwards, or, inside `signals_held`, when that block ends (a signal meanwhile is
    acknowledged). Only the main thread can own signals; elsewhere this does nothing."""
    from ionctl.core.session import TERMINAL

    interrupts = Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield interrupts
        return
    stops = 0
    fd = _fileno(err)
    terminals = [n for n in (0, 1, 2) if fd_isatty(n)]

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stops
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            silence_lost_terminals(terminals)
        if interrupts.ended or session.state in TERMINAL:
            _say(fd, f"\n{name}: the session has ended; closing its record\n")
            return
        interrupts.reasons.append(SIGNAL_REASONS[signum])
        stops += 1
        if signum == signal.SIGINT and stops > 1:
            session.request("abort")
            _say(fd, "\nSIGINT again: aborting (fastest safe ramp to zero)\n")
            return
        session.request("stop")
        if signum == signal.SIGINT:
            _say(fd, "\nSIGINT: ramping down and stopping (Ctrl-C again to abort)\n")
        else:
            _say(fd, f"\n{SIGNAL_REASONS[signum]}: ramping down and stopping\n")

    def on_suspend(signum: int, frame: object) -> None:  # a suspended host is a dead host to the device
        _say(fd, "\nCtrl-Z: a running session cannot be suspended (the device would lose its host); "
                 "Ctrl-C stops it\n")  # fmt: skip

    previous: dict[int, Any] = {signum: signal.signal(signum, on_signal) for signum in SIGNAL_REASONS}
    previous[signal.SIGTTOU] = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    previous[signal.SIGTSTP] = signal.signal(signal.SIGTSTP, on_suspend)
    try:
        yield interrupts
    finally:
        interrupts.ended = True
        if _held is not None:
            _held.append(previous)
        else:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def fd_isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def silence_lost_terminals(fds: list[int]) -> None:
    """Point each of `fds` that was a terminal and answers no more as one (hung up) at /dev/null."""
    lost = [fd for fd in fds if not fd_isatty(fd)]
    if not lost:
        return
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    for fd in lost:
        try:
            os.dup2(devnull, fd)
        except OSError:
            pass
    os.close(devnull)


def _fileno(stream: TextIO) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, ValueError, OSError):
        return None


def _say(fd: int | None, text: str) -> None:
    """Write from a signal handler: unbuffered, so it cannot re-enter a buffered stream mid-write."""
    if fd is not None:
        try:
            os.write(fd, text.encode("utf-8", "replace"))
        except OSError:
            pass


# -- progress ----------------------------------------------------------------------------------------------


class Progress:
    """Session progress on stderr: one status line redrawn in place on a terminal (`\\r`), else a line every
    few device seconds; state changes on lines of their own; faults loudly."""

    def __init__(self, stream: TextIO, prescription: Prescription, *, tty: bool) -> None:
        self.stream = stream
        self.prescription = prescription
        self.tty = tty
        self._open_line = False  # a status line is on screen without its newline (tty)
        self.broken = False  # writing failed once: stay quiet for the rest of the session
        self._next_redraw_s = 0.0  # host monotonic (display only)
        self._next_line_t_s: float | None = None  # device time of the next line (not a tty)
        self._start_t_s: float | None = None  # the first device time seen: lines show the time since then

    def _at(self, t_s: float | None) -> str:
        """`[+m:ss] `: session elapsed time (device clock) of a line, not the device's uptime."""
        from ionctl.records.timefmt import since_start

        if t_s is None:
            return ""
        if self._start_t_s is None:
            self._start_t_s = t_s
        return f"[+{since_start(self._start_t_s, t_s)}] "

    def on_sample(self, session: Session, sample: Telemetry) -> None:
        """Called by the session per sample. A display failure (a closed terminal) ends the display, never
        the session."""
        if self.broken:
            return
        try:
            self._sample(session, sample)
        except Exception:
            self.broken = True

    def on_state(self, session: Session, change: StateChange) -> None:
        """Called by the session per state change; as `on_sample`, it cannot break the session."""
        if self.broken:
            return
        try:
            self._state(change)
        except Exception:
            self.broken = True

    def _sample(self, session: Session, sample: Telemetry) -> None:
        if self.tty:
            now = time.monotonic()
            if now < self._next_redraw_s:
                return
            self._next_redraw_s = now + REDRAW_EVERY_S
            self.stream.write("\r\x1b[K" + self._at(sample.t_s) + self.status(session, sample))
            self.stream.flush()
            self._open_line = True
        elif self._line_due(sample.t_s):
            self._next_line_t_s = sample.t_s + PROGRESS_EVERY_DEVICE_S
            self._line(self._at(sample.t_s) + self.status(session, sample))

    def _line_due(self, t_s: float) -> bool:
        """The first sample, a line's time reached, or the device clock restarted (a reboot)."""
        nxt = self._next_line_t_s
        return nxt is None or t_s >= nxt or t_s < nxt - PROGRESS_EVERY_DEVICE_S

    def _state(self, change: StateChange) -> None:
        if change.state == "disconnected":
            return
        when = self._at(change.device_t_s)
        if change.state == "fault":
            self._line(f"{when}*** FAULT: {change.reason} ***")
        elif change.state == "refused":
            self._line(f"{when}REFUSED: {change.reason}")
        else:
            self._line(f"{when}{change.state}: {change.reason}")

    def status(self, session: Session, s: Telemetry) -> str:
        p = self.prescription
        delivered = session.meter.delivered_ma_min
        impedance = f"{s.impedance_ohm:6.0f} Ω" if s.impedance_ohm is not None else "     — Ω"
        compliance = " AT COMPLIANCE" if s.at_compliance else ""
        return (f"{session.state:<13} {s.measured_ma:5.2f} mA {s.voltage_v:5.1f} V {impedance}  "
                f"{delivered:6.2f} / {p.planned_dose_ma_min:.2f} mA·min  left {_clock(session.time_left_s(s))}"
                f"{compliance}")  # fmt: skip

    def end_line(self) -> None:
        if self._open_line and not self.broken:
            self._open_line = False
            try:
                self.stream.write("\n")
                self.stream.flush()
            except Exception:  # a closed terminal: the display ends here, the result does not
                self.broken = True

    def _line(self, text: str) -> None:
        if self._open_line:
            self.stream.write("\r\x1b[K")
            self._open_line = False
        self.stream.write(text + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    whole = max(0, round(seconds))
    return f"{whole // 60:d}:{whole % 60:02d}"


# -- the result --------------------------------------------------------------------------------------------


def emit(report: Report, *, as_json: bool, extra: dict[str, Any] | None = None, out: TextIO | None = None) -> None:
    """Print the result: one JSON object (with `extra` merged in) on stdout, or a summary for a person."""
    out = out or sys.stdout
    if as_json:
        out.write(json.dumps({**report.to_dict(), **(extra or {})}) + "\n")
    else:
        out.write(result_text(report) + "\n")
    out.flush()


def result_text(report: Report) -> str:
    """The result in a few lines, for the operator (and the chart until the records store exists)."""
    r = report.result
    lines = [f"outcome: {r.outcome}" + (f" ({r.fault})" if r.fault else "") + f"   exit {report.exit_code}"]
    if r.message:
        lines.append(f"  {r.message}")
    if r.energised or r.dose_ma_min:
        device = f"{r.device_dose_ma_min:.3f}" if r.device_dose_ma_min is not None else "n/a"
        lines += [
            f"  dose {r.dose_ma_min:.3f} of {r.prescribed_dose_ma_min:.2f} mA·min ({r.dose_source}); "
            f"host {r.host_dose_ma_min:.3f}, device {device}",
            f"  duration {r.duration_s:.1f} s, peak {r.peak_current_ma:.2f} mA ({r.peak_density_ma_cm2:.3f} mA/cm²), "
            f"at compliance {r.time_at_compliance_s:.1f} s",
            f"  impedance start {_ohm(r.impedance_start_ohm)}, end {_ohm(r.impedance_end_ohm)}",
        ]
    if r.alarm:
        lines.append(ALARM_TEXT)
    if report.record_id is not None:
        lines.append(f"  record {report.record_id} in {report.record_path}")
    return "\n".join(lines)


def _ohm(value: float | None) -> str:
    return f"{value:.0f} Ω" if value is not None else "n/a"

"""`ionctl course`: start a treatment course, show where it stands, list courses, export its summary.

A course is started with the prescription its sessions are given at (the preset, with --current,
--electrode/--electrode-area, --dose/--duration and the ramps replacing its values), checked against the limits
in force: a plan that breaks one is refused, every violation named, and nothing is stored. The course is started
by the operator who logs in (`--operator NAME`, a technician or supervisor: the password at the terminal without
echo, or the first line of stdin with --password-stdin), after the site configuration is checked as approved and
before anything is stored; the course names their account. A second course of
the same preset or drug while one is in progress is a supervisor's act (--supervisor-override REASON
--supervisor NAME: the supervisor logs in, their password asked after the operator's, and the override is
signed with their key in the audit trail). A
course's sessions are run with `ionctl run --course ID`, which refuses a session too early or beyond the plan
unless a supervisor overrides it (`--supervisor-override REASON --supervisor NAME`; signed and recorded). The rules are
in `ionctl.core.courses`. Heavy modules are imported when a command runs, so `ionctl --help` stays fast.

At a bench whose site file has `[clinic]`, a course is named clinic-wide `BENCH/ID` (the bench that started it,
its id there): `course start` prints that name, and `course show BENCH/ID` reads the clinic store (with this
bench's records not sent yet) and shows the course's sessions at every bench, each named `BENCH/ID`; it says
which store(s) it read, and falls back to this bench's store (saying so) when the clinic store cannot be reached.
`--local` reads this bench's store only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from ionctl.core.vocabulary import ExitCode


def _whole(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text!r}")
    return value


def _number(text: str, *, zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise argparse.ArgumentTypeError(f"must be a number {'>= 0' if zero else '> 0'}, got {text!r}")
    return value


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    course = commands.add_parser(
        "course",
        help="treatment courses: start one, show where it stands, list, export the summary for the chart",
        description="A treatment course: a preset given as a planned series of sessions (count, per week, "
        "minimum interval), started by the operator who logs in (`course start --operator NAME`). "
        "`ionctl run --course ID` runs its sessions and refuses one too early or beyond "
        "the plan unless a supervisor overrides it (recorded in the audit trail).",
    )
    actions = course.add_subparsers(dest="course_command", metavar="ACTION", required=True)
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", metavar="PATH", help="the record store (default: the site configuration's [records] "
                    "store, else records.sqlite3 in the user data dir)")  # fmt: skip

    start = actions.add_parser("start", parents=[db], help="start a course of a preset for a patient")
    start.add_argument("--patient", required=True, metavar="ID")
    start.add_argument("--preset", required=True, metavar="NAME", help="a preset of the site configuration")
    start.add_argument("--operator", required=True, metavar="NAME",
                       help="your account (a technician or supervisor; `ionctl users list`): you log in, and the "
                       "course names you; its password is asked before anything is stored")  # fmt: skip
    start.add_argument("--sessions", type=_whole, metavar="N", help="sessions in all (default: the preset's plan)")
    start.add_argument("--per-week", type=lambda t: _number(t, zero=False), metavar="K",
                       help="at most K sessions in any 7 days (default: the preset's plan)")  # fmt: skip
    start.add_argument("--min-interval-days", type=lambda t: _number(t, zero=True), metavar="D",
                       help="at least D days between sessions (default: the preset's plan)")  # fmt: skip
    rx = start.add_argument_group(
        "planned prescription", "What every session of the course is given at (its sessions default to it): the "
        "preset's values, with these replacing them. Checked against the limits in force before anything is "
        "stored.")  # fmt: skip
    rx.add_argument("--current", type=lambda t: _number(t, zero=False), metavar="MA", help="hold current in mA")
    area = rx.add_mutually_exclusive_group()
    area.add_argument("--electrode-area", type=lambda t: _number(t, zero=False), metavar="CM2",
                      help="active electrode area in cm²")  # fmt: skip
    area.add_argument("--electrode", metavar="NAME", help="an electrode of the site catalog (its area)")
    amount = rx.add_mutually_exclusive_group()
    amount.add_argument("--dose", type=lambda t: _number(t, zero=False), metavar="MA_MIN", help="dose in mA·min")
    amount.add_argument("--duration", type=lambda t: _number(t, zero=False), metavar="MIN",
                        help="whole session in minutes, ramps included")  # fmt: skip
    rx.add_argument("--ramp-up", type=lambda t: _number(t, zero=True), metavar="S", help="ramp-up time in seconds")
    rx.add_argument("--ramp-down", type=lambda t: _number(t, zero=True), metavar="S",
                    help="ramp-down time in seconds")  # fmt: skip
    start.add_argument(
        "--supervisor-override",
        metavar="REASON",
        help="start a second course of the same preset or drug while one is in progress (or inside "
        "its minimum interval): the supervisor (--supervisor) logs in; signed, recorded with REASON",
    )
    start.add_argument("--supervisor", metavar="NAME", help="the supervisor's account for --supervisor-override "
                       "(`ionctl users list`); its password is asked after the operator's")  # fmt: skip
    start.add_argument("--password-stdin", action="store_true",
                       help="read the password(s) from stdin, one per line (the operator's, then the supervisor's "
                       "for --supervisor-override), not at the terminal")  # fmt: skip
    start.add_argument("--config", metavar="FILE", help="site configuration (default: the site's, else packaged)")
    start.set_defaults(course_handler=_start)

    show = actions.add_parser("show", parents=[db], help="plan, sessions, dose, next earliest date, overrides")
    show.add_argument("id", metavar="ID|BENCH/ID", help="this bench's course ID, or the clinic's course BENCH/ID")
    show.add_argument("--json", action="store_true", help="print the course summary as JSON")
    show.add_argument("--local", action="store_true", help="read this bench's store only, not the clinic store")
    show.add_argument("--config", metavar="FILE", help="site configuration (default: the site's): its [records] "
                      "store and [clinic]")  # fmt: skip
    show.set_defaults(course_handler=_show)

    lst = actions.add_parser("list", parents=[db], help="list courses (oldest first)")
    lst.add_argument("--patient", metavar="ID", help="only this patient's courses")
    lst.add_argument("--json", action="store_true", help="one JSON array of the courses")
    lst.set_defaults(course_handler=_list)

    export = actions.add_parser("export", parents=[db], help="the course summary for the chart (json, pdf)")
    export.add_argument("id", type=int)
    export.add_argument("--format", required=True, choices=("json", "pdf"))
    export.add_argument("-o", "--output", metavar="FILE", help="write here (json: default stdout; pdf: course-ID.pdf)")
    export.set_defaults(course_handler=_export)
    course.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from ionctl.config import ConfigError, ConfigNotApproved
    from ionctl.config.bench import open_store
    from ionctl.core.courses import CourseError, CourseRefused
    from ionctl.records import StoreError, StoreMissing, recover_interrupted

    try:  # only `course start` writes: the other actions read, and never create a store
        with open_store(args.db, getattr(args, "config", None), create=args.course_command == "start") as store:
            for record_id in recover_interrupted(store):
                print(f"ionctl course: record {record_id} was left open by a session that never ended; closed as "
                      "interrupted", file=sys.stderr)  # fmt: skip
            return int(args.course_handler(store, args))
    except StoreMissing as exc:
        print(f"ionctl course: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    except (ConfigError, ConfigNotApproved, CourseError, CourseRefused) as exc:
        print(f"ionctl course: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    except (StoreError, OSError) as exc:
        print(f"ionctl course: {exc}", file=sys.stderr)
        return ExitCode.FAILED


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _start(store: Any, args: argparse.Namespace) -> int:
    from ionctl.config import load_config, require_approved
    from ionctl.core.courses import CourseRefused, plan_of, start_course
    from ionctl.records.course_export import planned_text

    config = load_config(args.config)
    require_approved(config, store)
    operator = _operator(store, config, args)
    area = config.electrode(args.electrode).area_cm2 if args.electrode else args.electrode_area
    rx = {"current_ma": args.current, "electrode_area_cm2": area, "dose_ma_min": args.dose,
          "duration_min": args.duration, "ramp_up_s": args.ramp_up, "ramp_down_s": args.ramp_down}  # fmt: skip
    given = {"patient": args.patient, "operator": operator.name, "preset": args.preset, "sessions": args.sessions,
             "per_week": args.per_week, "min_interval_days": args.min_interval_days, "prescription": rx}  # fmt: skip
    try:
        course_id = start_course(store, config, **given)
    except CourseRefused as refused:
        if not args.supervisor_override:
            raise
        people, supervisor = _override_supervisor(store, config, args, refused)
        override = {"reason": args.supervisor_override, "operator": operator.name}
        course_id = start_course(store, config, **given, override=override, people=people, supervisor=supervisor)
    course = store.course(course_id)
    clinic = config.bench.clinic
    named = f"{clinic.bench}/{course_id}" if clinic is not None else str(course_id)
    print(f"course {named}: patient {course['patient']}, preset {course['preset']}, "
          f"{plan_of(course).text()}")  # fmt: skip
    print(f"  given at: {planned_text(course['plan']['prescription'])}")
    print(
        f"run its sessions with: ionctl run --course {named} --operator NAME --device ADDR ..."
        + (" (at any bench of the clinic)" if clinic is not None else "")
    )
    return ExitCode.OK


def _operator(store: Any, config: Any, args: argparse.Namespace) -> Any:
    """The Identity of the operator `--operator NAME`, logged in (the first password read) under the
    administrators the site configuration names and allowed to run sessions (a technician or supervisor); else
    CourseRefused saying why, nothing stored but the refusal in the audit trail (`login-denied`, `act-denied`)."""
    from ionctl.cli.login import PasswordUnavailable, login, people_of
    from ionctl.config.people import Act, PeopleError
    from ionctl.core.courses import CourseRefused

    people = people_of(store, config)
    try:
        identity = login(people, args.operator, from_stdin=args.password_stdin, stdin=sys.stdin, act=Act.RUN_SESSION,
                         attempt=f"start a course for patient {args.patient}")  # fmt: skip
    except (PeopleError, PasswordUnavailable) as denied:
        raise CourseRefused(f"course not started: {denied}") from None
    except KeyboardInterrupt:
        raise CourseRefused("course not started: interrupted at the password prompt") from None
    return identity


def _override_supervisor(store: Any, config: Any, args: argparse.Namespace, refused: Exception) -> tuple[Any, Any]:
    """(People, Identity): the supervisor `--supervisor NAME`, logged in under the administrators the site
    configuration names and allowed to override a course rule; else CourseRefused saying why (a wrong password,
    a lockout and a role that may not are in the audit trail)."""
    from ionctl.cli.login import PasswordUnavailable, login, people_of
    from ionctl.config.people import Act, PeopleError
    from ionctl.core.courses import CourseRefused

    if not args.supervisor:
        raise CourseRefused(f"{refused}; an override needs the supervisor who gives it: --supervisor NAME")
    people = people_of(store, config)
    try:
        identity = login(people, args.supervisor, from_stdin=args.password_stdin, stdin=sys.stdin,
                         act=Act.OVERRIDE_COURSE, attempt=f"start a course for patient {args.patient}")  # fmt: skip
    except (PeopleError, PasswordUnavailable) as denied:
        raise CourseRefused(f"{refused}; override refused: {denied}") from None
    return people, identity


def _show(store: Any, args: argparse.Namespace) -> int:
    from ionctl.records.course_export import CourseSummary, header_lines, override_lines, session_lines, to_json

    course_summary, name, read = _clinic_summary(store, args)
    if args.json:
        sys.stdout.write(to_json(course_summary))
        print(f"ionctl course: read {read}", file=sys.stderr)
        return ExitCode.OK
    left, right = header_lines(course_summary)
    print(f"course {name} (read {read})")
    shown = [{**s, "record_id": s.get("record", s["record_id"])} for s in course_summary.sessions]
    course_summary = CourseSummary(course_summary.course, course_summary.status, shown, course_summary.overrides)
    for line in left + [""] + right:
        print(f"  {line}" if line else "")
    status = course_summary.status
    if status["refusal"]:
        print(f"  A session now would be refused: {status['refusal']}")
    print("\nsessions")
    for line in session_lines(course_summary, limit=10_000):
        print(f"  {line}")
    print("\nsupervisor overrides")
    for line in override_lines(course_summary, limit=10_000):
        print(f"  {line}")
    return ExitCode.OK


def _clinic_summary(store: Any, args: argparse.Namespace) -> tuple[Any, str, str]:
    """(the course's summary, its name, which store(s) it was read from): clinic-wide when the site file has
    `[clinic]` and `--local` is not given, with this bench's own records in place of the clinic's copies; this
    bench's store alone otherwise, or (saying so on stderr) when the clinic store cannot be read."""
    from ionctl.config.bench import clinic_settings
    from ionctl.core.courses import overrides, summary
    from ionctl.records import StoreError
    from ionctl.records.clinic.courses import parse_name
    from ionctl.records.course_export import CourseSummary
    from ionctl.treatment.prepare import course_status, read_clinic

    try:
        bench, course_id = parse_name(args.id)
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    settings = None if args.local else clinic_settings(args.config)
    here = f"this bench's store {store.path}"
    if settings is None:
        if bench is not None:
            raise StoreError(f"course {args.id} is named clinic-wide: reading it needs [clinic] in the site file")
        return summary(store, course_id, _now()), str(course_id), here
    bench = bench or settings.bench
    view, course = read_clinic(settings, bench, course_id, remote=bench != settings.bench)
    name = view.name
    if view.rows is None:
        print(f"ionctl course: {view.unreachable()}; showing {here} only", file=sys.stderr)
        if view.remote:
            raise StoreError(f"course {name} is another bench's: its plan is in the clinic store only")
        return summary(store, course_id, _now()), name, f"{here} only (the clinic store cannot be reached)"
    if course is None:
        if view.remote:
            raise StoreError(f"course {name} is not in the clinic store (not started, or not sent yet)")
        course = store.course(course_id)
    course = {**course, "name": name}
    current = course_status(store, course, view, _now())
    mine = (
        overrides(store, course_id)
        if not view.remote
        else [  # this bench's overrides of it
            e for e in store.audit(action="course-override") if (e.get("detail") or {}).get("course_ref") == name
        ]
    )
    benches = sorted({str(s.bench) for s in current.sessions if s.bench})
    read = (f"the clinic store ({settings.store}) and {here}; sessions at "
            f"{', '.join(benches) if benches else 'no bench yet'}")  # fmt: skip
    return CourseSummary(course=course, status=current.to_dict(), sessions=[s.to_dict() for s in current.sessions],
                         overrides=mine), name, read  # fmt: skip


def _list(store: Any, args: argparse.Namespace) -> int:
    from ionctl.core.courses import status

    now = _now()
    rows = []
    for course in store.courses(patient=args.patient):
        s = status(store, int(course["id"]), now)
        rows.append({"id": course["id"], "created_utc": course["created_utc"], "patient": course["patient"],
                     "preset": course["preset"], "sessions": course["sessions"], "done": s.done, "left": s.left,
                     "cumulative_dose_ma_min": s.cumulative_dose_ma_min,
                     "next_earliest_utc": s.to_dict()["next_earliest_utc"]})  # fmt: skip
    if args.json:
        print(json.dumps(rows))
        return ExitCode.OK
    from ionctl.records import timefmt

    zone = timefmt.zone_label()
    print(f"id\tcreated ({zone})\tpatient\tpreset\tdone/planned\tdose mA·min\tnext earliest ({zone})")
    for r in rows:
        nxt = (
            timefmt.local_text(r["next_earliest_utc"], seconds=False)
            if r["next_earliest_utc"]
            else ("any time" if r["left"] else "none left")
        )
        print(f"{r['id']}\t{timefmt.local_text(r['created_utc'])}\t{r['patient']}\t{r['preset']}\t{r['done']}/{r['sessions']}\t"
              f"{r['cumulative_dose_ma_min']:.3f}\t{nxt}")  # fmt: skip
    return ExitCode.OK


def _export(store: Any, args: argparse.Namespace) -> int:
    from ionctl.core.courses import summary
    from ionctl.records.course_export import to_json
    from ionctl.records.export import deliver

    course_summary = summary(store, args.id, _now())
    if args.format == "pdf":  # binary; a file always (-o FILE, or course-ID.pdf here)
        from ionctl.records.course_export import to_pdf

        content: str | bytes = to_pdf(course_summary)
    else:
        content = to_json(course_summary)
    deliver(content, args.output, pdf_name=f"course-{args.id}.pdf", command="ionctl course export")
    return ExitCode.OK

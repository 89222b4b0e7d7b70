"""`ionctl records addendum`, and the pending skin check `ionctl run` asks for before a patient's next session.

An addendum follows a record into the chart, append-only and in the hash chain (`Store.append_addendum`, the
same call the console makes): the skin check after the session (`--skin-check ITEM=ANSWER` for every item),
a late adverse reaction (`--reaction`), a correction naming the addendum it corrects (`--correction TEXT
--corrects N`: the corrected addendum is never changed), or a note (`--note`).

A session that energised the patient and has no skin check after it is pending (`Store.pending_skin_checks`):
`ionctl run` for that patient asks for it first at a terminal, and without one refuses (exit 2) naming the
command that records it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from ionctl.core.vocabulary import ExitCode

if TYPE_CHECKING:
    from ionctl.records import Store
    from ionctl.records.skin import Addendum, SkinCheck


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`addendum` among the actions of `ionctl records` (`ionctl.cli.records` registers it there)."""
    from ionctl.cli.login import add_login_arguments
    from ionctl.cli.records import db_option
    from ionctl.records.skin import ITEMS

    db = db_option()

    items = ", ".join(ITEMS)
    parser = commands.add_parser(
        "addendum", parents=[db], help="add to a record: the skin check after, a late adverse reaction, a "
        "correction, a note (append-only)",
        description="Append an addendum to a record (append-only, in the hash chain). Exactly one of: "
        f"--skin-check ITEM=ANSWER for every item ({items}; ANSWER yes, no or not-inspected, the last with "
        "--reason), --reaction TEXT (a late adverse reaction), --correction TEXT --corrects N (corrects addendum "
        "N, which stays as it was), --note TEXT. The person who makes it logs in (--as NAME): the addendum names "
        "their account.",
    )  # fmt: skip
    parser.add_argument("id", type=int, help="the record")
    add_login_arguments(parser, help_name="who makes the addendum: your account (a technician or supervisor); its "
                        "password is asked")  # fmt: skip
    parser.add_argument("--config", metavar="FILE", help="the site configuration (default: the site's): it names "
                        "the administrators the accounts are trusted through")  # fmt: skip
    parser.add_argument("--skin-check", nargs="+", action="extend", metavar="ITEM=ANSWER",
                        help=f"the skin check after the session, every item answered: {items}")  # fmt: skip
    parser.add_argument(
        "--reason",
        action="append",
        default=[],
        metavar="[ITEM=]TEXT",
        help="why an item was not inspected (ITEM=TEXT for one, TEXT for all not inspected)",
    )
    parser.add_argument("--reaction", metavar="TEXT", help="an adverse reaction (with --skin-check: the one "
                        "seen; required when an item is yes)")  # fmt: skip
    parser.add_argument("--correction", metavar="TEXT", help="a correction of addendum --corrects N")
    parser.add_argument("--corrects", type=int, metavar="N", help="the addendum corrected (its # in records show)")
    parser.add_argument("--note", metavar="TEXT", help="a note (with --skin-check: the check's note)")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """`ionctl records addendum`: opened and recovered as every `records` action is (`ionctl.cli.records`)."""
    from ionctl.cli.records import with_store

    return with_store(args, records_addendum)


def addendum_from(args: argparse.Namespace) -> Addendum:
    """The addendum the options describe; SkinCheckError naming what is missing or in conflict."""
    from ionctl.records.skin import (
        ADVERSE_REACTION,
        AFTER,
        CORRECTION,
        NOTE,
        SKIN_CHECK_AFTER,
        Addendum,
        SkinCheck,
        SkinCheckError,
        parse_items,
    )

    if args.reason and not args.skin_check:
        raise SkinCheckError("--reason goes with --skin-check (why an item was not inspected)")
    if args.skin_check:
        if args.correction is not None:
            raise SkinCheckError("give --skin-check or --correction, not both (a skin check given with --corrects "
                                 "replaces the one it names)")  # fmt: skip
        answers, reasons = parse_items(args.skin_check, args.reason)
        check = SkinCheck.of(AFTER, answers, reasons=reasons, note=args.note or "", reaction=args.reaction or "")
        return Addendum(SKIN_CHECK_AFTER, skin=check, corrects=args.corrects)
    given = [name for name, value in (("--reaction", args.reaction), ("--correction", args.correction),
                                      ("--note", args.note)) if value is not None]  # fmt: skip
    if len(given) != 1:
        raise SkinCheckError(("give only one of " if given else "give one of ") + "--skin-check ITEM=ANSWER ..., "
                             "--reaction TEXT, --correction TEXT --corrects N, --note TEXT"
                             + (f" (given: {', '.join(given)})" if given else ""))  # fmt: skip
    if args.correction is not None:
        if args.corrects is None:
            raise SkinCheckError("--correction needs --corrects N: the addendum it corrects")
        return Addendum(CORRECTION, text=args.correction, corrects=args.corrects)
    if args.corrects is not None:
        raise SkinCheckError("--corrects goes with --correction or --skin-check")
    if args.reaction is not None:
        return Addendum(ADVERSE_REACTION, text=args.reaction)
    return Addendum(NOTE, text=args.note)


def records_addendum(store: Store, args: argparse.Namespace) -> int:
    """Log the person in (allowed to record addenda) and append the addendum under their account: exit 0
    recorded, 2 bad input or a refused login (named), 1 the store refused (no such record)."""
    from ionctl.cli.login import PasswordUnavailable, login, people_of
    from ionctl.config import ConfigError, load_config
    from ionctl.config.people import Act, PeopleError
    from ionctl.records.skin import SkinCheckError, addendum_text

    try:
        addendum = addendum_from(args)
    except SkinCheckError as exc:
        print(f"ionctl records addendum: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    try:
        people = people_of(store, load_config(args.config))
        person = login(people, args.login_name, from_stdin=args.password_stdin, act=Act.RECORD_ADDENDUM)
    except (ConfigError, PeopleError, PasswordUnavailable) as exc:
        print(f"ionctl records addendum: nothing recorded: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    except KeyboardInterrupt:
        print("ionctl records addendum: interrupted at the password prompt; nothing recorded", file=sys.stderr)
        return ExitCode.REFUSED
    number = store.append_addendum(args.id, person.name, addendum)
    text = addendum_text({"detail": addendum.detail()})
    print(f"addendum #{number} ({addendum.kind}) recorded in record {args.id} by {person.name}: {text}")
    return ExitCode.OK


# -- the pending skin check, for `ionctl run` -------------------------------------------------------------------


def record_command(record_id: int, operator: str, db: str | None) -> str:
    """The exact command that records the skin check after record `record_id`."""
    from ionctl.records.skin import ITEMS

    where = f" --db {shlex.quote(db)}" if db else ""
    answers = " ".join(f"{key}=ANSWER" for key in ITEMS)
    return (f"ionctl records addendum {record_id}{where} --as {shlex.quote(operator)} --skin-check {answers}"
            " [--reason TEXT] [--reaction TEXT]")  # fmt: skip


def pending_line(row: Mapping[str, Any]) -> str:
    dose = f"{row['dose_ma_min']:.2f} mA·min" if row.get("dose_ma_min") is not None else "dose unknown"
    fault = f" ({row['fault']})" if row.get("fault") else ""
    from ionctl.records import timefmt

    when = timefmt.local_text(row["created_utc"], seconds=False)
    return f"record {row['id']} of {when}, {row['outcome']}{fault}, {dose}"


def settle_pending(store: Store, patient: str, operator: str, *, ask: bool, stdin: TextIO, err: TextIO,
                   db: str | None) -> str | None:  # fmt: skip
    """Before a session of `patient`: None if no session of theirs lacks its skin check after (asking for each
    at the terminal when `ask`); else why the session may not start, naming the command that records it."""
    for row in store.pending_skin_checks(patient):
        print(f"ionctl run: patient {patient}: the session of {pending_line(row)} energised the patient and has no "
              "skin check after it", file=err)  # fmt: skip
        if not ask:
            return (f"not started: record the skin check after record {row['id']} first: "
                    f"{record_command(int(row['id']), operator, db)}")  # fmt: skip
        check = ask_skin_check(stdin, err, int(row["id"]))
        if check is None:
            return f"not started: the skin check after record {row['id']} was not completed"
        from ionctl.records.skin import SKIN_CHECK_AFTER, Addendum

        number = store.append_addendum(int(row["id"]), operator, Addendum(SKIN_CHECK_AFTER, skin=check))
        print(f"ionctl run: skin check after record {row['id']} recorded (addendum #{number})", file=err)
    return None


def ask_skin_check(stdin: TextIO, err: TextIO, record_id: int) -> SkinCheck | None:
    """Ask every item at the terminal (again until answered); None if the input ends first."""
    from ionctl.records.skin import AFTER, ITEMS, Answer, SkinCheck, SkinCheckError

    def ask(question: str) -> str | None:
        err.write(question)
        err.flush()
        try:
            line = stdin.readline()
        except KeyboardInterrupt:
            return None
        return line.strip() if line else None

    print(f"Skin check after record {record_id}: answer y (yes), n (no) or ni (not inspected) for each.", file=err)
    answers: dict[str, Answer] = {}
    reasons: dict[str, str] = {}
    for key, label in ITEMS.items():
        while key not in answers:
            text = ask(f"  {label}? [y/n/ni] ")
            if text is None:
                return None
            try:
                answers[key] = Answer.parse(text)
            except SkinCheckError as exc:
                print(f"  {exc}", file=err)
        while answers[key] is Answer.NOT_INSPECTED and not reasons.get(key):
            reason = ask("    why not inspected? ")
            if reason is None:
                return None
            reasons[key] = reason
    required = any(answer is Answer.YES for answer in answers.values())
    reaction = ask("  adverse reaction seen (describe" + ("" if required else "; empty: none") + ")? ")
    while required and not reaction:
        if reaction is None:
            return None
        reaction = ask("  an item is yes: describe the adverse reaction: ")
    note = ask("  note (optional)? ")
    try:
        return SkinCheck.of(AFTER, answers, reasons=reasons, note=note or "", reaction=reaction or "")
    except SkinCheckError as exc:
        print(f"  {exc}", file=err)
        return None

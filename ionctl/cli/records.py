"""`ionctl records`: list, show, export, verify and sign the session records; `records addendum` is
`ionctl.cli.addendum`.

`verify` checks the hash chain, every signature against the people enrolled under the site configuration's
administrators, and the anchor (`ionctl.config.verification`). `sign ID --as NAME` signs a closed record: a
supervisor countersigns it as "reviewed"; its own operator signs it as "performed" (a record closed by crash
recovery was never signed at its end). A signature covers the record's content hash, so it cannot be moved to
another record (21 CFR 11.70; docs/SOURCES.md, "Part 11").

With `[clinic]` in the site file, list, show, export and verify read the clinic's PostgreSQL store
(`ionctl.records.clinic.reader`) with this bench's store: records are named `BENCH/ID` (a plain ID is this bench's),
this bench's records the clinic does not have in full are read from its own store and marked so, and each command
first says which store(s) it read (on stderr where stdout is data: export, list --json). A record of the clinic is
read by replaying its bench's chain into a store of the bench's own schema (`ionctl.records.clinic.replay`), so the
show, the exports, the chart and the signatures' check are the same code as for this bench's store. `--local`
reads this bench's store only; the clinic unreachable, this bench's store is read, said on stderr (verify then
exits 1).

Every action first closes any record a killed session left open, as `interrupted` (`ionctl.records.recovery`).
Reading never creates a store: a path with none is refused. Heavy modules are imported when an action runs,
so `ionctl --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ionctl.cli import addendum, sync
from ionctl.core.vocabulary import ExitCode

if TYPE_CHECKING:
    from ionctl.config.site import ClinicSettings
    from ionctl.records import Record, Store
    from ionctl.records.clinic.reader import ClinicReader

#: What an action does with the open store (`records_handler` in the parsed arguments).
Action = Callable[["Store", argparse.Namespace], int]


def db_option() -> argparse.ArgumentParser:
    """The `--db PATH` option every action takes (a parent parser)."""
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", metavar="PATH", help="the record store, which must exist (default: the site "
                    "configuration's [records] store, else records.sqlite3 in the user data dir)")  # fmt: skip
    return db


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    records = commands.add_parser(
        "records",
        help="session records: list, show, export, verify the chain and signatures, sign, add an addendum",
        description="The session record store (SQLite, append-only, hash-chained). Every command first closes "
        "any record a killed session left open, as `interrupted`.",
    )
    actions = records.add_subparsers(dest="records_command", metavar="ACTION", required=True)
    db = db_option()
    site = argparse.ArgumentParser(add_help=False)
    site.add_argument("--config", metavar="FILE", help="site configuration (default: the site's): its [clinic] "
                      "names the clinic store read, [records] this bench's store")  # fmt: skip
    local = argparse.ArgumentParser(add_help=False)
    local.add_argument("--local", action="store_true", help="read this bench's store only, not the clinic store "
                       "the site file's [clinic] names")  # fmt: skip
    lst = actions.add_parser("list", parents=[db, site, local], help="list records (oldest first)",
                             description="List the records, oldest first. With [clinic] in the site file: every "
                             "bench's records in the clinic store (named BENCH/ID), with this bench's not yet sent; "
                             "the first line says which store(s) were read (on stderr with --json).")  # fmt: skip
    lst.add_argument("--patient", metavar="ID", help="only this patient's records")
    lst.add_argument("--since", metavar="WHEN", type=_since,
                     help="only records created at or after WHEN: YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (the clinic's "
                     "local time unless an offset such as +01:00 or Z is given), today or yesterday")  # fmt: skip
    lst.add_argument("--json", action="store_true", help="one JSON array of the record rows")
    lst.set_defaults(records_handler=_list)
    show = actions.add_parser("show", parents=[db, site, local], help="show one record and its events")
    show.add_argument("id", type=_record_name, help="ID (this bench's record) or BENCH/ID (with [clinic])")
    show.add_argument("--json", action="store_true", help="the whole record as JSON (the JSON export), for programs")
    show.set_defaults(records_handler=_show)
    export = actions.add_parser(
        "export", parents=[db, site, local],
        help="export one record (json, csv, fhir R4 bundle, pdf page for the chart)",
        description="Export one record. With [clinic], the store read is said on stderr.",
    )  # fmt: skip
    export.add_argument("id", type=_record_name, help="ID (this bench's record) or BENCH/ID (with [clinic])")
    export.add_argument("--format", required=True, choices=("json", "csv", "pdf", "fhir"))
    export.add_argument(
        "-o", "--output", metavar="FILE", help="write here instead of stdout (pdf: default record-ID.pdf)"
    )
    export.set_defaults(records_handler=_export)
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", metavar="FILE", help="site configuration (default: the site's, else packaged): "
                        "its [accounts] names the administrators and the anchor directory")  # fmt: skip
    verify = actions.add_parser(
        "verify", parents=[db, config, local], help="check the hash chain, every signature and the anchor; print "
        "the first problem",
        description="Check the record store: the hash chain, every signature against the enrolled keys, every "
        "key against its enrolment, every enrolment against the administrators the site configuration names, "
        "and the anchor's signed checkpoints of the chain head (deleting the newest records shows). With [clinic] "
        "in the site file, every bench's chain in the clinic store too (replayed and verified link by link, with "
        "its signatures), and the clinic's copy of this bench's chain must be a prefix of this store's. Exit 0 "
        "if everything proves what it says, else 1 naming the first problem's link (and 1 when the clinic store "
        "could not be reached: what was asked could not be verified).",
    )  # fmt: skip
    verify.add_argument("--anchor", metavar="HASH", help="a chain hash printed on a chart page: it must still be a "
                        "link of the chain")  # fmt: skip
    verify.set_defaults(records_handler=_verify)
    sign = actions.add_parser(
        "sign", parents=[db, config], help="sign a closed record: reviewed (a supervisor) or performed (its operator)",
        description="Sign a closed record with your account's key: a supervisor countersigns it as reviewed; the "
        "record's own operator signs it as performed (default: performed for the record's operator, else "
        "reviewed). The signature shows your printed name, the date and time and its meaning, and covers the "
        "record's content.",
    )  # fmt: skip
    sign.add_argument("id", type=int)
    sign.add_argument("--meaning", choices=("reviewed", "performed"), help="what the signature means")
    from ionctl.cli.login import add_login_arguments

    add_login_arguments(sign)
    sign.set_defaults(records_handler=_sign)
    records.set_defaults(handler=main)
    addendum.register(actions)  # `records addendum`: its own module, its own main (which opens the store here)
    sync.add_action(actions)  # `records sync`: its own module, its own main (the store read only, no recovery)


def main(args: argparse.Namespace) -> int:
    """Run the action the arguments name on the store they name; list, show, export and verify read the clinic
    store too when the site file has `[clinic]` (`ionctl.cli.clinic_reads`) and `--local` is not given."""
    action: Action = args.records_handler
    if action in (_list, _show, _export, _verify):
        return clinic_or_local(args, action)
    return with_store(args, action)


def with_store(args: argparse.Namespace, action: Action) -> int:
    """Open the store named by --db (`open_store`), run `action` on it; the store's refusals are one line on
    stderr and exit 1."""
    from ionctl.config import ConfigError
    from ionctl.records import StoreError
    from ionctl.records.export import ExportError

    try:
        store = open_store(args.db, getattr(args, "config", None))
    except (StoreError, OSError, ConfigError) as exc:
        print(f"ionctl records: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    with store:
        try:
            return int(action(store, args))
        except (StoreError, ExportError) as exc:
            print(f"ionctl records: {exc}", file=sys.stderr)
            return ExitCode.FAILED


def open_store(db: str | None, config: str | None = None) -> Store:
    """The store named by --db (else the site's, else the user's; `ionctl.config.bench`), after closing any record
    a killed session left open. Reading never creates a store: a path with none is refused."""
    from ionctl.config.bench import open_store as bench_store
    from ionctl.records import recover_interrupted

    store = bench_store(db, config, create=False)
    notes: list[str] = []  # a store that cannot be written now (a full disk): read without recovering, say so
    for record_id in recover_interrupted(store, notes=notes):
        print(f"ionctl records: record {record_id} was left open by a session that never ended; closed as "
              "interrupted", file=sys.stderr)  # fmt: skip
    for note in notes:
        print(f"ionctl records: note: {note}", file=sys.stderr)
    return store


def _list(store: Store, args: argparse.Namespace) -> int:
    import json

    from ionctl.records import timefmt

    since = None  # the stored form (UTC, as `created_utc` is written), compared in SQL
    if args.since is not None:  # parsed again now that the clinic's time zone is in force
        since = timefmt.parse_since(args.since).isoformat(timespec="milliseconds")
    rows = store.list_records(patient=args.patient, since=since)
    if args.json:
        print(json.dumps(rows))
        return ExitCode.OK
    from ionctl.safety.identifiers import escape_controls  # a record stored before IDs were checked shows safely

    print(f"id\tcreated ({timefmt.zone_label()})\tpatient\toperator\toutcome\tdose mA·min\tprescribed mA·min")
    for r in rows:
        dose = f"{r['dose_ma_min']:.3f}" if r["dose_ma_min"] is not None else "-"
        planned = f"{r['prescribed_dose_ma_min']:.2f}" if r["prescribed_dose_ma_min"] is not None else "-"
        outcome = r["outcome"] or "open (running)"
        shown = [escape_controls(str(text)) for text in (timefmt.local_text(r["created_utc"]), r["patient"],
                                                          r["operator"], outcome)]  # fmt: skip
        print("\t".join([str(r["id"]), *shown, dose, planned]))
    return ExitCode.OK


def _show(store: Store, args: argparse.Namespace) -> int:
    """The record for a person: sections, rounded numbers with their units, local times, the chart's sentences
    (`ionctl.records.narrative`); `--json` the whole record for a program."""
    if getattr(args, "json", False):
        from ionctl.records.export import to_json

        sys.stdout.write(to_json(store.get(args.record_id)))
        return ExitCode.OK
    from ionctl.records.narrative import show_text, visit_channels_in
    from ionctl.safety.identifiers import escape_controls

    record = store.get(args.record_id)
    for line in show_text(record, getattr(args, "id", None), visit_channels_in(store, record)):
        print(escape_controls(line))
    return ExitCode.OK


def _export(store: Store, args: argparse.Namespace) -> int:
    from ionctl.records.export import deliver, to_csv, to_json

    record = store.get(args.record_id)
    if args.format == "pdf":  # binary; a file always (-o FILE, or record-ID.pdf here)
        from ionctl.records.export import to_pdf
        from ionctl.records.narrative import visit_channels_in

        content: str | bytes = to_pdf(record, head=store.chain_head(), clinic_name=_clinic_name(args),
                                      visit=visit_channels_in(store, record))  # fmt: skip
    elif args.format == "fhir":
        content = _fhir(store, record, args)
    else:
        content = {"json": to_json, "csv": to_csv}[args.format](record)
    pdf_name = f"record-{str(args.id).replace('/', '-')}.pdf"
    deliver(content, args.output, pdf_name=pdf_name, command="ionctl records export")
    return ExitCode.OK


def _fhir(store: Store, record: Record, args: argparse.Namespace) -> str:
    """The FHIR bundle, with the chart PDF in it: the page `--format pdf` makes now (the store's chain head, the
    site's `clinic_name`), carried with its SHA-1 and SHA-256 (`ionctl.records.fhir_docs`)."""
    from ionctl.records.export import to_fhir, to_pdf

    clinic_name = _clinic_name(args)
    from ionctl.records.narrative import visit_channels_in

    pdf = to_pdf(record, head=store.chain_head(), clinic_name=clinic_name, visit=visit_channels_in(store, record))
    return to_fhir(record, pdf=pdf, clinic_name=clinic_name, bench=getattr(args, "record_bench", None))


def _clinic_name(args: argparse.Namespace) -> str | None:
    """The site configuration's `clinic_name` (None when it names none)."""
    from pathlib import Path

    from ionctl.config.site import bench_settings

    config = getattr(args, "config", None)
    return bench_settings(None if config is None else Path(config)).clinic_name


def _verify(store: Store, args: argparse.Namespace) -> int:
    """Exit 0 if the chain, every signature and the anchor prove what they say; 1 naming the first problem."""
    from ionctl.config import ConfigError, load_config
    from ionctl.config.verification import verify_store

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"ionctl records verify: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    result = verify_store(store, config, anchor_hash=args.anchor)
    gseq, head = result.head
    print(f"store: {store.path}")
    print(f"chain: {result.links} links, head link {gseq} {head}")
    print(f"signatures: {result.people.signatures} checked against the keys enrolled under the administrators "
          f"{config.source} names ({len(config.accounts.administrators)})")  # fmt: skip
    if result.people.legacy:
        print(f"PIN-era acts: {result.people.legacy} unsigned approvals or overrides from before named accounts, "
              "attested by an administrator's enrolment")  # fmt: skip
    anchor = result.anchor
    if anchor.directory is None:
        print("anchor: no directory ([accounts] anchor in the site configuration names none)")
    else:
        print(f"anchor: {anchor.checkpoints} checkpoints in {anchor.directory}")
    if anchor.given is not None:
        print(f"anchor hash: {anchor.given}" + (" is a link of the chain" if anchor.problem is None else ""))
    if result.unsigned:
        shown = ", ".join(str(n) for n in result.unsigned[:20]) + (" ..." if len(result.unsigned) > 20 else "")
        print(f"note: {len(result.unsigned)} closed records have no \"performed\" sign-off ({shown}): their "
              "operator signs them with `ionctl records sign ID --as NAME`")  # fmt: skip
    if not result.ok:
        for problem in result.problems:
            print(f"BROKEN: {problem}")
        return ExitCode.FAILED
    print(f"ok: the chain of {store.path} verifies, and every signature and anchor checkpoint with it")
    return ExitCode.OK


def _sign(store: Store, args: argparse.Namespace) -> int:
    """Sign a closed record: exit 0 signed, 2 refused (named: an open record, a role that may not, a second
    signature of the same meaning, a wrong password), 1 the store or the site file could not be used."""
    from ionctl.cli.login import PasswordUnavailable, login, people_of
    from ionctl.config import ConfigError, load_config
    from ionctl.config.people import PeopleError
    from ionctl.config.verification import sign_record, signable

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"ionctl records sign: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    try:
        signable(store, args.id)  # an open record is refused before a password is asked
        people = people_of(store, config)
        identity = login(people, args.login_name, from_stdin=args.password_stdin)
        signature = sign_record(people, identity, store, args.id, args.meaning)
    except (PeopleError, PasswordUnavailable) as exc:
        print(f"ionctl records sign: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    print(f"record {args.id} signed: {signature.manifestation()}")
    return ExitCode.OK


def _since(text: str) -> str:
    """`--since` checked when parsed (exit 2 naming the value); `_list` parses it again in the clinic's zone."""
    from ionctl.records.timefmt import parse_since

    try:
        parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _record_name(text: str) -> str:
    """A record's name (ID, or BENCH/ID), checked when parsed (exit 2 naming it)."""
    from ionctl.records.clinic.reader import parse_record_name

    try:
        parse_record_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


# -- with the clinic store (`[clinic]` in the site file) -------------------------------------------------------


def clinic_or_local(args: argparse.Namespace, action: Action) -> int:
    """list, show, export, verify: this bench's store alone (no `[clinic]`, or `--local`: today's behaviour), or the
    clinic store with this bench's store (what it has not sent yet; for verify, all of it). The clinic
    unreachable: said on stderr, and this bench's store is read instead, said too (verify then exits 1: it could
    not verify what it was asked to)."""
    from ionctl.config import ConfigError
    from ionctl.config.bench import clinic_settings
    from ionctl.records.clinic.reader import parse_record_name

    config = getattr(args, "config", None)
    try:
        settings = clinic_settings(config)
    except ConfigError as exc:
        print(f"ionctl records: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    if hasattr(args, "id") and isinstance(args.id, str):
        bench, args.record_id = parse_record_name(args.id)
        args.record_bench = bench or (settings.bench if settings is not None else None)
        if bench is not None and (settings is None or (args.local and bench != settings.bench)):
            why = "--local reads this bench's store only" if settings else "the site file has no [clinic]"
            print(f"ionctl records: record {args.id} is another bench's: {why}", file=sys.stderr)
            return ExitCode.FAILED
    if settings is None:
        return with_store(args, action)
    if args.local:
        return with_store(args, _saying(action, "this bench's store only (--local)"))
    return _with_clinic(args, action, settings)


def _saying(action: Action, note: str) -> Action:
    """`action`, after a first line saying which store it read (on stderr for output that is data)."""

    def run(store: Store, args: argparse.Namespace) -> int:
        _source(args, f"read: {note}: {store.path}")
        return action(store, args)

    return run


def _source(args: argparse.Namespace, line: str) -> None:
    data = args.records_handler is _export or getattr(args, "json", False)
    print(line, file=sys.stderr if data else sys.stdout, flush=True)


def _with_clinic(args: argparse.Namespace, action: Action, settings: ClinicSettings) -> int:
    from ionctl.records import StoreError, StoreMissing
    from ionctl.records.clinic.reader import ClinicError, ClinicReader, ClinicUnreachable
    from ionctl.records.export import ExportError

    try:
        local: Store | None = open_store(args.db, args.config)
    except StoreMissing:
        local = None  # a PC that only reads the clinic's records keeps no store of its own
    except (StoreError, OSError) as exc:
        print(f"ionctl records: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    try:
        try:
            with ClinicReader.open(settings.store, timeout_s=settings.timeout_s) as reader:
                return _CLINIC[action](reader, local, settings, args)
        except ClinicUnreachable as exc:
            print(f"ionctl records: {exc}: reading this bench's store only", file=sys.stderr)
            if local is None:
                print("ionctl records: and this bench has no store of its own", file=sys.stderr)
                return ExitCode.FAILED
            if getattr(args, "record_bench", None) not in (None, settings.bench):
                print(f"ionctl records: record {args.id} is another bench's: it is in the clinic store only",
                      file=sys.stderr)  # fmt: skip
                return ExitCode.FAILED
            code = _saying(action, f"this bench's store only (the clinic store {settings.store} could not be "
                                   "reached)")(local, args)  # fmt: skip
            return ExitCode.FAILED if action is _verify else code
    except (StoreError, ExportError, ClinicError) as exc:
        print(f"ionctl records: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    finally:
        if local is not None:
            local.close()


def _clinic_list(reader: ClinicReader, local: Store | None, settings: ClinicSettings,
                 args: argparse.Namespace) -> int:  # fmt: skip
    import json

    from ionctl.records import timefmt
    from ionctl.records.clinic.reader import NOT_SENT, merged_rows, unsent

    since = None if args.since is None else timefmt.parse_since(args.since).isoformat(timespec="milliseconds")
    heads = reader.heads()
    rows = reader.list_rows(patient=args.patient, since=since)
    mine = [] if local is None else unsent(local.db, heads.get(settings.bench, (0, ""))[0])
    held = reader.first_link(settings.bench)
    if local is not None and held is not None and held != local.first_link():
        print(f"ionctl records: warning: {settings.bench} in the clinic store is another store than {local.path} "
              "(`ionctl records verify` shows where they part)", file=sys.stderr)  # fmt: skip
    elif local is not None and held is not None:  # the same store, but restored from an older copy of it?
        from ionctl.records.clinic.courses import FORKED, forked

        with reader.reading():
            why = forked(reader.connection, local.db, settings.bench)
        if why is not None:
            print(f"ionctl records: warning: {FORKED} ({why})", file=sys.stderr)
    listed = merged_rows(rows, mine, settings.bench, patient=args.patient, since=since)
    _source(args, _clinic_line(settings, len(heads), mine, local))
    if args.json:
        print(json.dumps([r.to_dict() for r in listed]))
        return ExitCode.OK
    from ionctl.safety.identifiers import escape_controls

    print(f"record\tcreated ({timefmt.zone_label()})\tpatient\toperator\toutcome\tdose mA·min\t"
          "prescribed mA·min\tnote")  # fmt: skip
    for listed_record in listed:
        r = listed_record.row
        dose = f"{r['dose_ma_min']:.3f}" if r["dose_ma_min"] is not None else "-"
        planned = f"{r['prescribed_dose_ma_min']:.2f}" if r["prescribed_dose_ma_min"] is not None else "-"
        outcome = r["outcome"] or ("open (running)" if listed_record.source == "local" else "open")
        shown = [escape_controls(str(text)) for text in (listed_record.name, timefmt.local_text(r["created_utc"]),
                                                          r["patient"], r["operator"], outcome)]  # fmt: skip
        print("\t".join([*shown, dose, planned, NOT_SENT if listed_record.source == "local" else ""]).rstrip("\t"))
    return ExitCode.OK


def _clinic_line(settings: ClinicSettings, benches: int, mine: list[Any], local: Store | None) -> str:
    """The first line: which store(s) were read."""
    line = f"read: clinic store {settings.store} ({benches} bench{'es' if benches != 1 else ''})"
    if local is None:
        return line + f" (this bench, {settings.bench}, has no store of its own)"
    return line + f" + {settings.bench}'s {len(mine)} record{'s' if len(mine) != 1 else ''} not yet sent ({local.path})"


def _clinic_record(reader: ClinicReader, local: Store | None, settings: ClinicSettings,
                   args: argparse.Namespace) -> int:  # fmt: skip
    """show and export: this bench's record from its own store while the clinic lacks any link of it, else the
    record's bench's chain replayed from the clinic store (only this record's telemetry loaded)."""
    import tempfile
    from pathlib import Path

    from ionctl.records import StoreError
    from ionctl.records.clinic.reader import record_links_after
    from ionctl.records.clinic.replay import replay

    bench, record_id = args.record_bench, args.record_id
    name = f"{bench}/{record_id}"
    action: Action = args.records_handler
    if bench == settings.bench and local is not None:
        head = reader.heads().get(bench, (0, ""))[0]
        if local.db.execute("SELECT 1 FROM records WHERE id = ?", (record_id,)).fetchone() is not None and (
                record_links_after(local.db, record_id, head)):  # fmt: skip
            _source(args, f"read: this bench's store {local.path} (record {name} is not yet all in the clinic "
                          f"store {settings.store})")  # fmt: skip
            return action(local, args)
    if not reader.has_record(bench, record_id):
        raise StoreError(f"no record {name} in the clinic store {settings.store}")
    with tempfile.TemporaryDirectory(prefix="ionctl-clinic-") as folder:
        with reader.reading():
            done = replay(reader.connection, bench, Path(folder) / "chain.sqlite3",
                          telemetry_of=frozenset({record_id}))  # fmt: skip
        with done.store:
            _source(args, f"read: clinic store {settings.store}: {bench}'s chain ({done.links} links)")
            return action(done.store, args)


def _clinic_verify(reader: ClinicReader, local: Store | None, settings: ClinicSettings,
                   args: argparse.Namespace) -> int:  # fmt: skip
    """This bench's store as without the clinic, then every bench's chain in the clinic store, replayed and
    verified with its signatures under the site's administrators (no anchor: a bench's checkpoints are of its
    own store), and the clinic's copy of this bench's chain a prefix of this store's."""
    import dataclasses
    import tempfile
    from pathlib import Path

    from ionctl.config import ConfigError, load_config
    from ionctl.config.verification import verify_store
    from ionctl.records.clinic.replay import replay

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"ionctl records verify: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    benches = reader.benches()
    print(f"read: this bench's store {'(none)' if local is None else local.path} + clinic store {settings.store} "
          f"({len(benches)} bench{'es' if len(benches) != 1 else ''})")  # fmt: skip
    failed = False
    if local is not None:
        print(f"== this bench ({settings.bench}):")
        failed = _verify(local, args) != ExitCode.OK
    no_anchor = dataclasses.replace(config, accounts=dataclasses.replace(config.accounts, anchor=None))
    for bench in benches:
        with tempfile.TemporaryDirectory(prefix="ionctl-clinic-") as folder:
            with reader.reading():
                done = replay(reader.connection, bench, Path(folder) / "chain.sqlite3")
            with done.store:
                problems = [f"chain: link {done.broken.gseq}: {done.broken.reason}"] if done.broken else []
                result = verify_store(done.store, no_anchor)
                problems += [] if done.broken else result.problems
                if bench == settings.bench and local is not None:
                    problems += _prefix_problems(done.store.link_hashes(), local.link_hashes(), bench)
                gseq, head = result.head
                print(f"== clinic bench {bench}: {done.links} links, head link {gseq} {head}; "
                      f"{result.people.signatures} signatures checked")  # fmt: skip
                for problem in problems:
                    print(f"BROKEN: bench {bench}: {problem}")
                if not problems:
                    print(f"ok: bench {bench}'s chain in the clinic store verifies, and every signature with it")
                failed = failed or bool(problems)
    return ExitCode.FAILED if failed else ExitCode.OK


def _prefix_problems(clinic: Mapping[int, str], mine: Mapping[int, str], bench: str) -> list[str]:
    """The clinic's copy of this bench's chain must be a prefix of this store's chain, hash for hash."""
    for gseq in sorted(clinic):
        if mine.get(gseq) != clinic[gseq]:
            held = "has no such link" if gseq not in mine else f"holds {mine[gseq]}"
            return [f"link {gseq}: the clinic store holds {clinic[gseq]}, this bench's store {held}: the clinic's "
                    f"copy of {bench} is not this store's chain"]  # fmt: skip
    return []


_CLINIC: dict[Action, Callable[[ClinicReader, Store | None, ClinicSettings, argparse.Namespace], int]] = {
    _list: _clinic_list, _show: _clinic_record, _export: _clinic_record, _verify: _clinic_verify,
}  # fmt: skip

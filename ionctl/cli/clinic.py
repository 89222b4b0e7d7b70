"""`ionctl clinic`: set up the clinic's PostgreSQL store once (`init`), bind each bench to its login (`init --bench`,
`add-bench`), and see where every bench stands (`status`).

`init CONNINFO` is the clinic's database administrator's, run once: it creates the `ionctl` schema, its roles and
triggers (`ionctl.records.clinic.schema.initialise`), binds each bench name to the existing login role that sends
for it (granted the bench role: SELECT, and INSERT of what a bench sends, for its own benches only) and grants
the reader role (SELECT only). `add-bench CONNINFO BENCH=LOGIN` binds another bench later. The connection string
carries no password: libpq finds it in a service file or `PGPASSFILE`. `status` reads the clinic store the site
file's `[clinic]` names: each bench's last link and when it arrived, this bench's links not sent yet, and every
conflict on record.

Exit codes: 0 done; 2 refused (the schema is there already, a role that does not exist, a login that may not,
no `[clinic]` in the site file, a clinic store not set up); 3 the server could not be reached (as `ionctl records
sync`).
"""

from __future__ import annotations

import argparse
import sys

from ionctl.core.vocabulary import ExitCode

UNREACHABLE = 3


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    clinic = commands.add_parser(
        "clinic", help="the clinic's PostgreSQL store: set it up once (init), see every bench's sync (status)",
        description="The clinic store: one PostgreSQL database holding every bench's records, re-verified link by "
        "link on arrival, append-only by privilege. Exit 0 done, 2 refused, 3 the server cannot be reached.",
    )  # fmt: skip
    actions = clinic.add_subparsers(dest="clinic_command", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init", help="create the schema, roles and grants (the clinic's database administrator, once)",
        description="Create the ionctl schema in the database CONNINFO names (a libpq connection string or URI, no "
        "password: use a service file or PGPASSFILE), the roles ionctl_owner (owns it, cannot log in), "
        "ionctl_bench (SELECT, and INSERT of what a bench sends) and ionctl_reader (SELECT only), bind benches to "
        "their logins and grant the roles. Refused, changing nothing, if the schema is there already or a named "
        "role does not exist.",
    )  # fmt: skip
    init.add_argument("conninfo", metavar="CONNINFO", help="the clinic database, as the administrator reaches it")
    init.add_argument("--bench", action="append", default=[], metavar="BENCH=LOGIN", type=_binding,
                      help="bind a bench name (as its site file's [clinic] bench says) to the existing login role "
                      "that sends for it, which is granted ionctl_bench (repeatable)")  # fmt: skip
    init.add_argument("--reader-login", action="append", default=[], metavar="ROLE",
                      help="an existing login role for reports: granted ionctl_reader (repeatable)")  # fmt: skip
    init.set_defaults(clinic_handler=_init)
    add = actions.add_parser(
        "add-bench", help="bind another bench name to the login that sends for it (the database administrator)",
        description="Bind BENCH (as its site file's [clinic] bench says) to the existing login role LOGIN, which "
        "is granted ionctl_bench: that login then sends for that bench, and no other login can.",
    )  # fmt: skip
    add.add_argument("conninfo", metavar="CONNINFO", help="the clinic database, as the administrator reaches it")
    add.add_argument("binding", metavar="BENCH=LOGIN", type=_binding, help="e.g. bench-c=bench_c")
    add.set_defaults(clinic_handler=_add_bench)
    status = actions.add_parser(
        "status", help="each bench's last link in the clinic store, this bench's links not sent, conflicts",
        description="Read the clinic store [clinic] in the site file names: each bench's last link and when it "
        "arrived, how many of this bench's links it does not have yet, and every conflict on record.",
    )  # fmt: skip
    status.add_argument("--config", metavar="FILE", help="site configuration naming the clinic store ([clinic]) "
                        "(default: the site's)")  # fmt: skip
    status.add_argument("--db", metavar="PATH", help="this bench's record store (default: the site "
                        "configuration's [records] store, else records.sqlite3 in the user data dir)")  # fmt: skip
    status.set_defaults(clinic_handler=_status)
    clinic.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run the action the arguments name."""
    return int(args.clinic_handler(args))


def _say(text: str) -> None:
    print(f"ionctl clinic: {text}", file=sys.stderr)


def _init(args: argparse.Namespace) -> int:
    from ionctl.records.clinic.schema import ClinicError, initialise
    from ionctl.records.clinic.sync import ClinicUnreachable, connect

    try:
        connect(args.conninfo).close()  # unreachable (exit 3) told apart from refused (exit 2)
    except ClinicUnreachable as exc:
        _say(str(exc))
        return UNREACHABLE
    try:
        done = initialise(args.conninfo, benches=dict(args.bench), readers=tuple(args.reader_login))
    except ClinicError as exc:
        _say(str(exc))
        return ExitCode.REFUSED
    for line in done:
        print(line)
    print("done: benches name this database in their site file's [clinic] store, and `ionctl records sync` "
          "sends their records")  # fmt: skip
    return ExitCode.OK


def _binding(text: str) -> tuple[str, str]:
    from ionctl.records.clinic.schema import parse_binding

    try:
        return parse_binding(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_bench(args: argparse.Namespace) -> int:
    from ionctl.records.clinic.schema import ClinicError, add_bench
    from ionctl.records.clinic.sync import ClinicUnreachable, connect

    try:
        connect(args.conninfo).close()
    except ClinicUnreachable as exc:
        _say(str(exc))
        return UNREACHABLE
    try:
        print(add_bench(args.conninfo, *args.binding))
    except ClinicError as exc:
        _say(str(exc))
        return ExitCode.REFUSED
    return ExitCode.OK


def _status(args: argparse.Namespace) -> int:
    from ionctl.cli.sync import clinic_of
    from ionctl.records.clinic.sync import ClinicUnreachable, benches, clinic_head, conflicts, connect, schema_version

    site = clinic_of(args, _say)
    if isinstance(site, int):
        return site
    settings, path = site
    try:
        clinic = connect(settings.store, timeout_s=settings.timeout_s)
    except ClinicUnreachable as exc:
        _say(str(exc))
        return UNREACHABLE
    with clinic:
        version = schema_version(clinic)
        if version is None:
            _say(f"the clinic store {settings.store} has no ionctl schema: its database administrator runs "
                 "`ionctl clinic init` once")  # fmt: skip
            return ExitCode.REFUSED
        print(f"clinic store: {settings.store} (schema version {version}); this bench: {settings.bench}")
        known = benches(clinic)
        print(f"benches ({len(known)}):")
        for b in known:
            print(f"  {b.bench}\tlink {b.gseq}\treceived {b.received}\tby {b.received_by}")
        head, _ = clinic_head(clinic, settings.bench)
        print(_unsent_line(path, head, settings.bench))
        found = conflicts(clinic)
        print(f"conflicts ({len(found)})" + (":" if found else ": none"))
        for c in found:
            at = f" link {c.gseq}" if c.gseq is not None else ""
            print(f"  #{c.id} {c.seen} {c.bench}{at}: {c.what}: {c.detail}")
    return ExitCode.OK


def _unsent_line(path: object, head: int, bench: str) -> str:
    from pathlib import Path

    from ionctl.records import Store, StoreError
    from ionctl.records.clinic.sync import unsent

    try:
        with Store(Path(str(path)), create=False) as store:
            waiting = unsent(store.db, head)
    except (StoreError, OSError) as exc:
        return f"this bench's store: not read ({exc})"
    return (f"this bench ({bench}, {path}): {waiting} links not sent yet" if waiting else
            f"this bench ({bench}, {path}): everything sent (up to link {head})")  # fmt: skip

"""`ionctl config`: show, start, change and approve the site configuration.

Changing anything (`set`, `approve`) is a supervisor's act: the supervisor names their account (`--as NAME`)
and gives its password, at a terminal without echo or one line per password on stdin with `--password-stdin`
(for scripted set-up); the act is signed with their key (`ionctl.config.people`). Every act and every refused
login is an entry in the audit trail of the record store (`--db`), which `ionctl config audit` lists (never a
credential). `set` checks the changed file first (limits within the packaged ceilings, presets against the
drug table), shows the change as a unified diff and asks before writing and approving it (`--yes` when stdin
is not a terminal). The shared supervisor PIN is gone: `ionctl config pin` says what to do instead. Heavy
modules are imported when a command runs, so `ionctl --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from ionctl.cli.login import add_login_arguments
from ionctl.core.vocabulary import ExitCode


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = commands.add_parser(
        "config",
        help="show or change the site configuration (limits, presets); a supervisor's signed act",
        description="The site configuration: limits, electrode and drug catalogs, protocol presets. Changes "
        "are a supervisor's act (--as NAME, their password), signed and recorded in the audit trail of the record "
        "store.",
    )
    actions = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="site configuration (default: the site's, else packaged)")
    common.add_argument("--db", metavar="PATH", help="record store holding the audit trail (default: the site "
                        "configuration's [records] store, else the user's)")  # fmt: skip
    signer = argparse.ArgumentParser(add_help=False)
    add_login_arguments(signer, help_name="the supervisor's account (`ionctl users list`); its password is asked")

    show = actions.add_parser("show", parents=[common], help="where the configuration is, its hash and contents")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(config_handler=_show)
    init = actions.add_parser("init", help="write a complete site file to edit (packaged presets and limits)")
    init.add_argument("file", metavar="FILE", nargs="?", help="where (default: the site configuration path)")
    init.set_defaults(config_handler=_init)
    setter = actions.add_parser("set", parents=[common, signer], help="change one value, shown as a diff (supervisor)")
    setter.add_argument("key", help="dotted key, e.g. limits.max_current_ma or presets.lidocaine.dose_ma_min")
    setter.add_argument("value", help='new value, in TOML syntax (5.0, true, "text")')
    setter.add_argument("--yes", action="store_true",
                        help="approve the change without asking (needed when stdin is not a terminal)")  # fmt: skip
    setter.set_defaults(config_handler=_set)
    approve = actions.add_parser("approve", parents=[common, signer], help="approve the file as it is (supervisor)")
    approve.add_argument("--note", default="", help="why (recorded)")
    approve.add_argument(
        "--packaged", action="store_true", help="approve the packaged defaults (a store that followed a site file)"
    )
    approve.set_defaults(config_handler=_approve)
    pin_cmd = actions.add_parser("pin", parents=[common], help="gone: named supervisor accounts replace the PIN")
    pin_cmd.add_argument("--pin-stdin", action="store_true", help=argparse.SUPPRESS)
    pin_cmd.set_defaults(config_handler=_pin)
    audit = actions.add_parser("audit", parents=[common], help="list the audit trail")
    audit.add_argument("--json", action="store_true", help="print JSON lines")
    audit.set_defaults(config_handler=_audit)
    config.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from ionctl.cli.login import PasswordUnavailable
    from ionctl.config import ConfigError, ConfigNotApproved
    from ionctl.config.people import PeopleError
    from ionctl.records import StoreError, StoreMissing

    try:
        return int(args.config_handler(args))
    except StoreMissing as exc:  # a read of a store that is not there: nothing was refused, nothing to read
        print(f"ionctl config: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    except (ConfigError, ConfigNotApproved, PeopleError, StoreError, PasswordUnavailable, OSError) as exc:
        print(f"ionctl config: {exc}", file=sys.stderr)
        return ExitCode.REFUSED


def _store(args: argparse.Namespace, *, create: bool) -> Any:
    """The record store (`ionctl.config.bench`); only an explicit write (`create`) may make a new one."""
    from ionctl.config.bench import open_store

    return open_store(args.db, args.config, create=create)


def _site_file(args: argparse.Namespace) -> Path:
    from ionctl.config.site import ConfigError, resolve_path

    path = resolve_path(args.config)
    if path is None:
        raise ConfigError("packaged defaults", None, "no site file: the packaged defaults are in force and need no "
                          "approval; `ionctl config init [FILE]` writes a site file to edit")  # fmt: skip
    return path


def _show(args: argparse.Namespace) -> int:
    from ionctl.config import ConfigNotApproved, approved_sha256, load_config, require_approved

    config = load_config(args.config)
    with _store(args, create=False) as store:
        approved = approved_sha256(store)
        try:
            require_approved(config, store)
            proven = True
        except ConfigNotApproved:
            proven = False
    if approved == config.sha256 and proven:
        state = "approved"
    elif approved == config.sha256:
        state = "NOT APPROVED (no supervisor the site's administrators enrolled signed its approval): sessions refused"
    elif config.packaged and approved is None:
        state = "packaged defaults (no approval needed: nothing was approved in this store)"
    else:
        state = "NOT APPROVED (edited by hand, another file, or a missing site file): sessions refused"
    if args.json:
        presets = {n: {"drug": p.drug, "polarity": p.polarity.value, "protocol_class": p.protocol_class,
                       "missing": list(p.missing), "source": p.source} for n, p in config.presets.items()}  # fmt: skip
        print(json.dumps({"source": config.source, "sha256": config.sha256, "state": state,
                          "limits": config.limits.values(), "limits_source": config.limits.source,
                          "electrodes": {n: e.area_cm2 for n, e in config.electrodes.items()},
                          "drugs": sorted(config.drugs), "presets": presets}, indent=2))  # fmt: skip
        return ExitCode.OK
    print(f"configuration  {config.source}\nSHA-256        {config.sha256}\nstate          {state}")
    print(f"limits         {config.limits.source}; classes: {', '.join(sorted(config.limits.classes))}")
    for name, e in config.electrodes.items():
        print(f"electrode      {name}: {e.area_cm2:g} cm² ({e.type})")
    for name, d in config.drugs.items():
        usual = f", usual {d.usual_dose_ma_min[0]:g}–{d.usual_dose_ma_min[1]:g} mA·min" if d.usual_dose_ma_min else ""
        print(f"drug           {name}: charge {d.charge.value}{usual}")
    for name, p in config.presets.items():
        gives = [f"{k} {getattr(p, k):g}" for k in ("current_ma", "electrode_area_cm2", "dose_ma_min",
                                                     "duration_min") if getattr(p, k) is not None]  # fmt: skip
        leaves = f"; clinician gives {', '.join(p.missing)}" if p.missing else ""
        course = f"; course of {p.course.sessions}" if p.course else ""
        print(f"preset         {name}: {p.drug}, {p.polarity.value}, {', '.join(gives)}{leaves}{course}")
    return ExitCode.OK


def _init(args: argparse.Namespace) -> int:
    from ionctl.config.authority import initial_text
    from ionctl.config.site import default_path

    path = Path(args.file) if args.file else default_path()
    if path.exists():
        print(f"ionctl config init: {path} exists; not overwritten", file=sys.stderr)
        return ExitCode.FAILED
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(initial_text(), encoding="utf-8")
    print(f"wrote {path}\nIt is not approved yet: a supervisor reviews it, then runs `ionctl config approve"
          f"{'' if not args.file else f' --config {path}'}`.")  # fmt: skip
    return ExitCode.OK


def _set(args: argparse.Namespace) -> int:
    """Work out and check the change, show it as a diff of the file, ask (y/N; `--yes` when stdin is not a
    terminal), then log the supervisor in and write it, signed: a value beyond the ceilings is refused before
    anyone is asked for a password."""
    from ionctl.config.authority import apply_change, plan_change

    path = _site_file(args)
    with _store(args, create=True) as store:
        planned = plan_change(store, path, args.key, args.value)
        print(planned.diff or f"{args.key} is already {planned.new!r}: the file would not change", end="")
        if not _confirmed(args.yes, sys.stdin, f"write this change to {path} and approve it"):
            print(f"nothing changed: {path} and its approval are as they were")
            return ExitCode.REFUSED
        people, supervisor = _supervisor(store, planned.before, args, attempt=f"set {args.key} in {path}")
        change = apply_change(people, supervisor, planned)
    print(
        f"{change.key}: {change.old!r} -> {change.new!r} in {path}\napproved as SHA-256 {change.config.sha256}"
        f"\nsigned by {supervisor.account.full_name} ({supervisor.name}, {supervisor.role})"
    )
    return ExitCode.OK


def _confirmed(yes: bool, stdin: TextIO, question: str) -> bool:
    """`--yes`, or `y` typed at a terminal; a stdin that is not a terminal without `--yes` is a no."""
    if yes:
        return True
    if not stdin.isatty():
        print(f"not confirmed: stdin is not a terminal, so nobody can be asked to {question}; pass --yes",
              file=sys.stderr)  # fmt: skip
        return False
    print(f"{question}? [y/N] ", end="", flush=True)
    return stdin.readline().strip().lower() in ("y", "yes")


def _approve(args: argparse.Namespace) -> int:
    """Approve the site file (or, `--packaged`, the packaged defaults) as it is, signed by the supervisor. The
    administrators that make the supervisor trusted are the ones the approved file names; the packaged defaults
    name none, so their approval is made under the site file's (`--config FILE`, else the site's)."""
    from ionctl.config import ConfigError, approve, load_config

    trust = None
    if args.packaged:
        from ionctl.config.site import PACKAGED_SOURCE, packaged_text, parse_config, resolve_path

        config = parse_config(packaged_text(), source=PACKAGED_SOURCE)
        site = resolve_path(args.config)
        if site is None:
            raise ConfigError(PACKAGED_SOURCE, None, "the packaged defaults name no administrator, so the "
                              "supervisor approving them is trusted under the site file that does: give --config "
                              "FILE")  # fmt: skip
        trust = load_config(site)
    else:
        config = load_config(_site_file(args))
    with _store(args, create=True) as store:
        people, supervisor = _supervisor(store, trust or config, args, attempt=f"approve {config.source}")
        approve(people, supervisor, config, note=args.note)
    print(f"approved {config.source}\nSHA-256 {config.sha256}; presets: {', '.join(sorted(config.presets))}\n"
          f"signed by {supervisor.account.full_name} ({supervisor.name}, {supervisor.role})")  # fmt: skip
    return ExitCode.OK


def _supervisor(store: Any, trust: Any, args: argparse.Namespace, *, attempt: str) -> tuple[Any, Any]:
    """(People, Identity): the supervisor `--as NAME`, logged in under the administrators `trust` (a SiteConfig)
    names, allowed to approve configurations. PeopleError (audited) otherwise. An account that is not there,
    in a store from before named accounts or in any other, gets what to do: an administrator enrols it."""
    from ionctl.cli.login import login, people_of
    from ionctl.config.authority import enrol_first_text
    from ionctl.config.people import Act, NotAllowed, PeopleError

    people = people_of(store, trust)
    name = args.login_name
    if name not in people.accounts():
        raise PeopleError(f"no account {name!r} in the record store {store.path} (`ionctl users list`). "
                          f"{enrol_first_text(store)}")  # fmt: skip
    try:  # a refused act is audited, signed by who tried
        identity = login(people, name, from_stdin=args.password_stdin, act=Act.APPROVE_CONFIG, attempt=attempt)
    except NotAllowed as refused:
        raise NotAllowed(f"{refused}; nothing changed (the refusal is in the audit trail)") from None
    return people, identity


def _pin(args: argparse.Namespace) -> int:
    """The shared supervisor PIN is gone: say what replaces it."""
    print("ionctl config pin: the shared supervisor PIN is gone; supervisors act under their own accounts. An "
          "administrator the site configuration names (`[accounts] administrators`, `ionctl users bootstrap`) "
          "enrols each supervisor with `ionctl users add NAME --full-name '...' --role supervisor --as ADMIN`; "
          "the supervisor sets a password at first use and approves with `ionctl config approve --as NAME`",
          file=sys.stderr)  # fmt: skip
    return ExitCode.REFUSED


def _audit(args: argparse.Namespace) -> int:
    from ionctl.config.authority import public_detail
    from ionctl.records import timefmt
    from ionctl.safety.identifiers import escape_controls

    with _store(args, create=False) as store:
        entries = store.audit()
    for e in entries:
        detail = public_detail(e["detail"])  # never a credential (or a PIN-era PIN hash), in any output
        if args.json:
            print(json.dumps({**e, "detail": detail}, sort_keys=True))
            continue
        about = " ".join(f"{k} {e[k]}" for k in ("record_id", "course_id") if e[k] is not None)
        when = timefmt.local_text(e["utc"])
        actor = escape_controls(e["actor"])  # a refused login keeps the name as typed: never a forged row
        print(f"{e['seq']:>5}  {when}  {actor:<12} {e['action']:<18} {about} {json.dumps(detail)}")
    return ExitCode.OK

"""`ionctl users`: the people of a record store (enrol, list, disable, unlock, reset, change a password).

The root of trust is the site configuration, which IT keeps where technicians cannot write: its `[accounts]
administrators` names the keys (by fingerprint) that may enrol people. So the first administrator enrols
themselves (`bootstrap`, which prints the fingerprint for IT to put there) and can do nothing until the site
file names it; every other account is enrolled by such an administrator (`add`), with an initial password the
person replaces at first use. Every act is an audit entry signed by its actor (`ionctl.config.people`), and
no command ever prints a credential. Passwords are asked at the terminal without echo, or read one per line
from stdin with `--password-stdin`: the acting administrator's first, then the new person's initial password.
Every refusal exits 2 with what to do.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ionctl.cli.login import add_login_arguments
from ionctl.core.vocabulary import ExitCode

ROLES = ("technician", "supervisor", "administrator", "auditor")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = commands.add_parser(
        "users",
        help="people: enrol, list, disable, unlock, reset; change your password",
        description="The accounts of the record store: each person logs in with their own name and password and "
        "signs their acts. An administrator the site configuration names ([accounts] administrators) manages "
        "them; every act is signed and recorded in the audit trail.",
    )
    actions = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="site configuration (default: the site's, else packaged)")
    common.add_argument("--db", metavar="PATH", help="the record store (default: the site configuration's "
                        "[records] store, else the user's)")  # fmt: skip
    admin = argparse.ArgumentParser(add_help=False)
    add_login_arguments(admin, help_name="the administrator's account; its password is asked first")

    boot = actions.add_parser("bootstrap", parents=[common], help="enrol the first administrator (prints the "
                              "fingerprint IT puts in the site configuration)")  # fmt: skip
    boot.add_argument("name", metavar="NAME")
    boot.add_argument("--full-name", required=True, help="printed with each of their signatures")
    boot.add_argument("--password-stdin", action="store_true", help="read the password from stdin (one line)")
    boot.set_defaults(users_handler=_bootstrap)

    add = actions.add_parser("add", parents=[common, admin], help="enrol a person (an administrator's act)")
    add.add_argument("name", metavar="NAME", help="login name: letters, digits, '.', '-', '_'")
    add.add_argument("--full-name", required=True, help="printed with each of their signatures")
    add.add_argument("--role", required=True, choices=ROLES)
    add.set_defaults(users_handler=_add)

    lst = actions.add_parser("list", parents=[common], help="name, full name, role, key fingerprint, state")
    lst.set_defaults(users_handler=_list)

    for action, text in (("disable", "disable an account (its signatures stay valid)"),
                         ("unlock", "unlock an account locked after wrong passwords"),
                         ("reset", "a forgotten password: a new initial password, set anew at first use")):  # fmt: skip
        sub = actions.add_parser(action, parents=[common, admin], help=f"{text} (an administrator's act)")
        sub.add_argument("name", metavar="NAME")
        sub.set_defaults(users_handler=_administer)

    passwd = actions.add_parser("passwd", parents=[common], help="change your own password")
    add_login_arguments(passwd, help_name="your account; its current password is asked, then the new one")
    passwd.set_defaults(users_handler=_passwd)
    users.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from ionctl.cli.login import PasswordUnavailable
    from ionctl.config import ConfigError
    from ionctl.config.people import PeopleError
    from ionctl.records import StoreError, StoreMissing

    try:
        return int(args.users_handler(args))
    except StoreMissing as exc:
        print(f"ionctl users: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    except (PeopleError, PasswordUnavailable, ConfigError, StoreError, OSError) as exc:
        print(f"ionctl users: {exc}", file=sys.stderr)
        return ExitCode.REFUSED


def _people(args: argparse.Namespace, store: Any) -> Any:
    from ionctl.cli.login import people_of
    from ionctl.config import load_config

    return people_of(store, load_config(args.config))


def _store(args: argparse.Namespace, *, create: bool) -> Any:
    from ionctl.config.bench import open_store

    return open_store(args.db, args.config, create=create)


def _new_password(prompt: str, args: argparse.Namespace) -> str:
    """A new password: one line of stdin, or asked twice at the terminal."""
    from ionctl.cli.login import read_password
    from ionctl.config.people import WeakPassword

    password = read_password(prompt, from_stdin=args.password_stdin)
    if not args.password_stdin and read_password(f"{prompt}, again", from_stdin=False) != password:
        raise WeakPassword("the two passwords differ; nothing changed")
    return password


def _administrator(args: argparse.Namespace, people: Any) -> Any:
    """The administrator `--as NAME`, logged in (first-use password handled) and allowed to manage users."""
    from ionctl.cli.login import login
    from ionctl.config.people import Act

    return login(people, args.login_name, from_stdin=args.password_stdin, act=Act.MANAGE_USERS)


def _bootstrap(args: argparse.Namespace) -> int:
    from ionctl.config.people import check_password

    with _store(args, create=True) as store:
        people = _people(args, store)
        password = _new_password(f"password for {args.name}", args)
        check_password(password, args.name)
        account = people.bootstrap(args.name, args.full_name, password)
        named = people.trusted_administrator(account)
    print(f"enrolled {account.name} ({account.full_name}), administrator\nkey fingerprint {account.fingerprint}")
    if not named:
        print("This account can do nothing until IT names its key in the site configuration:\n\n"
              f'[accounts]\nadministrators = ["{account.fingerprint}"]\n\n'
              "(then a supervisor approves the changed site file, `ionctl config approve --as NAME`)")  # fmt: skip
    return ExitCode.OK


def _add(args: argparse.Namespace) -> int:
    from ionctl.config.people import Role

    with _store(args, create=True) as store:
        people = _people(args, store)
        admin = _administrator(args, people)
        initial = _new_password(f"initial password for {args.name}", args)
        account = people.add(admin, args.name, args.full_name, Role(args.role), initial)
    print(
        f"enrolled {account.name} ({account.full_name}), {account.role}, by {admin.name}\n"
        f"key fingerprint {account.fingerprint} (replaced when {account.name} sets a password at first use)"
    )
    return ExitCode.OK


def _administer(args: argparse.Namespace) -> int:
    """`disable`, `unlock`, `reset`: an administrator's signed act on someone's account."""
    with _store(args, create=False) as store:
        people = _people(args, store)
        people.account(args.name)  # an unknown name is refused before anyone is asked for a password
        admin = _administrator(args, people)
        if args.users_command == "disable":
            people.disable(admin, args.name)
            done = "disabled (the signatures it made stay valid)"
        elif args.users_command == "unlock":
            people.unlock(admin, args.name)
            done = "unlocked"
        else:
            people.reset(admin, args.name, _new_password(f"new initial password for {args.name}", args))
            done = "given a new initial password and key; it sets a password of its own at first use"
    print(f"{args.name}: {done} (by {admin.name}, recorded in the audit trail)")
    return ExitCode.OK


def _passwd(args: argparse.Namespace) -> int:
    """Change one's own password (an initial one is replaced as at first use)."""
    from ionctl.cli.login import read_password
    from ionctl.config.people import PasswordChangeRequired

    name = args.login_name
    with _store(args, create=False) as store:
        people = _people(args, store)
        current = read_password(f"current password for {name}", from_stdin=args.password_stdin)
        new = None
        try:
            identity = people.login(name, current)
        except PasswordChangeRequired:
            new = _new_password(f"new password for {name}", args)
            people.activate(name, current, new)
        if new is None:
            people.change_password(identity, current, _new_password(f"new password for {name}", args))
    print(f"{name}: password changed (recorded in the audit trail; the password itself is kept nowhere)")
    return ExitCode.OK


def _list(args: argparse.Namespace) -> int:
    """Name, full name, role, fingerprint and state of every account: never a credential."""
    from datetime import UTC, datetime

    from ionctl.records import timefmt

    with _store(args, create=False) as store:
        people = _people(args, store)
        accounts = people.all_accounts()
        proven = people.proven()
    now = datetime.now(UTC)
    print("name\tfull name\trole\tfingerprint\tstate")
    for a in sorted(accounts.values(), key=lambda a: a.name):
        if a.disabled:
            state = "disabled"
        elif a.locked_until is not None and now < a.locked_until:
            state = f"locked until {timefmt.local_text(a.locked_until.isoformat())}"
        elif a.must_change:
            state = "must set password"
        else:
            state = "active"
        if a.name not in proven and not a.disabled:
            state += (" (not trusted: its enrolment does not lead to an administrator the site configuration names, or "
                      "its account was changed without its key)")  # fmt: skip
        print(f"{a.name}\t{a.full_name}\t{a.role}\t{a.fingerprint}\t{state}")
    return ExitCode.OK

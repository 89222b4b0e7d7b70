"""Logging in from the command line: a name, and a password asked at the terminal without echo or read from
stdin (`--password-stdin`, one line per password asked, for scripted use).

An account with an initial password (just enrolled, or reset) must set its own before anything else: at a
terminal it is asked for twice; with `--password-stdin` the next line is the new password.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from ionctl.config import SiteConfig
    from ionctl.config.people import Act, Identity, People
    from ionctl.records import Store


class PasswordUnavailable(Exception):
    """Nobody can be asked for a password (no terminal and no --password-stdin), or stdin ran out of lines."""


def add_login_arguments(parser: argparse.ArgumentParser, *, name_option: str = "--as", help_name: str = "") -> None:
    """`--as NAME` (or `name_option`) and `--password-stdin`."""
    parser.add_argument(name_option, dest="login_name", metavar="NAME", required=True,
                        help=help_name or "your account (`ionctl users list`); its password is asked")  # fmt: skip
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password(s) from stdin, one per line, not at the terminal")  # fmt: skip


def read_password(prompt: str, *, from_stdin: bool, stdin: TextIO | None = None) -> str:
    """One password: a line of stdin with `--password-stdin`, else asked at the terminal without echo."""
    stdin = stdin or sys.stdin
    if from_stdin:
        line = stdin.readline()
        if not line:
            raise PasswordUnavailable(f"{prompt}: no line on stdin")
        return line.rstrip("\r\n")
    if not stdin.isatty():
        raise PasswordUnavailable("stdin is not a terminal, so nobody can be asked for a password; pass "
                                  "--password-stdin")  # fmt: skip
    return getpass.getpass(f"{prompt}: ")


def people_of(store: Store, config: SiteConfig) -> People:
    from ionctl.config.people import People, Trust

    return People(store, Trust.of(config))


def login(people: People, name: str, *, from_stdin: bool, stdin: TextIO | None = None,
          act: Act | None = None, attempt: str | None = None, err: TextIO | None = None) -> Identity:  # fmt: skip
    """The authenticated person `name`, allowed `act` if given. PeopleError (LoginRefused, NotAllowed,
    WeakPassword) or PasswordUnavailable otherwise; a refused login is in the audit trail, and so is a refused
    act when `attempt` says what was tried (an `act-denied` entry signed by who tried)."""
    from ionctl.config.people import PasswordChangeRequired, WeakPassword

    password = read_password(f"password for {name}", from_stdin=from_stdin, stdin=stdin)
    try:
        identity = people.login(name, password)
    except PasswordChangeRequired:
        print(f"{name}: this is an initial password; set a password of your own (at least 8 characters, not "
              "all digits, not a common one)", file=err or sys.stderr)  # fmt: skip
        new = read_password(f"new password for {name}", from_stdin=from_stdin, stdin=stdin)
        if not from_stdin and read_password("the new password again", from_stdin=False, stdin=stdin) != new:
            raise WeakPassword("the two new passwords differ; nothing changed") from None
        identity = people.activate(name, password, new)
    if act is not None and not identity.may(act) and attempt is not None:
        people.signed(identity, "act-denied", {"act": str(act), "attempt": attempt})
    if act is not None:
        identity.require(act)
    return identity

"""The `ionctl` command line: the parser, built from one module per command, and the dispatch.

Every command is a module in `ionctl/cli/` with `register(commands)`, which adds its subparser and sets
`handler=main`, and `main(args) -> int`, which runs it. A module imports what its command needs only when
`main` runs, so `ionctl --help` and `ionctl --version` stay fast (`benchmarks/startup.py`).

Exit codes are `ionctl.core.vocabulary.ExitCode`: 0 success; 1 failure of the command itself; 2 bad arguments
(argparse's own convention) or a refusal. `ionctl run` and `ionctl demo` exit with the session's code
(`ionctl.cli.run`): 0 completed, 2 refused, 3 fault, 4 stopped or aborted by the operator, 5 device or link
error before any current flowed, 6 the session's record could not be written (stopped with a ramp).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Protocol

from ionctl import __version__
from ionctl.cli import clinic, config, console, course, demo, devices, protocol, records, run, sim, users
from ionctl.core.vocabulary import ExitCode


class Command(Protocol):
    """What a command module provides (a module satisfies it)."""

    def register(self, commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...

    def main(self, args: argparse.Namespace) -> int: ...


#: Every command, in the order `ionctl --help` lists them. `records addendum` is registered by `records`.
COMMANDS: tuple[Command, ...] = (run, demo, sim, devices, protocol, console, records, config, course, users, clinic)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ionctl",
        description="Controller for constant-current iontophoresis devices (serial firmware devices and "
        "SCPI SourceMeters), with a built-in device simulator.",
    )
    parser.add_argument("--version", action="version", version=f"ionctl {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; whatever stops it, end with an exit code and at most one line on stderr (see
    `ionctl.cli.failures`: a reader gone away, a bug, Ctrl-C outside a session)."""
    from ionctl.cli import failures

    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        code: int
        if getattr(args, "handler", None) is None:
            parser.print_help()
            code = ExitCode.OK
        else:
            code = int(args.handler(args))
        sys.stdout.flush()  # a reader gone away shows here, not in Python's flush at exit
        return code
    except BrokenPipeError:
        return failures.silence_stdout()
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except Exception as exc:
        return failures.internal_error(exc, argv)


if __name__ == "__main__":
    sys.exit(main())

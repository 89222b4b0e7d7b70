"""`ionctl sim`: the device simulator, as `python -m sim` runs it, with the same options.

The options are the simulator's own (`sim.cli.add_arguments`), added to this subcommand: they are defined once,
in `sim/cli.py`. Importing `sim.cli` loads only its option parsing; the device model and the endpoints are
imported when the simulator runs (`sim.cli.serve`), so `ionctl --help` stays fast.
"""

from __future__ import annotations

import argparse

from sim import cli as sim_cli

PROG = "ionctl sim"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `ionctl sim` to the command line's subcommands."""
    parser = commands.add_parser(
        "sim",
        help="run the device simulator (same options as `python -m sim`; see `ionctl sim --help`)",
        description=sim_cli.DESCRIPTION,
    )
    sim_cli.add_arguments(parser)
    # `main` reports contradictory options as argparse does, with this subcommand's usage line.
    parser.set_defaults(handler=main, sim_usage_error=parser.error)


def main(args: argparse.Namespace) -> int:
    """Refuse contradictory options (exit 2, as argparse does), else serve until SIGINT or SIGTERM."""
    try:
        sim_cli.check(args)
    except sim_cli.UsageError as exc:
        args.sim_usage_error(str(exc))  # exits 2
    return sim_cli.serve(args, prog=PROG)

"""`ionctl console`: registers the technician's terminal UI, whose arguments and entry point are the console's
own (`ionctl/console/command.py`). Textual is imported only when the console runs, so `ionctl --help` stays
fast."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ionctl.console.command import add_arguments  # argparse only

    console = commands.add_parser(
        "console",
        help="the technician's keyboard-first terminal UI: device, prescription, checks, run, record",
        description="Interactive session console (Textual): pick a device, the patient, a course or preset, edit the "
        "prescription within the site limits, check contact and skin, run and watch the session, record the "
        "skin check after it and export the chart PDF.",
    )
    add_arguments(console)
    console.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from ionctl.console.command import main as console_main

    return console_main(args)

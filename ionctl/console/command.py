"""`ionctl console [--config FILE] [--db PATH] [--device ADDRESS]`: the arguments and the entry point.

Light at import (argparse only): the parser is built for every `ionctl` command, `--help` included, and
Textual is imported only when the console actually runs.
"""

from __future__ import annotations

import argparse
import sys

from ionctl.core.vocabulary import ExitCode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="site configuration TOML (default: the site's, else the packaged defaults)"
    )
    parser.add_argument("--db", metavar="PATH",
                        help="session record store (default: the site configuration's [records] store, "
                        "else records.sqlite3 in the user data directory)")  # fmt: skip
    parser.add_argument("--device", metavar="ADDRESS",
                        help="device to offer first: serial port, pyserial URL or visa:RESOURCE")  # fmt: skip


def main(args: argparse.Namespace) -> int:
    """Load the configuration and the store, then run the console until the technician quits."""
    from ionctl.config import ConfigError
    from ionctl.console.setup import ConsoleSetup
    from ionctl.records import StoreError

    try:
        setup = ConsoleSetup.from_args(args)
    except (ConfigError, StoreError, OSError) as exc:
        print(f"ionctl console: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    for record_id in setup.recovered:
        print(f"ionctl console: record {record_id} was left open by a session that never ended; closed as "
              "interrupted", file=sys.stderr)  # fmt: skip
    try:
        from ionctl.console.app import ConsoleApp
    except ImportError as exc:  # an incomplete installation: say so rather than a traceback
        print(f"ionctl console: cannot start, the installation is incomplete: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    app = ConsoleApp(setup)
    app.run()
    # Textual's App.run returns after an exception in the app (it prints the traceback itself) with no error of
    # its own: App.return_code says how the app ended (1 on an exception, None if it never started).
    if app.return_code != 0:
        print(f"ionctl console: the console stopped on an error (exit code {app.return_code}); see above",
              file=sys.stderr)  # fmt: skip
        return ExitCode.FAILED
    return ExitCode.OK

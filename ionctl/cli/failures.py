"""How an `ionctl` command ends when something other than its own errors stops it.

- Its reader went away (`ionctl records list | head -1`): stdout is pointed at /dev/null so that Python's final
  flush cannot complain, and the command ends quietly with 141 (`ExitCode.BROKEN_PIPE`), the shell's code for
  a command killed by SIGPIPE (the recipe of the Python documentation, "Note on SIGPIPE" in the signal module).
- An unexpected exception, a bug: one line on stderr, `ionctl: internal error: ...`, naming a log file in the
  user log directory (platformdirs) that holds the full traceback, the command line and the versions; exit 1
  (`ExitCode.FAILED`).
- Ctrl-C outside a session (a session handles its own signals and ramps down first): exit 130
  (`ExitCode.INTERRUPTED`), quietly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ionctl.core.vocabulary import ExitCode


def silence_stdout() -> ExitCode:
    """After a BrokenPipeError on stdout: send what is still buffered nowhere, so exit is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout has no file descriptor (replaced, closed)
        pass
    return ExitCode.BROKEN_PIPE


def log_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_log_dir("ionctl"))


def internal_error(exc: BaseException, argv: Sequence[str] | None) -> ExitCode:
    """Write the traceback to a log file and say one line about it on stderr."""
    import platform  # imported here: every command imports this module, only a failing one needs these
    import tempfile
    import traceback
    from datetime import UTC, datetime

    from ionctl import __version__

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = (
        f"ionctl {__version__}, Python {platform.python_version()}, {platform.platform()}\n"
        f"command: {' '.join(['ionctl', *(sys.argv[1:] if argv is None else argv)])}\n"
        f"at: {stamp}\n\n" + "".join(traceback.format_exception(exc))
    )
    where: str
    for folder in (log_dir, lambda: Path(tempfile.gettempdir())):
        try:
            directory = folder()
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"ionctl-error-{stamp}-{os.getpid()}.log"
            path.write_text(text, encoding="utf-8")
            where = f"the details are in {path}"
            break
        except OSError as problem:
            where = f"the details could not be written ({problem})"
    message = " ".join(str(exc).split())  # one line, whatever the exception's text holds
    summary = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    try:
        print(f"ionctl: internal error: {summary}; {where}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
    return ExitCode.FAILED

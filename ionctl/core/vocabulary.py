"""The words the layers share, as enums rather than string literals.

`ExitCode` is every status an `ionctl` command or the console ends with, in one place (the front ends map an
outcome to one of these; the shell sees the integer). Further members of the vocabulary (the session's states,
its outcomes, the host's fault codes) live here too, so a renamed word is a type error, not a silent mismatch.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """What the process tells the shell (`ionctl run --help` lists the session's)."""

    OK = 0  # done; for a session: completed as prescribed
    FAILED = 1  # the command could not do its work (an unreadable file, a store that cannot be opened, a crash)
    REFUSED = 2  # refused before any current flowed: bad arguments, limits broken, a course rule
    FAULT = 3  # a fault ended an energised session, or the stuck-output alarm
    OPERATOR = 4  # stopped or aborted by the operator (including SIGINT, SIGTERM and SIGHUP)
    DEVICE = 5  # a device or link error before any current flowed
    RECORD_FAILED = 6  # the session ended safely but its record could not be written in full
    INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C ended (outside a session)
    BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of our output went away

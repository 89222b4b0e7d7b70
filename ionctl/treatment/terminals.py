"""The terminals a session's front end writes to, and what happens when one goes (a hang-up): every entry
point that can energise a patient must survive a write to a terminal that is gone (docs/SAFETY.md)."""

from __future__ import annotations

import os


def fd_isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def silence_lost_terminals(fds: list[int]) -> None:
    """Point each of `fds` that was a terminal and answers no more as one (hung up) at /dev/null."""
    lost = [fd for fd in fds if not fd_isatty(fd)]
    if not lost:
        return
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    for fd in lost:
        try:
            os.dup2(devnull, fd)
        except OSError:
            pass
    os.close(devnull)

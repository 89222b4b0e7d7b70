"""A session's signals at the terminal (`ionctl run`, `ionctl demo`): SIGINT asks for a ramped stop and a second
one for an abort; SIGTERM and SIGHUP (the terminal closed) ask for a ramped stop; Ctrl-Z is refused. The
handlers stay until the session's record is closed (`signals_held`). docs/SAFETY.md, "operator's terminal gone".
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from ionctl.treatment.report import Interrupts
from ionctl.treatment.terminals import fd_isatty, silence_lost_terminals

if TYPE_CHECKING:
    from ionctl.core.session import Session
    from ionctl.treatment.visit import VisitRunner

__all__ = ["SIGNAL_REASONS", "fd_isatty", "operator_signals", "signals_held", "silence_lost_terminals",
           "visit_signals"]  # fmt: skip

#: The signals a session answers, and what each one is called in the record.
SIGNAL_REASONS: dict[int, str] = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM",
                  signal.SIGHUP: "SIGHUP, the terminal closed"}  # fmt: skip

#: Handlers that `operator_signals` left installed past a session's end for `signals_held` to restore.
_held: list[dict[int, Any]] | None = None


@contextmanager
def signals_held() -> Iterator[None]:
    """Keep a session's signal handlers installed past its end until this block ends (the record closed, the
    result printed): a Ctrl-C arriving as the session completes is acknowledged, never an interrupt that
    leaves a completed session's record open. Nested blocks defer to the outermost; main thread only."""
    global _held
    if threading.current_thread() is not threading.main_thread() or _held is not None:
        yield
        return
    _held = []
    try:
        yield
    finally:
        held, _held = _held, None
        for previous in reversed(held):
            for signum, handler in previous.items():
                signal.signal(signum, handler)


@contextmanager
def operator_signals(session: Session, err: TextIO) -> Iterator[Interrupts]:
    """While the session runs: SIGINT = ramped stop, a second SIGINT = abort; SIGTERM and SIGHUP (the terminal
    closed, an SSH link dropped) = ramped stop. After a hang-up, the standard streams that were the terminal
    are pointed at /dev/null, so that no write to the dead terminal can end the process; SIGTTOU is ignored
    (a write from the background does not suspend it) and Ctrl-Z (SIGTSTP) is refused with a word: a host
    suspended mid-session would leave the device to its watchdog (a SourceMeter, sourcing on). The previous
    handlers are restored afterwards, or, inside `signals_held`, when that block ends (a signal meanwhile is
    acknowledged). Only the main thread can own signals; elsewhere this does nothing."""
    from ionctl.core.session import TERMINAL

    interrupts = Interrupts()

    def request(action: str, reason: str) -> None:
        interrupts.reasons.append(reason)
        session.request(action)

    with _answering(request, lambda: interrupts.ended or session.state in TERMINAL, err, visit=False):
        try:
            yield interrupts
        finally:
            interrupts.ended = True


@contextmanager
def visit_signals(visit: VisitRunner, err: TextIO) -> Iterator[None]:
    """`operator_signals` for every channel of a visit at once: SIGINT = a ramped stop of every channel, a second
    one = abort every channel; SIGTERM and SIGHUP = a ramped stop of every channel. Each channel's record names the
    signal. Main thread only (the visit's channels run in threads of their own)."""

    def request(action: str, reason: str) -> None:
        visit.request(action, reason=reason)

    with _answering(request, lambda: visit.ended, err, visit=True):
        yield


@contextmanager
def _answering(request: Callable[[str, str], None], ended: Callable[[], bool], err: TextIO, *,
               visit: bool) -> Iterator[None]:  # fmt: skip
    """The handlers of `operator_signals` and `visit_signals`: `request(action, reason)` asks for a ramped
    stop or an abort; `ended()` says the session (or every channel of the `visit`) is over."""
    what = " every channel" if visit else ""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stops = 0
    fd = _fileno(err)
    terminals = [n for n in (0, 1, 2) if fd_isatty(n)]

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stops
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            silence_lost_terminals(terminals)
        if ended():
            said = ("every channel has ended; closing their records" if visit
                    else "the session has ended; closing its record")  # fmt: skip
            _say(fd, f"\n{name}: {said}\n")
            return
        stops += 1
        if signum == signal.SIGINT and stops > 1:
            request("abort", SIGNAL_REASONS[signum])
            _say(fd, f"\nSIGINT again: aborting{what} (fastest safe ramp to zero)\n")
            return
        request("stop", SIGNAL_REASONS[signum])
        if signum == signal.SIGINT:
            _say(fd, f"\nSIGINT: ramping down and stopping{what} (Ctrl-C again to abort)\n")
        else:
            _say(fd, f"\n{SIGNAL_REASONS[signum]}: ramping down and stopping{what}\n")

    def on_suspend(signum: int, frame: object) -> None:  # a suspended host is a dead host to the device
        _say(fd, "\nCtrl-Z: a running session cannot be suspended (the device would lose its host); "
                 "Ctrl-C stops it\n")  # fmt: skip

    previous: dict[int, Any] = {signum: signal.signal(signum, on_signal) for signum in SIGNAL_REASONS}
    previous[signal.SIGTTOU] = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    previous[signal.SIGTSTP] = signal.signal(signal.SIGTSTP, on_suspend)
    try:
        yield
    finally:
        if _held is not None:
            _held.append(previous)
        else:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _fileno(stream: TextIO) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, ValueError, OSError):
        return None


def _say(fd: int | None, text: str) -> None:
    """Write from a signal handler: unbuffered, so it cannot re-enter a buffered stream mid-write."""
    if fd is not None:
        try:
            os.write(fd, text.encode("utf-8", "replace"))
        except OSError:
            pass

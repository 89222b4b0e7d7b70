"""Run the simulator as a process of its own (`python -m sim ARGS`), as a user starts it: for `ionctl demo`,
the tests that talk to it over a real pty or socket, and the benchmarks.

The simulator prints one `NAME: ADDRESS` line per endpoint (`NAME.K: ADDRESS` for device K when it serves several),
then `ready`, on stdout (`sim.cli`), and runs until
SIGINT or SIGTERM, after which it removes its pty symlinks and exits 0. `start()` waits for `ready` with a real
deadline (stdout is read on a thread of its own, so a simulator that hangs before printing cannot hang the
caller) and keeps the endpoints it announced. Its stderr goes to a file (the caller's log, or an anonymous
temporary file), never to a pipe nobody reads, so a failed start can be reported with the simulator's own
words. `running_sim()` is the context manager: it always stops and reaps the process, and by default refuses
an unclean exit.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
READY = "ready"

#: Where the `sim` package lives: `python -m sim` is run from here, so it finds the same code as this module.
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


class SimulatorError(RuntimeError):
    """The simulator did not start (the message carries its stderr), or did not stop cleanly."""


#: The firmware device's endpoints, in the order the simulator announces them.
DEVICE_ENDPOINTS = ("serial", "tcp")


@dataclass(frozen=True)
class SimDevice:
    """One firmware device of a running simulator: its number (from 1) and its endpoints (`{"serial":
    "/dev/pts/3", "tcp": "socket://127.0.0.1:40123"}`, those it was given)."""

    number: int
    endpoints: dict[str, str]

    @property
    def address(self) -> str:
        """Where a host reaches it: its pty, else its socket URL."""
        return next(self.endpoints[name] for name in DEVICE_ENDPOINTS if name in self.endpoints)


class SimProcess:
    """A running `python -m sim`: the process, the endpoints it announced (`{"serial": "/dev/pts/3", "tcp":
    "socket://127.0.0.1:40123", ...}`, or `"tcp.2"` and so on when it serves several devices), its firmware
    devices (`devices`) and its stderr so far."""

    def __init__(self, process: subprocess.Popen[str], stderr: IO[str]) -> None:
        assert process.stdout is not None
        self.process = process
        self.endpoints: dict[str, str] = {}
        self._stderr: IO[str] | None = stderr
        self._stderr_text = ""
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(
            target=_read_lines, args=(process.stdout, self._lines), daemon=True, name="sim-stdout"
        )
        self._reader.start()

    @property
    def devices(self) -> list[SimDevice]:
        """Its firmware devices, device 1 first (none when it serves only a SourceMeter)."""
        found: dict[int, dict[str, str]] = {}
        for name, address in self.endpoints.items():
            kind, _, number = name.partition(".")
            if kind in DEVICE_ENDPOINTS:
                found.setdefault(int(number or 1), {})[kind] = address
        return [SimDevice(number, found[number]) for number in sorted(found)]

    def stderr_text(self) -> str:
        """What the simulator has written to stderr (all of it, once it has been stopped)."""
        if self._stderr is None:
            return self._stderr_text
        fd = self._stderr.fileno()
        # pread leaves the file offset alone: the simulator may still be appending at it.
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise SimulatorError(
                    _with_stderr(f"the simulator did not say ready within {timeout_s:g} s", self.stderr_text())
                ) from None
            if line == READY:
                return
            if line is None:  # stdout closed: the simulator has exited (or is about to)
                self.process.wait()
                raise SimulatorError(
                    _with_stderr(f"the simulator exited ({self.process.returncode})", self.stderr_text())
                )
            name, sep, address = line.partition(": ")
            if sep:
                self.endpoints[name] = address

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then SIGKILL if it has not exited within `timeout_s`; reap it and return its exit status.
        Stopping a stopped simulator only returns the status again."""
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._stderr is not None:
            self._stderr_text = self.stderr_text()
            self._stderr.close()
            self._stderr = None
        self._reader.join(timeout=timeout_s)  # the process is gone, so its stdout ends at once
        if process.stdout is not None and not self._reader.is_alive():
            process.stdout.close()
        return process.returncode


def start(
    *args: str,
    timeout_s: float = READY_TIMEOUT_S,
    log: Path | None = None,
    new_session: bool = False,
    devices: int = 1,
) -> SimProcess:
    """Start `python -m sim ARGS` and wait until it says `ready`.

    `devices`: serve that many firmware devices (`--devices N`), each at the endpoints ARGS give it (`SimProcess.
    devices`).
    `log`: write the simulator's stderr there (default: an anonymous temporary file). `new_session`: run it in
    a session of its own, so a Ctrl-C at the terminal reaches only the caller (who then stops it).
    Raises SimulatorError, with the simulator's stderr, if it exits or is not ready within `timeout_s`; the
    process is stopped and reaped in either case.
    """
    stderr: IO[str] = log.open("w+", encoding="utf-8") if log is not None else tempfile.TemporaryFile("w+")
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "sim", *args, *(["--devices", str(devices)] if devices != 1 else [])],
            cwd=PACKAGE_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=new_session,
        )
    except BaseException:
        stderr.close()
        raise
    sim = SimProcess(process, stderr)
    try:
        sim._wait_ready(timeout_s)
    except BaseException:  # a failed start, or Ctrl-C while waiting: never leave it running
        sim.stop()
        raise
    return sim


@contextmanager
def running_sim(
    *args: str,
    timeout_s: float = READY_TIMEOUT_S,
    log: Path | None = None,
    new_session: bool = False,
    check: bool = True,
    devices: int = 1,
) -> Iterator[SimProcess]:
    """`python -m sim ARGS` for the length of a `with` block (see `start()`); always stopped and reaped after it.

    `check`: when the block ends normally, raise SimulatorError unless the simulator exited 0 (it exits 0 on
    SIGTERM after removing its links, so anything else is a fault of the simulator).
    """
    sim = start(*args, timeout_s=timeout_s, log=log, new_session=new_session, devices=devices)
    try:
        yield sim
    finally:
        code = sim.stop()
    if check and code != 0:
        raise SimulatorError(_with_stderr(f"the simulator exited ({code}) when stopped", sim.stderr_text()))


def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.strip())
    lines.put(None)


def _with_stderr(what: str, stderr: str) -> str:
    stderr = stderr.strip()
    return f"{what}: {stderr}" if stderr else what

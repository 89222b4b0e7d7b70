"""The firmware devices' ground-truth trace: one JSONL file, a row per device step, each row naming its device.

Several devices, each stepping on a thread of its own, write into one file (`TraceFile`): a row is written whole
under the file's lock, so rows of different devices interleave but never tear. Each device has its own
`TraceWriter`, which decides which of its rows reach the file. Read the rows of one device by their `"device"`
field; `t_s` is that device's own clock.
"""

from __future__ import annotations

import json
import threading
from typing import IO


class TraceFile:
    """A JSONL file that several devices' writers share: whole lines, one writer at a time."""

    def __init__(self, path: str) -> None:
        self._file: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()

    def write(self, line: str, *, flush: bool = False) -> None:
        with self._lock:
            self._file.write(line)
            if flush:
                self._file.flush()

    def flush(self) -> None:
        with self._lock:
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


class TraceWriter:
    """JSONL ground truth, written as the simulation steps; flushed at every change of state or fault and when
    the output goes quiet (while energised, rows reach the file as the buffer fills).

    The device steps every 10 ms whether or not anything happens, so an idle simulator at 60x would write
    ~6000 identical lines a wall second. A row is left out only when it is *quiet* (no current, no output
    voltage) and says the same as the quiet row before it (state, fault, dose) except the time: nothing a
    reader can learn from it is lost. The last quiet row of such a run is written when the run ends (before the
    next row that differs, and at close), so current, voltage and dose interpolated between any two written
    rows are exactly the device's, and the step where current reaches zero is always there. Every row while the
    output is energised, and every change of state or fault, is written. `every_step` writes them all.

    `out` is a path (the writer owns the file) or a `TraceFile` that other devices' writers share (its owner
    closes it after every writer has closed)."""

    def __init__(self, out: str | TraceFile, *, every_step: bool = False) -> None:
        self._owns = isinstance(out, str)
        self._out = TraceFile(out) if isinstance(out, str) else out
        self._dumps = json.dumps
        self.every_step = every_step
        self._quiet: tuple[object, ...] | None = None  # what the last written quiet row said (not its time)
        self._held: dict[str, object] | None = None  # the last quiet row left out
        self._last_said: tuple[object, ...] = ()
        self.written = self.left_out = 0

    def __call__(self, row: dict[str, object]) -> None:
        quiet = row.get("current_ua") == 0 and row.get("voltage_mv") == 0
        says = (row.get("state"), row.get("fault"), row.get("dose_uas"))
        if quiet and not self.every_step and says == self._quiet:
            self._held = row
            self.left_out += 1
            return
        self._release()
        changed = quiet or says[:2] != self._last_said[:2]
        self._quiet = says if quiet else None
        self._last_said = says
        # a reader waiting for the output to stop, or for a state, sees it now, not when a buffer fills
        self._write(row, flush=changed)

    def _release(self) -> None:
        if self._held is not None:
            self._write(self._held)
            self.left_out -= 1
            self._held = None

    def _write(self, row: dict[str, object], *, flush: bool = False) -> None:
        self._out.write(self._dumps(row, separators=(",", ":")) + "\n", flush=flush)
        self.written += 1

    def flush(self) -> None:
        self._out.flush()

    def close(self) -> None:
        """Write the held row (the trace ends at the device's last step); close the file if this writer owns it."""
        self._release()
        if self._owns:
            self._out.close()
        else:
            self._out.flush()

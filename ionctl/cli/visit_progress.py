"""A visit's progress on the terminal's stderr (`ionctl run --channel ...`): every channel's state, current and
dose on one status line redrawn in place on a terminal (else a line per channel every few device seconds); state
changes and faults on lines of their own, each naming its channel; the visit policy's alert loudly.

The channels' threads never write to the terminal: they leave their latest figures and their lines here (a lock
held only to copy a few values, and a queue) and one display thread of its own writes them. A stalled or closed
terminal stalls or ends that thread, never a channel's supervision (docs/SAFETY.md, "operator's terminal gone").
"""

from __future__ import annotations

import math
import queue
import shutil
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from ionctl.treatment.report import ALARM_TEXT

if TYPE_CHECKING:
    from ionctl.core.session import Session, SessionResult, StateChange
    from ionctl.drivers.base import Telemetry

#: Without a terminal, one progress line per channel every this many device seconds.
PROGRESS_EVERY_DEVICE_S = 5.0
#: On a terminal, the status line is redrawn this often (host seconds; display only).
REDRAW_EVERY_S = 0.2


@dataclass
class _Figures:
    state: str = "starting"
    current_ma: float = 0.0
    delivered_ma_min: float = 0.0
    planned_ma_min: float = 0.0
    t_s: float | None = None
    next_line_t_s: float | None = None


class VisitProgress:
    """A `ionctl.treatment.visit.VisitDisplay` for the command line. `labels[n - 1]` names channel n."""

    def __init__(self, stream: TextIO, labels: list[str], *, tty: bool) -> None:
        self.stream = stream
        self.labels = labels
        self.tty = tty
        self.broken = False
        self._figures = [_Figures() for _ in labels]
        self._start_t_s: list[float | None] = [None] * len(labels)
        self._lock = threading.Lock()
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._open_line = False
        self._thread = threading.Thread(target=self._write, name="ionctl-visit-display", daemon=True)
        self._thread.start()

    # -- called by the channels' threads: copy and enqueue, never write -----------------------------------------

    def on_sample(self, channel: int, session: Session, sample: Telemetry) -> None:
        line = None
        with self._lock:
            f = self._figures[channel - 1]
            f.state, f.current_ma, f.t_s = str(session.state), sample.measured_ma, sample.t_s
            f.delivered_ma_min = session.meter.delivered_ma_min
            f.planned_ma_min = session.prescription.planned_dose_ma_min
            if self._start_t_s[channel - 1] is None:
                self._start_t_s[channel - 1] = sample.t_s
            if not self.tty and (f.next_line_t_s is None or sample.t_s >= f.next_line_t_s
                                 or sample.t_s < f.next_line_t_s - PROGRESS_EVERY_DEVICE_S):  # fmt: skip
                f.next_line_t_s = sample.t_s + PROGRESS_EVERY_DEVICE_S
                line = f"{self._at(channel, sample.t_s)}{self._name(channel)} {self._status(f)}"
        if line is not None:
            self._lines.put(line)

    def on_state(self, channel: int, session: Session, change: StateChange) -> None:
        if change.state == "disconnected":
            return
        with self._lock:
            self._figures[channel - 1].state = str(change.state)
            when = self._at(channel, change.device_t_s)
        name = self._name(channel)
        if change.state == "fault":
            self._lines.put(f"{when}*** {name} FAULT: {change.reason} ***")
        elif change.state == "refused":
            self._lines.put(f"{when}{name} REFUSED: {change.reason}")
        else:
            self._lines.put(f"{when}{name} {change.state}: {change.reason}")

    def alert(self, channel: int, text: str) -> None:
        self._lines.put(f"!!! VISIT: {text} !!!")

    def ended(self, channel: int, result: SessionResult) -> None:
        with self._lock:
            self._figures[channel - 1].state = f"ended: {result.outcome}"
        if result.alarm:
            self._lines.put(f"{self._name(channel)}:\n{ALARM_TEXT}")

    def close(self) -> None:
        """Write what is queued and end the status line (after every channel has ended)."""
        self._lines.put(None)
        self._thread.join(2.0)

    # -- the display thread --------------------------------------------------------------------------------------

    def _write(self) -> None:
        while True:
            try:
                line = self._lines.get(timeout=REDRAW_EVERY_S)
            except queue.Empty:
                line = ""
            try:
                if line is None:
                    self._end_line()
                    return
                if line:
                    self._end_line()
                    self.stream.write(line + "\n")
                    self.stream.flush()
                elif self.tty:
                    self._redraw()
            except Exception:  # a terminal gone: the display ends here, the channels do not
                self.broken = True
                return

    def _redraw(self) -> None:
        with self._lock:
            parts = [f"{n} {self._short(n)} {self._status(f, short=True)}"
                     for n, f in enumerate(self._figures, start=1)]  # fmt: skip
        width = max(40, shutil.get_terminal_size((80, 24)).columns - 1)
        text = " | ".join(parts)
        self.stream.write("\r\x1b[K" + (text if len(text) <= width else text[: width - 1] + "…"))
        self.stream.flush()
        self._open_line = True

    def _end_line(self) -> None:
        if self._open_line:
            self._open_line = False
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    # -- words ---------------------------------------------------------------------------------------------------

    def _name(self, channel: int) -> str:
        return f"[{channel} {self.labels[channel - 1]}]"

    def _short(self, channel: int) -> str:
        label = self.labels[channel - 1]
        side, _, site = label.partition(" ")
        return f"{side[0].upper()} {site}" if side in ("left", "right") and site else label

    def _at(self, channel: int, t_s: float | None) -> str:
        from ionctl.records.timefmt import since_start

        start = self._start_t_s[channel - 1]
        if t_s is None:
            return ""
        if start is None:
            self._start_t_s[channel - 1] = start = t_s
        return f"[+{since_start(start, t_s)}] "

    @staticmethod
    def _status(f: _Figures, *, short: bool = False) -> str:
        planned = f"{f.planned_ma_min:.1f}" if math.isfinite(f.planned_ma_min) else "-"
        if short:
            return f"{f.state[:11]} {f.current_ma:.2f} mA {f.delivered_ma_min:.1f}/{planned}"
        return f"{f.state:<13} {f.current_ma:5.2f} mA  {f.delivered_ma_min:6.2f} / {planned} mA·min"

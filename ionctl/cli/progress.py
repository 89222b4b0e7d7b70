"""Session progress on the terminal's stderr (`ionctl run`, `ionctl demo`): a status line redrawn in place on a
terminal, else a line every few device seconds; state changes on lines of their own; faults loudly."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, TextIO

from ionctl.treatment.report import ALARM_TEXT

if TYPE_CHECKING:
    from ionctl.core.session import Session, SessionResult, StateChange
    from ionctl.drivers.base import Telemetry
    from ionctl.safety import Prescription

#: Without a terminal, one progress line every this many device seconds.
PROGRESS_EVERY_DEVICE_S = 5.0
#: On a terminal, redraw the status line at most this often (host seconds; display only).
REDRAW_EVERY_S = 0.1


class Progress:
    """Session progress on stderr: one status line redrawn in place on a terminal (`\\r`), else a line every
    few device seconds; state changes on lines of their own; faults loudly. A `treatment.Display`."""

    def __init__(self, stream: TextIO, prescription: Prescription, *, tty: bool) -> None:
        self.stream = stream
        self.prescription = prescription
        self.tty = tty
        self._open_line = False  # a status line is on screen without its newline (tty)
        self.broken = False  # writing failed once: stay quiet for the rest of the session
        self._next_redraw_s = 0.0  # host monotonic (display only)
        self._next_line_t_s: float | None = None  # device time of the next line (not a tty)
        self._start_t_s: float | None = None  # the first device time seen: lines show the time since then

    def _at(self, t_s: float | None) -> str:
        """`[+m:ss] `: session elapsed time (device clock) of a line, not the device's uptime."""
        from ionctl.records.timefmt import since_start

        if t_s is None:
            return ""
        if self._start_t_s is None:
            self._start_t_s = t_s
        return f"[+{since_start(self._start_t_s, t_s)}] "

    def on_sample(self, session: Session, sample: Telemetry) -> None:
        """Called by the session per sample. A display failure (a closed terminal) ends the display, never
        the session."""
        if self.broken:
            return
        try:
            self._sample(session, sample)
        except Exception:
            self.broken = True

    def on_state(self, session: Session, change: StateChange) -> None:
        """Called by the session per state change; as `on_sample`, it cannot break the session."""
        if self.broken:
            return
        try:
            self._state(change)
        except Exception:
            self.broken = True

    def ended(self, result: SessionResult) -> None:
        """The session is over: end the status line; the alarm, if any, on lines of its own."""
        self.end_line()
        if result.alarm:
            print(ALARM_TEXT, file=self.stream, flush=True)

    def _sample(self, session: Session, sample: Telemetry) -> None:
        if self.tty:
            now = time.monotonic()
            if now < self._next_redraw_s:
                return
            self._next_redraw_s = now + REDRAW_EVERY_S
            self.stream.write("\r\x1b[K" + self._at(sample.t_s) + self.status(session, sample))
            self.stream.flush()
            self._open_line = True
        elif self._line_due(sample.t_s):
            self._next_line_t_s = sample.t_s + PROGRESS_EVERY_DEVICE_S
            self._line(self._at(sample.t_s) + self.status(session, sample))

    def _line_due(self, t_s: float) -> bool:
        """The first sample, a line's time reached, or the device clock restarted (a reboot)."""
        nxt = self._next_line_t_s
        return nxt is None or t_s >= nxt or t_s < nxt - PROGRESS_EVERY_DEVICE_S

    def _state(self, change: StateChange) -> None:
        if change.state == "disconnected":
            return
        when = self._at(change.device_t_s)
        if change.state == "fault":
            self._line(f"{when}*** FAULT: {change.reason} ***")
        elif change.state == "refused":
            self._line(f"{when}REFUSED: {change.reason}")
        else:
            self._line(f"{when}{change.state}: {change.reason}")

    def status(self, session: Session, s: Telemetry) -> str:
        p = self.prescription
        delivered = session.meter.delivered_ma_min
        impedance = f"{s.impedance_ohm:6.0f} Ω" if s.impedance_ohm is not None else "     — Ω"
        compliance = " AT COMPLIANCE" if s.at_compliance else ""
        return (f"{session.state:<13} {s.measured_ma:5.2f} mA {s.voltage_v:5.1f} V {impedance}  "
                f"{delivered:6.2f} / {p.planned_dose_ma_min:.2f} mA·min  left {_clock(session.time_left_s(s))}"
                f"{compliance}")  # fmt: skip

    def end_line(self) -> None:
        if self._open_line and not self.broken:
            self._open_line = False
            try:
                self.stream.write("\n")
                self.stream.flush()
            except Exception:  # a closed terminal: the display ends here, the result does not
                self.broken = True

    def _line(self, text: str) -> None:
        if self._open_line:
            self.stream.write("\r\x1b[K")
            self._open_line = False
        self.stream.write(text + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    whole = max(0, round(seconds))
    return f"{whole // 60:d}:{whole % 60:02d}"

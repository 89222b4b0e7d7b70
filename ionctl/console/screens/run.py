"""The run screen: laid out to be read at a glance from a step away. The session's state in a coloured band
across the top; the current and the time left in large digits; voltage, impedance and the set current beside
them; the dose against the prescription with a progress bar; a live trace of the current filling the rest of
the terminal (it grows with the terminal); the keys at the bottom, always. P pauses, R resumes, S stops
(ramped), A aborts, in either case (Caps Lock on or off). Stopping and aborting ask first, in a dialog that
only another key (Y) confirms, so a key held or hit twice cannot end a treatment. The screen redraws from the
controller's snapshot at its own pace: it may skip frames, the session never waits for it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

from rich.text import Text
from textual.app import App, ComposeResult, RenderResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Digits, Footer, ProgressBar, Static

from ionctl.console.controller import SessionController, Snapshot
from ionctl.console.screens.base import both_cases

#: Redraws per second (display only).
REDRAW_HZ = 10
#: Block elements (U+2581–U+2588, in every terminal font, unlike braille): eight levels per row.
BLOCKS = " ▁▂▃▄▅▆▇█"

STATE_TEXT = {
    "disconnected": "connecting",
    "connected": "connected",
    "configured": "configured",
    "contact_checked": "contact checked",
    "armed": "armed",
    "ramping_up": "RAMPING UP",
    "delivering": "DELIVERING",
    "paused": "PAUSED",
    "reversing": "REVERSING POLARITY",
    "ramping_down": "RAMPING DOWN",
    "completed": "COMPLETED",
    "stopped": "STOPPED",
    "aborted": "ABORTED",
    "fault": "FAULT",
    "refused": "REFUSED",
}
#: The state band's colour class: current flowing, held at zero, winding down, ended, fault.
STATE_CLASS = {
    "ramping_up": "-flowing", "delivering": "-flowing", "reversing": "-flowing",
    "paused": "-paused", "ramping_down": "-ending", "stopped": "-ended", "completed": "-ended",
    "aborted": "-fault", "fault": "-fault", "refused": "-fault",
}  # fmt: skip


def trace_lines(values: Sequence[float], width: int, rows: int, top: float) -> list[str]:
    """The recent current as `rows` lines of block characters, `width` columns, on a fixed scale from 0 to
    `top` (a trace that rescaled itself would make a steady current's noise look like swings). With more
    values than columns, each column shows the highest value it covers."""
    if width <= 0 or rows <= 0 or not values:
        return []
    n = len(values)
    columns = list(values) if n <= width else [max(values[i * n // width : (i + 1) * n // width]) for i in range(width)]
    steps = rows * 8
    levels = [min(steps, max(0, round(v / top * steps))) if top > 0 else 0 for v in columns]
    return ["".join(BLOCKS[min(8, max(0, level - row * 8))] for level in levels) for row in reversed(range(rows))]


def clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    whole = max(0, round(seconds))
    return f"{whole // 60:d}:{whole % 60:02d}"


class Trace(Widget):
    """The recent current as bars of block characters over the whole widget, on a fixed scale from 0 to `top`.

    Textual's `Sparkline` draws with the same characters but scales each frame from the data's own minimum to
    its maximum, which turns a steady current's noise of a few µA into full-height swings; a clinical trace
    needs a fixed zero and a fixed top, so this widget draws `trace_lines` at its own size instead."""

    DEFAULT_CSS = "Trace { height: 1fr; min-height: 2; color: $success; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.values: tuple[float, ...] = ()
        self.top = 1.0

    def show(self, values: Sequence[float], top: float) -> None:
        self.values, self.top = tuple(values), top
        self.refresh()

    def render(self) -> RenderResult:
        return Text("\n".join(trace_lines(self.values, self.size.width, self.size.height, self.top)))


class ConfirmAction(ModalScreen[bool]):
    """Are you sure? Only Y confirms (not the key that opened this); N or Esc goes back."""

    BINDINGS: ClassVar[list[BindingType]] = both_cases(
        [
            Binding("y", "confirm", "Yes"),
            Binding("n,escape", "cancel", "No, go back"),
        ]
    )

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, id="question", classes="title")
            yield Static("Press Y to confirm; N or Esc to go back.")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


class RunScreen(Screen[None]):
    """The session as it runs."""

    BINDINGS: ClassVar[list[BindingType]] = both_cases(
        [
            Binding("p", "pause", "Pause"),
            Binding("r", "resume", "Resume"),
            Binding("s", "stop", "Stop (ramped)"),
            Binding("a", "abort", "ABORT"),
        ]
    )

    def __init__(self, controller: SessionController) -> None:
        super().__init__()
        self.controller = controller

    CSS = """
    RunScreen { layout: vertical; }
    RunScreen #who { height: auto; max-height: 2; }
    RunScreen #state { height: 3; width: 1fr; content-align: center middle; text-style: bold;
                       background: $panel; color: $text; }
    RunScreen #state.-flowing { background: $success; color: $text; }
    RunScreen #state.-paused { background: $warning; color: $text; }
    RunScreen #state.-ending { background: $primary; color: $text; }
    RunScreen #state.-ended { background: $primary-darken-2; color: $text; }
    RunScreen #state.-fault { background: $error; color: $text; }
    RunScreen #readout { height: 5; }
    RunScreen .panel { border: round $primary; border-title-color: $text; height: 5; width: auto;
                       min-width: 19; padding: 0 1; align-horizontal: center; }
    RunScreen .panel Digits { width: auto; text-style: bold; }
    RunScreen #electrical { width: 1fr; height: 5; border: round $primary; padding: 0 1; }
    RunScreen #dose { height: 1; }
    RunScreen #progress { height: 1; width: 1fr; }
    RunScreen #progress Bar { width: 1fr; }
    RunScreen #trace-scale { height: 1; }
    RunScreen #message { height: 1; }
    """

    def compose(self) -> ComposeResult:
        p = self.controller.prescription
        yield Static(f"Patient {p.patient_id} · operator {p.operator_id} · {p.drug}, {p.polarity.value}, "
                     f"{p.current_ma:g} mA on {p.electrode_area_cm2:g} cm²", id="who", classes="hint")  # fmt: skip
        yield Static("", id="state")
        with Horizontal(id="readout"):
            with Vertical(id="current-box", classes="panel") as box:
                box.border_title = "Current mA"
                yield Digits("0.00", id="current")
            with Vertical(id="left-box", classes="panel") as box:
                box.border_title = "Time left"
                yield Digits("--:--", id="left")
            yield Static("", id="electrical")
        yield Static("", id="dose")
        yield ProgressBar(total=p.planned_dose_ma_min, show_eta=False, id="progress")
        yield Static("", id="trace-scale", classes="hint")
        yield Trace(id="trace")
        yield Static("", id="message", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#electrical", Static).border_title = "Output"
        self.redraw()
        self.set_interval(1 / REDRAW_HZ, self.redraw)

    def redraw(self) -> None:
        snap = self.controller.snapshot()
        state = self.query_one("#state", Static)
        state.update(f"State: {STATE_TEXT.get(snap.state, snap.state)}")
        for name in set(STATE_CLASS.values()):
            state.set_class(STATE_CLASS.get(snap.state) == name, name)
        s = snap.sample
        self.query_one("#current", Digits).update(f"{s.measured_ma:.2f}" if s is not None else "0.00")
        self.query_one("#left", Digits).update(clock(snap.time_left_s))
        self.query_one("#electrical", Static).update(_electrical(snap))
        self.query_one("#dose", Static).update(f"Dose {snap.delivered_ma_min:.2f} of {snap.planned_ma_min:.2f} mA·min")
        self.query_one("#progress", ProgressBar).update(progress=min(snap.delivered_ma_min, snap.planned_ma_min))
        top = max([self.controller.prescription.current_ma * 1.25, *snap.trace_ma])
        self.query_one("#trace", Trace).show(snap.trace_ma, top)
        scale = f"Current, last {len(snap.trace_ma)} samples, scale 0–{top:.2f} mA"
        self.query_one("#trace-scale", Static).update(scale)
        self.query_one("#message", Static).update(snap.reason)

    def action_pause(self) -> None:
        if self.controller.snapshot().state not in ("ramping_up", "delivering"):
            self.notify("Nothing to pause: the current is not ramping up or held.", severity="warning")
            return
        self.controller.request("pause")
        self.notify("pausing: ramping to zero")

    def action_resume(self) -> None:
        if self.controller.snapshot().state != "paused":
            self.notify("The session is not paused.", severity="warning")
            return
        self.controller.request("resume")
        self.notify("resuming: ramping up")

    def action_stop(self) -> None:
        ask_stop(self.app, self.controller)

    def action_abort(self) -> None:
        ask_abort(self.app, self.controller)


class Stoppable(Protocol):
    """A session's controller, or a visit's (whose requests go to every channel)."""

    def request(self, action: str, reason: str | None = None) -> None: ...


def ask_stop(app: App[Any], controller: Stoppable) -> None:
    """S, on the run screen or the lock: a ramped stop (of every channel of a visit), once Y confirms."""

    def answer(yes: bool | None) -> None:
        if yes:
            controller.request("stop")
            app.notify("stopping: ramping down")

    app.push_screen(ConfirmAction(f"STOP {_what(controller)}? The current ramps down and the session ends."), answer)


def ask_abort(app: App[Any], controller: Stoppable) -> None:
    """A, on the run screen or the lock: the fastest safe ramp to zero, once Y confirms."""

    def answer(yes: bool | None) -> None:
        if yes:
            controller.request("abort")
            app.notify("ABORTING: fastest safe ramp to zero", severity="warning")

    app.push_screen(ConfirmAction(f"ABORT {_what(controller)}? The current goes to zero as fast as is safe."), answer)


def _what(controller: Stoppable) -> str:
    return "the session" if isinstance(controller, SessionController) else "EVERY CHANNEL of the visit"


def _electrical(snap: Snapshot) -> str:
    s = snap.sample
    if s is None:
        return "Voltage    — V\nImpedance  — Ω\nSet        — mA"
    impedance = f"{s.impedance_ohm:.0f} Ω" if s.impedance_ohm is not None else "— Ω"
    compliance = "   AT COMPLIANCE" if s.at_compliance else ""
    return f"Voltage    {s.voltage_v:.1f} V{compliance}\nImpedance  {impedance}\nSet        {s.set_ma:.2f} mA"

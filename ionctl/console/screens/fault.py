"""The fault screen: takes over as soon as the session enters FAULT, says what happened and what to do, and
keeps showing the current until the session confirms it at zero (or raises the alarm: remove the electrodes).
Enter goes on to the end screen once the session has ended."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Static

from ionctl.console.controller import SessionController
from ionctl.console.faults import advice

if TYPE_CHECKING:
    from ionctl.treatment.report import Report


class FaultScreen(Screen[None]):
    """What happened, and what to do."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "continue", "Continue")]

    def __init__(self, controller: SessionController, fault: str | None, reason: str) -> None:
        super().__init__()
        self.controller = controller
        self.fault = fault
        self.reason = reason
        self.report: Report | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="fault-title")
        yield Static("", id="fault-what")
        yield Static("", id="fault-steps", classes="box")
        yield Static("", id="fault-current")
        yield Static("", id="fault-next", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        self.redraw()
        self.set_interval(0.2, self.redraw)

    def finished(self, report: Report) -> None:
        """The session has ended: its final word (an alarm included) replaces the first."""
        self.report = report
        self.fault = report.result.fault or self.fault
        self.reason = report.result.message or self.reason
        if self.is_mounted:
            self.redraw()

    def redraw(self) -> None:
        result = self.report.result if self.report is not None else None
        alarm = result is not None and result.alarm
        what = advice(self.fault, alarm=alarm)
        self.query_one("#fault-title", Static).update(self.heading(f"FAULT ({self.fault or 'unknown'}): {what.title}"))
        self.query_one("#fault-what", Static).update(f"What happened: {self.reason}")
        steps = "\n".join(f"{i}. {step}" for i, step in enumerate(what.steps, 1))
        self.query_one("#fault-steps", Static).update("What to do now:\n" + steps)
        snap = self.controller.snapshot()
        current = f"{snap.sample.measured_ma:.2f} mA" if snap.sample is not None else "unknown"
        if self.report is None:
            watching = f"Current now: {current}; watching it down to zero…"
        elif alarm:
            watching = f"Current now: {current}. CURRENT STILL FLOWS: REMOVE THE ELECTRODES NOW."
        else:
            watching = f"Current now: {current}; the output is off."
        self.query_one("#fault-current", Static).update(watching)
        if self.report is not None:
            self.query_one("#fault-next", Static).update("Enter: go on to the session summary and the skin check.")

    def heading(self, title: str) -> str:
        """The screen's first line (a visit's channel fault names the channel)."""
        return title

    def action_continue(self) -> None:
        if self.report is None:
            self.notify("The session is still bringing the current to zero.", severity="warning")
            return
        self.app.show_end(self.report)  # type: ignore[attr-defined]

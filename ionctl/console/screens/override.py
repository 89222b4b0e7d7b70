"""The supervisor override: a course rule refuses the session, and a supervisor sets it aside for this one
session with a reason and the supervisor PIN, as `ionctl run --supervisor-override REASON` does. The PIN is
checked (a wrong one is an `auth-denied` entry in the audit trail) when the session is prepared to start
(`ionctl.treatment.prepare`); the override is recorded against the session's record once it is open."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static


class OverrideScreen(ModalScreen[tuple[str, str] | None]):
    """The rule, then the reason and the supervisor PIN (not shown); Enter on the PIN gives them, Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, rule: str) -> None:
        super().__init__()
        self.rule = rule

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Supervisor override", classes="title")
            yield Static(f"Refused: {self.rule}", id="override-rule")
            yield Static("A supervisor may set this rule aside for this one session: give the reason (it is "
                         "recorded with the session) and the supervisor PIN.", classes="hint")  # fmt: skip
            with Horizontal(classes="field"):
                yield Label("Reason")
                yield Input(id="override-reason")
            with Horizontal(classes="field"):
                yield Label("Supervisor PIN")
                yield Input(password=True, id="override-pin")
            yield Static("", id="override-status", classes="error")
            yield Static("Enter on the PIN gives the override; Esc cancels.", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#override-reason", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "override-reason":
            self.query_one("#override-pin", Input).focus()
            return
        reason = self.query_one("#override-reason", Input).value.strip()
        pin = self.query_one("#override-pin", Input).value
        if not reason or not pin:
            self.query_one("#override-status", Static).update("Give both the reason and the supervisor PIN.")
            return
        self.dismiss((reason, pin))

    def action_cancel(self) -> None:
        self.dismiss(None)

"""The supervisor override: a course rule refuses the session, and a supervisor sets it aside for this one
session with a reason, their name and their password, as `ionctl run --supervisor-override REASON
--supervisor NAME` does. The supervisor logs in (a wrong password is a refusal in the audit trail, and counts
towards their lockout) when the session is prepared to start (`ionctl.treatment.prepare`), and must be a
supervisor: a technician's password does not set a rule aside. The override is signed by that supervisor and
recorded against the session's record once it is open."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static


class OverrideScreen(ModalScreen[tuple[str, str, str] | None]):
    """The rule, then the reason, the supervisor's name and password (not shown); Enter on the password gives
    them, Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    ORDER = ("override-reason", "override-supervisor", "override-password")

    def __init__(self, rule: str) -> None:
        super().__init__()
        self.rule = rule

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Supervisor override", classes="title")
            yield Static(f"Refused: {self.rule}", id="override-rule")
            yield Static("A supervisor may set this rule aside for this one session: give the reason (it is "
                         "recorded with the session), then the supervisor logs in; the override is signed by "
                         "them.", classes="hint")  # fmt: skip
            with Horizontal(classes="field"):
                yield Label("Reason")
                yield Input(id="override-reason")
            with Horizontal(classes="field"):
                yield Label("Supervisor's name")
                yield Input(id="override-supervisor")
            with Horizontal(classes="field"):
                yield Label("Supervisor's password")
                yield Input(password=True, id="override-password")
            yield Static("", id="override-status", classes="error")
            yield Static("Enter on the password gives the override; Esc cancels.", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#override-reason", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id in self.ORDER[:-1]:
            self.query_one(f"#{self.ORDER[self.ORDER.index(event.input.id) + 1]}", Input).focus()
            return
        reason, name, password = (self.query_one(f"#{key}", Input).value for key in self.ORDER)
        if not reason.strip() or not name.strip() or not password:
            self.query_one("#override-status", Static).update(
                "Give the reason, and the supervisor's name and password.")  # fmt: skip
            return
        self.dismiss((reason.strip(), name.strip(), password))

    def action_cancel(self) -> None:
        self.dismiss(None)

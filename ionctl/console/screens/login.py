"""Who is at the bench: the login the console starts with, and the lock it shows after the site's idle time.

Both ask a name and a password (Textual's `Input` with `password=True`: never shown, never kept after the
attempt). An initial password (an account just enrolled or reset) is accepted only to set the person's own,
typed twice, before anything else (`People.activate`). A refusal says why: a wrong password (and how many
tries are left before the lockout), a locked account (until when), a role that runs no sessions.

The lock covers the screen (the patient's details with it) but not the session: a running session goes on,
its telemetry recorded and supervised as before, and the lock shows its state and current. S stops it and A
aborts it from the lock as from the run screen (each asks for Y first); while a field has the cursor those
letters are typed into it, so Esc leaves the fields, and Ctrl+C, which no field takes, stops (and a second time
aborts) from anywhere. A fault of a running session shows its fault screen over the lock. Another person may
log in at the lock: that ends the first person's login (see `ConsoleApp.unlocked`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Static

from ionctl.console.access import Outcome, log_in, set_own_password
from ionctl.console.screens.base import both_cases

if TYPE_CHECKING:
    from ionctl.config.people import Identity
    from ionctl.console.app import ConsoleApp

NEW_PASSWORD_RULES = "at least 8 characters, not all digits, not a common one"


class Credentials(Screen[None]):
    """A name and a password, and, for an initial password, the person's own typed twice."""

    # No focus of its own: each screen says where the cursor starts (over a running session, nowhere). The
    # cursor moves at once (`set_focus`, not `focus`, which waits its turn), so the keys typed after an Enter go
    # to the field it moved to, however fast they come.
    AUTO_FOCUS = ""

    def __init__(self) -> None:
        super().__init__()
        self.initial: str | None = None  # the initial password proven, while the person sets their own
        self.busy = False

    @property
    def console(self) -> ConsoleApp:
        return self.app  # type: ignore[return-value]

    def fields(self, name: str = "") -> ComposeResult:
        with Horizontal(classes="field"):
            yield Label("Name")
            yield Input(value=name, id="login-name")
        with Horizontal(classes="field"):
            yield Label("Password")
            yield Input(password=True, id="login-password")
        with Horizontal(classes="field new-password"):
            yield Label("New password")
            yield Input(password=True, id="login-new")
        with Horizontal(classes="field new-password"):
            yield Label("New password again")
            yield Input(password=True, id="login-again")
        yield Static("", id="login-status")

    def on_mount(self) -> None:
        self._show_new(False)

    def _show_new(self, shown: bool) -> None:
        for row in self.query(".new-password"):
            row.display = shown

    def focus_fields(self, tries: int = 20) -> None:
        """The cursor to the name, or to the password when the name is given; once the fields are there, if
        the screen is not composed yet (a screen pushed while another was being replaced composes later)."""
        names, passwords = self.query("#login-name").results(Input), self.query("#login-password").results(Input)
        name, password = next(names, None), next(passwords, None)
        if name is None or password is None:
            if tries > 0:
                self.call_after_refresh(self.focus_fields, tries - 1)
            return
        self.set_focus(password if name.value.strip() else name)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        following = {"login-name": "login-password", "login-new": "login-again"}.get(event.input.id or "")
        if following is not None:
            self.set_focus(self.query_one(f"#{following}", Input))
            return
        self.attempt()

    def attempt(self) -> None:
        if self.busy:
            return
        name = self.query_one("#login-name", Input).value.strip()
        password = self.query_one("#login-password", Input).value
        if not name or not (password or self.initial):
            self.status("Give your name and your password.", error=True)
            return
        new, again = (self.query_one(f"#login-{k}", Input).value for k in ("new", "again"))
        if self.initial is not None and not new:
            self.status(f"Set a password of your own ({NEW_PASSWORD_RULES}), typed twice.", error=True)
            return
        self.busy = True
        self.status("checking…")
        self._check(name, password, new, again)

    @work(thread=True, exclusive=True, group="login")
    def _check(self, name: str, password: str, new: str, again: str) -> None:
        setup = self.console.setup
        try:
            if self.initial is not None:
                outcome = set_own_password(setup, name, self.initial, new, again)
            else:
                outcome = log_in(setup, name, password)
        except Exception as exc:  # the store cannot be read: say so, stay here
            outcome = Outcome(refused=f"cannot log in: {exc}")
        self.app.call_from_thread(self._answered, name, password, outcome)

    def _answered(self, name: str, password: str, outcome: Outcome) -> None:
        self.busy = False
        if not self.is_attached:
            return
        for key in ("password", "new", "again"):  # a password is never kept after its attempt
            self.query_one(f"#login-{key}", Input).value = ""
        if outcome.identity is not None:
            self.initial = None
            self._show_new(False)
            self.status("")
            self.accepted(outcome.identity)
            return
        if outcome.must_change:
            self.initial = self.initial or password
            self._show_new(True)
            self._lock_name(True)
            self.status(outcome.refused or f"{name} has an initial password: set a password of your own "
                        f"({NEW_PASSWORD_RULES}), typed twice.", error=outcome.refused is not None)  # fmt: skip
            self.set_focus(self.query_one("#login-new", Input))
            return
        self.initial = None
        self._show_new(False)
        self._lock_name(False)
        self.status(outcome.refused or "refused", error=True)
        self.set_focus(self.query_one("#login-password", Input))

    def _lock_name(self, locked: bool) -> None:
        """While the person sets their own password, the name and the initial password stay as proven."""
        for key in ("name", "password"):
            self.query_one(f"#login-{key}", Input).disabled = locked

    def status(self, text: str, *, error: bool = False) -> None:
        shown = self.query_one("#login-status", Static)
        shown.set_class(error, "error")
        shown.update(text)

    def accepted(self, identity: Identity) -> None:
        """The person is logged in (and may run sessions)."""


class LoginScreen(Credentials):
    """The console's first screen: nothing else opens until a technician or supervisor logs in."""

    def compose(self) -> ComposeResult:
        yield Static("ionctl console: log in", classes="title")
        yield Static("Your name and password (`ionctl users list` names the accounts). Enter logs in; Ctrl+Q "
                     "quits.", classes="hint")  # fmt: skip
        yield from self.fields()
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.set_focus(self.query_one("#login-name", Input))

    def accepted(self, identity: Identity) -> None:
        self.console.logged_in(identity)


class LockScreen(Credentials):
    """The console locked after the site's idle time: the same person's password goes on; another person's
    login ends theirs. A running session is shown, and S / A (or Ctrl+C) stop or abort it from here."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *both_cases([Binding("s", "stop", "Stop (ramped)"), Binding("a", "abort", "ABORT")]),
        Binding("enter", "fields", "Log in"),
        Binding("escape", "leave_fields", "Leave the fields", show=False),
    ]

    def __init__(self, identity: Identity) -> None:
        super().__init__()
        self.identity = identity
        self.running = False

    def compose(self) -> ComposeResult:
        minutes = self.console.setup.idle_lock_s / 60
        full = self.identity.account.full_name
        yield Static("LOCKED", classes="title error")
        yield Static(f"{full} ({self.identity.name}) is logged in; the console locked after {minutes:g} min "
                     "without a key.", id="lock-who")  # fmt: skip
        yield Static("", id="lock-session", classes="box")
        yield from self.fields(self.identity.name)
        yield Static(f"Enter, then {self.identity.name}'s password, goes on. Another person may log in instead: "
                     f"that ends {self.identity.name}'s login.", classes="hint", id="lock-hint")  # fmt: skip
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.redraw()
        self.set_interval(0.2, self.redraw)
        if not self.running:
            self.focus_fields()

    def on_screen_resume(self) -> None:
        if self.console.lock_screen is not self:  # unlocked while a screen over it had the keys
            self.app.call_later(self.dismiss_unlocked)

    def dismiss_unlocked(self) -> None:
        if self.app.screen is self:
            self.app.pop_screen()

    def redraw(self) -> None:
        from ionctl.console.visit import VisitController

        controller = self.console.active
        running = controller is not None and controller.running
        box = next(self.query("#lock-session").results(Static), None)
        if box is None:  # not composed yet: the next redraw (every 0.2 s) shows it
            return
        box.display = running
        if running and controller is not None:
            them = "every channel" if isinstance(controller, VisitController) else "it"
            box.update(f"{controller.describe()}\nS stops {them} (ramped), A aborts {them} (in a field: Esc "
                       "first). Ctrl+C stops it from anywhere.")  # fmt: skip
        if running != self.running:
            self.running = running
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("stop", "abort"):
            return self.running
        return True

    def action_fields(self) -> None:
        self.focus_fields()

    def action_leave_fields(self) -> None:
        self.set_focus(None)

    def action_stop(self) -> None:
        from ionctl.console.screens.run import ask_stop

        controller = self.console.active
        if controller is not None and controller.running:
            ask_stop(self.app, controller)

    def action_abort(self) -> None:
        from ionctl.console.screens.run import ask_abort

        controller = self.console.active
        if controller is not None and controller.running:
            ask_abort(self.app, controller)

    def accepted(self, identity: Identity) -> None:
        self.console.unlocked(identity)

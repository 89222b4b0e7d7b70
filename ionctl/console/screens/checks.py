"""Before the current: the contact check (the device's probe, impedance against the site window), the skin
check (a checklist, recorded in the audit trail against the session's record) and the confirmation."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Footer, Input, Label, SelectionList, Static

from ionctl.console.controller import ContactCheck, probe_contact
from ionctl.console.screens.base import Step, both_cases

SKIN_BEFORE = (
    "Skin under both electrodes intact: no cuts, abrasions or broken skin",
    "No rash, redness, blister or recent burn at either site",
    "Normal sensation at both sites (the patient feels light touch)",
    "Sites clean and dry around the electrodes; metal and jewellery removed",
    "Patient told to report any burning or pain at once",
)


class ContactScreen(Step):
    """Probe the electrodes' contact; go on only inside the site's contact window."""

    BINDINGS: ClassVar[list[BindingType]] = both_cases([*Step.BINDINGS, Binding("r", "recheck", "Check again")])

    def compose(self) -> ComposeResult:
        yield Static("5. Contact check", classes="title")
        yield Static("Place and wet the electrodes, then check the contact (a 0.1 mA probe for 0.5 s).",
                     classes="hint")  # fmt: skip
        yield Static("checking…", id="contact")
        yield Footer()

    def on_mount(self) -> None:
        self.action_recheck()

    def action_recheck(self) -> None:
        self.flow.contact = None
        self.query_one("#contact", Static).update("checking…")
        self._probe()

    @work(thread=True, exclusive=True, group="contact")
    def _probe(self) -> None:
        flow, limits = self.flow, self.console.setup.limits
        assert flow.source is not None and flow.prescription is not None
        check = probe_contact(flow.source, flow.prescription, limits)
        self.app.call_from_thread(self._show, check)

    def _show(self, check: ContactCheck) -> None:
        if not self.is_attached:  # the technician left this step while the probe ran
            return
        self.flow.contact = check
        shown = self.query_one("#contact", Static)
        shown.set_class(check.ok, "ok")
        shown.set_class(not check.ok, "error")
        advice = "" if check.ok else "\nCheck the electrodes and their wetting, then press R to check again."
        shown.update(check.text() + advice)

    def action_next(self) -> None:
        if self.flow.contact is None or not self.flow.contact.ok:
            self.notify("The contact must be inside the window first (R checks again).", severity="error")
            return
        self.console.switch_screen(SkinBeforeScreen())

    def action_back(self) -> None:
        from ionctl.console.screens.prescription import PrescriptionScreen

        self.console.switch_screen(PrescriptionScreen())


class SkinBeforeScreen(Step):
    """The skin check before the session: every item must be confirmed (space toggles), notes optional."""

    def compose(self) -> ComposeResult:
        yield Static("6. Skin check before the session", classes="title")
        yield Static("Inspect both sites. Space ticks the highlighted item; every item must be ticked to treat.",
                     classes="hint")  # fmt: skip
        yield SelectionList[int](*[(text, i) for i, text in enumerate(SKIN_BEFORE)], id="skin")
        with Horizontal(classes="field"):
            yield Label("Notes (optional)")
            yield Input(id="skin-notes")
        yield Static("", id="skin-status", classes="error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#skin", SelectionList).focus()

    def action_next(self) -> None:
        ticked = set(self.query_one("#skin", SelectionList).selected)
        unticked = [text for i, text in enumerate(SKIN_BEFORE) if i not in ticked]
        if unticked:
            self.query_one("#skin-status", Static).update("Do not treat until this is confirmed:\n- "
                                                          + "\n- ".join(unticked))  # fmt: skip
            return
        notes = self.query_one("#skin-notes", Input).value.strip()
        self.flow.skin_before = {"items": {text: True for text in SKIN_BEFORE}, "notes": notes}
        self.console.switch_screen(ConfirmScreen())

    def action_back(self) -> None:
        self.console.switch_screen(ContactScreen())


class ConfirmScreen(Step):
    """Everything that is about to happen, once more; Y starts the current."""

    BINDINGS: ClassVar[list[BindingType]] = both_cases([Binding("y", "start", "Start the current"),
                                                        Binding("escape", "back", "Back")])  # fmt: skip

    def compose(self) -> ComposeResult:
        from ionctl.run import summary
        from ionctl.safety import validate

        flow, setup = self.flow, self.console.setup
        assert flow.prescription is not None and flow.contact is not None
        charge = validate(flow.prescription, setup.limits).drug_charge.name.lower()
        yield Static("7. Confirm", classes="title")
        yield Static(
            summary(flow.prescription, charge, setup.limits, flow.address or "", setup.config),
            classes="box",
            id="summary",
        )
        course = f"\nCourse {flow.course_id}" if flow.course_id is not None else ""
        yield Static(f"Contact: {flow.contact.text()}\nSkin check before: done{course}")
        if setup.blocked:
            yield Static(setup.blocked, classes="error")
        yield Static("Press Y to start the current, Esc to go back.", classes="title")
        yield Footer()

    def action_start(self) -> None:
        self.console.start_session()

    def action_back(self) -> None:
        self.console.switch_screen(SkinBeforeScreen())

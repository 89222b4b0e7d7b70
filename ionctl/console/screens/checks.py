"""Before the current: the contact check (the device's probe, impedance against the site window), the skin
check (the typed skin check, recorded as an addendum to the session's record) and the confirmation."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Static

from ionctl.console.controller import ContactCheck, probe_contact
from ionctl.console.screens.addenda import SkinCheckForm
from ionctl.console.screens.base import Step, both_cases
from ionctl.records.skin import BEFORE, Answer, SkinCheckError


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
    """The skin check before the session: every item answered (no / yes / not inspected with the reason). Only
    skin inspected and clear at both sites may be treated: broken or inflamed skin is a labelled
    contraindication, and skin not inspected is skin not known to be clear."""

    def compose(self) -> ComposeResult:
        step = 7 if self.flow.visit else 6  # a visit has its channels' step before
        yield Static(f"{step}. Skin check before the session", classes="title")
        where = (f"every site of the visit ({', '.join(self.flow.sites)}) and their return electrodes' sites"
                 if self.flow.visit else "both sites")  # fmt: skip
        yield Static(f"Inspect {where}. Answer each item: N no, Y yes, I not inspected (type the reason). "
                     "Tab moves on.", classes="hint")  # fmt: skip
        yield SkinCheckForm(BEFORE, id="skin")
        yield Static("", id="skin-status", classes="error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(SkinCheckForm).focus_first()

    def action_next(self) -> None:
        status = self.query_one("#skin-status", Static)
        try:
            check = self.query_one(SkinCheckForm).check()
        except SkinCheckError as exc:
            status.update(f"Not complete: {exc}")
            return
        unclear = [f"{k}: {item.text()}" for k, item in check.items.items() if item.answer is not Answer.NO]
        if unclear:
            status.update("Do not treat until the skin is inspected and clear at both sites:\n- "
                          + "\n- ".join(unclear))  # fmt: skip
            return
        self.flow.skin_before = check
        if self.flow.visit:
            from ionctl.console.screens.visit import VisitConfirmScreen

            self.console.switch_screen(VisitConfirmScreen())
        else:
            self.console.switch_screen(ConfirmScreen())

    def action_back(self) -> None:
        if self.flow.visit:
            from ionctl.console.screens.visit import VisitContactScreen

            self.console.switch_screen(VisitContactScreen())
        else:
            self.console.switch_screen(ContactScreen())


class ConfirmScreen(Step):
    """Everything that is about to happen, once more; Y starts the current."""

    BINDINGS: ClassVar[list[BindingType]] = both_cases([Binding("y", "start", "Start the current"),
                                                        Binding("o", "override", "Supervisor override"),
                                                        Binding("escape", "back", "Back")])  # fmt: skip

    def compose(self) -> ComposeResult:
        from ionctl.safety import validate
        from ionctl.treatment.report import summary

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
        yield Static(self._override_text(), id="override")
        if setup.blocked:
            yield Static(setup.blocked, classes="error")
        yield Static("Press Y to start the current, Esc to go back.", classes="title")
        yield Footer()

    def _override_text(self) -> str:
        reason = self.flow.override_reason
        if not reason:
            return ""
        return f"Supervisor override: {reason} (the supervisor's password is checked when the current starts)"

    def action_start(self) -> None:
        self.console.start_session()

    def action_override(self) -> None:
        """A course rule refused the start: a supervisor may set it aside (reason, their name and password), then
        Y starts."""
        rule = self.flow.refusal
        if rule is None:
            self.notify("No course rule refuses this session: there is nothing to override.", severity="warning")
            return

        def given() -> None:
            if self.is_attached:
                self.query_one("#override", Static).update(self._override_text())
            self.notify("Override given: press Y to start the current.")

        self.console.ask_override(rule, given)

    def action_back(self) -> None:
        self.console.switch_screen(SkinBeforeScreen())

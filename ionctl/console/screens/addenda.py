"""The skin check form (before and after a session) and the chart's addenda: the pending skin check a new
session of the patient waits for, and an addendum (a skin check, a late adverse reaction, a note, a correction)
to a recent record of the patient. Everything is written through `Store.append_addendum`, as by
`ionctl records addendum`.

Each item of the skin check is answered with N (no), Y (yes) or I (not inspected, with the reason typed beside
it); either case, or the arrows and Enter. Nothing is pre-answered: an item left blank is refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, OptionList, RadioButton, RadioSet, Static
from textual.widgets.option_list import Option

from ionctl.console.screens.base import Step
from ionctl.records.skin import (
    ADVERSE_REACTION,
    AFTER,
    CORRECTION,
    ITEMS,
    NOTE,
    SKIN_CHECK_AFTER,
    Addendum,
    Answer,
    SkinCheck,
    SkinCheckError,
    addendum_text,
)

if TYPE_CHECKING:
    from ionctl.console.app import ConsoleApp

#: The answers in the order the radio buttons show them.
ANSWERS = (Answer.NO, Answer.YES, Answer.NOT_INSPECTED)
#: How many of the patient's latest records the addendum screen offers.
RECENT = 10


class AnswerSet(RadioSet):
    """One item's answer: no / yes / not inspected; N, Y or I (either case) picks one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n,N", "answer(0)", "No", show=False),
        Binding("y,Y", "answer(1)", "Yes", show=False),
        Binding("i,I", "answer(2)", "Not inspected", show=False),
    ]
    # Nothing may look answered before it is: the cursor is shown only while the set has the focus (Textual
    # shows it on every blurred set too, which reads as "no" ticked in every row), and the answer given is bold.
    DEFAULT_CSS = """
    AnswerSet { layout: horizontal; height: 1; width: auto; border: none; padding: 0; }
    AnswerSet:focus { border: none; }
    AnswerSet > RadioButton { width: auto; margin: 0 1 0 0; }
    AnswerSet:blur > RadioButton.-selected > .toggle--label { background: transparent; }
    AnswerSet > RadioButton.-on > .toggle--label { text-style: bold underline; }
    """

    def __init__(self, *, id: str) -> None:  # noqa: A002 - Textual's name for it
        super().__init__(*(RadioButton(answer.value) for answer in ANSWERS), id=id)

    def action_answer(self, index: int) -> None:
        self.query(RadioButton)[index].value = True

    @property
    def answer(self) -> Answer | None:
        return ANSWERS[self.pressed_index] if self.pressed_index >= 0 else None


class SkinCheckForm(Vertical):
    """Every skin check item (a row: label, answer, reason if not inspected), the reaction and a note."""

    # One row an item, to fit 80 columns: the label takes what the answers leave, and the reason field appears
    # beside an item only once it is answered "not inspected".
    DEFAULT_CSS = """
    SkinCheckForm { height: auto; }
    SkinCheckForm .skin-row { height: 1; }
    SkinCheckForm .skin-row Label { width: 1fr; min-width: 16; padding: 0 1 0 0; }
    SkinCheckForm .skin-row Input { width: 1fr; height: 1; border: none; padding: 0 1; background: $boost; }
    SkinCheckForm .skin-row Input:focus { background: $accent 40%; }
    SkinCheckForm .field { margin: 0; }
    """

    def __init__(self, when: str, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.when = when

    def compose(self) -> ComposeResult:
        for key, label in ITEMS.items():
            with Horizontal(classes="skin-row"):
                yield Label(label)
                yield AnswerSet(id=f"skin-{key}")
                reason = Input(placeholder="why not inspected?", id=f"skin-{key}-reason")
                reason.display = False
                yield reason
        described = "Adverse reaction (if any)" if self.when == AFTER else "Finding (if any item is yes)"
        with Horizontal(classes="field"):
            yield Label(described)
            yield Input(id="skin-reaction", placeholder="e.g. erythema under the cathode, 2 cm")
        with Horizontal(classes="field"):
            yield Label("Note (optional)")
            yield Input(id="skin-note")

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        """Show an item's reason field once it is answered "not inspected" (and ask for the reason there)."""
        if not isinstance(event.radio_set, AnswerSet) or event.radio_set.id is None:
            return
        reason = self.query_one(f"#{event.radio_set.id}-reason", Input)
        reason.display = event.radio_set.answer is Answer.NOT_INSPECTED
        if reason.display and not reason.value:
            reason.focus()

    def focus_first(self, tries: int = 20) -> None:
        """The cursor to the first item; once it is there, if the form is not composed yet (an end screen
        mounted beneath the idle lock composes later)."""
        found = self.query(AnswerSet)
        if found:
            found.first().focus()
        elif tries > 0:
            self.call_after_refresh(self.focus_first, tries - 1)

    def check(self) -> SkinCheck:
        """The check as answered; SkinCheckError naming the first item unanswered or without a reason."""
        answers: dict[str, Answer | None] = {k: self.query_one(f"#skin-{k}", AnswerSet).answer for k in ITEMS}
        reasons = {k: self.query_one(f"#skin-{k}-reason", Input).value for k in ITEMS}
        return SkinCheck.of(self.when, answers, reasons=reasons, note=self.query_one("#skin-note", Input).value,
                            reaction=self.query_one("#skin-reaction", Input).value)  # fmt: skip


def show_status(screen: Screen[Any], selector: str, text: str, *, error: bool = False) -> None:
    if not screen.is_attached:
        return
    status = screen.query_one(selector, Static)
    status.set_class(error, "error")
    status.set_class(not error, "ok")
    status.update(text)


def record_line(row: Mapping[str, Any], pending: bool) -> str:
    dose = f"{row['dose_ma_min']:.2f} mA·min" if row.get("dose_ma_min") is not None else "no dose"
    outcome = row.get("outcome") or "open (running)"
    check = "skin check after PENDING" if pending else ""
    from ionctl.records import timefmt

    when = timefmt.local_text(row["created_utc"], seconds=False)  # the clinic's time zone
    return f"record {row['id']}  {when}  {outcome}  {dose}  {check}".rstrip()


# -- the pending skin check ----------------------------------------------------------------------------------


class PendingScreen(Step):
    """A session of this patient energised them and its skin check after is not in the record: it is asked
    for first, one record at a time; the next session's steps open once none is pending."""

    def __init__(self, pending: Sequence[Mapping[str, Any]]) -> None:
        super().__init__()
        self.pending = pending

    def compose(self) -> ComposeResult:
        yield Static(f"Skin check pending for patient {self.flow.patient_id}", classes="title error")
        yield Static("", id="pending-what")
        yield SkinCheckForm(AFTER, id="pending-form")
        yield Static("Ctrl+S records it; the next session can start once no skin check is pending. "
                     "Esc: another patient.", classes="hint")  # fmt: skip
        yield Static("", id="pending-status")
        yield Footer()

    BINDINGS: ClassVar[list[BindingType]] = [*Step.BINDINGS, Binding("ctrl+s", "save", "Record skin check")]

    def on_mount(self) -> None:
        self._show()

    def _show(self) -> None:
        row = self.pending[0]
        more = f" ({len(self.pending) - 1} more after it)" if len(self.pending) > 1 else ""
        self.query_one("#pending-what", Static).update(
            f"The session of {record_line(row, True)} energised the patient and has no skin check after it"
            f"{more}. Inspect the skin and record it now.")  # fmt: skip
        self.query_one(SkinCheckForm).focus_first()

    def action_save(self) -> None:
        from ionctl.console.controller import record_after
        from ionctl.records import Store

        row = self.pending[0]
        try:
            check = self.query_one(SkinCheckForm).check()
            with Store(self.console.setup.store_path) as store:
                number = record_after(store, int(row["id"]), self.console.operator_name, check)
                self.pending = store.pending_skin_checks(self.flow.patient_id)
        except Exception as exc:  # SkinCheckError names the item; a store error says why
            show_status(self, "#pending-status", f"Not recorded: {exc}", error=True)
            return
        self.notify(f"Skin check after recorded in record {row['id']} (addendum #{number}).")
        if self.pending:
            self.console.switch_screen(PendingScreen(self.pending))
        else:
            self.action_next()

    def action_next(self) -> None:
        from ionctl.console.screens.setup import PresetScreen

        if self.pending:
            show_status(self, "#pending-status", "Record the pending skin check first (Ctrl+S).", error=True)
            return
        self.console.switch_screen(PresetScreen())

    def action_back(self) -> None:
        from ionctl.console.screens.setup import PatientScreen

        self.console.switch_screen(PatientScreen())


def after_patient(console: ConsoleApp) -> Screen[None] | None:
    """The screen after the patient is entered: their pending skin checks if any (from the store), else the
    course or preset; None (stay, the reason shown) if the store cannot be read to know."""
    from ionctl.console.screens.setup import PresetScreen
    from ionctl.records import Store

    try:
        with Store(console.setup.store_path) as store:
            pending = store.pending_skin_checks(console.flow.patient_id)
    except Exception as exc:
        console.notify(f"the record store cannot be read for pending skin checks: {exc}", severity="error",
                       timeout=30)  # fmt: skip
        return None
    return PendingScreen(pending) if pending else PresetScreen()


# -- an addendum to a recent record ----------------------------------------------------------------------------


class RecordsScreen(Screen[None]):
    """The patient's latest records; Enter opens one to add an addendum to it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, patient: str) -> None:
        super().__init__()
        self.patient = patient

    def compose(self) -> ComposeResult:
        from ionctl.records import Store

        yield Static(f"Addendum to a record of patient {self.patient}", classes="title")
        options: list[Option] = []
        note = "Enter opens the record."
        try:
            with Store(self.app.setup.store_path) as store:  # type: ignore[attr-defined]
                pending = {int(r["id"]) for r in store.pending_skin_checks(self.patient)}
                rows = store.list_records(patient=self.patient)[-RECENT:]
            options = [Option(record_line(r, int(r["id"]) in pending), id=str(r["id"])) for r in reversed(rows)]
        except Exception as exc:
            note = f"the records cannot be read: {exc}"
        if not options and not note.startswith("the records"):
            note = f"patient {self.patient} has no records"
        yield OptionList(*options, id="records")
        yield Static(note, classes="hint", id="records-note")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#records", OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.app.push_screen(AddendumScreen(int(event.option.id)))


#: The kinds of addendum the addendum screen offers, in its order.
KINDS = ((SKIN_CHECK_AFTER, "skin check after the session"), (ADVERSE_REACTION, "late adverse reaction"),
         (CORRECTION, "correction of an addendum"), (NOTE, "note"))  # fmt: skip


class AddendumScreen(Screen[None]):
    """One record, its addenda (numbered), and a new addendum: pick its kind, fill in, Ctrl+S records it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+s", "save", "Record addendum"),
                                             Binding("escape", "app.pop_screen", "Back")]  # fmt: skip

    def __init__(self, record_id: int) -> None:
        super().__init__()
        self.record_id = record_id

    @property
    def console(self) -> ConsoleApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(f"Addendum to record {self.record_id}", classes="title")
        yield Static("", id="addenda", classes="box")
        yield RadioSet(*(RadioButton(label) for _, label in KINDS), id="kind")
        yield SkinCheckForm(AFTER, id="addendum-form")
        with Horizontal(classes="field"):
            yield Label("Text (reaction, correction, note)")
            yield Input(id="addendum-text")
        with Horizontal(classes="field"):
            yield Label("Corrects addendum # (a correction)")
            yield Input(id="addendum-corrects", restrict=r"[0-9]*")
        yield Static("", id="addendum-status")
        yield Footer()

    def on_mount(self) -> None:
        self._list()
        self.query_one("#kind", RadioSet).focus()

    def _list(self) -> None:
        from ionctl.records import Store

        try:
            with Store(self.console.setup.store_path) as store:
                record = store.get(self.record_id)
        except Exception as exc:
            self.query_one("#addenda", Static).update(f"the record cannot be read: {exc}")
            return
        lines = [record_line(record.fields, False)]
        from ionctl.records import timefmt

        lines += [f"#{a['seq']} {timefmt.local_text(a['utc'], seconds=False)} {a['action']} by {a['actor']}: "
                  f"{addendum_text(a)}" for a in record.addenda] or ["no addenda yet"]  # fmt: skip
        self.query_one("#addenda", Static).update("\n".join(lines))

    def addendum(self) -> Addendum:
        """What the form says; SkinCheckError naming what is missing."""
        kind_set = self.query_one("#kind", RadioSet)
        if kind_set.pressed_index < 0:
            raise SkinCheckError("choose what to add: " + ", ".join(label for _, label in KINDS))
        kind = KINDS[kind_set.pressed_index][0]
        corrects_text = self.query_one("#addendum-corrects", Input).value.strip()
        corrects = int(corrects_text) if corrects_text else None
        if kind == SKIN_CHECK_AFTER:
            return Addendum(kind, skin=self.query_one(SkinCheckForm).check(), corrects=corrects)
        return Addendum(kind, text=self.query_one("#addendum-text", Input).value, corrects=corrects)

    def action_save(self) -> None:
        from ionctl.records import Store

        operator = self.console.operator_name  # the author is the person logged in
        try:
            if not operator:
                raise SkinCheckError("nobody is logged in")
            addendum = self.addendum()
            with Store(self.console.setup.store_path) as store:
                number = store.append_addendum(self.record_id, operator, addendum)
        except Exception as exc:
            show_status(self, "#addendum-status", f"Not recorded: {exc}", error=True)
            return
        self._list()
        show_status(self, "#addendum-status", f"Addendum #{number} recorded in record {self.record_id}.")

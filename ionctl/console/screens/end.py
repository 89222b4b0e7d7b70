"""The end screen: the session's summary, the skin check after it and any adverse reaction (written into the
audit trail against the record), and the chart PDF. A new session may start only once the skin check after
is recorded."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, SelectionList, Static

from ionctl.console.controller import record_after

if TYPE_CHECKING:
    from ionctl.console.app import ConsoleApp
    from ionctl.run import Report

SKIN_AFTER = (
    "Skin inspected under both electrodes",
    "No blister, burn or broken skin",
    "Redness, if any, is mild and fading",
    "The patient reports no pain or burning",
)


class EndScreen(Screen[None]):
    """Summary, skin check after, adverse reaction, PDF export."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Record skin check"),
        Binding("ctrl+o", "export", "Export chart PDF"),
        Binding("ctrl+n", "new", "New session"),
    ]

    def __init__(self, report: Report) -> None:
        super().__init__()
        self.report = report
        self.pdf_path: Path | None = None

    @property
    def console(self) -> ConsoleApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        from ionctl.run import result_text

        yield Static(f"Session ended: {self.report.result.outcome.upper()}", classes="title", id="outcome")
        yield Static(result_text(self.report), classes="box", id="result")
        controller = self.console.flow.controller
        said = controller.messages.getvalue().strip() if controller is not None else ""
        if said:  # what the record writer had to say (a write that failed), as `ionctl run` prints it
            yield Static(said, classes="error", id="record-messages")
        if self.report.record_id is None:
            yield Static("No record was written for this session.", classes="error")
        else:
            yield Static("Skin check after the session (space ticks what is true):", classes="title")
            yield SelectionList[int](*[(text, i) for i, text in enumerate(SKIN_AFTER)], id="skin-after")
            with Horizontal(classes="field"):
                yield Label("Adverse reaction (empty: none)")
                yield Input(id="reaction", placeholder="e.g. erythema under the cathode, 2 cm")
        yield Static("", id="end-status")
        yield Footer()

    def on_mount(self) -> None:
        if self.report.record_id is not None:
            self.query_one("#skin-after", SelectionList).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_save()

    def action_save(self) -> None:
        record_id = self.report.record_id
        if record_id is None:
            return
        if self.console.flow.after_saved:
            self._status("The skin check after this session is already recorded.")
            return
        from ionctl.records import Store

        ticked = set(self.query_one("#skin-after", SelectionList).selected)
        skin = {"items": {text: i in ticked for i, text in enumerate(SKIN_AFTER)}}
        reaction = self.query_one("#reaction", Input).value.strip()
        operator = self.report.result.prescription.get("operator_id") or self.console.flow.operator_id
        try:
            with Store(self.console.setup.store_path) as store:
                record_after(store, record_id, str(operator), skin, reaction)
        except Exception as exc:
            self._status(f"could not record the skin check: {exc}", error=True)
            return
        self.console.flow.after_saved = True
        noted = f"; adverse reaction noted: {reaction}" if reaction else "; no adverse reaction"
        self._status(f"Skin check after recorded in record {record_id}{noted}.")

    def action_export(self) -> None:
        if self.report.record_id is None:
            return
        self._status("writing the chart PDF…")
        self._export(self.report.record_id)

    @work(thread=True, exclusive=True, group="pdf")
    def _export(self, record_id: int) -> None:
        from ionctl.records import Store
        from ionctl.records.pdf import write_pdf

        path = self.console.setup.export_dir / f"record-{record_id}.pdf"
        try:
            with Store(self.console.setup.store_path) as store:
                write_pdf(store.get(record_id), path)
        except Exception as exc:
            self.app.call_from_thread(self._status, f"could not write the PDF: {exc}", True)
            return
        self.pdf_path = path
        self.app.call_from_thread(self._status, f"Chart PDF written: {path}")

    def action_new(self) -> None:
        if self.report.record_id is not None and not self.console.flow.after_saved:
            self._status("Record the skin check after the session first (ctrl+s).", error=True)
            return
        self.console.new_session()

    def _status(self, text: str, error: bool = False) -> None:
        if not self.is_attached:
            return
        status = self.query_one("#end-status", Static)
        status.set_class(error, "error")
        status.update(text)

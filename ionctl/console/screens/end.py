"""The end screen: the session's summary, the skin check after it with any adverse reaction (an addendum to
the record), and the chart PDF. A new session may start only once no session that energised this patient lacks
its skin check after (the store says which: `Store.pending_skin_checks`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Static

from ionctl.console.controller import record_after
from ionctl.console.screens.addenda import RecordsScreen, SkinCheckForm
from ionctl.records.skin import AFTER, SkinCheckError

if TYPE_CHECKING:
    from ionctl.console.app import ConsoleApp
    from ionctl.treatment.report import Report


class EndScreen(Screen[None]):
    """Summary, skin check after, adverse reaction, PDF export."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save skin check"),
        Binding("ctrl+o", "export", "Chart PDF"),
        Binding("ctrl+n", "new", "New session"),
        Binding("ctrl+r", "addendum", "Addendum"),
    ]

    def __init__(self, report: Report) -> None:
        super().__init__()
        self.report = report
        self.pdf_path: Path | None = None

    @property
    def console(self) -> ConsoleApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        from ionctl.treatment.report import result_text

        yield Static(f"Session ended: {self.report.result.outcome.upper()}", classes="title", id="outcome")
        yield Static(result_text(self.report), classes="box", id="result")
        controller = self.console.flow.controller
        said = controller.messages.getvalue().strip() if controller is not None else ""
        if said:  # what the record writer had to say (a write that failed), as `ionctl run` prints it
            yield Static(said, classes="error", id="record-messages")
        if self.report.record_id is None:
            yield Static("No record was written for this session.", classes="error")
        else:
            yield Static("Skin check after: N no · Y yes · I not inspected (and why) · Ctrl+S records it",
                         classes="title")  # fmt: skip
            yield SkinCheckForm(AFTER, id="skin-after")
        yield Static("", id="end-status")
        yield Footer()

    def on_mount(self) -> None:
        if self.report.record_id is not None:
            self.query_one(SkinCheckForm).focus_first()

    def action_save(self) -> None:
        record_id = self.report.record_id
        if record_id is None:
            return
        if self.console.flow.after_saved:
            self._status("The skin check after this session is already recorded; Ctrl+R adds a correction.")
            return
        from ionctl.records import Store

        try:
            check = self.query_one(SkinCheckForm).check()
            with Store(self.console.setup.store_path) as store:  # the author is the person logged in
                number = record_after(store, record_id, self.console.operator_name, check)
        except SkinCheckError as exc:
            self._status(f"Not recorded: {exc}", error=True)
            return
        except Exception as exc:
            self._status(f"could not record the skin check: {exc}", error=True)
            return
        self.console.flow.after_saved = True
        noted = f"; adverse reaction noted: {check.reaction}" if check.reaction else "; no adverse reaction"
        self._status(f"Skin check after recorded in record {record_id} (addendum #{number}){noted}.")

    def action_export(self) -> None:
        if self.report.record_id is None:
            return
        self._status("writing the chart PDF…")
        self._export(self.report.record_id)

    @work(thread=True, exclusive=True, group="pdf")
    def _export(self, record_id: int) -> None:
        from ionctl.records import Store
        from ionctl.records.narrative import visit_channels_in
        from ionctl.records.pdf import write_pdf

        setup = self.console.setup
        path = setup.export_dir / f"record-{record_id}.pdf"
        clinic_name = setup.config.bench.clinic_name if setup.config is not None else None
        try:
            with Store(setup.store_path) as store:
                record = store.get(record_id)
                write_pdf(record, path, head=store.chain_head(), clinic_name=clinic_name,
                          visit=visit_channels_in(store, record))  # fmt: skip
        except Exception as exc:
            self.app.call_from_thread(self._status, f"could not write the PDF: {exc}", True)
            return
        self.pdf_path = path
        self.app.call_from_thread(self._status, f"Chart PDF written: {path}")

    def action_new(self) -> None:
        pending = self._pending()
        if pending:
            self._status(f"Record the skin check after the session first (ctrl+s): {pending}.", error=True)
            return
        self.console.new_session()

    def _pending(self) -> str:
        """Which sessions of this patient still lack their skin check after, as the store says ("" if none)."""
        from ionctl.records import Store

        patient = self.report.result.prescription.get("patient_id") or self.console.flow.patient_id
        try:
            with Store(self.console.setup.store_path) as store:
                rows = store.pending_skin_checks(str(patient))
        except Exception as exc:
            return f"the record store cannot be read to know ({exc})"
        return ", ".join(f"record {r['id']}" for r in rows)

    def action_addendum(self) -> None:
        patient = self.report.result.prescription.get("patient_id") or self.console.flow.patient_id
        self.console.push_screen(RecordsScreen(str(patient)))

    def _status(self, text: str, error: bool = False) -> None:
        if not self.is_attached:
            return
        status = self.query_one("#end-status", Static)
        status.set_class(error, "error")
        status.update(text)

"""The prescription: the preset's values, editable, checked against the site limits at every keystroke.

Every limit broken is listed as it is typed, each naming the limit, its value and the prescribed value
(`ionctl.safety.validate`); the next step stays closed until none is. A field left empty is never filled in
from the preset behind the technician's back: what the screen shows is what is prescribed.

Below the prescription, what the chart records beyond it (`CHART`): the treatment site (required: a session
without one, or with one outside the body sites a record names, goes no further, the sites accepted listed), the
preparation's concentration, volume and lot, and the prescriber; the preset's site, concentration and volume are
shown to start from. In a visit the prescription is every channel's, and each channel's treatment site is given on
the next screen (`ionctl.console.screens.visit.ChannelsScreen`).

The form and the list of refusals scroll apart, so a long list never hides a field, even at 80×24: the form
takes what it needs (up to most of the screen), the list the rest, and a focused field scrolls into view.
"""

from __future__ import annotations

import math
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Input, Label, Select, Static

from ionctl.console.controller import violations_of
from ionctl.console.screens.base import Step
from ionctl.safety import Prescription, PrescriptionError

#: The editable fields: Prescription field name -> label.
FIELDS = {
    "current_ma": "Current (mA)",
    "electrode_area_cm2": "Active electrode area (cm²)",
    "dose_ma_min": "Dose (mA·min), or",
    "duration_min": "Duration (min, ramps included)",
    "ramp_up_s": "Ramp up (s)",
    "ramp_down_s": "Ramp down (s)",
}
#: What the chart records beyond the prescription (`ionctl.records.clinical.ClinicalDetails`): field -> label.
CHART = {
    "site": "Treatment site (e.g. left hand)",
    "concentration": "Concentration (as labelled)",
    "volume_ml": "Volume applied (mL)",
    "lot": "Lot",
    "prescriber": "Prescriber",
}
#: What the site field says in a visit: each channel has its own treatment site.
VISIT_SITES = "each channel's own: next step"
RAMP_DEFAULT_S = 30.0  # Prescription's own default, shown so that it can be seen and changed


class PrescriptionScreen(Step):
    """Edit the prescription within the site limits."""

    CSS = """
    PrescriptionScreen .title { margin: 0; }
    PrescriptionScreen #rx-form { height: auto; max-height: 70%; }
    PrescriptionScreen #rx-form .field { margin: 0; }
    PrescriptionScreen #rx-form .field Label { width: 32; }
    PrescriptionScreen #rx-form .field Input { width: 1fr; max-width: 44; }
    PrescriptionScreen #rx-form Select { width: 1fr; max-width: 80; }
    PrescriptionScreen #rx-check { height: 1fr; min-height: 3; }
    """

    def compose(self) -> ComposeResult:
        preset = self.flow.preset
        assert preset is not None
        yield Static(f"4. Prescription: preset {preset.name}", classes="title")
        reversal = "; polarity reversed at the midpoint" if preset.polarity_reversal_at_midpoint else ""
        with VerticalScroll(id="rx-form"):
            yield Static(f"Drug {preset.drug}, active electrode {preset.polarity.value}{reversal}, "
                         f"limits class {preset.protocol_class}.\nSource: {preset.source}"
                         + (f"\n{preset.notes}" if preset.notes else ""), classes="hint")  # fmt: skip
            electrodes = self.console.setup.electrodes
            if electrodes:
                choices = [(f"{e.name}: {e.area_cm2:g} cm² ({e.type})", e.name) for e in electrodes.values()]
                yield Select(choices, prompt="Electrode from the catalog (sets the area)", id="electrode")
            for name, label in FIELDS.items():
                with Horizontal(classes="field"):
                    yield Label(label)
                    yield Input(value=self._initial(name), type="number", id=name)
            yield Static("", id="planned")
            yield Static("For the chart:", classes="hint")
            for name, label in CHART.items():
                with Horizontal(classes="field"):
                    yield Label(label)
                    if name == "site" and self.flow.visit:  # each channel's, on the next screen
                        yield Input(value=VISIT_SITES, id=name, disabled=True)
                    else:
                        yield Input(value=self._chart_initial(name), id=name)
        with VerticalScroll(id="rx-check"):
            yield Static("", id="violations", classes="error")
        yield Footer()

    def _initial(self, name: str) -> str:
        rx, preset = self.flow.prescription, self.flow.preset
        value = getattr(rx, name) if rx is not None else getattr(preset, name, None)
        if value is None and name in ("ramp_up_s", "ramp_down_s") and rx is None:
            value = RAMP_DEFAULT_S
        return "" if value is None else f"{value:g}"

    def _chart_initial(self, name: str) -> str:
        """What the chart field starts from: what was typed before, else the preset's (site, concentration,
        volume)."""
        if name in self.flow.chart:
            value = self.flow.chart[name]
        else:
            value = getattr(self.flow.preset, name, None)
        if value is None:
            return ""
        return f"{value:g}" if isinstance(value, float) else str(value)

    def chart(self) -> tuple[dict[str, Any] | None, list[str]]:
        """The chart details the form shows (TreatmentRequest field -> value; None left out), and what is wrong
        with them (empty: nothing)."""
        from ionctl.records.clinical import ClinicalDetails, ClinicalError, TreatmentSite

        texts = {name: self.query_one(f"#{name}", Input).value.strip() for name in CHART}
        values: dict[str, Any] = {k: v for k, v in texts.items() if v}
        problems = []
        if self.flow.visit:
            values.pop("site", None)
        else:
            try:
                values["site"] = TreatmentSite.parse(texts["site"]).text
            except ClinicalError as exc:
                problems.append(f"treatment site: {exc}")
        if "volume_ml" in values:
            try:
                values["volume_ml"] = float(values["volume_ml"])
            except ValueError:
                problems.append(f"volume: {values['volume_ml']!r} is not a number")
        if not problems:
            try:
                ClinicalDetails(**{k: v for k, v in values.items() if k != "site"})
            except ClinicalError as exc:
                problems.append(str(exc))
        return (None if problems else values), problems

    def on_mount(self) -> None:
        self.query_one("#current_ma", Input).focus()
        self.check()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.check()

    def on_select_changed(self, event: Select.Changed) -> None:
        electrode = self.console.setup.electrodes.get(str(event.value))
        if electrode is not None:
            self.query_one("#electrode_area_cm2", Input).value = f"{electrode.area_cm2:g}"

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.focus_next()

    def build(self) -> tuple[Prescription | None, list[str]]:
        """The prescription the form shows, and every reason it may not be delivered (empty: it may)."""
        preset = self.flow.preset
        assert preset is not None
        values: dict[str, Any] = {}
        problems = []
        for name, label in FIELDS.items():
            text = self.query_one(f"#{name}", Input).value.strip()
            if not text:
                continue
            try:
                values[name] = float(text)
            except ValueError:
                problems.append(f"{label.rstrip(', or')}: {text!r} is not a number")
                continue
            if not math.isfinite(values[name]):
                problems.append(f"{label.rstrip(', or')}: must be a finite number")
        for name in ("current_ma", "electrode_area_cm2", "ramp_up_s", "ramp_down_s"):
            if name not in values:
                problems.append(f"give the {FIELDS[name].split(' (')[0].lower()}")
        if ("dose_ma_min" in values) == ("duration_min" in values):
            problems.append("give either the dose or the duration (exactly one)")
        if problems:
            return None, problems
        try:
            rx = preset.prescription(patient_id=self.flow.patient_id, operator_id=self.console.operator_name, **values)
        except PrescriptionError as exc:
            return None, [str(exc)]
        config = self.console.setup.config
        catalog = config.drugs if config is not None else None
        return rx, [v.message for v in violations_of(rx, self.console.setup.limits, catalog)]

    def check(self) -> bool:
        """Rebuild and check the prescription; show the plan and every violation. True if it may go on."""
        rx, problems = self.build()
        chart, chart_problems = self.chart()
        problems += chart_problems
        planned = self.query_one("#planned", Static)
        if rx is not None:
            planned.update(f"{rx.density_ma_cm2:.3f} mA/cm²; about {rx.planned_dose_ma_min:.2f} mA·min over "
                           f"{rx.planned_duration_min:.1f} min")  # fmt: skip
        else:
            planned.update("")
        if rx is not None and problems:
            refused = "REFUSED, no current may flow:\n" + "\n".join(f"- {p}" for p in problems)
        else:
            refused = "\n".join(f"- {p}" for p in problems)
        self.query_one("#violations", Static).update(refused)
        if rx is not None and chart is not None and not problems:
            self.flow.prescription, self.flow.chart = rx, chart
            return True
        self.flow.prescription = None
        return False

    def action_next(self) -> None:
        from ionctl.console.screens.checks import ContactScreen
        from ionctl.console.screens.visit import ChannelsScreen

        if not self.check():
            self.notify("The prescription cannot be delivered as it is: see the list.", severity="error")
            return
        self.console.switch_screen(ChannelsScreen() if self.flow.visit else ContactScreen())

    def action_back(self) -> None:
        from ionctl.console.screens.setup import PresetScreen

        self.console.switch_screen(PresetScreen())

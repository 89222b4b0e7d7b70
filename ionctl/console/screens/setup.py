"""The first steps: the device (discovered or typed), the patient (the operator is the person logged in), the
course or preset. And the screen that replaces them all when the site configuration has not been approved."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from ionctl.console.screens.base import Step, both_cases
from ionctl.drivers.base import CurrentSource, DeviceError
from ionctl.safety.identifiers import identifier_problem

if TYPE_CHECKING:
    from ionctl.config import Preset


class BlockedScreen(Screen[None]):
    """No session may start: the configuration in force is not the approved one. Says why, and how to fix it."""

    BINDINGS: ClassVar[list[BindingType]] = both_cases([Binding("q", "app.quit", "Quit")])

    def compose(self) -> ComposeResult:
        setup = self.app.setup  # type: ignore[attr-defined]
        yield Static("SESSIONS CANNOT START", classes="title error")
        yield Static(setup.blocked or "", id="blocked")
        yield Static("Ask a supervisor to review the configuration and approve it (`ionctl config approve`), "
                     "or start the console without --config to use the packaged defaults.", classes="hint")  # fmt: skip
        yield Footer()


class DeviceScreen(Step):
    """The bench: every device discovered. Pick one (Enter), or type an address (a serial port, a pyserial URL,
    visa:RESOURCE). A visit of several channels: Space marks devices in the list (or type several addresses,
    separated by commas), one device per channel in the order marked; Enter or Ctrl+N opens them all."""

    BINDINGS: ClassVar[list[BindingType]] = [*Step.BINDINGS, Binding("space", "mark", "Mark for a visit")]

    def __init__(self) -> None:
        super().__init__()
        self.marked: list[str] = []  # addresses marked for a visit, in channel order
        self.found: dict[str, str] = {}  # address -> how the list shows it

    def compose(self) -> ComposeResult:
        yield Static("1. Device", classes="title")
        yield Static("Choose a discovered device (Enter), or type its address below and press Enter. A visit of "
                     "several channels: Space marks each device (or type the addresses, separated by commas).",
                     classes="hint")  # fmt: skip
        yield OptionList(id="found")
        yield Static("looking for devices…", id="discovery", classes="hint")
        with Horizontal(classes="field"):
            yield Label("Address")
            yield Input(value=self.flow.address or "", placeholder="/dev/ttyUSB0, socket://host:port, visa:…",
                        id="address")  # fmt: skip
        yield Static("", id="device-status")
        yield Footer()

    def on_mount(self) -> None:
        self.console.close_source()  # back at the start: whatever was open is let go
        self.query_one("#address", Input).focus()
        self.discover()

    @work(thread=True, exclusive=True, group="discovery")
    def discover(self) -> None:
        try:
            found, note = self.console.setup.discover()
        except Exception as exc:  # discovery is a convenience: typing an address still works
            found, note = [], f"discovery failed: {exc}"
        self.app.call_from_thread(self._show_found, found, note)

    def _show_found(self, found: list, note: str | None) -> None:  # type: ignore[type-arg]
        if not self.is_attached:
            return
        self.found = {item.address: f"{item.address}  {item.kind}  {item.description}" for item in found}
        self._show_marks()
        text = f"{len(found)} found" if found else "none found: type the address"
        self.query_one("#discovery", Static).update(text + (f" ({note})" if note else ""))

    def _show_marks(self) -> None:
        """The list of devices found, each marked with its channel if it is one of the visit's."""
        options = self.query_one("#found", OptionList)
        if [option.id for option in options.options] != list(self.found):
            options.clear_options()
            options.add_options([Option(Text(text), id=address) for address, text in self.found.items()])
        for address, text in self.found.items():
            mark = f"channel {self.marked.index(address) + 1}: " if address in self.marked else ""
            options.replace_option_prompt(address, Text(mark + text))  # Text: a "[...]" in an address is no markup

    def action_mark(self) -> None:
        """Space on a device in the list: mark it as the visit's next channel, or unmark it."""
        options = self.query_one("#found", OptionList)
        if not options.has_focus or not self.found:
            return
        if options.highlighted is None:  # the list just focused: its first device
            options.highlighted = 0
        address = options.get_option_at_index(options.highlighted).id
        if address is None:
            return
        if address in self.marked:
            self.marked.remove(address)
        else:
            self.marked.append(address)
        self._show_marks()
        if self.marked:
            self._status(f"Visit: {len(self.marked)} channel(s) marked; Enter opens them all.")
        else:
            self._status("")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if self.marked:
            self.action_next()
        elif event.option.id is not None:
            self.query_one("#address", Input).value = event.option.id
            self.connect(event.option.id)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_next()

    def action_next(self) -> None:
        typed = [a.strip() for a in self.query_one("#address", Input).value.split(",") if a.strip()]
        if self.marked or len(typed) > 1:
            addresses = [*self.marked, *(a for a in typed if a not in self.marked and len(typed) > 1)]
            self.connect_visit(addresses)
            return
        if not typed:
            self._status("Give a device address first.", error=True)
            return
        self.connect(typed[0])

    def connect_visit(self, addresses: list[str]) -> None:
        from ionctl.treatment.visit import MAX_CHANNELS

        if len(addresses) < 2:
            self._status("A visit has two channels or more: mark another device, or unmark this one for a "
                         "single session.", error=True)  # fmt: skip
            return
        if len(addresses) > MAX_CHANNELS:
            self._status(f"A visit has at most {MAX_CHANNELS} channels, not {len(addresses)}.", error=True)
            return
        if len(set(addresses)) != len(addresses):
            self._status("Each channel is a device of its own: an address is given twice.", error=True)
            return
        self._status(f"connecting to {', '.join(addresses)}…")
        self._open_visit(addresses)

    @work(thread=True, exclusive=True, group="connect")
    def _open_visit(self, addresses: list[str]) -> None:
        sources: list[CurrentSource] = []
        for address in addresses:
            try:
                sources.append(self.console.setup.open_device(address))
            except Exception as exc:  # a DeviceError, or anything else: the devices opened so far are let go
                for source in sources:
                    try:
                        source.close()
                    except Exception:  # noqa: BLE001 - the first error is the one to show
                        pass
                self.app.call_from_thread(self._status, f"cannot reach the device at {address}: {exc}", error=True)
                return
        self.app.call_from_thread(self._opened_visit, addresses, sources)

    def _opened_visit(self, addresses: list[str], sources: list[CurrentSource]) -> None:
        if not self.is_attached:
            for source in sources:
                source.close()
            return
        self.console.close_source()
        flow = self.flow
        if addresses != flow.visit:  # other devices, or another order: each channel's site is to be given again
            flow.sites = []
        flow.address, flow.visit, flow.sources = None, addresses, sources
        flow.contacts = [None] * len(addresses)
        self.notify(f"connected: {len(sources)} devices, one per channel")
        self.console.switch_screen(PatientScreen())

    def connect(self, address: str) -> None:
        self._status(f"connecting to {address}…")
        self._open(address)

    @work(thread=True, exclusive=True, group="connect")
    def _open(self, address: str) -> None:
        try:
            source = self.console.setup.open_device(address)
        except DeviceError as exc:
            self.app.call_from_thread(self._status, f"cannot reach the device at {address}: {exc}", error=True)
            return
        self.app.call_from_thread(self._opened, address, source)

    def _opened(self, address: str, source: CurrentSource) -> None:
        if not self.is_attached:  # nobody is waiting for it any more
            source.close()
            return
        self.console.close_source()
        self.flow.address, self.flow.source, self.flow.visit = address, source, []
        who = source.identity
        self.notify(f"connected: {who.model} serial {who.serial}, firmware {who.firmware}")
        self.console.switch_screen(PatientScreen())

    def _status(self, text: str, *, error: bool = False) -> None:
        if not self.is_attached:
            return
        status = self.query_one("#device-status", Static)
        status.set_class(error, "error")
        status.update(text)


class PatientScreen(Step):
    """Who is treated (the operator is the person logged in); Ctrl+R adds an addendum to one of the patient's
    records."""

    BINDINGS: ClassVar[list[BindingType]] = [*Step.BINDINGS, Binding("ctrl+r", "addendum", "Addendum to a record")]

    def compose(self) -> ComposeResult:
        source = self.flow.source
        who = source.identity if source is not None else None
        yield Static("2. Patient", classes="title")
        if who is not None:
            yield Static(f"Device: {who.model} serial {who.serial} at {self.flow.address}", classes="hint")
        for n, (address, each) in enumerate(zip(self.flow.visit, self.flow.sources, strict=False), start=1):
            yield Static(f"Channel {n}: {each.identity.model} serial {each.identity.serial} at {address}",
                         classes="hint")  # fmt: skip
        identity = self.console.identity
        if identity is not None:
            yield Static(f"Operator: {identity.account.full_name} ({identity.name}, {identity.role.value}), logged in",
                         id="operator")  # fmt: skip
        with Vertical():
            with Horizontal(classes="field"):
                yield Label("Patient ID")
                yield Input(value=self.flow.patient_id, id="patient")
        yield Static("", id="patient-status", classes="error")
        yield Footer()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_next()

    def _patient(self) -> str | None:
        """The patient ID typed, or None after saying what is wrong with it."""
        patient = self.query_one("#patient", Input).value.strip()
        problem = identifier_problem("patient ID", patient) if patient else "Give the patient's ID."
        if problem is not None:  # a pasted line break, tab or escape sequence
            self.query_one("#patient-status", Static).update(problem)
            return None
        return patient

    def action_next(self) -> None:
        patient = self._patient()
        if patient is None:
            return
        self.flow.patient_id = patient
        from ionctl.console.screens.addenda import after_patient

        screen = after_patient(self.console)  # a pending skin check of this patient first
        if screen is not None:
            self.console.switch_screen(screen)

    def action_addendum(self) -> None:
        from ionctl.console.screens.addenda import RecordsScreen

        patient = self._patient()
        if patient is None:
            return
        self.flow.patient_id = patient
        self.console.push_screen(RecordsScreen(patient))

    def action_back(self) -> None:
        self.console.switch_screen(DeviceScreen())


class PresetScreen(Step):
    """The patient's treatment courses (each with where it stands and whether a session is allowed now), then
    the site's approved presets; the prescription screen fills in what a preset leaves to the clinician. A
    course that refuses a session now may be chosen with a supervisor's override (O: reason, the supervisor's
    name and password)."""

    BINDINGS: ClassVar[list[BindingType]] = [*Step.BINDINGS, *both_cases([Binding("o", "override",
                                                                                  "Supervisor override")])]  # fmt: skip

    def compose(self) -> ComposeResult:
        setup = self.console.setup
        self.courses, note = self._courses()
        yield Static("3. Course or preset", classes="title")
        yield Static(f"Courses of patient {self.flow.patient_id}, then the presets of {setup.config_source}. "
                     "Enter chooses.", classes="hint")  # fmt: skip
        options = [Option(text, id=f"course:{course_id}") for course_id, (text, _, _) in self.courses.items()]
        for name, preset in setup.presets.items():
            options.append(Option(f"preset {name}: {_preset_text(preset)}", id=f"preset:{name}"))
        yield OptionList(*options, id="presets")
        yield Static(note, id="preset-source", classes="hint")
        yield Footer()

    def _courses(self) -> tuple[dict[int, tuple[str, str, str | None]], str]:
        """The patient's courses: id -> (line, preset, refusal now or None); and a note if they cannot be read."""
        from datetime import UTC, datetime

        from ionctl.core.courses import status
        from ionctl.records import Store

        found: dict[int, tuple[str, str, str | None]] = {}
        try:
            with Store(self.console.setup.store_path) as store:
                now = datetime.now(UTC)
                for course in store.courses(patient=self.flow.patient_id):
                    state = status(store, int(course["id"]), now)
                    allowed = "allowed now" if state.allowed_now else "NOT ALLOWED NOW"
                    text = (f"course {course['id']}: preset {course['preset']}, {state.plan.text()}; "
                            f"{state.done} done, {state.left} left; {allowed}")  # fmt: skip
                    found[int(course["id"])] = (text, str(course["preset"]), state.refusal)
        except Exception as exc:  # the presets still work without the courses
            return found, f"courses could not be read: {exc}"
        return found, ""

    def on_mount(self) -> None:
        self.query_one("#presets", OptionList).focus()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        kind, _, key = (event.option.id or "").partition(":")
        if kind == "preset":
            text = f"Source: {self.console.setup.presets[key].source}"
        else:
            text = self.courses[int(key)][2] or "The course allows a session now."
        self.query_one("#preset-source", Static).update(text)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self._choose(event.option.id)

    def action_next(self) -> None:
        options = self.query_one("#presets", OptionList)
        if options.highlighted is not None:
            self._choose(options.get_option_at_index(options.highlighted).id)

    def action_override(self) -> None:
        """The highlighted course refuses a session now: a supervisor sets its rule aside, then it is chosen."""
        options = self.query_one("#presets", OptionList)
        option = options.get_option_at_index(options.highlighted).id if options.highlighted is not None else None
        kind, _, key = (option or "").partition(":")
        refusal = self.courses[int(key)][2] if kind == "course" else None
        if refusal is None:
            self.notify("Only a course that refuses a session now needs an override.", severity="warning")
            return
        self.console.ask_override(refusal, lambda: self._choose(option, overridden=True))

    def _choose(self, option: str | None, *, overridden: bool = False) -> None:
        from ionctl.console.screens.prescription import PrescriptionScreen

        kind, _, key = (option or "").partition(":")
        course_id: int | None = None
        if not overridden:
            self.flow.override_reason = self.flow.override_supervisor = None
        if kind == "course":
            course_id = int(key)
            _, key, refusal = self.courses[course_id]
            if refusal is not None and not overridden:
                shown = self.query_one("#preset-source", Static)
                shown.set_class(True, "error")
                shown.update(f"REFUSED: {refusal}\nA supervisor may override it: press O.")
                return
        preset = self.console.setup.presets.get(key)
        if preset is None:
            self.notify(f"preset {key!r} is not in the configuration in force", severity="error")
            return
        if self.flow.preset is not preset:
            self.flow.prescription, self.flow.chart = None, {}
        self.flow.preset, self.flow.course_id = preset, course_id
        self.console.switch_screen(PrescriptionScreen())

    def action_back(self) -> None:
        self.console.switch_screen(PatientScreen())


def _preset_text(preset: Preset) -> str:
    amount = "dose to give"
    if preset.dose_ma_min is not None:
        amount = f"{preset.dose_ma_min:g} mA·min"
    elif preset.duration_min is not None:
        amount = f"{preset.duration_min:g} min"
    current = f"{preset.current_ma:g} mA" if preset.current_ma is not None else "current to give"
    needs = f"  (to give: {', '.join(preset.missing)})" if preset.missing else ""
    return f"{preset.drug}, {preset.polarity.value}, {current}, {amount}{needs}"

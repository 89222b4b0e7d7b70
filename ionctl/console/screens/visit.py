"""A visit at the console: several channels (one device each, marked on the device screen) for one patient, one
prescription, each channel its own treatment site, contact check and record (`ionctl.treatment.visit`).

The steps after the prescription: each channel's treatment site (`ChannelsScreen`, the preset's visit to start
from), every channel's contact check (`VisitContactScreen`), the skin check (the single session's screen, over every
site), the confirmation of the whole visit (`VisitConfirmScreen`, one Y). While it runs, `VisitRunScreen` shows the
channels side by side, each with its state, current, dose and time left; the keys act on the selected channel (1-8,
or Tab / the arrows), and X stops every channel. A channel's fault takes over the screen naming the channel
(`ChannelFaultScreen`); the others go on or ramp down as the visit policy says. B shows the bench: every device
found, and what each running channel is doing. The visit's end screen gives every channel's result, takes the skin
check after (one for the visit, into every record) and writes every chart PDF.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, Label, ProgressBar, Static

from ionctl.console.controller import ContactCheck, Snapshot, probe_contact
from ionctl.console.screens.addenda import SkinCheckForm
from ionctl.console.screens.base import Step, both_cases
from ionctl.console.screens.end import EndScreen
from ionctl.console.screens.fault import FaultScreen
from ionctl.console.screens.run import STATE_CLASS, STATE_TEXT, ConfirmAction, clock
from ionctl.console.visit import VisitController
from ionctl.records.skin import AFTER, SkinCheckError

if TYPE_CHECKING:
    from ionctl.treatment.report import Report


def channel_sites(texts: list[str]) -> tuple[list[str], list[str]]:
    """Each channel's treatment site as the chart says it, and what is wrong (empty: nothing): every site given,
    known, and none twice (as `prepare_visit` checks)."""
    from ionctl.records.clinical import ClinicalError, TreatmentSite

    sites, problems = [], []
    for n, text in enumerate(texts, start=1):
        try:
            sites.append(TreatmentSite.parse(text).text)
        except ClinicalError as exc:
            problems.append(f"channel {n}: treatment site: {exc}")
            sites.append("")
    for n, site in enumerate(sites, start=1):
        if site and site in sites[: n - 1]:
            problems.append(f"channels {sites.index(site) + 1} and {n} both treat the {site}")
    return sites, problems


class ChannelsScreen(Step):
    """Each channel's treatment site (the preset's visit, in order, to start from)."""

    def compose(self) -> ComposeResult:
        flow = self.flow
        preset_sites = flow.preset.visit if flow.preset is not None else ()
        yield Static("5. Channels: the treatment site of each", classes="title")
        yield Static("One device per channel, in the order marked. Every channel gets the prescription; each its own "
                     "site (left hand, right hand, both feet, ...).", classes="hint")  # fmt: skip
        with VerticalScroll(id="channels"):
            for n, address in enumerate(flow.visit, start=1):
                if n <= len(flow.sites):
                    site = flow.sites[n - 1]
                else:
                    site = preset_sites[n - 1] if n <= len(preset_sites) else ""
                with Horizontal(classes="field"):
                    yield Label(f"Channel {n}: {address}")
                    yield Input(value=site, id=f"site-{n}", placeholder="treatment site")
        yield Static("", id="channels-status", classes="error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#site-1", Input).focus()
        self.check()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.check()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.focus_next()

    def check(self) -> list[str] | None:
        texts = [self.query_one(f"#site-{n}", Input).value for n in range(1, len(self.flow.visit) + 1)]
        sites, problems = channel_sites(texts)
        self.query_one("#channels-status", Static).update("\n".join(f"- {p}" for p in problems))
        return None if problems else sites

    def action_next(self) -> None:
        sites = self.check()
        if sites is None:
            self.notify("Each channel needs its own treatment site: see the list.", severity="error")
            return
        if sites != self.flow.sites:
            self.flow.contacts = [None] * len(sites)
        self.flow.sites = sites
        self.console.switch_screen(VisitContactScreen())

    def action_back(self) -> None:
        from ionctl.console.screens.prescription import PrescriptionScreen

        self.console.switch_screen(PrescriptionScreen())


class VisitContactScreen(Step):
    """Every channel's contact, probed in turn; go on only with every one inside the site's window."""

    BINDINGS: ClassVar[list[BindingType]] = both_cases([*Step.BINDINGS, Binding("r", "recheck", "Check again")])

    def compose(self) -> ComposeResult:
        yield Static("6. Contact check, every channel", classes="title")
        yield Static("Place and wet every channel's electrodes, then check the contact (a 0.1 mA probe for 0.5 s on "
                     "each channel in turn).", classes="hint")  # fmt: skip
        for n in range(1, len(self.flow.visit) + 1):
            yield Static("", id=f"contact-{n}")
        yield Footer()

    probing = False  # a probe of the channels is under way: R waits for it (one device, one probe at a time)

    def on_mount(self) -> None:
        self.action_recheck()

    def action_recheck(self) -> None:
        if self.probing:
            self.notify("The channels' contact is being checked: wait for it.", severity="warning")
            return
        self.probing = True
        self.flow.contacts = [None] * len(self.flow.visit)
        for n in range(1, len(self.flow.visit) + 1):
            self._show(n, None)
        self._probe()

    @work(thread=True, exclusive=True, group="contact")
    def _probe(self) -> None:
        flow, limits = self.flow, self.console.setup.limits
        assert flow.prescription is not None
        try:
            for n, source in enumerate(list(flow.sources), start=1):
                check = probe_contact(source, flow.prescription, limits)
                self.app.call_from_thread(self._show, n, check)
        finally:
            self.probing = False

    def _show(self, n: int, check: ContactCheck | None) -> None:
        if not self.is_attached or n > len(self.flow.contacts):
            return
        self.flow.contacts[n - 1] = check
        shown = self.query_one(f"#contact-{n}", Static)
        who = f"Channel {n} ({self.flow.sites[n - 1]}, {self.flow.visit[n - 1]}): "
        shown.set_class(check is not None and check.ok, "ok")
        shown.set_class(check is not None and not check.ok, "error")
        shown.update(who + ("checking…" if check is None else check.text()))

    def action_next(self) -> None:
        from ionctl.console.screens.checks import SkinBeforeScreen

        bad = [n for n, c in enumerate(self.flow.contacts, start=1) if c is None or not c.ok]
        if bad:
            self.notify(f"Every channel's contact must be inside the window first: channel(s) "
                        f"{', '.join(map(str, bad))} (R checks again).", severity="error")  # fmt: skip
            return
        self.console.switch_screen(SkinBeforeScreen())

    def action_back(self) -> None:
        self.console.switch_screen(ChannelsScreen())


class VisitConfirmScreen(Step):
    """The whole visit once more: the prescription, each channel, what a fault on one does to the others. Y starts
    every channel."""

    BINDINGS: ClassVar[list[BindingType]] = both_cases([Binding("y", "start", "Start every channel"),
                                                        Binding("o", "override", "Supervisor override"),
                                                        Binding("escape", "back", "Back")])  # fmt: skip

    def compose(self) -> ComposeResult:
        from ionctl.safety import validate
        from ionctl.treatment.report import summary
        from ionctl.treatment.visit import VisitPolicy, policy_text

        flow, setup = self.flow, self.console.setup
        assert flow.prescription is not None
        charge = validate(flow.prescription, setup.limits).drug_charge.name.lower()
        policy = VisitPolicy(setup.config.visits.fault_policy) if setup.config is not None else VisitPolicy.STOP_ALL
        yield Static(f"8. Confirm the visit: {len(flow.visit)} channels", classes="title")
        with VerticalScroll(id="summary"):  # the channels first: what only the visit has
            lines = [f"Channel {n}: {site} on {address}; {contact.text() if contact else 'contact not checked'}"
                     for n, (site, address, contact) in enumerate(zip(flow.sites, flow.visit, flow.contacts,
                                                                      strict=True), start=1)]  # fmt: skip
            course = f"\nCourse {flow.course_id}" if flow.course_id is not None else ""
            yield Static("\n".join(lines) + f"\nA fault on one channel: {policy_text(policy)} (visit policy "
                         f"{policy.value}).\nSkin check before: done{course}", id="channels")  # fmt: skip
            yield Static(summary(flow.prescription, charge, setup.limits, "each channel's (above)", setup.config),
                         classes="box")  # fmt: skip
        yield Static(self._override_text(), id="override")
        if setup.blocked:
            yield Static(setup.blocked, classes="error")
        yield Static("Press Y to start every channel, Esc to go back.", classes="title")
        yield Footer()

    def _override_text(self) -> str:
        reason = self.flow.override_reason
        return f"Supervisor override: {reason}" if reason else ""

    def action_start(self) -> None:
        self.console.start_visit()

    def action_override(self) -> None:
        rule = self.flow.refusal
        if rule is None:
            self.notify("No course rule refuses this visit: there is nothing to override.", severity="warning")
            return

        def given() -> None:
            if self.is_attached:
                self.query_one("#override", Static).update(self._override_text())
            self.notify("Override given: press Y to start every channel.")

        self.console.ask_override(rule, given)

    def action_back(self) -> None:
        from ionctl.console.screens.checks import SkinBeforeScreen

        self.console.switch_screen(SkinBeforeScreen())


# -- running ---------------------------------------------------------------------------------------------------


class ChannelPanel(Vertical):
    """One channel at a glance: its state band, current, dose against the prescription, time left."""

    DEFAULT_CSS = """
    ChannelPanel { border: round $primary; height: auto; padding: 0 1; }
    ChannelPanel.-selected { border: double $accent; }
    ChannelPanel .state { height: 1; width: 1fr; text-style: bold; background: $panel; content-align: center middle; }
    ChannelPanel .state.-flowing { background: $success; }
    ChannelPanel .state.-paused { background: $warning; }
    ChannelPanel .state.-ending { background: $primary; }
    ChannelPanel .state.-ended { background: $primary-darken-2; }
    ChannelPanel .state.-fault { background: $error; }
    ChannelPanel .current { text-style: bold; }
    ChannelPanel Static { text-wrap: nowrap; text-overflow: ellipsis; }
    ChannelPanel ProgressBar Bar { width: 1fr; }
    ChannelPanel ProgressBar { width: 1fr; }
    """

    def __init__(self, controller: VisitController, n: int) -> None:
        super().__init__(id=f"channel-{n}")
        self.controller, self.n = controller, n
        self.border_title = f"{n} {controller.visit.channels[n - 1].label}"
        self.border_subtitle = controller.device(n)

    def compose(self) -> ComposeResult:
        yield Static("", classes="state")
        yield Static("", classes="current")
        yield Static("", classes="dose")
        yield ProgressBar(total=self.controller.snapshot(self.n).planned_ma_min, show_eta=False,
                          show_percentage=False)  # fmt: skip
        yield Static("", classes="detail")

    def redraw(self) -> None:
        snap = self.controller.snapshot(self.n)
        state = self.query_one(".state", Static)
        state.update(STATE_TEXT.get(snap.state, snap.state))
        for name in set(STATE_CLASS.values()):
            state.set_class(STATE_CLASS.get(snap.state) == name, name)
        s = snap.sample
        self.query_one(".current", Static).update(f"{s.measured_ma:.2f} mA  {clock(snap.time_left_s)} left"
                                                  if s is not None else "— mA")  # fmt: skip
        self.query_one(".dose", Static).update(f"{snap.delivered_ma_min:.2f}/{snap.planned_ma_min:.2f} mA·min")
        self.query_one(ProgressBar).update(progress=min(snap.delivered_ma_min, snap.planned_ma_min))
        self.query_one(".detail", Static).update(_detail(snap))


def _detail(snap: Snapshot) -> str:
    s = snap.sample
    if snap.fault:
        return f"FAULT {snap.fault}: {snap.reason}"
    if s is None:
        return snap.reason
    impedance = f"{s.impedance_ohm:.0f} Ω" if s.impedance_ohm is not None else "— Ω"
    return f"{s.voltage_v:.1f} V, {impedance}" + ("  AT COMPLIANCE" if s.at_compliance else "")


class VisitRunScreen(Screen[None]):
    """Every channel of the visit as it runs, side by side (four to a row)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *both_cases([  # short names: at 80 columns every key shows; the line above the keys says what they act on
            Binding("s", "stop", "Stop"),
            Binding("a", "abort", "ABORT"),
            Binding("x", "stop_all", "Stop ALL"),
            Binding("p", "pause", "Pause"),
            Binding("r", "resume", "Resume"),
            Binding("b", "bench", "Bench"),
        ]),
        Binding("tab,right", "select(1)", "Next channel", show=False),
        Binding("shift+tab,left", "select(-1)", "Previous channel", show=False),
        *(Binding(str(n), f"choose({n})", f"Channel {n}", show=False) for n in range(1, 9)),
    ]  # fmt: skip

    CSS = """
    VisitRunScreen { layout: vertical; background: $surface; }
    VisitRunScreen #who { height: auto; max-height: 3; }
    VisitRunScreen #panels { grid-gutter: 0 1; height: auto; }
    VisitRunScreen #selected { height: auto; text-style: bold; }
    """

    def __init__(self, controller: VisitController) -> None:
        super().__init__()
        self.controller = controller
        self.selected = 1

    def compose(self) -> ComposeResult:
        c = self.controller
        p = c.visit.prepared[0].prescription
        yield Static(f"Visit {c.visit.visit_id[:8]} · patient {p.patient_id} · operator {p.operator_id} · {p.drug}, "
                     f"{p.polarity.value}, {p.current_ma:g} mA on {p.electrode_area_cm2:g} cm² · visit policy "
                     f"{c.visit.policy.value}", id="who", classes="hint")  # fmt: skip
        grid = Grid(*(ChannelPanel(c, n) for n in range(1, c.count + 1)), id="panels")
        grid.styles.grid_size_columns = min(4, c.count)
        yield grid
        yield Static("", id="selected")
        yield Footer()

    def on_mount(self) -> None:
        self.redraw()
        self.set_interval(0.1, self.redraw)

    def redraw(self) -> None:
        for panel in self.query(ChannelPanel):
            panel.set_class(panel.n == self.selected, "-selected")
            panel.redraw()
        self.query_one("#selected", Static).update(
            f"Selected: channel {self.controller.label(self.selected)} (1-{self.controller.count}, Tab or the arrows "
            "choose). S, A, P, R act on it; X stops every channel.")  # fmt: skip

    def action_select(self, step: int) -> None:
        self.selected = (self.selected - 1 + step) % self.controller.count + 1
        self.redraw()

    def action_choose(self, n: int) -> None:
        if n <= self.controller.count:
            self.selected = n
            self.redraw()

    def _ask(self, question: str, action: str, said: str, channel: int | None) -> None:
        controller = self.controller

        def answer(yes: bool | None) -> None:
            if yes:
                controller.request(action, channel=channel)
                self.notify(said, severity="warning")

        self.app.push_screen(ConfirmAction(question), answer)

    def action_stop(self) -> None:
        n, c = self.selected, self.controller
        if not c.channel_running(n):
            self.notify(f"Channel {c.label(n)} has ended.", severity="warning")
            return
        self._ask(f"STOP channel {c.label(n)}? Its current ramps down and its session ends; the other channels go "
                  "on.", "stop", f"channel {c.label(n)}: stopping, ramping down", n)  # fmt: skip

    def action_abort(self) -> None:
        n, c = self.selected, self.controller
        if not c.channel_running(n):
            self.notify(f"Channel {c.label(n)} has ended.", severity="warning")
            return
        self._ask(f"ABORT channel {c.label(n)}? Its current goes to zero as fast as is safe.", "abort",
                  f"channel {c.label(n)}: ABORTING", n)  # fmt: skip

    def action_stop_all(self) -> None:
        self._ask("STOP EVERY CHANNEL? Every current ramps down and the visit ends.", "stop",
                  "stopping every channel: ramping down", None)  # fmt: skip

    def action_pause(self) -> None:
        n, c = self.selected, self.controller
        if c.snapshot(n).state not in ("ramping_up", "delivering"):
            self.notify(f"Channel {c.label(n)}: nothing to pause.", severity="warning")
            return
        c.request("pause", channel=n)
        self.notify(f"channel {c.label(n)}: pausing, ramping to zero")

    def action_resume(self) -> None:
        n, c = self.selected, self.controller
        if c.snapshot(n).state != "paused":
            self.notify(f"Channel {c.label(n)} is not paused.", severity="warning")
            return
        c.request("resume", channel=n)
        self.notify(f"channel {c.label(n)}: resuming, ramping up")

    def action_bench(self) -> None:
        self.app.push_screen(BenchScreen(self.controller))


class ChannelFaultScreen(FaultScreen):
    """A channel's fault: the fault screen, naming the channel; Enter goes back to the visit once the channel's
    current is at zero (to the visit's end screen once every channel has ended). X stops every other channel from
    here (confirmed with Y): under the `continue` policy they go on behind this screen."""

    BINDINGS: ClassVar[list[BindingType]] = [*FaultScreen.BINDINGS, *both_cases([Binding("x", "stop_all",
                                                                                          "Stop ALL")])]  # fmt: skip

    def action_stop_all(self) -> None:
        controller = self.visit

        def answer(yes: bool | None) -> None:
            if yes:
                controller.request("stop")
                self.notify("stopping every channel: ramping down", severity="warning")

        if controller.running:
            self.app.push_screen(ConfirmAction("STOP EVERY CHANNEL? Every current ramps down and the visit ends."),
                                 answer)  # fmt: skip

    def __init__(self, controller: VisitController, channel: int, fault: str | None, reason: str) -> None:
        super().__init__(_ChannelView(controller, channel), fault, reason)  # type: ignore[arg-type]
        self.visit, self.channel = controller, channel

    def redraw(self) -> None:
        if self.report is None and self.visit.runner.channels[self.channel - 1].report is not None:
            self.report = self.visit.runner.channels[self.channel - 1].report
        super().redraw()
        if self.report is not None:
            after = "the visit's summary" if not self.visit.running else "the visit (the other channels)"
            self.query_one("#fault-next", Static).update(f"Enter: back to {after}.")

    def heading(self, title: str) -> str:
        return f"CHANNEL {self.visit.label(self.channel).upper()}: {title}"

    def action_continue(self) -> None:
        if self.report is None:
            self.notify("The channel is still bringing its current to zero.", severity="warning")
            return
        self.app.pop_screen()
        others = [s for s in self.app.screen_stack if isinstance(s, ChannelFaultScreen)]
        if not self.visit.running and not others:
            self.app.show_visit_end()  # type: ignore[attr-defined]


class _ChannelView:
    """One channel of a visit, as the fault screen reads a session's controller."""

    def __init__(self, controller: VisitController, n: int) -> None:
        self.controller, self.n = controller, n

    def snapshot(self) -> Snapshot:
        return self.controller.snapshot(self.n)


class BenchScreen(ModalScreen[None]):
    """The bench: every device found on this PC (serial ports, local VISA), the visit's devices among them, and what
    each running channel is doing. Esc goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Back")]
    CSS = """
    BenchScreen { align: center middle; }
    BenchScreen > Vertical { width: 100; max-width: 100%; height: auto; max-height: 90%; border: thick $primary;
                             padding: 0 1; background: $surface; }
    """

    def __init__(self, controller: VisitController) -> None:
        super().__init__()
        self.controller = controller
        self.found: list[Any] | None = None
        self.note: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("The bench", classes="title")
            yield Static("", id="bench-channels")
            yield Static("looking for devices…", id="bench-devices", classes="hint")

    def on_mount(self) -> None:
        self.redraw()
        self.set_interval(0.5, self.redraw)
        self.discover()

    @work(thread=True, exclusive=True, group="bench")
    def discover(self) -> None:
        try:
            found, note = self.app.setup.discover()  # type: ignore[attr-defined]
        except Exception as exc:
            found, note = [], f"discovery failed: {exc}"
        self.app.call_from_thread(self._found, found, note)

    def _found(self, found: list[Any], note: str | None) -> None:
        self.found, self.note = found, note
        self.redraw()

    def redraw(self) -> None:
        c = self.controller
        running = [f"  channel {c.label(n)} on {c.device(n)}: {c.channel_text(n)}" for n in range(1, c.count + 1)]
        self.query_one("#bench-channels", Static).update("Channels of this visit:\n" + "\n".join(running))
        if self.found is None:
            return
        in_use = {c.device(n): n for n in range(1, c.count + 1)}
        lines = [f"  {item.address}  {item.kind}  {item.description}  "
                 + (f"channel {c.label(in_use[item.address])}" if item.address in in_use else "free")
                 for item in self.found]  # fmt: skip
        note = f" ({self.note})" if self.note else ""
        self.query_one("#bench-devices", Static).update(f"Devices found{note}:\n" + ("\n".join(lines) or "  none"))


class VisitEndScreen(EndScreen):
    """Every channel's result; the skin check after (one for the visit's sites, into every record); every chart
    PDF."""

    def __init__(self, controller: VisitController) -> None:
        assert controller.report is not None
        reports = controller.report.reports
        super().__init__(next((r for r in reports if r.record_id is not None), reports[0]))
        self.controller = controller
        self.reports: tuple[Report, ...] = reports
        self.saved: set[int] = set()  # the records the skin check after is in

    def compose(self) -> ComposeResult:
        from ionctl.treatment.report import result_text

        c = self.controller
        outcomes = sorted({r.result.outcome for r in self.reports})
        yield Static(f"Visit ended: {', '.join(o.upper() for o in outcomes)}", classes="title", id="outcome")
        with VerticalScroll(id="results"):
            for n, report in enumerate(self.reports, start=1):
                record = f"record {report.record_id}" if report.record_id is not None else "NO RECORD"
                box = Static(result_text(report), classes="box", id=f"result-{n}")
                box.border_title = f"Channel {c.label(n)} on {c.device(n)}, {record}"
                yield box
            said = c.messages.getvalue().strip()
            if said:
                yield Static(said, classes="error", id="record-messages")
            if any(r.record_id is not None for r in self.reports):
                yield Static("Skin check after, every site of the visit: N no · Y yes · I not inspected (and why) · "
                             "Ctrl+S records it in every record", classes="title")  # fmt: skip
                yield SkinCheckForm(AFTER, id="skin-after")
            else:
                yield Static("No record was written for this visit.", classes="error")
        yield Static("", id="end-status")
        yield Footer()

    def on_mount(self) -> None:
        forms = self.query(SkinCheckForm)
        if forms:
            forms.first().focus_first()

    def _records(self) -> list[int]:
        return [r.record_id for r in self.reports if r.record_id is not None]

    def action_save(self) -> None:
        from ionctl.console.controller import record_after
        from ionctl.records import Store

        records = [r for r in self._records() if r not in self.saved]
        if not records:
            return
        if self.console.flow.after_saved:
            self._status("The skin check after this visit is already recorded; Ctrl+R adds a correction.")
            return
        try:
            check = self.query_one(SkinCheckForm).check()
            with Store(self.console.setup.store_path) as store:
                for record_id in records:
                    record_after(store, record_id, self.console.operator_name, check)
                    self.saved.add(record_id)  # a retry after a failure writes only the records still without it
        except SkinCheckError as exc:
            self._status(f"Not recorded: {exc}", error=True)
            return
        except Exception as exc:
            done = f" (recorded in records {', '.join(map(str, sorted(self.saved)))}; Ctrl+S records the rest)"
            self._status(f"could not record the skin check: {exc}" + (done if self.saved else ""), error=True)
            return
        records = self._records()
        self.console.flow.after_saved = True
        noted = f"; adverse reaction noted: {check.reaction}" if check.reaction else "; no adverse reaction"
        self._status(f"Skin check after recorded in records {', '.join(map(str, records))}{noted}.")

    def action_export(self) -> None:
        if self._records():
            self._status("writing the chart PDFs…")
            self._export_all(self._records())

    @work(thread=True, exclusive=True, group="pdf")
    def _export_all(self, records: list[int]) -> None:
        from ionctl.records import Store
        from ionctl.records.narrative import visit_channels_in
        from ionctl.records.pdf import write_pdf

        setup = self.console.setup
        clinic_name = setup.config.bench.clinic_name if setup.config is not None else None
        paths = []
        try:
            with Store(setup.store_path) as store:
                head = store.chain_head()
                for record_id in records:
                    path = setup.export_dir / f"record-{record_id}.pdf"
                    record = store.get(record_id)
                    write_pdf(record, path, head=head, clinic_name=clinic_name, visit=visit_channels_in(store, record))
                    paths.append(str(path))
        except Exception as exc:
            self.app.call_from_thread(self._status, f"could not write the PDFs: {exc}", True)
            return
        self.app.call_from_thread(self._status, "Chart PDFs written: " + ", ".join(paths))

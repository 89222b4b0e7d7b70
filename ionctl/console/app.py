"""The console application: one technician's path through a session, one screen per step.

Nobody gets past the first screen without logging in (`ionctl.console.screens.login`): the person logged in
is the operator of every session started (the record names them) and the author of every skin check and
addendum written here. Only a technician or a supervisor may log in; an administrator or an auditor is told
that the console is for running sessions. (A configuration that is not approved shows why before any login:
nothing can be done there but quit.)

The idle lock: after the site's `[accounts] idle_lock_minutes` without a key or mouse event the console
locks, and the same person's password (or another person's login, which ends the first one's) opens it. The
lock is a screen pushed over whatever shows, never a pause: the session runs in its own thread
(`SessionController`), so its telemetry, its record and its supervision go on as before. It does not wait for
the current to stop, because an unattended console is when a passer-by could pause, resume or start a
session; instead it keeps what a running session must never lose: the lock shows the session's state and
current and takes S (stop, ramped) and A (abort), each confirmed by Y as on the run screen; Ctrl+C stops (and
a second time aborts) over any screen; a fault shows its fault screen over the lock, and the lock never
covers the fault screen of a running session. When the session ends under the lock, the end screen comes up
under it.

The app holds what the steps have chosen so far (`Flow`) and moves between the step screens
(`ionctl.console.screens`). A running session belongs to a `SessionController`; its events arrive here as
`SessionEvent` messages (posted from the session's thread, never waited for) and decide when the fault
screen takes over and when the end screen follows.

Ctrl-C means what it means under `ionctl run`: while a session runs, a ramped stop, and a second Ctrl-C an
abort (the fastest safe ramp); with no session running it leaves the console, as Ctrl-Q does. The console
never quits while a session runs: Ctrl-Q (or any other way to quit) asks for a ramped stop instead, and the
session ends on the end screen with its record closed.

SIGTERM asks for a ramped stop of a running session; the console stays up to show the ramp and leaves once
the record is closed. SIGHUP (the terminal closed, an SSH link dropped) asks for the same stop and leaves the
screen at once, nobody can see it. However the console ends (a signal, a crash, the terminal gone), a session
still running is asked for a ramped stop and waited for, up to its ramp down and `SETTLE_MARGIN_S`, so the
process does not exit while the current it started flows or before its record is closed.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events
from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message

from ionctl.console.controller import Finished, SessionController, StateChanged
from ionctl.console.setup import ConsoleSetup
from ionctl.console.visit import ChannelAlert, ChannelChanged, ChannelEnded, VisitController, VisitFinished

if TYPE_CHECKING:
    from ionctl.config import Preset
    from ionctl.config.people import Identity
    from ionctl.console.controller import ContactCheck
    from ionctl.console.screens.login import LockScreen
    from ionctl.drivers.base import CurrentSource
    from ionctl.records.skin import SkinCheck
    from ionctl.safety import Prescription
    from ionctl.treatment import CourseRuleRefused, Prepared, Report, TreatmentRequest
    from ionctl.treatment.visit import PreparedVisit


#: Host seconds the console waits at its end, beyond the session's ramp down, for a running session to end.
SETTLE_MARGIN_S = 120.0
#: Host seconds between the idle lock's looks at the time since the last key or mouse event.
IDLE_POLL_S = 1.0
#: The signals that end the console (a running session first ramps down); what each is called in the record.
ENDING_SIGNALS: dict[int, str] = {signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP, the terminal closed"}


class SessionEvent(Message):
    """A controller event (`StateChanged` or `Finished`; a visit's `ChannelChanged`, `ChannelAlert` or
    `VisitFinished`), delivered on the app's thread."""

    def __init__(self, event: StateChanged | Finished | ChannelChanged | ChannelAlert | ChannelEnded | VisitFinished,
                 ) -> None:  # fmt: skip
        super().__init__()
        self.event = event


@dataclass
class Flow:
    """The choices made so far for the session being prepared (or run)."""

    address: str | None = None
    source: CurrentSource | None = None
    patient_id: str = ""
    preset: Preset | None = None
    course_id: int | None = None  # the treatment course this session belongs to, if any
    prescription: Prescription | None = None
    contact: ContactCheck | None = None
    skin_before: SkinCheck | None = None
    controller: SessionController | None = None
    interrupts: int = 0  # Ctrl-C presses while the session runs: the first stops, the next abort
    after_saved: bool = False  # the skin check after the session is in the record
    override_reason: str | None = None  # a supervisor sets a course rule aside for this session, for this reason
    override_supervisor: tuple[str, str] | None = None  # their name and password: checked (then forgotten) at start
    refusal: str | None = None  # the course rule that refused the last start, for the override dialog
    chart: dict[str, Any] = field(default_factory=dict)  # the chart's details as typed (TreatmentRequest fields)
    # A visit (several devices marked on the device screen): channel n is visit[n - 1], opened as sources[n - 1],
    # with its treatment site and contact check. `source` and `address` then stay None.
    visit: list[str] = field(default_factory=list)
    sources: list[CurrentSource] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)
    contacts: list[ContactCheck | None] = field(default_factory=list)
    visit_controller: VisitController | None = None


CSS = """
Screen { padding: 0 1; }
.title { text-style: bold; margin: 1 0 0 0; }
.hint { color: $text-muted; }
.error { color: $error; text-style: bold; }
.ok { color: $success; text-style: bold; }
.box { border: round $primary; padding: 0 1; height: auto; }
.field { height: 1; margin: 0 0 1 0; }
.field Label { width: 34; padding: 0 1 0 0; }
.field Input { width: 44; height: 1; border: none; padding: 0 1; background: $boost; }
.field Input:focus { background: $accent 40%; }
.field Input:disabled { background: $panel; }
LockScreen { background: $surface; }
SkinCheckForm .field { margin: 0; }
Select { width: 80; }
FaultScreen { background: $surface; border: thick $error; }
FaultScreen #fault-title { text-style: bold; color: $error; }
ConfirmScreen .title { margin: 0; }
ConfirmScreen #summary { max-height: 70%; overflow-y: auto; }
ConfirmAction { align: center middle; }
ConfirmAction > Vertical { width: 70; height: auto; border: thick $error; padding: 1 2; background: $surface; }
"""


class ConsoleApp(App[None]):
    """`ionctl console`. Build it with a `ConsoleSetup`; `run()` it in a terminal, `run_test()` in tests."""

    TITLE = "ionctl console"
    CSS = CSS
    # No command palette: the keys of each step are the whole interface (and at 80 columns the key help needs
    # the room the palette's entry takes).
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        # priority: over an input's copy, over Textual's own "press ctrl+q to quit" note
        Binding("ctrl+c", "interrupt", "Stop, or quit", show=False, priority=True),
    ]

    def __init__(self, setup: ConsoleSetup) -> None:
        super().__init__()
        self.setup = setup
        self.flow = Flow(address=setup.device)
        self.leave_when_ended = False  # SIGTERM during a session: leave once its record is closed
        self._terminals: list[int] = []  # the standard streams that were a terminal at the start
        self._signals: list[int] = []  # installed on the event loop
        self.identity: Identity | None = None  # who is logged in (None: the login screen shows)
        self.lock_screen: LockScreen | None = None  # the idle lock, while it is on
        self.last_input = setup.clock()  # when the last key or mouse event came (the idle lock's clock)

    def on_mount(self) -> None:
        from ionctl.console.screens.login import LoginScreen
        from ionctl.console.screens.setup import BlockedScreen
        from ionctl.treatment.terminals import fd_isatty

        self._terminals = [fd for fd in (0, 1, 2) if fd_isatty(fd)]
        try:
            loop = asyncio.get_running_loop()
            for signum in ENDING_SIGNALS:
                loop.add_signal_handler(signum, self.on_ending_signal, signum)
                self._signals.append(signum)
        except (RuntimeError, ValueError, NotImplementedError):  # not the main thread, or no Unix signals
            pass
        self.push_screen(BlockedScreen() if self.setup.blocked else LoginScreen())
        self.set_interval(IDLE_POLL_S, self.lock_when_idle)

    async def on_unmount(self) -> None:
        """The console's end, however it came: a running session ramps down and its record closes first."""
        await asyncio.to_thread(self.settle)
        loop = asyncio.get_running_loop()
        for signum in self._signals:
            loop.remove_signal_handler(signum)
        self._signals = []

    def run(self, *args: Any, **kwargs: Any) -> None:
        """`App.run`, then `settle`: even when Textual ends without unmounting (its terminal gone)."""
        try:
            super().run(*args, **kwargs)
        finally:
            self.settle()

    # -- who is at the bench ------------------------------------------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        """Every key and mouse event from the terminal keeps the console awake (the idle lock's clock)."""
        if isinstance(event, (events.Key, events.MouseEvent, events.Paste)) and not event.is_forwarded:
            self.last_input = self.setup.clock()
        await super().on_event(event)

    @property
    def active(self) -> SessionController | VisitController | None:
        """The running (or ended) session's controller, or the visit's: what Ctrl-C, quitting, the idle lock and
        the signals act on."""
        return self.flow.visit_controller or self.flow.controller

    @property
    def operator_name(self) -> str:
        """The account name of the person logged in ("" before a login)."""
        return self.identity.name if self.identity is not None else ""

    def logged_in(self, identity: Identity) -> None:
        """The login screen's person goes on to the first step."""
        from ionctl.console.screens.setup import DeviceScreen

        self.identity, self.last_input = identity, self.setup.clock()
        self.notify(f"Logged in: {identity.account.full_name} ({identity.name}, {identity.role.value}).")
        self.switch_screen(DeviceScreen())

    def lock_when_idle(self) -> None:
        """Lock after the site's idle time without a key or mouse event; never over the fault screen of a
        running session (it says what to do now)."""
        from ionctl.console.screens.fault import FaultScreen
        from ionctl.console.screens.login import LockScreen

        if self.identity is None or self.lock_screen is not None:
            return
        if self.setup.clock() - self.last_input < self.setup.idle_lock_s:
            return
        controller = self.active
        if isinstance(self.screen, FaultScreen) and controller is not None and controller.running:
            return
        self.lock_screen = LockScreen(self.identity)
        self.push_screen(self.lock_screen)

    def unlocked(self, identity: Identity) -> None:
        """The lock's password was given: by the same person (back to where they were), or by another, whose
        login ends the first one's. A session running or ended stays on the screen (its record names who
        started it; what is written from now on names who is logged in); a session still being prepared is
        the first person's, so its steps start again."""
        previous, self.identity, self.last_input = self.identity, identity, self.setup.clock()
        lock, self.lock_screen = self.lock_screen, None
        if lock is not None and self.screen is lock:
            self.pop_screen()  # else it pops itself once the screen over it has gone (`LockScreen`)
        if previous is None or previous.name == identity.name:
            return
        self.notify(f"{identity.account.full_name} ({identity.name}) is logged in; {previous.name}'s login has "
                    "ended.", timeout=10)  # fmt: skip
        if self.active is None:
            while len(self.screen_stack) > 2:
                self.pop_screen()
            self.new_session()

    # -- signals and the end -------------------------------------------------------------------------------

    def on_ending_signal(self, signum: int) -> None:
        """SIGTERM or SIGHUP, on the app's thread (the event loop's handler): a running session is asked for a
        ramped stop, named by the signal in its record; SIGHUP leaves the screen now (nobody can see it: the
        session is waited for at the end), SIGTERM once the record is closed. No session: leave."""
        from ionctl.treatment.terminals import silence_lost_terminals

        if signum == signal.SIGHUP:
            silence_lost_terminals(self._terminals)  # a write to a hung-up terminal must not end the process
        controller = self.active
        if controller is None or not controller.running:
            self.close_source()
            self.exit()
            return
        controller.request("stop", reason=ENDING_SIGNALS[signum])
        if signum == signal.SIGHUP:
            self.exit()
        else:
            self.leave_when_ended = True
            self.notify("SIGTERM: ramping down and stopping; the console closes once the session has ended.",
                        severity="warning", timeout=30)  # fmt: skip

    def settle(self) -> None:
        """After the console: a session still running is asked for a ramped stop and waited for (up to its ramp
        down and SETTLE_MARGIN_S) until its record is closed. On the main thread, SIGINT, SIGTERM and SIGHUP
        meanwhile are acknowledged (a SIGINT aborts: the fastest safe ramp)."""
        controller = self.active
        if controller is None or not controller.running:
            return
        controller.request("stop", reason="the console closed")
        _tell("ionctl console: the console closed while a session ran: ramping the current down and stopping; "
              "the record is closed when it ends")  # fmt: skip
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():

            def acknowledge(signum: int, frame: object) -> None:
                from ionctl.treatment.terminals import silence_lost_terminals

                if signum == signal.SIGHUP:
                    silence_lost_terminals(self._terminals)
                controller.request("abort" if signum == signal.SIGINT else "stop")

            for signum in (signal.SIGINT, *ENDING_SIGNALS):
                previous[signum] = signal.signal(signum, acknowledge)
        try:
            report = controller.wait(controller.ramp_down_s + SETTLE_MARGIN_S)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if report is None:
            _tell("ionctl console: THE SESSION DID NOT END IN TIME; leaving: the device's watchdog takes the current "
                  "to zero (a SourceMeter: switch its output off at the instrument)")  # fmt: skip
        else:
            _tell(f"ionctl console: {controller.ended_text()}")

    # -- moving between steps -------------------------------------------------------------------------------

    def new_session(self) -> None:
        """Back to the first step with nothing chosen (the device closed)."""
        from ionctl.console.screens.setup import DeviceScreen

        self.close_source()
        self.flow = Flow(address=self.flow.address)
        self.switch_screen(DeviceScreen())

    def close_source(self) -> None:
        """Let go of the device (or a visit's devices) opened for the session being prepared."""
        source, self.flow.source = self.flow.source, None
        sources, self.flow.sources = self.flow.sources, []
        for each in [source, *sources] if source is not None else sources:
            try:
                each.close()
            except Exception as exc:  # closing must not stop the technician
                self.notify(f"while closing the device: {exc}", severity="warning")

    def start_session(self) -> None:
        """Prepare the session through `ionctl.treatment.prepare` (the course rules, a supervisor's override),
        hand it to a controller and show the run screen."""
        from ionctl.console.screens.run import RunScreen

        flow, setup = self.flow, self.setup
        if not self.may_start("a session"):
            return
        assert flow.source is not None and flow.prescription is not None and flow.address is not None
        prepared = self.prepare_session()
        if prepared is None:
            return
        address = flow.address
        controller = SessionController(
            flow.source, prepared.prescription, prepared.limits, store_path=setup.store_path,
            skin_check_before=flow.skin_before, config_sha256=setup.config_sha256 or None,
            course_id=flow.course_id, accept_no_watchdog=setup.accept_no_watchdog,
            reconnect=(lambda: setup.open_device(address)) if setup.reconnect else None,
            notify=lambda event: self.post_message(SessionEvent(event)),
            opening_check=prepared.opening_check(), override=prepared.override,
            operator=prepared.operator, anchor=prepared.config.accounts.anchor,
            clinic_site=prepared.config.path if prepared.config.bench.clinic else None, clinical=prepared.clinical,
        )  # fmt: skip
        flow.controller, flow.source = controller, None  # the controller owns (and closes) the device now
        self.switch_screen(RunScreen(controller))
        controller.start()

    def may_start(self, what: str) -> bool:
        """Whether `what` ("a session", "a visit") may start here now, after saying why not: an unapproved
        configuration, or nobody logged in who may run sessions."""
        from ionctl.config.people import Act

        if self.setup.blocked:
            self.notify(self.setup.blocked, severity="error")
            return False
        if self.identity is None or not self.identity.may(Act.RUN_SESSION):
            self.notify(f"Only a technician or a supervisor logged in may start {what}.", severity="error")
            return False
        return True

    def start_visit(self) -> None:
        """Prepare the visit through `ionctl.treatment.visit.prepare_visit` (each channel as a session is
        prepared, then the checks across channels), hand it to a visit controller and show the visit's run screen."""
        from ionctl.console.screens.visit import VisitRunScreen

        flow, setup = self.flow, self.setup
        if not self.may_start("a visit"):
            return
        assert flow.prescription is not None and len(flow.sources) == len(flow.visit) == len(flow.sites)
        prepared = self.prepare_visit()
        if prepared is None:
            return
        controller = VisitController(
            prepared, flow.sources, store_path=setup.store_path,
            reconnect=setup.open_device if setup.reconnect else None,
            notify=lambda event: self.post_message(SessionEvent(event)), skin_check_before=flow.skin_before,
        )  # fmt: skip
        flow.visit_controller, flow.sources = controller, []  # the controller owns (and closes) the devices now
        self.switch_screen(VisitRunScreen(controller))
        controller.start()

    def prepare_visit(self) -> PreparedVisit | None:
        """The visit prepared to start, or None after saying why not (which channel, or the visit as a whole)."""
        from dataclasses import replace

        from ionctl.config.people import PeopleError
        from ionctl.records import Store
        from ionctl.treatment import CourseRuleRefused, Refused
        from ionctl.treatment.visit import Channel, VisitRefused, VisitRequest, prepare_visit

        flow, identity = self.flow, self.identity
        assert identity is not None and self.setup.config is not None
        given, flow.override_supervisor, flow.refusal = flow.override_supervisor, None, None  # used once
        channels = tuple(Channel(replace(self.request(address), site=site))
                         for address, site in zip(flow.visit, flow.sites, strict=True))  # fmt: skip
        try:
            with Store(self.setup.store_path) as store:
                from ionctl.console.access import supervisor_of

                supervisor = supervisor_of(self.setup, store, *given) if given is not None else None
                prepared = prepare_visit(VisitRequest(channels), store=store, config=self.setup.config,
                                         operator=identity, supervisor=supervisor)  # fmt: skip
        except PeopleError as exc:
            self.notify(str(exc), severity="error", timeout=30)
            return None
        except VisitRefused as exc:
            cause = exc.__cause__
            if isinstance(cause, CourseRuleRefused):
                flow.override_reason, flow.refusal = None, cause.rule
                self.notify(f"channel {exc.channel}: {self.course_refusal(cause)}", severity="error", timeout=30)
            else:
                self.notify(exc.message, severity="error", timeout=30)
            return None
        except Refused as exc:
            self.notify(exc.message, severity="error", timeout=30)
            return None
        except Exception as exc:
            self.notify(f"the visit cannot be prepared: {exc}", severity="error", timeout=30)
            return None
        if any(p.prescription != flow.prescription for p in prepared.prepared):  # never run what was not shown
            self.notify("the prescription prepared is not the one confirmed; go back and check it", severity="error")
            return None
        return prepared

    def request(self, address: str | None = None) -> TreatmentRequest:
        """The session the technician's choices describe, as the application layer takes it."""
        from ionctl.treatment import TreatmentRequest

        flow, setup = self.flow, self.setup
        rx, preset = flow.prescription, flow.preset
        device = address or flow.address
        assert rx is not None and device is not None
        return TreatmentRequest(
            device=device, operator=self.operator_name, patient=flow.patient_id,
            preset=preset.name if preset is not None else None, drug=None if preset is not None else rx.drug,
            polarity=None if preset is not None else rx.polarity.value, electrode_area_cm2=rx.electrode_area_cm2,
            current_ma=rx.current_ma, dose_ma_min=rx.dose_ma_min, duration_min=rx.duration_min,
            ramp_up_s=rx.ramp_up_s, ramp_down_s=rx.ramp_down_s, course_id=flow.course_id,
            override_reason=flow.override_reason, accept_no_watchdog=setup.accept_no_watchdog,
            db=str(setup.store_path) if setup.store_path is not None else None, **flow.chart,
        )  # fmt: skip

    def prepare_session(self) -> Prepared | None:
        """The session prepared to start, or None after saying why not: a course rule (with how a supervisor
        overrides it, or why the override was refused), or anything else `prepare` refuses."""
        from ionctl.config.people import PeopleError
        from ionctl.console.access import prepare_as, supervisor_of
        from ionctl.records import Store
        from ionctl.treatment import CourseRuleRefused, Refused

        flow, identity = self.flow, self.identity
        assert identity is not None
        given, flow.override_supervisor, flow.refusal = flow.override_supervisor, None, None  # used once
        try:
            with Store(self.setup.store_path) as store:
                supervisor = supervisor_of(self.setup, store, *given) if given is not None else None
                prepared = prepare_as(self.request(), store=store, config=self.setup.config, operator=identity,
                                      supervisor=supervisor)  # fmt: skip
        except PeopleError as exc:  # the person logged in may not (a role, a login the store refuses)
            self.notify(str(exc), severity="error", timeout=30)
            return None
        except CourseRuleRefused as exc:
            flow.override_reason, flow.refusal = None, exc.rule
            self.notify(self.course_refusal(exc), severity="error", timeout=30)
            return None
        except Refused as exc:
            self.notify(exc.message, severity="error", timeout=30)
            return None
        except Exception as exc:
            self.notify(f"course {flow.course_id} cannot be checked: {exc}", severity="error", timeout=30)
            return None
        if prepared.prescription != flow.prescription:  # never run what the confirmation did not show
            self.notify("the prescription prepared is not the one confirmed; go back and check it", severity="error")
            return None
        return prepared

    def course_refusal(self, refused: CourseRuleRefused) -> str:
        """Why the course rules do not allow this session now (the rule and its numbers), and how a supervisor
        overrides it here, or why the override was refused: a course's session by its course's rules; one
        outside any course by those of a course of the patient's of the same preset or drug in progress."""
        if refused.denied is not None:
            return refused.message
        override = "a supervisor may override it: press O (reason, the supervisor's name and password)"
        if self.flow.course_id is None:
            return f"{refused.rule} (choose that course for this session); {override}"
        return f"{refused.rule}; {override}"

    def ask_override(self, rule: str, then: Callable[[], object]) -> None:
        """The supervisor override dialog for `rule`; with a reason and a supervisor's name and password given,
        `then()` (the password is checked, and the override signed, when the session is prepared to start)."""
        from ionctl.console.screens.override import OverrideScreen

        def given(answer: tuple[str, str, str] | None) -> None:
            if answer is None:
                return
            reason, name, password = answer
            self.flow.override_reason, self.flow.override_supervisor = reason, (name, password)
            then()

        self.push_screen(OverrideScreen(rule), given)

    def on_session_event(self, message: SessionEvent) -> None:
        from ionctl.console.screens.fault import FaultScreen

        event = message.event
        if isinstance(event, (ChannelChanged, ChannelAlert, ChannelEnded, VisitFinished)):
            self.on_visit_event(event)
            return
        controller = self.flow.controller
        if controller is None:
            return
        shown = self.screen if isinstance(self.screen, FaultScreen) else None
        if isinstance(event, StateChanged):
            if event.change.state == "fault" and shown is None:
                self.push_screen(FaultScreen(controller, event.fault, event.change.reason))
            return
        result = event.report.result
        if self.leave_when_ended:  # SIGTERM: the record is closed, the console goes
            self.exit()
            return
        if shown is not None:
            shown.finished(event.report)
        elif result.outcome == "fault" or result.alarm:
            screen = FaultScreen(controller, result.fault, result.message)
            self.push_screen(screen)
            screen.finished(event.report)
        else:
            self.show_end(event.report)

    def on_visit_event(self, event: ChannelChanged | ChannelAlert | ChannelEnded | VisitFinished) -> None:
        """A channel's fault takes over the screen naming the channel (the others go on, or ramp down, as the
        visit policy says, and show again once it is dismissed), as does a channel that ended on an internal error
        or with the alarm raised (its current may still flow); the visit's end shows the visit's end screen."""
        from ionctl.console.screens.visit import ChannelFaultScreen

        controller = self.flow.visit_controller
        if controller is None:
            return
        if isinstance(event, ChannelAlert):
            self.notify(event.text, severity="error", timeout=30)
            return
        if isinstance(event, ChannelChanged):
            if event.change.state == "fault":
                self.push_screen(ChannelFaultScreen(controller, event.channel, event.fault, event.change.reason))
            return
        if isinstance(event, ChannelEnded):
            result, shown = event.result, self._channel_faults()
            if (result.alarm or result.outcome == "fault") and event.channel not in shown:
                self.push_screen(ChannelFaultScreen(controller, event.channel, result.fault or "alarm",
                                                    result.message))  # fmt: skip
            return
        if self.leave_when_ended:  # SIGTERM: every record is closed, the console goes
            self.exit()
            return
        for screen in self.screen_stack:
            if isinstance(screen, ChannelFaultScreen):
                screen.finished(event.report.reports[screen.channel - 1])
        if not self._channel_faults():
            self.show_visit_end()

    def _channel_faults(self) -> set[int]:
        """The channels whose fault screen is on the screen stack."""
        from ionctl.console.screens.visit import ChannelFaultScreen

        return {s.channel for s in self.screen_stack if isinstance(s, ChannelFaultScreen)}

    def show_visit_end(self) -> None:
        """The visit's end screen, in place of its run screen and anything over it."""
        from ionctl.console.screens.login import LockScreen
        from ionctl.console.screens.visit import VisitEndScreen


        controller = self.flow.visit_controller
        assert controller is not None and controller.report is not None
        if any(isinstance(s, VisitEndScreen) for s in self.screen_stack):  # shown already: keep what is typed there
            return
        while len(self.screen_stack) > 2:
            self.pop_screen()
        self.switch_screen(VisitEndScreen(controller))
        if self.lock_screen is not None and self.identity is not None:
            self.lock_screen = LockScreen(self.identity)
            self.push_screen(self.lock_screen)

    def show_end(self, report: Report) -> None:
        """The end screen, in place of the run screen and anything over it (the fault screen, a dialog)."""
        from ionctl.console.screens.end import EndScreen
        from ionctl.console.screens.login import LockScreen

        while len(self.screen_stack) > 2:
            self.pop_screen()
        self.switch_screen(EndScreen(report))
        if self.lock_screen is not None and self.identity is not None:  # the lock stays on, over the end screen
            self.lock_screen = LockScreen(self.identity)
            self.push_screen(self.lock_screen)

    async def action_quit(self) -> None:
        """Leave the console; while a session runs, ask for a ramped stop instead (the console stays open)."""
        controller = self.active
        if controller is not None and controller.running:
            self.ask_to_stop(controller)
            return
        self.close_source()
        self.exit()

    async def action_interrupt(self) -> None:
        """Ctrl-C: a ramped stop of the running session, a second one an abort (as `ionctl run` does with
        SIGINT); with no session running, leave the console. Over a visit: every channel."""
        controller = self.active
        if controller is None or not controller.running:
            await self.action_quit()
            return
        self.flow.interrupts += 1
        if self.flow.interrupts == 1:
            controller.request("stop")
            self.notify("Ctrl-C: ramping down and stopping (Ctrl-C again to abort).", severity="warning", timeout=10)
        else:
            controller.request("abort")
            self.notify("Ctrl-C again: ABORTING, fastest safe ramp to zero.", severity="error", timeout=10)

    def ask_to_stop(self, controller: SessionController | VisitController) -> None:
        """Quitting while a session runs: offer the ramped stop (only Y confirms); the console stays open."""
        from ionctl.console.screens.run import ConfirmAction

        if isinstance(self.screen, ConfirmAction):  # a question is already open: answer that one first
            self.notify("A session is running: answer the question first.", severity="warning")
            return

        def answer(yes: bool | None) -> None:
            if yes and controller.running:
                controller.request("stop")
                self.notify("stopping: ramping down; the console can be closed once the session has ended")
            elif controller.running:
                self.notify("The session goes on: the console does not close while it runs.", severity="warning")

        if isinstance(controller, VisitController):
            question = ("A visit is running: the console cannot close while it runs.\nSTOP EVERY CHANNEL now? Every "
                        "current ramps down and the visit ends.")  # fmt: skip
        else:
            question = ("A session is running: the console cannot close while it runs.\nSTOP the session now? The "
                        "current ramps down and the session ends.")  # fmt: skip
        self.push_screen(ConfirmAction(question), answer)


def _tell(text: str) -> None:
    """A line on stderr that cannot fail (the terminal may be gone)."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass

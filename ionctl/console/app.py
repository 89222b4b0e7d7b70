"""The console application: one technician's path through a session, one screen per step.

The app holds what the steps have chosen so far (`Flow`) and moves between the step screens
(`ionctl.console.screens`). A running session belongs to a `SessionController`; its events arrive here as
`SessionEvent` messages (posted from the session's thread, never waited for) and decide when the fault
screen takes over and when the end screen follows. The app will not quit while a session runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message

from ionctl.console.controller import Finished, SessionController, StateChanged
from ionctl.console.setup import ConsoleSetup

if TYPE_CHECKING:
    from ionctl.config import Preset
    from ionctl.console.controller import ContactCheck
    from ionctl.drivers.base import CurrentSource
    from ionctl.records.skin import SkinCheck
    from ionctl.run import Report
    from ionctl.safety import Prescription


class SessionEvent(Message):
    """A controller event (`StateChanged` or `Finished`), delivered on the app's thread."""

    def __init__(self, event: StateChanged | Finished) -> None:
        super().__init__()
        self.event = event


@dataclass
class Flow:
    """The choices made so far for the session being prepared (or run)."""

    address: str | None = None
    source: CurrentSource | None = None
    patient_id: str = ""
    operator_id: str = ""
    preset: Preset | None = None
    course_id: int | None = None  # the treatment course this session belongs to, if any
    prescription: Prescription | None = None
    contact: ContactCheck | None = None
    skin_before: SkinCheck | None = None
    controller: SessionController | None = None
    after_saved: bool = False  # the skin check after the session is in the record


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
Select { width: 80; }
#current { width: auto; }
#readout { height: auto; margin: 1 0; }
#readout > Vertical { height: auto; width: 1fr; padding: 0 2; }
#trace { height: 4; margin: 0 0 1 0; }
#trace-scale { margin: 1 0 0 0; }
#state { text-style: bold; }
#progress { margin: 1 0 0 0; }
FaultScreen { background: $surface; border: thick $error; }
FaultScreen #fault-title { text-style: bold; color: $error; }
ConfirmAction { align: center middle; }
ConfirmAction > Vertical { width: 70; height: auto; border: thick $error; padding: 1 2; background: $surface; }
"""


class ConsoleApp(App[None]):
    """`ionctl console`. Build it with a `ConsoleSetup`; `run()` it in a terminal, `run_test()` in tests."""

    TITLE = "ionctl console"
    CSS = CSS
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(self, setup: ConsoleSetup) -> None:
        super().__init__()
        self.setup = setup
        self.flow = Flow(address=setup.device)

    def on_mount(self) -> None:
        from ionctl.console.screens.setup import BlockedScreen, DeviceScreen

        self.push_screen(BlockedScreen() if self.setup.blocked else DeviceScreen())

    # -- moving between steps -------------------------------------------------------------------------------

    def new_session(self) -> None:
        """Back to the first step with nothing chosen (the device closed)."""
        from ionctl.console.screens.setup import DeviceScreen

        self.close_source()
        self.flow = Flow(address=self.flow.address)
        self.switch_screen(DeviceScreen())

    def close_source(self) -> None:
        source, self.flow.source = self.flow.source, None
        if source is not None:
            try:
                source.close()
            except Exception as exc:  # closing must not stop the technician
                self.notify(f"while closing the device: {exc}", severity="warning")

    def start_session(self) -> None:
        """Hand the prepared session to a controller and show the run screen."""
        from ionctl.console.screens.run import RunScreen

        flow, setup = self.flow, self.setup
        if setup.blocked:
            self.notify(setup.blocked, severity="error")
            return
        assert flow.source is not None and flow.prescription is not None and flow.address is not None
        refusal = self.course_refusal(flow.course_id)
        if refusal is not None:
            self.notify(refusal, severity="error", timeout=30)
            return
        address = flow.address
        from ionctl.run import opening_check

        check = opening_check(setup.config, flow.course_id, course_rules=True) if setup.config is not None else None
        controller = SessionController(
            flow.source, flow.prescription, setup.limits, store_path=setup.store_path,
            skin_check_before=flow.skin_before, config_sha256=setup.config_sha256 or None,
            course_id=flow.course_id, accept_no_watchdog=setup.accept_no_watchdog,
            reconnect=(lambda: setup.open_device(address)) if setup.reconnect else None,
            notify=lambda event: self.post_message(SessionEvent(event)), monotonic=setup.monotonic,
            opening_check=check,
        )  # fmt: skip
        flow.controller, flow.source = controller, None  # the controller owns (and closes) the device now
        self.switch_screen(RunScreen(controller))
        controller.start()

    def course_refusal(self, course_id: int | None) -> str | None:
        """Why the course does not allow a session now (its rule and numbers), or None."""
        if course_id is None:
            return None
        from ionctl.courses import CourseRefused, check_next
        from ionctl.records import Store

        try:
            with Store(self.setup.store_path) as store:
                check_next(store, course_id)
        except CourseRefused as exc:
            return f"{exc}; a supervisor override is given with `ionctl run --course {course_id} --supervisor-override`"
        except Exception as exc:
            return f"course {course_id} cannot be checked: {exc}"
        return None

    def on_session_event(self, message: SessionEvent) -> None:
        from ionctl.console.screens.fault import FaultScreen

        controller = self.flow.controller
        if controller is None:
            return
        event = message.event
        shown = self.screen if isinstance(self.screen, FaultScreen) else None
        if isinstance(event, StateChanged):
            if event.change.state == "fault" and shown is None:
                self.push_screen(FaultScreen(controller, event.fault, event.change.reason))
            return
        result = event.report.result
        if shown is not None:
            shown.finished(event.report)
        elif result.outcome == "fault" or result.alarm:
            screen = FaultScreen(controller, result.fault, result.message)
            self.push_screen(screen)
            screen.finished(event.report)
        else:
            self.show_end(event.report)

    def show_end(self, report: Report) -> None:
        """The end screen, in place of the run screen and anything over it (the fault screen, a dialog)."""
        from ionctl.console.screens.end import EndScreen

        while len(self.screen_stack) > 2:
            self.pop_screen()
        self.switch_screen(EndScreen(report))

    async def action_quit(self) -> None:
        controller = self.flow.controller
        if controller is not None and controller.running:
            self.notify("A session is running: stop it (S) or abort it (A) first.", severity="error")
            return
        self.close_source()
        self.exit()

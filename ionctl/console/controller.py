"""The console's session controller: runs one session in a thread of its own through the same
`ionctl.treatment.SessionRunner` as `ionctl run` (the same `Recorder` writes the record as the session runs),
and hands the UI what it needs to draw.

No Textual here, so the logic is testable without a screen. The session never waits for the UI: each sample
goes to the record and into a snapshot under a lock (the UI polls `snapshot()` when it redraws and so drops
frames, never samples); state changes and the end are announced through `notify`, which must not block
(the app passes its thread-safe `post_message`). Operator requests go to `Session.request`: the UI never
commands the device during a session.

Before the session, `probe_contact` runs the device's own contact probe for the contact-check screen (the
session probes again before it starts, and refuses on its own if the contact went bad meanwhile).
"""

from __future__ import annotations

import collections
import io
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ionctl.drivers.base import ContactReading, CurrentSource, DeviceError, DeviceFault, Telemetry
from ionctl.safety import (
    Prescription,
    PrescriptionRefused,
    SiteLimits,
    Violation,
    device_limits,
    validate,
    violations,
)
from ionctl.safety.validation import CatalogEntry
from ionctl.treatment.report import Interrupts, Report, not_started

if TYPE_CHECKING:
    from ionctl.config.people import Identity
    from ionctl.core.session import Session, SessionResult, StateChange
    from ionctl.records import Store
    from ionctl.records.clinical import ClinicalDetails
    from ionctl.records.skin import SkinCheck
    from ionctl.treatment.prepare import Override

#: Recent current samples kept for the live trace (at 10 Hz, the last 30 device seconds).
TRACE_LEN = 300


def violations_of(
    prescription: Prescription, limits: SiteLimits, catalog: Mapping[str, CatalogEntry] | None = None
) -> tuple[Violation, ...]:
    """Every reason the prescription may not be delivered here (empty: it may): `ionctl.safety.violations`,
    the one list `ionctl run` refuses with, against the site's limits and drug catalog."""
    return violations(prescription, limits, catalog=catalog)


# -- the contact check -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactCheck:
    """A contact probe's reading against the site's contact window, or why there is none."""

    reading: ContactReading | None
    low_ohm: float
    high_ohm: float
    error: str | None = None

    @property
    def impedance_ohm(self) -> float | None:
        return self.reading.impedance_ohm if self.reading is not None else None

    @property
    def ok(self) -> bool:
        z = self.impedance_ohm
        return self.error is None and z is not None and self.low_ohm <= z <= self.high_ohm

    def text(self) -> str:
        window = f"{self.low_ohm:.0f}–{self.high_ohm:.0f} Ω (min/max_contact_impedance_ohm)"
        if self.error is not None:
            return f"contact check failed: {self.error}"
        z = self.impedance_ohm
        if z is None:
            return f"no current flowed (open circuit); the window is {window}"
        verdict = "within" if self.ok else "OUTSIDE"
        return f"impedance {z:.0f} Ω, {verdict} the window {window}"


def probe_contact(source: CurrentSource, prescription: Prescription, limits: SiteLimits) -> ContactCheck:
    """Run the device's contact probe (the session's probe current and time) with this session's limits and
    polarity, then reset the device: the session starts from a fresh device. Never raises for the device."""
    from ionctl.core.session import PROBE_MA, PROBE_S

    site = limits.for_class(prescription.protocol_class)
    low, high = site.min_contact_impedance_ohm, site.max_contact_impedance_ohm
    try:
        validated = validate(prescription, limits, source.identity)
        _fresh(source)
        source.configure(device_limits(validated))
        source.set_polarity(prescription.polarity)
        reading = source.check_contact(PROBE_MA, PROBE_S)
        source.reset()
    except PrescriptionRefused as exc:
        return ContactCheck(None, low, high, f"the device cannot deliver this prescription: {exc}")
    except DeviceError as exc:
        return ContactCheck(None, low, high, str(exc))
    return ContactCheck(reading, low, high)


def _fresh(source: CurrentSource) -> None:
    """Reset the device, clearing a fault latched before (with the output at zero), as the session does."""
    try:
        source.reset()
    except DeviceFault:
        source.clear_fault()
        source.reset()


# -- what the UI draws -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The session as of its latest sample: what the run screen shows."""

    state: str
    sample: Telemetry | None
    delivered_ma_min: float
    planned_ma_min: float
    time_left_s: float
    trace_ma: tuple[float, ...]
    samples: int  # samples seen so far
    fault: str | None
    reason: str

    def text(self) -> str:
        """Its state, current and dose in a phrase ("DELIVERING, 2.00 mA, dose 3.42 of 7.00 mA·min")."""
        from ionctl.console.screens.run import STATE_TEXT

        current = f"{self.sample.measured_ma:.2f} mA" if self.sample is not None else "— mA"
        return (f"{STATE_TEXT.get(self.state, self.state)}, {current}, dose {self.delivered_ma_min:.2f} of "
                f"{self.planned_ma_min:.2f} mA·min")  # fmt: skip


@dataclass(frozen=True)
class StateChanged:
    """Posted to the UI at each state change of the session (from the session's thread)."""

    change: StateChange
    fault: str | None


@dataclass(frozen=True)
class Finished:
    """Posted to the UI once the session has ended and its record is closed."""

    report: Report


Notify = Callable[[StateChanged | Finished], object]


@dataclass
class _Live:
    state: str = "disconnected"
    sample: Telemetry | None = None
    delivered_ma_min: float = 0.0
    time_left_s: float = float("inf")
    samples: int = 0
    fault: str | None = None
    reason: str = ""
    trace: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=TRACE_LEN))

    def take(self, session: Session, sample: Telemetry, left_s: float) -> None:
        """A sample, and the session's dose and time left with it (under the owner's lock)."""
        self.sample, self.samples = sample, self.samples + 1
        self.delivered_ma_min = session.meter.delivered_ma_min
        self.time_left_s = left_s
        self.trace.append(sample.measured_ma)

    def snapshot(self, planned_ma_min: float) -> Snapshot:
        return Snapshot(self.state, self.sample, self.delivered_ma_min, planned_ma_min, self.time_left_s,
                        tuple(self.trace), self.samples, self.fault, self.reason)  # fmt: skip


def time_left_s(session: Session, sample: Telemetry) -> float:
    """The session's time left at `sample`; infinite when it cannot say (a display figure never breaks a session)."""
    try:
        return session.time_left_s(sample)
    except Exception:
        return float("inf")


class SessionController:
    """One session on an open `source`, run in a thread; the record written to the store at `store_path`.

    `skin_check_before` (the typed skin check) goes into the record as an addendum once it is
    opened; the record's opening names the configuration (`config_sha256`) and the course (`course_id`), as
    `ionctl run` does. The session reads its host clock from the source.
    An `override` (a course rule a supervisor set aside) is recorded against the session's record once it is
    open; `opening_check` then leaves the course rules out (`Prepared.opening_check`). The logged-in `operator`
    signs the closed record "performed" and the site's `anchor` gets a checkpoint, as in `ionctl run`. The record's
    opening holds the chart details (`clinical`: the treatment site, the preparation), as `ionctl run`'s does."""

    def __init__(
        self,
        source: CurrentSource,
        prescription: Prescription,
        limits: SiteLimits,
        *,
        store_path: str | Path | None,
        skin_check_before: SkinCheck | None = None,
        config_sha256: str | None = None,
        course_id: int | None = None,
        reconnect: Callable[[], CurrentSource] | None = None,
        accept_no_watchdog: bool = False,
        notify: Notify | None = None,
        opening_check: Callable[[Store], None] | None = None,
        override: Override | None = None,
        operator: Identity | None = None,
        anchor: Path | None = None,
        clinic_site: Path | None = None,
        clinical: ClinicalDetails | None = None,
    ) -> None:
        self.source = source
        self.prescription = prescription
        self.limits = limits
        self.store_path = store_path
        self.skin_check_before = skin_check_before
        self.config_sha256 = config_sha256
        self.course_id = course_id
        self.reconnect = reconnect
        self.accept_no_watchdog = accept_no_watchdog
        self.notify = notify
        self.opening_check = opening_check  # checked as the record opens (`ionctl.treatment.opening_check`)
        self.override = override
        self.operator, self.anchor = operator, anchor  # who signs the closed record; where its checkpoint goes
        self.clinic_site = clinic_site  # a site file with [clinic]: the closed record is pushed by a detached sync
        self.clinical = clinical  # the chart details the record's opening holds (treatment site, ...)
        self.messages = io.StringIO()  # what the recorder says about the record (failures), for the end screen
        self.report: Report | None = None
        self.session: Session | None = None
        self._lock = threading.Lock()
        self._live = _Live()
        self._pending: list[str] = []  # requests made before the session object exists
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._signalled: list[str] = []  # what stopped the session when not a key: a signal, the console closing

    # -- the UI's side ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Run the session in its own thread (once)."""
        if self._thread is not None:
            raise RuntimeError("this session was started already")
        self._thread = threading.Thread(target=self._run, name="ionctl-console-session", daemon=True)
        self._thread.start()

    def request(self, action: str, reason: str | None = None) -> None:
        """Ask the session to `pause`, `resume`, `stop` (ramped) or `abort` (fastest safe ramp). A `reason`
        (`SIGHUP, the terminal closed`) names what asked in the message of the record of a session it stopped."""
        with self._lock:
            if reason is not None:
                self._signalled.append(reason)
            session = self.session
            if session is None:
                self._pending.append(action)
                return
        session.request(action)

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    def wait(self, timeout_s: float | None = None) -> Report | None:
        """The report once the session has ended (None if it has not within `timeout_s`)."""
        self._done.wait(timeout_s)
        return self.report

    @property
    def record_id(self) -> int | None:
        return self.report.record_id if self.report is not None else None

    @property
    def ramp_down_s(self) -> float:
        """How long a ramped stop takes at most."""
        return self.prescription.ramp_down_s

    def describe(self) -> str:
        """The session's state, current and dose in a line (the idle lock shows it)."""
        return f"A session is running: {self.snapshot().text()}."

    def ended_text(self) -> str:
        """How the session ended (after `wait`)."""
        if self.report is None:
            return "the session has not ended"
        return f"session ended: {self.report.result.outcome}; record {self.report.record_id} closed"

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._live.snapshot(self.prescription.planned_dose_ma_min)

    # -- the session's thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        from ionctl.records import Store
        from ionctl.treatment.runner import SessionRunner

        report: Report | None = None
        try:
            store = Store(self.store_path)
        except Exception as exc:
            self._close_sources()
            self._end(self._not_started(f"not started: cannot open the record store: {exc}"))
            return
        try:
            runner = SessionRunner(
                self.prescription, self.limits, lambda: self.source, store=store, db=str(store.path),
                messages=self.messages, say=self._say,
                config_sha256=self.config_sha256, course_id=self.course_id, override=self.override,
                opening_check=self.opening_check, skin_check_before=self.skin_check_before, reconnect=self.reconnect,
                accept_no_watchdog=self.accept_no_watchdog, display=self, watch=self._watch,
                operator=self.operator, anchor=self.anchor, clinic_site=self.clinic_site, clinical=self.clinical,
            )  # fmt: skip
            report = runner.run()
        finally:
            self._close_sources()  # when the session never started; closing again is harmless
            store.close()
            self._end(report)

    def _say(self, text: str) -> None:
        self.messages.write(text + "\n")

    @contextmanager
    def _watch(self, session: Session) -> Iterator[Interrupts]:
        """While the session runs: the requests made before it existed go to it; what stopped it when not a key
        (a signal, the console closing) names itself in its record."""
        with self._lock:
            self.session, pending, self._pending = session, self._pending, []
        for action in pending:
            session.request(action)
        interrupts = Interrupts()
        try:
            yield interrupts
        finally:
            with self._lock:
                interrupts.reasons = list(self._signalled)

    # -- `ionctl.treatment.Display`: called from the session's thread ---------------------------------------

    def on_sample(self, session: Session, sample: Telemetry) -> None:
        self._on_sample(session, sample)

    def on_state(self, session: Session, change: StateChange) -> None:
        self._on_state(session, change)

    def ended(self, result: SessionResult) -> None:
        if result.fault == "internal":  # abandoned on an internal error: the screen says so at once
            with self._lock:
                self._live.state, self._live.fault, self._live.reason = "fault", "internal", result.message

    def _on_sample(self, session: Session, sample: Telemetry) -> None:
        left = time_left_s(session, sample)
        with self._lock:
            self._live.take(session, sample, left)

    def _on_state(self, session: Session, change: StateChange) -> None:
        fault = session.result.fault if change.state == "fault" else None
        with self._lock:
            self._live.state, self._live.reason = change.state, change.reason
            if fault is not None:
                self._live.fault = fault
        self._tell(StateChanged(change, fault))

    def _not_started(self, message: str) -> Report:
        db = str(self.store_path) if self.store_path is not None else None
        return not_started(message, db=db, prescription=self.prescription)

    def _close_sources(self) -> str | None:
        """Close the device (and a reconnected one; closing is idempotent). Returns why the output could not be
        confirmed off (a SourceMeter's `unconfirmed_off`), else None."""
        session, unconfirmed = self.session, None
        for source in {id(s): s for s in (self.source, session.device if session else None) if s}.values():
            try:
                source.close()
            except Exception as exc:  # closing must not hide the result
                self.messages.write(f"while closing the device: {exc}\n")
            unconfirmed = getattr(source, "unconfirmed_off", None) or unconfirmed
        return unconfirmed

    def _end(self, report: Report | None) -> None:
        if report is None:  # only when the record could not be opened, reported above
            report = self._not_started(self.messages.getvalue().strip() or "not started")
        self.report = report
        with self._lock:
            self._live.state = report.result.outcome
            self._live.fault = report.result.fault
            self._live.reason = report.result.message
        self._done.set()
        self._tell(Finished(report))

    def _tell(self, event: StateChanged | Finished) -> None:
        if self.notify is not None:
            try:
                self.notify(event)
            except Exception:  # the UI went away: the session goes on regardless
                pass


def record_after(store: Store, record_id: int, operator: str, check: SkinCheck) -> int:
    """The skin check after the session (and the adverse reaction it describes, if any) as an addendum to the
    record; its addendum number. The same store call as `ionctl records addendum --skin-check`."""
    from ionctl.records.skin import SKIN_CHECK_AFTER, Addendum

    return store.append_addendum(record_id, operator, Addendum(SKIN_CHECK_AFTER, skin=check))

"""One prepared session from the device's opening to its closed record: `SessionRunner.run()` -> `Report`.

Both front ends run a session here, and every way out of one is handled in this one place: the record
that cannot be opened, an override that cannot be recorded, a device that cannot be reached, a session
abandoned on an internal error (its record closed with the dose of its own samples), a source whose
output cannot be confirmed off (the alarm), and the record that fails while the session runs (stopped with
a ramp, `record_failed`). Once the record is closed its authenticated operator signs it "performed" and the
site's anchor gets a checkpoint (`ionctl.treatment.recorder.sign_off`: never before the output is off and the
session's lock released, never for longer than a few seconds, never an exception). What the front end draws
comes in through `Display`; what it does with the operator's signals through `watch`. docs/SESSION.md
describes the session itself.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from ionctl.treatment.report import Interrupts, Report, not_started, report_of

if TYPE_CHECKING:
    from pathlib import Path

    from ionctl.config.people import Identity
    from ionctl.core.session import Session, SessionResult, StateChange
    from ionctl.drivers.base import CurrentSource, Telemetry
    from ionctl.records import Store
    from ionctl.records.clinical import ClinicalDetails
    from ionctl.records.skin import SkinCheck
    from ionctl.safety import Prescription, SiteLimits
    from ionctl.treatment.prepare import Override, Prepared
    from ionctl.treatment.recorder import Recorder


class Display(Protocol):
    """What a front end shows of a running session. Called from the session's thread; must not block, and a
    failure in it never ends the session (the runner does not catch it: displays catch their own)."""

    def on_sample(self, session: Session, sample: Telemetry) -> None: ...

    def on_state(self, session: Session, change: StateChange) -> None: ...

    def ended(self, result: SessionResult) -> None:
        """The session is over and its sources closed; the record is closed next."""


Watch = Callable[["Session"], AbstractContextManager[Interrupts]]


@contextmanager
def no_watch(session: Session) -> Iterator[Interrupts]:
    """No operator signals: nothing interrupts the session but its own requests."""
    yield Interrupts()


@dataclass
class SessionRunner:
    """Runs one checked `prescription` on the source `open_source()` opens, written into `store` (None: no record).
    `operator` (the authenticated person the record names) signs the closed record; `anchor` is the site's
    directory for checkpoints of the chain head. `messages` receives what the record has to say (a failed
    write, a sign-off that failed); `say` the runner's own notices (an internal error, a device that would not
    close)."""

    prescription: Prescription
    limits: SiteLimits
    open_source: Callable[[], CurrentSource]
    store: Store | None = None
    db: str | None = None  # the store as the report names it
    device: str = ""  # the device's address, as notices name it
    messages: TextIO | None = None
    say: Callable[[str], None] | None = None
    config_sha256: str | None = None
    course_id: int | None = None
    course_ref: str | None = None  # another bench's course ("bench-a/3")
    override: Override | None = None
    opening_check: Callable[[Store], None] | None = None
    skin_check_before: SkinCheck | None = None  # recorded as an addendum once the record is open
    reconnect: Callable[[], CurrentSource] | None = None
    accept_no_watchdog: bool = False
    display: Display | None = None
    watch: Watch = no_watch
    operator: Identity | None = None
    anchor: Path | None = None
    clinic_site: Path | None = None  # a site file with [clinic]: a detached sync pushes the record once closed
    clinical: ClinicalDetails | None = None  # the chart details the record's opening holds (treatment site, ...)

    @classmethod
    def of(cls, prepared: Prepared, open_source: Callable[[], CurrentSource], **options: Any) -> SessionRunner:
        """The runner of a prepared session: its prescription, limits, course, override and opening check
        (`options` give the rest, or replace these)."""
        request = prepared.request
        given: dict[str, Any] = {"config_sha256": prepared.config.sha256, "course_id": request.course_id,
                                 "course_ref": request.course_ref,
                                 "override": prepared.override, "opening_check": prepared.opening_check(),
                                 "accept_no_watchdog": request.accept_no_watchdog, "db": request.db,
                                 "device": request.device, "operator": prepared.operator,
                                 "anchor": prepared.config.accounts.anchor,
                                 "clinic_site": prepared.config.path if prepared.config.bench.clinic else None,
                                 "clinical": prepared.clinical}  # fmt: skip
        return cls(prepared.prescription, prepared.limits, open_source, **{**given, **options})

    def __post_init__(self) -> None:
        self.session: Session | None = None
        self.recorder: Recorder | None = None

    def run(self) -> Report:
        """Open the record, run the session, close the sources and then the record. Never raises for the store,
        the device or the session: every way out is a `Report`."""
        from ionctl.treatment.recorder import Recorder

        if self.store is None:
            return self._on_device()
        said = io.StringIO()
        recorder = Recorder.open(self.store, self.prescription, self.limits, said, config_sha256=self.config_sha256,
                                 course_id=self.course_id, course_ref=self.course_ref,
                                 check=self.opening_check, clinical=self.clinical)  # fmt: skip
        self._tell_messages(said.getvalue())
        if recorder is None:
            return self._not_started("not started: the session record could not be opened: "
                                     + (said.getvalue().strip() or "see above"))  # fmt: skip
        recorder.err = self.messages if self.messages is not None else io.StringIO()
        self.recorder = recorder
        try:
            refusal = self._before(self.store, recorder.record_id)
            report = self._not_started(refusal) if refusal is not None else self._on_device()
            recorder.finish(report)  # the output is off and the record closed before anything below
        finally:
            recorder.release()  # the next session may start: the sign-off and the checkpoint hold nothing of it
        recorder.sign_off(report, self.operator, self.anchor)  # bounded in time; a failure is a notice
        self._sync_to_clinic(self.store)
        return report

    def _sync_to_clinic(self, store: Store) -> None:
        """With a clinic store: start `ionctl records sync` detached, never waited for (a session never depends on
        the network: docs/ARCHITECTURE.md, "The clinic store"); if it cannot start, a notice says so."""
        if self.clinic_site is None:
            return
        from ionctl.records.clinic.spawn import start_sync

        try:
            note = start_sync(store.path, self.clinic_site)
        except Exception as exc:  # noqa: BLE001 - the session is over and its record closed: a notice at most
            note = f"the clinic store sync could not be started ({exc})"
        if note is not None:
            self._tell_messages(f"ionctl run: notice: {note}\n")

    # -- the steps ----------------------------------------------------------------------------------------

    def _before(self, store: Store, record_id: int) -> str | None:
        """The override (signed by its supervisor) and the skin check before (by the operator), into the audit
        trail against the record; why the session may not start if either cannot be written (an override not
        on record, or not signed, allows nothing)."""
        if self.override is not None:
            from ionctl.config.people import People
            from ionctl.treatment.prepare import OVERRIDE_ACTION

            try:
                if self.override.supervisor is None:
                    raise ValueError("no supervisor signed it")
                People(store).signed(self.override.supervisor, OVERRIDE_ACTION, self.override.audit(),
                                     course_id=self.override.course_id, record_id=record_id)  # fmt: skip
            except Exception as exc:
                message = f"not started: the supervisor's override could not be recorded: {exc}"
                self._say(message)
                return message
        if self.skin_check_before is not None:
            from ionctl.records.skin import SKIN_CHECK_BEFORE, Addendum

            try:
                by = self.operator.name if self.operator is not None else self.prescription.operator_id
                store.append_addendum(record_id, by, Addendum(SKIN_CHECK_BEFORE, skin=self.skin_check_before))
            except Exception as exc:
                return f"not started: the skin check could not be recorded: {exc}"
        return None

    def _on_device(self) -> Report:
        from ionctl.core.session import Session
        from ionctl.drivers import DeviceError

        try:
            device = self.open_source()
        except KeyboardInterrupt:
            self._say("interrupted while opening the device; not started, no current flowed")
            return self._not_started("interrupted before the session started")
        except DeviceError as exc:
            self._say(f"cannot reach the device at {self.device}: {exc}\nNo current flowed.")
            return self._not_started(str(exc), outcome="fault", fault=_error_name(exc))
        session: Session | None = None
        try:
            session = Session(device, self.prescription, self.limits, accept_no_watchdog=self.accept_no_watchdog,
                              reconnect=self.reconnect, on_sample=self._on_sample, on_state=self._on_state)  # fmt: skip
            self.session = session
            with self.watch(session) as interrupts:
                result = session.run()
            interrupts.apply(result)
        except Exception as exc:  # a bug, not the device: the watchdog (or the SourceMeter's close) makes it safe
            result = self._abandoned(session, exc)
        finally:
            unconfirmed = self._close(device, session.device if session is not None else None)
        if unconfirmed:  # a source without a watchdog that may still be sourcing: nothing else will stop it
            result.alarm = True
            result.message += f"; {unconfirmed}: remove the electrodes from the patient now"
        if self.display is not None:
            self.display.ended(result)
        return report_of(result, self.db)

    def _on_sample(self, session: Session, sample: Telemetry) -> None:
        if self.recorder is not None:  # the record first (durable), then the display
            self.recorder.on_sample(session, sample)
        if self.display is not None:
            self.display.on_sample(session, sample)

    def _on_state(self, session: Session, change: StateChange) -> None:
        if self.recorder is not None:
            self.recorder.on_state(session, change)
        if self.display is not None:
            self.display.on_state(session, change)

    def _abandoned(self, session: Session | None, exc: Exception) -> SessionResult:
        """The result of a session that raised (a bug): a fault, energised if it had started the current."""
        from ionctl.core.session import SessionResult

        self._say(f"INTERNAL ERROR, session abandoned: {exc!r}; closing the device (its watchdog, or for a "
                  "SourceMeter the driver, takes the output to zero)")  # fmt: skip
        result = session.result if session is not None else SessionResult(outcome="fault")
        result.outcome, result.fault, result.message = "fault", "internal", f"internal error: {exc!r}"
        result.energised = any(change.state == "ramping_up" for change in result.timeline)
        return result

    def _close(self, *sources: CurrentSource | None) -> str | None:
        """Close the device and, after a reconnect, the session's new one (closing is idempotent). Why the output
        could not be confirmed off by the last one closed (a SourceMeter's `unconfirmed_off`: a reconnected
        instrument that confirms its output off answers for the one it replaced), else None."""
        unconfirmed = None
        for source in {id(s): s for s in sources if s is not None}.values():
            try:
                source.close()
            except Exception as exc:  # closing must not hide the result
                self._say(f"while closing the device: {exc}")
            unconfirmed = getattr(source, "unconfirmed_off", None)
        return unconfirmed

    def _not_started(self, message: str, *, outcome: str = "refused", fault: str | None = None) -> Report:
        return not_started(message, db=self.db, outcome=outcome, fault=fault, prescription=self.prescription,
                           limits=self.limits)  # fmt: skip

    def _say(self, text: str) -> None:
        if self.say is not None:
            self.say(text)

    def _tell_messages(self, text: str) -> None:
        if text and self.messages is not None:
            self.messages.write(text)


def _error_name(exc: Exception) -> str:
    from ionctl.drivers import LinkLost

    return "link_lost" if isinstance(exc, LinkLost) else type(exc).__name__

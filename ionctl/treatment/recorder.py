"""The session's record, written as the session runs (`Recorder`), and the record of a session refused
before the device was touched (`record_refusal`). docs/SAFETY.md, "session without its record": a session
does not run on without its record. Once a record is closed (and the output off) its operator signs it
"performed" and a checkpoint of the chain head goes to the site's anchor (`sign_off`), both after the session's
lock is released: neither can delay the session, its ramp-down or the next session, neither can hang the
command (the checkpoint's write is bounded in time, `ionctl.config.anchor`), and a failure of either is a
notice, never an exception."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ionctl.core.vocabulary import ExitCode
from ionctl.treatment.report import RECORD_FAILED, Report

if TYPE_CHECKING:
    from ionctl.config.people import Identity
    from ionctl.core.session import Session, StateChange
    from ionctl.drivers.base import Telemetry
    from ionctl.records import SessionLock, Store
    from ionctl.records.clinical import ClinicalDetails
    from ionctl.records.writer import ClosingJournal
    from ionctl.safety import Prescription, SiteLimits


class Recorder:
    """Writes one session into its record as it runs: state changes and faults as events, telemetry in batches,
    the result at the end, all through `ionctl.records.writer.RecordWriter`: the session's callbacks only
    enqueue, a thread of the writer's own commits, so a store held by another process or a full disk never
    blocks the session's supervision. When the record cannot be written (the writer's queue fills, or writes
    keep failing past `STALL_S`) the session is stopped with a ramp and ends `record_failed` (exit 6). The
    closing is also kept in the record's closing journal, in space reserved at opening, so that the record can
    be closed truthfully later. What it has to say (a failure) goes to `err`."""

    def __init__(self, store: Store, record_id: int, lock: SessionLock, err: TextIO,
                 journal: ClosingJournal | None = None) -> None:  # fmt: skip
        from ionctl.records.recovery import summarise_samples
        from ionctl.records.writer import RecordWriter

        self.store = store
        self.record_id = record_id
        self.lock = lock
        self.err = err
        self.journal = journal
        area = _area(store, record_id)
        self.writer = RecordWriter(store.path, record_id, summarise=lambda rows: summarise_samples(rows, area))
        self.failed: str | None = None

    @classmethod
    def open(cls, store: Store, prescription: Prescription, limits: SiteLimits, err: TextIO, *,
             config_sha256: str | None = None, course_id: int | None = None, course_ref: str | None = None,
             check: Callable[[Store], None] | None = None,
             clinical: ClinicalDetails | None = None) -> Recorder | None:  # fmt: skip
        """The record's opening, durable on return; None (after saying why) if it cannot be written, or if
        `check(store)` raises: it runs inside the opening's write transaction, so what it checks (the approval,
        a course's rules) cannot change before the record exists (two sessions of a course started together).
        The session's liveness lock and its closing journal are taken inside that transaction too. `clinical`
        (the treatment site, the preparation, the electrode product) is part of the opening."""
        from ionctl.config import ConfigNotApproved
        from ionctl.core.courses import CourseRefused
        from ionctl.core.session import prescription_dict
        from ionctl.records import SessionLock
        from ionctl.records.writer import ClosingJournal

        locks: list[SessionLock] = []
        journals: list[ClosingJournal] = []

        def before_commit(record_id: int) -> None:
            if check is not None:
                check(store)
            locks.append(SessionLock(store, record_id))
            journals.append(ClosingJournal(store.path, record_id))

        site = limits.for_class(prescription.protocol_class) if prescription.protocol_class in limits.classes else None
        try:
            record_id = store.open_record(
                patient=prescription.patient_id, operator=prescription.operator_id,
                prescription=prescription_dict(prescription), limits=site.values() if site is not None else {},
                limits_sha256=site.sha256 if site is not None else "", config_sha256=config_sha256,
                course_id=course_id, course_ref=course_ref, before_commit=before_commit,
                clinical=clinical.to_dict() if clinical is not None else None,
            )  # fmt: skip
        except (ConfigNotApproved, CourseRefused) as exc:
            for lock in locks:
                lock.release()
            print(f"ionctl run: not started: {exc}", file=err)
            return None
        except Exception as exc:
            for lock in locks:
                lock.release()
            for journal in journals:
                journal.discard()
            print(f"ionctl run: cannot write the session record in {store.path}: {exc}", file=err)
            return None
        return cls(store, record_id, locks[0], err, journals[0] if journals else None)

    def on_sample(self, session: Session, s: Telemetry) -> None:
        # Enqueues only; after a failure the writes go on being retried: the ramp-down belongs in the record.
        try:
            self.writer.sample((s.t_s, s.set_ma, s.measured_ma, s.voltage_v, s.impedance_ohm,
                                session.meter.delivered_ma_min, s.device_dose_ma_min, int(s.at_compliance),
                                session.state))  # fmt: skip
        except Exception as exc:
            self.writer.failure = self.writer.failure or str(exc)
        self._check(session)

    def on_state(self, session: Session, change: StateChange) -> None:
        try:
            kind = "fault" if change.state == "fault" else "state"
            self.writer.event(kind, f"{change.state}: {change.reason}", utc=change.utc, device_t_s=change.device_t_s)
            if change.state == "connected":
                identity = asdict(session.device.identity)
                self.writer.event("note", "device: " + json.dumps(identity, sort_keys=True), utc=change.utc)
        except Exception as exc:
            self.writer.failure = self.writer.failure or str(exc)
        self._check(session)

    def note(self, text: str) -> None:
        self.writer.event("note", text)

    def _check(self, session: Session) -> None:
        """Stop the session (ramped) once the writer says the record cannot be written; said once."""
        if self.failed is not None or self.writer.failure is None:
            return
        self.failed = self.writer.failure
        print(f"\nionctl run: {RECORD_FAILED}: {self.failed}; stopping the session", file=self.err)
        session.request("stop")

    def finish(self, report: Report) -> None:
        """Close the record with the result (its notes as events first); sets `report.record_id`. A session that
        was stopped because its record could not be written ends `record_failed`; a session abandoned on an
        internal error is closed with the dose its own stored samples show."""
        report.record_path = str(self.store.path)
        report.record_id = self.record_id
        result = report.result
        if self.failed is not None and result.outcome != "refused":
            prior = f"{result.outcome}" + (f" ({result.fault})" if result.fault else "")
            result.outcome, result.fault = "record_failed", result.fault or "record"
            result.message = f"{RECORD_FAILED}: {self.failed}; the session was stopped ({prior}: {result.message})"
            if not result.alarm:
                report.exit_code = ExitCode.RECORD_FAILED
        from ionctl.records.summary import RecordSummary

        from_samples = result.fault == "internal"
        summary = RecordSummary.from_result(result)
        if self.journal is not None:
            try:
                self.journal.write({"record_id": self.record_id, "summary": summary.to_dict(),
                                    "from_samples": from_samples, "notes": list(result.notes),
                                    "failure": self.failed})  # fmt: skip
            except Exception as exc:
                print(f"ionctl run: cannot write the closing journal of record {self.record_id}: {exc}", file=self.err)
        for text in result.notes:
            self.writer.event("note", text)
        if self.failed is not None:
            self.writer.event("note", f"record writing failed during the session: {self.failed}")
        if self.writer.close(summary, from_samples=from_samples):
            if from_samples and self.writer.closing is not None:
                for key in ("dose_ma_min", "host_dose_ma_min", "device_dose_ma_min", "duration_s", "peak_current_ma",
                            "peak_density_ma_cm2", "time_at_compliance_s"):  # fmt: skip
                    if hasattr(result, key):
                        setattr(result, key, self.writer.closing.get(key))
            if self.journal is not None:
                self.journal.discard()
            return
        self.writer.stop()
        where = f" (its closing is kept in {self.journal.path})" if self.journal is not None else ""
        print(f"ionctl run: cannot close the session record {self.record_id} in {self.store.path}"
              f"{where}: {self.writer.error or self.writer.failure}; the next ionctl command that can write the "
              "store closes it", file=self.err)  # fmt: skip
        if report.exit_code == ExitCode.OK:
            report.exit_code = ExitCode.RECORD_FAILED

    def sign_off(self, report: Report, operator: Identity | None, anchor: Path | None) -> None:
        """After `finish` and `release`: the record signed "performed" by `operator`, and the anchor's checkpoint
        (`sign_off`)."""
        report.signature = sign_off(self.store, self.record_id, operator, anchor, self.err)

    def release(self) -> None:
        if self.journal is not None:
            self.journal.release()
        self.lock.release()


def record_refusal(store: Store | None, report: Report, prescription: Prescription, limits: SiteLimits, err: TextIO,
                   *, config_sha256: str | None = None, course_id: int | None = None, operator: Identity | None = None,
                   anchor: Path | None = None, course_ref: str | None = None,
                   clinical: ClinicalDetails | None = None) -> Report:  # fmt: skip
    """Open and at once close the record of a session refused before the device was touched (each limit broken
    a note), signed by its `operator` as a session's is; the report, with its record. No store: the report as
    it is."""
    recorder = Recorder.open(store, prescription, limits, err, config_sha256=config_sha256, course_id=course_id,
                             course_ref=course_ref, clinical=clinical) if store is not None else None  # fmt: skip
    if recorder is not None:
        try:
            for v in report.violations:
                recorder.note(f"limit broken: {json.dumps(v, sort_keys=True)}")
            recorder.finish(report)
        finally:
            recorder.release()
        recorder.sign_off(report, operator, anchor)  # the lock is free: the next session need not wait for it
    return report


def sign_off(store: Store, record_id: int, operator: Identity | None, anchor: Path | None, err: TextIO) -> str | None:
    """Sign the closed record `record_id` "performed" by `operator` (a `record-sign` audit entry over the record's
    content digest: 21 CFR 11.50, 11.70; docs/SAFETY.md, "record forgery") and, with an `anchor` directory,
    append a signed checkpoint of the chain head there ("truncation"). The signature's manifestation, or None.
    Called once the session is over, its record closed and its lock released: a failure is said on `err`, never
    raised, and changes nothing about the session or its exit code (the record can be signed later with `ionctl
    records sign`). The sign-off is one short write transaction, done before the checkpoint, which holds no
    transaction and no lock: its write waits at most `ionctl.config.anchor.WRITE_WAIT_S` (a hung share)."""
    if operator is None:
        return None
    from ionctl.config.people import PERFORMED, People, Signature

    said: str | None = None
    try:
        digest = store.record_digest(record_id)
        if digest is None:
            raise ValueError("the record is not closed")
        seq = People(store).signed(operator, "record-sign", {"meaning": PERFORMED, "record_sha256": digest},
                                   record_id=record_id)  # fmt: skip
        entry = next(e for e in store.audit(action="record-sign", record_id=record_id) if e["seq"] == seq)
        said = Signature.from_dict(entry["detail"]["signature"]).manifestation()
    except Exception as exc:
        print(f"ionctl run: notice: record {record_id} was not signed by {operator.name}: {exc}; sign it with "
              f"`ionctl records sign {record_id} --as {operator.name}`", file=err)  # fmt: skip
    if anchor is not None:
        try:
            from datetime import UTC, datetime

            from ionctl.config.anchor import write_checkpoint

            identity = store.first_link()
            if identity is None:
                raise ValueError("the record store has no links")
            write_checkpoint(anchor, identity, store.chain_head(), operator,
                             datetime.now(UTC).isoformat(timespec="milliseconds"))  # fmt: skip
        except Exception as exc:
            print(f"ionctl run: notice: no checkpoint of the record store was written to the anchor {anchor}: {exc}",
                  file=err)  # fmt: skip
    return said


def _area(store: Store, record_id: int) -> float | None:
    try:
        area = json.loads(store.get(record_id).fields["prescription"]).get("electrode_area_cm2")
    except Exception:
        return None
    return float(area) if isinstance(area, int | float) else None

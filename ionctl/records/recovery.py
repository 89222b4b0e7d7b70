"""Crash recovery: close the records of sessions that never ended (process killed, power lost).

A session that is still running holds a lock the kernel keeps for it on the database file itself: an open
file description lock (Linux `F_OFD_SETLK`) on one byte per record, at `LOCK_BASE + id`, far beyond SQLite's
own lock bytes. Nothing can unlink it from under the session (there is no lock file to delete), closing another
descriptor of the file does not drop it (unlike a POSIX lock), it conflicts within one process too, and the
kernel drops it when the process dies however it dies. So a record that is open and whose byte can be locked
belongs to a dead session: `recover_interrupted` closes it, from the session's closing journal if it reached
its end (`ionctl.records.writer`), else as `interrupted` with the dose integrated (trapezoid, over device
time) from the samples stored up to the last one, and the device's own counter as of that sample.

A command that only reads (`ionctl records`) cannot read the device's counter, which counts what flowed after
the host died; the record it closes says so, and the next `ionctl run` on that same device settles it: an
audit entry `device-counter-settlement` against the record, with the counter it read (`settle_counters`).
When the store cannot be written (a full disk, another process holding it), recovery closes nothing and says
why: the records stay open for a later command.

Where open file description locks do not exist, a lock file (`<db>.lock.<id>`) with `flock` stands in, and
without `flock` an open record is taken as abandoned only if no lock file exists.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ionctl.records.rows import RecordRow
from ionctl.records.store import Store, StoreError
from ionctl.records.writer import journal_path, read_journal

try:  # POSIX; elsewhere an open record is taken as abandoned only if no lock file exists
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: Where the per-record lock bytes start in the database file: far beyond SQLite's (at 1 GiB, 512 bytes).
LOCK_BASE = 1 << 40
#: The audit action that settles an interrupted record with the device's own counter.
SETTLEMENT = "device-counter-settlement"
#: How a closing by a command that could not read the device counter marks itself.
UNSETTLED = "the device's own counter was not read"


def _ofd() -> bool:
    return fcntl is not None and hasattr(fcntl, "F_OFD_SETLK")


def lock_path(store: Store, record_id: int) -> Path:
    path = store.path.resolve()  # one lock file per database file, whichever path (symlink, relative) opened it
    return path.with_name(f"{path.name}.lock.{record_id}")


def _byte_lock(fd: int, record_id: int, *, lock: bool) -> bool:
    """Take (or drop) the record's byte as an open file description write lock; False if another holds it."""
    kind = fcntl.F_WRLCK if lock else fcntl.F_UNLCK
    flock = struct.pack("hhqqixxxx", kind, os.SEEK_SET, LOCK_BASE + record_id, 1, 0)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, flock)
    except OSError:
        return False
    return True


class SessionLock:
    """Held by the process writing a record while its session runs."""

    def __init__(self, store: Store, record_id: int) -> None:
        self.record_id = record_id
        self.path: Path | None = None
        self._fd: int | None = None
        self._file: IO[str] | None = None
        if _ofd():
            fd = os.open(store.path.resolve(), os.O_RDWR)
            if not _byte_lock(fd, record_id, lock=True):
                os.close(fd)
                raise StoreError(f"record {record_id} is already held by a running session")
            self._fd = fd
            return
        self.path = lock_path(store, record_id)
        self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed by release()
        if fcntl is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._file.write(f"{os.getpid()}\n")
        self._file.flush()

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the description drops its lock
            self._fd = None
        if self._file is not None and self.path is not None:
            try:
                self.path.unlink(missing_ok=True)
            finally:
                self._file.close()
                self._file = None


class _Held:
    """The lock of an abandoned record, held by recovery while it closes it."""

    def __init__(self, fd: int | None = None, handle: IO[str] | None = None, path: Path | None = None) -> None:
        self.fd, self.handle, self.path = fd, handle, path

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        if self.handle is not None:
            if self.path is not None:
                self.path.unlink(missing_ok=True)
            self.handle.close()


def _abandoned(store: Store, record_id: int) -> _Held | None:
    """The lock of a record nobody is writing (held by us now), or None if a live session holds it (or it
    cannot be told)."""
    if _ofd():
        try:
            fd = os.open(store.path.resolve(), os.O_RDWR)
        except OSError:
            return None
        if not _byte_lock(fd, record_id, lock=True):
            os.close(fd)
            return None
        return _Held(fd=fd)
    path = lock_path(store, record_id)
    if fcntl is None and path.exists():  # no flock: a lock file may be a live session's, so it is left alone
        return None
    try:
        handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by the caller
    except OSError:
        return None
    if fcntl is None:
        return _Held(handle=handle, path=path)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return _Held(handle=handle, path=path)


def summarise_samples(samples: list[dict[str, Any]], area_cm2: float | None) -> dict[str, Any]:
    """The dose and the figures a closing needs, from stored samples (oldest first)."""
    dose = duration = compliance = 0.0
    peak = 0.0
    impedances = [s["impedance_ohm"] for s in samples if s["impedance_ohm"] is not None and s["current_ma"] > 0.05]
    previous: dict[str, Any] | None = None
    started = False
    for s in samples:
        peak = max(peak, abs(s["current_ma"]))
        if previous is not None:
            dt = s["t_s"] - previous["t_s"]
            if dt > 0:  # a negative step is a device reboot: the interval is unknown, not counted
                dose += (abs(previous["current_ma"]) + abs(s["current_ma"])) / 2 * dt / 60
                if started:
                    duration += dt
                if previous["at_compliance"]:
                    compliance += dt
        started = started or abs(s["current_ma"]) > 0.05
        previous = s
    device = next((s["device_dose_ma_min"] for s in reversed(samples) if s["device_dose_ma_min"] is not None), None)
    return {
        "host_dose_ma_min": dose,
        "dose_ma_min": dose,
        "dose_source": "host",
        "device_dose_ma_min": device,
        "duration_s": duration,
        "peak_current_ma": peak,
        "peak_density_ma_cm2": peak / area_cm2 if area_cm2 else None,
        "time_at_compliance_s": compliance,
        "impedance_start_ohm": impedances[0] if impedances else None,
        "impedance_end_ohm": impedances[-1] if impedances else None,
        "impedance_min_ohm": min(impedances) if impedances else None,
        "impedance_max_ohm": max(impedances) if impedances else None,
        "energised": peak > 0.05,
    }


#: Given an interrupted record's device identity, the device's own dose counter (mA·min) if that same device
#: is reachable now, else None. The caller (`ionctl run`, which has an address) supplies it.
DeviceCounter = Callable[[dict[str, Any]], "float | None"]


def recover_interrupted(store: Store, device_counter: DeviceCounter | None = None,
                        notes: list[str] | None = None) -> list[int]:  # fmt: skip
    """Close every record whose session is no longer running; the ids closed. A record whose session wrote its
    closing journal is closed from it (the session's own result); any other as `interrupted`. With
    `device_counter`, the device's own counter is read too: it includes what flowed after the host died (the
    watchdog's delay and ramp-down), which the stored samples cannot show; without it the closing says the
    counter was not read, for `settle_counters` to settle later. A record that cannot be closed now (the store
    cannot be written) is left open, with a line in `notes`."""
    closed: list[int] = []
    for record_id in store.open_ids():
        held = _abandoned(store, record_id)
        if held is None:
            continue  # a live session is writing it
        try:
            if _close_abandoned(store, record_id, device_counter):
                closed.append(record_id)
        except Exception as exc:  # a full disk, a store held by another process, a read-only file
            if store.db.in_transaction:
                store.db.execute("ROLLBACK")
            if notes is not None:
                notes.append(f"record {record_id} was left open by a session that never ended and cannot be closed "
                             f"now ({exc}); it stays open until a command can write the store")  # fmt: skip
        finally:
            held.close()
    return closed


def _close_abandoned(store: Store, record_id: int, device_counter: DeviceCounter | None) -> bool:
    record = store.get(record_id)
    if record.fields["outcome"] is not None:  # closed meanwhile by its own session
        return False
    journal = read_journal(store.path, record_id)
    if journal is not None:
        return _close_from_journal(store, record, journal)
    prescription = json.loads(record.fields["prescription"])
    summary = summarise_samples(record.telemetry, prescription.get("electrode_area_cm2"))
    # Events are durable within a moment, samples every half second: a session killed right after its start
    # has a `ramping_up` event and maybe no sample yet. Current may have flowed: count it as energised.
    summary["energised"] = summary["energised"] or _started(record.events)
    device = _device(record.events)
    last = record.telemetry[-1]["t_s"] if record.telemetry else None
    message = (f"interrupted: the session never ended (process killed or power lost); closed at "
               f"recovery with the dose integrated from {len(record.telemetry)} stored samples"
               + (f" up to device t = {last:.2f} s" if last is not None else ""))  # fmt: skip
    counter = device_counter(device) if device_counter is not None and device is not None else None
    if counter is not None:
        summary["device_dose_ma_min"] = counter
        message += f"; the device's own counter, read at recovery, says {counter:.3f} mA·min"
    elif summary["energised"] and device is not None:
        message += (f"; {UNSETTLED} (it counts what flowed after the host's last sample): the next ionctl run "
                    "on that device settles it")  # fmt: skip
    store.append_event(record_id, "note", message)
    planned = prescription.get("planned_dose_ma_min")
    store.close_record(record_id, {**summary, "outcome": "interrupted", "fault": "interrupted", "message": message,
                                   "device": device, "prescribed_dose_ma_min": planned})  # fmt: skip
    return True


def _close_from_journal(store: Store, record: Any, journal: dict[str, Any]) -> bool:
    """Close a record from the closing its session wrote into its journal (the store could not take it then)."""
    summary = dict(journal["summary"])
    if journal.get("from_samples"):
        prescription = json.loads(record.fields["prescription"])
        summary.update(summarise_samples(record.telemetry, prescription.get("electrode_area_cm2")))
    for text in journal.get("notes") or []:
        store.append_event(record.id, "note", str(text))
    store.append_event(record.id, "note", f"closed at recovery from the session's closing journal (the store could "
                                          f"not be written when the session ended); {len(record.telemetry)} samples "
                                          "are stored, the closing's figures are the session's own")  # fmt: skip
    store.close_record(record.id, summary)
    journal_path(store.path, record.id).unlink(missing_ok=True)
    return True


def settle_counters(store: Store, device_counter: DeviceCounter) -> list[int]:
    """Settle interrupted records closed without the device's counter: for each device, its most recent record
    if that is such a record (a later session on the device restarts its counter), read the counter and append
    a `device-counter-settlement` audit entry against the record. The ids settled."""
    settled = {a["record_id"] for a in store.audit(action=SETTLEMENT)}
    latest: dict[str, tuple[RecordRow, dict[str, Any]]] = {}
    for row in store.list_records():
        device = json.loads(row["device"]) if row["device"] else None
        if isinstance(device, dict) and device.get("serial"):
            latest[str(device["serial"])] = (row, device)
    done: list[int] = []
    for row, device in latest.values():
        if (row["outcome"] != "interrupted" or UNSETTLED not in (row["message"] or "")
                or row["id"] in settled):  # fmt: skip
            continue
        counter = device_counter(device)
        if counter is None:
            continue
        store.append_audit(SETTLEMENT, "ionctl run", {
            "device_dose_ma_min": counter, "serial": device.get("serial"),
            "text": f"the device's own counter, read after the record was closed at recovery, says {counter:.3f} "
                    "mA·min (it includes what flowed after the host's last sample)",
        }, record_id=row["id"])  # fmt: skip
        done.append(int(row["id"]))
    return done


def _started(events: list[dict[str, Any]]) -> bool:
    """Whether the session reached its start (START was sent and accepted: a `ramping_up` state event)."""
    return any(e["kind"] == "state" and e["text"].startswith("ramping_up:") for e in events)


def _device(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The device identity noted when the session connected (`device: {json}`), if any."""
    for e in events:
        if e["kind"] == "note" and e["text"].startswith("device: "):
            try:
                value = json.loads(e["text"][len("device: ") :])
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None

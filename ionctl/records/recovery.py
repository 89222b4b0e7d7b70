"""Crash recovery: close the records of sessions that never ended (process killed, power lost).

A session that is still running holds an exclusive `flock` on its record's lock file
(`<db>.lock.<id>`, see `SessionLock`); the kernel drops it when the process dies however it dies. So a
record that is open and whose lock can be taken belongs to a dead session: `recover_interrupted` closes it
as `interrupted` with the dose integrated (trapezoid, over device time) from the samples stored up to the
last one, and the device's own counter as of that sample.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ionctl.records.store import Store

try:  # POSIX; elsewhere an open record is taken as abandoned only if no lock file exists
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def lock_path(store: Store, record_id: int) -> Path:
    path = store.path.resolve()  # one lock file per database file, whichever path (symlink, relative) opened it
    return path.with_name(f"{path.name}.lock.{record_id}")


class SessionLock:
    """Held by the process writing a record while its session runs."""

    def __init__(self, store: Store, record_id: int) -> None:
        self.path = lock_path(store, record_id)
        self._file: IO[str] | None = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed by release()
        if fcntl is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._file.write(f"{os.getpid()}\n")
        self._file.flush()

    def release(self) -> None:
        if self._file is not None:
            try:
                self.path.unlink(missing_ok=True)
            finally:
                self._file.close()
                self._file = None


def _abandoned(store: Store, record_id: int) -> IO[str] | None:
    """The lock of a record nobody is writing (held by us now), or None if a live session holds it."""
    path = lock_path(store, record_id)
    if fcntl is None and path.exists():  # no flock: a lock file may be a live session's, so it is left alone
        return None
    try:
        handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by the caller
    except OSError:
        return None
    if fcntl is None:
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


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


def recover_interrupted(store: Store, device_counter: DeviceCounter | None = None) -> list[int]:
    """Close every record whose session is no longer running as `interrupted`; the ids closed. With
    `device_counter`, the device's own counter is read too: it includes what flowed after the host died
    (the watchdog's delay and ramp-down), which the stored samples cannot show."""
    closed: list[int] = []
    for record_id in store.open_ids():
        handle = _abandoned(store, record_id)
        if handle is None:
            continue  # a live session is writing it
        try:
            record = store.get(record_id)
            if record.fields["outcome"] is not None:  # closed meanwhile by its own session
                continue
            prescription = json.loads(record.fields["prescription"])
            summary = summarise_samples(record.telemetry, prescription.get("electrode_area_cm2"))
            # Events are durable at once, samples every half second: a session killed right after its start
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
            store.append_event(record_id, "note", message)
            planned = prescription.get("planned_dose_ma_min")
            store.close_record(record_id, {**summary, "outcome": "interrupted", "fault": "interrupted",
                                           "message": message, "device": device,
                                           "prescribed_dose_ma_min": planned})  # fmt: skip
            closed.append(record_id)
        finally:
            lock_path(store, record_id).unlink(missing_ok=True)
            handle.close()
    return closed


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

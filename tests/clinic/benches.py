"""Bench stores for the clinic store's reading tests: people (tests/people.py), records with events, telemetry,
addenda, a course and sign-offs, made with the Store API; a clinic store initialised and filled by `push`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ionctl.config.verification import sign_record
from ionctl.records import Store
from ionctl.records.clinic.schema import initialise
from ionctl.records.clinic.sync import connect, push
from ionctl.records.skin import NOTE, Addendum
from ionctl.records.summary import RecordSummary
from tests.clinic.syncing import bound_to
from tests.people import SUPERVISOR, TECHNICIAN, Clinic, make_clinic


def add_record(store: Store, clinic: Clinic | None, patient: str, *, samples: int = 40, close: bool = True,
               sign: bool = True, course_id: int | None = None) -> int:  # fmt: skip
    """A session's record: opening, events, telemetry, closing, a skin check, and the sign-offs."""
    record_id = store.open_record(patient=patient, operator=TECHNICIAN, prescription={"current_ma": 2.0,
                                  "dose_ma_min": 40.0}, limits={"max_current_ma": 4.0}, limits_sha256="a" * 64,
                                  config_sha256="c" * 64, course_id=course_id)  # fmt: skip
    store.append_event(record_id, "state", "delivering", device_t_s=0.5)
    rows = [(i * 0.25, 2.0, 2.0 - 0.001 * i, 12.5 + i / 7, 6250.0 + i, i * 0.0083, i * 0.0082, i % 2, "delivering")
            for i in range(samples)]  # fmt: skip
    store.append_telemetry(record_id, rows[: samples // 2])
    store.append_event(record_id, "note", "patient comfortable", device_t_s=3.0)
    store.append_telemetry(record_id, rows[samples // 2 :])
    if not close:
        return record_id
    store.close_record(record_id, RecordSummary(outcome="completed", dose_ma_min=0.33, energised=True,
                                                duration_s=samples * 0.25, peak_current_ma=2.0))  # fmt: skip
    store.append_addendum(record_id, TECHNICIAN, Addendum(NOTE, text="skin intact, no redness"))
    if sign and clinic is not None:
        people = clinic.people(store)
        sign_record(people, clinic.login(store, TECHNICIAN), store, record_id)
        sign_record(people, clinic.login(store, SUPERVISOR), store, record_id)
    return record_id


def bench_store(folder: Path, patient: str, records: int = 2) -> tuple[Clinic, Path]:
    """A bench's store with its people and `records` closed, signed records (one in a course)."""
    clinic = make_clinic(folder)
    with Store(clinic.store) as store:
        course = store.insert_course(patient=patient, operator=SUPERVISOR, preset="demo", sessions=4, per_week=2.0,
                                     min_interval_days=2.0, plan={"current_ma": 2.0}, config_sha256=None)  # fmt: skip
        for n in range(records):
            add_record(store, clinic, patient, course_id=course if n == 0 else None)
    return clinic, clinic.store


def clinic_store(conninfo: str) -> None:
    initialise(conninfo, benches=bound_to("postgres"))


def push_store(path: Path, conninfo: str, bench: str) -> Any:
    with Store(path) as store:
        clinic = connect(conninfo)
        try:
            return push(store.db, clinic, bench)
        finally:
            clinic.close()


def site_file(path: Path, *, store: Path, conninfo: str, bench: str, administrators: list[str],
              timeout_s: float = 3.0) -> Path:  # fmt: skip
    """A site file naming this bench's store, the clinic store and the administrators of every bench."""
    from ionctl.config.authority import initial_text

    names = ", ".join(f'"{a}"' for a in administrators)
    path.write_text(initial_text() + f'\n[records]\nstore = "{store}"\n\n[clinic]\nstore = "{conninfo}"\n'
                    f'bench = "{bench}"\ntimeout_s = {timeout_s}\n\n[accounts]\nadministrators = [{names}]\n',
                    encoding="utf-8")  # fmt: skip
    return path

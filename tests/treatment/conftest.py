"""What the treatment tests share: the packaged configuration, a record store, a course that refuses a session
now (one session done just now, three days apart at least), and the supervisor PIN."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ionctl.config import SiteConfig, load_config, set_pin
from ionctl.core.courses import start_course
from ionctl.records import Store

PIN = "12345678"
PATIENT = "P-TREAT"


@pytest.fixture
def config() -> SiteConfig:
    return load_config(None)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "records.sqlite3") as s:
        yield s


@pytest.fixture
def refusing_course(store: Store, config: SiteConfig) -> int:
    """A dexamethasone course of PATIENT whose minimum interval refuses a session now; the PIN is set."""
    set_pin(store, PIN, old_pin=None)
    course_id = start_course(store, config, patient=PATIENT, operator="T-1", preset="dexamethasone", sessions=6,
                             min_interval_days=3, prescription={"electrode_area_cm2": 10.0})  # fmt: skip
    record_id = store.open_record(patient=PATIENT, operator="T-1", prescription={}, limits={}, limits_sha256="",
                                  course_id=course_id)  # fmt: skip
    store.close_record(record_id, {"outcome": "completed", "energised": True, "dose_ma_min": 40.0})
    return course_id

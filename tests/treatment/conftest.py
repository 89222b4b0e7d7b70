"""What the treatment tests share: a clinic (its approved site configuration, its record store and its people),
the technician and the supervisor logged in, and a course that refuses a session now (one session done just
now, three days apart at least)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ionctl.config import SiteConfig, load_config
from ionctl.config.people import Identity
from ionctl.core.courses import start_course
from ionctl.records import Store
from tests.people import SUPERVISOR, TECHNICIAN, Clinic, make_clinic

PATIENT = "P-TREAT"


@pytest.fixture
def clinic(tmp_path: Path) -> Clinic:
    return make_clinic(tmp_path / "clinic")


@pytest.fixture
def config(clinic: Clinic) -> SiteConfig:
    return load_config(clinic.config)


@pytest.fixture
def store(clinic: Clinic) -> Iterator[Store]:
    with Store(clinic.store) as s:
        yield s


@pytest.fixture
def tess(clinic: Clinic, store: Store) -> Identity:
    """The clinic's technician, logged in."""
    return clinic.login(store, TECHNICIAN)


@pytest.fixture
def sam(clinic: Clinic, store: Store) -> Identity:
    """The clinic's supervisor, logged in."""
    return clinic.login(store, SUPERVISOR)


@pytest.fixture
def refusing_course(store: Store, config: SiteConfig) -> int:
    """A dexamethasone course of PATIENT whose minimum interval refuses a session now."""
    course_id = start_course(store, config, patient=PATIENT, operator=TECHNICIAN, preset="dexamethasone", sessions=6,
                             min_interval_days=3, prescription={"electrode_area_cm2": 10.0})  # fmt: skip
    record_id = store.open_record(patient=PATIENT, operator=TECHNICIAN, prescription={}, limits={}, limits_sha256="",
                                  course_id=course_id)  # fmt: skip
    store.close_record(record_id, {"outcome": "completed", "energised": True, "dose_ma_min": 40.0})
    return course_id


def anchor_site(clinic: Clinic, store: Store, directory: Path) -> SiteConfig:
    """Name `directory` as the clinic's anchor (`[accounts] anchor`) and have the supervisor approve the file."""
    text = clinic.config.read_text(encoding="utf-8")
    anchored = text.replace("\n[accounts]\n", f'\n[accounts]\nanchor = "{directory}"\n')
    clinic.config.write_text(anchored, encoding="utf-8")
    site = load_config(clinic.config)
    detail = {"path": site.source, "sha256": site.sha256, "presets": sorted(site.presets), "note": "anchor"}
    clinic.people(store).signed(clinic.login(store, SUPERVISOR), "config-approve", detail)
    assert site.accounts.anchor == directory
    return site


def signatures_verify(clinic: Clinic, store: Store) -> int:
    """How many signatures the store's audit trail holds, each checked (`ionctl.config.people.check`) against
    the administrators the clinic's site file names; fails the test on the first that does not verify."""
    from ionctl.config.proof import check

    hashes = store.link_hashes()
    checked = check(store.audit(), load_config(clinic.config).accounts.administrators,
                    record_digest=store.record_digest, chain_hash=hashes.get)  # fmt: skip
    assert checked.problem is None, str(checked.problem)
    return checked.signatures

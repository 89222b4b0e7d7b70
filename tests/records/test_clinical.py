"""A record's chart details (schema 4): the treatment site and drug details as typed values, stored with the
opening (hashed, fixed), and a schema-3 file migrated with its records still verifying."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from ionctl.records import SCHEMA_VERSION, Store
from ionctl.records.chain import GENESIS, OPEN_FIELDS, link_hash, opening
from ionctl.records.clinical import BODY_SITES, ClinicalDetails, ClinicalError, TreatmentSite, is_simulated
from ionctl.records.store import migrate

PRESCRIPTION = {"drug": "dexamethasone", "electrode_area_cm2": 10.0, "current_ma": 4.0, "planned_dose_ma_min": 40.0}
DETAILS = ClinicalDetails(site=TreatmentSite.parse("left hand"), concentration="4 mg/mL", volume_ml=2.5,
                          lot="L-2291", prescriber="Dr A. Smith", electrode_product="patch-10cm2",
                          electrode_type="drug-electrode patch")  # fmt: skip


@pytest.mark.parametrize(
    ("text", "site", "laterality", "said"),
    [("left hand", "hand", "left", "left hand"), ("Right  Hand", "hand", "right", "right hand"),
     ("both feet", "foot", "both", "both feet"), ("bilateral hands", "hand", "both", "both hands"),
     ("r forearm", "forearm", "right", "right forearm"), ("back", "back", "none", "back"),
     ("left upper-arm", "upper arm", "left", "left upper arm")],
)  # fmt: skip
def test_a_treatment_site_reads_as_the_chart_says_it(text: str, site: str, laterality: str, said: str) -> None:
    parsed = TreatmentSite.parse(text)
    assert (parsed.body_site, parsed.laterality, parsed.text) == (site, laterality, said)
    assert TreatmentSite.parse(parsed.text) == parsed


@pytest.mark.parametrize(
    ("text", "says"),
    [("", "give a treatment site"), ("nose", "hand, foot"), ("hands", "both hands"), ("left back", "no side"),
     ("hand", "needs a side")],
)  # fmt: skip
def test_a_site_that_is_not_one_is_refused_with_what_is(text: str, says: str) -> None:
    with pytest.raises(ClinicalError, match=says):
        TreatmentSite.parse(text)


def test_every_body_site_has_a_plural_and_parses_both_ways() -> None:
    for site, plural in BODY_SITES.items():
        if site in ("back", "neck"):
            assert TreatmentSite.parse(site).laterality == "none"
            continue
        assert TreatmentSite.parse(f"both {plural}") == TreatmentSite(site, "both")
        assert TreatmentSite.parse(f"right {site}") == TreatmentSite(site, "right")


@pytest.mark.parametrize("volume", [0.0, -1.0, 150.0, float("nan")])
def test_a_volume_no_electrode_holds_is_refused(volume: float) -> None:
    with pytest.raises(ClinicalError, match="mL"):
        ClinicalDetails(volume_ml=volume)


def test_details_round_trip_and_leave_out_what_is_not_given() -> None:
    assert ClinicalDetails.from_dict(DETAILS.to_dict()) == DETAILS
    assert ClinicalDetails().to_dict() == {}
    assert ClinicalDetails(lot="  L 1  ").lot == "L 1"
    with pytest.raises(ClinicalError, match="at most 80"):
        ClinicalDetails(prescriber="x" * 81)


def test_details_are_stored_with_the_opening_hashed_and_fixed(tmp_path: Path) -> None:
    store = Store(tmp_path / "records.sqlite3")
    record_id = store.open_record(patient="P", operator="O", prescription=PRESCRIPTION, limits={},
                                  limits_sha256="", clinical=DETAILS.to_dict())  # fmt: skip
    store.close_record(record_id, {"outcome": "completed"})
    assert ClinicalDetails.of_record(store.get(record_id).fields) == DETAILS
    assert store.verify() is None
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.db.execute("UPDATE records SET clinical = '{}' WHERE id = ?", (record_id,))
    # an edit that gets past the triggers (a copy of the file edited elsewhere) breaks the chain
    for (name,) in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        store.db.execute(f"DROP TRIGGER {name}")
    forged = {**DETAILS.to_dict(), "site": {"body_site": "hand", "laterality": "right"}}
    store.db.execute("UPDATE records SET clinical = ? WHERE id = ?", (json.dumps(forged), record_id))
    broken = store.verify()
    assert broken is not None and broken.gseq == store.get(record_id).fields["open_gseq"]


def test_a_schema_3_file_is_migrated_and_its_records_still_verify(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, target=3)  # a file as the schema-3 ionctl left it, with one record in it

    row = {"id": 1, "created_utc": "2026-01-01T00:00:00.000+00:00", "patient": "P", "operator": "O",
           "prescription": json.dumps(PRESCRIPTION), "limits": "{}", "limits_sha256": "x", "open_gseq": 1,
           "course_ref": "bench-a/3"}  # fmt: skip
    columns = (*OPEN_FIELDS, "course_ref")
    db.execute(f"INSERT INTO records ({', '.join(columns)}, open_hash) VALUES ({', '.join('?' * len(columns))}, ?)",
               [row[k] for k in columns] + [link_hash(GENESIS, "open", opening(row))])  # fmt: skip
    assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    db.close()
    with Store(path) as migrated:
        assert migrated.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        assert migrated.verify() is None
        migrated.close_record(1, {"outcome": "interrupted"})
        record = migrated.get(1)
        assert record.fields["clinical"] is None and ClinicalDetails.of_record(record.fields) is None
        after = migrated.open_record(patient="P", operator="O", prescription=PRESCRIPTION, limits={},
                                     limits_sha256="", clinical=DETAILS.to_dict())  # fmt: skip
        assert ClinicalDetails.of_record(migrated.get(after).fields) == DETAILS
        assert migrated.verify() is None


@pytest.mark.parametrize(
    ("fields", "simulated"),
    [({"clinical": json.dumps({"simulated": True})}, True), ({"device": json.dumps({"model": "IONTO-SIM 1"})}, True),
     ({"device": {"model": "IONTO-SIM 1"}}, True), ({"device": json.dumps({"model": "MODEL 2400"})}, False),
     ({"clinical": None, "device": None}, False), ({"clinical": "not json"}, False)],
)  # fmt: skip
def test_a_record_is_simulated_when_its_details_or_device_say_so(fields: dict[str, object], simulated: bool) -> None:
    assert is_simulated(fields) is simulated


@pytest.mark.parametrize(
    ("line", "name", "error"),
    [('clinic_name = "Praxis  Dr. Weber"', "Praxis Dr. Weber", None), ("", None, None),
     ('clinic_name = ""', None, "clinic_name"), ('clinic_name = "x\\ny"', None, "one line"),
     (f'clinic_name = "{"x" * 81}"', None, "at most 80"), ("clinic_name = 3", None, "clinic_name")],
)  # fmt: skip
def test_the_site_file_names_the_clinic_for_the_chart(tmp_path: Path, line: str, name: str | None,
                                                     error: str | None) -> None:  # fmt: skip
    from ionctl.config import ConfigError
    from ionctl.config.site import bench_settings

    site = tmp_path / "site.toml"
    site.write_text(f'{line}\ntime_zone = "Europe/Berlin"\n', encoding="utf-8")
    if error is None:
        assert bench_settings(site).clinic_name == name
    else:
        with pytest.raises(ConfigError, match=error):
            bench_settings(site)

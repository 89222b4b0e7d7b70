"""The FHIR R4 export: the bundle's resources, units, codes and references checked here, and the whole bundle
validated with a real FHIR model library (`fhir.resources`, its R4B models: R4B is R4 plus fixes, and the
resources used here are the same in both; it checks structure, not code bindings, hence the code checks)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from ionctl.cli import main as cli
from ionctl.records import Record, Store
from ionctl.records.fhir import ROUTE_SYSTEM, UCUM, procedure_status, to_fhir_bundle
from ionctl.records.skin import ADVERSE_REACTION, AFTER, ITEMS, SKIN_CHECK_AFTER, Addendum, SkinCheck

PRESCRIPTION = {"drug": "dexamethasone", "electrode_area_cm2": 10.0, "current_ma": 4.0, "planned_dose_ma_min": 40.0}
LIMITS = {"max_current_ma": 4.0, "max_density_ma_cm2": 0.5}
DEVICE = {"address": "socket://localhost:1", "model": "IONTO-SIM 2", "serial": "SN-0042", "firmware": "1.4.2",
          "protocol": "1.0", "hw_max_current_ma": 5.0}  # fmt: skip
# FHIR R4 value sets (required bindings the model library does not check).
PROCEDURE_STATUS = {"preparation", "in-progress", "not-done", "on-hold", "stopped", "completed", "entered-in-error",
                    "unknown"}  # fmt: skip
MEDADMIN_STATUS = {"in-progress", "not-done", "on-hold", "completed", "entered-in-error", "stopped", "unknown"}
OBSERVATION_STATUS = {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error",
                      "unknown"}  # fmt: skip


def stored(store: Store, outcome: str | None = "completed", *, energised: bool = True, patient: str = "P-7") -> Record:
    record_id = store.open_record(patient=patient, operator="O-3", prescription=PRESCRIPTION, limits=LIMITS,
                                  limits_sha256="ab" * 32, created_utc="2026-03-01T09:00:00.000+00:00")  # fmt: skip
    writer = store.session_writer(record_id)
    for i in range(20):
        writer.sample((i * 0.5, 4.0, 4.0, 12.0, 3000.0, i * 0.5 * 4 / 60, i * 0.5 * 4 / 60, 0, "delivering"))
    if outcome is not None:
        summary: dict[str, Any] = {"outcome": outcome, "fault": "open_circuit" if outcome == "fault" else None,
                   "message": "electrode lifted" if outcome == "fault" else "", "energised": energised}  # fmt: skip
        if energised:
            summary |= {"device": DEVICE, "dose_ma_min": 39.8, "dose_source": "device", "duration_s": 630.0,
                        "peak_current_ma": 4.02, "impedance_start_ohm": 3200.0,
                        "impedance_end_ohm": 2100.0}  # fmt: skip
        writer.close(summary, ended_utc="2026-03-01T09:11:00.000+00:00")
    else:
        writer.flush()
    return store.get(record_id)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "records.sqlite3")


def by_type(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def one(bundle: dict[str, Any], kind: str) -> dict[str, Any]:
    (resource,) = by_type(bundle, kind)
    return resource


def full_url(bundle: dict[str, Any], resource: dict[str, Any]) -> str:
    (url,) = [e["fullUrl"] for e in bundle["entry"] if e["resource"] is resource]
    return str(url)


def references(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return own + [r for v in node.values() for r in references(v)]
    if isinstance(node, list):
        return [r for v in node for r in references(v)]
    return []


def validate(bundle: dict[str, Any]) -> Any:
    pytest.importorskip("fhir.resources")
    from fhir.resources.R4B.bundle import Bundle

    return Bundle.model_validate(bundle)


@pytest.mark.parametrize(
    ("outcome", "energised"),
    [("completed", True), ("fault", True), ("stopped", True), ("refused", False), ("aborted", False), (None, False)],
)
def test_the_bundle_validates_against_the_fhir_models(store: Store, outcome: str | None, energised: bool) -> None:
    bundle = to_fhir_bundle(stored(store, outcome, energised=energised))
    model = validate(bundle)
    assert model.type == "collection"
    kinds = {type(e.resource).__name__ for e in model.entry}
    assert {"Procedure", "MedicationAdministration"} <= kinds
    # and the JSON text the CLI writes is the same bundle
    assert validate(json.loads(json.dumps(bundle))).model_dump(mode="json") == model.model_dump(mode="json")


def test_the_validation_is_real_a_wrong_field_in_a_nested_resource_fails(store: Store) -> None:
    bundle = to_fhir_bundle(stored(store))
    one(bundle, "Procedure")["performedDateTime"] = "not a date"
    pytest.importorskip("fhir.resources")
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        validate(bundle)


def test_procedure_device_and_references(store: Store) -> None:
    record = stored(store)
    bundle = to_fhir_bundle(record)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(set(urls)) == len(urls)
    for url in urls:
        assert url.startswith("urn:uuid:") and str(uuid.UUID(url.removeprefix("urn:uuid:"))) == url[9:]
    # every literal reference resolves inside the bundle
    assert set(references(bundle)) <= set(urls), set(references(bundle)) - set(urls)

    device = one(bundle, "Device")
    assert device["serialNumber"] == "SN-0042" and device["modelNumber"] == "IONTO-SIM 2"
    assert device["deviceName"] == [{"name": "IONTO-SIM 2", "type": "model-name"}]
    assert {v["type"]["text"]: v["value"] for v in device["version"]} == {"firmware": "1.4.2", "protocol": "1.0"}

    procedure = one(bundle, "Procedure")
    assert procedure["status"] == "completed" and procedure["code"] == {"text": "Iontophoresis"}
    assert procedure["subject"]["identifier"] == {"value": "P-7"} and procedure["subject"]["type"] == "Patient"
    assert procedure["performer"][0]["actor"]["identifier"] == {"value": "O-3"}
    assert procedure["performedPeriod"] == {"start": "2026-03-01T09:00:00.000Z", "end": "2026-03-01T09:11:00.000Z"}
    assert procedure["usedReference"][0]["reference"] == full_url(bundle, device)

    admin = one(bundle, "MedicationAdministration")
    assert admin["status"] == "completed" and admin["medicationCodeableConcept"] == {"text": "dexamethasone"}
    assert admin["dosage"]["route"]["coding"] == [{"system": ROUTE_SYSTEM, "code": "IONTO",
                                                   "display": "Topical application, iontophoresis"}]  # fmt: skip
    assert ROUTE_SYSTEM == "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"
    assert admin["partOf"] == [{"reference": full_url(bundle, procedure)}]
    assert admin["subject"] == procedure["subject"] and admin["device"][0]["reference"] == full_url(bundle, device)


def test_observations_carry_ucum_quantities_linked_to_the_procedure(store: Store) -> None:
    bundle = to_fhir_bundle(stored(store))
    procedure_url = full_url(bundle, one(bundle, "Procedure"))
    observations = {o["code"]["text"]: o for o in by_type(bundle, "Observation")}
    quantities = {text: o["valueQuantity"] for text, o in observations.items()}
    assert quantities == {
        "Iontophoresis delivered dose": {"value": 39.8, "unit": "mA·min", "system": UCUM, "code": "mA.min"},
        "Iontophoresis peak current": {"value": 4.02, "unit": "mA", "system": UCUM, "code": "mA"},
        "Skin-electrode impedance at start": {"value": 3200.0, "unit": "Ω", "system": UCUM, "code": "Ohm"},
        "Skin-electrode impedance at end": {"value": 2100.0, "unit": "Ω", "system": UCUM, "code": "Ohm"},
        "Iontophoresis duration": {"value": 10.5, "unit": "min", "system": UCUM, "code": "min"},
    }
    assert UCUM == "http://unitsofmeasure.org"
    for o in observations.values():
        assert o["status"] == "final" and o["status"] in OBSERVATION_STATUS
        assert o["partOf"] == [{"reference": procedure_url}]
        assert o["subject"]["identifier"] == {"value": "P-7"}
    assert observations["Iontophoresis delivered dose"]["method"] == {"text": "dose counted by the device"}


@pytest.mark.parametrize(
    ("outcome", "energised", "status"),
    [
        ("completed", True, "completed"),
        ("stopped", True, "stopped"),
        ("aborted", True, "stopped"),
        ("fault", True, "stopped"),
        ("interrupted", True, "stopped"),
        ("fault", False, "not-done"),
        ("aborted", False, "not-done"),
        ("refused", False, "not-done"),
        (None, False, "in-progress"),
        ("something new", True, "unknown"),
    ],
)
def test_status_mapping(outcome: str | None, energised: bool, status: str) -> None:
    assert procedure_status(outcome, energised) == status
    assert status in PROCEDURE_STATUS and status in MEDADMIN_STATUS


def test_a_fault_is_stopped_with_its_reason_and_a_refusal_has_no_device_or_observations(store: Store) -> None:
    fault = to_fhir_bundle(stored(store, "fault"))
    procedure = one(fault, "Procedure")
    assert procedure["status"] == "stopped" and procedure["outcome"] == {"text": "fault"}
    assert procedure["statusReason"] == {"text": "open_circuit; electrode lifted"}
    assert one(fault, "MedicationAdministration")["status"] == "stopped"

    refused = to_fhir_bundle(stored(store, "refused", energised=False, patient="P-8"))
    assert one(refused, "Procedure")["status"] == "not-done"
    assert by_type(refused, "Device") == [] and by_type(refused, "Observation") == []
    assert "usedReference" not in one(refused, "Procedure")


def test_full_urls_are_deterministic_per_record_and_chain_hash(store: Store) -> None:
    first = stored(store)
    again = to_fhir_bundle(store.get(first.id))
    assert to_fhir_bundle(first) == again
    assert to_fhir_bundle(Record.from_dict(first.to_dict())) == again  # from the JSON export too
    other = to_fhir_bundle(stored(store))  # same content, another record id and chain hash
    assert not {e["fullUrl"] for e in other["entry"]} & {e["fullUrl"] for e in again["entry"]}
    forged = Record({**first.fields, "chain_hash": "0" * 64}, first.events, first.telemetry)
    assert to_fhir_bundle(forged)["id"] != again["id"]


def test_cli_exports_fhir(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = stored(store)
    out = tmp_path / "bundle.json"
    db = str(store.path)
    assert cli(["records", "export", str(record.id), "--format", "fhir", "-o", str(out), "--db", db]) == 0
    assert json.loads(out.read_text(encoding="utf-8")) == to_fhir_bundle(record)
    capsys.readouterr()
    assert cli(["records", "export", str(record.id), "--format", "fhir", "--db", db]) == 0
    assert json.loads(capsys.readouterr().out) == to_fhir_bundle(record)


@pytest.mark.parametrize(("reaction", "complication"), [("mild erythema under the cathode", True), ("none", False)])
def test_skin_checks_and_an_adverse_reaction_are_in_the_procedure(store: Store, reaction: str,
                                                                 complication: bool) -> None:  # fmt: skip
    record = stored(store)
    clear = SkinCheck.of(AFTER, dict.fromkeys(ITEMS, "no"))
    skin_no = store.append_audit("skin-check-after", "O-3", clear.to_detail(), record_id=record.id,
                                 utc="2026-03-01T09:12:00.000+00:00")  # fmt: skip
    late = store.append_addendum(record.id, "O-3", Addendum(ADVERSE_REACTION, text=reaction))
    bundle = to_fhir_bundle(store.get(record.id))
    validate(bundle)
    procedure = one(bundle, "Procedure")
    notes = {n["text"]: n for n in procedure["note"]}
    skin = notes[f"#{skin_no} skin-check-after: erythema: no; blistering: no; pain: no; itching: no; other: no; "
                 "no adverse reaction"]
    assert skin["authorString"] == "O-3" and skin["time"] == "2026-03-01T09:12:00.000Z"
    assert f"#{late} adverse-reaction: {reaction}" in notes
    assert ("complication" in procedure) is complication
    if complication:
        assert procedure["complication"] == [{"text": reaction}]


def test_a_reaction_reported_by_the_skin_check_after_is_a_complication(store: Store) -> None:
    record = stored(store)
    check = SkinCheck.of(AFTER, {**dict.fromkeys(ITEMS, "no"), "erythema": "yes"}, reaction="erythema, 2 cm")
    store.append_addendum(record.id, "O-3", Addendum(SKIN_CHECK_AFTER, skin=check))
    procedure = one(to_fhir_bundle(store.get(record.id)), "Procedure")
    assert procedure["complication"] == [{"text": "erythema, 2 cm"}]
    assert any("erythema: yes;" in n["text"] and "adverse reaction: erythema, 2 cm" in n["text"]
               for n in procedure["note"])  # fmt: skip

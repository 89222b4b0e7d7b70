"""The FHIR R4 export: the bundle's resources, units, codes and references checked here, and every bundle validated
with a real FHIR model library (`fhir.resources`, its R4B models: R4B is R4 plus fixes, and the resources used here
are the same in both; it checks structure, not code bindings, hence the code checks against the published lists
below, kept here apart from the export's own tables so that a code the export adds must be checked in by hand)."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ionctl.cli import main as cli
from ionctl.records import Record, Store, timefmt
from ionctl.records.clinical import BODY_SITES, MIDLINE, ClinicalDetails, TreatmentSite
from ionctl.records.fhir import procedure_status, to_fhir_bundle
from ionctl.records.fhir_terms import BODY_SITE_CODES, concentration_ratio
from ionctl.records.skin import ADVERSE_REACTION, AFTER, CORRECTION, ITEMS, SKIN_CHECK_AFTER, Addendum, SkinCheck

SNOMED = "http://snomed.info/sct"
CPT = "http://www.ama-assn.org/go/cpt"
UCUM = "http://unitsofmeasure.org"
ROUTE = "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"

#: Every code the export may write, as its code system publishes it: system -> code -> display.
PUBLISHED: dict[str, dict[str, str]] = {
    # AMA CPT 97033 and its descriptor, as payers print it (the BCBS iontophoresis policy; docs/SOURCES.md).
    CPT: {"97033": "Application of a modality to 1 or more areas; iontophoresis, each 15 minutes"},
    # HL7 THO, ValueSet v3-IontophoresisRoute (https://terminology.hl7.org/ValueSet-v3-IontophoresisRoute.html).
    ROUTE: {"IONTO": "Topical application, iontophoresis"},
    # HL7 THO, https://terminology.hl7.org/CodeSystem-observation-category.html
    "http://terminology.hl7.org/CodeSystem/observation-category": {"procedure": "Procedure"},
    # FHIR R4 signature-type code system (ASTM E1762-95(2013)), http://hl7.org/fhir/R4/codesystem-signature-type.html
    "urn:iso-astm:E1762-95:2013": {"1.2.840.10065.1.12.1.1": "Author's Signature",
                                   "1.2.840.10065.1.12.1.5": "Verification Signature"},
    # HL7 THO provenance-participant-type, http://hl7.org/fhir/R4/codesystem-provenance-participant-type.html
    "http://terminology.hl7.org/CodeSystem/provenance-participant-type": {"author": "Author", "verifier": "Verifier"},
    # HL7 THO v3-ActReason, https://terminology.hl7.org/CodeSystem-v3-ActReason.html
    "http://terminology.hl7.org/CodeSystem/v3-ActReason": {"HTEST": "test health data"},
    # SNOMED CT body structures, each as a published value set gives it: ANS (France) JDV Human Substance
    # Administration Site CISIS (ANS); US VA ConceptMap VF-VitalsSite (VA); IHE PCC mPSC target-site value sets
    # (IHE); FHIR R4 example Media/xray (FHIR); DICOM PS3.16 CID 4031 (DICOM). URLs in ionctl/records/fhir_terms.py.
    SNOMED: {
        "85151006": "Structure of left hand",  # ANS, FHIR
        "78791008": "Structure of right hand",  # ANS
        "22335008": "Structure of left foot",  # ANS
        "7769000": "Structure of right foot",  # ANS
        "5951000": "Structure of left wrist region",  # VA, IHE
        "9736006": "Structure of right wrist region",  # VA, IHE
        "66480008": "Structure of left forearm",  # ANS, VA, IHE
        "64262003": "Structure of right forearm",  # ANS, VA, IHE
        "368148009": "Left elbow region structure",  # IHE
        "368149001": "Right elbow region structure",  # IHE
        "368208006": "Left upper arm structure",  # ANS, VA, IHE
        "368209003": "Right upper arm structure",  # ANS, VA, IHE
        "91775009": "Structure of left shoulder region",  # IHE
        "91774008": "Structure of right shoulder region",  # IHE
        "20437008": "Structure of left axillary region",  # VA
        "19654004": "Structure of right axillary region",  # VA
        "82169009": "Structure of left knee region",  # VA, IHE
        "6757004": "Structure of right knee region",  # VA, IHE
        "51636004": "Structure of left ankle",  # VA, IHE
        "6685009": "Structure of right ankle",  # VA, IHE
        "48979004": "Structure of left lower leg",  # IHE
        "32696007": "Structure of right lower leg",  # IHE
        "61396006": "Structure of left thigh",  # ANS, VA, IHE
        "11207009": "Structure of right thigh",  # ANS, VA, IHE
        "77568009": "Structure of back of trunk",  # ANS, IHE
        "45048000": "Neck structure",  # VA, DICOM
    },
}  # fmt: skip
#: UCUM codes (https://ucum.org/ucum): the measured quantities and a label's concentration units.
UCUM_PUBLISHED = {"mA", "mA/cm2", "mA.min", "Ohm", "min", "s", "mL", "L", "mg", "g", "ug", "ng", "%", "1"}
# FHIR R4 value sets (required bindings the model library does not check).
PROCEDURE_STATUS = {"preparation", "in-progress", "not-done", "on-hold", "stopped", "completed", "entered-in-error",
                    "unknown"}  # fmt: skip
MEDADMIN_STATUS = {"in-progress", "not-done", "on-hold", "completed", "entered-in-error", "stopped", "unknown"}

PRESCRIPTION = {"drug": "dexamethasone", "polarity": "cathode", "electrode_area_cm2": 10.0, "current_ma": 4.0,
                "planned_dose_ma_min": 40.0}  # fmt: skip
LIMITS = {"max_current_ma": 4.0, "max_density_ma_cm2": 0.5}
DEVICE = {"address": "socket://localhost:1", "model": "IONTO-BENCH 2", "serial": "SN-0042", "firmware": "1.4.2",
          "protocol": "1.0", "hw_max_current_ma": 5.0}  # fmt: skip
DETAILS = ClinicalDetails(site=TreatmentSite.parse("left hand"), concentration="4 mg/mL", volume_ml=1.5, lot="L-2207",
                          prescriber="Dr. Ada Lee", electrode_product="IontoPatch 80",
                          electrode_type="drug-reservoir patch")  # fmt: skip
PDF = b"%PDF-1.4\n% a stand-in for the chart page\n%%EOF\n"
OPENED, ENDED = "2026-03-01T09:00:00.000+00:00", "2026-03-01T09:11:00.000+00:00"


def stored(store: Store, outcome: str | None = "completed", *, energised: bool = True, patient: str = "P-7",
           details: ClinicalDetails | None = DETAILS, opened: str = OPENED, ended: str = ENDED,
           **opening: Any) -> Record:  # fmt: skip
    record_id = store.open_record(patient=patient, operator="O-3", prescription=PRESCRIPTION, limits=LIMITS,
                                  limits_sha256="ab" * 32, created_utc=opened,
                                  clinical=details.to_dict() if details is not None else None, **opening)  # fmt: skip
    writer = store.session_writer(record_id)
    for i in range(20):
        writer.sample((i * 0.5, 4.0, 4.0, 12.0, 3000.0, i * 0.5 * 4 / 60, i * 0.5 * 4 / 60, 0, "delivering"))
    if outcome is not None:
        summary: dict[str, Any] = {"outcome": outcome, "fault": "open_circuit" if outcome == "fault" else None,
                   "message": "electrode lifted" if outcome == "fault" else "", "energised": energised}  # fmt: skip
        if energised:
            summary |= {"device": DEVICE, "dose_ma_min": 39.8, "dose_source": "device", "host_dose_ma_min": 39.6,
                        "device_dose_ma_min": 39.8, "duration_s": 630.0, "peak_current_ma": 4.02,
                        "peak_density_ma_cm2": 0.402, "impedance_start_ohm": 3200.0,
                        "impedance_end_ohm": 2100.0}  # fmt: skip
        writer.close(summary, ended_utc=ended)
    else:
        writer.flush()
    return store.get(record_id)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "records.sqlite3") as opened:
        yield opened


@pytest.fixture
def new_york() -> Iterator[None]:
    timefmt.use_zone("America/New_York")
    try:
        yield
    finally:
        timefmt.use_zone(None)


def by_type(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def one(bundle: dict[str, Any], kind: str) -> dict[str, Any]:
    (resource,) = by_type(bundle, kind)
    return resource


def full_url(bundle: dict[str, Any], resource: dict[str, Any]) -> str:
    (url,) = [e["fullUrl"] for e in bundle["entry"] if e["resource"] is resource]
    return str(url)


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def check_references(bundle: dict[str, Any]) -> None:
    """Every reference resolves: a fullUrl in the bundle, or `#id` a resource contained in the same resource."""
    urls = {e["fullUrl"] for e in bundle["entry"]}
    for entry in bundle["entry"]:
        contained = {c["id"] for c in entry["resource"].get("contained", [])}
        for ref in (n["reference"] for n in walk(entry["resource"]) if isinstance(n.get("reference"), str)):
            assert ref in urls or (ref.startswith("#") and ref[1:] in contained), ref


def check_codes(bundle: dict[str, Any]) -> None:
    """Every Coding and every UCUM Quantity the bundle holds is a published code, with its published display."""
    seen = 0
    for node in walk(bundle):
        system, code = node.get("system"), node.get("code")
        if not isinstance(system, str) or not isinstance(code, str):
            continue
        seen += 1
        if system == UCUM:
            assert code in UCUM_PUBLISHED, code
        else:
            assert system in PUBLISHED and code in PUBLISHED[system], (system, code)
            assert node.get("display", PUBLISHED[system][code]) == PUBLISHED[system][code], (system, code)
    assert seen, "no codes at all"


def validate(bundle: dict[str, Any]) -> Any:
    pytest.importorskip("fhir.resources")
    from fhir.resources.R4B.bundle import Bundle

    check_references(bundle)
    check_codes(bundle)
    return Bundle.model_validate(bundle)


def sign(store: Store, record: Record, signer: str, full_name: str, role: str, meaning: str, utc: str) -> bytes:
    """A real Ed25519 sign-off as `ionctl records sign` stores it (key made here); the public key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from ionctl.config.people import Signature, fingerprint

    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    unsigned = Signature(signer, full_name, role, utc, meaning, "cd" * 32, fingerprint(public))
    signature = Signature(**{**unsigned.to_dict(), "value": key.sign(unsigned.payload()).hex()})
    store.append_audit("record-sign", signer, {"meaning": meaning, "record_sha256": "cd" * 32,
                                               "signature": signature.to_dict()},
                       record_id=record.id, utc=utc)  # fmt: skip
    return public


# -- every kind of record validates, with published codes only -------------------------------------------------


def _kinds(store: Store) -> dict[str, Record]:
    course = store.insert_course(patient="P-7", operator="O-3", preset="dexamethasone", sessions=6, per_week=2.0,
                                 min_interval_days=3.0, plan={}, config_sha256=None)  # fmt: skip
    signed = stored(store, details=ClinicalDetails(site=TreatmentSite.parse("both feet"), concentration="0.4 %"))
    store.append_addendum(signed.id, "O-3", Addendum(SKIN_CHECK_AFTER, skin=SkinCheck.of(
        AFTER, {**dict.fromkeys(ITEMS, "no"), "erythema": "yes"}, reaction="erythema under the cathode")))  # fmt: skip
    store.append_addendum(signed.id, "O-3", Addendum(ADVERSE_REACTION, text="blister seen the next day"))
    sign(store, signed, "O-3", "Olu Operator", "technician", "performed", "2026-03-01T09:12:00.000+00:00")
    sign(store, signed, "sam", "Sam Supervisor", "supervisor", "reviewed", "2026-03-01T10:00:00.000+00:00")
    return {
        "completed": stored(store),
        "faulted": stored(store, "fault"),
        "refused": stored(store, "refused", energised=False),
        "open": stored(store, None, energised=False),
        "before schema 4": stored(store, details=None),
        "course session": stored(store, course_id=course),
        "another bench's course": stored(store, course_ref="bench-b/3"),
        "simulated": stored(store, details=ClinicalDetails(site=TreatmentSite.parse("back"), simulated=True)),
        "checks, reactions and signatures": store.get(signed.id),
    }


def test_every_kind_of_record_validates_with_published_codes_only(store: Store) -> None:
    for kind, record in _kinds(store).items():
        for pdf in (None, PDF):
            bundle = to_fhir_bundle(record, pdf=pdf, clinic_name="Lakeside Clinic", bench="bench-a")
            model = validate(bundle)
            assert model.type == "collection", kind
            kinds = {type(e.resource).__name__ for e in model.entry}
            assert {"Procedure", "MedicationAdministration"} <= kinds, kind
            assert ("DocumentReference" in kinds) is (pdf is not None), kind
            procedure = one(bundle, "Procedure")
            assert procedure["status"] in PROCEDURE_STATUS
            assert one(bundle, "MedicationAdministration")["status"] in MEDADMIN_STATUS
            # the JSON text the CLI writes is the same bundle
            assert validate(json.loads(json.dumps(bundle))).model_dump(mode="json") == model.model_dump(mode="json")


def test_the_validation_is_real_a_wrong_field_in_a_nested_resource_fails(store: Store) -> None:
    bundle = to_fhir_bundle(stored(store), pdf=PDF)
    one(bundle, "DocumentReference")["content"][0]["attachment"]["size"] = "big"
    pytest.importorskip("fhir.resources")
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        validate(bundle)


def test_the_code_check_is_real_an_unpublished_code_fails(store: Store) -> None:
    bundle = to_fhir_bundle(stored(store))
    one(bundle, "Procedure")["code"]["coding"].append({"system": SNOMED, "code": "1234567", "display": "made up"})
    with pytest.raises(AssertionError, match="1234567"):
        check_codes(bundle)


# -- the Procedure ----------------------------------------------------------------------------------------------


def test_the_procedure_is_cpt_97033_with_no_snomed_procedure_code(store: Store) -> None:
    procedure = one(to_fhir_bundle(stored(store)), "Procedure")
    assert procedure["code"] == {"coding": [{"system": CPT, "code": "97033", "display": PUBLISHED[CPT]["97033"]}],
                                 "text": "Iontophoresis"}  # fmt: skip


def test_performed_period_is_the_clinics_local_time_with_its_offset(store: Store, new_york: None) -> None:
    winter = one(to_fhir_bundle(stored(store)), "Procedure")
    assert winter["performedPeriod"] == {"start": "2026-03-01T04:00:00-05:00", "end": "2026-03-01T04:11:00-05:00"}
    summer = stored(store, opened="2026-07-01T12:00:00.250+00:00", ended="2026-07-01T12:10:00.000+00:00")
    assert one(to_fhir_bundle(summer), "Procedure")["performedPeriod"] == {
        "start": "2026-07-01T08:00:00.250-04:00", "end": "2026-07-01T08:10:00-04:00"}  # fmt: skip


@pytest.mark.parametrize(
    ("site", "codes"),
    [("left hand", ["85151006"]), ("right hand", ["78791008"]), ("both feet", ["22335008", "7769000"]),
     ("back", ["77568009"])],
)  # fmt: skip
def test_body_site_is_snomed_ct_with_laterality(store: Store, site: str, codes: list[str]) -> None:
    record = stored(store, details=ClinicalDetails(site=TreatmentSite.parse(site)))
    body_sites = one(to_fhir_bundle(record), "Procedure")["bodySite"]
    assert [c["coding"][0]["code"] for c in body_sites] == codes
    assert all(c["coding"][0]["system"] == SNOMED for c in body_sites)
    assert all(site in c["text"] for c in body_sites)


def test_every_body_site_has_its_published_snomed_codes() -> None:
    """The table covers `BODY_SITES` exactly: each side a site can take (left and right, or none for a midline
    site) has a SNOMED CT code, and each code is one of the published ones above with its description."""
    assert set(BODY_SITE_CODES) == set(BODY_SITES)
    for site in BODY_SITES:
        sides = {"none"} if site in MIDLINE else {"left", "right"}
        assert set(BODY_SITE_CODES[site]) == sides, site
        for code, display in BODY_SITE_CODES[site].values():
            assert PUBLISHED[SNOMED][code] == display, (site, code)
    codes = [code for sides in BODY_SITE_CODES.values() for code, _ in sides.values()]
    assert len(codes) == len(set(codes)) == len(PUBLISHED[SNOMED])


def test_a_record_made_before_chart_details_has_no_body_site_and_says_so(store: Store) -> None:
    bundle = to_fhir_bundle(stored(store, details=None))
    procedure = one(bundle, "Procedure")
    assert "bodySite" not in procedure and "usedCode" not in procedure
    assert any("not recorded" in n["text"] for n in procedure["note"])
    admin = one(bundle, "MedicationAdministration")
    assert "dose" not in admin["dosage"] and "request" not in admin


def test_performer_basedon_device_and_references(store: Store) -> None:
    record = stored(store)
    sign(store, record, "O-3", "Olu Operator", "technician", "performed", "2026-03-01T09:12:00.000+00:00")
    bundle = to_fhir_bundle(store.get(record.id), pdf=PDF, clinic_name="Lakeside Clinic")
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(set(urls)) == len(urls)
    for url in urls:
        assert url.startswith("urn:uuid:") and str(uuid.UUID(url.removeprefix("urn:uuid:"))) == url[9:]
    device = one(bundle, "Device")
    assert device["serialNumber"] == "SN-0042" and device["modelNumber"] == "IONTO-BENCH 2"
    assert {v["type"]["text"]: v["value"] for v in device["version"]} == {"firmware": "1.4.2", "protocol": "1.0"}
    procedure = one(bundle, "Procedure")
    assert procedure["subject"]["identifier"] == {"value": "P-7"} and procedure["subject"]["type"] == "Patient"
    operator = {"type": "Practitioner", "identifier": {"value": "O-3"}, "display": "Olu Operator"}
    clinic = {"type": "Organization", "display": "Lakeside Clinic"}
    assert procedure["performer"] == [{"actor": operator, "onBehalfOf": clinic}]
    assert "basedOn" not in procedure  # a session outside any course
    assert procedure["usedReference"][0]["reference"] == full_url(bundle, device)
    assert procedure["usedCode"] == [{"text": "electrode: IontoPatch 80 (drug-reservoir patch)"}]
    assert procedure["report"][0]["reference"] == full_url(bundle, one(bundle, "DocumentReference"))
    assert "meta" not in procedure  # not simulated


def test_a_course_session_is_based_on_its_course_clinic_wide(store: Store) -> None:
    course = store.insert_course(patient="P-7", operator="O-3", preset="dexamethasone", sessions=6, per_week=2.0,
                                 min_interval_days=3.0, plan={}, config_sha256=None)  # fmt: skip
    mine = stored(store, course_id=course)

    def based_on(record: Record, bench: str | None) -> Any:
        return one(to_fhir_bundle(record, bench=bench), "Procedure")["basedOn"]

    assert based_on(mine, "bench-a") == [{"type": "CarePlan", "identifier": {
        "type": {"text": "ionctl treatment course"}, "value": f"bench-a/{course}"},
        "display": f"treatment course bench-a/{course}"}]  # fmt: skip
    assert based_on(mine, None)[0]["identifier"]["value"] == str(course)
    theirs = stored(store, course_ref="bench-b/3")
    assert based_on(theirs, "bench-a")[0]["identifier"]["value"] == "bench-b/3"


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


def test_a_fault_is_stopped_with_its_reason_and_a_refusal_has_no_device_or_observation(store: Store) -> None:
    fault = to_fhir_bundle(stored(store, "fault"))
    procedure = one(fault, "Procedure")
    assert procedure["status"] == "stopped" and procedure["outcome"] == {"text": "fault"}
    assert procedure["statusReason"] == {"text": "open_circuit; electrode lifted"}
    assert "outcome fault: fault open_circuit; electrode lifted" in [n["text"] for n in procedure["note"]]
    assert one(fault, "MedicationAdministration")["status"] == "stopped"

    refused = to_fhir_bundle(stored(store, "refused", energised=False, patient="P-8"))
    assert one(refused, "Procedure")["status"] == "not-done"
    assert by_type(refused, "Device") == [] and by_type(refused, "Observation") == []
    assert "usedReference" not in one(refused, "Procedure")


def test_skin_checks_an_adverse_reaction_and_a_correction_are_notes_in_words(store: Store) -> None:
    record = stored(store)
    check = SkinCheck.of(AFTER, {**dict.fromkeys(ITEMS, "no"), "erythema": "yes"}, reaction="erythema, 2 cm")
    first = store.append_addendum(record.id, "O-3", Addendum(SKIN_CHECK_AFTER, skin=check))
    late = store.append_addendum(record.id, "O-3", Addendum(ADVERSE_REACTION, text="blister under the cathode"))
    fixed = store.append_addendum(record.id, "O-3", Addendum(CORRECTION, text="erythema 3 cm", corrects=first))
    procedure = one(to_fhir_bundle(store.get(record.id)), "Procedure")
    notes = {n["text"]: n for n in procedure["note"] if "authorString" in n}
    skin = next(t for t in notes if t.startswith(f"Skin check after the session (#{first}): "))
    assert "erythema: yes;" in skin and "adverse reaction: erythema, 2 cm" in skin
    assert skin.endswith(f"[corrected by #{fixed}]")
    assert f"Adverse reaction (#{late}): blister under the cathode" in notes
    assert f"Correction (#{fixed}): corrects #{first}: erythema 3 cm" in notes
    assert all(n["authorString"] == "O-3" and n["time"].endswith("+00:00") for n in notes.values())
    assert all("{" not in text for text in notes)
    assert procedure["complication"] == [{"text": "erythema, 2 cm"}, {"text": "blister under the cathode"}]


def test_a_clear_skin_check_is_no_complication(store: Store) -> None:
    record = stored(store)
    store.append_addendum(record.id, "O-3", Addendum(SKIN_CHECK_AFTER, skin=SkinCheck.of(AFTER, dict.fromkeys(
        ITEMS, "no"))))  # fmt: skip
    procedure = one(to_fhir_bundle(store.get(record.id)), "Procedure")
    assert "complication" not in procedure
    assert any(n["text"].endswith("no adverse reaction") for n in procedure["note"])


def test_a_simulated_session_is_labelled_test_data_on_every_resource(store: Store) -> None:
    record = stored(store, details=ClinicalDetails(site=TreatmentSite.parse("back"), simulated=True))
    bundle = to_fhir_bundle(record, pdf=PDF)
    htest = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST",
             "display": "test health data"}  # fmt: skip
    assert all(e["resource"]["meta"] == {"security": [htest]} for e in bundle["entry"])
    assert any("SIMULATED DEVICE" in n["text"] for n in one(bundle, "Procedure")["note"])


# -- the MedicationAdministration -------------------------------------------------------------------------------


def test_the_administration_says_volume_route_concentration_lot_and_prescriber(store: Store) -> None:
    bundle = to_fhir_bundle(stored(store))
    admin = one(bundle, "MedicationAdministration")
    assert admin["partOf"] == [{"reference": full_url(bundle, one(bundle, "Procedure"))}]
    dosage = admin["dosage"]
    assert dosage["route"]["coding"] == [{"system": ROUTE, "code": "IONTO", "display": PUBLISHED[ROUTE]["IONTO"]}]
    assert dosage["dose"] == {"value": 1.5, "unit": "mL", "system": UCUM, "code": "mL"}
    assert dosage["site"] == {"text": "left hand"}
    assert dosage["text"] == "4 mA, 40 mA·min planned, 10 cm² electrode, drug under the cathode"
    contained = {c["id"]: c for c in admin["contained"]}
    assert admin["medicationReference"]["reference"] == "#medication"
    medication = contained["medication"]
    assert medication["code"] == {"text": "dexamethasone"} and medication["batch"] == {"lotNumber": "L-2207"}
    assert medication["ingredient"][0]["strength"] == {
        "numerator": {"value": 4, "unit": "mg", "system": UCUM, "code": "mg"},
        "denominator": {"value": 1, "unit": "mL", "system": UCUM, "code": "mL"}}  # fmt: skip
    assert admin["request"]["reference"] == "#prescription"
    assert contained["prescription"]["requester"] == {"type": "Practitioner", "display": "Dr. Ada Lee"}
    assert contained["prescription"]["subject"] == admin["subject"]
    assert admin["supportingInformation"][0]["reference"] == full_url(bundle, one(bundle, "Observation"))


@pytest.mark.parametrize(
    ("label", "ratio"),
    [
        ("4 mg/mL", ((4, "mg"), (1, "mL"))),
        ("0,4 mg / 1 ml", ((0.4, "mg"), (1, "mL"))),
        ("250 mcg/mL", ((250, "ug"), (1, "mL"))),
        ("0.4 %", ((0.4, "%"), (1, "1"))),
        ("2 % w/v", ((2, "g"), (100, "mL"))),
        ("1.5 x 10^9 particles/mL", None),
        ("tap water", None),
        (None, None),
    ],
)
def test_a_concentration_label_becomes_a_ratio_when_it_reads_as_one(label: str | None, ratio: Any) -> None:
    found = concentration_ratio(label)
    if ratio is None:
        assert found is None
    else:
        assert found is not None
        (amount, unit), (per, per_unit) = ratio
        assert found["numerator"] == {"value": amount, "unit": unit, "system": UCUM, "code": unit}
        assert found["denominator"] == {"value": per, "unit": per_unit, "system": UCUM, "code": per_unit}


def test_a_concentration_that_is_no_ratio_goes_into_the_dosage_text(store: Store) -> None:
    details = ClinicalDetails(site=TreatmentSite.parse("right hand"), concentration="1.5 x 10^9 particles/mL")
    admin = one(to_fhir_bundle(stored(store, details=details)), "MedicationAdministration")
    assert admin["dosage"]["text"].endswith("concentration 1.5 x 10^9 particles/mL")
    medication = admin["contained"][0]
    assert "strength" not in medication["ingredient"][0] and "batch" not in medication


# -- the Observation ----------------------------------------------------------------------------------------------


def test_one_observation_carries_the_delivery_as_ucum_components(store: Store) -> None:
    bundle = to_fhir_bundle(stored(store))
    observation = one(bundle, "Observation")
    values = {c["code"]["text"]: c["valueQuantity"] for c in observation["component"]}
    assert values == {
        "Delivered charge (dose)": {"value": 39.8, "unit": "mA·min", "system": UCUM, "code": "mA.min"},
        "Delivered charge counted by the host": {"value": 39.6, "unit": "mA·min", "system": UCUM, "code": "mA.min"},
        "Delivered charge counted by the device": {"value": 39.8, "unit": "mA·min", "system": UCUM, "code": "mA.min"},
        "Peak current": {"value": 4.02, "unit": "mA", "system": UCUM, "code": "mA"},
        "Peak current density": {"value": 0.402, "unit": "mA/cm²", "system": UCUM, "code": "mA/cm2"},
        "Skin-electrode impedance at start": {"value": 3200.0, "unit": "Ω", "system": UCUM, "code": "Ohm"},
        "Skin-electrode impedance at end": {"value": 2100.0, "unit": "Ω", "system": UCUM, "code": "Ohm"},
        "Duration": {"value": 10.5, "unit": "min", "system": UCUM, "code": "min"},
    }
    assert observation["status"] == "final" and "coding" not in observation["code"]
    assert observation["partOf"] == [{"reference": full_url(bundle, one(bundle, "Procedure"))}]
    assert observation["device"]["reference"] == full_url(bundle, one(bundle, "Device"))
    assert observation["subject"]["identifier"] == {"value": "P-7"}
    assert observation["method"] == {"text": "delivered charge counted by the device"}


# -- the chart PDF and the signatures -----------------------------------------------------------------------------


def test_the_document_reference_carries_the_chart_pdf_with_its_sha1_and_sha256(store: Store) -> None:
    pytest.importorskip("matplotlib")
    from ionctl.records.pdf import to_pdf

    record = stored(store)
    pdf = to_pdf(record, head=store.chain_head())
    bundle = to_fhir_bundle(record, pdf=pdf, clinic_name="Lakeside Clinic")
    validate(bundle)
    doc = one(bundle, "DocumentReference")
    attachment = doc["content"][0]["attachment"]
    data = base64.b64decode(attachment["data"], validate=True)
    assert data == pdf and data.startswith(b"%PDF")
    assert attachment["contentType"] == "application/pdf" and attachment["size"] == len(pdf)
    assert base64.b64decode(attachment["hash"]) == hashlib.sha1(pdf).digest()
    sha256 = base64.urlsafe_b64encode(hashlib.sha256(pdf).digest()).decode().rstrip("=")
    assert doc["identifier"] == [{"system": "urn:ietf:rfc:3986", "value": f"ni:///sha-256;{sha256}"}]
    assert doc["context"]["related"] == [{"reference": full_url(bundle, one(bundle, "Procedure"))}]
    assert doc["subject"] == one(bundle, "Procedure")["subject"]
    assert doc["custodian"] == {"type": "Organization", "display": "Lakeside Clinic"}
    assert doc["status"] == "current" and doc["docStatus"] == "final"
    assert attachment["creation"] == doc["date"] == "2026-03-01T09:11:00+00:00"  # the record's closing
    assert attachment["title"] == f"Iontophoresis session chart, ionctl record {record.id}"


def test_each_signature_is_a_provenance_with_the_signed_bytes(store: Store, new_york: None) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from ionctl.config.people import Signature

    record = stored(store)
    keys = [sign(store, record, "O-3", "Olu Operator", "technician", "performed", "2026-03-01T09:12:00.000+00:00"),
            sign(store, record, "sam", "Sam Supervisor", "supervisor", "reviewed", "2026-03-01T15:30:00.000+00:00")]
    record = store.get(record.id)
    bundle = to_fhir_bundle(record, pdf=PDF)
    validate(bundle)
    targets = [{"reference": full_url(bundle, one(bundle, kind))} for kind in ("Procedure", "DocumentReference")]
    provenances = by_type(bundle, "Provenance")
    expected = [("O-3", "Olu Operator", "technician", "1.2.840.10065.1.12.1.1", "author", "2026-03-01T04:12:00-05:00"),
                ("sam", "Sam Supervisor", "supervisor", "1.2.840.10065.1.12.1.5", "verifier",
                 "2026-03-01T10:30:00-05:00")]  # fmt: skip
    stored_sigs = [Signature.from_dict(a["detail"]["signature"]) for a in record.addenda]
    assert len(provenances) == 2
    rows = zip(provenances, expected, keys, stored_sigs, strict=True)
    for prov, (login, name, role, sig_type, agent, when), key, sig in rows:
        assert prov["target"] == targets and prov["recorded"] == when
        who = {"type": "Practitioner", "identifier": {"value": login}, "display": name}
        assert prov["agent"] == [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                                 "provenance-participant-type", "code": agent,
                                                       "display": agent.capitalize()}]},
                                  "role": [{"text": role}], "who": who}]  # fmt: skip
        (signature,) = prov["signature"]
        assert signature["type"][0]["code"] == sig_type and signature["when"] == when and signature["who"] == who
        assert signature["sigFormat"] == "application/octet-stream"
        data = base64.b64decode(signature["data"], validate=True)
        assert data == bytes.fromhex(sig.value) and len(data) == 64
        Ed25519PublicKey.from_public_bytes(key).verify(data, sig.payload())  # raises if not the stored signature
    assert one(bundle, "DocumentReference")["date"] == "2026-03-01T10:30:00-05:00"  # the chart as of the last entry
    notes = [n["text"] for n in one(bundle, "Procedure")["note"]]
    assert any(t.startswith("Signed (#") and "by Olu Operator (O-3, technician), 2026-03-01 04:12:00 EST: performed"
               in t for t in notes)  # fmt: skip


def test_full_urls_are_deterministic_per_record_and_chain_hash(store: Store) -> None:
    first = stored(store)
    again = to_fhir_bundle(store.get(first.id), pdf=PDF)
    assert to_fhir_bundle(first, pdf=PDF) == again
    assert to_fhir_bundle(Record.from_dict(first.to_dict()), pdf=PDF) == again  # from the JSON export too
    other = to_fhir_bundle(stored(store), pdf=PDF)  # same content, another record id and chain hash
    assert not {e["fullUrl"] for e in other["entry"]} & {e["fullUrl"] for e in again["entry"]}
    forged = Record({**first.fields, "chain_hash": "0" * 64}, first.events, first.telemetry)
    assert to_fhir_bundle(forged)["id"] != again["id"]


# -- the command line -----------------------------------------------------------------------------------------------


def test_cli_exports_fhir_with_the_chart_pdf(store: Store, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    pytest.importorskip("matplotlib")
    record = stored(store)
    out = tmp_path / "bundle.json"
    db = str(store.path)
    assert cli(["records", "export", str(record.id), "--format", "fhir", "-o", str(out), "--db", db]) == 0
    bundle = json.loads(out.read_text(encoding="utf-8"))
    validate(bundle)
    attachment = one(bundle, "DocumentReference")["content"][0]["attachment"]
    pdf = base64.b64decode(attachment["data"])
    assert pdf.startswith(b"%PDF") and base64.b64decode(attachment["hash"]) == hashlib.sha1(pdf).digest()
    capsys.readouterr()
    assert cli(["records", "export", str(record.id), "--format", "fhir", "--db", db]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [e["fullUrl"] for e in printed["entry"]] == [e["fullUrl"] for e in bundle["entry"]]


def test_cli_gives_the_chart_page_the_store_head_and_the_clinic_name(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    record = stored(store)
    calls: list[dict[str, Any]] = []

    def page(made_of: Record, **kwargs: Any) -> bytes:
        calls.append({"record": made_of.id, **kwargs})
        return b"%PDF-1.4 page of record " + str(made_of.id).encode()

    monkeypatch.setattr("ionctl.records.pdf.to_pdf", page)
    site = tmp_path / "site.toml"
    site.write_text('clinic_name = "Lakeside Clinic"\ntime_zone = "America/New_York"\n', encoding="utf-8")
    assert cli(["records", "export", str(record.id), "--format", "fhir", "--db", str(store.path),
                "--config", str(site)]) == 0  # fmt: skip
    bundle = json.loads(capsys.readouterr().out)
    assert calls == [{"record": record.id, "head": store.chain_head(), "clinic_name": "Lakeside Clinic",
                      "visit": []}]  # a session of no visit: no channels to list  # fmt: skip
    doc = one(bundle, "DocumentReference")
    assert base64.b64decode(doc["content"][0]["attachment"]["data"]) == page(record)
    assert doc["custodian"]["display"] == "Lakeside Clinic"
    assert one(bundle, "Procedure")["performedPeriod"]["start"] == "2026-03-01T04:00:00-05:00"

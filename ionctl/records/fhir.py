"""The FHIR R4 export of a stored record: one JSON Bundle (type `collection`) built from plain dicts, so it
needs nothing at runtime (the optional extra `ionctl[fhir]` installs `fhir.resources`, used only by the tests
to validate the bundle).

The bundle holds, each with a `urn:uuid:` fullUrl derived (UUID 5) from the record id, its chain hash and
the resource's role, so exporting the same record twice gives the same bundle, and a different (or edited)
record different ids:

- a `Device` (model, serial, firmware and protocol versions), when the record names one;
- a `Procedure` for the session: code text "Iontophoresis", the patient as `subject` and the operator as
  `performer` (both logical references by identifier: the chart system resolves them), `performedPeriod`
  from the record's opening to its closing (UTC), `usedReference` -> the Device, the outcome, fault and
  message as `outcome` / `statusReason` / `note`; the record's addenda (skin checks, adverse reactions) as
  `note` annotations with their author and time, an adverse reaction also as a `complication`; each sign-off
  (`ionctl records sign`) as a note in words: printed name, date and time, meaning (21 CFR 11.50);
- a `MedicationAdministration` of the prescribed drug, route HL7 v3 `IONTO` (topical application,
  iontophoresis), `partOf` -> the Procedure, `device` -> the Device;
- `Observation`s with UCUM `valueQuantity`: delivered dose (`mA.min`), peak current (`mA`), impedance at
  start and end (`Ohm`), duration (`min`); each with `subject`, `partOf` -> the Procedure (R4 allows a
  Procedure there) and `device` -> the Device. A value the record does not hold (a refused session, an
  impedance the source could not measure) gives no Observation.

Procedure.status from the record's outcome (R4 value set event-status: preparation | in-progress | not-done |
on-hold | stopped | completed | entered-in-error | unknown):

    completed                          -> completed
    stopped, aborted, fault, interrupted -> stopped   when current flowed (`energised`): the session ended
                                                     before its prescribed dose, after some delivery
                                       -> not-done  when it never energised the output
    refused                            -> not-done   (no current ever flows)
    open (session still running)       -> in-progress

`entered-in-error` is never used: it means the chart entry itself is wrong, not that the treatment went
wrong; a fault is a true record of a stopped treatment. MedicationAdministration.status (R4: in-progress |
not-done | on-hold | completed | entered-in-error | stopped | unknown) takes the same value.

No standard (LOINC / SNOMED CT) codes exist for these device measurements, so the Observation codes are
text only; units and route are coded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ionctl.records.export import signature_text
from ionctl.records.store import Record

UCUM = "http://unitsofmeasure.org"
ROUTE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"
ROUTE_CODE = "IONTO"
ROUTE_DISPLAY = "Topical application, iontophoresis"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
#: The UUID 5 namespace of every fullUrl this export makes.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:ionctl:records:fhir")

#: outcome -> (status when current flowed, status when it did not).
STATUS = {
    "completed": ("completed", "completed"),
    "stopped": ("stopped", "not-done"),
    "aborted": ("stopped", "not-done"),
    "fault": ("stopped", "not-done"),
    "interrupted": ("stopped", "not-done"),
    "refused": ("not-done", "not-done"),
}

#: (record field, code text, UCUM unit code, human unit, scale from the record's unit)
OBSERVATIONS = (
    ("dose_ma_min", "Iontophoresis delivered dose", "mA.min", "mA·min", 1.0),
    ("peak_current_ma", "Iontophoresis peak current", "mA", "mA", 1.0),
    ("impedance_start_ohm", "Skin-electrode impedance at start", "Ohm", "Ω", 1.0),
    ("impedance_end_ohm", "Skin-electrode impedance at end", "Ohm", "Ω", 1.0),
    ("duration_s", "Iontophoresis duration", "min", "min", 1.0 / 60.0),
)


def procedure_status(outcome: str | None, energised: bool) -> str:
    """The R4 Procedure.status for a record's outcome (None: the session is still running)."""
    if outcome is None:
        return "in-progress"
    flowed, did_not = STATUS.get(outcome, ("unknown", "unknown"))
    return flowed if energised else did_not


def _utc(stamp: str | None) -> str | None:
    """An ISO 8601 time as a FHIR dateTime in UTC with a `Z`."""
    if not stamp:
        return None
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _loads(value: Any) -> dict[str, Any]:
    """A record field stored as canonical JSON text (or already a dict, from a JSON export)."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    loaded = json.loads(value)
    return loaded if isinstance(loaded, dict) else {}


def _addendum_text(addendum: dict[str, Any]) -> tuple[str, str]:
    """(the addendum in words, the adverse reaction it reports or "")."""
    from ionctl.records.skin import ADVERSE_REACTION, SKIN_CHECK_AFTER, SkinCheck, SkinCheckError, addendum_text

    detail = addendum.get("detail")
    detail = detail if isinstance(detail, dict) else _loads(detail)
    text = addendum_text({**addendum, "detail": detail})
    reaction = ""
    if addendum.get("action") == ADVERSE_REACTION:
        reaction = str(detail.get("text") or detail.get("description") or "")
    elif addendum.get("action") == SKIN_CHECK_AFTER:
        try:
            check = SkinCheck.from_detail(detail)
        except SkinCheckError:  # a check stored before the typed model
            check = None
        reaction = check.reaction if check is not None and check.adverse else ""
    return text, reaction


def _identifier_ref(kind: str, value: str, system: str | None) -> dict[str, Any]:
    identifier: dict[str, Any] = {"value": value}
    if system:
        identifier["system"] = system
    return {"type": kind, "identifier": identifier, "display": f"{kind} {value}"}


def to_fhir_bundle(record: Record, *, patient_system: str | None = None,
                   operator_system: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The FHIR R4 Bundle (type collection) of one record, as plain JSON-ready dicts. `patient_system` and
    `operator_system` are the identifier systems of the site's patient and staff IDs (left out if None)."""
    f: Mapping[str, Any] = record.fields  # read by key name from the OBSERVATIONS table
    chain = f.get("chain_hash") or f.get("open_hash") or ""

    def full_url(role: str) -> tuple[str, str]:
        uid = str(uuid.uuid5(NAMESPACE, f"record {record.id} {chain} {role}"))
        return uid, f"urn:uuid:{uid}"

    outcome = f.get("outcome")
    energised = bool(f.get("energised"))
    status = procedure_status(outcome, energised)
    start, end = _utc(f.get("created_utc")), _utc(f.get("ended_utc"))
    period = {"start": start, **({"end": end} if end else {})}
    subject = _identifier_ref("Patient", str(f["patient"]), patient_system)
    operator = _identifier_ref("Practitioner", str(f["operator"]), operator_system)
    prescription = _loads(f.get("prescription"))
    device = _loads(f.get("device"))
    entries: list[dict[str, Any]] = []

    device_ref: dict[str, Any] | None = None
    if device:
        device_id, device_url = full_url("Device")
        resource: dict[str, Any] = {"resourceType": "Device", "id": device_id}
        if device.get("serial"):
            resource["serialNumber"] = str(device["serial"])
        if device.get("model"):
            resource["deviceName"] = [{"name": str(device["model"]), "type": "model-name"}]
            resource["modelNumber"] = str(device["model"])
        versions = [{"type": {"text": key}, "value": str(device[key])} for key in ("firmware", "protocol")
                    if device.get(key)]  # fmt: skip
        if versions:
            resource["version"] = versions
        entries.append({"fullUrl": device_url, "resource": resource})
        device_ref = {"reference": device_url, "display": " ".join(
            str(device[k]) for k in ("model", "serial") if device.get(k)) or "device"}  # fmt: skip

    procedure_id, procedure_url = full_url("Procedure")
    procedure: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": procedure_id,
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": procedure_url}],
        "status": status,
        "code": {"text": "Iontophoresis"},
        "subject": subject,
        "performedPeriod": period,
        "performer": [{"actor": operator}],
    }
    reason = "; ".join(str(x) for x in (f.get("fault"), f.get("message")) if x)
    if status in ("stopped", "not-done") and reason:
        procedure["statusReason"] = {"text": reason}
    if outcome is not None:
        procedure["outcome"] = {"text": str(outcome)}
    if device_ref is not None:
        procedure["usedReference"] = [device_ref]
    notes = [f"ionctl record {record.id}, chain hash {chain}" if chain else f"ionctl record {record.id}"]
    if f.get("limits_sha256"):
        notes.append(f"site limits SHA-256 {f['limits_sha256']}")
    if f.get("config_sha256"):
        notes.append(f"site configuration SHA-256 {f['config_sha256']}")
    annotations = [{"text": n} for n in notes]
    complications = []
    for a in record.addenda:  # skin checks and adverse reactions (CPT 97033 chart guidance), by whom and when
        signed = signature_text(a)
        text, reaction = (f"signed by {signed}", "") if signed is not None else _addendum_text(a)
        note: dict[str, Any] = {"authorString": str(a.get("actor") or "-"),
                                "text": f"#{a.get('seq')} {a.get('action')}: {text}"}  # fmt: skip
        if _utc(a.get("utc")):
            note["time"] = _utc(a.get("utc"))
        annotations.append(note)
        if reaction.strip().lower() not in ("", "none", "no"):
            complications.append({"text": reaction})
    procedure["note"] = annotations
    if complications:
        procedure["complication"] = complications
    entries.append({"fullUrl": procedure_url, "resource": procedure})
    procedure_ref = {"reference": procedure_url}

    drug = prescription.get("drug")
    if drug:
        admin_id, admin_url = full_url("MedicationAdministration")
        dosage: dict[str, Any] = {"route": {"coding": [{"system": ROUTE_SYSTEM, "code": ROUTE_CODE,
                                                        "display": ROUTE_DISPLAY}], "text": ROUTE_DISPLAY}}  # fmt: skip
        units = (
            ("current_ma", "mA"),
            ("planned_dose_ma_min", "mA·min planned"),
            ("electrode_area_cm2", "cm² electrode"),
        )
        parts = [f"{prescription[k]} {unit}" for k, unit in units if prescription.get(k) is not None]
        if parts:
            dosage["text"] = ", ".join(parts)
        admin: dict[str, Any] = {
            "resourceType": "MedicationAdministration",
            "id": admin_id,
            "status": status,
            "medicationCodeableConcept": {"text": str(drug)},
            "subject": subject,
            "partOf": [procedure_ref],
            "effectivePeriod": period,
            "performer": [{"actor": operator}],
            "dosage": dosage,
        }
        if status in ("stopped", "not-done") and reason:
            admin["statusReason"] = [{"text": reason}]
        if device_ref is not None:
            admin["device"] = [device_ref]
        entries.append({"fullUrl": admin_url, "resource": admin})

    for key, text, code, unit, scale in OBSERVATIONS:
        value = f.get(key)
        if value is None:
            continue
        obs_id, obs_url = full_url(f"Observation {key}")
        observation: dict[str, Any] = {
            "resourceType": "Observation",
            "id": obs_id,
            "status": "final" if outcome is not None else "preliminary",
            "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "procedure", "display": "Procedure"}]}],
            "code": {"text": text},
            "subject": subject,
            "partOf": [procedure_ref],
            "effectivePeriod": period,
            "performer": [operator],
            "valueQuantity": {"value": round(float(value) * scale, 6), "unit": unit, "system": UCUM, "code": code},
        }
        if key == "dose_ma_min" and f.get("dose_source"):
            observation["method"] = {"text": f"dose counted by the {f['dose_source']}"}
        if device_ref is not None:
            observation["device"] = device_ref
        entries.append({"fullUrl": obs_url, "resource": observation})

    bundle_id, bundle_url = full_url("Bundle")
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "identifier": {"system": "urn:ietf:rfc:3986", "value": bundle_url},
        "type": "collection",
        "timestamp": end or start,
        "entry": entries,
    }


def to_fhir(record: Record) -> str:
    """The bundle as JSON text (the `--format fhir` export)."""
    return json.dumps(to_fhir_bundle(record), indent=2, ensure_ascii=False) + "\n"

"""The FHIR R4 export of a stored record: one JSON Bundle (type `collection`) built from plain dicts, so it
needs nothing at runtime (the optional extra `ionctl[fhir]` installs `fhir.resources`, used only by the tests
to validate the bundle). The codes it writes and their sources are in `ionctl.records.fhir_terms`; the chart PDF
and the signatures in `ionctl.records.fhir_docs`.

Every resource has a `urn:uuid:` fullUrl derived (UUID 5) from the record id, its chain hash and the resource's
role, so exporting the same record twice gives the same bundle, and a different (or edited) record different ids.
Times are the clinic's local time with its offset (the site's `time_zone`, `ionctl.records.timefmt`), e.g.
`2026-03-12T14:03:05+01:00`. The patient, the operator and the course are logical references by identifier (the
chart system resolves them). A record of a simulated session carries the security label `HTEST` (test health
data) on every resource and says so in the Procedure's notes.

- `Device` (model, serial, firmware and protocol versions), when the record names one.
- `Procedure`, the session: `code` CPT 97033 (no SNOMED CT concept id for iontophoresis was found in a published
  source: see `fhir_terms`); `bodySite` the treatment site in SNOMED CT (`ClinicalDetails.site`; "both hands" is
  the left and the right hand); `performedPeriod` from the record's opening to its closing; `performer` the
  operator (printed name from their sign-off, when signed) on behalf of the clinic; `basedOn` the treatment course
  as a CarePlan (`BENCH/ID` clinic-wide); `usedReference` the Device, `usedCode` the electrode product;
  `outcome`, `statusReason`; `complication` an adverse reaction; `note` the record's facts, the skin checks, the
  other addenda and the sign-offs in words, each with its author and time; `report` the chart PDF.
- `MedicationAdministration` of the prescribed drug, `partOf` the Procedure: a contained Medication (the drug; its
  concentration as `ingredient.strength` when the label parses as a ratio such as "4 mg/mL" or "0.4 %", else in
  `dosage.text`; the lot as `batch.lotNumber`); `dosage.dose` the volume in mL, `dosage.route` HL7 v3 `IONTO`,
  `dosage.text` current, polarity, planned dose and electrode area. The prescriber is the `requester` of a
  contained MedicationRequest that `request` names: R4 has no prescriber on MedicationAdministration, its
  `performer.function` codes (performer, verifier, witness) name who gave the drug, and the prescriber did not.
- One `Observation` of what the session delivered, as components with UCUM quantities: delivered charge (dose,
  `mA.min`, and host and device counts), peak current (`mA`), peak current density (`mA/cm2`), skin-electrode
  impedance at start, end, lowest and highest (`Ohm`), duration (`min`), time at the compliance voltage (`s`).
  No LOINC or SNOMED CT codes exist for these device measurements, so their codes are text. A value the record
  does not hold gives no component; a record with none (a refusal) no Observation. `partOf` the Procedure,
  `device` the Device.
- `DocumentReference` for the chart PDF (when the caller gives its bytes) and a `Provenance` per sign-off: see
  `ionctl.records.fhir_docs`.

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
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ionctl.records import timefmt
from ionctl.records.clinical import ClinicalDetails, is_simulated
from ionctl.records.fhir_docs import document_reference, provenance, signature_of
from ionctl.records.fhir_terms import (
    ACT_REASON,
    BODY_SITE_CODES,
    CATEGORY_PROCEDURE,
    CPT,
    CPT_IONTOPHORESIS,
    OBSERVATION_CATEGORY,
    ROUTE_IONTO,
    ROUTE_SYSTEM,
    TEST_DATA,
    UCUM,
    body_sites,
    coding,
    concentration_ratio,
    quantity,
)
from ionctl.records.skin import (
    ADVERSE_REACTION,
    SKIN_CHECK_AFTER,
    SkinCheck,
    SkinCheckError,
    addendum_text,
    corrected_by,
)
from ionctl.records.store import Record

__all__ = ["BODY_SITE_CODES", "NAMESPACE", "ROUTE_SYSTEM", "STATUS", "UCUM", "fhir_time", "procedure_status", "to_fhir",
           "to_fhir_bundle"]  # fmt: skip

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

#: Observation components: (record field, code text, UCUM code, scale from the record's unit).
COMPONENTS = (
    ("dose_ma_min", "Delivered charge (dose)", "mA.min", 1.0),
    ("host_dose_ma_min", "Delivered charge counted by the host", "mA.min", 1.0),
    ("device_dose_ma_min", "Delivered charge counted by the device", "mA.min", 1.0),
    ("peak_current_ma", "Peak current", "mA", 1.0),
    ("peak_density_ma_cm2", "Peak current density", "mA/cm2", 1.0),
    ("impedance_start_ohm", "Skin-electrode impedance at start", "Ohm", 1.0),
    ("impedance_end_ohm", "Skin-electrode impedance at end", "Ohm", 1.0),
    ("impedance_min_ohm", "Skin-electrode impedance, lowest", "Ohm", 1.0),
    ("impedance_max_ohm", "Skin-electrode impedance, highest", "Ohm", 1.0),
    ("duration_s", "Duration", "min", 1.0 / 60.0),
    ("time_at_compliance_s", "Time at the compliance voltage", "s", 1.0),
)

#: Audit actions about a record, as a note names them.
NOTE_LABELS = {
    "skin-check-before": "Skin check before the session",
    SKIN_CHECK_AFTER: "Skin check after the session",
    ADVERSE_REACTION: "Adverse reaction",
    "note": "Note",
    "correction": "Correction",
}


def procedure_status(outcome: str | None, energised: bool) -> str:
    """The R4 Procedure.status for a record's outcome (None: the session is still running)."""
    if outcome is None:
        return "in-progress"
    flowed, did_not = STATUS.get(outcome, ("unknown", "unknown"))
    return flowed if energised else did_not


def fhir_time(stamp: str | None) -> str | None:
    """A stored ISO 8601 time as a FHIR dateTime/instant in the clinic's zone with its offset (milliseconds only
    when the time has them); None for no time, the text unchanged when it does not read as a time."""
    if not stamp:
        return None
    try:
        when = timefmt.local(stamp)
    except (TypeError, ValueError):
        return stamp
    return when.isoformat(timespec="milliseconds" if when.microsecond else "seconds")


def _loads(value: Any) -> dict[str, Any]:
    """A record field stored as canonical JSON text (or already a dict, from a JSON export)."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    loaded = json.loads(value)
    return loaded if isinstance(loaded, dict) else {}


def to_fhir_bundle(record: Record, *, pdf: bytes | None = None, clinic_name: str | None = None,
                   bench: str | None = None, patient_system: str | None = None,
                   operator_system: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The FHIR R4 Bundle (type collection) of one record, as plain JSON-ready dicts. `pdf`: the chart PDF's bytes
    (`ionctl.records.pdf.to_pdf`), carried by a DocumentReference; `clinic_name` the site's (the custodian and
    the performer's organisation); `bench` this record's bench in the clinic (`[clinic] bench`), which names its
    course clinic-wide; `patient_system` and `operator_system` the identifier systems of the site's patient and
    staff IDs (left out if None)."""
    return _Export(record, clinic_name, bench, patient_system, operator_system).bundle(pdf)


def to_fhir(record: Record, *, pdf: bytes | None = None, clinic_name: str | None = None,
            bench: str | None = None) -> str:  # fmt: skip
    """The bundle as JSON text (the `--format fhir` export)."""
    bundle = to_fhir_bundle(record, pdf=pdf, clinic_name=clinic_name, bench=bench)
    return json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"


def _identifier_ref(kind: str, value: str, system: str | None, display: str) -> dict[str, Any]:
    identifier: dict[str, Any] = {"value": value}
    if system:
        identifier["system"] = system
    return {"type": kind, "identifier": identifier, "display": display}


class _Export:
    """One record's bundle, resource by resource."""

    def __init__(self, record: Record, clinic_name: str | None, bench: str | None, patient_system: str | None,
                 operator_system: str | None) -> None:  # fmt: skip
        f: Mapping[str, Any] = record.fields  # read by key name (the COMPONENTS table)
        self.record, self.f = record, f
        self.clinic_name, self.bench, self.operator_system = clinic_name, bench, operator_system
        self.name = f"{bench}/{record.id}" if bench else str(record.id)  # the record's name, clinic-wide if known
        self.chain = str(f.get("chain_hash") or f.get("open_hash") or "")
        self.outcome = f.get("outcome")
        self.status = procedure_status(self.outcome, bool(f.get("energised")))
        start, end = fhir_time(f.get("created_utc")), fhir_time(f.get("ended_utc"))
        self.period: dict[str, str] = {k: v for k, v in (("start", start), ("end", end)) if v}
        self.details = ClinicalDetails.of_record(f)
        self.prescription = _loads(f.get("prescription"))
        self.signatures = [(a, sig) for a in record.addenda if (sig := signature_of(a)) is not None]
        self.names = {str(sig.get("signer")): str(sig.get("full_name")) for _, sig in self.signatures
                      if sig.get("full_name")}  # fmt: skip
        patient = str(f["patient"])
        self.subject = _identifier_ref("Patient", patient, patient_system, f"patient {patient}")
        self.operator = self.practitioner(str(f["operator"]))
        self.meta = {"security": [coding(ACT_REASON, *TEST_DATA)]} if is_simulated(f) else None
        self.entries: list[dict[str, Any]] = []
        self.device_ref: dict[str, Any] | None = None

    def practitioner(self, login: str) -> dict[str, Any]:
        """A staff member by login name; the printed name from their sign-off when they signed this record."""
        return _identifier_ref("Practitioner", login, self.operator_system, self.names.get(login, login))

    def full_url(self, role: str) -> tuple[str, str]:
        uid = str(uuid.uuid5(NAMESPACE, f"record {self.record.id} {self.chain} {role}"))
        return uid, f"urn:uuid:{uid}"

    def add(self, role: str, kind: str, body: dict[str, Any]) -> str:
        """Put a resource into the bundle; its fullUrl."""
        rid, url = self.full_url(role)
        resource: dict[str, Any] = {"resourceType": kind, "id": rid}
        if self.meta is not None:
            resource["meta"] = json.loads(json.dumps(self.meta))  # each resource its own copy
        self.entries.append({"fullUrl": url, "resource": resource | body})
        return url

    def bundle(self, pdf: bytes | None) -> dict[str, Any]:
        self.add_device()
        procedure_url = self.full_url("Procedure")[1]
        doc_url = self.full_url("DocumentReference")[1] if pdf is not None else None
        self.add("Procedure", "Procedure", self.procedure(doc_url))
        observation_url = self.add_observation(procedure_url)
        self.add_administration(procedure_url, observation_url)
        if pdf is not None:
            self.add("DocumentReference", "DocumentReference", document_reference(
                pdf, name=self.name, subject=self.subject, author=self.operator, procedure_url=procedure_url,
                period=self.period, when=self.chart_time(), final=self.outcome is not None,
                clinic_name=self.clinic_name))  # fmt: skip
        targets = [procedure_url] + ([doc_url] if doc_url else [])
        for entry, sig in self.signatures:
            body = provenance(sig, targets=targets, when=fhir_time(str(sig.get("utc") or "")),
                              operator_system=self.operator_system)  # fmt: skip
            if body is not None:
                self.add(f"Provenance {entry.get('seq')}", "Provenance", body)
        bundle_id, bundle_url = self.full_url("Bundle")
        return {"resourceType": "Bundle", "id": bundle_id, "identifier": {"system": "urn:ietf:rfc:3986",
                "value": bundle_url}, "type": "collection", "timestamp": self.period.get("end") or
                self.period.get("start"), "entry": self.entries}  # fmt: skip

    def chart_time(self) -> str | None:
        """The time of the record's newest entry (its closing, or a later addendum or signature): what the chart
        PDF shows is the record as of then."""
        stamps = [self.f.get("ended_utc") or self.f.get("created_utc"), *(a.get("utc") for a in self.record.addenda)]
        latest: tuple[datetime, str] | None = None
        for stamp in stamps:
            try:
                moment = timefmt.local(str(stamp))
            except (TypeError, ValueError):
                continue
            if latest is None or moment > latest[0]:
                latest = (moment, str(stamp))
        return fhir_time(latest[1]) if latest is not None else None

    # -- Device ---------------------------------------------------------------------------------------------------

    def add_device(self) -> None:
        device = _loads(self.f.get("device"))
        if not device:
            return
        body: dict[str, Any] = {}
        if device.get("serial"):
            body["serialNumber"] = str(device["serial"])
        if device.get("model"):
            body["deviceName"] = [{"name": str(device["model"]), "type": "model-name"}]
            body["modelNumber"] = str(device["model"])
        versions = [{"type": {"text": key}, "value": str(device[key])} for key in ("firmware", "protocol")
                    if device.get(key)]  # fmt: skip
        if versions:
            body["version"] = versions
        url = self.add("Device", "Device", body)
        name = " ".join(str(device[k]) for k in ("model", "serial") if device.get(k))
        self.device_ref = {"reference": url, "display": name or "device"}

    # -- Procedure ------------------------------------------------------------------------------------------------

    def procedure(self, doc_url: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "identifier": [{"system": "urn:ietf:rfc:3986", "value": self.full_url("Procedure")[1]}],
            "status": self.status,
            "code": {"coding": [coding(CPT, *CPT_IONTOPHORESIS)], "text": "Iontophoresis"},
            "subject": self.subject,
            "performedPeriod": self.period,
            "performer": [self.performer()],
        }
        reason = self.reason()
        if self.status in ("stopped", "not-done") and reason:
            body["statusReason"] = {"text": reason}
        course = self.course()
        if course is not None:
            body["basedOn"] = [course]
        site = self.details.site if self.details is not None else None
        if site is not None:
            body["bodySite"] = body_sites(site.body_site, site.laterality, site.text)
        if self.outcome is not None:
            body["outcome"] = {"text": str(self.outcome)}
        if doc_url is not None:
            body["report"] = [{"reference": doc_url, "display": "chart PDF"}]
        complications = self.complications()
        if complications:
            body["complication"] = complications
        body["note"] = self.notes()
        if self.device_ref is not None:
            body["usedReference"] = [self.device_ref]
        electrode = self.electrode()
        if electrode:
            body["usedCode"] = [{"text": electrode}]
        return body

    def performer(self) -> dict[str, Any]:
        performer: dict[str, Any] = {"actor": self.operator}
        if self.clinic_name:
            performer["onBehalfOf"] = {"type": "Organization", "display": self.clinic_name}
        return performer

    def reason(self) -> str:
        return "; ".join(str(x) for x in (self.f.get("fault"), self.f.get("message")) if x)

    def course(self) -> dict[str, Any] | None:
        """The treatment course as a CarePlan by identifier: its clinic-wide name (another bench's `course_ref`, or
        this bench's course id under this bench's name when known), else this bench's course id."""
        ref, course_id = self.f.get("course_ref"), self.f.get("course_id")
        if ref:
            name = str(ref)
        elif course_id is not None:
            name = f"{self.bench}/{course_id}" if self.bench else str(course_id)
        else:
            return None
        return {"type": "CarePlan", "identifier": {"type": {"text": "ionctl treatment course"}, "value": name},
                "display": f"treatment course {name}"}  # fmt: skip

    def electrode(self) -> str:
        if self.details is None:
            return ""
        parts = [p for p in (self.details.electrode_product, self.details.electrode_type) if p]
        return f"electrode: {parts[0]}" + (f" ({parts[1]})" if len(parts) > 1 else "") if parts else ""

    def complications(self) -> list[dict[str, Any]]:
        """An adverse reaction (reported later, or in the skin check after the session), in its own words."""
        out = []
        for a in self.record.addenda:
            reaction = _reaction(a)
            if reaction.strip().lower() not in ("", "none", "no"):
                out.append({"text": reaction})
        return out

    def notes(self) -> list[dict[str, Any]]:
        """The record's facts, then its addenda and sign-offs in words, each with author and time."""
        f = self.f
        facts = [f"ionctl record {self.name}" + (f", chain hash {self.chain}" if self.chain else "")]
        if self.meta is not None:
            facts.append("SIMULATED DEVICE — NOT A TREATMENT: this session ran on a simulator")
        if self.details is None:
            facts.append("treatment site, concentration, volume and prescriber: not recorded")
        if self.outcome is not None:
            said = "; ".join(f"{k} {f[k]}" if k == "fault" else str(f[k]) for k in ("fault", "message") if f.get(k))
            facts.append(f"outcome {self.outcome}" + (f": {said}" if said else ""))
        if f.get("limits_sha256"):
            facts.append(f"site limits SHA-256 {f['limits_sha256']}")
        if f.get("config_sha256"):
            facts.append(f"site configuration SHA-256 {f['config_sha256']}")
        notes: list[dict[str, Any]] = [{"text": text} for text in facts]
        corrections = corrected_by(self.record.addenda)
        for a in self.record.addenda:
            note: dict[str, Any] = {"authorString": self.author(a), "text": self.addendum_words(a, corrections)}
            when = fhir_time(a.get("utc"))
            if when:
                note["time"] = when
            notes.append(note)
        return notes

    def author(self, entry: Mapping[str, Any]) -> str:
        actor = str(entry.get("actor") or "-")
        name = self.names.get(actor)
        return f"{name} ({actor})" if name and name != actor else actor

    def addendum_words(self, entry: Mapping[str, Any], corrections: Mapping[int, list[int]]) -> str:
        """'Skin check after the session (#5): erythema: no; ...' ; a sign-off as its printed name, local time and
        meaning (21 CFR 11.50); an addendum corrected later marked so."""
        seq = entry.get("seq")
        sig = signature_of(entry)
        if sig is not None:
            when = timefmt.local_text(sig.get("utc"))
            who = f"{sig.get('full_name', '-')} ({sig.get('signer', '-')}, {sig.get('role', '-')})"
            return f"Signed (#{seq}) by {who}, {when}: {sig.get('meaning', '-')}"
        action = str(entry.get("action") or "")
        label = NOTE_LABELS.get(action, action.replace("-", " ").capitalize() or "Addendum")
        detail = entry.get("detail")
        text = addendum_text({**entry, "detail": detail if isinstance(detail, dict) else _loads(detail)})
        later = corrections.get(int(seq)) if isinstance(seq, int) else None
        marked = f" [corrected by {', '.join(f'#{n}' for n in later)}]" if later else ""
        return f"{label} (#{seq}): {text}{marked}"

    # -- Observation ----------------------------------------------------------------------------------------------

    def add_observation(self, procedure_url: str) -> str | None:
        """What the session delivered, one component per measured value; None when the record holds none."""
        components = [{"code": {"text": text}, "valueQuantity": quantity(float(value) * scale, code)}
                      for key, text, code, scale in COMPONENTS if (value := self.f.get(key)) is not None]  # fmt: skip
        if not components:
            return None
        body: dict[str, Any] = {
            "status": "final" if self.outcome is not None else "preliminary",
            "category": [{"coding": [coding(OBSERVATION_CATEGORY, *CATEGORY_PROCEDURE)]}],
            "code": {"text": "Iontophoresis session delivery (measured)"},
            "subject": self.subject,
            "effectivePeriod": self.period,
            "performer": [self.operator],
            "partOf": [{"reference": procedure_url}],
            "component": components,
        }
        if self.f.get("dose_source"):
            body["method"] = {"text": f"delivered charge counted by the {self.f['dose_source']}"}
        if self.device_ref is not None:
            body["device"] = self.device_ref
        return self.add("Observation", "Observation", body)

    # -- MedicationAdministration ---------------------------------------------------------------------------------

    def add_administration(self, procedure_url: str, observation_url: str | None) -> None:
        drug = self.prescription.get("drug")
        if not drug:
            return
        details = self.details or ClinicalDetails()
        contained = [self.medication(str(drug), details)]
        body: dict[str, Any] = {
            "contained": contained,
            "status": self.status,
            "medicationReference": {"reference": "#medication", "display": str(drug)},
            "subject": self.subject,
            "partOf": [{"reference": procedure_url}],
            "effectivePeriod": self.period,
            "performer": [{"actor": self.operator}],
            "dosage": self.dosage(details),
        }
        if details.prescriber:
            contained.append(self.prescription_request(details.prescriber))
            body["request"] = {"reference": "#prescription", "display": f"prescribed by {details.prescriber}"}
        reason = self.reason()
        if self.status in ("stopped", "not-done") and reason:
            body["statusReason"] = [{"text": reason}]
        if self.device_ref is not None:
            body["device"] = [self.device_ref]
        if observation_url is not None:
            body["supportingInformation"] = [{"reference": observation_url, "display": "charge delivered"}]
        self.add("MedicationAdministration", "MedicationAdministration", body)

    def medication(self, drug: str, details: ClinicalDetails) -> dict[str, Any]:
        """The contained Medication: the drug, its strength when the label reads as a ratio, its lot."""
        medication: dict[str, Any] = {"resourceType": "Medication", "id": "medication", "code": {"text": drug}}
        strength = concentration_ratio(details.concentration)
        ingredient: dict[str, Any] = {"itemCodeableConcept": {"text": drug}, "isActive": True}
        if strength is not None:
            ingredient["strength"] = strength
        medication["ingredient"] = [ingredient]
        if details.lot:
            medication["batch"] = {"lotNumber": details.lot}
        return medication

    def prescription_request(self, prescriber: str) -> dict[str, Any]:
        """The order the session carried out, by its prescriber (free text in the record: a display, no id)."""
        return {"resourceType": "MedicationRequest", "id": "prescription", "status": "unknown", "intent": "order",
                "medicationReference": {"reference": "#medication"}, "subject": self.subject,
                "requester": {"type": "Practitioner", "display": prescriber}}  # fmt: skip

    def dosage(self, details: ClinicalDetails) -> dict[str, Any]:
        dosage: dict[str, Any] = {"route": {"coding": [coding(ROUTE_SYSTEM, *ROUTE_IONTO)], "text": ROUTE_IONTO[1]}}
        if details.site is not None:
            dosage["site"] = {"text": details.site.text}
        if details.volume_ml is not None:
            dosage["dose"] = quantity(details.volume_ml, "mL")
        p = self.prescription
        units = (("current_ma", "mA"), ("planned_dose_ma_min", "mA·min planned"),
                 ("electrode_area_cm2", "cm² electrode"))  # fmt: skip
        parts = [f"{p[k]:g} {unit}" if isinstance(p[k], int | float) else f"{p[k]} {unit}"
                 for k, unit in units if p.get(k) is not None]  # fmt: skip
        if p.get("polarity"):
            parts.append(f"drug under the {p['polarity']}")
        if details.concentration and concentration_ratio(details.concentration) is None:
            parts.append(f"concentration {details.concentration}")
        if parts or "dose" not in dosage:  # R4 mad-1: a dosage has a text, a dose or a rate
            dosage["text"] = ", ".join(parts) or "current and dose not stated in the record"
        return dosage


def _reaction(addendum: Mapping[str, Any]) -> str:
    """The adverse reaction an addendum reports ("" for none): a late report's text, or the skin check after the
    session's reaction when it found one."""
    detail = addendum.get("detail")
    detail = detail if isinstance(detail, dict) else _loads(detail)
    if addendum.get("action") == ADVERSE_REACTION:
        return str(detail.get("text") or detail.get("description") or "")
    if addendum.get("action") == SKIN_CHECK_AFTER:
        try:
            check = SkinCheck.from_detail(detail)
        except SkinCheckError:  # a check stored before the typed model
            return ""
        return check.reaction if check.adverse else ""
    return ""

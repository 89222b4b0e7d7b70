"""The codes the FHIR R4 export (`ionctl.records.fhir`) writes, each next to the published source it was checked
against (docs/SOURCES.md, "Chart interoperability: the codes"). No code here is made up: a concept for which no
published code was found is written as text only, and says so.

- Procedure.code: CPT 97033 only. No SNOMED CT concept id for iontophoresis as a procedure could be found in a
  published source (value sets, FHIR examples, terminology server pages), so the Procedure carries none; its text
  says "Iontophoresis".
- Procedure.bodySite: SNOMED CT body structures, one precoordinated concept per side (`BODY_SITE_CODES`); "both"
  is the left and the right concept, two bodySite entries (Procedure.bodySite is 0..*), so no laterality qualifier
  is needed: every site of `ionctl.records.clinical.BODY_SITES` has its lateralised concepts.
- MedicationAdministration.dosage.route: HL7 v3 `IONTO`, the one code of the IontophoresisRoute value set.
- Quantities: UCUM codes (`UCUM_UNITS`, and the concentration units of `CONCENTRATION_UNITS`).
- Provenance: ASTM E1762 signature types and the provenance participant types (`SIGNATURE_MEANINGS`).
- A record of a simulated session: security label HL7 v3 ActReason `HTEST` (test health data) on every resource.

Pure: the standard library only.
"""

from __future__ import annotations

import re
from typing import Any

SNOMED = "http://snomed.info/sct"
CPT = "http://www.ama-assn.org/go/cpt"
UCUM = "http://unitsofmeasure.org"
ROUTE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ASTM_SIGNATURE_TYPE = "urn:iso-astm:E1762-95:2013"
PROVENANCE_PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"

#: CPT 97033 with the AMA's descriptor, as payers' policies and code references print it (the BCBS iontophoresis
#: policy, http://www.medicarepaymentandreimbursement.com/2010/07/billing-iontophoresis-cpt-97033-update.html;
#: https://genhealth.ai/code/cpt4/97033-application-of-a-modality-to-1-or-more-areas-iontophoresis-each-15-minutes).
CPT_IONTOPHORESIS = ("97033", "Application of a modality to 1 or more areas; iontophoresis, each 15 minutes")

#: HL7 v3 RouteOfAdministration `IONTO`, the only code of the value set
#: http://terminology.hl7.org/ValueSet/v3-IontophoresisRoute (HL7 Terminology, THO:
#: https://terminology.hl7.org/ValueSet-v3-IontophoresisRoute.html; the code system
#: https://terminology.hl7.org/CodeSystem-v3-RouteOfAdministration.html, `IONTO` under `_IontophoresisRoute`).
ROUTE_IONTO = ("IONTO", "Topical application, iontophoresis")

#: http://terminology.hl7.org/CodeSystem/observation-category `procedure`
#: (https://terminology.hl7.org/CodeSystem-observation-category.html).
CATEGORY_PROCEDURE = ("procedure", "Procedure")

#: HL7 v3 ActReason `HTEST` "test health data" (https://terminology.hl7.org/CodeSystem-v3-ActReason.html#v3-ActReason-HTEST),
#: the security label FHIR test data carries (e.g. HL7 IG examples' `meta.security`): a simulator session is not a
#: treatment and must not be filed as one.
TEST_DATA = ("HTEST", "test health data")

# The SNOMED CT body structures of each treatment site, by side. Every code below was checked against at least
# one published value set or example that gives it with this description:
#   [ANS]   Agence du Numérique en Santé (France), "JDV Human Substance Administration Site CISIS", OID
#           1.2.250.1.213.1.1.5.686, https://interop.esante.gouv.fr/terminologies/ValueSet-jdv-human-substance-administration-site-cisis.html
#           (hands, feet, forearms, upper arms, thighs, back);
#   [VA]    US Department of Veterans Affairs, ConceptMap VF-VitalsSite,
#           https://build.fhir.org/ig/department-of-veterans-affairs/mhv-fhir-phr-mapping/ConceptMap-VF-VitalsSite.html
#           (wrists, forearms, upper arms, axillae, knees, ankles, thighs, neck);
#   [IHE]   IHE PCC mPSC, ValueSet Physical.Finding.of.Extremities.TargetSite.VS,
#           https://build.fhir.org/ig/IHE/PCC.PCS/ValueSet-Physical.Finding.of.Extremities.TargetSite.VS.html
#           (ankles, upper arms, elbows, forearms, knees, lower legs, thighs, shoulders, wrists), and its back and
#           spine value set (back), https://build.fhir.org/ig/IHE/PCC.PCS/ValueSet-Physical.Finding.of.Pupil.TargetSite.VS.html;
#   [FHIR]  the FHIR R4 example Media/xray, http://hl7.org/fhir/R4/media-example-xray.json.html (left hand);
#   [DICOM] DICOM PS3.16 CID 4031 "Common Anatomic Regions",
#           https://dicom.nema.org/medical/dicom/current/output/chtml/part16/sect_CID_4031.html (neck).
#: site -> side ("left", "right"; "none" for a midline site) -> (SNOMED CT code, description).
BODY_SITE_CODES: dict[str, dict[str, tuple[str, str]]] = {
    "hand": {"left": ("85151006", "Structure of left hand"),  # [ANS] [FHIR]
             "right": ("78791008", "Structure of right hand")},  # [ANS]
    "foot": {"left": ("22335008", "Structure of left foot"),  # [ANS]
             "right": ("7769000", "Structure of right foot")},  # [ANS]
    "wrist": {"left": ("5951000", "Structure of left wrist region"),  # [VA] [IHE]
              "right": ("9736006", "Structure of right wrist region")},  # [VA] [IHE]
    "forearm": {"left": ("66480008", "Structure of left forearm"),  # [ANS] [VA] [IHE]
                "right": ("64262003", "Structure of right forearm")},  # [ANS] [VA] [IHE]
    "elbow": {"left": ("368148009", "Left elbow region structure"),  # [IHE]
              "right": ("368149001", "Right elbow region structure")},  # [IHE]
    "upper arm": {"left": ("368208006", "Left upper arm structure"),  # [ANS] [VA] [IHE]
                  "right": ("368209003", "Right upper arm structure")},  # [ANS] [VA] [IHE]
    "shoulder": {"left": ("91775009", "Structure of left shoulder region"),  # [IHE]
                 "right": ("91774008", "Structure of right shoulder region")},  # [IHE]
    "axilla": {"left": ("20437008", "Structure of left axillary region"),  # [VA]
               "right": ("19654004", "Structure of right axillary region")},  # [VA]
    "knee": {"left": ("82169009", "Structure of left knee region"),  # [VA] [IHE]
             "right": ("6757004", "Structure of right knee region")},  # [VA] [IHE]
    "ankle": {"left": ("51636004", "Structure of left ankle"),  # [VA] [IHE]
              "right": ("6685009", "Structure of right ankle")},  # [VA] [IHE]
    "lower leg": {"left": ("48979004", "Structure of left lower leg"),  # [IHE]
                  "right": ("32696007", "Structure of right lower leg")},  # [IHE]
    "thigh": {"left": ("61396006", "Structure of left thigh"),  # [ANS] [VA] [IHE]
              "right": ("11207009", "Structure of right thigh")},  # [ANS] [VA] [IHE]
    "back": {"none": ("77568009", "Structure of back of trunk")},  # [ANS] [IHE]
    "neck": {"none": ("45048000", "Neck structure")},  # [VA] [DICOM]
}  # fmt: skip

#: UCUM codes of the measured quantities (The Unified Code for Units of Measure, https://ucum.org/ucum: A ampère,
#: Ohm, min, s, L litre, prefixes m and c, "." multiplication, "/" division). code -> the unit as people read it.
UCUM_UNITS = {"mA": "mA", "mA/cm2": "mA/cm²", "mA.min": "mA·min", "Ohm": "Ω", "min": "min", "s": "s", "mL": "mL"}

#: A labelled concentration's units (as written on a label, lower case) -> UCUM code (https://ucum.org/ucum: g gram,
#: L litre, % percent, 1 unity; prefixes m, u (micro), n). "mcg" and "µg" are how labels write micrograms.
CONCENTRATION_UNITS = {"mg": "mg", "g": "g", "ug": "ug", "µg": "ug", "mcg": "ug", "ng": "ng", "ml": "mL", "l": "L",
                       "%": "%"}  # fmt: skip

#: A sign-off's meaning (`ionctl.config.people.PERFORMED`, `REVIEWED`) -> (ASTM E1762 signature type, its display,
#: provenance participant type, its display). Signature types from the FHIR R4 code system
#: http://hl7.org/fhir/R4/codesystem-signature-type.html (system urn:iso-astm:E1762-95:2013): "Author's Signature"
#: (1.2.840.10065.1.12.1.1, "the signature of the primary or sole author of a health information document") for
#: the operator's own "performed"; "Verification Signature" (1.2.840.10065.1.12.1.5, "a signature verifying the
#: information contained in a document", its example a countersignature) for a supervisor's "reviewed".
#: Participant types from http://hl7.org/fhir/R4/codesystem-provenance-participant-type.html (`author`, `verifier`).
SIGNATURE_MEANINGS = {
    "performed": ("1.2.840.10065.1.12.1.1", "Author's Signature", "author", "Author"),
    "reviewed": ("1.2.840.10065.1.12.1.5", "Verification Signature", "verifier", "Verifier"),
}


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def quantity(value: float, code: str) -> dict[str, Any]:
    """A UCUM quantity: the value rounded to 6 decimals, the unit as people read it, the UCUM code."""
    return {"value": round(float(value), 6), "unit": UCUM_UNITS.get(code, code), "system": UCUM, "code": code}


_NUMBER = r"(\d+(?:[.,]\d+)?)"
_RATIO = re.compile(rf"^{_NUMBER}\s*(mg|g|ug|µg|mcg|ng)\s*/\s*{_NUMBER}?\s*(ml|l|g)$", re.IGNORECASE)
_PERCENT = re.compile(rf"^{_NUMBER}\s*%\s*(w/v|w/w)?$", re.IGNORECASE)


def concentration_ratio(text: str | None) -> dict[str, Any] | None:
    """A labelled concentration as a FHIR Ratio of UCUM quantities: "4 mg/mL" -> 4 mg / 1 mL, "0.4 %" -> 0.4 % / 1,
    "2 % w/v" -> 2 g / 100 mL ("w/w": per 100 g). None for anything else ("1.5 x 10^9 particles/mL", "tap water"):
    the caller writes it as text."""
    words = " ".join(str(text or "").split())
    found = _RATIO.match(words)
    if found:
        amount, unit, per, per_unit = found.groups()
        return _ratio(amount, CONCENTRATION_UNITS[unit.lower()], per or "1", CONCENTRATION_UNITS[per_unit.lower()])
    found = _PERCENT.match(words)
    if found:
        amount, basis = found.groups()
        if basis is None:
            return _ratio(amount, "%", "1", "1")
        return _ratio(amount, "g", "100", "mL" if basis.lower() == "w/v" else "g")
    return None


def _ratio(amount: str, unit: str, per: str, per_unit: str) -> dict[str, Any]:
    def part(value: str, code: str) -> dict[str, Any]:
        number = float(value.replace(",", "."))
        return {"value": int(number) if number.is_integer() else number, "unit": code, "system": UCUM, "code": code}

    return {"numerator": part(amount, unit), "denominator": part(per, per_unit)}


def body_sites(body_site: str, laterality: str, text: str) -> list[dict[str, Any]]:
    """Procedure.bodySite for a treatment site: one CodeableConcept per side ("both": left and right), each with
    its SNOMED CT concept; a site or side with no published code is text only (never a made-up code)."""
    sides = ("left", "right") if laterality == "both" else (laterality,)
    codes = BODY_SITE_CODES.get(body_site, {})
    out = []
    for side in sides:
        found = codes.get(side)
        label = text if laterality != "both" else f"{side} {body_site} ({text})"
        concept: dict[str, Any] = {"text": label}
        if found is not None:
            concept = {"coding": [coding(SNOMED, *found)], "text": label}
        out.append(concept)
    return out

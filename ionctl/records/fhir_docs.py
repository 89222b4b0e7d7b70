"""The chart PDF and the sign-offs of a record in the FHIR R4 export: a DocumentReference that carries the PDF, and
one Provenance per signature (`ionctl.records.fhir` puts them in its Bundle).

DocumentReference: the PDF bytes (`ionctl.records.pdf.to_pdf`, made by the caller) as `attachment.data` (base64),
`contentType` application/pdf, `size`, `title` and `creation`. R4 defines `Attachment.hash` as the base64 of the
SHA-1 of the data, so that is what `hash` holds; the SHA-256 of the same bytes is carried too, as an `identifier`
(system urn:ietf:rfc:3986) whose value is the RFC 6920 named-information URI `ni:///sha-256;<base64url of the
digest, no padding>`. A reader can check the PDF against either. The document is the chart as of the record's
newest entry (its closing, or a later addendum or signature): `date` and `creation` are that time, so the same
record gives the same DocumentReference. `context.related` is the Procedure, `subject` the patient, `custodian`
the clinic (the site configuration's `clinic_name`).

Provenance: one per sign-off (`ionctl records sign`: an audit entry `SIGN_ACTION` with the signature in its
detail). `target` the Procedure and the DocumentReference; `recorded` and `signature.when` the signing time; the
signer as `agent.who` and `signature.who` (login name as identifier, printed name as display), the role they
signed in as `agent.role`; `agent.type` and `signature.type` coded from the meaning (`SIGNATURE_MEANINGS`:
"performed" is the author's signature, "reviewed" a verification signature); `signature.data` the Ed25519
signature bytes (RFC 8032) as stored, base64. `sigFormat` is application/octet-stream: a raw Ed25519 signature has
no media type of its own. It signs ionctl's canonical JSON of the sign-off (`ionctl.config.people.Signature`),
which `ionctl records verify` checks against the signer's enrolled key. A sign-off whose meaning has no code here
is left to the Procedure's notes (in words), never given a guessed type.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ionctl.records.export import SIGN_ACTION
from ionctl.records.fhir_terms import ASTM_SIGNATURE_TYPE, PROVENANCE_PARTICIPANT, SIGNATURE_MEANINGS, coding

PDF = "application/pdf"
#: RFC 3986 URIs as identifiers (FHIR's "urn:ietf:rfc:3986"); the value an RFC 6920 `ni` URI.
URI_SYSTEM = "urn:ietf:rfc:3986"
RAW_SIGNATURE = "application/octet-stream"


def sha1_base64(data: bytes) -> str:
    """R4 Attachment.hash: the base64 (standard alphabet, padded) of the SHA-1 of the data."""
    return base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode("ascii")


def sha256_ni(data: bytes) -> str:
    """The RFC 6920 named-information URI of the data's SHA-256: ni:///sha-256;<base64url, no padding>."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode("ascii").rstrip("=")
    return f"ni:///sha-256;{digest}"


def document_reference(pdf: bytes, *, name: str, subject: dict[str, Any], author: dict[str, Any],
                       procedure_url: str, period: dict[str, str], when: str | None, final: bool,
                       clinic_name: str | None) -> dict[str, Any]:  # fmt: skip
    """The DocumentReference of the chart PDF (without resourceType/id/meta, which the Bundle adds)."""
    attachment: dict[str, Any] = {"contentType": PDF, "data": base64.b64encode(pdf).decode("ascii"),
                                  "size": len(pdf), "hash": sha1_base64(pdf),
                                  "title": f"Iontophoresis session chart, ionctl record {name}"}  # fmt: skip
    resource: dict[str, Any] = {
        "identifier": [{"system": URI_SYSTEM, "value": sha256_ni(pdf)}],
        "status": "current",
        "docStatus": "final" if final else "preliminary",
        "type": {"text": "Iontophoresis session chart (PDF)"},
        "subject": subject,
        "author": [author],
        "description": f"The chart of ionctl record {name} as printed for the patient's file",
        "content": [{"attachment": attachment}],
        "context": {"period": period, "related": [{"reference": procedure_url}]},
    }
    if when:
        resource["date"] = when
        attachment["creation"] = when
    if clinic_name:
        resource["custodian"] = {"type": "Organization", "display": clinic_name}
    return resource


def signature_of(entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The signature an audit entry carries, if it is a record sign-off (`SIGN_ACTION`)."""
    detail = entry.get("detail")
    if isinstance(detail, str):
        try:
            detail = json.loads(detail)
        except ValueError:
            return None
    sig = detail.get("signature") if isinstance(detail, Mapping) else None
    return sig if entry.get("action") == SIGN_ACTION and isinstance(sig, Mapping) else None


def provenance(sig: Mapping[str, Any], *, targets: list[str], when: str | None,
               operator_system: str | None) -> dict[str, Any] | None:  # fmt: skip
    """The Provenance of one sign-off (without resourceType/id/meta); None for a meaning with no code, or no
    signing time."""
    meaning = SIGNATURE_MEANINGS.get(str(sig.get("meaning", "")))
    if meaning is None or not when:
        return None
    sig_type, sig_display, agent_type, agent_display = meaning
    identifier: dict[str, Any] = {"value": str(sig.get("signer", ""))}
    if operator_system:
        identifier["system"] = operator_system
    printed = str(sig.get("full_name") or identifier["value"])
    who = {"type": "Practitioner", "identifier": identifier, "display": printed}
    signature: dict[str, Any] = {"type": [coding(ASTM_SIGNATURE_TYPE, sig_type, sig_display)], "when": when,
                                 "who": who, "sigFormat": RAW_SIGNATURE}  # fmt: skip
    try:
        signature["data"] = base64.b64encode(bytes.fromhex(str(sig.get("value", "")))).decode("ascii")
    except (ValueError, binascii.Error):
        pass  # a malformed value: the Provenance still says who signed what, when; `records verify` names the fault
    if not signature.get("data"):
        signature.pop("data", None)
    return {
        "target": [{"reference": url} for url in targets],
        "recorded": when,
        "agent": [{"type": {"coding": [coding(PROVENANCE_PARTICIPANT, agent_type, agent_display)]},
                   "role": [{"text": str(sig.get("role") or "-")}], "who": who}],  # fmt: skip
        "signature": [signature],
    }

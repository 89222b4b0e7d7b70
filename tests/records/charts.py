"""Records of every kind a chart is made of, built in a store as sessions write them (shared by the chart tests):
completed, faulted, stopped, refused, simulated, without telemetry, and one with so many events that its chart
runs over a page; and the chart PDF read back as text (pypdf) and as pixels (pypdfium2)."""

from __future__ import annotations

import io
from typing import Any

from ionctl.records import Record, Store
from ionctl.records.clinical import ClinicalDetails, TreatmentSite
from ionctl.records.skin import AFTER, BEFORE, SKIN_CHECK_AFTER, SKIN_CHECK_BEFORE, Addendum, SkinCheck

PRESCRIPTION = {"drug": "dexamethasone sodium phosphate", "polarity": "cathode", "electrode_area_cm2": 10.0,
                "current_ma": 4.0, "density_ma_cm2": 0.4, "dose_ma_min": 40.0, "duration_min": None,
                "ramp_up_s": 30.0, "ramp_down_s": 30.0, "patient_id": "P-0042", "operator_id": "tkim",
                "drug_charge": "-", "protocol_class": "drug-electrode", "polarity_reversal_at_midpoint": False,
                "planned_dose_ma_min": 40.0}  # fmt: skip
DEVICE = {"address": "/dev/ttyUSB0", "model": "IONTO-3", "serial": "SN-0042", "firmware": "1.4.2", "protocol": "1.0",
          "compliance_v": 60.0, "watchdog": True}  # fmt: skip
CLINICAL = ClinicalDetails(
    site=TreatmentSite("hand", "left"),
    concentration="4 mg/mL",
    volume_ml=1.5,
    lot="L2231",
    prescriber="Dr. A. Moreau",
    electrode_product="IontoPatch 10",
    electrode_type="drug patch",
)
CLINIC = "Riverside Dermatology Clinic"
CREATED = "2026-03-12T13:00:00.000+00:00"  # 14:00 in Berlin (CET)
FAULT_AT_S = 240.0
LONG_NOTE = ("the patient asked to pause because the left wrist itched; the technician checked the electrode, "
             "re-wetted the pad with the prescribed solution and the session went on as prescribed without a break "
             "in the current")  # fmt: skip


def _utc(seconds: float) -> str:
    from datetime import datetime, timedelta

    return (datetime.fromisoformat(CREATED) + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def record_of(store: Store, kind: str, *, clinical: ClinicalDetails | None = CLINICAL) -> Record:
    """A closed record of `kind`: completed, faulted, stopped, refused, simulated, no-telemetry or long."""
    device = {**DEVICE, "model": "IONTO-SIM 1"} if kind == "simulated" else DEVICE
    details = clinical.to_dict() if clinical is not None else None
    if kind == "simulated" and clinical is not None:
        details = ClinicalDetails(**{**clinical.__dict__, "simulated": True}).to_dict()
    rx = PRESCRIPTION if kind != "refused" else {**PRESCRIPTION, "current_ma": 50.0, "density_ma_cm2": 5.0}
    record_id = store.open_record(patient="P-0042", operator="tkim", prescription=rx, limits={"max_current_ma": 4.0},
                                  limits_sha256="cd" * 32, created_utc=CREATED, clinical=details)  # fmt: skip
    writer = store.session_writer(record_id)
    if kind == "refused":
        writer.event("note", 'limit broken: {"limit_name": "max_current_ma", "limit_value": 4.0, "message": "current '
                     '50.00 mA exceeds the site limit of 4.00 mA (max_current_ma)", "prescribed_value": 50.0, '
                     '"unit": "mA"}', utc=_utc(0))  # fmt: skip
        writer.close({"outcome": "refused", "message": "prescription refused (1 violation):\n  - current 50.00 mA "
                      "exceeds the site limit of 4.00 mA (max_current_ma)", "dose_ma_min": 0.0,
                      "prescribed_dose_ma_min": 40.0, "duration_s": 0.0, "energised": False})  # fmt: skip
        return store.get(record_id)
    writer.event("state", "connected: identified", utc=_utc(0))
    writer.event("note", "device: " + __import__("json").dumps(device, sort_keys=True), utc=_utc(0))
    if kind == "no-telemetry":
        writer.event("state", "stopped: SIGINT before the ramp", utc=_utc(2))
        writer.close({"outcome": "stopped", "message": "stopped before the ramp", "dose_ma_min": 0.0,
                      "prescribed_dose_ma_min": 40.0, "duration_s": 0.0, "device": device})  # fmt: skip
        return store.get(record_id)
    fault, stop = kind == "faulted", kind == "stopped"
    end = FAULT_AT_S if fault or stop else 630.0
    writer.event("state", "ramping_up: prescribed start", utc=_utc(1), device_t_s=100.0)
    dose, t = 0.0, 0.0
    while t <= end:
        ma = min(4.0, 4.0 * t / 30.0) if t < end - 30 or fault else max(0.0, 4.0 * (end - t) / 30.0)
        state = "ramping_up" if t < 30 else "delivering" if t < end - 30 or fault else "ramping_down"
        if abs(t - 30.0) < 1e-9:
            writer.event("state", "delivering: at the prescribed current", utc=_utc(31), device_t_s=100.0 + t)
        if kind == "long" and int(t) % 20 == 0 and abs(t - round(t)) < 1e-9 and 40 <= t <= 560:
            writer.event("note", f"{LONG_NOTE} (check {int(t) // 20})", utc=_utc(1 + t), device_t_s=100.0 + t)
        dose += ma * 1.0 / 60
        writer.sample((100.0 + t, ma, ma, ma * 2.5 + 1, 2500.0 + t if ma > 0.05 else None, dose, dose, 0, state))
        t += 1.0
    if fault:
        writer.event("fault", "fault: the device reports open_circuit", utc=_utc(1 + end), device_t_s=100.0 + end)
        closing = {"outcome": "fault", "fault": "open_circuit", "message": "the device reports open_circuit"}
    elif stop:
        writer.event("state", "stopped: SIGINT, the operator stopped", utc=_utc(1 + end), device_t_s=100.0 + end)
        closing = {"outcome": "stopped", "fault": None, "message": "stopped: SIGINT"}
    else:
        writer.event("state", "completed: output at zero and off", utc=_utc(1 + end), device_t_s=100.0 + end)
        closing = {"outcome": "completed", "fault": None, "message": "delivered"}
    writer.close({**closing, "dose_ma_min": dose, "host_dose_ma_min": dose, "device_dose_ma_min": dose,
                  "dose_source": "host", "prescribed_dose_ma_min": 40.0, "duration_s": end, "peak_current_ma": 4.0,
                  "peak_density_ma_cm2": 0.4, "device": device, "energised": True})  # fmt: skip
    return store.get(record_id)


def add_skin_checks(store: Store, record: Record, *, reaction: str = "") -> Record:
    """A skin check before (clear) and after (erythema with `reaction`, or clear) the session."""
    clear = dict.fromkeys(("erythema", "blistering", "pain", "itching", "other"), "no")
    store.append_addendum(record.id, "tkim", Addendum(SKIN_CHECK_BEFORE, SkinCheck.of(BEFORE, clear)))
    after = {**clear, "erythema": "yes"} if reaction else clear
    store.append_addendum(record.id, "tkim", Addendum(SKIN_CHECK_AFTER, SkinCheck.of(AFTER, after, reaction=reaction)))
    return store.get(record.id)


def pdf_text(data: bytes) -> list[str]:
    """The text of each page of a PDF (pypdf)."""
    import pypdf

    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages]


def page_pixels(data: bytes, page: int = 0, scale: float = 1.0) -> Any:
    """A page of a PDF rendered by PDFium: an (h, w, 3) uint8 array."""
    import numpy as np
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(data)
    try:
        return np.asarray(document[page].render(scale=scale).to_pil().convert("RGB"))
    finally:
        document.close()

"""What a front end collected for one session (`TreatmentRequest`), and the prescription it describes.

A request is plain data: the command line fills one from its options, the console from its screens. Building
the `Prescription` from it (a preset or every value, a course's planned values as the default) and the chart's
`ClinicalDetails` (the treatment site, the preparation's concentration, volume and lot, the prescriber, the
electrode product) happens here, once, for both (docs/ARCHITECTURE.md: the front ends parse, confirm and show;
they build no session).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ionctl.config import SiteConfig
    from ionctl.records.clinical import ClinicalDetails
    from ionctl.safety import Prescription

DRUG_CHARGE_REFUSED = (
    "--drug-charge is not accepted: a drug's charge comes from the built-in table or the site's drug catalog. A "
    "supervisor adds a drug to the catalog ([drugs.NAME] with its charge and source in the site configuration; "
    "`ionctl config init` writes one to edit) and approves it with `ionctl config approve`"
)


@dataclass(frozen=True)
class TreatmentRequest:
    """One session as asked for: where, who, what (a preset and/or values), which course, and any override.

    Values left None come from the preset, or the course's plan; `device` is the address the session runs on
    (a serial port, a pyserial URL, `visa:RESOURCE`, or what the front end's opener understands)."""

    device: str
    operator: str  # with a record store, `prepare` puts the authenticated operator's login name here
    patient: str | None = None
    preset: str | None = None
    drug: str | None = None
    drug_charge: str | None = None  # never accepted: kept so that a front end can refuse it with what to do
    polarity: str | None = None  # "anode" | "cathode": the active (drug) electrode
    electrode: str | None = None  # an electrode of the site catalog (its area)
    electrode_area_cm2: float | None = None
    current_ma: float | None = None
    dose_ma_min: float | None = None
    duration_min: float | None = None
    ramp_up_s: float | None = None
    ramp_down_s: float | None = None
    protocol_class: str | None = None
    reverse_at_midpoint: bool = False
    course_id: int | None = None
    course_ref: str | None = None  # another bench's course, clinic-wide ("bench-a/3"; `prepare` resolves this bench's)
    override_reason: str | None = None  # a supervisor (logged in) sets a course rule aside, for this reason
    accept_no_watchdog: bool = False
    db: str | None = None  # the record store as the front end named it (shown in the report)
    visit: dict[str, Any] | None = None  # a visit's channel: {"id", "channel", "channels"} (ionctl.treatment.visit)
    # The chart's details (`ionctl.records.clinical`): None takes the preset's, else the course's (the site only).
    site: str | None = None  # the treatment site: "left hand", "both feet", "back"
    concentration: str | None = None  # as labelled: "4 mg/mL"
    volume_ml: float | None = None
    lot: str | None = None
    prescriber: str | None = None
    simulated: bool = False  # the front end knows the device is a simulator (`ionctl demo`); `sim:` says so itself


def build_prescription(
    request: TreatmentRequest, config: SiteConfig, course: dict[str, Any] | None = None
) -> Prescription:
    """The `Prescription` the request describes (from its preset, or the course's, with the values given
    changing it); `PrescriptionError` (or `ConfigError` for an unknown preset or electrode) if it cannot be built."""
    from ionctl.drivers.base import Polarity
    from ionctl.safety import Prescription, PrescriptionError

    if request.drug_charge is not None:
        raise PrescriptionError(DRUG_CHARGE_REFUSED)
    patient = request.patient
    preset_name = request.preset
    if course is not None:
        if patient is not None and patient != course["patient"]:
            raise PrescriptionError(f"course {course['id']} is patient {course['patient']}'s, not {patient}'s")
        if preset_name is not None and preset_name != course["preset"]:
            raise PrescriptionError(f"course {course['id']} follows preset {course['preset']}, not {preset_name}")
        patient, preset_name = course["patient"], course["preset"]
    if patient is None:
        raise PrescriptionError("give --patient (or --course)")
    drug, charge = config.resolve_drug(request.drug) if request.drug is not None else (None, None)
    area = config.electrode(request.electrode).area_cm2 if request.electrode else request.electrode_area_cm2
    values: dict[str, Any] = {
        "drug": drug,
        "drug_charge": charge,  # the catalog's, for a drug the built-in table does not know
        "polarity": Polarity(request.polarity) if request.polarity is not None else None,
        "electrode_area_cm2": area,
        "current_ma": request.current_ma,
        "dose_ma_min": request.dose_ma_min,
        "duration_min": request.duration_min,
        "ramp_up_s": request.ramp_up_s,
        "ramp_down_s": request.ramp_down_s,
        "protocol_class": request.protocol_class,
        "polarity_reversal_at_midpoint": request.reverse_at_midpoint or None,
    }
    if course is not None:  # the course's planned prescription is the default; what is given here changes it
        from ionctl.core.courses import planned_values

        planned = planned_values(course)
        if values["dose_ma_min"] is not None or values["duration_min"] is not None:
            planned = {k: v for k, v in planned.items() if k not in ("dose_ma_min", "duration_min")}
        values.update({k: v for k, v in planned.items() if values[k] is None})
    if preset_name is not None:
        return config.preset(preset_name).prescription(patient_id=patient, operator_id=request.operator, **values)
    missing = [option for option, key in (("--drug", "drug"), ("--polarity", "polarity"),
                                          ("--electrode-area or --electrode", "electrode_area_cm2"),
                                          ("--current", "current_ma")) if values[key] is None]  # fmt: skip
    if values["dose_ma_min"] is None and values["duration_min"] is None:
        missing.append("--dose or --duration")
    if missing:
        raise PrescriptionError(f"give {', '.join(missing)} (or --preset NAME)")
    return Prescription(patient_id=patient, operator_id=request.operator,
                        **{k: v for k, v in values.items() if v is not None})  # fmt: skip


def clinical_details(request: TreatmentRequest, config: SiteConfig,
                     course: dict[str, Any] | None = None) -> ClinicalDetails:  # fmt: skip
    """The chart details of the session the request describes: each value as given, else the preset's (the site,
    concentration and volume), else the course's (the site its preset gave when the course started); the electrode
    product and type from the catalog entry of the electrode named (the request's, else the preset's when no area
    was given instead). `ClinicalError` naming what is accepted for a missing or unknown treatment site, or a
    volume out of range; `ConfigError` for an unknown preset or electrode."""
    from ionctl.drivers import SIM_PREFIX
    from ionctl.records.clinical import ClinicalDetails, TreatmentSite, VisitRef

    preset_name = course["preset"] if course is not None else request.preset
    preset = config.preset(preset_name) if preset_name is not None else None
    planned = ((course.get("plan") or {}).get("preset") if course is not None else None) or {}
    site = next((str(s) for s in (request.site, preset.site if preset is not None else None, planned.get("site"))
                 if s is not None and str(s).strip()), "")  # fmt: skip
    electrode = request.electrode
    if electrode is None and request.electrode_area_cm2 is None and preset is not None:
        electrode = preset.electrode
    entry = config.electrode(electrode) if electrode is not None else None
    return ClinicalDetails(
        site=TreatmentSite.parse(site),
        concentration=_given(request.concentration, preset.concentration if preset is not None else None),
        volume_ml=_given(request.volume_ml, preset.volume_ml if preset is not None else None),
        lot=request.lot, prescriber=request.prescriber,
        electrode_product=entry.name if entry is not None else None,
        electrode_type=(entry.type or None) if entry is not None else None,
        simulated=request.simulated or request.device.strip().lower().startswith(SIM_PREFIX),
        visit=VisitRef.from_dict(request.visit) if request.visit is not None else None,
    )  # fmt: skip


def _given(value: Any, default: Any) -> Any:
    """`value` unless it was left out (None, or blank text), else `default`."""
    return default if value is None or (isinstance(value, str) and not value.strip()) else value

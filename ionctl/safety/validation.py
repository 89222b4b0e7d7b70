"""Is a prescription safe to deliver here, on this device? And what should the device enforce itself?

`violations` checks a `Prescription` for consistency, its drug (against the built-in table and the site's drug
catalog), the site limits of its protocol class, the packaged ceilings and, once connected, the hardware's own
limits, and lists *every* violation at once (a technician fixing one number at a time is how mistakes slip
in); `validate` accepts a prescription with none or refuses it with that list. `device_limits` turns an
accepted prescription into the `DeviceLimits` the source enforces on its own (docs/ARCHITECTURE.md, principle 3): a
backstop just above what the host intends.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from ionctl.drivers.base import DeviceIdentity, DeviceLimits
from ionctl.safety.ceilings import KEYS as CEILING_KEYS
from ionctl.safety.ceilings import Ceilings, ceilings_for
from ionctl.safety.drugs import Charge, closest_names, drug_identity, find_drug
from ionctl.safety.errors import PrescriptionRefused, Violation
from ionctl.safety.limits import SiteLimits
from ionctl.safety.prescription import DRUG_ELECTRODE, TAP_WATER, Prescription

#: device_limits(): the device's duration limit sits this fraction above the plan (time lost at compliance
#: is made up by running longer, as the ActivaDose II does), plus the compliance tolerance.
DURATION_MARGIN_FRACTION = 0.10
#: device_limits(): the device's compliance timeout is this many times the host's, so the host's ramped
#: compliance stop comes first and the device's is the backstop.
DEVICE_COMPLIANCE_FACTOR = 1.5


@dataclass(frozen=True)
class ValidatedPrescription:
    """A prescription `validate` accepted, with the resolved limits and facts the session needs.
    Build it only through `validate`."""

    prescription: Prescription
    limits: SiteLimits  # resolved for prescription.protocol_class
    hardware: DeviceIdentity | None  # None: validated before connecting; validate again once connected
    drug_charge: Charge  # from the table, or the prescription's explicit charge

    @property
    def planned_dose_ma_min(self) -> float:
        return self.prescription.planned_dose_ma_min

    @property
    def planned_duration_s(self) -> float:
        return self.prescription.planned_duration_s


def validate(
    prescription: Prescription,
    limits: SiteLimits,
    hardware: DeviceIdentity | None = None,
    *,
    catalog: Mapping[str, CatalogEntry] | None = None,
) -> ValidatedPrescription:
    """Accept `prescription` or raise `PrescriptionRefused` listing every violation (`violations`)."""
    found = violations(prescription, limits, hardware, catalog=catalog)
    if found:
        raise PrescriptionRefused(found)
    charge = _charge(prescription, catalog)
    assert charge is not None  # an unknown charge is a violation
    return ValidatedPrescription(prescription, limits.for_class(prescription.protocol_class), hardware, charge)


def violations(
    prescription: Prescription,
    limits: SiteLimits,
    hardware: DeviceIdentity | None = None,
    *,
    catalog: Mapping[str, CatalogEntry] | None = None,
) -> tuple[Violation, ...]:
    """Every reason `prescription` may not be delivered, in one list (empty: it may): its own consistency
    (ramps that do not fit its dose or duration), the drug (against the built-in table and, when given, the
    site's drug `catalog`: a drug outside it is refused), the site limits of its protocol class, the packaged
    ceilings (`ionctl.safety.ceilings`) and, once connected, the device's own limits. Both front ends show
    this list, so a technician sees the same reasons at the command line and at the console."""
    p = prescription
    found = list(_consistency_checks(p))
    found += _drug_checks(p, catalog)
    ceilings = ceilings_for(p.protocol_class)
    if p.protocol_class not in limits.classes:
        known = ", ".join(sorted(limits.classes))
        message = f"protocol class {p.protocol_class!r} is not defined in the site limits (known: {known})"
        found.append(Violation("protocol_class", known, p.protocol_class, "", message))
    else:
        site = limits.for_class(p.protocol_class)
        found += _site_checks(p, site, ceilings)
        if hardware is not None:
            found += _hardware_checks(p, site, hardware, ceilings)
    found += _area_checks(p, ceilings)
    return tuple(found)


class CatalogEntry(Protocol):
    """What validation needs of a site's drug catalog entry (`ionctl.config.DrugEntry`)."""

    @property
    def charge(self) -> Charge: ...


# -- the checks ----------------------------------------------------------------------------------------------


def _above(what: str, value: float, limit: float, unit: str, name: str, whose: str) -> Violation:
    message = f"{what} {value:.2f} {unit} exceeds the {whose} limit of {limit:.2f} {unit} ({name})"
    return Violation(name, limit, value, unit, message)


def _below(what: str, value: float, limit: float, unit: str, name: str) -> Violation:
    message = f"{what} {value:.2f} {unit} is below the site minimum of {limit:.2f} {unit} ({name})"
    return Violation(name, limit, value, unit, message)


def _beyond_ceiling(what: str, value: float, unit: str, name: str, ceilings: Ceilings) -> Violation:
    side = "exceeds" if CEILING_KEYS[name] else "is below"
    message = f"{what} {value:.2f} {unit} {side} {ceilings.describe(name)}"
    return Violation(name, ceilings.values[name], value, unit, message)


def _consistency_checks(p: Prescription) -> Iterator[Violation]:
    """A prescription whose ramps alone deliver more than its dose, or last longer than its duration."""
    if p.dose_ma_min is not None and p.dose_ma_min < p.ramp_dose_ma_min:
        message = (
            f"dose {p.dose_ma_min:.2f} mA·min is less than its ramps alone deliver ({p.ramp_dose_ma_min:.2f} mA·min "
            f"at {p.current_ma:.2f} mA): shorten the ramps (ramp_up_s, ramp_down_s)"
        )
        yield Violation("ramps", p.ramp_dose_ma_min, p.dose_ma_min, "mA·min", message)
    if p.duration_min is not None and p.duration_min * 60 < p.ramp_time_s:
        message = (
            f"duration {p.duration_min:.2f} min is shorter than its ramps ({p.ramp_time_s:.0f} s): shorten the ramps "
            f"(ramp_up_s, ramp_down_s)"
        )
        yield Violation("ramps", p.ramp_time_s, p.duration_min * 60, "s", message)


def _known_charge(p: Prescription, catalog: Mapping[str, CatalogEntry] | None) -> tuple[Charge, str] | None:
    """The charge the built-in table, else the site's catalog, gives the drug, with where it comes from."""
    drug = find_drug(p.drug)
    if drug is not None:
        return drug.charge, drug.source
    name = _catalog_name(p.drug, catalog)
    if catalog is not None and name is not None:
        return catalog[name].charge, f"site drug catalog [drugs.{name}]"
    return None


def _catalog_name(drug: str, catalog: Mapping[str, CatalogEntry] | None) -> str | None:
    if catalog is None:
        return None
    wanted = drug_identity(drug)
    return next((name for name in catalog if drug_identity(name) == wanted), None)


def _charge(p: Prescription, catalog: Mapping[str, CatalogEntry] | None) -> Charge | None:
    known = _known_charge(p, catalog)
    return known[0] if known is not None else p.drug_charge


def _drug_checks(p: Prescription, catalog: Mapping[str, CatalogEntry] | None) -> list[Violation]:
    found = []
    if catalog is not None and _catalog_name(p.drug, catalog) is None:
        near = closest_names(p.drug, catalog)
        hint = f"; did you mean {' or '.join(near)}?" if near else f" (it has: {', '.join(sorted(catalog)) or 'none'})"
        message = (
            f"drug {p.drug!r} is not in the site's drug catalog{hint} A drug is added to the catalog by a "
            "supervisor: in [drugs] of the site configuration, with its charge and source, then `ionctl config "
            "approve` (drug)"
        )
        found.append(Violation("drug", None, p.drug, "", message))
    known = _known_charge(p, catalog)
    if known is None and p.drug_charge is None:
        if not found:
            message = (f"unknown drug {p.drug!r}: not in the built-in table and no charge known; a supervisor adds it "
                       "to the site's drug catalog ([drugs], with its charge and source) (drug)")  # fmt: skip
            found.append(Violation("drug", None, p.drug, "", message))
        return found
    if known is not None and p.drug_charge not in (None, known[0]):
        assert p.drug_charge is not None
        table_charge, source = known
        message = (
            f"drug charge {p.drug_charge.value} contradicts {p.drug}, which is {table_charge.name.lower()} "
            f"({table_charge.value}; {source}): a declared charge never overrides a known one (drug_charge)"
        )
        found.append(Violation("drug_charge", table_charge.value, p.drug_charge.value, "", message))
    charge = known[0] if known is not None else p.drug_charge
    assert charge is not None
    found += _polarity_checks(p, charge)
    if p.protocol_class == TAP_WATER and charge is not Charge.NEUTRAL:
        kind = f"{charge.name.lower()} ({charge.value})"
        message = (f"the {TAP_WATER} class (its larger current and dose limits are for trays of water) is for a "
                   f"neutral solution; {p.drug} is {kind} (protocol_class)")  # fmt: skip
        found.append(Violation("protocol_class", TAP_WATER, p.protocol_class, "", message))
    return found


def _polarity_checks(p: Prescription, charge: Charge) -> list[Violation]:
    required = charge.required_polarity
    if required is None:
        return []
    kind = charge.name.lower()
    if p.polarity is not required:
        message = (
            f"{p.drug} is {kind} ({charge.value}) and must be delivered from the {required.value}; "
            f"the prescription makes the {p.polarity.value} active (drug_charge)"
        )
        return [Violation("drug_charge", required.value, p.polarity.value, "", message)]
    if p.polarity_reversal_at_midpoint:
        message = (
            f"polarity reversal at midpoint would deliver {kind} {p.drug} from the wrong electrode for half the "
            f"session; only a neutral solution may reverse (drug_charge)"
        )
        return [Violation("drug_charge", "no reversal", "reversal", "", message)]
    return []


def _site_checks(p: Prescription, site: SiteLimits, ceilings: Ceilings) -> Iterator[Violation]:
    """The site's limits, each within its ceiling: a prescription is held to the tighter of the two, and a
    violation names the one that binds."""
    whose = "site" if site.protocol_class == "drug-electrode" else f"{site.protocol_class} site"
    for what, value, unit, name in (
        ("current", p.current_ma, "mA", "max_current_ma"),
        ("current density", p.density_ma_cm2, "mA/cm²", "max_density_ma_cm2"),
        ("dose", p.planned_dose_ma_min, "mA·min", "max_dose_ma_min"),
        ("duration", p.planned_duration_min, "min", "max_duration_min"),
    ):
        limit = getattr(site, name)
        if limit > ceilings.values[name] and ceilings.breaks(name, value):
            yield _beyond_ceiling(what, value, unit, name, ceilings)
        elif value > limit:
            yield _above(what, value, limit, unit, name, whose)
    for what, ramp_s in (("ramp-up", p.ramp_up_s), ("ramp-down", p.ramp_down_s)):
        if site.min_ramp_s < ceilings.values["min_ramp_s"] and ceilings.breaks("min_ramp_s", ramp_s):
            yield _beyond_ceiling(what, ramp_s, "s", "min_ramp_s", ceilings)
        elif ramp_s < site.min_ramp_s:
            yield _below(what, ramp_s, site.min_ramp_s, "s", "min_ramp_s")
        if ramp_s > site.max_ramp_s:
            yield _above(what, ramp_s, site.max_ramp_s, "s", "max_ramp_s", whose)


def _area_checks(p: Prescription, ceilings: Ceilings) -> Iterator[Violation]:
    for name in ("min_electrode_area_cm2", "max_electrode_area_cm2"):
        if ceilings.breaks(name, p.electrode_area_cm2):
            yield _beyond_ceiling("electrode area", p.electrode_area_cm2, "cm²", name, ceilings)


def _hardware_checks(p: Prescription, site: SiteLimits, hw: DeviceIdentity, ceilings: Ceilings) -> Iterator[Violation]:
    if p.current_ma > hw.hw_max_current_ma:
        yield _above("current", p.current_ma, hw.hw_max_current_ma, "mA", "hw_max_current_ma", f"{hw.model} hardware")
    # Even the lowest impedance the site accepts while running must not need more than the compliance voltage
    # (the device's, or the ceiling's if the device reports more: it is never configured above that).
    compliance_v = compliance_of(hw)
    whose = f"{hw.model} compliance" if compliance_v == hw.compliance_v else "ionctl ceiling max_compliance_v"
    needed_v = p.current_ma * site.min_running_impedance_ohm / 1000
    if needed_v > compliance_v:
        message = (
            f"current {p.current_ma:.2f} mA needs {needed_v:.2f} V through the site's minimum running impedance "
            f"of {site.min_running_impedance_ohm:.0f} Ω, above the {whose} of {compliance_v:.2f} V "
            f"(compliance_v)"
        )
        yield Violation("compliance_v", compliance_v, needed_v, "V", message)


def compliance_of(hw: DeviceIdentity) -> float:
    """The voltage a session may drive: the device's compliance, at most the ceiling's `max_compliance_v`."""
    return min(hw.compliance_v, ceilings_for(DRUG_ELECTRODE).values["max_compliance_v"])


# -- what the device enforces ----------------------------------------------------------------------------------


def device_limits(validated: ValidatedPrescription) -> DeviceLimits:
    """The limits to hand the source for this session: each just above what the host intends, so the host's
    own (ramped, reported) handling comes first and the device's is the independent backstop.

    - max current: prescription + the current-mismatch tolerance, capped by the site, hardware and ceiling maxima;
    - max slew: the max current over the site's *minimum* ramp: every prescribed ramp fits under it, and an
      abort (which ramps at max slew) reaches zero within `min_ramp_s`;
    - max dose: planned dose + the dose-mismatch tolerance, capped by the site and ceiling maxima (at the site maximum
      there is no margin: the device may trip DOSE_LIMIT in the last moments of the ramp-down);
    - max duration: planned + 10 % + the compliance tolerance (time lost at compliance is made up by running
      longer); device time spent paused counts against it;
    - voltage: the hardware compliance, at most the ceiling's `max_compliance_v` (a SourceMeter can do more);
      impedance window: the site's running window; area: the electrode's; watchdog: the site's; compliance
      timeout: 1.5 × the site's tolerance.

    Raises ValueError if `validated` was validated without the hardware identity (validate once connected).
    """
    p, site, hw = validated.prescription, validated.limits, validated.hardware
    if hw is None:
        raise ValueError("device_limits needs a prescription validated against the connected device's identity")
    ceilings = ceilings_for(p.protocol_class)
    current_margin_ma = max(p.current_ma * site.current_mismatch_fraction, site.current_mismatch_floor_ma)
    max_current_ma = min(p.current_ma + current_margin_ma, site.max_current_ma, hw.hw_max_current_ma,
                         ceilings.values["max_current_ma"])  # fmt: skip
    min_ramp_s = max(site.min_ramp_s, ceilings.values["min_ramp_s"])
    ceiling_dose = ceilings.values["max_dose_ma_min"]
    dose_margin = max(p.planned_dose_ma_min * site.dose_mismatch_fraction, site.dose_mismatch_floor_ma_min)
    duration_s = p.planned_duration_s * (1 + DURATION_MARGIN_FRACTION) + site.compliance_tolerance_s
    return DeviceLimits(
        max_current_ma=max_current_ma,
        max_slew_ma_per_s=max_current_ma / min_ramp_s,
        max_dose_ma_min=min(p.planned_dose_ma_min + dose_margin, site.max_dose_ma_min, ceiling_dose),
        max_voltage_v=compliance_of(hw),
        max_duration_s=duration_s,
        min_impedance_ohm=site.min_running_impedance_ohm,
        max_impedance_ohm=site.max_running_impedance_ohm,
        area_cm2=p.electrode_area_cm2,
        watchdog_s=site.watchdog_s,
        compliance_timeout_s=site.compliance_tolerance_s * DEVICE_COMPLIANCE_FACTOR,
    )

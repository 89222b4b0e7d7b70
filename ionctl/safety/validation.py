"""Is a prescription safe to deliver here, on this device? And what should the device enforce itself?

`validate` checks a `Prescription` against the site limits of its protocol class and, once connected,
the hardware's own limits, and refuses with *every* violation at once (a technician fixing one number at
a time is how mistakes slip in). `device_limits` turns an accepted prescription into the `DeviceLimits`
the source enforces on its own (DESIGN.md principle 3): a backstop just above what the host intends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ionctl.drivers.base import DeviceIdentity, DeviceLimits
from ionctl.safety.drugs import Charge, find_drug
from ionctl.safety.errors import PrescriptionRefused, Violation
from ionctl.safety.limits import SiteLimits
from ionctl.safety.prescription import TAP_WATER, Prescription

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
    prescription: Prescription, limits: SiteLimits, hardware: DeviceIdentity | None = None
) -> ValidatedPrescription:
    """Accept `prescription` or raise `PrescriptionRefused` listing every violation."""
    if prescription.protocol_class not in limits.classes:
        known = ", ".join(sorted(limits.classes))
        message = f"protocol class {prescription.protocol_class!r} is not defined in the site limits (known: {known})"
        raise PrescriptionRefused((Violation("protocol_class", known, prescription.protocol_class, "", message),))
    site = limits.for_class(prescription.protocol_class)
    charge, violations = _drug_checks(prescription)
    violations += list(_site_checks(prescription, site))
    if hardware is not None:
        violations += list(_hardware_checks(prescription, site, hardware))
    if violations:
        raise PrescriptionRefused(tuple(violations))
    assert charge is not None  # an unknown charge is a violation above
    return ValidatedPrescription(prescription, site, hardware, charge)


# -- the checks ----------------------------------------------------------------------------------------------


def _above(what: str, value: float, limit: float, unit: str, name: str, whose: str) -> Violation:
    message = f"{what} {value:.2f} {unit} exceeds the {whose} limit of {limit:.2f} {unit} ({name})"
    return Violation(name, limit, value, unit, message)


def _below(what: str, value: float, limit: float, unit: str, name: str) -> Violation:
    message = f"{what} {value:.2f} {unit} is below the site minimum of {limit:.2f} {unit} ({name})"
    return Violation(name, limit, value, unit, message)


def _drug_checks(p: Prescription) -> tuple[Charge | None, list[Violation]]:
    drug = find_drug(p.drug)
    if drug is None and p.drug_charge is None:
        message = f"unknown drug {p.drug!r} and no drug charge given: state its charge (+, - or 0)"
        return None, [Violation("drug", None, p.drug, "", message)]
    if drug is not None and p.drug_charge not in (None, drug.charge):
        assert p.drug_charge is not None
        message = (
            f"drug charge {p.drug_charge.value} contradicts {drug.name}, which is {drug.charge.name.lower()} "
            f"({drug.charge.value}; {drug.source})"
        )
        return None, [Violation("drug_charge", drug.charge.value, p.drug_charge.value, "", message)]
    charge = drug.charge if drug is not None else p.drug_charge
    assert charge is not None
    violations = _polarity_checks(p, charge)
    if p.protocol_class == TAP_WATER and charge is not Charge.NEUTRAL:
        kind = f"{charge.name.lower()} ({charge.value})"
        message = (f"the {TAP_WATER} class (its larger current and dose limits are for trays of water) is for a "
                   f"neutral solution; {p.drug} is {kind} (protocol_class)")  # fmt: skip
        violations.append(Violation("protocol_class", TAP_WATER, p.protocol_class, "", message))
    return charge, violations


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


def _site_checks(p: Prescription, site: SiteLimits) -> Iterator[Violation]:
    whose = "site" if site.protocol_class == "drug-electrode" else f"{site.protocol_class} site"
    if p.current_ma > site.max_current_ma:
        yield _above("current", p.current_ma, site.max_current_ma, "mA", "max_current_ma", whose)
    if p.density_ma_cm2 > site.max_density_ma_cm2:
        yield _above(
            "current density", p.density_ma_cm2, site.max_density_ma_cm2, "mA/cm²", "max_density_ma_cm2", whose
        )
    if p.planned_dose_ma_min > site.max_dose_ma_min:
        yield _above("dose", p.planned_dose_ma_min, site.max_dose_ma_min, "mA·min", "max_dose_ma_min", whose)
    if p.planned_duration_min > site.max_duration_min:
        yield _above("duration", p.planned_duration_min, site.max_duration_min, "min", "max_duration_min", whose)
    for what, ramp_s in (("ramp-up", p.ramp_up_s), ("ramp-down", p.ramp_down_s)):
        if ramp_s < site.min_ramp_s:
            yield _below(what, ramp_s, site.min_ramp_s, "s", "min_ramp_s")
        if ramp_s > site.max_ramp_s:
            yield _above(what, ramp_s, site.max_ramp_s, "s", "max_ramp_s", whose)


def _hardware_checks(p: Prescription, site: SiteLimits, hw: DeviceIdentity) -> Iterator[Violation]:
    if p.current_ma > hw.hw_max_current_ma:
        yield _above("current", p.current_ma, hw.hw_max_current_ma, "mA", "hw_max_current_ma", f"{hw.model} hardware")
    # Even the lowest impedance the site accepts while running must not need more than the compliance voltage.
    needed_v = p.current_ma * site.min_running_impedance_ohm / 1000
    if needed_v > hw.compliance_v:
        message = (
            f"current {p.current_ma:.2f} mA needs {needed_v:.2f} V through the site's minimum running impedance "
            f"of {site.min_running_impedance_ohm:.0f} Ω, above the {hw.model} compliance of {hw.compliance_v:.2f} V "
            f"(compliance_v)"
        )
        yield Violation("compliance_v", hw.compliance_v, needed_v, "V", message)


# -- what the device enforces ----------------------------------------------------------------------------------


def device_limits(validated: ValidatedPrescription) -> DeviceLimits:
    """The limits to hand the source for this session: each just above what the host intends, so the host's
    own (ramped, reported) handling comes first and the device's is the independent backstop.

    - max current: prescription + the current-mismatch tolerance, capped by the site and hardware maxima;
    - max slew: the max current over the site's *minimum* ramp: every prescribed ramp fits under it, and an
      abort (which ramps at max slew) reaches zero within `min_ramp_s`;
    - max dose: planned dose + the dose-mismatch tolerance, capped by the site maximum (at the site maximum
      there is no margin: the device may trip DOSE_LIMIT in the last moments of the ramp-down);
    - max duration: planned + 10 % + the compliance tolerance (time lost at compliance is made up by running
      longer); device time spent paused counts against it;
    - voltage: the hardware compliance; impedance window: the site's running window; area: the electrode's;
      watchdog: the site's; compliance timeout: 1.5 × the site's tolerance.

    Raises ValueError if `validated` was validated without the hardware identity (validate once connected).
    """
    p, site, hw = validated.prescription, validated.limits, validated.hardware
    if hw is None:
        raise ValueError("device_limits needs a prescription validated against the connected device's identity")
    current_margin_ma = max(p.current_ma * site.current_mismatch_fraction, site.current_mismatch_floor_ma)
    max_current_ma = min(p.current_ma + current_margin_ma, site.max_current_ma, hw.hw_max_current_ma)
    dose_margin = max(p.planned_dose_ma_min * site.dose_mismatch_fraction, site.dose_mismatch_floor_ma_min)
    duration_s = p.planned_duration_s * (1 + DURATION_MARGIN_FRACTION) + site.compliance_tolerance_s
    return DeviceLimits(
        max_current_ma=max_current_ma,
        max_slew_ma_per_s=max_current_ma / site.min_ramp_s,
        max_dose_ma_min=min(p.planned_dose_ma_min + dose_margin, site.max_dose_ma_min),
        max_voltage_v=hw.compliance_v,
        max_duration_s=duration_s,
        min_impedance_ohm=site.min_running_impedance_ohm,
        max_impedance_ohm=site.max_running_impedance_ohm,
        area_cm2=p.electrode_area_cm2,
        watchdog_s=site.watchdog_s,
        compliance_timeout_s=site.compliance_tolerance_s * DEVICE_COMPLIANCE_FACTOR,
    )

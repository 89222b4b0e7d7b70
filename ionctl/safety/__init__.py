"""The host's safety layer, pure (no I/O but reading a limits file, no clock, no threads).

A technician's `Prescription` is checked against the site's `SiteLimits` (packaged defaults, or a site
file, never beyond the packaged `ceilings`), the site's drug catalog and the connected device's
`DeviceIdentity` by `validate`, which returns a `ValidatedPrescription` or raises `PrescriptionRefused`
listing every `Violation` (`violations` gives the same list without raising); `device_limits` derives what
the device must enforce on its own. Modules: `drugs` (charge table, names and synonyms), `prescription`,
`limits` (TOML, protocol classes), `ceilings` (bounds no site may exceed), `validation`, `errors`.

    limits = SiteLimits.load(path_or_None)
    validated = validate(prescription, limits, source.identity, catalog=config.drugs)  # PrescriptionRefused
    source.configure(device_limits(validated))
"""

from ionctl.safety.ceilings import Ceilings, ceilings_for
from ionctl.safety.drugs import DRUGS, Charge, Drug, closest_names, drug_identity, find_drug, normalise_drug_name
from ionctl.safety.errors import LimitsFileError, PrescriptionError, PrescriptionRefused, SafetyError, Violation
from ionctl.safety.limits import LIMIT_KEYS, SiteLimits
from ionctl.safety.prescription import DRUG_ELECTRODE, TAP_WATER, Prescription
from ionctl.safety.validation import ValidatedPrescription, device_limits, validate, violations

__all__ = [
    "DRUGS",
    "DRUG_ELECTRODE",
    "LIMIT_KEYS",
    "TAP_WATER",
    "Ceilings",
    "Charge",
    "Drug",
    "LimitsFileError",
    "Prescription",
    "PrescriptionError",
    "PrescriptionRefused",
    "SafetyError",
    "SiteLimits",
    "ValidatedPrescription",
    "Violation",
    "ceilings_for",
    "closest_names",
    "device_limits",
    "drug_identity",
    "find_drug",
    "normalise_drug_name",
    "validate",
    "violations",
]

"""The host's safety layer, pure (no I/O but reading a limits file, no clock, no threads).

A technician's `Prescription` is checked against the site's `SiteLimits` (packaged defaults, or a site
file) and the connected device's `DeviceIdentity` by `validate`, which returns a `ValidatedPrescription`
or raises `PrescriptionRefused` listing every `Violation`; `device_limits` derives what the device must
enforce on its own. Modules: `drugs` (charge table), `prescription`, `limits` (TOML, protocol classes),
`validation`, `errors`.

    limits = SiteLimits.load(path_or_None)
    validated = validate(prescription, limits, source.identity)  # raises PrescriptionRefused
    source.configure(device_limits(validated))
"""

from ionctl.safety.drugs import DRUGS, Charge, Drug, find_drug
from ionctl.safety.errors import LimitsFileError, PrescriptionError, PrescriptionRefused, SafetyError, Violation
from ionctl.safety.limits import LIMIT_KEYS, SiteLimits
from ionctl.safety.prescription import DRUG_ELECTRODE, TAP_WATER, Prescription
from ionctl.safety.validation import ValidatedPrescription, device_limits, validate

__all__ = [
    "DRUGS",
    "DRUG_ELECTRODE",
    "LIMIT_KEYS",
    "TAP_WATER",
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
    "device_limits",
    "find_drug",
    "validate",
]

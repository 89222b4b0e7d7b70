"""A prescription: what the technician asks ionctl to deliver, checked for form when built.

Built means well-formed (types, positive finite numbers, exactly one of dose and duration), with a drug the
built-in table knows under any of its names recorded by the table's own name (`Xylocaine` is `lidocaine`);
whether it is consistent (ramps that fit its dose or duration) and *safe* is `validate`'s job, in one list
with the site limits, the ceilings and the hardware.

Timing model (used for the planned dose and duration, and by the session):
a session ramps linearly from 0 to `current_ma` over `ramp_up_s`, holds, and ramps linearly back to 0
over `ramp_down_s`; a linear ramp delivers half the dose of a hold of the same length. With
`polarity_reversal_at_midpoint` there is a second ramp pair in the middle (ramp down, switch at zero
current, ramp up). `duration_min` is the whole session, first ramp start to last ramp end; so
`dose = current × (duration − pairs × (ramp_up + ramp_down) / 2)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ionctl.drivers.base import Polarity
from ionctl.safety.drugs import Charge, find_drug
from ionctl.safety.errors import PrescriptionError
from ionctl.safety.identifiers import check_identifier

DRUG_ELECTRODE = "drug-electrode"
TAP_WATER = "tap-water"


def _positive(name: str, value: object, *, zero_ok: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PrescriptionError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise PrescriptionError(
            f"{name} must be a {'non-negative' if zero_ok else 'positive'} finite number, got {value!r}"
        )


def _text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise PrescriptionError(f"{name} must be a non-empty string, got {value!r}")
    check_identifier(name, value)  # printable text only: no line breaks, tabs, escape sequences


@dataclass(frozen=True, kw_only=True)
class Prescription:
    """What to deliver, to whom, by whom. All keyword-only; see the module docstring for the timing."""

    drug: str
    polarity: Polarity  # of the active (drug) electrode
    electrode_area_cm2: float  # per electrode (the active one sets the density)
    current_ma: float  # the hold current
    dose_ma_min: float | None = None  # exactly one of dose_ma_min and duration_min
    duration_min: float | None = None  # whole session, ramps included
    ramp_up_s: float = 30.0  # 30 s each way is typical (Soterix IontoDC; docs/SOURCES.md)
    ramp_down_s: float = 30.0
    patient_id: str
    operator_id: str
    drug_charge: Charge | None = None  # required for a drug not in the built-in table
    protocol_class: str = DRUG_ELECTRODE  # selects the `[class.NAME]` site limits
    polarity_reversal_at_midpoint: bool = False

    def __post_init__(self) -> None:
        for name in ("drug", "patient_id", "operator_id", "protocol_class"):
            _text(name, getattr(self, name))
        if not isinstance(self.polarity, Polarity):
            raise PrescriptionError(f"polarity must be a Polarity, got {self.polarity!r}")
        if self.drug_charge is not None and not isinstance(self.drug_charge, Charge):
            raise PrescriptionError(f"drug_charge must be a Charge or None, got {self.drug_charge!r}")
        if not isinstance(self.polarity_reversal_at_midpoint, bool):
            raise PrescriptionError(
                f"polarity_reversal_at_midpoint must be a bool, got {self.polarity_reversal_at_midpoint!r}"
            )
        _positive("electrode_area_cm2", self.electrode_area_cm2)
        _positive("current_ma", self.current_ma)
        _positive("ramp_up_s", self.ramp_up_s, zero_ok=True)
        _positive("ramp_down_s", self.ramp_down_s, zero_ok=True)
        if (self.dose_ma_min is None) == (self.duration_min is None):
            raise PrescriptionError("give exactly one of dose_ma_min and duration_min")
        if self.dose_ma_min is not None:
            _positive("dose_ma_min", self.dose_ma_min)
        if self.duration_min is not None:
            _positive("duration_min", self.duration_min)
        known = find_drug(self.drug)
        if known is not None:  # the table's own name on the record, whatever the spelling typed
            object.__setattr__(self, "drug", known.name)

    @property
    def density_ma_cm2(self) -> float:
        """Current density under the active electrode."""
        return self.current_ma / self.electrode_area_cm2

    @property
    def ramp_pairs(self) -> int:
        """How many ramp-up/ramp-down pairs the session runs (2 with a midpoint polarity reversal)."""
        return 2 if self.polarity_reversal_at_midpoint else 1

    @property
    def ramp_time_s(self) -> float:
        """Time spent ramping in the whole session."""
        return self.ramp_pairs * (self.ramp_up_s + self.ramp_down_s)

    @property
    def ramp_dose_ma_min(self) -> float:
        """Dose the ramps deliver (each ramp at half weight)."""
        return self.current_ma * self.ramp_time_s / 2 / 60

    @property
    def planned_dose_ma_min(self) -> float:
        """The prescribed dose, or for a duration prescription what it delivers at `current_ma`."""
        if self.dose_ma_min is not None:
            return self.dose_ma_min
        assert self.duration_min is not None
        return self.current_ma * (self.duration_min * 60 - self.ramp_time_s / 2) / 60

    @property
    def planned_duration_s(self) -> float:
        """The prescribed duration, or for a dose prescription how long it takes at `current_ma`."""
        if self.duration_min is not None:
            return self.duration_min * 60
        return self.planned_dose_ma_min * 60 / self.current_ma + self.ramp_time_s / 2

    @property
    def planned_duration_min(self) -> float:
        return self.planned_duration_s / 60

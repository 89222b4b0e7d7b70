"""The safety layer's errors: what a technician or a supervisor reads when something is refused.

`PrescriptionError` and `LimitsFileError` mean the input itself is malformed (a typo, a missing value);
`PrescriptionRefused` means a well-formed prescription breaks a limit, and lists every `Violation`.
"""

from __future__ import annotations

from dataclasses import dataclass


class SafetyError(Exception):
    """Base of every error the safety layer raises."""


class PrescriptionError(SafetyError, ValueError):
    """A prescription that cannot even be built: a wrong type, a non-positive value, both or neither of
    dose and duration. (Ramps too long for the dose or duration are a `Violation`, listed with the limits.)"""


class LimitsFileError(SafetyError, ValueError):
    """A site-limits file that cannot be used. Names the file, the key (`[class.NAME] key` for a class
    override) and the problem, so the supervisor who edited it can fix it."""

    def __init__(self, source: str, key: str | None, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        where = f"{source}: {key}" if key else source
        super().__init__(f"site limits {where}: {problem}")


@dataclass(frozen=True)
class Violation:
    """One limit a prescription breaks. `message` names the limit, its value and the prescribed value."""

    limit_name: str  # a SiteLimits / ceiling / DeviceIdentity field, or "drug" / "drug_charge" / "protocol_class" /
    # "ramps" (the prescription's own ramps do not fit its dose or duration)
    limit_value: float | str | None
    prescribed_value: float | str | None
    unit: str
    message: str


class PrescriptionRefused(SafetyError):
    """The prescription breaks one or more limits; no current may flow. `violations` lists them all."""

    def __init__(self, violations: tuple[Violation, ...]) -> None:
        if not violations:
            raise ValueError("PrescriptionRefused needs at least one violation")
        self.violations = violations
        lines = "\n".join(f"  - {v.message}" for v in violations)
        count = f"{len(violations)} violation" + ("s" if len(violations) > 1 else "")
        super().__init__(f"prescription refused ({count}):\n{lines}")

    @property
    def limit_names(self) -> tuple[str, ...]:
        return tuple(v.limit_name for v in self.violations)

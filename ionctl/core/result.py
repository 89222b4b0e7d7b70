"""What a session hands back: its `SessionResult` (for the technician, the chart and the exit status), the
timeline of its state changes, and the JSON forms of its prescription and device (docs/SESSION.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ionctl.core.vocabulary import ExitCode, Outcome
from ionctl.drivers.base import DeviceIdentity
from ionctl.safety import Prescription


@dataclass(frozen=True)
class StateChange:
    state: str
    reason: str
    utc: str  # ISO 8601
    device_t_s: float | None


@dataclass
class SessionResult:
    """What happened, for the technician and the chart (`asdict` gives the JSON object)."""

    outcome: str  # an `Outcome`: completed | stopped | aborted | fault | refused
    fault: str | None = None  # a `SessionFault` or a device `FaultCode` value
    message: str = ""
    prescription: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    limits_sha256: str = ""
    device: dict[str, Any] | None = None
    dose_ma_min: float = 0.0  # settled delivered dose (see dose_source)
    dose_source: str = "host"  # host | device (settled from the device's counter after a link loss)
    host_dose_ma_min: float = 0.0
    device_dose_ma_min: float | None = None
    prescribed_dose_ma_min: float = 0.0
    duration_s: float = 0.0  # device time from the start of the first ramp to the last sample
    peak_current_ma: float = 0.0
    peak_density_ma_cm2: float = 0.0
    time_at_compliance_s: float = 0.0
    impedance_start_ohm: float | None = None
    impedance_end_ohm: float | None = None
    impedance_min_ohm: float | None = None
    impedance_max_ohm: float | None = None
    energised: bool = False  # the output was switched on for treatment (a contact probe does not count)
    alarm: bool = False  # current still flowing after output-off: remove the electrodes
    timeline: list[StateChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def exit_code(result: SessionResult) -> ExitCode:
    """`ionctl run`'s exit status: 0 completed as prescribed; 2 refused (no current flowed); 3 fault (or the
    stuck-output alarm); 4 stopped or aborted by the operator; 5 device or link error before any current."""
    if result.alarm:
        return ExitCode.FAULT
    if result.outcome == Outcome.COMPLETED:
        return ExitCode.OK
    if result.outcome == Outcome.REFUSED:
        return ExitCode.REFUSED
    if result.outcome in (Outcome.STOPPED, Outcome.ABORTED):
        return ExitCode.OPERATOR
    return ExitCode.FAULT if result.energised else ExitCode.DEVICE


def prescription_dict(p: Prescription) -> dict[str, Any]:
    """The prescription as the result and the record show it (JSON-ready)."""
    d = asdict(p)
    d["polarity"] = p.polarity.value
    d["drug_charge"] = p.drug_charge.value if p.drug_charge is not None else None
    d["density_ma_cm2"] = p.density_ma_cm2
    d["planned_dose_ma_min"] = p.planned_dose_ma_min
    return d


def identity_dict(identity: DeviceIdentity) -> dict[str, Any]:
    """The device as the result and the record show it (JSON-ready)."""
    return asdict(identity)

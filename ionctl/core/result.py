"""What a session hands back: its `SessionResult` (for the technician, the chart and the exit status), the
timeline of its state changes, and the JSON forms of its prescription and device (docs/SESSION.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ionctl.core.dose import DoseMeter
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


def add_figures(r: SessionResult, m: DoseMeter, p: Prescription, start_t_s: float | None, impedances: list[float],
                *, device_dose_unknown: bool) -> None:  # fmt: skip
    """Fill in the result's doses and figures from the dose meter at the end: the host's dose (and the device's,
    unless the session settled the dose from the device's counter after a reconnect, `dose_source` device, or its
    counter cannot be trusted), the duration on the device's clock since `start_t_s`, peaks, time at compliance
    and the impedances seen while current flowed."""
    r.host_dose_ma_min = m.delivered_ma_min
    if r.dose_source == "host":
        r.dose_ma_min = m.delivered_ma_min
        r.device_dose_ma_min = None if device_dose_unknown else m.device_dose_ma_min
    r.prescribed_dose_ma_min = p.planned_dose_ma_min
    if start_t_s is not None and m.last is not None:
        r.duration_s = max(0.0, m.last.t_s - start_t_s) if not m.clock_resets else m.integrated_s
    r.peak_current_ma = m.peak_current_ma
    r.peak_density_ma_cm2 = m.peak_current_ma / p.electrode_area_cm2
    r.time_at_compliance_s = m.time_at_compliance_s
    if impedances:
        r.impedance_end_ohm = impedances[-1]
        r.impedance_min_ohm = min(impedances)
        r.impedance_max_ohm = max(impedances)


def wrong_device_message(first: DeviceIdentity, now: DeviceIdentity | None) -> str:
    """What the result says when a reconnect reached `now`, not the device `first` identified at the start."""
    found = f"{now.model} serial {now.serial}" if now is not None else "an unidentified device"
    return (
        f"; the reconnect reached {found}, not {first.model} serial {first.serial} (identified at the start): "
        "it was not commanded and its counter not used; the dose is the host's count to the loss and the "
        f"device dose unknown. The output of {first.serial} was not seen since the loss: check the patient and "
        "that device now"
    )

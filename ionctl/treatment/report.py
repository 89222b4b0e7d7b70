"""What a session came to (`Report`), and the words both front ends show for it: the confirmation summary,
the result, the stuck-output alarm. Pure text: the front ends decide where it goes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ionctl.core.vocabulary import ExitCode

if TYPE_CHECKING:
    from ionctl.config import SiteConfig
    from ionctl.core.session import SessionResult
    from ionctl.safety import Prescription, SiteLimits

ALARM_TEXT = (
    "!!! ALARM: CURRENT IS STILL FLOWING after the output was switched off.\n"
    "!!! REMOVE THE ELECTRODES FROM THE PATIENT NOW, then disconnect the device."
)
#: What a session stopped for its record says (`Recorder`); it ends `record_failed`, ExitCode.RECORD_FAILED.
RECORD_FAILED = "the record cannot be written"


@dataclass
class Report:
    """The session's result and what a front end shows with it: its exit code, its record."""

    result: SessionResult
    exit_code: ExitCode
    db: str | None
    violations: list[dict[str, Any]] = field(default_factory=list)
    record_id: int | None = None  # the session's record in the store (None: no store)
    record_path: str | None = None
    signature: str | None = None  # the operator's "performed" sign-off of the record, as a reader sees it

    def to_dict(self) -> dict[str, Any]:
        d = self.result.to_dict()
        d["db"] = self.db
        d["record_id"] = self.record_id
        d["exit_code"] = int(self.exit_code)
        if self.violations:
            d["violations"] = self.violations
        return d


def report_of(result: SessionResult, db: str | None, violations: list[dict[str, Any]] | None = None) -> Report:
    """The report of a result, with the exit code its outcome calls for (`ionctl.core.session.exit_code`)."""
    from ionctl.core.session import exit_code

    return Report(result, ExitCode(exit_code(result)), db, violations or [])


def not_started(
    message: str,
    *,
    db: str | None,
    outcome: str = "refused",
    fault: str | None = None,
    prescription: Prescription | None = None,
    limits: SiteLimits | None = None,
    violations: list[dict[str, Any]] | None = None,
) -> Report:
    """The report of a session that never reached the device (refused, declined, the device unreachable)."""
    from ionctl.core.session import SessionResult, prescription_dict

    result = SessionResult(outcome=outcome, fault=fault, message=message)
    if prescription is not None:
        result.prescription = prescription_dict(prescription)
        result.prescribed_dose_ma_min = prescription.planned_dose_ma_min
    if limits is not None and prescription is not None and prescription.protocol_class in limits.classes:
        site = limits.for_class(prescription.protocol_class)
        result.limits, result.limits_sha256 = site.values(), site.sha256
    return report_of(result, db, violations)


@dataclass
class Interrupts:
    """What the operator's signals (or the console closing) asked of a session: the first names the reason in
    its record."""

    reasons: list[str] = field(default_factory=list)
    ended: bool = False  # the session has ended: a signal now is acknowledged, its record is being closed

    def apply(self, result: SessionResult) -> None:
        """Name the reason in the message of a session it stopped (`stopped: SIGHUP, the terminal closed`)."""
        if self.reasons and result.outcome in ("stopped", "aborted"):
            said = f"{result.outcome}: {self.reasons[0]}"
            result.message = f"{said}; {result.message}" if result.message else said


def summary(p: Prescription, charge: str, limits: SiteLimits, device: str, config: SiteConfig | None = None) -> str:
    """What is about to be delivered, for the operator to confirm."""
    site = limits.for_class(p.protocol_class)
    if p.dose_ma_min is not None:
        amount = f"dose {p.dose_ma_min:.2f} mA·min, about {p.planned_duration_min:.1f} min"
    else:
        amount = f"duration {p.planned_duration_min:.2f} min, about {p.planned_dose_ma_min:.2f} mA·min"
    reversal = "; polarity reversed at the midpoint" if p.polarity_reversal_at_midpoint else ""
    return "\n".join([
        "Prescription (checked against the site limits):",
        f"  patient {p.patient_id}   operator {p.operator_id}",
        f"  drug {p.drug} ({charge}), active electrode: {p.polarity.value}{reversal}",
        f"  current {p.current_ma:.2f} mA on {p.electrode_area_cm2:.2f} cm² = {p.density_ma_cm2:.2f} mA/cm² "
        f"(limit {site.max_density_ma_cm2:.2f})",
        f"  {amount}; ramps {p.ramp_up_s:g} s up, {p.ramp_down_s:g} s down",
        f"  limits: {limits.source}, class {p.protocol_class}",
        *([f"  configuration: {config.source} (SHA-256 {config.sha256[:12]}…)"] if config is not None else []),
        *([f"  {note}"] if config is not None and (note := config.usual_dose_note(p)) else []),
        f"  device: {device}",
    ])  # fmt: skip


def result_text(report: Report) -> str:
    """The result in a few lines, for the operator (and the chart until the records store exists)."""
    r = report.result
    lines = [f"outcome: {r.outcome}" + (f" ({r.fault})" if r.fault else "") + f"   exit {int(report.exit_code)}"]
    if r.message:
        lines.append(f"  {r.message}")
    if r.energised or r.dose_ma_min:
        device = f"{r.device_dose_ma_min:.3f}" if r.device_dose_ma_min is not None else "n/a"
        lines += [
            f"  dose {r.dose_ma_min:.3f} of {r.prescribed_dose_ma_min:.2f} mA·min ({r.dose_source}); "
            f"host {r.host_dose_ma_min:.3f}, device {device}",
            f"  duration {r.duration_s:.1f} s, peak {r.peak_current_ma:.2f} mA ({r.peak_density_ma_cm2:.3f} mA/cm²), "
            f"at compliance {r.time_at_compliance_s:.1f} s",
            f"  impedance start {_ohm(r.impedance_start_ohm)}, end {_ohm(r.impedance_end_ohm)}",
        ]
    if r.alarm:
        lines.append(ALARM_TEXT)
    if report.record_id is not None:
        lines.append(f"  record {report.record_id} in {report.record_path}")
    if report.signature is not None:
        lines.append(f"  signed {report.signature}")
    return "\n".join(lines)


def _ohm(value: float | None) -> str:
    return f"{value:.0f} Ω" if value is not None else "n/a"

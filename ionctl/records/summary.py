"""A record's closing as a typed value (`RecordSummary`): a renamed field is a type error or a loud refusal,
never a silently missing column."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Protocol

#: Keys of a session's result that the closing does not take: the opening holds them, or the events do.
NOT_CLOSING = frozenset({"prescription", "limits", "limits_sha256", "timeline", "notes"})


class SessionOutcome(Protocol):
    """What a closing reads from a session's result (`ionctl.core.session.SessionResult` is one)."""

    @property
    def outcome(self) -> str: ...
    @property
    def fault(self) -> str | None: ...
    @property
    def message(self) -> str: ...
    @property
    def device(self) -> dict[str, Any] | None: ...
    @property
    def dose_ma_min(self) -> float: ...
    @property
    def dose_source(self) -> str: ...
    @property
    def host_dose_ma_min(self) -> float: ...
    @property
    def device_dose_ma_min(self) -> float | None: ...
    @property
    def prescribed_dose_ma_min(self) -> float: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def peak_current_ma(self) -> float: ...
    @property
    def peak_density_ma_cm2(self) -> float: ...
    @property
    def time_at_compliance_s(self) -> float: ...
    @property
    def impedance_start_ohm(self) -> float | None: ...
    @property
    def impedance_end_ohm(self) -> float | None: ...
    @property
    def impedance_min_ohm(self) -> float | None: ...
    @property
    def impedance_max_ohm(self) -> float | None: ...
    @property
    def energised(self) -> bool: ...
    @property
    def alarm(self) -> bool: ...


@dataclass(frozen=True)
class RecordSummary:
    """A record's closing: how the session ended and its figures (the closing columns the caller gives; the
    store adds the time, the telemetry's count and SHA-256, and the chain)."""

    outcome: str  # an `ionctl.core.vocabulary.Outcome` value
    fault: str | None = None
    message: str = ""
    device: dict[str, Any] | None = None
    dose_ma_min: float | None = None
    dose_source: str | None = None  # host | device
    host_dose_ma_min: float | None = None
    device_dose_ma_min: float | None = None
    prescribed_dose_ma_min: float | None = None
    duration_s: float | None = None
    peak_current_ma: float | None = None
    peak_density_ma_cm2: float | None = None
    time_at_compliance_s: float | None = None
    impedance_start_ohm: float | None = None
    impedance_end_ohm: float | None = None
    impedance_min_ohm: float | None = None
    impedance_max_ohm: float | None = None
    energised: bool = False
    alarm: bool = False

    @classmethod
    def from_result(cls, result: SessionOutcome) -> RecordSummary:
        """The closing of a session's result, field by field."""
        return cls(**{f.name: getattr(result, f.name) for f in fields(cls)})

    @classmethod
    def from_mapping(cls, summary: Mapping[str, Any]) -> RecordSummary:
        """A closing from a mapping (a closing journal, `SessionResult.to_dict()`, figures from stored samples).
        ValueError for a key that is neither a closing field nor a result's opening or event data."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(summary) - names - NOT_CLOSING)
        if unknown:
            raise ValueError(f"not a field of a record's closing: {', '.join(unknown)}")
        if "outcome" not in summary:
            raise ValueError("a record's closing needs an outcome")
        return cls(**{k: v for k, v in summary.items() if k in names})

    @classmethod
    def of(cls, summary: RecordSummary | Mapping[str, Any]) -> RecordSummary:
        return summary if isinstance(summary, RecordSummary) else cls.from_mapping(summary)

    def updated(self, changes: Mapping[str, Any]) -> RecordSummary:
        """This closing with some fields replaced (ValueError for a key that is not a closing field)."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"not a field of a record's closing: {', '.join(unknown)}")
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

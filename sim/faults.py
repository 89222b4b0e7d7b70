"""The fault schedule's language: `KIND[=VALUE]@T[:D]`, as `--fault` takes it (the kinds and their effects are
tabled in `sim.device`, which applies them). Parsing only, so the command line can check a fault without
loading the device model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


class FaultSpecError(ValueError):
    """A `--fault` argument that cannot be understood."""


# kind -> (value required?, value parser or None when the kind takes no value)
_KINDS: dict[str, tuple[bool, Callable[[str], object] | None]] = {
    "electrode-lift": (False, None),
    "short": (False, float),
    "impedance-step": (True, float),
    "link-drop": (False, None),
    "corrupt": (True, float),
    "reboot": (False, None),
    "stuck-output": (False, lambda v: {"welded": "welded"}[v]),
    "sensor-drift": (True, float),
    "device-stop": (False, None),
    "polarity-flip": (False, None),
}
FAULT_KINDS = tuple(_KINDS)

# kind -> (lowest, highest, the rule in words) for numeric values
_VALUE_RANGES: dict[str, tuple[float, float, str]] = {
    "short": (1.0, 1e4, "resistance must be within 1..10000 ohms"),
    "impedance-step": (1.0, 1e7, "step must be within 1..1e7 ohms"),
    "corrupt": (0.0, 1.0, "rate must be within 0..1"),
    "sensor-drift": (-99.0, 1000.0, "drift must be within -99..1000 percent"),
}


@dataclass(frozen=True)
class FaultSpec:
    """One scheduled fault: `kind`, its optional `value`, start `at_s` and optional `duration_s`."""

    kind: str
    at_s: float
    duration_s: float | None = None
    value: float | str | None = None

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """Parse `KIND[=VALUE]@T[:D]`, e.g. `electrode-lift@60`, `corrupt=0.01@0:30`."""
        head, sep, when = text.partition("@")
        if not sep:
            raise FaultSpecError(f"fault {text!r}: expected KIND[=VALUE]@T[:D], e.g. electrode-lift@60")
        kind, has_value, raw_value = head.partition("=")
        if kind not in _KINDS:
            raise FaultSpecError(f"fault {text!r}: unknown kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        required, parser = _KINDS[kind]
        value: float | str | None = None
        if has_value:
            if parser is None:
                raise FaultSpecError(f"fault {text!r}: {kind} takes no value")
            try:
                value = parser(raw_value)  # type: ignore[assignment]
            except (ValueError, KeyError):
                raise FaultSpecError(f"fault {text!r}: bad value {raw_value!r} for {kind}") from None
        elif required:
            raise FaultSpecError(f"fault {text!r}: {kind} needs a value ({kind}=...)")
        at, colon, duration = when.partition(":")
        try:
            at_s = float(at)
            duration_s = float(duration) if colon else None
        except ValueError:
            raise FaultSpecError(f"fault {text!r}: T and D must be numbers of device seconds") from None
        if not (math.isfinite(at_s) and at_s >= 0) or (
            duration_s is not None and not (math.isfinite(duration_s) and duration_s > 0)
        ):
            raise FaultSpecError(f"fault {text!r}: T must be a finite number >= 0 and D a finite number > 0")
        if isinstance(value, float):
            low, high, what = _VALUE_RANGES[kind]
            if not (math.isfinite(value) and low <= value <= high):
                raise FaultSpecError(f"fault {text!r}: {kind} {what}, got {raw_value}")
        return cls(kind, at_s, duration_s, value)

"""Site limits: the numbers the accountable person at a site sets, loaded from a TOML file.

The packaged file (`ionctl/data/limits.toml`) holds conservative defaults, each with its source in a
comment; a site passes its own file (`--limits FILE`), which must be complete: what the file says is what
is in force, with no hidden fall-back to the packaged values.

Protocol classes. The top-level keys are the limits for every protocol class. A table
`[class.NAME]` adds class NAME (or, for `drug-electrode`, adjusts it) by overriding any of those keys;
keys it does not name keep the top-level value. The classes in force are `drug-electrode` (always) plus
every `[class.NAME]` in the file; a prescription names its class (`Prescription.protocol_class`) and
`SiteLimits.for_class(name)` gives the resolved limits for it::

    max_current_ma = 4.0          # every class, unless overridden
    max_density_ma_cm2 = 0.5      # every class: tap water is still density-limited

    [class.tap-water]
    max_current_ma = 20.0         # larger trays, more current ...
    max_dose_ma_min = 600.0

Every value must be a positive finite number (TOML integers are fine); each `min_*` must not exceed its
`max_*` (impedance windows must be strictly ordered), fractions must not exceed 1, and no value may go beyond
the packaged ceilings (`ionctl.safety.ceilings`: 50 mA, 0.5 mA/cm², a 5 s minimum ramp, a dose and a duration
per class). Problems raise
`LimitsFileError` naming the file, the key and the problem. Reading the file is the only I/O here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ionctl.safety.ceilings import ceilings_for
from ionctl.safety.errors import LimitsFileError
from ionctl.safety.prescription import DRUG_ELECTRODE

PACKAGED_SOURCE = "ionctl/data/limits.toml (packaged defaults)"

#: (min key, max key, strictly ordered?) pairs checked after resolving each class.
_ORDERED = (
    ("min_ramp_s", "max_ramp_s", False),
    ("min_contact_impedance_ohm", "max_contact_impedance_ohm", True),
    ("min_running_impedance_ohm", "max_running_impedance_ohm", True),
)
_FRACTIONS = ("current_mismatch_fraction", "dose_mismatch_fraction")


@dataclass(frozen=True, kw_only=True)
class SiteLimits:
    """The limits in force for one protocol class, plus the resolved values of every class in the file.

    Invariant: `classes[protocol_class]` equals this object's own values (a `dataclasses.replace` of a
    value updates it), so `for_class` works from any `SiteLimits`.
    """

    max_current_ma: float
    max_density_ma_cm2: float
    max_dose_ma_min: float
    max_duration_min: float
    min_ramp_s: float
    max_ramp_s: float
    min_contact_impedance_ohm: float  # the contact check before arming
    max_contact_impedance_ohm: float
    min_running_impedance_ohm: float  # while current flows (below: short; above: open circuit)
    max_running_impedance_ohm: float
    compliance_tolerance_s: float  # time held at compliance before a compliance fault
    current_mismatch_fraction: float  # measured vs set current: fault beyond max(fraction × set, floor)
    current_mismatch_floor_ma: float
    dose_mismatch_fraction: float  # host vs device dose: fault beyond max(fraction × dose, floor)
    dose_mismatch_floor_ma_min: float
    watchdog_s: float  # host silence after which the device ramps to zero
    protocol_class: str = DRUG_ELECTRODE
    classes: Mapping[str, Mapping[str, float]] = field(default_factory=dict, compare=False, hash=False)
    source: str = field(default="<constructed>", compare=False)

    def __post_init__(self) -> None:
        problems = check_values(self.values())
        if problems:
            key, problem = problems[0]
            raise ValueError(f"{key}: {problem}")
        resolved = {name: MappingProxyType(dict(v)) for name, v in self.classes.items()}
        resolved[self.protocol_class] = MappingProxyType(self.values())
        object.__setattr__(self, "classes", MappingProxyType(resolved))

    # -- reading -------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path | None = None) -> SiteLimits:
        """The limits in `path`, or the packaged defaults when None; the `drug-electrode` view."""
        if path is None:
            text = resources.files("ionctl").joinpath("data/limits.toml").read_text(encoding="utf-8")
            return cls.from_toml(text, source=PACKAGED_SOURCE)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise LimitsFileError(str(path), None, f"cannot read: {exc}") from exc
        return cls.from_toml(text, source=str(path))

    @classmethod
    def from_toml(cls, text: str, *, source: str = "<text>") -> SiteLimits:
        """Parse and check limits-file text (pure); `source` names it in errors."""
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise LimitsFileError(source, None, f"not valid TOML: {exc}") from exc
        return cls.from_table(document, source=source)

    @classmethod
    def from_table(cls, table: Mapping[str, Any], *, source: str = "<table>") -> SiteLimits:
        """Check parsed limits (a limits file's document, or a site configuration's `[limits]` table)."""
        document = dict(table)
        class_tables = document.pop("class", {})
        if not isinstance(class_tables, dict):
            raise LimitsFileError(source, "class", "must be tables, written [class.NAME]")
        base = _read_table(document, source, prefix="", complete=True)
        classes = {DRUG_ELECTRODE: base}
        for name, table in class_tables.items():
            if not isinstance(table, dict):
                raise LimitsFileError(source, f"class.{name}", "must be a table, written [class.NAME]")
            classes[name] = {**base, **_read_table(table, source, prefix=f"[class.{name}] ", complete=False)}
        for name, values in classes.items():
            for key, problem in check_values(values) or ceilings_for(name).site_limit_problems(values):
                if name in class_tables and key not in class_tables[name]:
                    problem += " (the class inherits the top-level value)"
                raise LimitsFileError(source, f"[class.{name}] {key}" if name in class_tables else key, problem)
        base_values: dict[str, Any] = dict(classes[DRUG_ELECTRODE])
        return cls(**base_values, classes=classes, source=source)

    # -- using ---------------------------------------------------------------------------------------------

    def for_class(self, protocol_class: str) -> SiteLimits:
        """The resolved limits for `protocol_class`; KeyError if the file defines no such class."""
        if protocol_class not in self.classes:
            raise KeyError(protocol_class)
        values: dict[str, Any] = dict(self.classes[protocol_class])
        return dataclasses.replace(self, **values, protocol_class=protocol_class)

    def values(self) -> dict[str, float]:
        """This class's limits as {key: value}, keys as in the TOML file."""
        return {name: float(getattr(self, name)) for name in LIMIT_KEYS}

    @property
    def sha256(self) -> str:
        """Hash of the canonical content (the class in force and every class's values), for the record:
        equal hashes mean equal limits, whatever the file's comments or layout."""
        content = {"protocol_class": self.protocol_class, "classes": {k: dict(v) for k, v in self.classes.items()}}
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


LIMIT_KEYS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(SiteLimits) if f.name not in ("protocol_class", "classes", "source")
)


def check_values(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, problem) for every bad value in a complete set of limits; empty when all is well."""
    problems = [(key, problem) for key in LIMIT_KEYS for problem in _value_problems(values.get(key))]
    if problems:
        return problems
    for low, high, strict in _ORDERED:
        if values[low] >= values[high] if strict else values[low] > values[high]:
            relation = "below" if strict else "at most"
            problems.append((low, f"{low} ({values[low]}) must be {relation} {high} ({values[high]})"))
    problems += [(key, f"a fraction must be at most 1, got {values[key]}") for key in _FRACTIONS if values[key] > 1]
    return problems


def _value_problems(value: Any) -> Iterator[str]:
    if value is None:
        yield "missing"
    elif isinstance(value, bool) or not isinstance(value, int | float):
        yield f"must be a number, got {type(value).__name__} {value!r}"
    elif not math.isfinite(value) or value <= 0:
        yield f"must be a positive finite number, got {value!r}"


def _read_table(table: dict[str, Any], source: str, *, prefix: str, complete: bool) -> dict[str, float]:
    for key in table:
        if key not in LIMIT_KEYS:
            raise LimitsFileError(source, f"{prefix}{key}", f"unknown key; known keys: {', '.join(LIMIT_KEYS)}")
    for key in LIMIT_KEYS if complete else table:
        for problem in _value_problems(table.get(key)):
            raise LimitsFileError(source, f"{prefix}{key}", problem)
    return {key: float(value) for key, value in table.items()}

"""Absolute ceilings: bounds that no site configuration can exceed (`ionctl/data/ceilings.toml`).

Site limits are the accountable person's to set (docs/ARCHITECTURE.md, principle 6), within these: `SiteLimits` refuses
a file that goes beyond one (naming the key, its value, the ceiling and its source), and `validate` checks
every prescription against them again, so that limits built some other way cannot carry a session past
them either. Each value's source is the comment above it in the TOML file, kept here as `sources[key]` for
the messages. Reading the packaged file is the only I/O, once.
"""

from __future__ import annotations

import functools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

SOURCE = "ionctl/data/ceilings.toml"

#: Keys that a `[class.NAME]` table may set; the others hold for every class.
CLASS_KEYS = ("max_dose_ma_min", "max_duration_min")
#: Every key of the file: the ceiling's name -> True for an upper bound, False for a floor.
KEYS: Mapping[str, bool] = MappingProxyType({
    "max_current_ma": True,
    "max_density_ma_cm2": True,
    "min_ramp_s": False,
    "max_electrode_area_cm2": True,
    "min_electrode_area_cm2": False,
    "max_compliance_v": True,
    "max_dose_ma_min": True,
    "max_duration_min": True,
})  # fmt: skip
#: Site-limit key -> the ceiling that bounds it.
SITE_LIMIT_CEILINGS: Mapping[str, str] = MappingProxyType({
    "max_current_ma": "max_current_ma",
    "max_density_ma_cm2": "max_density_ma_cm2",
    "min_ramp_s": "min_ramp_s",
    "max_dose_ma_min": "max_dose_ma_min",
    "max_duration_min": "max_duration_min",
})  # fmt: skip


@dataclass(frozen=True)
class Ceilings:
    """The ceilings of one protocol class (`values`), each with its `sources` text."""

    protocol_class: str
    values: Mapping[str, float]
    sources: Mapping[str, str]

    def describe(self, key: str) -> str:
        """`the ionctl ceiling of 50 mA (max_current_ma; source: ...)` for messages."""
        return f"the ionctl ceiling {key} = {self.values[key]:g} ({SOURCE}; source: {self.sources[key]})"

    def breaks(self, key: str, value: float) -> bool:
        """Does `value` go beyond ceiling `key` (above an upper bound, below a floor)?"""
        limit = self.values[key]
        return value > limit if KEYS[key] else value < limit

    def site_limit_problems(self, values: Mapping[str, float]) -> list[tuple[str, str]]:
        """(key, problem) for every site limit in `values` beyond its ceiling."""
        problems = []
        for site_key, key in SITE_LIMIT_CEILINGS.items():
            value = values.get(site_key)
            if value is not None and self.breaks(key, value):
                side = "above" if KEYS[key] else "below"
                problems.append((site_key, f"{value:g} is {side} {self.describe(key)}; no site configuration may "
                                           "go beyond it"))  # fmt: skip
        return problems


@functools.cache
def _document() -> tuple[dict[str, Any], dict[str, str]]:
    text = resources.files("ionctl").joinpath("data/ceilings.toml").read_text(encoding="utf-8")
    return parse(text)


def parse(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The ceilings document and the source comment of each key (`KEY` or `class.NAME.KEY`); ValueError if a
    key is unknown, missing, not a positive finite number, or has no `# source:` comment."""
    document = tomllib.loads(text)
    sources: dict[str, str] = {}
    comment: list[str] = []
    table = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
            continue
        if stripped.startswith("[class."):
            table = "class." + stripped[len("[class.") : stripped.index("]")] + "."
        elif "=" in stripped:
            key = stripped.split("=", 1)[0].strip()
            said = " ".join(comment)
            if "source:" not in said:
                raise ValueError(f"{SOURCE}: {table}{key} has no '# source:' comment")
            sources[table + key] = said[said.index("source:") + len("source:") :].strip().rstrip(".")
        if not stripped or "=" in stripped or stripped.startswith("["):
            comment = []
    classes = document.pop("class", {})
    for where, table_values, allowed in ((None, document, tuple(KEYS)),
                                          *((n, t, CLASS_KEYS) for n, t in classes.items())):  # fmt: skip
        for key, value in table_values.items():
            if key not in allowed:
                raise ValueError(f"{SOURCE}: unknown ceiling {key!r}" + (f" in [class.{where}]" if where else ""))
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{SOURCE}: {key} must be a positive finite number, got {value!r}")
    missing = [key for key in KEYS if key not in document]
    if missing:
        raise ValueError(f"{SOURCE}: missing {', '.join(missing)}")
    return {**document, "class": classes}, sources


def ceilings_for(protocol_class: str) -> Ceilings:
    """The ceilings for `protocol_class`: the top level, with its `[class.NAME]` table if the file has one."""
    document, sources = _document()
    base = {k: float(v) for k, v in document.items() if k != "class"}
    own = document["class"].get(protocol_class, {})
    values = {**base, **{k: float(v) for k, v in own.items()}}
    said = {k: sources[f"class.{protocol_class}.{k}" if k in own else k] for k in values}
    return Ceilings(protocol_class, MappingProxyType(values), MappingProxyType(said))

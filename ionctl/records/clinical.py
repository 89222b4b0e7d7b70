"""What a chart entry for iontophoresis says beyond the prescription (`ClinicalDetails`): where on the body, how
much of which preparation, who prescribed it, which electrode product, and whether the device was a simulator.

CPT 97033 chart practice asks for the drug and its concentration, polarity, current, the body area treated, start
and stop times and the operator's attendance (docs/SOURCES.md, "The chart note"). The prescription holds the drug,
polarity, current and dose; these details hold the rest. They are part of a record's opening (schema 4, the
`clinical` column, canonical JSON), so they are hashed with it and cannot change after the session starts;
records opened before schema 4 have none and say so ("not recorded").

A treatment site is a body site and a laterality: "left hand", "right hand", "both feet", "right forearm". The
body sites are a closed list (`BODY_SITES`) so that the chart and the FHIR export (SNOMED CT codes in
`ionctl.records.fhir`) agree on what each means; a site outside the list is refused with the list.

Standard library only: the front ends and the treatment layer build these from a preset, the command line or the
console; the exports read them back with `ClinicalDetails.of_record`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Body sites a record can name (singular; the plural is what "both ..." reads as). Each has a SNOMED CT body
#: structure in `ionctl.records.fhir.BODY_SITE_CODES`; a test holds the two lists to each other.
BODY_SITES = {
    "hand": "hands",
    "foot": "feet",
    "wrist": "wrists",
    "forearm": "forearms",
    "elbow": "elbows",
    "upper arm": "upper arms",
    "shoulder": "shoulders",
    "axilla": "axillae",
    "knee": "knees",
    "ankle": "ankles",
    "lower leg": "lower legs",
    "thigh": "thighs",
    "back": "back",
    "neck": "neck",
}
#: Sites with no side: "back", "neck" (laterality "none").
MIDLINE = frozenset({"back", "neck"})
LATERALITIES = ("left", "right", "both", "none")
MAX_VOLUME_ML = 100.0  # larger than any tray or drug electrode holds: a typo (150 for 1.50), not a volume
MAX_TEXT = 80  # concentration, lot, prescriber, electrode product: one line on the chart


class ClinicalError(ValueError):
    """A treatment site, volume or other chart detail that cannot be recorded; says what is accepted."""


def _sites_text() -> str:
    return ", ".join(BODY_SITES)


@dataclass(frozen=True)
class TreatmentSite:
    """Where the active electrode is: a body site of `BODY_SITES` and a laterality of `LATERALITIES`."""

    body_site: str
    laterality: str

    def __post_init__(self) -> None:
        if self.body_site not in BODY_SITES:
            raise ClinicalError(f"body site {self.body_site!r} is not one ionctl records; one of: {_sites_text()}")
        if self.laterality not in LATERALITIES:
            raise ClinicalError(f"laterality {self.laterality!r}: one of {', '.join(LATERALITIES)}")
        if (self.laterality == "none") != (self.body_site in MIDLINE):
            side = "has no side: give it alone" if self.body_site in MIDLINE else "needs a side: left, right or both"
            example = self.body_site if self.body_site in MIDLINE else f"left {self.body_site}"
            raise ClinicalError(f"{self.body_site} {side} (e.g. {example!r})")

    @classmethod
    def parse(cls, text: str) -> TreatmentSite:
        """"left hand", "Right hand", "both feet", "bilateral hands", "back". ClinicalError naming the text and
        what is accepted."""
        words = " ".join(str(text).lower().replace("-", " ").replace("_", " ").split())
        if not words:
            raise ClinicalError(f"give a treatment site, e.g. 'left hand', 'both feet' (body sites: {_sites_text()})")
        side, _, rest = words.partition(" ")
        side = {"l": "left", "r": "right", "bilateral": "both", "left": "left", "right": "right",
                "both": "both"}.get(side, "")  # fmt: skip
        site = rest if side else words
        plural = {p: s for s, p in BODY_SITES.items()}
        if side == "both":
            site = plural.get(site, site)
        elif site in plural and site not in BODY_SITES and not side:
            raise ClinicalError(f"{words!r}: say 'both {site}' for both sides, or 'left'/'right' with one")
        if site not in BODY_SITES:
            raise ClinicalError(f"{text!r} is not a treatment site ionctl records: a side (left, right, both) and one "
                                f"of: {_sites_text()} (back and neck alone)")  # fmt: skip
        return cls(site, side or "none")

    @property
    def text(self) -> str:
        """As the chart says it: "left hand", "both feet", "back"."""
        if self.laterality == "none":
            return self.body_site
        if self.laterality == "both":
            return f"both {BODY_SITES[self.body_site]}"
        return f"{self.laterality} {self.body_site}"

    def to_dict(self) -> dict[str, str]:
        return {"body_site": self.body_site, "laterality": self.laterality}


def _text(value: Any, what: str) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    if not text:
        return None
    if len(text) > MAX_TEXT:
        raise ClinicalError(f"{what} is {len(text)} characters; at most {MAX_TEXT} fit the chart's line")
    return text


@dataclass(frozen=True)
class VisitRef:
    """The visit a session is a channel of: the visit's id (shared by its channels' records), the channel's
    number (1-based) and how many channels the visit has."""

    id: str
    channel: int
    channels: int

    def __post_init__(self) -> None:
        if not self.id or not 1 <= self.channel <= self.channels:
            raise ClinicalError(f"visit channel {self.channel} of {self.channels} (visit {self.id!r}) is not a channel")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "channel": self.channel, "channels": self.channels}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VisitRef:
        return cls(str(data["id"]), int(data["channel"]), int(data["channels"]))


@dataclass(frozen=True)
class ClinicalDetails:
    """The chart details of one session (all optional where a source may not give them; the front ends ask for
    the site). `electrode_product` is the site catalog's name, `electrode_type` its description."""

    site: TreatmentSite | None = None
    concentration: str | None = None  # as labelled: "4 mg/mL", "4 %", "tap water"
    volume_ml: float | None = None
    lot: str | None = None
    prescriber: str | None = None
    electrode_product: str | None = None
    electrode_type: str | None = None
    simulated: bool = False  # the device was ionctl's simulator: not a treatment
    visit: VisitRef | None = None  # the session is one channel of a visit

    def __post_init__(self) -> None:
        for name, what in (("concentration", "the concentration"), ("lot", "the lot"),
                           ("prescriber", "the prescriber"), ("electrode_product", "the electrode product"),
                           ("electrode_type", "the electrode type")):  # fmt: skip
            object.__setattr__(self, name, _text(getattr(self, name), what))
        if self.volume_ml is not None:
            volume = float(self.volume_ml)
            if not math.isfinite(volume) or not 0.0 < volume <= MAX_VOLUME_ML:
                raise ClinicalError(f"volume {self.volume_ml!r} mL: more than 0 and at most {MAX_VOLUME_ML:g} mL")
            object.__setattr__(self, "volume_ml", volume)

    def to_dict(self) -> dict[str, Any]:
        """The stored form (keys with no value left out, so an empty detail is `{}`)."""
        out: dict[str, Any] = {}
        if self.site is not None:
            out["site"] = self.site.to_dict()
        for key in ("concentration", "volume_ml", "lot", "prescriber", "electrode_product", "electrode_type"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.simulated:
            out["simulated"] = True
        if self.visit is not None:
            out["visit"] = self.visit.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClinicalDetails:
        site, visit = data.get("site"), data.get("visit")
        return cls(
            site=TreatmentSite(str(site["body_site"]), str(site["laterality"])) if isinstance(site, Mapping) else None,
            concentration=data.get("concentration"), volume_ml=data.get("volume_ml"), lot=data.get("lot"),
            prescriber=data.get("prescriber"), electrode_product=data.get("electrode_product"),
            electrode_type=data.get("electrode_type"), simulated=bool(data.get("simulated", False)),
            visit=VisitRef.from_dict(visit) if isinstance(visit, Mapping) else None,
        )  # fmt: skip

    @classmethod
    def of_record(cls, fields: Mapping[str, Any]) -> ClinicalDetails | None:
        """A record's details (its `clinical` column, text or already a dict); None for a record opened before
        schema 4, or one whose column does not read (the exports say "not recorded")."""
        raw = fields.get("clinical")
        if raw is None or raw == "":
            return None
        try:
            data = json.loads(raw) if isinstance(raw, str) else raw
            return cls.from_dict(data) if isinstance(data, Mapping) else None
        except (ValueError, KeyError, TypeError):
            return None


#: Device models ionctl's own firmware simulator reports (sim/firmware.py, IDENTIFY): a record of one is marked
#: simulated even when the front end did not say so. (The SourceMeter simulator answers *IDN? as the instrument it
#: imitates, so its records are marked by the front end: a `sim:` address, `ionctl demo`.)
SIMULATOR_MODELS = ("IONTO-SIM",)


def is_simulated(fields: Mapping[str, Any]) -> bool:
    """Whether a record's session ran on a simulator: its details say so, or its device is one of ionctl's
    simulators by model."""
    details = ClinicalDetails.of_record(fields)
    if details is not None and details.simulated:
        return True
    device = fields.get("device")
    if isinstance(device, str):
        try:
            device = json.loads(device)
        except ValueError:
            device = None
    model = str(device.get("model", "")) if isinstance(device, Mapping) else ""
    return any(model.upper().startswith(m) for m in SIMULATOR_MODELS)

"""The site configuration: limits, electrode and drug catalogs, protocol presets, from one TOML file.

Where it comes from, first found: `--config FILE`; `config.toml` in the platform's site configuration
directory (`default_path()`); the packaged defaults (`ionctl/data/site.toml`, whose limits are the packaged
`ionctl/data/limits.toml`). A site file's `[limits]` table, when present, must be complete (the limits-file
rule: no silent fall-back to a default); without one the packaged limits are in force.

Reading is pure: `parse_config(text, source)` checks everything and raises `ConfigError` naming the file,
the key and its line, so that the supervisor who edited it can fix it. Whether the file is *approved* is a
question for `ionctl.config.authority`, which keeps approvals in the records' audit trail.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn, TypeVar

from ionctl.drivers.base import Polarity
from ionctl.safety import (
    DRUG_ELECTRODE,
    TAP_WATER,
    Charge,
    LimitsFileError,
    Prescription,
    PrescriptionError,
    SiteLimits,
    ceilings_for,
    closest_names,
    drug_identity,
    find_drug,
)
from ionctl.safety.identifiers import escape_controls

T = TypeVar("T")

PACKAGED_FILE = "data/site.toml"
PACKAGED_SOURCE = "ionctl/data/site.toml (packaged defaults)"
CONFIG_NAME = "config.toml"

#: Prescription fields a preset may set, with the TOML key for each (same names).
PRESET_RX_KEYS = ("current_ma", "electrode_area_cm2", "dose_ma_min", "duration_min", "ramp_up_s", "ramp_down_s")


class ConfigError(ValueError):
    """A site configuration that cannot be used: names the file, the key and the line."""

    def __init__(self, source: str, key: str | None, problem: str, line: int | None = None) -> None:
        self.source, self.key, self.problem, self.line = source, key, problem, line
        where = source + (f":{line}" if line else "") + (f": {key}" if key else "")
        super().__init__(f"site configuration {where}: {problem}")


@dataclass(frozen=True)
class Electrode:
    """An electrode (or tray) in the site's catalog."""

    name: str
    area_cm2: float
    type: str


@dataclass(frozen=True)
class DrugEntry:
    """A drug in the site's catalog: what the clinician reads, and the charge the safety layer checks."""

    name: str
    charge: Charge
    usual_concentration: str
    usual_dose_ma_min: tuple[float, float] | None
    source: str


@dataclass(frozen=True)
class CoursePlan:
    """How a preset is given over weeks: `sessions` in all, `per_week`, at least `min_interval_days` apart."""

    sessions: int
    per_week: float | None = None
    min_interval_days: float | None = None


@dataclass(frozen=True, kw_only=True)
class Preset:
    """A named, approved starting point for a prescription. Values it does not give (None) are the
    clinician's to give at the bench (`missing`)."""

    name: str
    drug: str
    polarity: Polarity
    protocol_class: str = DRUG_ELECTRODE
    current_ma: float | None = None
    electrode: str | None = None  # a catalog name; sets electrode_area_cm2
    electrode_area_cm2: float | None = None
    dose_ma_min: float | None = None
    duration_min: float | None = None
    ramp_up_s: float | None = None
    ramp_down_s: float | None = None
    polarity_reversal_at_midpoint: bool = False
    drug_charge: Charge | None = None  # from the drug catalog
    volume_ml: float | None = None
    site: str | None = None  # the treatment site, as the chart says it ("both hands": `TreatmentSite.text`)
    #: A visit's treatment sites, one channel each, in channel order (`TreatmentSite.text`; () for none):
    #: `ionctl run --preset NAME --channel ADDR ...` gives the channels these sites. `site` stays the site of a
    #: single-channel session run with the preset.
    visit: tuple[str, ...] = ()
    concentration: str | None = None  # of the preparation, as labelled ("4 mg/mL")
    notes: str = ""
    source: str
    course: CoursePlan | None = None

    @property
    def missing(self) -> tuple[str, ...]:
        """The prescription fields the clinician must still give."""
        gaps = [k for k in ("current_ma", "electrode_area_cm2") if getattr(self, k) is None]
        if self.dose_ma_min is None and self.duration_min is None:
            gaps.append("dose_ma_min or duration_min")
        return tuple(gaps)

    def prescription(self, *, patient_id: str, operator_id: str, **overrides: Any) -> Prescription:
        """The prescription this preset gives, with `overrides` (Prescription field names; None ignored).
        Giving a dose overrides the preset's duration and vice versa. `PrescriptionError` names what the
        preset leaves to the clinician if it is still missing. Not yet checked against any limit."""
        given = {k: v for k, v in overrides.items() if v is not None}
        for key in LOCKED_BY_PRESET:
            if key == "drug" and "drug" in given and drug_identity(given["drug"]) == drug_identity(self.drug):
                given["drug"] = self.drug  # another name of the same drug: the catalog's name is recorded
            if key in given and given[key] != getattr(self, key):
                raise PrescriptionError(
                    f"preset {self.name!r} gives {key} {_shown(getattr(self, key))}; it cannot be changed to "
                    f"{_shown(given[key])} (the approved preset is what it is): choose another preset, or give the "
                    "whole prescription without --preset"
                )
        values: dict[str, Any] = {k: getattr(self, k) for k in PRESET_RX_KEYS if getattr(self, k) is not None}
        if "dose_ma_min" in given or "duration_min" in given:
            values.pop("dose_ma_min", None)
            values.pop("duration_min", None)
        values.update(drug=self.drug, polarity=self.polarity, protocol_class=self.protocol_class,
                      polarity_reversal_at_midpoint=self.polarity_reversal_at_midpoint)  # fmt: skip
        if self.drug_charge is not None:
            values["drug_charge"] = self.drug_charge
        values.update(given)
        still = [k for k in ("current_ma", "electrode_area_cm2") if k not in values]
        if "dose_ma_min" not in values and "duration_min" not in values:
            still.append("dose_ma_min or duration_min")
        if still:
            raise PrescriptionError(f"preset {self.name!r} leaves {', '.join(still)} to the clinician: give "
                                    f"{' and '.join(_OPTION.get(k, k) for k in still)}")  # fmt: skip
        return Prescription(patient_id=patient_id, operator_id=operator_id, **values)


#: What a preset fixes: its drug (and charge), its active electrode and the class of limits that applies.
LOCKED_BY_PRESET = ("drug", "drug_charge", "polarity", "protocol_class")


def _shown(value: Any) -> str:
    return str(getattr(value, "value", value))


_OPTION = {"current_ma": "--current", "electrode_area_cm2": "--electrode-area or --electrode",
           "dose_ma_min or duration_min": "--dose or --duration"}  # fmt: skip


@dataclass(frozen=True)
class BenchSettings:
    """What the site file says about the PC it is on: where the record store is (`[records] store`, an absolute
    path shared by every account; None: each user's own) and the clinic's IANA `time_zone` (None: the
    machine's). `clinic_name` heads every chart page (None: the pages say "clinic not named")."""

    store: Path | None = None
    time_zone: str | None = None
    clinic: ClinicSettings | None = None
    clinic_name: str | None = None


#: What a bench does for a course session while the clinic store cannot be reached: "refuse" it (the course's
#: other sessions may be at other benches, so its rules cannot be checked), or "override": allow it only with a
#: supervisor's override, noted in the audit trail. The conservative default refuses.
OFFLINE_COURSES = ("refuse", "override")


@dataclass(frozen=True)
class ClinicSettings:
    """`[clinic]`: the clinic's PostgreSQL store and this bench's name in it. `store` is a libpq connection string
    or URI with no password (the password comes from a service file or `PGPASSFILE`, the libpq way); `bench` names
    this PC's store there (records read "bench-a/12"); `offline_courses` is what a course session does while the
    clinic store cannot be reached (`OFFLINE_COURSES`); `timeout_s` bounds a reader's wait for the server."""

    store: str
    bench: str
    offline_courses: str = "refuse"
    timeout_s: float = 3.0


#: What a fault on one channel of a visit does to the others (`ionctl.treatment.visit.VisitPolicy`): "stop-all"
#: ramps every other channel down (the default: the operator's attention goes to the faulted channel and nothing
#: runs on while it does), "continue" lets them go on and alerts the operator. docs/SESSION.md, "Visits".
VISIT_FAULT_POLICIES = ("stop-all", "continue")
MAX_VISIT_SITES = 8  # a visit's channels at most (`ionctl.treatment.visit.MAX_CHANNELS`)


@dataclass(frozen=True)
class VisitSettings:
    """`[visits]`: the visit policy (`fault_policy`, one of VISIT_FAULT_POLICIES)."""

    fault_policy: str = "stop-all"


@dataclass(frozen=True)
class AccountSettings:
    """`[accounts]`: the root of trust for people, and the site's rules for them. `administrators` are the
    fingerprints (`SHA256:...`, as `ionctl users bootstrap` prints) of the keys IT trusts to enrol people;
    nobody else can. `lockout_attempts` wrong passwords lock an account for `lockout_minutes`; the console locks
    after `idle_lock_minutes` without a key; `anchor` is a directory outside the record store (another disk or a
    share) where each record's close leaves a signed checkpoint of the chain head, so deleting the newest
    records is detected (`ionctl records verify`). None: no anchor."""

    administrators: frozenset[str] = frozenset()
    lockout_attempts: int = 5
    lockout_minutes: float = 15.0
    idle_lock_minutes: float = 10.0
    anchor: Path | None = None


@dataclass(frozen=True)
class SiteConfig:
    """A checked site configuration. `sha256` is over the file's bytes: any edit, comments included,
    makes it a different configuration that a supervisor must approve."""

    source: str
    path: Path | None  # None: the packaged defaults
    text: str
    limits: SiteLimits
    electrodes: Mapping[str, Electrode]
    drugs: Mapping[str, DrugEntry]
    presets: Mapping[str, Preset]
    bench: BenchSettings = BenchSettings()
    accounts: AccountSettings = AccountSettings()
    visits: VisitSettings = VisitSettings()
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.text.encode("utf-8")).hexdigest())

    @property
    def packaged(self) -> bool:
        return self.path is None

    def preset(self, name: str) -> Preset:
        """The preset `name`; ConfigError listing the known ones if there is none."""
        return _named(self.presets, name, "presets", "preset", self.source)

    def usual_dose_note(self, prescription: Prescription) -> str | None:
        """A note when the planned dose is outside the drug catalog's usual range (advice, not a limit)."""
        entry = self.drugs.get(prescription.drug)
        if entry is None or entry.usual_dose_ma_min is None:
            return None
        low, high = entry.usual_dose_ma_min
        dose = prescription.planned_dose_ma_min
        if low <= dose <= high:
            return None
        return (f"note: {dose:.1f} mA·min is outside the usual {low:g}–{high:g} mA·min for {entry.name} "
                f"({entry.source})")  # fmt: skip

    def resolve_drug(self, name: str) -> tuple[str, Charge | None]:
        """The catalog's name for drug `name` (any synonym, salt, brand name or spelling of it) and the charge
        the catalog gives a drug the built-in table does not know; `(name, None)` if the catalog does not have
        it (validation then refuses it, suggesting the closest names)."""
        wanted = drug_identity(name)
        for entry in self.drugs.values():
            if drug_identity(entry.name) == wanted:
                return entry.name, (None if find_drug(entry.name) is not None else entry.charge)
        return name, None

    def electrode(self, name: str) -> Electrode:
        """The catalog's electrode `name`; ConfigError listing the known ones if there is none."""
        return _named(self.electrodes, name, "electrodes", "electrode", self.source)


def _named(table: Mapping[str, T], name: str, section: str, what: str, source: str) -> T:
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table)) or "none"
        typed = escape_controls(name)  # a typed name is echoed: never a line break or escape sequence as it is
        raise ConfigError(source, f"{section}.{typed}", f"no such {what} (known: {known})") from None


# -- loading ----------------------------------------------------------------------------------------------------


def default_path() -> Path:
    """Where a site keeps its configuration: the platform's site configuration directory."""
    import platformdirs

    return Path(platformdirs.site_config_dir("ionctl", appauthor=False)) / CONFIG_NAME


def packaged_text() -> str:
    return resources.files("ionctl").joinpath(PACKAGED_FILE).read_text(encoding="utf-8")


def packaged_limits_text() -> str:
    return resources.files("ionctl").joinpath("data/limits.toml").read_text(encoding="utf-8")


def resolve_path(path: str | Path | None) -> Path | None:
    """The file in force: `path`, else the site file if it exists, else None (the packaged defaults)."""
    if path is not None:
        return Path(path)
    site = default_path()
    return site if site.is_file() else None


def load_config(path: str | Path | None = None) -> SiteConfig:
    """The configuration in force (see the module docstring); ConfigError if it cannot be used."""
    resolved = resolve_path(path)
    if resolved is None:
        return parse_config(packaged_text(), source=PACKAGED_SOURCE, path=None)
    try:
        text = resolved.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(resolved), None, f"cannot read: {exc}") from exc
    config = parse_config(text, source=str(resolved), path=resolved)
    site = default_path()
    if site.is_file() and resolved.resolve() != site.resolve():
        # The root of trust is the site file IT keeps where technicians cannot write: a file of one's own given
        # with --config may set the treatment (and is refused until a supervisor approves it), never who is trusted.
        config = replace(config, accounts=_site_accounts(site))
    return config


def _site_accounts(site: Path) -> AccountSettings:
    """The `[accounts]` table of the site file (checked as `parse_config` checks it); ConfigError if unreadable."""
    try:
        text = site.read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(site), None, f"cannot read the site file's [accounts]: {exc}") from exc
    return _Reader(text, str(site)).accounts(doc.get("accounts", {}))


def parse_config(text: str, *, source: str = "<text>", path: Path | None = None) -> SiteConfig:
    """Check configuration text (pure). ConfigError names the key and its line."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message carries "(at line L, column C)"
        found = re.search(r"at line (\d+)", str(exc))
        raise ConfigError(source, None, f"not valid TOML: {exc}", int(found.group(1)) if found else None) from exc
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(source, None, "not usable: arrays or inline tables nested too deeply to read") from None
    reader = _Reader(text, source)
    unknown = set(doc) - {"limits", "electrodes", "drugs", "presets", "accounts", "visits", *BENCH_KEYS}
    if unknown:
        key = sorted(unknown)[0]
        reader.fail((key,), "unknown table or key; known: limits, electrodes, drugs, presets, accounts, visits, "
                            f"{', '.join(BENCH_KEYS)}")  # fmt: skip
    bench = reader.bench(doc)
    accounts = reader.accounts(doc.get("accounts", {}))
    limits = reader.limits(doc.get("limits"))
    electrodes = {name: reader.electrode(name, t) for name, t in reader.tables(doc, "electrodes")}
    drugs = {name: reader.drug(name, t) for name, t in reader.tables(doc, "drugs")}
    presets = {name: reader.preset(name, t, electrodes, drugs, limits) for name, t in reader.tables(doc, "presets")}
    visits = reader.visits(doc.get("visits", {}))
    return SiteConfig(source, path, text, limits, MappingProxyType(electrodes), MappingProxyType(drugs),
                      MappingProxyType(presets), bench, accounts, visits)  # fmt: skip


#: Top-level keys and tables about the PC rather than the treatment (`BenchSettings`).
BENCH_KEYS = ("records", "time_zone", "clinic", "clinic_name")


def bench_settings(path: str | Path | None = None) -> BenchSettings:
    """The `BenchSettings` of the file in force (`resolve_path`), checking only those keys, so that reading
    records does not depend on the rest of the file; the packaged defaults name none."""
    resolved = resolve_path(path)
    if resolved is None:
        return BenchSettings()
    try:
        text = resolved.read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(resolved), None, f"cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        line = int(found.group(1)) if found else None
        raise ConfigError(str(resolved), None, f"not valid TOML: {exc}", line) from exc
    return _Reader(text, str(resolved)).bench(doc)


#: A password in a connection string: key=value (`password=`) or a URI's user:password@.
_PASSWORD = re.compile(r"(?i)(?:^|\s)password\s*=|://[^/@\s]*:[^/@\s]*@|[?&]password=")


class _Reader:
    """Typed access to the parsed document, failing with the key's line in the text."""

    def __init__(self, text: str, source: str) -> None:
        self.text, self.source = text, source

    def fail(self, keys: tuple[str, ...], problem: str) -> NoReturn:
        raise ConfigError(self.source, ".".join(keys), problem, line_of(self.text, keys))

    def tables(self, doc: Mapping[str, Any], name: str) -> Iterator[tuple[str, dict[str, Any]]]:
        section = doc.get(name, {})
        if not isinstance(section, dict):
            self.fail((name,), f"must be tables, written [{name}.NAME]")
        for key, table in section.items():
            if not isinstance(table, dict):
                self.fail((name, key), f"must be a table, written [{name}.{key}]")
            yield key, table

    def limits(self, table: Any) -> SiteLimits:
        if table is None:
            return SiteLimits.from_toml(packaged_limits_text(), source="ionctl/data/limits.toml (packaged defaults)")
        if not isinstance(table, dict):
            self.fail(("limits",), "must be a table, written [limits]")
        try:
            return SiteLimits.from_table(table, source=self.source)
        except LimitsFileError as exc:
            key = exc.key or ""
            cls = re.match(r"\[class\.([^\]]+)\] (.+)", key)
            keys = ("limits", "class", cls.group(1), cls.group(2)) if cls else ("limits", key)
            self.fail(keys, exc.problem)

    def known(self, keys: tuple[str, ...], table: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
        for key in table:
            if key not in allowed:
                self.fail((*keys, key), f"unknown key; known: {', '.join(allowed)}")

    def number(self, keys: tuple[str, ...], value: Any, *, required: bool = True) -> float | None:
        if value is None:
            if required:
                self.fail(keys, "missing")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            self.fail(keys, f"must be a positive finite number, got {value!r}")
        return float(value)

    def string(self, keys: tuple[str, ...], value: Any, *, required: bool = True) -> str:
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            self.fail(keys, "missing" if value is None else f"must be a non-empty string, got {value!r}")
        return str(value)

    def bench(self, doc: Mapping[str, Any]) -> BenchSettings:
        from ionctl.records.timefmt import zone_named

        zone = doc.get("time_zone")
        if zone is not None:
            try:
                zone_named(zone)
            except ValueError as exc:
                self.fail(("time_zone",), str(exc))
        table = doc.get("records", {})
        if not isinstance(table, dict):
            self.fail(("records",), "must be a table, written [records]")
        self.known(("records",), table, ("store",))
        store = table.get("store")
        if store is not None:
            if not isinstance(store, str) or not store.strip() or not Path(store).is_absolute():
                self.fail(("records", "store"), f"must be an absolute path to the record store file, e.g. "
                                                f'"/var/lib/ionctl/records.sqlite3", got {store!r}')  # fmt: skip
            store = Path(store)
        name = doc.get("clinic_name")
        if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 80 or "\n" in name):
            self.fail(("clinic_name",), f"must be the clinic's name as the chart heads it (one line, at most 80 "
                                        f"characters), got {name!r}")  # fmt: skip
        return BenchSettings(store, zone, self.clinic(doc.get("clinic")), " ".join(name.split()) if name else None)

    def clinic(self, table: Any) -> ClinicSettings | None:
        if table is None:
            return None
        keys = ("clinic",)
        if not isinstance(table, dict):
            self.fail(keys, "must be a table, written [clinic]")
        self.known(keys, table, ("store", "bench", "offline_courses", "timeout_s"))
        store = self.string((*keys, "store"), table.get("store"))
        if _PASSWORD.search(store):
            self.fail((*keys, "store"), "must not hold a password: put it in a libpq service file or PGPASSFILE "
                                        "(the connection string names the service, user, host and database)")
        bench = self.string((*keys, "bench"), table.get("bench"))
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,62}", bench):
            self.fail((*keys, "bench"), f"must be lower-case letters, digits, '.', '_' or '-' (up to 63), e.g. "
                                        f'"bench-a", got {bench!r}')  # fmt: skip
        offline = table.get("offline_courses", "refuse")
        if offline not in OFFLINE_COURSES:
            self.fail((*keys, "offline_courses"), f"must be one of {', '.join(OFFLINE_COURSES)}, got {offline!r}")
        timeout = self.number((*keys, "timeout_s"), table.get("timeout_s", 3.0))
        assert timeout is not None
        return ClinicSettings(store, bench, str(offline), timeout)

    def accounts(self, table: Any) -> AccountSettings:
        keys = ("accounts",)
        if not isinstance(table, dict):
            self.fail(keys, "must be a table, written [accounts]")
        self.known(keys, table, ("administrators", "lockout_attempts", "lockout_minutes", "idle_lock_minutes",
                                 "anchor"))  # fmt: skip
        admins = table.get("administrators", [])
        if not isinstance(admins, list) or not all(isinstance(a, str) and a.startswith("SHA256:") for a in admins):
            self.fail((*keys, "administrators"), "must be a list of key fingerprints as `ionctl users bootstrap` "
                                                 'prints them, e.g. ["SHA256:qmP6QgMx..."]')  # fmt: skip
        attempts = table.get("lockout_attempts", 5)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 10:
            self.fail((*keys, "lockout_attempts"), f"must be a whole number from 1 to 10, got {attempts!r}")
        numbers = {k: self.number((*keys, k), table.get(k, default))
                   for k, default in (("lockout_minutes", 15.0), ("idle_lock_minutes", 10.0))}  # fmt: skip
        anchor = table.get("anchor")
        if anchor is not None and (not isinstance(anchor, str) or not Path(anchor).is_absolute()):
            self.fail((*keys, "anchor"), f"must be an absolute path to a directory outside the record store, got "
                                         f"{anchor!r}")  # fmt: skip
        return AccountSettings(frozenset(admins), attempts, numbers["lockout_minutes"] or 15.0,
                               numbers["idle_lock_minutes"] or 10.0, Path(anchor) if anchor else None)  # fmt: skip

    def visits(self, table: Any) -> VisitSettings:
        if not isinstance(table, dict):
            self.fail(("visits",), "must be a table, written [visits]")
        self.known(("visits",), table, ("fault_policy",))
        policy = table.get("fault_policy", VisitSettings.fault_policy)
        if policy not in VISIT_FAULT_POLICIES:
            self.fail(("visits", "fault_policy"), f"must be one of {', '.join(map(repr, VISIT_FAULT_POLICIES))}, "
                                                  f"got {policy!r}")  # fmt: skip
        return VisitSettings(str(policy))

    def electrode(self, name: str, t: dict[str, Any]) -> Electrode:
        keys = ("electrodes", name)
        self.known(keys, t, ("area_cm2", "type"))
        area = self.number((*keys, "area_cm2"), t.get("area_cm2"))
        assert area is not None
        self.within_ceilings(keys, {"area_cm2": area}, DRUG_ELECTRODE)
        return Electrode(name, area, self.string((*keys, "type"), t.get("type"), required=False))

    def drug(self, name: str, t: dict[str, Any]) -> DrugEntry:
        keys = ("drugs", name)
        self.known(keys, t, ("charge", "usual_concentration", "usual_dose_ma_min", "source"))
        try:
            charge = Charge.parse(self.string((*keys, "charge"), t.get("charge")))
        except ValueError as exc:
            self.fail((*keys, "charge"), str(exc))
        builtin = find_drug(name)
        if builtin is not None and builtin.name != name:
            self.fail(keys, f"{name!r} is another name of {builtin.name}: write it [drugs.{builtin.name}] (the record "
                            "and the chart carry one name per drug)")  # fmt: skip
        if builtin is not None and builtin.charge is not charge:
            known = f"{builtin.name} is {builtin.charge.name.lower()} ({builtin.charge.value}; {builtin.source})"
            self.fail((*keys, "charge"), f"{charge.value} contradicts the built-in table: {known}")
        raw, dose_range = t.get("usual_dose_ma_min"), None
        if raw is not None:
            ok = isinstance(raw, list) and len(raw) == 2
            low, high = (self.number((*keys, "usual_dose_ma_min"), v) for v in raw) if ok else (None, None)
            if low is None or high is None or low > high:
                self.fail((*keys, "usual_dose_ma_min"), f"must be [low, high] in mA·min, got {raw!r}")
            dose_range = (low, high)
        concentration = self.string((*keys, "usual_concentration"), t.get("usual_concentration"), required=False)
        return DrugEntry(name, charge, concentration, dose_range, self.string((*keys, "source"), t.get("source")))

    def preset(self, name: str, t: dict[str, Any], electrodes: Mapping[str, Electrode],
               drugs: Mapping[str, DrugEntry], limits: SiteLimits) -> Preset:  # fmt: skip
        keys = ("presets", name)
        self.known(keys, t, ("drug", "polarity", "protocol_class", "electrode", *PRESET_RX_KEYS,
                             "polarity_reversal_at_midpoint", "volume_ml", "site", "visit", "concentration", "notes",
                             "source", "course"))  # fmt: skip
        drug = self.string((*keys, "drug"), t.get("drug"))
        entry = next((e for e in drugs.values() if drug_identity(e.name) == drug_identity(drug)), None)
        if entry is None:
            near = closest_names(drug, drugs)
            hint = f"; did you mean {' or '.join(near)}?" if near else ""
            self.fail((*keys, "drug"), f"{drug!r} is not in [drugs]{hint} A preset's drug must be in the site's drug "
                                       "catalog, with its charge and source")  # fmt: skip
        drug = entry.name
        polarity = self.string((*keys, "polarity"), t.get("polarity"))
        if polarity not in ("anode", "cathode"):
            self.fail((*keys, "polarity"), f'must be "anode" or "cathode", got {polarity!r}')
        protocol_class = self.string((*keys, "protocol_class"), t.get("protocol_class", DRUG_ELECTRODE))
        if protocol_class not in limits.classes:
            self.fail((*keys, "protocol_class"), f"{protocol_class!r} is not a class of the limits in force "
                                                 f"(known: {', '.join(sorted(limits.classes))})")  # fmt: skip
        reversal = t.get("polarity_reversal_at_midpoint", False)
        self.drug_fits(name, entry, Polarity(polarity), protocol_class, reversal is True)
        values = {k: self.number((*keys, k), t.get(k), required=False) for k in PRESET_RX_KEYS}
        electrode = t.get("electrode")
        if electrode is not None:
            if not isinstance(electrode, str) or electrode not in electrodes:
                self.fail((*keys, "electrode"), f"{electrode!r} is not in [electrodes] "
                                                f"(known: {', '.join(sorted(electrodes)) or 'none'})")  # fmt: skip
            if values["electrode_area_cm2"] is not None:
                self.fail((*keys, "electrode_area_cm2"), "give either electrode or electrode_area_cm2, not both")
            values["electrode_area_cm2"] = electrodes[electrode].area_cm2
        if values["dose_ma_min"] is not None and values["duration_min"] is not None:
            self.fail((*keys, "duration_min"), "give at most one of dose_ma_min and duration_min")
        self.within_ceilings(keys, values, protocol_class)
        reversal = t.get("polarity_reversal_at_midpoint", False)
        if not isinstance(reversal, bool):
            self.fail((*keys, "polarity_reversal_at_midpoint"), f"must be true or false, got {reversal!r}")
        site, concentration, volume = self.chart(keys, t)
        return Preset(name=name, drug=drug, polarity=Polarity(polarity), protocol_class=protocol_class,
                      electrode=electrode, polarity_reversal_at_midpoint=reversal,
                      drug_charge=entry.charge, site=site, visit=self.visit(keys, t.get("visit")),
                      concentration=concentration, volume_ml=volume,
                      notes=self.string((*keys, "notes"), t.get("notes"), required=False),
                      source=self.string((*keys, "source"), t.get("source")),
                      course=self.course((*keys, "course"), t.get("course")), **values)  # fmt: skip

    def chart(self, keys: tuple[str, ...], t: dict[str, Any]) -> tuple[str | None, str | None, float | None]:
        """What a preset gives the chart (`ionctl.records.clinical`): (its treatment site, as the chart says it
        ("both hands"), its preparation's concentration, its volume), each checked as a record would check it."""
        from ionctl.records.clinical import ClinicalDetails, ClinicalError, TreatmentSite

        name, site = keys[-1], t.get("site")
        volume = self.number((*keys, "volume_ml"), t.get("volume_ml"), required=False)
        concentration = self.string((*keys, "concentration"), t.get("concentration"), required=False) or None
        if site is not None and not isinstance(site, str):
            self.fail((*keys, "site"), f"preset {name!r}: must be text, e.g. 'left hand', got {site!r}")
        try:
            parsed = TreatmentSite.parse(site) if site is not None else None
        except ClinicalError as exc:
            self.fail((*keys, "site"), f"preset {name!r}: {exc}")
        try:
            ClinicalDetails(concentration=concentration, volume_ml=volume)
        except ClinicalError as exc:
            self.fail(keys, f"preset {name!r}: {exc}")
        return parsed.text if parsed is not None else None, concentration, volume

    def visit(self, keys: tuple[str, ...], value: Any) -> tuple[str, ...]:
        """A preset's visit: 2 to `MAX_VISIT_SITES` distinct treatment sites, each as the chart says it."""
        from ionctl.records.clinical import ClinicalError, TreatmentSite

        if value is None:
            return ()
        name, where = keys[-1], (*keys, "visit")
        if not isinstance(value, list) or not 2 <= len(value) <= MAX_VISIT_SITES:
            self.fail(where, f"preset {name!r}: a list of 2 to {MAX_VISIT_SITES} treatment sites, one per channel "
                             f"(e.g. [\"left hand\", \"right hand\"]), got {value!r}")  # fmt: skip
        sites: list[str] = []
        for item in value:
            if not isinstance(item, str):
                self.fail(where, f"preset {name!r}: {item!r} is not a treatment site (text, e.g. 'left hand')")
            try:
                site = TreatmentSite.parse(item).text
            except ClinicalError as exc:
                self.fail(where, f"preset {name!r}: {exc}")
            if site in sites:
                self.fail(where, f"preset {name!r}: {item!r} is the {site} twice: one channel per treatment site")
            sites.append(site)
        return tuple(sites)

    def drug_fits(self, preset: str, entry: DrugEntry, polarity: Polarity, protocol_class: str,
                  reversal: bool) -> None:  # fmt: skip
        """A preset's polarity, reversal and class must suit its drug's charge (as `validate` would refuse)."""
        keys, charge = ("presets", preset), entry.charge
        builtin = find_drug(entry.name)
        kind = f"{entry.name} is {charge.name.lower()} ({charge.value}; {builtin.source if builtin else entry.source})"
        required = charge.required_polarity
        if required is not None and polarity is not required:
            self.fail((*keys, "polarity"), f"preset {preset!r} delivers {entry.name} from the {polarity.value}, but "
                                           f"{kind}: it must be delivered from the {required.value}")  # fmt: skip
        if required is not None and reversal:
            self.fail((*keys, "polarity_reversal_at_midpoint"), f"preset {preset!r} reverses polarity, but {kind}: "
                                                                 "only a neutral solution may reverse")  # fmt: skip
        if protocol_class == TAP_WATER and charge is not Charge.NEUTRAL:
            self.fail((*keys, "protocol_class"), f"preset {preset!r} uses the {TAP_WATER} class, which is for a "
                                                 f"neutral solution, but {kind}")  # fmt: skip

    def within_ceilings(self, keys: tuple[str, ...], values: Mapping[str, float | None], protocol_class: str) -> None:
        """Preset and electrode values may not go beyond the packaged ceilings (`ionctl.safety.ceilings`)."""
        ceilings = ceilings_for(protocol_class)
        checks = (("current_ma", "max_current_ma"), ("dose_ma_min", "max_dose_ma_min"),
                  ("duration_min", "max_duration_min"), ("ramp_up_s", "min_ramp_s"), ("ramp_down_s", "min_ramp_s"),
                  ("electrode_area_cm2", "min_electrode_area_cm2"), ("electrode_area_cm2", "max_electrode_area_cm2"),
                  ("area_cm2", "min_electrode_area_cm2"), ("area_cm2", "max_electrode_area_cm2"))  # fmt: skip
        for key, ceiling in checks:
            value = values.get(key)
            if value is not None and ceilings.breaks(ceiling, value):
                self.fail((*keys, key), f"{value:g} is beyond {ceilings.describe(ceiling)}")
        current, area = values.get("current_ma"), values.get("electrode_area_cm2")
        if current is not None and area is not None and ceilings.breaks("max_density_ma_cm2", current / area):
            self.fail((*keys, "current_ma"), f"{current:g} mA on {area:g} cm² is {current / area:.2f} mA/cm², beyond "
                                             f"{ceilings.describe('max_density_ma_cm2')}")  # fmt: skip

    def course(self, keys: tuple[str, ...], t: Any) -> CoursePlan | None:
        if t is None:
            return None
        if not isinstance(t, dict):
            self.fail(keys, "must be a table, written [presets.NAME.course]")
        self.known(keys, t, ("sessions", "per_week", "min_interval_days"))
        sessions = t.get("sessions")
        if isinstance(sessions, bool) or not isinstance(sessions, int) or sessions < 1:
            self.fail((*keys, "sessions"), f"must be a whole number of sessions >= 1, got {sessions!r}")
        per_week = self.number((*keys, "per_week"), t.get("per_week"), required=False)
        interval = self.number((*keys, "min_interval_days"), t.get("min_interval_days"), required=False)
        return CoursePlan(sessions, per_week, interval)


# -- where a key is ---------------------------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_\-\"'. ]+?)\s*=")


def _dotted(text: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in text.split("."))


def line_of(text: str, keys: tuple[str, ...]) -> int | None:
    """The 1-based line where `keys` (a table path, ending with a key or not) is written; the nearest
    enclosing table's header when the key itself is absent (a missing key); None if nothing matches."""
    table: tuple[str, ...] = ()
    best: tuple[int, int] | None = None  # (matched depth, line)
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _dotted(header.group(1))
            path = table
        else:
            assign = _ASSIGN.match(line)
            if not assign:
                continue
            path = table + _dotted(assign.group(1))
        depth = len(path) if keys[: len(path)] == path else -1
        if depth == len(keys):
            return number
        if depth > 0 and (best is None or depth > best[0]):
            best = (depth, number)
    return best[1] if best else None

"""ionctl.safety as a specification: prescriptions, site limits (TOML, protocol classes), validation and
the limits handed to the device."""

from __future__ import annotations

import dataclasses
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ionctl.drivers.base import DeviceIdentity, DeviceLimits, Polarity
from ionctl.safety import (
    LIMIT_KEYS,
    TAP_WATER,
    Charge,
    LimitsFileError,
    Prescription,
    PrescriptionError,
    PrescriptionRefused,
    SiteLimits,
    device_limits,
    find_drug,
    validate,
)

LIMITS = SiteLimits.load(None)
# Shaped like the simulator's default device (sim.firmware.DeviceSpec): 30 mA, 60 V.
HARDWARE = DeviceIdentity(
    address="loop://", model="IONTO-SIM 1", serial="SIM-000001", firmware="1.0.0", protocol="1.0",
    hw_max_current_ma=30.0, compliance_v=60.0, native_ramp=True, watchdog=True, coulomb_counter=True,
    contact_check=True,
)  # fmt: skip
PACKAGED_TEXT = resources.files("ionctl").joinpath("data/limits.toml").read_text(encoding="utf-8")


def dexamethasone(**changes: Any) -> Prescription:
    """The acceptance prescription: dexamethasone, 4 mA, 40 mA·min, cathode, 10 cm²."""
    fields: dict[str, Any] = dict(
        drug="dexamethasone", polarity=Polarity.CATHODE, electrode_area_cm2=10.0, current_ma=4.0,
        dose_ma_min=40.0, patient_id="P-001", operator_id="tech-1",
    )  # fmt: skip
    return Prescription(**{**fields, **changes})


def tap_water(**changes: Any) -> Prescription:
    """Hands in tap-water trays: 15 mA on 120 cm² for 20 min."""
    fields: dict[str, Any] = dict(
        drug="tap-water", polarity=Polarity.ANODE, electrode_area_cm2=120.0, current_ma=15.0, duration_min=20.0,
        patient_id="P-002", operator_id="tech-1", protocol_class=TAP_WATER,
    )  # fmt: skip
    return Prescription(**{**fields, **changes})


def refusal(
    prescription: Prescription, limits: SiteLimits = LIMITS, hw: DeviceIdentity | None = None
) -> PrescriptionRefused:
    with pytest.raises(PrescriptionRefused) as info:
        validate(prescription, limits, hw)
    return info.value


def limits_text(**changes: object) -> str:
    """The packaged file's text with top-level `key = value` lines replaced (value as TOML text)."""
    text = PACKAGED_TEXT
    for key, value in changes.items():
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text, count=1)
        assert n == 1, key
    return text


def load_text(tmp_path: Path, text: str) -> SiteLimits:
    path = tmp_path / "site-limits.toml"
    path.write_text(text, encoding="utf-8")
    return SiteLimits.load(path)


# -- the acceptance prescriptions ------------------------------------------------------------------------------


def test_dexamethasone_4ma_40mamin_cathode_10cm2_is_accepted() -> None:
    validated = validate(dexamethasone(), LIMITS, HARDWARE)
    assert validated.drug_charge is Charge.ANIONIC
    assert validated.planned_dose_ma_min == 40.0
    assert validated.limits.protocol_class == "drug-electrode"


def test_dexamethasone_at_6ma_is_refused_for_density_naming_the_limit() -> None:
    refused = refusal(dexamethasone(current_ma=6.0))
    [density] = [v for v in refused.violations if v.limit_name == "max_density_ma_cm2"]
    assert (density.limit_value, density.prescribed_value, density.unit) == (0.5, 0.6, "mA/cm²")
    assert density.message == ("current density 0.60 mA/cm² exceeds the site limit of 0.50 mA/cm² (max_density_ma_cm2)")
    assert density.message in str(refused)


def test_dexamethasone_from_the_anode_is_refused_for_polarity() -> None:
    refused = refusal(dexamethasone(polarity=Polarity.ANODE))
    assert refused.limit_names == ("drug_charge",)
    assert "anionic" in str(refused) and "cathode" in str(refused) and "anode" in str(refused)


def test_lidocaine_is_delivered_from_the_anode_only() -> None:
    validate(dexamethasone(drug="lidocaine", polarity=Polarity.ANODE), LIMITS)
    assert refusal(dexamethasone(drug="lidocaine", polarity=Polarity.CATHODE)).limit_names == ("drug_charge",)


def test_asc_exosomes_go_under_the_cathode() -> None:
    validate(dexamethasone(drug="asc-exosomes"), LIMITS)
    assert refusal(dexamethasone(drug="asc-exosomes", polarity=Polarity.ANODE)).limit_names == ("drug_charge",)


def test_unknown_drug_without_a_charge_is_refused() -> None:
    refused = refusal(dexamethasone(drug="ketoprofen"))
    assert refused.limit_names == ("drug",)
    assert "unknown drug 'ketoprofen'" in str(refused)


def test_unknown_drug_with_an_explicit_charge_follows_that_charge() -> None:
    assert validate(dexamethasone(drug="ketoprofen", drug_charge=Charge.ANIONIC), LIMITS).drug_charge is Charge.ANIONIC
    refused = refusal(dexamethasone(drug="ketoprofen", drug_charge=Charge.CATIONIC))
    assert refused.limit_names == ("drug_charge",)


def test_an_explicit_charge_contradicting_the_drug_table_is_refused() -> None:
    refused = refusal(dexamethasone(drug_charge=Charge.CATIONIC))
    assert refused.limit_names == ("drug_charge",)
    assert "contradicts dexamethasone-sodium-phosphate" in str(refused)


def test_tap_water_class_accepts_15ma_on_120cm2_trays_for_20min() -> None:
    validated = validate(tap_water(), LIMITS, HARDWARE)
    assert validated.limits.max_current_ma == 20.0
    assert validated.planned_duration_s == 20 * 60


def test_tap_water_runs_from_either_polarity() -> None:
    validate(tap_water(polarity=Polarity.CATHODE), LIMITS)
    validate(tap_water(polarity=Polarity.ANODE), LIMITS)


def test_tap_water_class_is_still_density_limited() -> None:
    refused = refusal(tap_water(electrode_area_cm2=20.0))  # 0.75 mA/cm²
    assert refused.limit_names == ("max_density_ma_cm2",)
    assert "tap-water site limit of 0.50 mA/cm²" in str(refused)


def test_tap_water_current_is_refused_under_the_drug_electrode_class() -> None:
    refused = refusal(tap_water(protocol_class="drug-electrode"))
    assert "max_current_ma" in refused.limit_names and "max_dose_ma_min" in refused.limit_names


# -- the seed case --------------------------------------------------------------------------------------------


def seed_case(**changes: Any) -> Prescription:
    """Lee 2025 (docs/SOURCES.md): ASC exosomes from the cathode "at 50 mA"; area and duration not reported, so a
    generous 100 cm² tray and 10 min stand in."""
    return Prescription(**{**dict(
        drug="asc-exosomes", polarity=Polarity.CATHODE, electrode_area_cm2=100.0, current_ma=50.0,
        duration_min=10.0, patient_id="P-LEE", operator_id="tech-1",
    ), **changes})  # fmt: skip


def test_the_50ma_asc_exosome_prescription_is_refused_by_name_under_default_limits() -> None:
    refused = refusal(seed_case())
    [current] = [v for v in refused.violations if v.limit_name == "max_current_ma"]
    assert current.message == "current 50.00 mA exceeds the site limit of 4.00 mA (max_current_ma)"
    assert "max_dose_ma_min" in refused.limit_names  # 50 mA for 10 min is ~475 mA·min


def test_the_50ma_seed_case_is_refused_as_a_tap_water_protocol_and_by_the_hardware_too() -> None:
    refused = refusal(seed_case(protocol_class=TAP_WATER), hw=HARDWARE)
    assert {"max_current_ma", "hw_max_current_ma"} <= set(refused.limit_names)
    assert "current 50.00 mA exceeds the IONTO-SIM 1 hardware limit of 30.00 mA (hw_max_current_ma)" in str(refused)


# -- each limit -----------------------------------------------------------------------------------------------


def test_every_violation_is_listed_at_once() -> None:
    refused = refusal(dexamethasone(current_ma=6.0, dose_ma_min=90.0, ramp_up_s=2.0, polarity=Polarity.ANODE))
    assert set(refused.limit_names) == {
        "drug_charge", "max_current_ma", "max_density_ma_cm2", "max_dose_ma_min", "min_ramp_s",
    }  # fmt: skip


def test_dose_above_the_site_maximum_is_refused() -> None:
    raised = dataclasses.replace(LIMITS, max_current_ma=10.0, max_duration_min=60.0)
    refused = refusal(dexamethasone(dose_ma_min=81.0, electrode_area_cm2=20.0), raised)
    assert [v.message for v in refused.violations] == [
        "dose 81.00 mA·min exceeds the site limit of 80.00 mA·min (max_dose_ma_min)"
    ]


def test_duration_above_the_site_maximum_is_refused() -> None:
    refused = refusal(dexamethasone(current_ma=1.0, dose_ma_min=40.0))  # 40.5 min at 1 mA
    assert refused.limit_names == ("max_duration_min",)
    assert "duration 40.50 min exceeds the site limit of 30.00 min" in str(refused)


def test_ramps_outside_the_site_window_are_refused() -> None:
    refused = refusal(dexamethasone(ramp_up_s=1.0, ramp_down_s=90.0))
    assert refused.limit_names == ("min_ramp_s", "max_ramp_s")
    assert "ramp-up 1.00 s is below the site minimum of 5.00 s (min_ramp_s)" in str(refused)
    assert "ramp-down 90.00 s exceeds the site limit of 60.00 s (max_ramp_s)" in str(refused)


def test_current_above_the_hardware_maximum_is_refused_even_when_the_site_allows_it() -> None:
    site = dataclasses.replace(LIMITS.for_class(TAP_WATER), max_current_ma=40.0, max_dose_ma_min=1000.0)
    refused = refusal(tap_water(current_ma=35.0), site, HARDWARE)
    assert refused.limit_names == ("hw_max_current_ma",)


def test_a_current_the_compliance_voltage_cannot_drive_through_the_lowest_load_is_refused() -> None:
    weak = dataclasses.replace(HARDWARE, compliance_v=5.0)  # 15 mA × 500 Ω = 7.5 V
    refused = refusal(tap_water(), hw=weak)
    assert refused.limit_names == ("compliance_v",)
    assert "7.50 V" in str(refused) and "5.00 V" in str(refused)


def test_an_unknown_protocol_class_is_refused_naming_the_known_ones() -> None:
    refused = refusal(dexamethasone(protocol_class="galvanic-bath"))
    assert refused.limit_names == ("protocol_class",)
    assert "drug-electrode, tap-water" in str(refused)


def test_midpoint_polarity_reversal_is_refused_for_a_charged_drug() -> None:
    refused = refusal(dexamethasone(polarity_reversal_at_midpoint=True))
    assert refused.limit_names == ("drug_charge",) and "reversal" in str(refused)


def test_midpoint_polarity_reversal_is_accepted_for_tap_water() -> None:
    validate(tap_water(polarity_reversal_at_midpoint=True), LIMITS)


@settings(max_examples=300, deadline=None)
@given(
    current_ma=st.floats(0.05, 40.0),
    area_cm2=st.floats(1.0, 200.0),
    dose_ma_min=st.floats(1.0, 1000.0),
    ramp_s=st.floats(0.0, 120.0),
    tap=st.booleans(),
)
def test_an_accepted_prescription_is_within_every_limit(
    current_ma: float, area_cm2: float, dose_ma_min: float, ramp_s: float, tap: bool
) -> None:
    try:
        p = dexamethasone(
            drug="tap-water" if tap else "dexamethasone", protocol_class=TAP_WATER if tap else "drug-electrode",
            current_ma=current_ma, electrode_area_cm2=area_cm2, dose_ma_min=dose_ma_min, ramp_up_s=ramp_s,
            ramp_down_s=ramp_s,
        )  # fmt: skip
        v = validate(p, LIMITS, HARDWARE)
    except (PrescriptionError, PrescriptionRefused):
        return
    site = v.limits
    assert p.current_ma <= min(site.max_current_ma, HARDWARE.hw_max_current_ma)
    assert p.density_ma_cm2 <= site.max_density_ma_cm2
    assert p.planned_dose_ma_min <= site.max_dose_ma_min and p.planned_duration_min <= site.max_duration_min
    assert site.min_ramp_s <= ramp_s <= site.max_ramp_s


# -- prescriptions, as built ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, words",
    [
        (dict(duration_min=10.0), "exactly one of dose_ma_min and duration_min"),
        (dict(dose_ma_min=None), "exactly one of dose_ma_min and duration_min"),
        (dict(current_ma=0.0), "current_ma must be a positive finite number"),
        (dict(current_ma=-1.0), "current_ma must be a positive finite number"),
        (dict(current_ma=math.nan), "current_ma must be a positive finite number"),
        (dict(electrode_area_cm2=math.inf), "electrode_area_cm2 must be a positive finite number"),
        (dict(current_ma=True), "current_ma must be a number"),
        (dict(current_ma="4"), "current_ma must be a number"),
        (dict(ramp_up_s=-1.0), "ramp_up_s must be a non-negative finite number"),
        (dict(patient_id=""), "patient_id must be a non-empty string"),
        (dict(operator_id="  "), "operator_id must be a non-empty string"),
        (dict(polarity="cathode"), "polarity must be a Polarity"),
        (dict(drug_charge="-"), "drug_charge must be a Charge or None"),
        (dict(polarity_reversal_at_midpoint=1), "polarity_reversal_at_midpoint must be a bool"),
    ],
)
def test_a_malformed_prescription_cannot_be_built(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(PrescriptionError, match=re.escape(words)):
        dexamethasone(**changes)


def test_prescriptions_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        dexamethasone().current_ma = 6.0  # type: ignore[misc]


def test_density_is_current_over_the_electrode_area() -> None:
    assert dexamethasone(current_ma=4.0, electrode_area_cm2=10.0).density_ma_cm2 == pytest.approx(0.4)


def test_a_dose_prescription_plans_its_duration_with_ramps_at_half_weight() -> None:
    # 40 mA·min at 4 mA is 10 min of hold-equivalent; 2 × 30 s of ramps at half weight add 30 s.
    assert dexamethasone().planned_duration_s == pytest.approx(630.0)


def test_a_duration_prescription_plans_its_dose_with_ramps_at_half_weight() -> None:
    # 20 min at 15 mA, 60 s of ramps counted at half: 15 × (20 − 0.5) = 292.5 mA·min.
    assert tap_water().planned_dose_ma_min == pytest.approx(292.5)


def test_a_midpoint_reversal_adds_a_second_ramp_pair() -> None:
    assert tap_water(polarity_reversal_at_midpoint=True).planned_dose_ma_min == pytest.approx(15 * 19.0)


@given(
    current_ma=st.floats(0.1, 20.0), dose_ma_min=st.floats(5.0, 600.0), ramp_up_s=st.floats(0.0, 60.0),
    ramp_down_s=st.floats(0.0, 60.0), reversal=st.booleans(),
)  # fmt: skip
def test_planned_dose_and_duration_are_inverse(
    current_ma: float, dose_ma_min: float, ramp_up_s: float, ramp_down_s: float, reversal: bool
) -> None:
    common = dict(
        current_ma=current_ma, ramp_up_s=ramp_up_s, ramp_down_s=ramp_down_s, polarity_reversal_at_midpoint=reversal
    )
    try:
        by_dose = dexamethasone(dose_ma_min=dose_ma_min, **common)
    except PrescriptionError:
        return
    by_time = dexamethasone(dose_ma_min=None, duration_min=by_dose.planned_duration_min, **common)
    assert by_time.planned_dose_ma_min == pytest.approx(dose_ma_min, rel=1e-9)


def test_drug_names_ignore_case_spaces_and_the_dexamethasone_alias() -> None:
    assert find_drug("Dexamethasone Sodium_Phosphate") is find_drug("dexamethasone")
    assert find_drug("unobtainium") is None


@pytest.mark.parametrize("text, charge", [("-", Charge.ANIONIC), ("+", Charge.CATIONIC), ("0", Charge.NEUTRAL),
                                          ("Anionic", Charge.ANIONIC), (" neutral ", Charge.NEUTRAL)])  # fmt: skip
def test_charges_parse_from_the_cli_spelling_or_their_name(text: str, charge: Charge) -> None:
    assert Charge.parse(text) is charge


def test_an_unknown_charge_spelling_is_an_error() -> None:
    with pytest.raises(ValueError, match="expected one of"):
        Charge.parse("negative")


# -- site limits ----------------------------------------------------------------------------------------------


def test_the_packaged_limits_load_with_the_documented_defaults() -> None:
    assert LIMITS.max_density_ma_cm2 == 0.5
    assert LIMITS.max_dose_ma_min == 80.0
    assert LIMITS.max_current_ma == 4.0
    assert set(LIMITS.classes) == {"drug-electrode", "tap-water"}
    assert "packaged" in LIMITS.source


def test_every_key_in_the_packaged_limits_file_has_a_source_comment() -> None:
    lines = PACKAGED_TEXT.splitlines()
    keys_seen = []
    for i, line in enumerate(lines):
        match = re.match(r"([a-z][a-z0-9_]*)\s*=", line)
        if not match:
            continue
        keys_seen.append(match.group(1))
        comment_above = []
        for above in reversed(lines[:i]):
            if not above.startswith("#"):
                break
            comment_above.append(above)
        inline = line.partition("#")[2]
        assert "source:" in inline or any("source:" in c for c in comment_above), f"line {i + 1}: {line}"
    assert set(LIMIT_KEYS) <= set(keys_seen)


def test_a_class_table_overrides_only_the_keys_it_names() -> None:
    tap = LIMITS.for_class(TAP_WATER)
    assert (tap.max_current_ma, tap.max_dose_ma_min, tap.protocol_class) == (20.0, 600.0, TAP_WATER)
    unchanged = {k: v for k, v in tap.values().items() if k not in ("max_current_ma", "max_dose_ma_min")}
    assert unchanged == {k: v for k, v in LIMITS.values().items() if k not in ("max_current_ma", "max_dose_ma_min")}


def test_a_class_can_be_added_by_a_site_file(tmp_path: Path) -> None:
    limits = load_text(tmp_path, PACKAGED_TEXT + "\n[class.pediatric]\nmax_current_ma = 2.0\n")
    assert limits.for_class("pediatric").max_current_ma == 2.0
    assert limits.max_current_ma == 4.0


def test_for_class_refuses_an_undefined_class() -> None:
    with pytest.raises(KeyError):
        LIMITS.for_class("galvanic-bath")


def test_changing_a_value_keeps_the_class_table_in_step() -> None:
    changed = dataclasses.replace(LIMITS, max_current_ma=3.0)
    assert changed.classes["drug-electrode"]["max_current_ma"] == 3.0
    assert changed.for_class(TAP_WATER).for_class("drug-electrode").max_current_ma == 3.0


def test_the_hash_ignores_comments_and_layout_but_not_values(tmp_path: Path) -> None:
    stripped = "\n".join(line.partition("#")[0] for line in PACKAGED_TEXT.splitlines())
    assert load_text(tmp_path, stripped).sha256 == LIMITS.sha256
    assert load_text(tmp_path, limits_text(watchdog_s=3.0)).sha256 != LIMITS.sha256
    assert LIMITS.for_class(TAP_WATER).sha256 != LIMITS.sha256  # the class in force is part of it
    assert re.fullmatch(r"[0-9a-f]{64}", LIMITS.sha256)


@pytest.mark.parametrize(
    "text, key, problem",
    [
        ("max_curent_ma = 4.0\n" + limits_text(), "max_curent_ma", "unknown key"),
        (limits_text(max_current_ma='"4 mA"'), "max_current_ma", "must be a number, got str"),
        (limits_text(max_current_ma="true"), "max_current_ma", "must be a number, got bool"),
        (limits_text(max_current_ma=0), "max_current_ma", "must be a positive finite number"),
        (limits_text(max_density_ma_cm2=-0.5), "max_density_ma_cm2", "must be a positive finite number"),
        (limits_text(max_dose_ma_min="inf"), "max_dose_ma_min", "must be a positive finite number"),
        (limits_text(watchdog_s="nan"), "watchdog_s", "must be a positive finite number"),
        (limits_text(min_ramp_s=90), "min_ramp_s", "must be at most max_ramp_s"),
        (limits_text(min_contact_impedance_ohm=50000), "min_contact_impedance_ohm", "must be below"),
        (limits_text(current_mismatch_fraction=1.5), "current_mismatch_fraction", "at most 1"),
        (limits_text().replace("\nwatchdog_s = 2.0", ""), "watchdog_s", "missing"),
        (limits_text() + "\nmax_ramp_secs = 3\n", "max_ramp_secs", "unknown key"),  # lands in [class.tap-water]
        (limits_text() + "\n[class.kids]\nmax_current_ma = -2\n", "[class.kids] max_current_ma", "positive"),
        (limits_text() + "\n[class.kids]\nmin_ramp_s = 100\n", "[class.kids] min_ramp_s", "at most max_ramp_s"),
        (limits_text() + "\n[class]\nkids = 3\n", "class.kids", "must be a table"),
        ("max_current_ma = [", None, "not valid TOML"),
    ],
)
def test_a_bad_limits_file_is_refused_naming_file_key_and_problem(
    tmp_path: Path, text: str, key: str | None, problem: str
) -> None:
    with pytest.raises(LimitsFileError) as info:
        load_text(tmp_path, text)
    error = info.value
    assert error.source == str(tmp_path / "site-limits.toml") and str(tmp_path) in str(error)
    assert (error.key is None) if key is None else (key in error.key)  # type: ignore[operator]
    assert problem in error.problem


def test_a_missing_limits_file_is_a_limits_file_error(tmp_path: Path) -> None:
    with pytest.raises(LimitsFileError, match="cannot read"):
        SiteLimits.load(tmp_path / "nowhere.toml")


def test_site_limits_are_checked_when_built_directly() -> None:
    with pytest.raises(ValueError, match="max_ramp_s"):
        dataclasses.replace(LIMITS, min_ramp_s=10.0, max_ramp_s=5.0)


# -- what the device enforces ---------------------------------------------------------------------------------


def test_device_limits_for_dexamethasone() -> None:
    limits = device_limits(validate(dexamethasone(current_ma=2.0, electrode_area_cm2=10.0), LIMITS, HARDWARE))
    assert limits.max_current_ma == pytest.approx(2.2)  # + 10 %
    assert limits.max_slew_ma_per_s == pytest.approx(2.2 / 5.0)  # the site's fastest ramp
    assert limits.max_dose_ma_min == pytest.approx(40.8)  # + 2 %
    assert limits.max_voltage_v == 60.0
    assert limits.max_duration_s == pytest.approx((40 / 2 * 60 + 30) * 1.1 + 180)
    assert (limits.min_impedance_ohm, limits.max_impedance_ohm) == (500.0, 100_000.0)
    assert (limits.area_cm2, limits.watchdog_s, limits.compliance_timeout_s) == (10.0, 2.0, 270.0)


def test_device_limits_are_capped_by_the_site_maxima() -> None:
    limits = device_limits(validate(dexamethasone(dose_ma_min=80.0, ramp_up_s=5.0), LIMITS, HARDWARE))
    assert limits.max_current_ma == 4.0  # 4.4 capped at the site's 4 mA
    assert limits.max_dose_ma_min == 80.0  # 81.6 capped at the site's 80 mA·min


def test_device_limits_need_the_connected_hardware() -> None:
    with pytest.raises(ValueError, match="connected device"):
        device_limits(validate(dexamethasone(), LIMITS))


@settings(max_examples=200, deadline=None)
@given(current_ma=st.floats(0.1, 20.0), area_cm2=st.floats(1.0, 200.0), dose_ma_min=st.floats(2.0, 600.0),
       tap=st.booleans(), hw_max_ma=st.floats(1.0, 30.0))  # fmt: skip
def test_device_limits_hold_the_prescription_and_stay_within_site_and_hardware(
    current_ma: float, area_cm2: float, dose_ma_min: float, tap: bool, hw_max_ma: float
) -> None:
    hw = dataclasses.replace(HARDWARE, hw_max_current_ma=hw_max_ma)
    try:
        p = dexamethasone(
            drug="tap-water" if tap else "dexamethasone", protocol_class=TAP_WATER if tap else "drug-electrode",
            current_ma=current_ma, electrode_area_cm2=area_cm2, dose_ma_min=dose_ma_min,
        )  # fmt: skip
        v = validate(p, LIMITS, hw)
    except (PrescriptionError, PrescriptionRefused):
        return
    limits = device_limits(v)
    assert isinstance(limits, DeviceLimits)
    assert p.current_ma <= limits.max_current_ma <= min(v.limits.max_current_ma, hw_max_ma)
    assert p.planned_dose_ma_min <= limits.max_dose_ma_min <= v.limits.max_dose_ma_min
    assert limits.max_duration_s > p.planned_duration_s
    assert limits.max_slew_ma_per_s >= p.current_ma / min(p.ramp_up_s, p.ramp_down_s)  # the ramps fit

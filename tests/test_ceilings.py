"""Ceilings no configuration can exceed (ionctl/data/ceilings.toml): a site file beyond one is refused as it
loads, naming key, value, ceiling and source; `ionctl config set` refuses before writing; presets are checked
against the drug table; limits built some other way still cannot carry a prescription past a ceiling; and the
device's own identity (a SourceMeter's included) bounds every session."""

from __future__ import annotations

import dataclasses
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from ionctl.config import ConfigError, approved_sha256, parse_config, set_value
from ionctl.config.authority import initial_text
from ionctl.core.session import Session
from ionctl.drivers import open_device
from ionctl.drivers.base import DeviceIdentity, Polarity
from ionctl.drivers.scpi import parse_identity
from ionctl.records import Store
from ionctl.safety import (
    LimitsFileError,
    Prescription,
    PrescriptionRefused,
    SiteLimits,
    device_limits,
    validate,
)
from ionctl.safety.ceilings import ceilings_for
from tests.people import SUPERVISOR, make_clinic
from tests.sim.endpoints import running_sim
from tests.test_config import ionctl

LIMITS_TEXT = resources.files("ionctl").joinpath("data/limits.toml").read_text(encoding="utf-8")
SIM = DeviceIdentity(
    address="loop://", model="IONTO-SIM 1", serial="SIM-000001", firmware="1.0.0", protocol="1.0",
    hw_max_current_ma=30.0, compliance_v=60.0, native_ramp=True, watchdog=True, coulomb_counter=True,
    contact_check=True,
)  # fmt: skip


def limits_with(**changes: object) -> str:
    text = LIMITS_TEXT
    for key, value in changes.items():
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text, count=1)
        assert n == 1, key
    return text


def rx(**changes: Any) -> Prescription:
    fields: dict[str, Any] = dict(drug="dexamethasone", polarity=Polarity.CATHODE, electrode_area_cm2=10.0,
                                  current_ma=4.0, dose_ma_min=40.0, patient_id="P", operator_id="O")  # fmt: skip
    return Prescription(**{**fields, **changes})


# -- the file ----------------------------------------------------------------------------------------------------


def test_every_ceiling_has_its_source_and_the_documented_values() -> None:
    base, tap = ceilings_for("drug-electrode"), ceilings_for("tap-water")
    assert base.values["max_current_ma"] == 50.0 and "IEC 60601-2-10" in base.sources["max_current_ma"]
    assert base.values["max_density_ma_cm2"] == 0.5 and "2 mA/cm²" in base.sources["max_density_ma_cm2"]
    assert base.values["min_ramp_s"] == 5.0 and tap.values["max_dose_ma_min"] == 900.0
    assert all(base.sources[k] for k in base.values) and all(tap.sources[k] for k in tap.values)


def test_the_packaged_limits_are_within_the_ceilings() -> None:
    limits = SiteLimits.load(None)
    for name in limits.classes:
        assert ceilings_for(name).site_limit_problems(limits.classes[name]) == []


# -- site files beyond a ceiling ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key, value, ceiling, source", [
    ("max_current_ma", 500, "max_current_ma = 50", "IEC 60601-2-10"),
    ("max_current_ma", 100, "max_current_ma = 50", "Enraf-Nonius"),  # what a SourceMeter could deliver
    ("max_density_ma_cm2", 30, "max_density_ma_cm2 = 0.5", "Ocular iontophoresis"),  # 30 mA on 1 cm²
    ("min_ramp_s", 0.3, "min_ramp_s = 5", "ECRI"),
    ("max_dose_ma_min", 800, "max_dose_ma_min = 80", "Dupel"),
    ("max_duration_min", 600, "max_duration_min = 420", "Anderson"),
])  # fmt: skip
def test_a_site_limit_beyond_a_ceiling_is_refused_naming_key_value_ceiling_and_source(
    key: str, value: float, ceiling: str, source: str
) -> None:
    with pytest.raises(LimitsFileError) as refused:
        SiteLimits.from_toml(limits_with(**{key: value}), source="site.toml")
    assert refused.value.key == key
    assert f"{value:g} is " in refused.value.problem and ceiling in refused.value.problem
    assert source in refused.value.problem


def test_a_class_table_is_held_to_its_class_ceiling() -> None:
    with pytest.raises(LimitsFileError) as refused:
        SiteLimits.from_toml(LIMITS_TEXT.replace("max_dose_ma_min = 600.0", "max_dose_ma_min = 2000.0"))
    assert refused.value.key == "[class.tap-water] max_dose_ma_min" and "= 900" in refused.value.problem


def test_a_supervisors_site_configuration_with_30_ma_on_1_cm2_and_short_ramps_is_refused_as_it_loads() -> None:
    text = re.sub(r"(?m)^max_current_ma = .*$", "max_current_ma = 30.0", initial_text(), count=1)
    assert parse_config(text).limits.max_current_ma == 30.0  # 30 mA is within the 50 mA ceiling ...
    for key, value in (("max_density_ma_cm2", "30.0"), ("min_ramp_s", "0.3")):  # ... 30 mA/cm² and 0.3 s are not
        one = re.sub(rf"(?m)^{key} = .*$", f"{key} = {value}", text, count=1)
        with pytest.raises(ConfigError) as refused:
            parse_config(one, source="site.toml")
        assert refused.value.key == f"limits.{key}" and "ionctl ceiling" in refused.value.problem


@pytest.mark.parametrize("area, ceiling", [("1000.0", "max_electrode_area_cm2"), ("0.2", "min_electrode_area_cm2")])
def test_an_electrode_area_beyond_the_ceilings_is_refused_in_the_catalog_and_in_a_prescription(
    area: str, ceiling: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(initial_text().replace("area_cm2 = 100.0", f"area_cm2 = {area}"))
    assert refused.value.key == "electrodes.tray-100cm2.area_cm2" and ceiling in refused.value.problem
    with pytest.raises(PrescriptionRefused) as info:
        validate(rx(electrode_area_cm2=float(area), current_ma=0.1, dose_ma_min=4.0), SiteLimits.load(None))
    assert ceiling in info.value.limit_names


# -- limits that got past the file still stop at the ceilings -------------------------------------------------------


def test_limits_built_past_the_ceilings_still_refuse_30_ma_on_1_cm2_with_short_ramps() -> None:
    loose = dataclasses.replace(SiteLimits.load(None), max_current_ma=60.0, max_density_ma_cm2=40.0, min_ramp_s=0.1,
                                max_dose_ma_min=500.0)  # fmt: skip
    p = rx(current_ma=30.0, electrode_area_cm2=1.0, ramp_up_s=0.3, ramp_down_s=0.3, dose_ma_min=100.0)
    with pytest.raises(PrescriptionRefused) as refused:
        validate(p, loose, SIM)
    by_name = {v.limit_name: v for v in refused.value.violations}
    assert set(by_name) >= {"max_density_ma_cm2", "min_ramp_s", "max_dose_ma_min"}
    assert "ionctl ceiling max_density_ma_cm2 = 0.5" in by_name["max_density_ma_cm2"].message
    assert by_name["max_density_ma_cm2"].limit_value == 0.5


def test_a_2400_sourcemeter_is_never_configured_above_the_current_or_voltage_ceiling() -> None:
    meter = parse_identity("KEITHLEY INSTRUMENTS INC.,MODEL 2410,4000001,C32", "TCPIP::x::SOCKET")
    assert meter.compliance_v == 1100.0  # what the instrument could drive
    validated = validate(rx(), SiteLimits.load(None), meter)
    assert device_limits(validated).max_voltage_v == 60.0


def test_100_ma_on_the_sourcemeter_path_is_refused_before_any_current() -> None:
    loose = dataclasses.replace(SiteLimits.load(None), max_current_ma=100.0, max_dose_ma_min=80.0)
    p = rx(current_ma=100.0, electrode_area_cm2=250.0, dose_ma_min=60.0)
    with running_sim("--scpi-port", "0", "--time-scale", "50") as sim:
        with open_device("visa:" + sim.endpoints["scpi"], sample_interval_s=0.005) as meter:
            assert meter.identity.hw_max_current_ma > 100.0  # a 2400: 105 mA, so the hardware alone allows it
            result = Session(meter, p, loose, accept_no_watchdog=True).run()
    assert result.outcome == "refused" and not result.energised and result.peak_current_ma == 0.0
    assert "ionctl ceiling max_current_ma = 50" in result.message


# -- presets against the drug table ----------------------------------------------------------------------------------


@pytest.mark.parametrize("preset, old, new, key", [
    ("lidocaine", 'drug = "lidocaine"\npolarity = "anode"', 'drug = "lidocaine"\npolarity = "cathode"', "polarity"),
    ("dexamethasone", 'polarity = "cathode"\ncurrent_ma = 4.0\ndose_ma_min = 40.0\nsource = "40',
     'polarity = "anode"\ncurrent_ma = 4.0\ndose_ma_min = 40.0\nsource = "40', "polarity"),
    ("tap-water-hands", "current_ma = 15.0", "current_ma = 60.0", "current_ma"),
])  # fmt: skip
def test_a_preset_against_its_drug_or_beyond_a_ceiling_is_refused_naming_the_preset(
    preset: str, old: str, new: str, key: str
) -> None:
    text = initial_text()
    assert old in text
    with pytest.raises(ConfigError) as refused:
        parse_config(text.replace(old, new, 1), source="site.toml")
    assert refused.value.key == f"presets.{preset}.{key}"


def test_config_set_cannot_point_the_lidocaine_preset_at_the_cathode(tmp_path: Path) -> None:
    clinic = make_clinic(tmp_path)
    path = clinic.config
    before = path.read_text(encoding="utf-8")
    with Store(clinic.store) as store:
        approved = approved_sha256(store)
        with pytest.raises(ConfigError, match="preset 'lidocaine' delivers lidocaine from the cathode"):
            set_value(clinic.people(store), clinic.login(store, SUPERVISOR), path, "presets.lidocaine.polarity",
                      '"cathode"')  # fmt: skip
        assert approved_sha256(store) == approved
    assert path.read_text(encoding="utf-8") == before


def test_config_set_refuses_500_ma_before_writing_anything(tmp_path: Path) -> None:
    clinic = make_clinic(tmp_path)  # a site file like `ionctl config init`'s, approved by the supervisor
    db, path = str(clinic.store), clinic.config
    before = path.read_text(encoding="utf-8")
    done = ionctl("config", "set", "limits.max_current_ma", "500", "--config", str(path), "--db", db, "--as",
                  SUPERVISOR, "--password-stdin", "--yes", input_=clinic.stdin(SUPERVISOR))  # fmt: skip
    assert done.returncode == 2
    assert "limits.max_current_ma: 500 is above the ionctl ceiling max_current_ma = 50" in done.stderr
    assert "IEC 60601-2-10" in done.stderr
    assert path.read_text(encoding="utf-8") == before
    audit = ionctl("config", "audit", "--db", db).stdout
    assert "config-set" not in audit

"""One validation, every reason: a prescription's own inconsistencies (ramps that do not fit its dose or
duration) are listed with the site limits, the ceilings and the drug, and `ionctl run` and the console show
the very same list (both call `ionctl.safety.violations`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ionctl.config import load_config
from ionctl.console.controller import violations_of
from ionctl.drivers.base import Polarity
from ionctl.safety import Prescription, PrescriptionRefused, SiteLimits, validate
from tests.sim.endpoints import ROOT
from tests.test_run import TESS, in_clinic

CONFIG = load_config(None)


def run_refused(tmp_path: Path, *args: str) -> dict[str, Any]:
    """`ionctl run ARGS --json` on a port that is not there, in a clinic (its site file has the packaged limits
    and presets) as its technician: the refusal comes before the device."""
    done = subprocess.run([sys.executable, "-m", "ionctl", "run",
                           "--site", "left forearm", "--device", str(tmp_path / "no-such-port"),
                           *in_clinic(tmp_path), "--patient", "P-1", "--yes", "--json", *args], cwd=ROOT, input=TESS,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["outcome"] == "refused" and not result["energised"]
    return result


def test_500_ma_and_40_ma_min_lists_current_density_and_the_ramps_at_once(tmp_path: Path) -> None:
    result = run_refused(tmp_path, "--drug", "dexamethasone", "--polarity", "cathode", "--electrode-area", "10",
                         "--current", "500", "--dose", "40")  # fmt: skip
    names = [v["limit_name"] for v in result["violations"]]
    assert {"max_current_ma", "max_density_ma_cm2", "ramps"} <= set(names), names
    ramps = next(v for v in result["violations"] if v["limit_name"] == "ramps")
    assert "shorten the ramps" in ramps["message"] and ramps["prescribed_value"] == 40.0


def test_ramps_longer_than_the_duration_are_a_violation_listed_with_the_others() -> None:
    p = Prescription(drug="dexamethasone", polarity=Polarity.ANODE, electrode_area_cm2=10.0, current_ma=4.0,
                     duration_min=0.5, patient_id="P", operator_id="O")  # fmt: skip
    with pytest.raises(PrescriptionRefused) as refused:
        validate(p, SiteLimits.load(None))
    assert set(refused.value.limit_names) == {"ramps", "drug_charge"}
    assert "shorter than its ramps (60 s)" in str(refused.value)


#: (preset, the console's form values = the CLI's options): each breaks something.
BAD = [
    ("dexamethasone", {"current_ma": 500.0, "dose_ma_min": 40.0, "electrode_area_cm2": 10.0}),
    ("dexamethasone", {"current_ma": 6.0, "electrode_area_cm2": 10.0}),
    ("dexamethasone", {"duration_min": 0.5, "electrode_area_cm2": 10.0}),
    ("lidocaine", {"ramp_up_s": 2.0, "ramp_down_s": 90.0, "electrode_area_cm2": 20.0}),
    ("tap-water-hands", {"current_ma": 40.0, "duration_min": 45.0}),
    ("asc-exosome-hand-eczema", {"electrode_area_cm2": 400.0, "dose_ma_min": 100.0}),
]
OPTION = {"current_ma": "--current", "dose_ma_min": "--dose", "duration_min": "--duration",
          "electrode_area_cm2": "--electrode-area", "ramp_up_s": "--ramp-up", "ramp_down_s": "--ramp-down"}  # fmt: skip


@pytest.mark.parametrize("preset, values", BAD, ids=[f"{p}-{'-'.join(v)}" for p, v in BAD])
def test_the_cli_and_the_console_refuse_with_the_same_list(
    tmp_path: Path, preset: str, values: dict[str, float]
) -> None:
    options = [text for key, value in values.items() for text in (OPTION[key], f"{value:g}")]
    cli = [v["message"] for v in run_refused(tmp_path, "--preset", preset, *options)["violations"]]
    # What the console's prescription screen does with the same numbers typed into its form.
    rx = CONFIG.preset(preset).prescription(patient_id="P-1", operator_id="O-1", **values)
    console = [v.message for v in violations_of(rx, CONFIG.limits, CONFIG.drugs)]
    assert cli and cli == console

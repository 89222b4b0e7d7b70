"""Session figure: `dose_error_pct`.

Random prescriptions within the packaged limits (0.5–4 mA, density ≤ 0.5 mA/cm², 5–40 mA·min, ramps 5–60 s,
≤ 30 min; drug electrodes on the normal skin load, tap-water trays, some with a midpoint polarity reversal, on
theirs) each run to completion through `Session` and the in-process simulator on a synthetic clock
(`ionctl.drivers.simulated`: the shipped `sim:` driver, frames through the real codec, no I/O). The error is the dose
that really flowed, from the simulator's ground truth, against the prescription: max and mean of
|true - prescribed| / prescribed over 200 prescriptions (20 with --quick). Target: max <= 1 %.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from typing import Any

from ionctl.core.session import Session
from ionctl.drivers.base import Polarity
from ionctl.drivers.simulated import SimulatedSource
from ionctl.safety import Prescription, SiteLimits
from ionctl.safety.prescription import DRUG_ELECTRODE, TAP_WATER
from sim.device import SimulatedDevice
from sim.plant import LOAD_PRESETS, LoadParams

SEED = 5
DRUGS = {Polarity.CATHODE: ("dexamethasone", "asc-exosomes"), Polarity.ANODE: ("lidocaine",)}


def random_prescription(rng: random.Random, limits: SiteLimits) -> Prescription:
    """One prescription the packaged limits accept (see the module docstring)."""
    while True:
        current = rng.randint(50, 400) / 100
        ramp_up, ramp_down = float(rng.randint(5, 60)), float(rng.randint(5, 60))
        tap_water = rng.random() < 0.25
        reversal = tap_water and rng.random() < 0.5
        pairs = 2 if reversal else 1
        ramp_dose = current * pairs * (ramp_up + ramp_down) / 2 / 60
        longest = current * (limits.max_duration_min - pairs * (ramp_up + ramp_down) / 2 / 60) * 0.99
        low, high = max(5.0, ramp_dose * 1.05), min(40.0, longest)
        if low <= high:
            break
    polarity = rng.choice(list(Polarity))
    return Prescription(
        drug="tap-water" if tap_water else rng.choice(DRUGS[polarity]), polarity=polarity,
        electrode_area_cm2=math.ceil(current / limits.max_density_ma_cm2 * 10) / 10 * rng.choice([1.0, 1.5, 3.0]),
        current_ma=current, dose_ma_min=round(rng.uniform(low, high), 2), ramp_up_s=ramp_up, ramp_down_s=ramp_down,
        patient_id="P-bench", operator_id="O-bench", protocol_class=TAP_WATER if tap_water else DRUG_ELECTRODE,
        polarity_reversal_at_midpoint=reversal,
    )  # fmt: skip


class TrueDose:
    """A `SimulatedDevice` trace sink: the charge that really flowed (the simulator's ground truth)."""

    def __init__(self) -> None:
        self.dose_uas = 0.0

    def __call__(self, row: dict[str, object]) -> None:
        self.dose_uas = float(row["dose_uas"])  # type: ignore[arg-type]

    @property
    def dose_ma_min(self) -> float:
        return self.dose_uas / 60_000


def simulated(load: LoadParams, seed: int) -> tuple[SimulatedSource, TrueDose]:
    truth = TrueDose()
    return SimulatedSource(SimulatedDevice(load, seed=seed, trace=truth)), truth


def session_errors(n: int, seed: int = SEED) -> tuple[list[float], list[float], list[str]]:
    """(|true - prescribed| / prescribed %, |host - true| / true %, outcomes) for `n` random prescriptions."""
    rng, limits = random.Random(seed), SiteLimits.load(None)
    dose_errors, host_errors, outcomes = [], [], []
    for i in range(n):
        p = random_prescription(rng, limits)
        load = LOAD_PRESETS["tap-water-hands" if p.protocol_class == TAP_WATER else "normal"]
        source, truth = simulated(load, seed * 1000 + i)
        result = Session(source, p, limits).run()
        outcomes.append(result.outcome)
        dose_errors.append(abs(truth.dose_ma_min - p.planned_dose_ma_min) / p.planned_dose_ma_min * 100)
        host_errors.append(abs(result.dose_ma_min - truth.dose_ma_min) / truth.dose_ma_min * 100)
    return dose_errors, host_errors, outcomes


def dose_error_pct(quick: bool) -> list[dict[str, Any]]:
    n = 20 if quick else 200
    t0 = time.perf_counter()
    dose_errors, host_errors, outcomes = session_errors(n)
    wall = time.perf_counter() - t0
    worst = max(dose_errors)
    not_completed = [o for o in outcomes if o != "completed"]
    return [
        {
            "name": "dose_error_pct",
            "value": round(worst, 4),
            "mean": round(statistics.fmean(dose_errors), 4),
            "unit": f"% max |true dose - prescribed| / prescribed over {n} random prescriptions (true dose from the "
            "simulator's ground truth; Session + in-process simulator, synthetic clock)",
            "host_vs_true_max_pct": round(max(host_errors), 4),
            "not_completed": len(not_completed),
            "wall_s": round(wall, 2),
            "target": "<= 1.0",
            "meets_target": worst <= 1.0 and not not_completed,
        }
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    return dose_error_pct(quick)

"""`fault_reaction_ms`: from an injected open circuit or over-current to zero output current, over the pty.

Each sample is one whole session (`Session` + `FirmwareDevice`) against the simulator process at 50x,
with the fault injected during the hold at a random device time. The reaction is read from the
simulator's ground-truth trace, on the device clock: from the fault's start to the first step with no
current. The over-current is a current sensor reading 30 % high (`sensor-drift=30`): the device sees more
current than it may deliver. The baseline is the telemetry period measured in the same runs (median
spacing of the host's samples, device time): a reaction within one or two periods means the fault was
handled at the first sample that could show it.

The open circuit's figure is the time to zero current, which a lifted electrode brings at once (the plant
loses its path in the same step); the device's detection of it (OPEN_CIRCUIT within its 100 ms window, the
relay opened) is shown by `tests/sim/test_firmware.py`, not timed here. The over-current figure is a real
detection and cut.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import tempfile
from pathlib import Path
from typing import Any

from ionctl.core.session import Session
from ionctl.drivers import Polarity, Telemetry, open_device
from ionctl.safety import Prescription, SiteLimits
from sim.process import running_sim

KINDS = {"open_circuit": "electrode-lift", "overcurrent": "sensor-drift=30"}
PRESCRIPTION = Prescription(drug="dexamethasone", polarity=Polarity.CATHODE, electrode_area_cm2=10.0,
                            current_ma=4.0, dose_ma_min=10.0, patient_id="BENCH", operator_id="BENCH")  # fmt: skip


def _one(kind: str, at_s: float, tmp: Path) -> tuple[float, float, str | None]:
    """(reaction ms, median telemetry period ms, fault code) for one session."""
    link, trace = tmp / "dev", tmp / "trace.jsonl"
    times: list[float] = []

    def sample(_: Session, s: Telemetry) -> None:
        times.append(s.t_s)

    args = ["--serial-link", str(link), "--time-scale", "50", "--rp", "5000", "--trace", str(trace),
            "--fault", f"{KINDS[kind]}@{at_s:.2f}"]  # fmt: skip
    with running_sim(*args):
        with open_device(str(link)) as device:
            result = Session(device, PRESCRIPTION, SiteLimits.load(None), on_sample=sample).run()
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    energised = next(r["t_s"] for r in rows if r["state"] == "RAMP_UP")
    fault_t = energised + at_s
    zero_t = next(r["t_s"] for r in rows if r["t_s"] >= fault_t and r["current_ua"] == 0)
    period = statistics.median(b - a for a, b in zip(times, times[1:], strict=False))
    return (zero_t - fault_t) * 1000, period * 1000, result.fault


def run(quick: bool = False) -> list[dict[str, Any]]:
    per_kind = 2 if quick else 10
    rng = random.Random(7)
    figures: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in KINDS:
            reactions, periods = [], []
            for _ in range(per_kind):
                reaction, period, fault = _one(kind, rng.uniform(35.0, 90.0), Path(tmp))
                if fault is None:
                    raise RuntimeError(f"{kind}: the session ended without a fault")
                reactions.append(reaction)
                periods.append(period)
            reactions.sort()
            p50, p99 = statistics.median(reactions), reactions[math.ceil(0.99 * len(reactions)) - 1]
            period = statistics.median(periods)
            figures.append({
                "name": f"fault_reaction_ms_{kind}",
                "value": round(p50, 1),
                "p99": round(p99, 1),
                "unit": f"device ms from injected {kind.replace('_', ' ')} to zero current (trace), p50 of {per_kind}",
                "baseline": round(period, 1),
                "baseline_name": "telemetry period, device ms (median sample spacing, same runs)",
                "ratio": round(p50 / period, 2),
            })  # fmt: skip
    return figures

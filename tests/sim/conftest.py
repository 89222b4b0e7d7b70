"""Shared set-up for simulator tests: a device on a synthetic clock, and a standard configuration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from firmware_protocol import Ack, Arm, Configure, Polarity, Result, SetPolarity
from sim.device import FaultSpec, SimulatedDevice
from sim.firmware import DeviceSpec
from sim.harness import Harness
from sim.plant import LOAD_PRESETS

# Limits shaped like a dexamethasone session (4 mA, 40 mA·min): generous enough not to trip by accident.
LIMITS: dict[str, int] = dict(
    max_current_ua=5000, max_slew_ua_per_s=1000, max_dose_uas=80 * 60_000, max_voltage_mv=60_000,
    max_duration_ms=3_600_000, min_impedance_ohm=500, max_impedance_ohm=100_000, area_mm2=1000,
    watchdog_ms=1000, compliance_timeout_ms=0,
)  # fmt: skip

MakeHarness = Callable[..., Harness]


@pytest.fixture
def make() -> MakeHarness:
    def build(*, load: str = "normal", faults: tuple[str, ...] = (), time_scale: float = 1.0, seed: int = 0,
              spec: DeviceSpec | None = None, trace: list[dict[str, Any]] | None = None,
              heartbeat_s: float | None = 0.25) -> Harness:  # fmt: skip
        device = SimulatedDevice(
            LOAD_PRESETS[load], spec=spec, faults=[FaultSpec.parse(f) for f in faults], seed=seed,
            time_scale=time_scale, trace=trace.append if trace is not None else None,
        )  # fmt: skip
        return Harness(device, heartbeat_s=heartbeat_s)

    return build


def ok(response: object) -> None:
    assert isinstance(response, Ack) and response.result is Result.OK, response


def arm(h: Harness, polarity: Polarity = Polarity.CATHODE, **limits: int) -> None:
    ok(h.request(Configure(**{**LIMITS, **limits})))
    ok(h.request(SetPolarity(polarity)))
    ok(h.request(Arm()))

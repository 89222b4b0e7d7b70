"""`InProcessSource`: the session's `CurrentSource` over an in-process `SimulatedDevice`, on a synthetic clock.

It is the shipped driver (`ionctl.drivers.simulated.SimulatedSource`: the firmware protocol through the same
`HostLink` and codec as over a port, on the link time of a `sim.harness.Harness`), with two hooks for tests:
`at(t_s, fn)` runs `fn` once device time since the output was first energised (the origin of `FaultSpec` times)
reaches `t_s`, checked every time the source lets time pass; `before_read` is called at the start of every
`read_telemetry` that may wait.

`GroundTruth` watches the simulator's per-step trace: the charge that really flowed, and what the current
and polarity really did.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ionctl.drivers.base import Telemetry
from ionctl.drivers.firmware_wire import UAS_PER_MA_MIN, LinkOptions
from ionctl.drivers.simulated import SimulatedSource
from sim.device import SimulatedDevice
from sim.harness import Harness

INPROCESS_ADDRESS = "inprocess:sim"


class InProcessSource(SimulatedSource):
    """The simulated driver with test hooks (module docstring)."""

    def __init__(
        self,
        device: SimulatedDevice,
        *,
        address: str = INPROCESS_ADDRESS,
        options: LinkOptions | None = None,
        harness: Harness | None = None,
    ) -> None:
        self.before_read: Callable[[InProcessSource], None] | None = None
        self._scheduled: list[tuple[float, Callable[[], None]]] = []
        super().__init__(device, address=address, options=options, harness=harness)

    def reopen(self) -> InProcessSource:
        """A new driver on the same device and clock: the session's `reconnect` after a link loss."""
        return InProcessSource(self.device, address=self.address, options=self.options, harness=self.harness)

    def at(self, t_s: float, fn: Callable[[], None]) -> None:
        """Run `fn` once, when `since_energised_s` first reaches `t_s` (checked every telemetry period)."""
        self._scheduled.append((t_s, fn))
        self._scheduled.sort(key=lambda item: item[0])

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        self._run_due()

    def read_telemetry(self, timeout_s: float) -> list[Telemetry]:
        if self.before_read is not None and timeout_s > 0:
            self.before_read(self)
        return super().read_telemetry(timeout_s)

    def _run_due(self) -> None:
        since = self.since_energised_s
        while self._scheduled and since is not None and self._scheduled[0][0] <= since + 1e-9:
            _, fn = self._scheduled.pop(0)
            fn()


# -- ground truth ------------------------------------------------------------------------------------------

#: Below this true current (µA) the output counts as off (the firmware's monitor floor).
FLOOR_UA = 100.0


@dataclass
class GroundTruth:
    """A `SimulatedDevice` trace sink: what really flowed, step by step (10 ms of device time)."""

    device: SimulatedDevice | None = None  # set after the device is built, to read its polarity
    dose_uas: float = 0.0
    current_ua: float = 0.0
    peak_ua: float = 0.0
    steps: int = 0
    polarity: Any = None
    polarity_changes_with_current: list[tuple[float, Any, Any, float]] = field(default_factory=list)
    over_ua: float = math.inf  # a current above this counts as overcurrent (set by the test)
    over_since_s: float | None = None
    longest_over_s: float = 0.0
    t_s: float = 0.0
    keep: list[dict[str, object]] | None = None  # set to a list to keep every row (short sessions only)

    def __call__(self, row: dict[str, object]) -> None:
        t_s = float(row["t_s"])  # type: ignore[arg-type]
        current = float(row["current_ua"])  # type: ignore[arg-type]
        self.t_s, self.steps = t_s, self.steps + 1
        self.dose_uas = float(row["dose_uas"])  # type: ignore[arg-type]
        previous_current, self.current_ua = self.current_ua, current
        self.peak_ua = max(self.peak_ua, current)
        if self.keep is not None:
            self.keep.append(row)
        if self.device is not None:
            polarity = self.device.firmware.polarity
            # NONE is no polarity (a reboot forgets it as the relay opens), not a change of direction.
            if polarity != self.polarity and self.polarity and polarity:
                if max(current, previous_current) >= FLOOR_UA:
                    self.polarity_changes_with_current.append((t_s, self.polarity, polarity, current))
            self.polarity = polarity
        if current > self.over_ua:
            if self.over_since_s is None:
                self.over_since_s = t_s
            self.longest_over_s = max(self.longest_over_s, t_s - self.over_since_s)
        else:
            self.over_since_s = None

    @property
    def dose_ma_min(self) -> float:
        return self.dose_uas / UAS_PER_MA_MIN


def simulated(load: Any, *, faults: Any = (), seed: int = 0, spec: Any = None) -> tuple[InProcessSource, GroundTruth]:
    """A fresh device with `load` (a `LoadParams`), faults and seed, its ground truth, and a source on it."""
    truth = GroundTruth()
    device = SimulatedDevice(load, faults=list(faults), seed=seed, spec=spec, trace=truth)
    truth.device = device
    return InProcessSource(device), truth

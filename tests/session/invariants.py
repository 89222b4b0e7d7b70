"""The session's invariants (issue 5), and a scenario runner: one session on an in-process simulated device,
with operator actions at chosen device times, checked sample by sample and against the ground truth.

Used by the stateful test, the unit tests and the reproductions of any failure they find.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ionctl.core.monitors import FLOOR_MA
from ionctl.core.session import OUTCOMES, TELEMETRY_PERIOD_S, TERMINAL, Session, SessionResult
from ionctl.drivers.base import Telemetry
from ionctl.safety import Prescription, SiteLimits
from sim.device import FaultSpec
from sim.plant import LOAD_PRESETS, LoadParams
from tests.session.inprocess import FLOOR_UA, GroundTruth, InProcessSource, simulated

LIMITS = SiteLimits.load(None)

#: Faults under which an invariant cannot hold, and why. Keys: the invariant; values: fault kinds.
EXEMPT: dict[str, dict[str, str]] = {
    "dose_not_past": {
        "sensor-drift": "a sensor reading low by less than the device's 5 % mismatch window is invisible to "
        "host and device alike (the coulomb counter reads the same sensor): the true dose overshoots by the drift",
        "stuck-output=welded": "a welded relay cannot be opened: current flows until the electrodes come off",
    },
    "host_dose_true": {
        "sensor-drift": "the host integrates the drifting sensor; the device's counter reads the same sensor",
        "stuck-output=welded": "current still flows after the session ends (alarm): no dose is final",
    },
    "polarity_at_zero": {
        "polarity-flip": "the injected fault is the device swapping its polarity with current flowing; the host can "
        "only ramp to zero once it reads it",
    },
    "output_zero": {
        "stuck-output=welded": "nothing can stop a welded output: the alarm must be raised instead",
    },
}


# -- the invariants ---------------------------------------------------------------------------------------


@dataclass
class Watch:
    """Per-sample invariants (called from the session thread; violations are collected, not raised)."""

    over_ma: float
    violations: list[str] = field(default_factory=list)
    over_since_s: float | None = None
    previous: Telemetry | None = None
    seen: list[Telemetry] = field(default_factory=list)  # every sample the session saw, oldest first

    def __call__(self, session: Session, s: Telemetry) -> None:
        self.seen.append(s)
        previous, self.previous = self.previous, s
        if previous is not None and s.t_s < previous.t_s:  # the device clock restarted (reboot): nothing spans it
            self.over_since_s = None
            return
        if s.output_on and s.measured_ma > self.over_ma:
            if self.over_since_s is None:
                self.over_since_s = s.t_s
            elif s.t_s - self.over_since_s > TELEMETRY_PERIOD_S + 1e-6 and session.state not in TERMINAL:
                self.violations.append(
                    f"measured {s.measured_ma:.3f} mA above {self.over_ma:.3f} mA since t={self.over_since_s:.2f} s, "
                    f"still {session.state!r} at t={s.t_s:.2f} s (more than one telemetry period)"
                )
        else:
            self.over_since_s = None
        if previous is not None and previous.polarity != s.polarity and previous.polarity and s.polarity:
            if max(previous.measured_ma, s.measured_ma) >= FLOOR_MA:
                self.violations.append(
                    f"polarity {previous.polarity.value} -> {s.polarity.value} between t={previous.t_s:.2f} and "
                    f"t={s.t_s:.2f} s with {max(previous.measured_ma, s.measured_ma):.3f} mA flowing"
                )


def exempt(invariant: str, faults: list[str]) -> str | None:
    """The reason `invariant` need not hold under one of `faults`, or None."""
    for fault in faults:
        head = fault.partition("@")[0]
        for kind, why in EXEMPT.get(invariant, {}).items():
            if head == kind or (head.partition("=")[0] == kind and "=" not in kind):
                return f"{head}: {why}"
    return None


def check_outcome(
    session: Session, r: SessionResult, truth: GroundTruth, source: InProcessSource, faults: list[str], watch: Watch
) -> None:
    """Invariants 2, 3 and 5 once `run()` has returned."""
    p = session.prescription
    context = f"{r.outcome} ({r.fault}: {r.message}); faults {faults}"
    if exempt("polarity_at_zero", faults) is None:
        assert watch.violations == [], watch.violations[0]
    else:
        assert all(v.startswith("polarity") for v in watch.violations), watch.violations
    assert r.outcome in OUTCOMES.values(), context
    assert session.state in TERMINAL, context
    if not r.energised:
        assert truth.dose_ma_min < 0.01, f"{context}: not energised, yet {truth.dose_ma_min:.4f} mA·min flowed"
        return
    assert r.outcome != "refused", context
    # 2. output zero in every terminal state, or the alarm
    if not r.alarm and exempt("output_zero", faults) is None:
        lost = r.fault == "host_lost" and r.dose_source == "host"  # the link never came back: nothing to read
        last = session.last
        if not lost and last is not None:
            assert last.measured_ma < FLOOR_MA and (last.set_ma == 0 or not last.output_on), f"{context}: {last}"
            assert truth.current_ua < FLOOR_UA, f"{context}: {truth.current_ua:.0f} µA flows at the end"
    source.go_silent(LIMITS.watchdog_s + LIMITS.min_ramp_s + 1.0)
    if exempt("output_zero", faults) is None:
        assert truth.current_ua < FLOOR_UA, f"{context}: {truth.current_ua:.0f} µA flows with the host silent"
    # 3. the true dose never past the prescription by more than 1 %
    if exempt("dose_not_past", faults) is None:
        assert truth.dose_ma_min <= p.planned_dose_ma_min * 1.01, (
            f"{context}: true dose {truth.dose_ma_min:.4f} mA·min past the prescribed {p.planned_dose_ma_min:.2f}"
        )
    # 5. a settled dose, within 1 % of what really flowed; for a session cut short, 1 % of the prescription
    # (the sensor's noise floor, rectified, adds ~1 µA while paused or at zero: 0.06 mA·min an hour)
    assert math.isfinite(r.dose_ma_min), context
    if exempt("host_dose_true", faults) is None:
        allowed = 0.01 * max(truth.dose_ma_min, p.planned_dose_ma_min)
        assert abs(r.dose_ma_min - truth.dose_ma_min) <= allowed, (
            f"{context}: settled dose {r.dose_ma_min:.4f} ({r.dose_source}) vs true {truth.dose_ma_min:.4f} mA·min"
        )
    if r.outcome == "completed" and exempt("dose_not_past", faults) is None:
        assert abs(truth.dose_ma_min - p.planned_dose_ma_min) <= 0.01 * p.planned_dose_ma_min, context


@dataclass
class Run:
    """One finished scenario: what the host saw and what really happened."""

    session: Session
    result: SessionResult
    source: InProcessSource
    truth: GroundTruth
    watch: Watch
    faults: list[str]


def run_scenario(
    prescription: Prescription,
    *,
    faults: list[str] | tuple[str, ...] = (),
    actions: list[tuple[float, str]] | tuple[tuple[float, str], ...] = (),
    load: LoadParams | None = None,
    seed: int = 0,
    limits: SiteLimits = LIMITS,
    keep_trace: bool = False,
    **session_options: object,
) -> Run:
    """Run one session to its end. `actions`: (device seconds since the output was first energised, operator
    request); `faults`: `KIND[=VALUE]@T[:D]` as the simulator's `--fault`; `keep_trace`: keep every trace row
    (`truth.keep`)."""
    load = load or LOAD_PRESETS["tap-water-hands" if prescription.protocol_class == "tap-water" else "normal"]
    source, truth = simulated(load, faults=[FaultSpec.parse(f) for f in faults], seed=seed)
    session = Session(source, prescription, limits, reconnect=source.reopen, **session_options)  # type: ignore[arg-type]
    watch = Watch(over_ma=session.monitors.overcurrent_ma)
    session.on_sample = watch
    truth.keep = [] if keep_trace else None
    truth.over_ua = session.monitors.overcurrent_ma * 1000
    for t_s, action in actions:
        source.at(t_s, lambda action=action: session.request(action))  # type: ignore[misc]
    result = session.run()
    return Run(session, result, source, truth, watch, list(faults))

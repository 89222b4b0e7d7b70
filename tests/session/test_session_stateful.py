"""The session under random prescriptions, operator actions and simulator faults (issue 5, "a hypothesis
stateful test of the session against the in-process simulator").

Theory of operation
-------------------
`Session.run()` is one blocking loop, so the machine runs it on a thread of its own and hands the synthetic
clock back and forth (`Stepper`): the session runs only while the test has granted it device time and parks
at its next `read_telemetry` once the grant is used up; one side runs at a time, so every example is
deterministic and hypothesis can shrink it. Rules grant time (`wait`) or make an operator request at the
present device time (`operator`), exactly as a signal handler or a console would, from another thread. The
prescription, the load and the scheduled simulator faults are drawn at `initialize`.

Invariants, checked on every sample the session sees (`on_sample`) and on the simulator's ground truth (every
10 ms step of the plant, `GroundTruth`):

1. the true current is never above the prescription + the overcurrent tolerance for longer than one telemetry
   period; a *measured* current above it for longer than one period has put the session in a terminal state;
2. every terminal state has the output at zero (last sample and true current), or `result.alarm` raised; and
   once the host falls silent the device's own watchdog leaves no current flowing;
3. the true dose never passes the prescription by more than 1 %;
4. polarity never changes with current flowing (samples and the device's own polarity under true current);
5. every energised session ends in an outcome, with a settled dose within 1 % of the true dose.

Where a fault makes an invariant impossible, `tests.session.invariants.EXEMPT` says which and why; everything
else must hold.
"""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ionctl.core.session import ENERGISED, TELEMETRY_PERIOD_S, Session, SessionResult
from ionctl.drivers.base import Polarity
from ionctl.safety import Prescription
from ionctl.safety.prescription import DRUG_ELECTRODE, TAP_WATER
from sim.device import FaultSpec
from sim.plant import LOAD_PRESETS
from tests.session.inprocess import InProcessSource, simulated
from tests.session.invariants import LIMITS, Watch, check_outcome

#: Real seconds the test waits for the session thread to park before calling it hung.
HANDOFF_TIMEOUT_S = 120.0

# -- strategies ----------------------------------------------------------------------------------------------

DRUGS = {Polarity.CATHODE: ("dexamethasone", "asc-exosomes"), Polarity.ANODE: ("lidocaine",)}


@st.composite
def prescriptions(draw: st.DrawFn) -> Prescription:
    """Within the packaged limits: 0.5–4 mA, density ≤ 0.5 mA/cm², 5–40 mA·min, ramps 5–60 s, ≤ 30 min."""
    current = draw(st.integers(50, 400)) / 100
    area = math.ceil(current / 0.5 * 10) / 10 * draw(st.sampled_from([1.0, 1.0, 1.5, 3.0]))
    ramp_up = float(draw(st.integers(5, 60)))
    ramp_down = float(draw(st.integers(5, 60)))
    tap_water = draw(st.booleans())
    reversal = tap_water and draw(st.booleans())
    polarity = draw(st.sampled_from(Polarity))
    pairs = 2 if reversal else 1
    ramp_dose = current * pairs * (ramp_up + ramp_down) / 2 / 60
    longest = current * (LIMITS.max_duration_min - pairs * (ramp_up + ramp_down) / 2 / 60) * 0.99
    low, high = max(5.0, ramp_dose * 1.05), min(40.0, longest)
    if low > high:
        return draw(prescriptions())
    # Mostly short sessions (a 30-minute one costs seconds); the long tail still reaches the limits.
    u = draw(st.floats(0, 1))
    dose = round(low + (high - low) * u**3, 2)
    drug = "tap-water" if tap_water else draw(st.sampled_from(DRUGS[polarity]))
    return Prescription(
        drug=drug, polarity=polarity, electrode_area_cm2=area, current_ma=current, dose_ma_min=max(dose, low),
        ramp_up_s=ramp_up, ramp_down_s=ramp_down, patient_id="P-stateful", operator_id="O-stateful",
        protocol_class=TAP_WATER if tap_water else DRUG_ELECTRODE, polarity_reversal_at_midpoint=reversal,
    )  # fmt: skip


FAULT_VALUES: dict[str, st.SearchStrategy[str]] = {
    "electrode-lift": st.just("electrode-lift"),
    "short": st.integers(10, 2000).map(lambda ohm: f"short={ohm}"),
    "impedance-step": st.sampled_from([2_000, 20_000, 60_000, 150_000]).map(lambda ohm: f"impedance-step={ohm}"),
    "sensor-drift": st.sampled_from([-40, -8, -3, 3, 8, 25, 40]).map(lambda pct: f"sensor-drift={pct}"),
    "stuck-output": st.sampled_from(["stuck-output", "stuck-output=welded"]),
    "reboot": st.just("reboot"),
    "corrupt": st.sampled_from([0.0005, 0.003, 0.01]).map(lambda rate: f"corrupt={rate}"),
}


@st.composite
def fault_plans(draw: st.DrawFn, planned_s: float) -> list[str]:
    """0–2 faults at random device times within the planned session, some ending after a while."""
    plan = []
    for _ in range(draw(st.integers(0, 2))):
        head = draw(st.sampled_from(sorted(FAULT_VALUES)).flatmap(lambda kind: FAULT_VALUES[kind]))
        at_s = round(draw(st.floats(0, planned_s)), 1)
        ends = head != "reboot" and draw(st.booleans())
        plan.append(f"{head}@{at_s}" + (f":{draw(st.integers(1, 60))}" if ends else ""))
    return plan


# -- the clock hand-off --------------------------------------------------------------------------------------


class Stepper:
    """Runs `session.run()` on a thread that may only use the device time the test grants it."""

    def __init__(self, session: Session, source: InProcessSource) -> None:
        self.session, self.source = session, source
        self.cond = threading.Condition()
        self.until_s = 0.0
        self.parked = False
        self.done = False
        self.result: SessionResult | None = None
        self.error: BaseException | None = None
        source.before_read = self._gate
        self.thread = threading.Thread(target=self._run, name="session under test", daemon=True)
        self.thread.start()
        self._wait_parked()

    def _run(self) -> None:
        try:
            self.result = self.session.run()
        except BaseException as exc:  # handed to the test thread
            self.error = exc
        finally:
            with self.cond:
                self.done = True
                self.cond.notify_all()

    def _gate(self, source: InProcessSource) -> None:
        with self.cond:
            while source.now_s >= self.until_s - 1e-9:
                self.parked = True
                self.cond.notify_all()
                self.cond.wait()
            self.parked = False

    def _wait_parked(self) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.parked or self.done, HANDOFF_TIMEOUT_S):
                raise TimeoutError("the session thread neither parked nor ended")
        if self.error is not None:
            raise self.error

    def run_for(self, seconds: float) -> None:
        with self.cond:
            self.until_s = self.source.now_s + seconds
            self.parked = False
            self.cond.notify_all()
        self._wait_parked()

    def finish(self) -> SessionResult:
        self.run_for(math.inf)
        self.thread.join(HANDOFF_TIMEOUT_S)
        assert self.result is not None
        return self.result


class SessionMachine(RuleBasedStateMachine):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.stepper: Stepper | None = None

    @initialize(
        data=st.data(),
        prescription=prescriptions(),
        seed=st.integers(0, 2**16),
    )
    def start(self, data: st.DataObject, prescription: Prescription, seed: int) -> None:
        self.prescription = p = prescription
        self.faults = data.draw(fault_plans(p.planned_duration_s), label="faults")
        load = LOAD_PRESETS["tap-water-hands" if p.protocol_class == TAP_WATER else "normal"]
        self.source, self.truth = simulated(load, faults=[FaultSpec.parse(f) for f in self.faults], seed=seed)
        self.session = Session(self.source, p, LIMITS, reconnect=self.source.reopen, on_sample=None)
        self.watch = Watch(over_ma=self.session.monitors.overcurrent_ma)
        self.session.on_sample = self.watch
        self.truth.over_ua = self.session.monitors.overcurrent_ma * 1000
        self.requests: list[tuple[float, str]] = []
        self.stepper = Stepper(self.session, self.source)

    @property
    def running(self) -> bool:
        return self.stepper is not None and not self.stepper.done

    @rule(seconds=st.one_of(st.floats(0.1, 5.0), st.floats(5.0, 300.0)))
    def wait(self, seconds: float) -> None:
        if self.running:
            assert self.stepper is not None
            self.stepper.run_for(seconds)

    @precondition(lambda self: self.running and self.session.state in ENERGISED)
    @rule(action=st.sampled_from(["pause", "resume", "resume", "stop", "abort"]))
    def operator(self, action: str) -> None:
        self.requests.append((round(self.source.now_s, 2), action))
        self.session.request(action)

    @invariant()
    def every_sample_so_far_keeps_the_invariants(self) -> None:
        if self.stepper is not None:
            assert not self.watch.violations, self.watch.violations[0]

    @invariant()
    def true_current_is_never_over_for_longer_than_one_period(self) -> None:
        if self.stepper is not None:
            assert self.truth.longest_over_s <= TELEMETRY_PERIOD_S + 1e-6, (
                f"true current above {self.truth.over_ua:.0f} µA for {self.truth.longest_over_s:.2f} s"
            )

    @invariant()
    def polarity_never_changes_with_true_current_flowing(self) -> None:
        if self.stepper is not None:
            assert not self.truth.polarity_changes_with_current, self.truth.polarity_changes_with_current[0]

    def teardown(self) -> None:
        if self.stepper is None:
            return
        result = self.stepper.finish()
        check_outcome(self.session, result, self.truth, self.source, self.faults, self.watch)


# The default run generates without shrinking (a session costs up to a second, and shrinking one failure
# can take minutes); the slow run shrinks and reports the minimal failing example.
TestSessionMachine = SessionMachine.TestCase
TestSessionMachine.settings = settings(
    derandomize=True,  # the same 50 scenarios on every run; the slow run below explores new ones
    max_examples=50,
    stateful_step_count=10,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    report_multiple_bugs=False,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.slow
def test_session_machine_over_many_examples_shrinking_failures() -> None:
    run_state_machine_as_test(
        SessionMachine,
        settings=settings(
            max_examples=150, stateful_step_count=20, deadline=None, suppress_health_check=list(HealthCheck)
        ),
    )

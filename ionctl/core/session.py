"""The treatment session: the one place that decides what happens to the current flowing into a patient.

Theory of operation
-------------------
A `Session` owns a connected `CurrentSource`, a `Prescription` and the `SiteLimits` in force. Its state
machine (`transitions`, every transition in `ionctl.core.machine.TRANSITIONS`, `auto_transitions=False`,
invalid triggers raise, a lock around triggers) moves through preparation (connect → configure → contact check
→ arm) and delivery (ramping up → delivering ⇄ paused → ramping down) to one terminal state: completed,
stopped, aborted or fault. Hardware commands run in a transition's `before` callback (`ionctl.core.steps`), so
a refused or failed command leaves the state unchanged and raises.

`run()` does it all and returns a `SessionResult`. While energised it reads telemetry and, per sample, on
the *device's* clock (`Telemetry.t_s`, docs/ARCHITECTURE.md, principle 2): integrates the measured dose (`DoseMeter`),
runs the runtime monitors (`ionctl.core.monitors`), moves on when the device reaches its target, and begins
the ramp-down when measured dose + the ramp-down's dose reaches the prescription (principle 5). Operator
requests (pause, resume, stop, abort) may come from any thread or a signal handler; they are acted on
between samples.

After a stop, an abort or a fault the session keeps watching until the current is at zero. A current
that does not fall when told (a stuck output) gets an abort, then output-off, and if current still flows,
`alarm` is set: the operator must remove the electrodes. The watch itself (`ionctl.core.supervision`) is pure;
the session gives it the device's time in each sample and the host's from its `HostClock` (the source's own,
`CurrentSource.host_clock`, unless one is given).

The session also supervises the device itself: a device that stops delivering on its own while the session
expects delivery (`device_stopped`), or reports a polarity other than the prescription's (`polarity_mismatch`),
ends the session in a fault; a delivery that ends beyond the prescription by more than the site's dose-mismatch
fraction is `dose_overshoot`, short by more than 1 % `dose_short`, never `completed`.

If the link is lost, the device's watchdog takes the output to zero on its own; with a `reconnect`
function the session reopens the device afterwards and settles the dose from its coulomb counter -- if it is
the device identified at the start (model and serial). Another device is never commanded nor counted
(`wrong_device`, the alarm).
"""

from __future__ import annotations

import collections
import datetime
import math
import statistics
import threading
from collections.abc import Callable
from typing import Any

from transitions import MachineError
from transitions.extensions import LockedMachine

from ionctl.core.dose import (
    DoseMeter,
    centred_lookahead_s,
    dose_overshoot,
    dose_shortfall,
    remaining_time_s,
    should_begin_ramp_down,
)
from ionctl.core.machine import ENERGISED, EXPECTS_DELIVERY, OUTCOMES, PREPARING, STATES, TERMINAL, TRANSITIONS, mermaid
from ionctl.core.monitors import FLOOR_MA, Action, Monitors, Verdict, device_disagreement
from ionctl.core.result import (
    SessionResult,
    StateChange,
    add_figures,
    exit_code,
    identity_dict,
    prescription_dict,
    wrong_device_message,
)
from ionctl.core.steps import PROBE_MA, PROBE_S, DeviceSteps, SessionError
from ionctl.core.supervision import (
    RAMP_STALL_S,
    STALE_TELEMETRY_S,
    FreshnessWatch,
    RampSupervisor,
)
from ionctl.core.vocabulary import Outcome, SessionFault, fault_of
from ionctl.core.vocabulary import SessionState as S
from ionctl.drivers.base import (
    CommandRefused,
    CurrentSource,
    DeviceError,
    DeviceFault,
    DeviceIdentity,
    FaultCode,
    HostClock,
    LinkLost,
    OutputState,
    Telemetry,
)
from ionctl.safety import (
    Prescription,
    PrescriptionRefused,
    SiteLimits,
    ValidatedPrescription,
)

__all__ = [  # what the front ends and the tests import from here, wherever it is defined
    "ENERGISED", "OUTCOMES", "PREPARING", "PROBE_MA", "PROBE_S", "RAMP_STALL_S", "STALE_TELEMETRY_S", "STATES",
    "TELEMETRY_PERIOD_S", "TERMINAL", "TRANSITIONS", "Session", "SessionError", "SessionResult", "StateChange",
    "exit_code", "mermaid", "prescription_dict",
]  # fmt: skip

#: Telemetry period the session expects until it has measured one (device seconds): 10 Hz, PROTOCOL.md §8.
TELEMETRY_PERIOD_S = 0.1
#: Host seconds to keep trying to reach a device whose link was lost.
RECONNECT_WINDOW_S = 30.0


Clock = Callable[[], datetime.datetime]


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Session(DeviceSteps):
    """One treatment session on one source. See the module docstring."""

    def __init__(
        self,
        device: CurrentSource,
        prescription: Prescription,
        limits: SiteLimits,
        *,
        accept_no_watchdog: bool = False,
        reconnect: Callable[[], CurrentSource] | None = None,
        on_sample: Callable[[Session, Telemetry], None] | None = None,
        on_state: Callable[[Session, StateChange], None] | None = None,
        utc_now: Clock = _utc_now,
        clock: HostClock | None = None,
        read_timeout_s: float = 0.25,
    ) -> None:
        self.device = device
        self.prescription = prescription
        self.limits = limits
        self.accept_no_watchdog = accept_no_watchdog
        self.reconnect = reconnect
        self.on_sample = on_sample
        self.on_state = on_state
        self.utc_now = utc_now
        # the host clock, for link supervision only (docs/ARCHITECTURE.md, principle 2): the source's own
        # (the real one, or an in-process simulator's synthetic clock) unless given
        self.clock: HostClock = clock if clock is not None else device.host_clock
        self.read_timeout_s = read_timeout_s
        self.validated: ValidatedPrescription | None = None
        self.meter = DoseMeter(max_gap_s=5 * TELEMETRY_PERIOD_S)
        site = limits.for_class(prescription.protocol_class)
        self.monitors = Monitors(site, prescription.current_ma, TELEMETRY_PERIOD_S)
        self.ramp = RampSupervisor(prescription.current_ma, site.current_mismatch_fraction,
                                   site.current_mismatch_floor_ma)  # fmt: skip
        self.freshness = FreshnessWatch()
        self.polarity = prescription.polarity
        self.last: Telemetry | None = None
        self.result = SessionResult(outcome=Outcome.REFUSED)
        self._requests: list[str] = []
        # re-entrant: a signal handler calling `request` runs on the main thread, maybe while it holds the lock
        self._requests_lock = threading.RLock()
        self._operator_stop = False
        self._reversed = False
        self._start_t_s: float | None = None
        self._start_sent = False  # START went out and was not refused: current may have flowed
        self._impedances: list[float] = []
        self._identity: DeviceIdentity | None = None  # who answered at connect: a reconnect must find the same
        self._device_dose_unknown = False  # the device's counter cannot be trusted (another device answered)
        self._reads = 0  # telemetry reads in delivery, to tell samples older than a (re)start from newer ones
        self._started_at_read = 0  # the read during which the last START went out
        self._spacing: collections.deque[float] = collections.deque(maxlen=21)  # recent sample spacing, device s
        self.state: str = S.DISCONNECTED.value
        self.machine = LockedMachine(
            model=self, states=STATES, transitions=TRANSITIONS, initial=S.DISCONNECTED.value, auto_transitions=False,
            ignore_invalid_triggers=False, after_state_change="_record_state", send_event=True,
        )  # fmt: skip
        self._reason = "created"
        self._record(None)

    # -- operator requests (any thread, signal handlers included) -------------------------------------------

    def request(self, action: str) -> None:
        """Ask for `pause`, `resume`, `stop` or `abort`; acted on between samples."""
        if action not in ("pause", "resume", "stop", "abort"):
            raise ValueError(f"unknown operator action {action!r}")
        with self._requests_lock:
            self._requests.append(action)

    # -- the whole session -----------------------------------------------------------------------------------

    def run(self) -> SessionResult:
        """Prepare, deliver, and settle; never raises for device trouble: it ends in an outcome."""
        try:
            if not self._prepare():
                return self._finish_result()
        except (PrescriptionRefused, SessionError, CommandRefused) as exc:
            self._end("refuse", str(exc), fault=None)
            return self._finish_result()
        except DeviceError as exc:  # a device or link error before any current flowed
            self._end("fail", str(exc), fault=fault_of(exc))
            return self._finish_result()
        try:
            self._fire("start", "prescribed start")
            self._deliver()
        except LinkLost as exc:
            self._link_lost(exc)
        except DeviceError as exc:
            self._device_error(exc)
        return self._finish_result()

    def _prepare(self) -> bool:
        """Connect, configure, check contact, arm; False if the operator cancelled before the start."""
        steps = [("connect", "identified"), ("configure", "limits and polarity set"),
                 ("check_contact", "contact within the window"), ("arm", "armed")]  # fmt: skip
        for trigger, reason in [*steps, ("", "")]:
            with self._requests_lock:
                cancelled = any(action in ("stop", "abort") for action in self._requests)
            if cancelled:
                self.result.message = "cancelled by the operator before any current flowed"
                self._fire("cancel", self.result.message)
                return False
            if trigger:
                self._fire(trigger, reason)
        return True

    def _deliver(self) -> None:
        self.freshness.reset()
        while self.state not in TERMINAL:
            self._serve_requests()
            self._reads += 1
            samples = self.device.read_telemetry(self.read_timeout_s)
            self._track_freshness(samples)
            for i, sample in enumerate(samples):
                self._on_sample(sample)
                if self.state in TERMINAL:  # the rest of the batch is still measured current: count and record it
                    for rest in samples[i + 1 :]:
                        self._observe(rest)
                    break
            if self.state not in TERMINAL and self._stale():
                self._fault(Verdict(SessionFault.STALE_TELEMETRY, Action.RAMP,
                                    f"no telemetry with a new device time for {STALE_TELEMETRY_S:.0f} s: "
                                    "the current cannot be watched"))  # fmt: skip
        self._settle()

    def _track_freshness(self, samples: list[Telemetry]) -> None:
        """Note whether a read brought a sample with a device time other than the last one seen."""
        previous = self.last.t_s if self.last is not None else None
        self.freshness.observe(previous, (s.t_s for s in samples), self.clock.monotonic())

    def _stale(self) -> bool:
        return self.freshness.stale(self.clock.monotonic())

    def time_left_s(self, s: Telemetry) -> float:
        """Device seconds left at sample `s` (for a display): `ionctl.core.dose.remaining_time_s` while delivering,
        the ramp-down's share once it began, 0 once ended, infinite before the start and while paused."""
        p = self.prescription
        if self.state in TERMINAL:
            return 0.0
        if self.state == S.RAMPING_DOWN:
            return p.ramp_down_s * min(1.0, s.set_ma / p.current_ma)
        if self.state in PREPARING or self.state == S.PAUSED:
            return math.inf
        current = s.measured_ma if s.at_compliance else p.current_ma
        return remaining_time_s(self.meter.delivered_ma_min, current, p.ramp_down_s, p.planned_dose_ma_min)

    # -- per sample ------------------------------------------------------------------------------------------

    @property
    def telemetry_period_s(self) -> float:
        """The device-time spacing of recent samples (median), which a SourceMeter sampled by the host or a
        simulator at a fast clock may stretch well beyond the 100 ms asked of a firmware device."""
        return statistics.median(self._spacing) if self._spacing else TELEMETRY_PERIOD_S

    def _on_sample(self, s: Telemetry) -> None:
        if self.last is not None and s.t_s > self.last.t_s:
            self._spacing.append(s.t_s - self.last.t_s)
        self.last = s
        self.meter.add(s)
        if s.impedance_ohm is not None and s.output_on and s.measured_ma >= FLOOR_MA:
            self._impedances.append(s.impedance_ohm)
        if self._start_t_s is None and s.output_on:
            self._start_t_s = s.t_s
        if self.on_sample is not None:
            self.on_sample(self, s)
        verdict = self.monitors.check(s, self.meter)
        if verdict is not None:
            self._fault(verdict)
            return
        if self._stuck(s):
            return
        judge_stop = self._reads > self._started_at_read  # samples read with the START are older than it
        disagreement = device_disagreement(self.state, s, self.polarity, judge_stop=judge_stop)
        if disagreement is not None:
            self._fault(disagreement)
            return
        p = self.prescription
        at_target = s.set_ma >= p.current_ma - 1e-3
        if self.state == S.RAMPING_UP and s.state is OutputState.RUNNING and not s.ramping and at_target:
            self._fire("reach_target", "at the prescribed current", s)
        if self.state in EXPECTS_DELIVERY and self._dose_due(s):
            if p.polarity_reversal_at_midpoint and not self._reversed:
                if self.state != S.PAUSED:  # paused at the midpoint: reverse once the operator resumes
                    self._fire("reverse", "midpoint: ramping to zero to reverse polarity", s)
            else:
                self._fire("dose_reached", "dose reached: ramping down", s)
        elif self.state == S.REVERSING and s.state is OutputState.DONE:
            self._fire("restart_reversed", "polarity reversed", s)
        elif self.state == S.RAMPING_DOWN and s.state is OutputState.DONE:
            m, planned = self.meter, p.planned_dose_ma_min
            short = None if self._operator_stop else dose_shortfall(m.delivered_ma_min, planned)
            over = dose_overshoot(m.delivered_ma_min, m.device_dose_ma_min, planned,
                                  self.monitors.limits.dose_mismatch_fraction)  # fmt: skip
            if short is not None:
                self._end("fail", short, fault=SessionFault.DOSE_SHORT)
            elif over is not None:
                self._end("fail", over, fault=SessionFault.DOSE_OVERSHOOT)
            else:
                self._fire("finish", "output at zero and off", s)

    def _dose_due(self, s: Telemetry) -> bool:
        p = self.prescription
        target = p.planned_dose_ma_min
        if p.polarity_reversal_at_midpoint and not self._reversed:
            target /= 2
        current = s.measured_ma if s.at_compliance else s.set_ma
        lookahead = centred_lookahead_s(self.telemetry_period_s)
        return should_begin_ramp_down(self.meter.delivered_ma_min, current, p.ramp_down_s, target, lookahead)

    def _stuck(self, s: Telemetry) -> bool:
        """A commanded ramp to zero that is overdue, or well behind its course, with current still flowing:
        escalate (output off). A ramp up that stopped rising: ramp down (a fault)."""
        ramping_up = self.state == S.RAMPING_UP
        if self.ramp.stalled(s, ramping_up=ramping_up, telemetry_period_s=self.telemetry_period_s):
            self._fault(Verdict(SessionFault.RAMP_STALLED, Action.RAMP,
                                f"the ramp up stopped rising at {s.set_ma:.2f} of {self.prescription.current_ma:.2f} "
                                "mA: the device does not follow its target"))  # fmt: skip
            return True
        host_s = self.clock.monotonic()
        if _at_zero(s) or not (self.ramp.overdue(s, host_s, stale=self._stale()) or self.ramp.lagging(s, host_s)):
            return False
        self.ramp.cancel_descent()
        self._fault(Verdict(SessionFault.STUCK_OUTPUT, Action.OFF, "the current did not fall when told (stuck output)"))
        return True

    # -- operator requests -----------------------------------------------------------------------------------

    def _serve_requests(self) -> None:
        with self._requests_lock:
            requests, self._requests = self._requests, []
        for action in requests:
            if action == "abort" and self.state in ENERGISED:
                self._fire("abort", "aborted by the operator", self.last)
            elif action == "stop" and self.state in (*EXPECTS_DELIVERY, S.REVERSING):
                self._fire("stop", "stopped by the operator", self.last)
            elif action == "pause" and self.state in (S.RAMPING_UP, S.DELIVERING):
                self._fire("pause", "paused by the operator", self.last)
            elif action == "resume" and self.state == S.PAUSED:
                self._fire("resume", "resumed by the operator", self.last)

    # -- faults ------------------------------------------------------------------------------------------

    def _fault(self, verdict: Verdict) -> None:
        """Make the current safe as the verdict says, then enter FAULT (a terminal state)."""
        try:
            if verdict.action is Action.OFF:
                self.device.output_off()
            elif verdict.action is Action.RAMP:
                self.device.abort()
        except LinkLost:
            pass  # the device's watchdog acts; _settle reports what it can
        except DeviceError:
            pass  # already in FAULT on the device: it ramps by itself
        self._expect_zero_within(self._fastest_ramp_s())
        self._end("fail", verdict.message, fault=verdict.fault)

    def _device_error(self, exc: DeviceError) -> None:
        if isinstance(exc, DeviceFault):
            verdict = Verdict(exc.fault.value, Action.FOLLOW, str(exc))
        else:
            verdict = Verdict(FaultCode.INTERNAL.value, Action.RAMP, f"device error: {exc}")
        self._fault(verdict)
        try:
            self._settle()
        except LinkLost as lost:
            self._link_lost(lost)
        except DeviceError as again:
            self.result.message += f"; the current could not be watched down to zero: {again}"

    def _link_lost(self, exc: LinkLost) -> None:
        if self.state not in TERMINAL:
            watched = self._identity is None or self._identity.watchdog
            ends = ("the device's watchdog ramps the output to zero" if watched
                    else "the source has no watchdog: closing switches its output off")  # fmt: skip
            self._end("fail", f"link lost: {exc}; {ends}", fault=SessionFault.HOST_LOST)
        self.device.close()
        if self.reconnect is None:
            return
        device = self._reconnect()
        if device is None:
            self.result.message += "; the device could not be reached again: the dose is the host's count to the loss"
            return
        if not self._same_device(device):
            return
        self.device = device
        with device:
            try:
                self._settle_reconnected()
            except DeviceError as again:
                self.result.message += f"; after reconnecting: {again}"

    def _settle_reconnected(self) -> None:
        """The device is back: if it still delivers (the new link's heartbeats feed its watchdog, so it would go
        on), abort; watch the current down to zero as after any fault; then settle the dose from its counter."""
        samples = self.device.read_telemetry(2.0)
        if not samples:
            self.result.message += "; the reconnected device sent no telemetry"
            return
        s = samples[-1]
        if s.output_on and s.state is not OutputState.FAULT:
            try:
                self.device.abort()
            except (CommandRefused, DeviceFault):
                pass  # it stopped, or latched a fault, meanwhile: it ramps by itself
        self.last = s
        self._reset_supervision()
        self._settle(integrate=False)  # the host's count stops at the loss; the device counted on
        last = self.last
        self.result.device_dose_ma_min = last.device_dose_ma_min
        if last.device_dose_ma_min is not None:
            self.result.dose_ma_min = last.device_dose_ma_min
            self.result.dose_source = "device"

    def _same_device(self, device: CurrentSource) -> bool:
        """After a reconnect: is it the device identified at the start (same model and serial)? If not (the port
        re-enumerated onto another device, another patient's maybe), it is closed without a command, the dose is
        the host's count to the loss, the device dose unknown, and the alarm raised: nobody has seen the original
        device's output since the loss."""
        first = self._identity
        try:
            now = device.identity
        except DeviceError:
            now = None
        if first is None or (now is not None and (now.model, now.serial) == (first.model, first.serial)):
            return True
        device.close()
        self.result.fault = SessionFault.WRONG_DEVICE
        self.result.alarm = True
        self._device_dose_unknown = True
        self.result.message += wrong_device_message(first, now)
        return False

    def _reconnect(self) -> CurrentSource | None:
        deadline = self.clock.monotonic() + RECONNECT_WINDOW_S
        while self.clock.monotonic() < deadline:
            try:
                return self.reconnect() if self.reconnect is not None else None
            except DeviceError:
                self.clock.sleep(0.5)
        return None

    # -- the end -----------------------------------------------------------------------------------------

    def _settle(self, *, integrate: bool = True) -> None:
        """After a terminal state, watch until the current is at zero; escalate if it is not. `integrate`:
        add the samples to the host's dose (not after a reconnect: the host's count stopped at the loss)."""
        escalated = False
        if not self.ramp.expecting_zero:
            self._expect_zero_within(self._fastest_ramp_s())
        while True:
            s = self.last
            if s is None or _at_zero(s):
                return
            if self.ramp.overdue(s, self.clock.monotonic(), stale=self._stale()):
                if escalated or not s.output_on:
                    if self._stale():
                        self.result.alarm = True
                        self.result.message += (
                            "; the device's telemetry is stale, so the current cannot be confirmed at zero: "
                            "remove the electrodes from the patient now"
                        )
                    elif s.measured_ma >= FLOOR_MA:
                        self.result.alarm = True
                        self.result.message += (
                            "; CURRENT STILL FLOWS after output-off: remove the electrodes from the patient now"
                        )
                        if self.result.fault is None:
                            self.result.fault = SessionFault.STUCK_OUTPUT
                    return
                escalated = True
                self._escalate(s)
            samples = self.device.read_telemetry(self.read_timeout_s)
            self._track_freshness(samples)
            for sample in samples:
                self._observe(sample, integrate=integrate)

    def _observe(self, sample: Telemetry, *, integrate: bool = True) -> None:
        """A sample after the session ended: the latest, counted (unless `integrate` is off) and recorded."""
        self.last = sample
        if integrate:
            self.meter.add(sample)
        if self.on_sample is not None:
            self.on_sample(self, sample)

    def _escalate(self, s: Telemetry) -> None:
        """The current did not fall in time: abort, then output-off, and give it a little longer."""
        if self.result.fault is None or self.result.fault == "":
            self.result.fault = SessionFault.STUCK_OUTPUT
        self.result.message += "; the current did not fall when told: abort, then output off"
        for command in (self.device.abort, self.device.output_off):
            try:
                command()
            except (DeviceFault, CommandRefused):
                pass
        self._expect_zero_within(0.0)

    def _end(self, trigger: str, message: str, *, fault: str | None) -> None:
        if self.state in TERMINAL:  # already ended (e.g. aborted, then a fault while settling): keep the first
            self.result.message += f"; then {message}"
            self.result.fault = self.result.fault or fault
            return
        self.result.fault = fault
        self.result.message = message
        self._fire(trigger, message, self.last)

    def _finish_result(self) -> SessionResult:
        r, p, m = self.result, self.prescription, self.meter
        r.outcome = OUTCOMES[self.state] if self.state in OUTCOMES else Outcome.FAULT
        r.prescription = prescription_dict(p)
        site = self.monitors.limits
        r.limits = site.values()
        r.limits_sha256 = site.sha256
        r.device = identity_dict(self.device.identity) if self.state != S.DISCONNECTED else None
        add_figures(r, m, p, self._start_t_s, self._impedances, device_dose_unknown=self._device_dose_unknown)
        if r.fault == SessionFault.DEVICE_STOPPED:
            device = "not counted" if r.device_dose_ma_min is None else f"{r.device_dose_ma_min:.3f} mA·min"
            r.message += (f"; the dose is settled where the device stopped: {m.delivered_ma_min:.3f} mA·min (host), "
                          f"device counter {device}, of {p.planned_dose_ma_min:.3f} mA·min prescribed")  # fmt: skip
        r.energised = self._start_sent or any(change.state == S.RAMPING_UP for change in r.timeline)
        if r.outcome == Outcome.COMPLETED and r.message == "":
            r.message = f"delivered {r.dose_ma_min:.2f} of {r.prescribed_dose_ma_min:.2f} mA·min"
        return r

    # -- state bookkeeping -------------------------------------------------------------------------------

    def _fire(self, trigger: str, reason: str, sample: Telemetry | None = None) -> None:
        self._reason = reason
        try:
            self.trigger(trigger)  # type: ignore[attr-defined]  # added by transitions
        except MachineError as exc:
            raise RuntimeError(f"session bug: {trigger!r} is not valid in state {self.state!r}") from exc

    def _record_state(self, event: Any) -> None:
        self._record(self.last)

    def _record(self, sample: Telemetry | None) -> None:
        change = StateChange(self.state, self._reason, self.utc_now().isoformat(timespec="milliseconds"),
                             sample.t_s if sample is not None else None)  # fmt: skip
        self.result.timeline.append(change)
        if self.on_state is not None:
            self.on_state(self, change)


def _at_zero(s: Telemetry) -> bool:
    """No current flows and none is being driven: the set point is zero, or the output is open."""
    return s.measured_ma < FLOOR_MA and (s.set_ma == 0 or not s.output_on)

"""The fault matrix: every simulator fault kind x every energised session state, end to end over the pty.

Each cell is one whole session: the simulator runs as a process (`python -m sim`) with the fault scheduled
in its own clock, and the host (`Session` over the firmware driver, with `reconnect`, as `ionctl run` drives
it) talks to it over its pseudo-terminal. For the `paused` cells the host pauses during the hold, the fault
starts while the current is held at zero, and the operator resumes a few device seconds later.

Measured per cell, against the simulator's JSONL ground truth:

* outcome, exit code (`ionctl run`'s), fault code, alarm;
* the host's state at its last sample before the fault began (the cell really is the state it names);
* time to zero: device seconds from the fault's start until the true current is zero for good (the final
  run of zero-current steps), 0 if it already was and stayed so;
* |host dose - true dose| (mA·min): the settled dose the host reports against the trace's charge;
* the true dose against the device's own dose cap (which a stuck output defeats: there the bound is the
  host's reaction, see `Expect.over`).

Every cell has an explicit expectation in `EXPECTED`; the script exits 1 and names each cell that breaks
it. Time bounds are written as device seconds plus wall seconds scaled by the simulator's time scale: the
device's watchdog and the host's link supervision run on wall time, so at `--time-scale X` one wall second
of host reaction is X device seconds of current.

    python -m tests.campaign.fault_matrix [--write docs/SAFETY.md] [--jobs N] [--only KIND]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import multiprocessing
import os
import platform
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ionctl.core.session import RAMP_STALL_S, Session, SessionResult, exit_code
from ionctl.drivers import OutputState, Polarity, Telemetry, open_device
from ionctl.safety import Prescription, SiteLimits
from sim.device import FAULT_KINDS
from tests.sim.endpoints import ROOT, running_sim

#: The device clock runs this many times faster than the wall (sim/cli.py allows up to 1000).
TIME_SCALE = 100.0
#: Kinds run slower: a stuck output is cut by the host after a margin partly in wall seconds (0.5 s), which at
#: 100x would be 50 device seconds of current; at 20x it is 10.
STUCK_TIME_SCALE = 20.0
#: A damaged request is retransmitted after 150 ms of wall time, 15 device seconds at 100x: a STOP lost once or
#: twice would let the device's dose cap (planned + 0.2 mA·min, 3 s at 4 mA) end the session before the host's
#: ramp-down. At 5x two retransmissions are 1.5 device seconds, as at the bench's 0.3 s they are nothing.
CORRUPT_TIME_SCALE = 5.0
TIME_SCALES = {"stuck-output": STUCK_TIME_SCALE, "corrupt": CORRUPT_TIME_SCALE}
#: A load whose 4 mA needs about 21 V: the session holds its current instead of starting at compliance.
LOAD = ("--rp", "5000")
RAMP_S = 5.0  # the site's shortest ramp (min_ramp_s), each way
PRESCRIPTION = Prescription(drug="dexamethasone", polarity=Polarity.CATHODE, electrode_area_cm2=10.0, current_ma=4.0,
                            dose_ma_min=4.0, ramp_up_s=RAMP_S, ramp_down_s=RAMP_S, patient_id="P-MATRIX",
                            operator_id="OP-MATRIX")  # fmt: skip
HOLD_S = PRESCRIPTION.planned_duration_s - 2 * RAMP_S  # 55 s at 4 mA
#: Paused cells: pause this far into the hold, fault once the pause's ramp is done, resume after the fault.
PAUSE_AT_S = RAMP_S + 5.0
FAULT_WHILE_PAUSED_S = PAUSE_AT_S + RAMP_S + 3.0
RESUME_AFTER_FAULT_S = 5.0
#: Wall seconds the link stays down (device seconds = this x time scale): past the driver's 1 s link
#: timeout and the device's 2 s watchdog, short enough for the session's reconnect to find it again.
LINK_DROP_WALL_S = 4.0

STATES = ("ramping_up", "delivering", "paused", "ramping_down")

#: kind -> the fault as the matrix injects it (`--fault` syntax without `@T`); covers sim.device.FAULT_KINDS.
FAULT_ARGS = {
    "electrode-lift": "electrode-lift",
    "short": "short",
    "impedance-step": "impedance-step=60000",  # 60 kΩ more: 4 mA would need 260 V, the source is at compliance
    "link-drop": "link-drop",
    "corrupt": "corrupt=0.003",  # about one frame in ten damaged, both ways, from the fault on
    "reboot": "reboot",
    "stuck-output": "stuck-output",
    "sensor-drift": "sensor-drift=30",  # reads 30 % high: 5.2 mA shown at a true 4 mA
    "device-stop": "device-stop",  # the front panel's STOP: the device ends the delivery unasked
    "polarity-flip": "polarity-flip",  # the output polarity swaps on its own
}


def fault_at_s(state: str) -> float:
    """Device seconds after the output was first energised at which the fault starts, for a cell in `state`."""
    return {
        "ramping_up": RAMP_S / 2,
        "delivering": RAMP_S + HOLD_S / 2,
        "paused": FAULT_WHILE_PAUSED_S,
        "ramping_down": RAMP_S + HOLD_S + 1.0,  # early in the ramp-down: most of its dose is still to come
    }[state]


def fault_spec(kind: str, state: str, time_scale: float) -> str:
    duration = f":{LINK_DROP_WALL_S * time_scale:g}" if kind == "link-drop" else ""
    return f"{FAULT_ARGS[kind]}@{fault_at_s(state):g}{duration}"


# -- expectations ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """What a cell must show.

    `faults`: the fault codes accepted (more than one only where two detections race and either is right);
    `zero`: the time to zero bound as (device s, wall s), i.e. device + wall x time scale; `dose_error_ma_min`:
    the bound on |host - true|; `over`: seconds of the prescribed current the true dose may exceed the device's
    own dose cap by, as (device s, wall s) (0: the cap holds); `message`: a phrase the result must carry."""

    outcome: str
    exit: int
    faults: tuple[str | None, ...]
    zero: tuple[float, float]
    why: str
    dose_error_ma_min: float = 0.01 * PRESCRIPTION.dose_ma_min  # 1 % of the prescription
    over: tuple[float, float] = (0.0, 0.0)
    message: str = ""
    alarm: bool = False


I_MA = PRESCRIPTION.current_ma
#: The device acts within its own step and windows (10 ms, 100 ms): an open relay is zero current at once.
CUT = (0.2, 0.0)
#: The device latches and ramps to zero at its max slew (max current / min_ramp_s: under RAMP_S from 4 mA).
RAMPED = (RAMP_S + 0.5, 0.0)
#: The host finds the fault in a sample and orders the ramp (ABORT): the sample's and the command's way over the
#: link, and the host's read loop, in wall time; then the device's ramp at max slew.
HOST_RAMPED = (RAMP_S + 0.5, 0.1)
#: A paused cell's current flows again only at the resume, RESUME_AFTER_FAULT_S after the fault (plus the
#: resume's way to the device, wall time).
RESUMED = (RESUME_AFTER_FAULT_S, 0.1)
#: The device's watchdog runs on wall time (the site's watchdog_s, 2 s, plus the driver's heartbeat period),
#: then ramps at max slew; whichever comes first, the device's dose cap ramps it down too.
WATCHDOG = (RAMP_S + 1.0, 2.5)
#: Compliance: the host's compliance_tolerance_s (180 s at compliance), then a ramp at max slew.
COMPLIANCE = (180.0 + RAMP_S + 2.0, 0.5)
#: A stuck output is found by the host: the current above a ramp-down's course (1 s lag allowed, and 0.5 s of
#: wall time for the command to arrive), or the device's dose cap latched with the current not falling
#: (the cap's ramp is what is stuck), then abort and output off.
STUCK = (6.0, 0.5)
#: The time to zero after a stuck output: STUCK plus the host's read loop (its 0.25 s read timeout, a sample in
#: flight), in wall time.
STUCK_ZERO = (6.0, 1.0)
#: The output stuck halfway up the ramp-up (2 mA): the host finds the set point not rising for RAMP_STALL_S
#: (device seconds) and ramps down, which is stuck too, so it then cuts the output (STUCK_ZERO).
STALLED = (RAMP_STALL_S + 0.5, 0.0)
#: A reboot loses the frames in the device's transmit buffer with it: the samples since the last one the host
#: received (a telemetry period, plus one simulator loop of wall time at the accelerated clock).
REBOOT_LOST_MA_MIN = I_MA * (0.2 + 0.01 * TIME_SCALE) / 60


def _rest(state: str, *, extra_s: float = 3.0) -> tuple[float, float]:
    """The fault changes nothing: zero current comes when the session ends as planned (for a paused cell, the
    pause adds its own ramp-down, the wait and the ramp back up)."""
    rest = PRESCRIPTION.planned_duration_s - fault_at_s(state)
    if state == "paused":
        rest += 2 * RAMP_S + RESUME_AFTER_FAULT_S
    return (rest + extra_s, 0.5)


def _plus(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return (a[0] + b[0], a[1] + b[1])


E = Expect
OPEN = "the device opens its relay within its 100 ms window (OPEN_CIRCUIT): the lifted electrode carries no current"
OPEN_PAUSED = ("nothing to detect at zero current; at the resume the device finds no current at compliance "
               "(OPEN_CIRCUIT) and opens its relay")  # fmt: skip
SHORT = "the device latches LOW_IMPEDANCE after 100 ms and ramps to zero at its max slew"
LOST = ("the host declares the link lost (1 s), the device's watchdog (2 s, wall) or its dose cap ramps to zero; "
        "the host reconnects and settles the dose from the device's counter")  # fmt: skip
CLEAN = "damaged frames are dropped and requests retransmitted: the session completes as planned"
BROWNOUT = "the device restarts with its output off and FAULT BROWNOUT latched; the host follows"
DRIFT_HIGH = "the reading 30 % high is above the device's current limit (prescription + 10 %, + 5 %): OVERCURRENT"
DRIFT_OFF = "the reading is off the set point by more than 5 % for 0.5 s: the device latches CURRENT_MISMATCH"
STOPPED = ("the device ramps to zero at its max slew and ends (DONE) unasked: the host, expecting delivery, names it "
           "device_stopped and settles the dose there")  # fmt: skip
FLIPPED = "the device reports the other polarity: the host names it polarity_mismatch and ramps to zero (abort)"

EXPECTED: dict[tuple[str, str], Expect] = {
    ("electrode-lift", "ramping_up"): E("fault", 3, ("open_circuit",), CUT, OPEN),
    ("electrode-lift", "delivering"): E("fault", 3, ("open_circuit",), CUT, OPEN),
    ("electrode-lift", "paused"): E("fault", 3, ("open_circuit",), CUT, OPEN_PAUSED),
    ("electrode-lift", "ramping_down"): E("fault", 3, ("dose_short",), CUT,
        "the set point follows the vanished current down (anti-windup), so the device ends the ramp early; the "
        "host finds the dose short by more than 1 %"),
    ("short", "ramping_up"): E("fault", 3, ("low_impedance",), RAMPED, SHORT),
    ("short", "delivering"): E("fault", 3, ("low_impedance",), RAMPED, SHORT),
    ("short", "paused"): E("fault", 3, ("low_impedance",), _plus(RESUMED, RAMPED),
        "nothing flows at zero current; at the resume the current through the short trips LOW_IMPEDANCE"),
    ("short", "ramping_down"): E("fault", 3, ("low_impedance",), RAMPED, SHORT),
    ("impedance-step", "ramping_up"): E("fault", 3, ("compliance",), COMPLIANCE,
        "at the compliance voltage (0.9 mA through 65 kΩ) the dose still due takes longer than the tolerance: "
        "the host ramps to zero at 180 s"),
    ("impedance-step", "delivering"): E("completed", 0, (None,), _rest("delivering", extra_s=80.0),
        "the half of the dose still due is delivered at the voltage-limited 0.9 mA within the 180 s "
        "compliance tolerance: time at compliance is made up (the ActivaDose II behaviour)"),
    ("impedance-step", "paused"): E("fault", 3, ("compliance",), _plus(RESUMED, COMPLIANCE),
        "at the resume the current is voltage-limited; the dose still due outlasts the tolerance"),
    ("impedance-step", "ramping_down"): E("fault", 3, ("dose_short",), RAMPED,
        "the ramp-down ends at the voltage-limited current: the dose is short by more than 1 %"),
    ("link-drop", "ramping_up"): E("fault", 3, ("host_lost",), WATCHDOG, LOST),
    ("link-drop", "delivering"): E("fault", 3, ("host_lost",), WATCHDOG, LOST),
    ("link-drop", "paused"): E("fault", 3, ("host_lost",), CUT,
        "no current flows; the device latches HOST_LOST and opens its output; the host reconnects"),
    ("link-drop", "ramping_down"): E("fault", 3, ("host_lost",), WATCHDOG, LOST),
    ("corrupt", "ramping_up"): E("completed", 0, (None,), _rest("ramping_up"), CLEAN),
    ("corrupt", "delivering"): E("completed", 0, (None,), _rest("delivering"), CLEAN),
    ("corrupt", "paused"): E("completed", 0, (None,), _rest("paused"), CLEAN),
    ("corrupt", "ramping_down"): E("completed", 0, (None,), _rest("ramping_down"), CLEAN),
    ("reboot", "ramping_up"): E("fault", 3, ("brownout",), CUT, BROWNOUT, dose_error_ma_min=REBOOT_LOST_MA_MIN),
    ("reboot", "delivering"): E("fault", 3, ("brownout",), CUT, BROWNOUT, dose_error_ma_min=REBOOT_LOST_MA_MIN),
    ("reboot", "paused"): E("fault", 3, ("brownout",), CUT, BROWNOUT),
    ("reboot", "ramping_down"): E("fault", 3, ("brownout",), CUT, BROWNOUT, dose_error_ma_min=REBOOT_LOST_MA_MIN),
    ("stuck-output", "ramping_up"): E("fault", 3, ("ramp_stalled",), _plus(STALLED, STUCK_ZERO),
        "the ramp-up stalls at 2 mA: the host finds the set point not rising for 3 s and ramps down; that ramp "
        "is stuck too, so it cuts the output (abort, then output off)", over=STUCK,
        message="did not fall when told"),
    ("stuck-output", "delivering"): E("fault", 3, ("stuck_output", "dose_limit"),
        _plus(_rest("delivering", extra_s=-RAMP_S), STUCK_ZERO),
        "the hold goes on as planned; the ramp-down does not come: the host cuts the output", over=STUCK,
        message="did not fall when told"),
    ("stuck-output", "paused"): E("fault", 3, ("ramp_stalled",), CUT,
        "stuck at zero: the resume is ignored and no current flows; the host finds the ramp up not rising for "
        "3 s and ends the session"),
    ("stuck-output", "ramping_down"): E("fault", 3, ("stuck_output", "dose_limit"), STUCK_ZERO,
        "the current stops falling; the host finds it above the ramp's course and cuts the output", over=STUCK,
        message="did not fall when told"),
    ("sensor-drift", "ramping_up"): E("fault", 3, ("current_mismatch",), RAMPED, DRIFT_OFF),
    ("sensor-drift", "delivering"): E("fault", 3, ("overcurrent",), CUT, DRIFT_HIGH),
    ("sensor-drift", "paused"): E("fault", 3, ("current_mismatch",), _plus(RESUMED, RAMPED),
        "no reading to be wrong at zero current; on the resume's ramp the reading is off the set point"),
    ("sensor-drift", "ramping_down"): E("fault", 3, ("overcurrent", "current_mismatch"), RAMPED,
        "early in the ramp-down the reading is above the device's current limit (OVERCURRENT) or, once the set "
        "point is lower, off it (CURRENT_MISMATCH): either detection is right"),
    ("device-stop", "ramping_up"): E("fault", 3, ("device_stopped",), RAMPED, STOPPED),
    ("device-stop", "delivering"): E("fault", 3, ("device_stopped",), RAMPED, STOPPED),
    ("device-stop", "paused"): E("fault", 3, ("device_stopped",), RAMPED,
        "held at zero, the device ends (DONE) unasked: no current flows (if the pause's own ramp is still under "
        "way, the device ends it at max slew); the host names it device_stopped"),
    ("device-stop", "ramping_down"): E("completed", 0, (None,), RAMPED,
        "the device's ramp at max slew ends the host's own ramp-down a little early; the dose is within 1 %"),
    ("polarity-flip", "ramping_up"): E("fault", 3, ("polarity_mismatch",), HOST_RAMPED, FLIPPED),
    ("polarity-flip", "delivering"): E("fault", 3, ("polarity_mismatch",), HOST_RAMPED, FLIPPED),
    ("polarity-flip", "paused"): E("fault", 3, ("polarity_mismatch",), HOST_RAMPED,
        "at zero current the device reports the other polarity: the host ends the session before any current "
        "(if the pause's own ramp is still under way, the host's abort ends it at max slew)"),
    ("polarity-flip", "ramping_down"): E("fault", 3, ("polarity_mismatch",), HOST_RAMPED, FLIPPED),
}  # fmt: skip


# -- one cell ----------------------------------------------------------------------------------------------


@dataclass
class Cell:
    kind: str
    state: str
    spec: str
    time_scale: float
    outcome: str = ""
    exit: int = -1
    fault: str | None = None
    alarm: bool = False
    state_at_fault: str | None = None
    zero_s: float | None = None  # device s from the fault's start to zero current for good; None: never
    host_dose_ma_min: float = 0.0
    true_dose_ma_min: float = 0.0
    wall_s: float = 0.0
    message: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def dose_error_ma_min(self) -> float:
        return abs(self.host_dose_ma_min - self.true_dose_ma_min)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Operator:
    """Pauses and resumes the session on the device clock, as a technician at the console would; notes the
    session's state at each sample until the device's clock restarts (a reboot)."""

    def __init__(self, state: str) -> None:
        self.paused = state == "paused"
        self.energised_t_s: float | None = None
        self.pause_sent = self.resume_sent = False
        self.states: list[tuple[float, str]] = []  # (device t, the session's state when the sample came)
        self._clock_reset = False

    def state_at(self, t_s: float) -> str | None:
        """The session's state at the last sample at or before device time `t_s`."""
        state = None
        for sample_t_s, sample_state in self.states:
            if sample_t_s > t_s:
                break
            state = sample_state
        return state

    def on_sample(self, session: Session, s: Telemetry) -> None:
        if self.states and s.t_s < self.states[-1][0]:
            self._clock_reset = True
        if not self._clock_reset:
            self.states.append((s.t_s, session.state))
        if self.energised_t_s is None and s.output_on and s.state in (OutputState.RAMP_UP, OutputState.RUNNING):
            self.energised_t_s = s.t_s
        if not self.paused or self.energised_t_s is None:
            return
        since = s.t_s - self.energised_t_s
        if not self.pause_sent and since >= PAUSE_AT_S:
            self.pause_sent = True
            session.request("pause")
        elif not self.resume_sent and since >= FAULT_WHILE_PAUSED_S + RESUME_AFTER_FAULT_S:
            self.resume_sent = True
            session.request("resume")


def run_cell(kind: str, state: str, seed: int = 1) -> Cell:
    """Run one cell end to end and measure it against the trace and its expectation."""
    time_scale = TIME_SCALES.get(kind, TIME_SCALE)
    cell = Cell(kind, state, fault_spec(kind, state, time_scale), time_scale)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="matrix-") as tmp:
        link, trace = Path(tmp) / "dev", Path(tmp) / "trace.jsonl"
        operator = _Operator(state)
        args = ["--serial-link", str(link), "--time-scale", f"{time_scale:g}", "--trace", str(trace), "--seed",
                str(seed), *LOAD, "--fault", cell.spec]  # fmt: skip
        with running_sim(*args):
            device = open_device(str(link))
            session = Session(device, PRESCRIPTION, SiteLimits.load(None), on_sample=operator.on_sample,
                              reconnect=lambda: open_device(str(link)))  # fmt: skip
            try:
                result = session.run()
            finally:
                session.device.close()  # after a reconnect, the session's device is the new one
                device.close()
        rows = [json.loads(line) for line in trace.read_text().splitlines() if line.endswith("}")]
    cell.wall_s = time.monotonic() - started
    _measure(cell, result, rows, operator)
    check(cell)
    return cell


def _measure(cell: Cell, result: SessionResult, rows: list[dict[str, Any]], operator: _Operator) -> None:
    cell.outcome, cell.exit, cell.fault, cell.alarm = result.outcome, exit_code(result), result.fault, result.alarm
    cell.message = result.message
    cell.host_dose_ma_min = result.dose_ma_min
    cell.true_dose_ma_min = float(rows[-1]["dose_uas"]) / 60_000
    energised = next(float(r["t_s"]) for r in rows if r["state"] == "RAMP_UP")
    t_fault = energised + fault_at_s(cell.state)
    cell.state_at_fault = operator.state_at(t_fault)
    last_flowing = max((i for i, r in enumerate(rows) if float(r["current_ua"]) != 0), default=None)
    if last_flowing is None:
        cell.zero_s = 0.0
    elif last_flowing == len(rows) - 1:
        cell.zero_s = None  # still flowing when the simulator stopped
    else:
        cell.zero_s = max(0.0, float(rows[last_flowing + 1]["t_s"]) - t_fault)


def device_dose_cap_ma_min() -> float:
    """The dose the device itself never exceeds (ionctl.safety.device_limits: planned + the mismatch margin)."""
    site = SiteLimits.load(None)
    planned = PRESCRIPTION.planned_dose_ma_min
    return min(planned + max(planned * site.dose_mismatch_fraction, site.dose_mismatch_floor_ma_min),
               site.max_dose_ma_min)  # fmt: skip


def check(cell: Cell) -> None:
    """Fill `cell.problems` with every way the cell breaks its expectation (none: it passes)."""
    want = EXPECTED[cell.kind, cell.state]
    p, scale = cell.problems, cell.time_scale
    if cell.state_at_fault != cell.state:
        p.append(f"the fault began in {cell.state_at_fault}, not {cell.state}")
    if (cell.outcome, cell.exit, cell.alarm) != (want.outcome, want.exit, want.alarm):
        p.append(f"outcome/exit/alarm {(cell.outcome, cell.exit, cell.alarm)}, expected "
                 f"{(want.outcome, want.exit, want.alarm)}")  # fmt: skip
    if cell.fault not in want.faults:
        p.append(f"fault {cell.fault}, expected {' or '.join(str(f) for f in want.faults)}")
    bound = want.zero[0] + want.zero[1] * scale
    if cell.zero_s is None:
        p.append("the current never reached zero")
    elif cell.zero_s > bound:
        p.append(f"zero current {cell.zero_s:.2f} s after the fault, bound {bound:.2f} s")
    if cell.dose_error_ma_min > want.dose_error_ma_min:
        p.append(f"host dose off the true by {cell.dose_error_ma_min:.4f} mA·min > {want.dose_error_ma_min:.4f}")
    cap = max_true_dose_ma_min(want, scale)
    if cell.true_dose_ma_min > cap:
        p.append(f"true dose {cell.true_dose_ma_min:.3f} mA·min above {cap:.3f}")
    if want.message and want.message not in cell.message:
        p.append(f"the result does not say {want.message!r}")


def max_true_dose_ma_min(want: Expect, scale: float) -> float:
    """The device's own dose cap (+1 % for the simulator's measurement noise), plus what `want.over` allows."""
    over_s = want.over[0] + want.over[1] * scale
    return device_dose_cap_ma_min() * 1.01 + I_MA * over_s / 60


# -- the matrix --------------------------------------------------------------------------------------------


def cells(only: list[str] | None = None) -> list[tuple[str, str]]:
    kinds = [k for k in FAULT_KINDS if not only or k in only]
    return [(kind, state) for kind in kinds for state in STATES]


def run_matrix(jobs: int = 2, only: list[str] | None = None) -> list[Cell]:
    """Every cell, `jobs` at a time (each worker a separate process: one host per simulator, no shared GIL)."""
    todo = cells(only)
    if jobs <= 1:
        return [run_cell(kind, state) for kind, state in todo]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(run_cell, kind, state) for kind, state in todo]
        return [f.result() for f in futures]


def _fmt_zero(cell: Cell) -> str:
    return "never" if cell.zero_s is None else f"{cell.zero_s:.2f}"


def _fmt_bound(want: Expect, scale: float) -> str:
    return f"{want.zero[0] + want.zero[1] * scale:.1f}"


def table(results: list[Cell]) -> str:
    lines = [
        "| fault | state | outcome | exit | fault code | alarm | zero after (s) | bound (s) | dose error (mA·min) "
        "| true dose (mA·min) | expected | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in results:
        want = EXPECTED[c.kind, c.state]
        codes = " or ".join(f or "—" for f in want.faults)
        expected = f"{want.outcome}, {want.exit}, {codes}" + (", alarm" if want.alarm else "")
        met = "yes" if c.ok else "**NO**: " + "; ".join(c.problems)
        lines.append(
            f"| `{c.spec}` | {c.state} | {c.outcome} | {c.exit} | {c.fault or '—'} | {'yes' if c.alarm else 'no'} "
            f"| {_fmt_zero(c)} | {_fmt_bound(want, c.time_scale)} | {c.dose_error_ma_min:.4f} "
            f"| {c.true_dose_ma_min:.3f} | {expected} | {met} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )


BEGIN, END = "<!-- fault-matrix:begin -->", "<!-- fault-matrix:end -->"


def block(results: list[Cell], command: str, wall_s: float) -> str:
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    failed = sum(not c.ok for c in results)
    scales = ", ".join(f"{kind} at {scale:g}x" for kind, scale in TIME_SCALES.items())
    reasons = [f"- `{c.kind}` while {c.state}: {EXPECTED[c.kind, c.state].why}." for c in results]
    return "\n".join([
        BEGIN,
        f"Generated by `{command}` on {today}, on {machine()}: {len(results)} cells, {failed} failing, "
        f"{wall_s:.0f} s wall. Simulator at --time-scale {TIME_SCALE:g} ({scales}), load `{' '.join(LOAD)}`; "
        f"prescription {PRESCRIPTION.current_ma:g} mA, {PRESCRIPTION.dose_ma_min:g} mA·min, ramps {RAMP_S:g} s; "
        "times in device seconds; a bound is device seconds plus wall seconds times the time scale.",
        "",
        table(results),
        "",
        "Why each cell is expected to end as it does:",
        "",
        *reasons,
        END,
    ])  # fmt: skip


def write(document: Path, text: str) -> None:
    content = document.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(content):
        raise SystemExit(f"{document}: no {BEGIN} ... {END} markers")
    document.write_text(pattern.sub(lambda _: text, content), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.campaign.fault_matrix", description=__doc__.split("\n")[0])
    parser.add_argument("--write", metavar="DOC", type=Path, help="replace the matrix between the markers in DOC")
    parser.add_argument("--jobs", type=int, default=2, help="cells run at once (default 2; 2 cores: keep it at 2)")
    parser.add_argument("--only", action="append", metavar="KIND", help="only this fault kind (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the cells as JSON too")
    args = parser.parse_args(argv)
    started = time.monotonic()
    results = run_matrix(jobs=args.jobs, only=args.only)
    wall = time.monotonic() - started
    command = "python -m tests.campaign.fault_matrix" + (f" --write {args.write}" if args.write else "") + (
        f" --jobs {args.jobs}")  # fmt: skip
    text = block(results, command, wall)
    print(text)
    if args.json:
        print(json.dumps([asdict(c) for c in results], indent=1))
    failing = [c for c in results if not c.ok]
    for c in failing:
        print(f"FAILED {c.kind} x {c.state} ({c.spec}): {'; '.join(c.problems)} [{c.message}]", file=sys.stderr)
    if args.write:
        if args.only:
            print("not writing a partial matrix (--only)", file=sys.stderr)
        else:
            write(args.write if args.write.is_absolute() else ROOT / args.write, text)
    print(f"{len(results)} cells in {wall:.1f} s wall, {len(failing)} failing", file=sys.stderr)
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())

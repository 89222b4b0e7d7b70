"""Nothing lost, twenty times: `ionctl run` (a real process, the simulator over its pty) killed with SIGKILL
at 20 seeded random moments spread over the ramp-up, the hold and the ramp-down.

Each time, from the simulator's ground-truth trace: the device reaches zero current within the watchdog
(wall seconds, scaled by the time scale) plus a ramp to zero; and the record is recovered as `interrupted`
with the host's dose up to its last stored sample matching the trace at that device time, and the device's
own counter (read at recovery, as `ionctl run` does on restart) matching the trace's total. The store
verifies after every recovery. The single-kill version is tests/records/test_kill.py, whose helpers this
uses."""

from __future__ import annotations

import bisect
import concurrent.futures
import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ionctl.drivers import open_device
from ionctl.records import Store, recover_interrupted
from ionctl.safety import SiteLimits
from tests.records.test_kill import CURRENT_MA, RX, trace_rows
from tests.sim.endpoints import ROOT, running_sim
from tests.test_run import TESS, in_clinic

SEED = 20261126
KILLS = 20
TIME_SCALE = 50.0
RAMP_S = 10.0
DOSE_MA_MIN = 4.0
HOLD_S = DOSE_MA_MIN * 60 / CURRENT_MA - RAMP_S  # 50 s: ramps deliver half their length's dose
#: The prescription of test_kill.py with a shorter dose and ramps; a load that holds 4 mA below compliance.
ARGS = [*RX, "--dose", f"{DOSE_MA_MIN:g}", "--ramp-up", f"{RAMP_S:g}", "--ramp-down", f"{RAMP_S:g}"]
LOAD = ["--rp", "5000"]
#: Device seconds after the output was energised: (phase, earliest, latest), a second clear of each boundary.
PHASES = [
    ("ramp-up", 1.0, RAMP_S - 1.0, "RAMP_UP"),
    ("hold", RAMP_S + 1.0, RAMP_S + HOLD_S - 1.0, "RUNNING"),
    ("ramp-down", RAMP_S + HOLD_S + 1.0, RAMP_S + HOLD_S + RAMP_S - 1.5, "RAMP_DOWN"),
]
ENERGISED = ("RAMP_UP", "RUNNING", "RAMP_DOWN")


def kill_plan(seed: int = SEED, kills: int = KILLS) -> list[tuple[str, float]]:
    """(phase, device seconds after energising) for each kill: the phases in turn, a random moment in each."""
    rng = random.Random(seed)
    plan = []
    for i in range(kills):
        phase, low, high, _ = PHASES[i % len(PHASES)]
        plan.append((phase, round(rng.uniform(low, high), 2)))
    return plan


class TraceTail:
    """Reads the rows the simulator appends to its JSONL trace, as it appends them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.last: dict[str, Any] | None = None
        self.energised_t_s: float | None = None

    def poll(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        for line in lines:
            row = json.loads(line)
            if self.energised_t_s is None and row["state"] == "RAMP_UP":
                self.energised_t_s = row["t_s"]
            self.last = row


@dataclass
class Kill:
    phase: str
    at_s: float
    device_state: str = ""  # the device's state in the trace when the host died
    zero_after_s: float | None = None  # device s from the kill to zero current for good
    zero_bound_s: float = 0.0
    record: dict[str, Any] = field(default_factory=dict)
    stored_samples: int = 0
    truth_at_last_sample_ma_min: float = 0.0
    true_total_ma_min: float = 0.0
    verify: object = None
    problems: list[str] = field(default_factory=list)


def device_counter(link: Path) -> Callable[[dict[str, Any]], float | None]:
    """The recovery's reader of the device's own counter (the same device is still on `link`)."""

    def read(identity: dict[str, Any]) -> float | None:
        with open_device(str(link)) as device:
            if device.identity.serial != identity.get("serial"):
                return None
            samples = device.read_telemetry(1.0)
        return samples[-1].device_dose_ma_min if samples else None

    return read


def kill_once(phase: str, at_s: float, tmp: Path) -> Kill:
    kill = Kill(phase, at_s)
    link, trace, db, log = tmp / "ionto", tmp / "truth.jsonl", tmp / "clinic" / "records.sqlite3", tmp / "stderr.txt"
    run_as = in_clinic(tmp)  # the clinic's technician, who logs in with --password-stdin
    watchdog_s = SiteLimits.load(None).watchdog_s
    sim = ["--serial-link", str(link), "--time-scale", f"{TIME_SCALE:g}", "--trace", str(trace), *LOAD]
    with running_sim(*sim), log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "ionctl", "run",
             "--site", "left forearm", "--device", str(link), *ARGS, *run_as, "--yes"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, text=True,
        )  # fmt: skip
        assert process.stdin is not None
        process.stdin.write(TESS)
        process.stdin.close()
        tail = TraceTail(trace)
        deadline = time.monotonic() + 60
        while not (tail.energised_t_s is not None and tail.last and tail.last["t_s"] >= tail.energised_t_s + at_s):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"the session never reached {at_s} s: exit {process.poll()}: {log.read_text()}")
            time.sleep(0.002)
            tail.poll()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert tail.last is not None
        kill_t_s, kill.device_state = float(tail.last["t_s"]), str(tail.last["state"])
        # The device's watchdog (wall seconds), then a ramp to zero; wait for it, then read the counter.
        deadline = time.monotonic() + watchdog_s + 10
        while not (tail.last and tail.last["current_ua"] == 0 and tail.last["state"] not in ENERGISED):
            assert time.monotonic() < deadline, f"the device did not go to zero: {tail.last}"
            time.sleep(0.05)
            tail.poll()
        with Store(db) as store:
            closed = recover_interrupted(store, device_counter=device_counter(link))
            records = store.list_records()
            samples = store.telemetry(records[0]["id"]) if records else []
            kill.verify = store.verify()
    rows = trace_rows(trace)
    last_flowing = max(i for i, r in enumerate(rows) if r["current_ua"] != 0)
    zero_t_s = rows[last_flowing + 1]["t_s"] if last_flowing + 1 < len(rows) else None
    kill.zero_after_s = None if zero_t_s is None else max(0.0, zero_t_s - kill_t_s)
    # Heartbeats stop at the kill; the watchdog trips within watchdog_s of the last one; then the device ramps
    # at its max slew (from at most 4.4 mA: min_ramp_s) or finishes its own ramp-down, whichever it was doing.
    kill.zero_bound_s = watchdog_s * TIME_SCALE + RAMP_S + 1.0
    kill.true_total_ma_min = rows[-1]["dose_uas"] / 60_000
    kill.stored_samples = len(samples)
    if samples:
        times = [r["t_s"] for r in rows]
        at = min(bisect.bisect_left(times, samples[-1]["t_s"]), len(rows) - 1)
        kill.truth_at_last_sample_ma_min = rows[at]["dose_uas"] / 60_000
    if len(records) == 1:
        kill.record = records[0]
        if records[0]["id"] not in closed:
            kill.problems.append("the recovery did not close the record")
    else:
        kill.problems.append(f"{len(records)} records, expected 1")
    _judge(kill)
    return kill


def _judge(kill: Kill) -> None:
    p, record = kill.problems, kill.record
    wanted = next(state for phase, _, _, state in PHASES if phase == kill.phase)
    if kill.device_state != wanted:
        p.append(f"killed in device state {kill.device_state}, not {wanted}")
    if kill.zero_after_s is None or kill.zero_after_s > kill.zero_bound_s:
        p.append(f"zero current {kill.zero_after_s} s after the kill, bound {kill.zero_bound_s:.1f} s")
    if kill.verify is not None:
        p.append(f"the store does not verify: {kill.verify}")
    if not record:
        return
    if record["outcome"] != "interrupted":
        p.append(f"outcome {record['outcome']}, expected interrupted")
    one_second_ma_min = CURRENT_MA * 1.0 / 60
    if abs(record["dose_ma_min"] - kill.truth_at_last_sample_ma_min) > one_second_ma_min:
        p.append(f"host dose {record['dose_ma_min']:.4f} vs the trace at the last stored sample "
                 f"{kill.truth_at_last_sample_ma_min:.4f}")  # fmt: skip
    device = record.get("device_dose_ma_min")
    if device is None or abs(device - kill.true_total_ma_min) > max(0.01 * kill.true_total_ma_min, 0.005):
        p.append(f"device counter {device} vs the trace's total {kill.true_total_ma_min:.4f}")


def run_campaign(tmp: Path, jobs: int = 2) -> list[Kill]:
    plan = kill_plan()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = []
        for i, (phase, at_s) in enumerate(plan):
            (tmp / f"kill{i:02d}").mkdir()
            futures.append(pool.submit(kill_once, phase, at_s, tmp / f"kill{i:02d}"))
        return [f.result() for f in futures]


def test_the_kill_plan_is_reproducible_and_spread_over_ramp_up_hold_and_ramp_down() -> None:
    plan = kill_plan()
    assert plan == kill_plan() and plan != kill_plan(SEED + 1)
    assert len(plan) == KILLS
    for phase, low, high, _ in PHASES:
        moments = [at for p, at in plan if p == phase]
        assert len(moments) >= KILLS // len(PHASES)
        assert all(low <= at <= high for at in moments)


def test_a_kill_that_breaks_a_rule_is_reported() -> None:
    kill = Kill("hold", 30.0, device_state="RAMP_DOWN", zero_after_s=None, zero_bound_s=110.0,
                record={"outcome": "completed", "dose_ma_min": 1.0, "device_dose_ma_min": None},
                truth_at_last_sample_ma_min=2.0, true_total_ma_min=2.5)  # fmt: skip
    _judge(kill)
    assert len(kill.problems) == 5


def test_twenty_sigkills_each_end_at_zero_current_and_leave_an_interrupted_record_with_the_dose_of_the_trace(
    tmp_path: Path,
) -> None:
    kills = run_campaign(tmp_path)
    failing = [f"{k.phase} at {k.at_s} s: {'; '.join(k.problems)}" for k in kills if k.problems]
    assert not failing, "\n".join(failing)
    assert {k.device_state for k in kills} == set(ENERGISED)

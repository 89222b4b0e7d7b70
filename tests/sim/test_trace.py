"""The simulator's ground-truth trace file: an idle device writes (almost) nothing, and what is left out of a
session's trace changes nothing a test can read from it (dose, the current between any two rows, state and
fault changes, the step where the current reaches zero)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from firmware_protocol import Start, Stop
from sim.device import SimulatedDevice
from sim.harness import Harness
from sim.plant import LOAD_PRESETS
from sim.server import TraceWriter
from tests.sim.conftest import arm, ok
from tests.sim.endpoints import running_sim


def rows_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def charge_uas(rows: list[dict[str, Any]]) -> float:
    """The charge the rows' current gives, linear between rows (how a reader of the trace would integrate it)."""
    pairs = zip(rows, rows[1:], strict=False)
    return sum((a["current_ua"] + b["current_ua"]) / 2 * (b["t_s"] - a["t_s"]) for a, b in pairs)


def changes(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for r in rows:
        if not seen or seen[-1] != (r["state"], r["fault"]):
            seen.append((r["state"], r["fault"]))
    return seen


def test_a_sessions_trace_file_keeps_every_fact_of_the_full_trace(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    writer, full = TraceWriter(str(path)), []

    def both(row: dict[str, Any]) -> None:
        full.append(row)
        writer(row)

    h = Harness(SimulatedDevice(LOAD_PRESETS["normal"], seed=3, trace=both), heartbeat_s=0.25)
    h.wait(30.0)  # idle before the session: 3000 quiet steps
    writer.flush()
    idle_rows = len(path.read_text().splitlines())
    arm(h)
    ok(h.request(Start(2000, 2000)))
    h.wait(20.0)
    ok(h.request(Stop(2000)))
    h.wait(30.0)  # idle after it
    writer.close()
    rows = rows_of(path)

    assert idle_rows <= 2 and len(full) >= 8000
    assert len(rows) < 0.5 * len(full)  # the quiet steps before and after are gone
    assert rows[-1] == full[-1]  # the trace still ends at the device's last step
    assert all(r in full for r in rows) and rows == sorted(rows, key=lambda r: r["t_s"])
    assert changes(rows) == changes(full)
    true = full[-1]["dose_uas"]
    assert true > 30_000  # ~2 mA for ~20 s
    # the current between written rows is the device's: its integral is the true dose (as with every step)
    assert abs(charge_uas(rows) - charge_uas(full)) <= 1e-6 * true
    assert abs(charge_uas(rows) - true) <= 0.01 * true
    last_flowing = max(i for i, r in enumerate(full) if r["current_ua"] != 0)
    assert full[last_flowing + 1] in rows  # the step where the current reached zero


def test_an_idle_simulator_writes_almost_no_trace(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    with running_sim("--tcp", "0", "--time-scale", "60", "--trace", str(trace)) as sim:
        time.sleep(1.0)  # about 60 device seconds: 6000 steps of 10 ms
        sim.process.terminate()
        sim.process.wait(timeout=10)
    rows = rows_of(trace)
    assert 1 <= len(rows) <= 3, len(rows)
    assert rows[-1]["t_s"] - rows[0]["t_s"] >= 30  # the last (quiet) step is kept at the end


def test_trace_every_step_keeps_the_idle_steps(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    with running_sim("--tcp", "0", "--time-scale", "10", "--trace", str(trace), "--trace-every-step"):
        time.sleep(0.5)  # about 5 s of device time
        rows = rows_of(trace)  # flushed while running
    steps = [round(b["t_s"] - a["t_s"], 6) for a, b in zip(rows, rows[1:], strict=False)]
    assert set(steps) == {0.01} and len(rows) > 300

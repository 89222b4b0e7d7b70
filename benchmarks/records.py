"""Records figure: `records_samples_per_s`.

Telemetry samples appended per second through the store's session writer (`SessionWriter.sample`, the call
`ionctl run` makes on the session's own thread for every sample; batches committed with synchronous=FULL at
least every 0.5 s of host time), into a fresh WAL-mode file in a temporary directory. Two runs:

- flat out on the real host clock: samples/s, and its ratio to the 100 Hz telemetry rate (target >= 10x);
- paced as a session paces it, on a synthetic clock advancing 10 ms per sample (so a batch is committed every
  50 samples, fsync included): the worst stall of one append call, in ms, i.e. the longest the control loop
  waits on the disk for its record (target <= 50 ms: five telemetry periods; the session reads samples in
  batches from the port buffer, so a stall delays, it does not drop).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ionctl.records import Store

TELEMETRY_HZ = 100.0
STALL_TARGET_MS = 50.0


def _row(i: int) -> tuple[Any, ...]:
    return (i * 0.01, 4.0, 4.0 + (i % 7) * 1e-3, 12.5, 3125.0, i * 0.01 * 4 / 60, i * 0.01 * 4 / 60, 0, "delivering")


def _store(directory: str, name: str) -> tuple[Store, int]:
    store = Store(Path(directory) / name)
    record_id = store.open_record(patient="P-BENCH", operator="O", prescription={}, limits={}, limits_sha256="")
    return store, record_id


def records_samples_per_s(quick: bool) -> list[dict[str, Any]]:
    n_flat = 20_000 if quick else 300_000
    n_paced = 2_000 if quick else 30_000  # 20 s / 5 min of a 100 Hz session
    with tempfile.TemporaryDirectory() as directory:
        store, record_id = _store(directory, "flat.sqlite3")
        writer = store.session_writer(record_id)
        start = time.perf_counter()
        for i in range(n_flat):
            writer.sample(_row(i))
        writer.close({"outcome": "completed"})
        flat_s = time.perf_counter() - start
        store.close()

        store, record_id = _store(directory, "paced.sqlite3")
        clock = [0.0]
        writer = store.session_writer(record_id, monotonic=lambda: clock[0])
        stalls: list[float] = []
        for i in range(n_paced):
            clock[0] = i / TELEMETRY_HZ
            t0 = time.perf_counter()
            writer.sample(_row(i))
            stalls.append(time.perf_counter() - t0)
        writer.close({"outcome": "completed"})
        ok = store.verify() is None
        store.close()
    rate = n_flat / flat_s
    worst_ms = max(stalls) * 1000
    flushes = sorted(stalls)[-max(1, n_paced // 50) :]
    return [
        {
            "name": "records_samples_per_s",
            "value": round(rate),
            "unit": "telemetry samples/s appended through SessionWriter.sample (flat out, batches committed "
            "with synchronous=FULL every 0.5 s)",
            "baseline_hz": TELEMETRY_HZ,
            "ratio_to_100hz": round(rate / TELEMETRY_HZ, 1),
            "samples": n_flat,
            "paced_worst_stall_ms": round(worst_ms, 3),
            "paced_median_commit_ms": round(statistics.median(flushes) * 1000, 3),
            "paced_median_append_us": round(statistics.median(stalls) * 1e6, 2),
            "paced_samples": n_paced,
            "chain_verifies": ok,
            "target": f">= 10x the 100 Hz rate, worst stall <= {STALL_TARGET_MS:g} ms",
            "meets_target": rate >= 10 * TELEMETRY_HZ and worst_ms <= STALL_TARGET_MS and ok,
        }
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    return records_samples_per_s(quick)

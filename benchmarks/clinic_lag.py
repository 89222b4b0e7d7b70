"""`clinic_sync_lag_ms`: from a record's close at a bench to its closing link's visibility in the clinic store, with
16 benches syncing at once.

Each bench is a process of its own (as each is a PC of its own), with its own SQLite store and bench name, pushed
as a login role of its own (a member of `ionctl_bench`). In it, the bench's sessions: a record opened, a few
thousand samples appended, closed, then 0.5 to 2 s until the next one (random, seeded per bench); and beside it
the sync loop `ionctl records sync --watch --interval 0.5` runs: `ionctl.records.clinic.sync.push` from its own
connection to the store, every 0.5 s, in a thread. The close's time is taken on the bench when `close_record`
returns (the closing committed to the bench's store).

Visibility is judged from the clinic's side, not by the sync: one observer connection in this process polls the
clinic's `links` every 20 ms and notes when each closing first appears; a closing's lag is that moment (the end
of the poll that saw it: an upper bound, by at most one poll) minus its close on the bench. Both times are this
machine's wall clock. The server's own `links.received` (the row's insert, before its round commits) minus the
close is reported beside it. Every bench's records and every closing are counted: one missing fails the target.

On one machine the 16 benches' own sessions (appending, hashing), their syncs, the observer and the server share
its cores, which a clinic's PCs would not: the figure is pessimistic for the network-free part and says nothing
of a network's latency.
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.clinic import CLINIC_DB, bench_logins, clinic_server, closed_record, not_measured
from benchmarks.pgserver import PostgresUnavailable

LAG_TARGET_MS = 2000.0
INTERVAL_S = 0.5  # `ionctl records sync --watch --interval 0.5`
POLL_S = 0.02


def _sync_loop(path: Path, conninfo: str, bench: str, stop: threading.Event, errors: list[str]) -> None:
    """What `ionctl records sync --watch --interval 0.5` does for one bench: push, wait, push again, until told
    to stop (then one last push); an outage or a refusal is noted and retried, as the command does."""
    from ionctl.records import Store
    from ionctl.records.clinic.schema import ClinicError
    from ionctl.records.clinic.sync import connect, push

    store = Store(path)
    clinic: Any = None
    try:
        while True:
            last = stop.is_set()
            try:
                if clinic is None:
                    clinic = connect(conninfo)
                push(store.db, clinic, bench)
            except ClinicError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                if clinic is not None:
                    clinic.close()
                    clinic = None
            if last:
                break
            stop.wait(INTERVAL_S)
    finally:
        if clinic is not None:
            clinic.close()
        store.close()


def bench_worker(folder: str, conninfo: str, bench: str, seed: int, start_at: float, duration_s: float,
                 samples: tuple[int, int], pause_s: tuple[float, float]) -> dict[str, Any]:  # fmt: skip
    """One bench, in a process of its own: sessions closing at a realistic pace and the sync loop beside them.
    Returns each closed record's (id, close time) and what went wrong."""
    from ionctl.records import Store

    rng = random.Random(seed)
    path = Path(folder) / f"{bench}.sqlite3"
    store = Store(path)
    stop = threading.Event()
    errors: list[str] = []
    syncer = threading.Thread(target=_sync_loop, args=(path, conninfo, bench, stop, errors), daemon=True)
    time.sleep(max(0.0, start_at - time.time()))
    syncer.start()
    closed: list[tuple[int, float]] = []
    end = start_at + duration_s
    time.sleep(rng.uniform(*pause_s))  # the benches do not start in step
    while time.time() < end:
        record_id = closed_record(store, rng.randint(*samples), rng, patient=f"P-{bench}")
        closed.append((record_id, time.time()))
        time.sleep(rng.uniform(*pause_s))
    stop.set()
    syncer.join(timeout=60)
    store.close()
    return {"bench": bench, "closed": closed, "errors": errors, "sync_stuck": syncer.is_alive()}


def _percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank), q in 0..100."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def _observe(conninfo: str, seen: dict[tuple[str, int], tuple[float, float]], done: threading.Event) -> None:
    """Poll the clinic every POLL_S: when each closing (bench, record id) first appears, and its `received`."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as db:
        while True:
            finished = done.is_set()
            rows = db.execute("SELECT bench, (doc->>'id')::bigint, extract(epoch FROM received)::float8 "
                              "FROM ionctl.links WHERE kind = 'close'").fetchall()  # fmt: skip
            now = time.time()
            for bench, record_id, received in rows:
                seen.setdefault((str(bench), int(record_id)), (now, float(received)))
            if finished:
                return
            time.sleep(POLL_S)


def clinic_sync_lag_ms(quick: bool) -> list[dict[str, Any]]:
    from ionctl.records.clinic.schema import initialise

    name, target = "clinic_sync_lag_ms", f"p99 <= {LAG_TARGET_MS:g} ms"
    unit = ("ms, p99 (p50 beside it) from a record's close at a bench to its closing's visibility in the clinic "
            "store, benches each syncing every 0.5 s at once")  # fmt: skip
    benches, duration_s, samples = (4, 6.0, (500, 1_000)) if quick else (16, 40.0, (2_000, 4_000))
    pause_s = (0.5, 2.0)
    names = [f"bench-{i:02d}" for i in range(benches)]
    seen: dict[tuple[str, int], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ionctl-bench-lag-") as directory:
        try:
            with clinic_server(Path(directory)) as server:
                logins = [n.replace("-", "_") for n in names]
                bench_logins(server, logins)
                initialise(server.conninfo(dbname=CLINIC_DB), benches=dict(zip(names, logins, strict=True)))
                done = threading.Event()
                observer = threading.Thread(target=_observe, args=(server.conninfo(dbname=CLINIC_DB), seen, done))
                spawn = multiprocessing.get_context("spawn")
                with concurrent.futures.ProcessPoolExecutor(benches, mp_context=spawn) as pool:
                    start_at = time.time() + 8.0  # the processes' start-up (imports) is not the benches' work
                    futures = [pool.submit(bench_worker, directory, server.conninfo(dbname=CLINIC_DB, user=login),
                                           bench, 1000 + i, start_at, duration_s, samples, pause_s)
                               for i, (bench, login) in enumerate(zip(names, logins, strict=True))]  # fmt: skip
                    observer.start()
                    results = [f.result(timeout=duration_s + 120) for f in futures]
                done.set()
                observer.join(timeout=30)
        except PostgresUnavailable as exc:
            return [not_measured(name, unit, target, f"no PostgreSQL server could be started: {exc}")]
    closes = {(r["bench"], rid): t for r in results for rid, t in r["closed"]}
    missing = sorted(f"{b}/{i}" for b, i in closes if (b, i) not in seen)
    unexpected = sorted(f"{b}/{i}" for b, i in seen if (b, i) not in closes)
    lags = [(seen[key][0] - t) * 1000 for key, t in closes.items() if key in seen]
    received = [(seen[key][1] - t) * 1000 for key, t in closes.items() if key in seen]
    errors = [f"{r['bench']}: {e}" for r in results for e in r["errors"]]
    stuck = [r["bench"] for r in results if r["sync_stuck"]]
    if not lags:
        return [not_measured(name, unit, target, f"no closing seen in the clinic store ({len(closes)} closed); "
                                                 f"errors: {errors[:3]}")]  # fmt: skip
    p50, p99 = _percentile(lags, 50), _percentile(lags, 99)
    ok = p99 <= LAG_TARGET_MS and not missing and not unexpected and not stuck
    return [
        {
            "name": name,
            "value": round(p99, 1),
            "unit": unit,
            "p50_ms": round(p50, 1),
            "p99_ms": round(p99, 1),
            "max_ms": round(max(lags), 1),
            "n": len(lags),
            "received_p50_ms": round(_percentile(received, 50), 1),
            "received_p99_ms": round(_percentile(received, 99), 1),
            "benches": benches,
            "duration_s": duration_s,
            "samples_per_record": list(samples),
            "pause_s": list(pause_s),
            "sync_interval_s": INTERVAL_S,
            "observer_poll_s": POLL_S,
            "records_closed": len(closes),
            "missing": missing[:20],
            "unexpected": unexpected[:20],
            "sync_errors": len(errors),
            "sync_error_examples": errors[:3],
            "sync_stuck": stuck,
            "target": target,
            "meets_target": ok,
        }
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    return clinic_sync_lag_ms(quick)

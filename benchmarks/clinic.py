"""Clinic store figures: `clinic_ingest_vs_copy` here, `clinic_sync_lag_ms` in `benchmarks.clinic_lag`.

Both start their own throwaway PostgreSQL server (`benchmarks.pgserver`, the one the clinic store's tests use: a
cluster in a temporary folder on a Unix socket, fsync off). Where no server can be started, each figure is
reported as not measured, with the reason (`value` None, `meets_target` None): never as met.

`clinic_ingest_vs_copy`: telemetry rows per second through `ionctl.records.clinic.sync.push`, from a bench store
of many closed records (built with the Store API: `open_record`, `append_telemetry`, `close_record`) into a fresh
clinic database made by `ionctl.records.clinic.schema.initialise`, pushed as a bench login (a member of
`ionctl_bench`). Everything the sync does is timed: reading the bench's SQLite store, canonical lines, verifying
each link here, the COPY of each closing's telemetry, and on the server the primary key, the statement trigger on
the telemetry and the closing's re-verification against it (count and SHA-256 of every line). The baseline, in
the same server and the same run: a bare `COPY` of the same telemetry rows, read from the same bench store with
their typed columns (`bench, record_id, n` and the sample's nine values), into a plain table with no trigger,
index or key: moving the same rows with nothing checked, canonicalised or hashed. It is timed twice (before and
after the push) and the faster kept, so the ratio is never flattered. Target >= 0.5: the verified sync moves a
bench's telemetry at least half as fast as a bare copy of it.

Beside the ratio, to show where the time goes: the rate at which this machine reads the bench's telemetry and
makes its canonical lines (`ionctl.records.clinic.links.telemetry_lines`, which the sync calls), a COPY of those
lines already in memory into a plain table (the server's bare intake, with nothing read or made on the bench), and
the same into a table with the clinic telemetry's primary key (no trigger).
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.pgserver import PostgresServer, PostgresUnavailable
from ionctl.records import Store

INGEST_TARGET = 0.5
CLINIC_DB = "clinic"


def sample(i: int, rng: random.Random) -> tuple[Any, ...]:
    """One telemetry sample in `ionctl.records.chain.TELEMETRY_FIELDS` order, at 100 Hz, with measured noise."""
    t = i * 0.01
    current = 4.0 + rng.gauss(0.0, 0.002)
    impedance = 3125.0 + rng.gauss(0.0, 5.0)
    return (round(t, 2), 4.0, round(current, 4), round(current * impedance / 1000, 3), round(impedance, 1),
            round(t * 4 / 60, 5), round(t * 4 / 60, 5), 0, "delivering")  # fmt: skip


def closed_record(store: Store, samples: int, rng: random.Random, *, patient: str = "P-BENCH") -> int:
    """Open a record, append `samples` samples in one transaction and close it; its id."""
    record_id = store.open_record(patient=patient, operator="O-BENCH", prescription={"current_ma": 4.0},
                                  limits={}, limits_sha256="")  # fmt: skip
    store.append_telemetry(record_id, [sample(i, rng) for i in range(samples)])
    store.close_record(record_id, {"outcome": "completed", "dose_ma_min": samples * 0.01 * 4 / 60,
                                   "duration_s": samples * 0.01})  # fmt: skip
    return record_id


@contextmanager
def clinic_server(parent: Path) -> Iterator[PostgresServer]:
    """A throwaway server with an empty database `clinic`; PostgresUnavailable where none can be started."""
    import psycopg

    with PostgresServer.started(parent) as server:
        with psycopg.connect(server.conninfo(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {CLINIC_DB}")
        yield server


def bench_logins(server: PostgresServer, names: Sequence[str]) -> None:
    """Create login roles (the clinic's administrator's part) that `initialise` then makes benches."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server.conninfo(dbname=CLINIC_DB), autocommit=True) as admin:
        for name in names:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))


def not_measured(name: str, unit: str, target: str, reason: str) -> dict[str, Any]:
    """A figure that could not be measured here: no value, no verdict, and why."""
    return {"name": name, "value": None, "unit": unit, "target": target, "meets_target": None,
            "not_measured": reason}  # fmt: skip


def _bare_copy(server: PostgresServer, rows: list[tuple[str, int, int, str]], table: str, *,
               keyed: bool = False) -> float:  # fmt: skip
    """Seconds for one COPY of `rows` into a new plain table (no trigger, index or key), committed; `keyed`: a
    table like the clinic's telemetry with its primary key (and still no trigger), to show what the key costs."""
    import psycopg

    with psycopg.connect(server.conninfo(dbname=CLINIC_DB)) as db:
        if keyed:
            db.execute(f"CREATE TABLE public.{table} (LIKE ionctl.telemetry INCLUDING CONSTRAINTS INCLUDING INDEXES)")
        else:
            db.execute(f"CREATE TABLE public.{table} (bench text NOT NULL, record_id bigint NOT NULL, "
                       "n integer NOT NULL, line text NOT NULL)")  # fmt: skip
        db.commit()
        start = time.perf_counter()
        with db.cursor().copy(f"COPY public.{table} (bench, record_id, n, line) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        db.commit()
        elapsed = time.perf_counter() - start
        (count,) = db.execute(f"SELECT count(*) FROM public.{table}").fetchone() or (0,)
    if count != len(rows):
        raise RuntimeError(f"bare COPY stored {count} rows of {len(rows)}")
    return elapsed


def _bare_copy_of_samples(server: PostgresServer, store: Store, bench: str, table: str) -> tuple[float, int]:
    """(seconds, rows) to move the bench's telemetry rows as they are (their typed columns) from its store into a
    new plain table (no trigger, index or key) with one COPY, committed: what moving the same rows costs with
    nothing checked, canonicalised or hashed. The baseline of `clinic_ingest_vs_copy`."""
    import psycopg

    from ionctl.records.chain import TELEMETRY_FIELDS

    columns = ", ".join(TELEMETRY_FIELDS)
    with psycopg.connect(server.conninfo(dbname=CLINIC_DB)) as db:
        db.execute(f"CREATE TABLE public.{table} (bench text NOT NULL, record_id bigint NOT NULL, n bigint NOT NULL, "
                   "t_s double precision, set_ma double precision, current_ma double precision, "
                   "voltage_v double precision, impedance_ohm double precision, dose_ma_min double precision, "
                   "device_dose_ma_min double precision, at_compliance integer, state text)")  # fmt: skip
        db.commit()
        start = time.perf_counter()
        read = store.db.cursor()
        read.row_factory = None
        with db.cursor().copy(f"COPY public.{table} (bench, record_id, n, {columns}) FROM STDIN") as copy:
            for row in read.execute(f"SELECT record_id, rowid, {columns} FROM telemetry ORDER BY rowid"):
                copy.write_row((bench, *row))
        db.commit()
        elapsed = time.perf_counter() - start
        (count,) = db.execute(f"SELECT count(*) FROM public.{table}").fetchone() or (0,)
    return elapsed, int(count)


def clinic_ingest_vs_copy(quick: bool) -> list[dict[str, Any]]:
    from ionctl.records.clinic.links import telemetry_lines
    from ionctl.records.clinic.schema import initialise
    from ionctl.records.clinic.sync import connect, push

    name, target = "clinic_ingest_vs_copy", f">= {INGEST_TARGET}"
    unit = ("ratio: telemetry rows/s through ionctl.records.clinic.sync.push (bench store to a fresh clinic "
            "database, as a bench login) to rows/s of a bare COPY of the same lines into a plain table")  # fmt: skip
    records, per_record = (3, 2_000) if quick else (20, 20_000)
    bench = "bench-a"
    rng = random.Random(17)
    with tempfile.TemporaryDirectory(prefix="ionctl-bench-clinic-") as directory:
        folder = Path(directory)
        start = time.perf_counter()
        store = Store(folder / "bench.sqlite3")
        ids = [closed_record(store, per_record, rng) for _ in range(records)]
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        rows = [(bench, rid, n, line) for rid in ids for n, line in enumerate(telemetry_lines(store.db, rid))]
        lines_s = time.perf_counter() - start
        try:
            with clinic_server(folder) as server:
                bench_logins(server, ["bench_a"])
                initialise(server.conninfo(dbname=CLINIC_DB), benches={bench: "bench_a"})
                copy_before_s, moved_before = _bare_copy_of_samples(server, store, bench, "bare_before")
                lines_copy_s = _bare_copy(server, rows, "bare_lines")
                clinic = connect(server.conninfo(dbname=CLINIC_DB, user="bench_a"))
                try:
                    start = time.perf_counter()
                    pushed = push(store.db, clinic, bench)
                    push_s = time.perf_counter() - start
                    (stored,) = clinic.execute("SELECT count(*) FROM ionctl.telemetry WHERE bench = %s",
                                               (bench,)).fetchone()  # fmt: skip
                finally:
                    clinic.close()
                copy_after_s, moved_after = _bare_copy_of_samples(server, store, bench, "bare_after")
                keyed_s = _bare_copy(server, rows, "keyed", keyed=True)
        except PostgresUnavailable as exc:
            store.close()
            return [not_measured(name, unit, target, f"no PostgreSQL server could be started: {exc}")]
        store.close()
    samples = len(rows)
    if moved_before != samples or moved_after != samples:
        raise RuntimeError(f"the bare COPY moved {moved_before} and {moved_after} rows of {samples}")
    if pushed.samples != samples or stored != samples or pushed.closings != records:
        raise RuntimeError(f"push sent {pushed.samples} samples ({pushed.closings} closings), the clinic holds "
                           f"{stored}; the bench store has {samples} in {records} records")  # fmt: skip
    copy_s = min(copy_before_s, copy_after_s)
    sync_rate, copy_rate = samples / push_s, samples / copy_s
    ratio = round(sync_rate / copy_rate, 3)
    return [
        {
            "name": name,
            "value": ratio,
            "unit": unit,
            "baseline": 1.0,
            "baseline_name": "a bare COPY of the same telemetry rows, read from the same bench store with their "
            "typed columns, into a plain table (no trigger, index or key), same server, same run: the faster of one "
            "before and one after the push",
            "ratio": ratio,
            "sync_rows_per_s": round(sync_rate),
            "copy_rows_per_s": round(copy_rate),
            "copy_rows_per_s_before_push": round(samples / copy_before_s),
            "copy_rows_per_s_after_push": round(samples / copy_after_s),
            "copy_keyed_rows_per_s": round(samples / keyed_s),
            "copy_of_ready_lines_rows_per_s": round(samples / lines_copy_s),
            "push_s": round(push_s, 3),
            "rows": samples,
            "records": records,
            "samples_per_record": per_record,
            "links_pushed": pushed.links,
            "rounds": pushed.rounds,
            "bench_store_build_s": round(build_s, 2),
            "canonical_lines_s": round(lines_s, 3),
            "canonical_lines_per_s": round(samples / lines_s),
            "target": target,
            "meets_target": ratio >= INGEST_TARGET,
        }
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    from benchmarks import clinic_lag

    return clinic_ingest_vs_copy(quick) + clinic_lag.clinic_sync_lag_ms(quick)

"""What the sync tests share: a clinic store set up with a bench login, a site file naming it, bench stores with a
backlog made through the Store API, and the ground truth of both sides (every link's (gseq, hash), every record's
telemetry as stored) to compare."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from ionctl.records import Store
from ionctl.records.clinic.links import links_after, telemetry_lines
from ionctl.records.clinic.schema import initialise
from tests.pg import PostgresServer

BENCH_LOGIN = "ionctl_test_bench"
#: The bench names the clinic tests use, each bound to the login that sends for it (`initialise(benches=...)`).
TEST_BENCHES = ("bench-a", "bench-b", "bench-c", "bench-demo", "bench-o", "bench-r")


def bound_to(login: str) -> dict[str, str]:
    """Every test bench bound to `login` (the superuser `postgres` for tests that push as it)."""
    return dict.fromkeys(TEST_BENCHES, login)
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ClinicStore:
    """A clinic store set up by `ionctl clinic init`'s code: the administrator's and the bench login's conninfo."""

    admin: str
    bench: str
    dbname: str


def set_up(postgres: PostgresServer, clinic_db: str) -> ClinicStore:
    """The schema in `clinic_db`, and a login role (cluster-wide, made once) granted ionctl_bench."""
    with psycopg.connect(postgres.conninfo(), autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (BENCH_LOGIN,)).fetchone() is None:
            admin.execute(f"CREATE ROLE {BENCH_LOGIN} LOGIN")
    initialise(clinic_db, benches=bound_to(BENCH_LOGIN))
    dbname = dbname_of(clinic_db)
    return ClinicStore(clinic_db, postgres.conninfo(dbname=dbname, user=BENCH_LOGIN), dbname)


def dbname_of(conninfo: str) -> str:
    found = re.search(r"dbname=(\S+)", conninfo)
    assert found is not None
    return found.group(1)


def site_file(path: Path, store: Path, conninfo: str, bench: str = "bench-a", text: str = "") -> Path:
    """A site file naming this bench's store and the clinic store (`text` first: the rest of a site file)."""
    path.write_text(
        f'{text}\n[records]\nstore = "{store}"\n\n[clinic]\nstore = "{conninfo}"\nbench = "{bench}"\ntimeout_s = 2\n',
        encoding="utf-8",
    )
    return path


def fill(path: Path, records: int, samples: int, *, events: int = 2, patient: str = "P-1") -> None:
    """Append `records` closed records to the store at `path`, each with `samples` telemetry rows and `events`
    events, and an audit entry each (made fast: through the Store API, no session)."""
    with Store(path) as store:
        for _ in range(records):
            rid = store.open_record(
                patient=patient,
                operator="tess",
                prescription={"current_ma": 1.0},
                limits={"max_current_ma": 4.0},
                limits_sha256="0" * 64,
            )
            for e in range(events):
                store.append_event(rid, "note", f"event {e}", device_t_s=float(e))
            rows = [
                (i * 0.1, 1.0, 0.999, 3.0 + i % 7, 3000.0, i * 1e-4, i * 1e-4, 0, "delivering") for i in range(samples)
            ]
            store.append_telemetry(rid, rows)
            store.close_record(rid, {"outcome": "completed", "dose_ma_min": samples * 1e-4})
            store.append_audit("note", "tess", {"text": f"record {rid}"}, record_id=rid)


def ionctl(*args: str, timeout_s: float = 60, input: str | None = None) -> subprocess.CompletedProcess[str]:
    stdin: dict[str, Any] = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run(
        [sys.executable, "-m", "ionctl", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, **stdin
    )


@dataclass(frozen=True)
class Side:
    """One side's ground truth: every link (gseq, kind, hash) and every closed record's telemetry
    (count, sha256 over its lines as the closing hashed them)."""

    links: list[tuple[int, str, str]]
    telemetry: dict[int, tuple[int, str]]


def local_side(path: Path) -> Side:
    with Store(path, create=False) as store:
        links = links_after(store.db, 0, 10**9)
        telemetry: dict[int, tuple[int, str]] = {}
        for link in links:
            if link.kind == "close" and link.record_id is not None:
                lines = list(telemetry_lines(store.db, link.record_id))
                telemetry[link.record_id] = (len(lines), _digest(lines))
                closing = json.loads(link.content)  # the closing's own count and digest: the lines must match
                assert (closing["telemetry_count"], closing["telemetry_sha256"]) == telemetry[link.record_id]
    return Side([(link.gseq, link.kind, link.hash) for link in links], telemetry)


def clinic_side(conninfo: str, bench: str = "bench-a") -> Side:
    with psycopg.connect(conninfo) as db:
        links = [
            (int(g), str(k), str(h))
            for g, k, h in db.execute(
                "SELECT gseq, kind, hash FROM ionctl.links WHERE bench = %s ORDER BY gseq", (bench,)
            )
        ]
        lines: dict[int, list[str]] = {}
        for rid, line in db.execute(
            "SELECT record_id, line FROM ionctl.telemetry WHERE bench = %s ORDER BY record_id, n", (bench,)
        ):
            lines.setdefault(int(rid), []).append(str(line))
        closed = [
            int(r)
            for (r,) in db.execute(
                "SELECT (doc->>'id')::bigint FROM ionctl.links WHERE bench = %s AND kind = 'close'", (bench,)
            )
        ]
    return Side(links, {rid: (len(lines.get(rid, [])), _digest(lines.get(rid, []))) for rid in closed})


def rows(conninfo: str) -> tuple[int, int]:
    """(links, telemetry) row counts of the whole clinic store."""
    with psycopg.connect(conninfo) as db:
        (links,) = db.execute("SELECT count(*) FROM ionctl.links").fetchone() or (0,)
        (samples,) = db.execute("SELECT count(*) FROM ionctl.telemetry").fetchone() or (0,)
    return int(links), int(samples)


def assert_equal_sides(path: Path, conninfo: str, bench: str = "bench-a") -> Side:
    """Every link and every record's telemetry equal on both sides, and the clinic's row counts exactly the
    local ones (no duplicate, nothing lost)."""
    here, there = local_side(path), clinic_side(conninfo, bench)
    assert there.links == here.links
    assert there.telemetry == here.telemetry
    assert rows(conninfo) == (len(here.links), sum(count for count, _ in here.telemetry.values()))
    return here


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()

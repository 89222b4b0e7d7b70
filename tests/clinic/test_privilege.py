"""What a bench's login can and cannot do to the clinic store, each attack made against a real server: it sends for
its own bench only, cannot write who sent a row or when, cannot register another bench's store, cannot make the
arrival checks read tables of its own, cannot add samples to another bench's records, and cannot hang another
bench's sync by holding its lock."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from ionctl.records import Store
from ionctl.records.chain import GENESIS, canonical, link_hash
from ionctl.records.clinic import sync as syncing
from ionctl.records.clinic.schema import SCHEMA, initialise
from ionctl.records.clinic.sync import ClinicUnreachable, NotSetUp, connect, push
from tests.clinic.syncing import clinic_side, dbname_of, fill
from tests.pg import PostgresServer

LOGINS = {"bench-a": "priv_bench_a", "bench-b": "priv_bench_b"}


@pytest.fixture
def two(postgres: PostgresServer, clinic_db: str, tmp_path: Path) -> dict[str, str]:
    """A clinic store with bench-a and bench-b bound to their own logins, bench-a's store sent: each login's
    conninfo, and the administrator's under "admin"."""
    with psycopg.connect(postgres.conninfo(), autocommit=True) as admin:
        for login in LOGINS.values():
            if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone() is None:
                admin.execute(f"CREATE ROLE {login} LOGIN")
    initialise(clinic_db, benches=LOGINS)
    dbname = dbname_of(clinic_db)
    fill(tmp_path / "a.sqlite3", records=2, samples=5)
    conninfo = {bench: postgres.conninfo(dbname=dbname, user=login) for bench, login in LOGINS.items()}
    with Store(tmp_path / "a.sqlite3") as store, connect(conninfo["bench-a"]) as clinic:
        push(store.db, clinic, "bench-a")
    return {**conninfo, "admin": clinic_db}


def _next_link(conninfo: str, bench: str) -> tuple[int, str, str, str]:
    """A well-formed next link of `bench` (an audit entry), hashed on the clinic's own head: (gseq, kind,
    content, hash)."""
    with psycopg.connect(conninfo) as db:
        gseq, head = db.execute(f"SELECT gseq, hash FROM {SCHEMA}.links WHERE bench = %s ORDER BY gseq DESC LIMIT 1",
                                (bench,)).fetchone() or (0, GENESIS)  # fmt: skip
    content = {"seq": 99, "utc": "2030-01-01T00:00:00.000+00:00", "actor": "mallory", "action": "note",
               "record_id": None, "course_id": None, "detail": "{}", "gseq": gseq + 1}  # fmt: skip
    return gseq + 1, "audit", canonical(content), link_hash(head, "audit", content)


def test_a_login_cannot_send_for_another_bench(two: dict[str, str]) -> None:
    before = clinic_side(two["admin"], "bench-a")
    gseq, kind, content, digest = _next_link(two["admin"], "bench-a")
    with psycopg.connect(two["bench-b"]) as db, pytest.raises(psycopg.errors.InsufficientPrivilege,
                                                               match="does not send for bench bench-a"):  # fmt: skip
        db.execute(f"INSERT INTO {SCHEMA}.links (bench, gseq, kind, content, hash) VALUES (%s, %s, %s, %s, %s)",
                   ("bench-a", gseq, kind, content, digest))  # fmt: skip
    with psycopg.connect(two["bench-b"]) as db, pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute(f"INSERT INTO {SCHEMA}.telemetry (bench, record_id, n, line) VALUES ('bench-a', 3, 0, '{{}}')")
    assert clinic_side(two["admin"], "bench-a") == before
    # the link itself was well formed: bench-a's own login may send it
    with psycopg.connect(two["bench-a"]) as db:
        db.execute(f"INSERT INTO {SCHEMA}.links (bench, gseq, kind, content, hash) VALUES (%s, %s, %s, %s, %s)",
                   ("bench-a", gseq, kind, content, digest))  # fmt: skip


def test_who_sent_a_row_and_when_are_the_servers(two: dict[str, str]) -> None:
    gseq, kind, content, digest = _next_link(two["admin"], "bench-a")
    with psycopg.connect(two["bench-a"]) as db, pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute(f"INSERT INTO {SCHEMA}.links (bench, gseq, kind, content, hash, received_by, received) "
                   "VALUES (%s, %s, %s, %s, %s, 'someone_else', '2020-01-01')",
                   ("bench-a", gseq, kind, content, digest))  # fmt: skip
    with psycopg.connect(two["bench-a"]) as db, pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute(f"INSERT INTO {SCHEMA}.conflicts (bench, what, detail, reported_by) "
                   "VALUES ('bench-a', 'x', 'y', 'someone_else')")  # fmt: skip
    with psycopg.connect(two["admin"]) as db:
        senders = {r[0] for r in db.execute(f"SELECT DISTINCT received_by FROM {SCHEMA}.links")}
    assert senders == {LOGINS["bench-a"]}


def test_a_login_cannot_bind_or_register_a_bench(two: dict[str, str], tmp_path: Path) -> None:
    with psycopg.connect(two["bench-b"]) as db, pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute(f"INSERT INTO {SCHEMA}.benches (bench, login) VALUES ('bench-c', current_user)")
    with psycopg.connect(two["bench-b"]) as db, pytest.raises(psycopg.errors.InsufficientPrivilege,
                                                               match="does not send for bench bench-c"):  # fmt: skip
        db.execute(f"INSERT INTO {SCHEMA}.stores (bench, first_link) VALUES ('bench-c', %s)", ("c" * 64,))
    # and the sync of a bench no login is bound to says what the database administrator must do
    fill(tmp_path / "c.sqlite3", records=1, samples=2)
    with Store(tmp_path / "c.sqlite3") as store, connect(two["bench-b"]) as clinic, \
            pytest.raises(NotSetUp, match="clinic add-bench"):  # fmt: skip
        push(store.db, clinic, "bench-c")


def test_the_arrival_checks_cannot_be_pointed_at_tables_of_the_senders_own(two: dict[str, str]) -> None:
    """A temporary table named `links` (or `telemetry`) comes first on a search path that names pg_temp late or
    not at all: the checks name their tables, so a link chained on a head of the sender's choosing is refused."""
    gseq, _, _, _ = _next_link(two["admin"], "bench-a")
    fake_head = "f" * 64
    content = {"seq": 99, "utc": "2030-01-01T00:00:00.000+00:00", "actor": "mallory", "action": "note",
               "record_id": None, "course_id": None, "detail": "{}", "gseq": gseq}  # fmt: skip
    with psycopg.connect(two["bench-a"]) as db:
        db.execute("CREATE TEMP TABLE links (bench text, gseq bigint, hash text, kind text, doc jsonb)")
        db.execute("CREATE TEMP TABLE telemetry (bench text, record_id bigint, n int, line text)")
        db.execute("INSERT INTO pg_temp.links VALUES ('bench-a', %s, %s, 'audit', '{}')", (gseq - 1, fake_head))
        db.execute("SET search_path = pg_temp, ionctl, public")
        with pytest.raises(psycopg.errors.CheckViolation, match="does not verify"):
            db.execute("INSERT INTO ionctl.links (bench, gseq, kind, content, hash) VALUES (%s, %s, %s, %s, %s)",
                       ("bench-a", gseq, "audit", canonical(content), link_hash(fake_head, "audit", content)))
    with psycopg.connect(two["bench-a"]) as db:
        db.execute("CREATE TEMP TABLE links (bench text, kind text, doc jsonb)")  # no closing of record 1 here
        db.execute("SET search_path = pg_temp, ionctl, public")
        with pytest.raises(psycopg.errors.CheckViolation, match="telemetry after the record closed"):
            db.execute("INSERT INTO ionctl.telemetry (bench, record_id, n, line) VALUES ('bench-a', 1, 99, '{}')")


def test_a_lock_held_by_another_login_ends_a_sync_round_instead_of_hanging_it(
    two: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(syncing, "LOCK_TIMEOUT_S", 1)
    fill(tmp_path / "a.sqlite3", records=1, samples=3)  # more to send
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with psycopg.connect(two["bench-b"], autocommit=True) as db:
            db.execute("SELECT pg_advisory_lock(hashtextextended('ionctl bench bench-a', 0))")
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        with Store(tmp_path / "a.sqlite3") as store, connect(two["bench-a"]) as clinic, \
                pytest.raises(ClinicUnreachable, match="did not answer in time"):  # fmt: skip
            push(store.db, clinic, "bench-a")
    finally:
        release.set()
        holder.join()
    with Store(tmp_path / "a.sqlite3") as store, connect(two["bench-a"]) as clinic:
        assert push(store.db, clinic, "bench-a").links > 0  # the lock gone, it catches up

"""`ionctl clinic init` and `ionctl clinic status` against a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import psycopg

from tests.clinic.syncing import BENCH_LOGIN, dbname_of, fill, ionctl, set_up, site_file
from tests.pg import PostgresServer

READER_LOGIN = "ionctl_test_reader"


def _login_roles(postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.conninfo(), autocommit=True) as admin:
        for role in (BENCH_LOGIN, READER_LOGIN):
            if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
                admin.execute(f"CREATE ROLE {role} LOGIN")


def test_init_creates_the_schema_and_grants_the_logins_it_names(postgres: PostgresServer, clinic_db: str) -> None:
    _login_roles(postgres)
    done = ionctl("clinic", "init", clinic_db, "--bench", f"bench-a={BENCH_LOGIN}", "--reader-login", READER_LOGIN)
    assert done.returncode == 0, done.stderr
    assert "schema ionctl (version 1) created" in done.stdout
    assert f"bench bench-a bound to login {BENCH_LOGIN} (granted ionctl_bench)" in done.stdout
    assert f"{READER_LOGIN} granted ionctl_reader" in done.stdout
    reader = postgres.conninfo(dbname=dbname_of(clinic_db), user=READER_LOGIN)
    with psycopg.connect(reader) as db:
        assert db.execute("SELECT value FROM ionctl.meta").fetchone() == ("1",)
        try:
            db.execute("INSERT INTO ionctl.conflicts (bench, what, detail) VALUES ('x', 'y', 'z')")
            raise AssertionError("the reader may insert")
        except psycopg.errors.InsufficientPrivilege:
            pass


def test_init_is_refused_where_the_schema_is_already_there(postgres: PostgresServer, clinic_db: str) -> None:
    set_up(postgres, clinic_db)
    again = ionctl("clinic", "init", clinic_db)
    assert again.returncode == 2
    assert "already has the 'ionctl' schema: nothing changed" in again.stderr


def test_init_naming_a_role_that_does_not_exist_is_refused_and_changes_nothing(postgres: PostgresServer,
                                                                               clinic_db: str) -> None:  # fmt: skip
    done = ionctl("clinic", "init", clinic_db, "--bench", "bench-z=nobody_here")
    assert done.returncode == 2
    assert "no role 'nobody_here'" in done.stderr and "CREATE ROLE nobody_here LOGIN" in done.stderr
    with psycopg.connect(clinic_db) as db:
        assert db.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'ionctl'").fetchone() is None


def test_init_and_status_say_when_the_server_cannot_be_reached(tmp_path: Path) -> None:
    nowhere = f"host={tmp_path} port=5432 dbname=clinic user=nobody"
    done = ionctl("clinic", "init", nowhere)
    assert done.returncode == 3 and "cannot be reached" in done.stderr
    store = tmp_path / "bench.sqlite3"
    fill(store, records=1, samples=2)
    status = ionctl("clinic", "status", "--config", str(site_file(tmp_path / "site.toml", store, nowhere)))
    assert status.returncode == 3 and "cannot be reached" in status.stderr
    sync = ionctl("records", "sync", "--config", str(tmp_path / "site.toml"))
    assert sync.returncode == 3 and "cannot be reached" in sync.stderr


def test_status_shows_each_bench_what_is_not_sent_and_the_conflicts(postgres: PostgresServer, clinic_db: str,
                                                                    tmp_path: Path) -> None:  # fmt: skip
    clinic = set_up(postgres, clinic_db)
    store, other = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    fill(store, records=2, samples=5)
    fill(other, records=1, samples=5, patient="P-2")
    site = site_file(tmp_path / "a.toml", store, clinic.bench)
    assert ionctl("records", "sync", "--config", str(site)).returncode == 0
    fill(store, records=1, samples=5)  # 5 links more: open, 2 events, close, audit
    refused = ionctl("records", "sync", "--config", str(site_file(tmp_path / "b.toml", other, clinic.bench)))
    assert refused.returncode == 4
    status = ionctl("clinic", "status", "--config", str(site))
    assert status.returncode == 0, status.stderr
    out = status.stdout
    assert "schema version 1" in out and "this bench: bench-a" in out
    assert "bench-a\tlink 10\treceived " in out and "bench-b\tlink 0\t" in out and f"by {BENCH_LOGIN}" in out
    assert "5 links not sent yet" in out
    assert "conflicts (1):" in out and "bench-a: bench name taken" in out


def test_status_without_a_clinic_or_a_schema_says_what_to_do(postgres: PostgresServer, clinic_db: str,
                                                             tmp_path: Path) -> None:  # fmt: skip
    store = tmp_path / "bench.sqlite3"
    fill(store, records=1, samples=2)
    plain = tmp_path / "plain.toml"
    plain.write_text(f'[records]\nstore = "{store}"\n', encoding="utf-8")
    done = ionctl("clinic", "status", "--config", str(plain))
    assert done.returncode == 2 and "[clinic]" in done.stderr
    bare = ionctl("clinic", "status", "--config", str(site_file(tmp_path / "site.toml", store, clinic_db)))
    assert bare.returncode == 2 and "ionctl clinic init" in bare.stderr
    sync = ionctl("records", "sync", "--config", str(tmp_path / "site.toml"))
    assert sync.returncode == 2 and "ionctl clinic init" in sync.stderr

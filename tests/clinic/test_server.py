"""The throwaway PostgreSQL server itself: reached over its Unix socket only, and surviving a crash."""

from __future__ import annotations

import psycopg

from tests.pg import PostgresServer


def test_the_server_listens_on_its_unix_socket_only(postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.conninfo()) as db:
        (listen,) = db.execute("SHOW listen_addresses").fetchone() or ("?",)
        (sockets,) = db.execute("SHOW unix_socket_directories").fetchone() or ("?",)
    assert listen == "" and sockets == str(postgres.socket_dir)


def test_a_committed_row_survives_an_immediate_shutdown(postgres: PostgresServer, clinic_db: str) -> None:
    """What the outage tests rely on: an immediate stop (as a crash) and a start, the committed rows still there."""
    with psycopg.connect(clinic_db) as db:
        db.execute("CREATE TABLE t (n integer)")
        db.execute("INSERT INTO t VALUES (1), (2)")
        db.commit()
    postgres.stop("immediate")
    assert not postgres.running()
    postgres.start()
    with psycopg.connect(clinic_db) as db:
        assert db.execute("SELECT count(*) FROM t").fetchone() == (2,)

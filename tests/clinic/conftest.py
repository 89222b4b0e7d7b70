"""The clinic store's tests run against a real PostgreSQL server the suite starts itself (tests/pg.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import REQUIRE, PostgresServer, PostgresUnavailable


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the session's clinic tests (each test makes its own database). Its
    folder is a temporary folder of its own, not under pytest's: each pytest run that starts makes pytest's root
    folder 0700 again, which would take the server account's way to its data away in the middle of a run."""
    parent = Path(tempfile.mkdtemp(prefix="ionctl-clinic-"))
    try:
        with PostgresServer.started(parent) as server:
            yield server
    except PostgresUnavailable as exc:
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"the clinic store's tests need a PostgreSQL server: {exc}")
        pytest.skip(str(exc))
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def clinic_db(postgres: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new, empty database of its own for one test: its libpq connection string."""
    import psycopg

    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    with psycopg.connect(postgres.conninfo(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield postgres.conninfo(dbname=name)

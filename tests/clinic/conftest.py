"""The clinic store's tests run against a real PostgreSQL server the suite starts itself (tests/pg.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.pg import REQUIRE, PostgresServer, PostgresUnavailable


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the session's clinic tests (each test makes its own database)."""
    try:
        with PostgresServer.started(tmp_path_factory.mktemp("clinic")) as server:
            yield server
    except PostgresUnavailable as exc:
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"the clinic store's tests need a PostgreSQL server: {exc}")
        pytest.skip(str(exc))


@pytest.fixture
def clinic_db(postgres: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new, empty database of its own for one test: its libpq connection string."""
    import psycopg

    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    with psycopg.connect(postgres.conninfo(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield postgres.conninfo(dbname=name)

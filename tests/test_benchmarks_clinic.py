"""The clinic benchmarks where no PostgreSQL server can be started: each figure is reported as not measured, with
the reason, never as met. (Their figures themselves come from `python -m benchmarks`; nothing is timed here.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmarks import clinic, clinic_lag, pgserver


@contextmanager
def _no_server(parent: Path) -> Iterator[pgserver.PostgresServer]:
    raise pgserver.PostgresUnavailable("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    yield  # pragma: no cover


def test_without_a_server_both_figures_are_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgserver.PostgresServer, "started", staticmethod(_no_server))
    figures = clinic.run(quick=True)
    assert [f["name"] for f in figures] == ["clinic_ingest_vs_copy", "clinic_sync_lag_ms"]
    for figure in figures:
        assert figure["value"] is None and figure["meets_target"] is None and figure["target"]
        assert "no PostgreSQL server binaries" in figure["not_measured"]


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert clinic_lag._percentile(values, 50) == 50.0
    assert clinic_lag._percentile(values, 99) == 99.0
    assert clinic_lag._percentile([7.0], 99) == 7.0

"""`RecordRow` is the `records` table's row: the same columns, so a reader typed against it sees every change."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import get_type_hints

from ionctl.records import Store
from ionctl.records.rows import RecordRow
from ionctl.records.summary import RecordSummary


def columns(store: Store) -> list[str]:
    return [row[1] for row in store.db.execute("PRAGMA table_info(records)")]


def test_record_row_names_every_column_of_the_records_table_and_no_other(tmp_path: Path) -> None:
    with Store(tmp_path / "records.sqlite3") as store:
        assert sorted(get_type_hints(RecordRow)) == sorted(columns(store))


def test_every_field_of_a_closing_is_a_column_of_the_row() -> None:
    assert {f.name for f in fields(RecordSummary)} <= set(get_type_hints(RecordRow))


def test_the_store_returns_rows_with_exactly_those_keys(tmp_path: Path) -> None:
    with Store(tmp_path / "records.sqlite3") as store:
        store.open_record(patient="P-1", operator="tech", prescription={}, limits={}, limits_sha256="0" * 64)
        (row,) = store.list_records()
        assert set(row) == set(get_type_hints(RecordRow))
        assert set(store.get(row["id"]).fields) == set(row)

"""Addenda: a skin check or an adverse reaction noted after a record has closed is appended to the audit trail
against that record (the closed record itself never changes), and travels with it: `records show`, the JSON
export and its round trip, the chart PDF, and `verify`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ionctl.cli import main as cli
from ionctl.records import Record, Store
from ionctl.records.export import to_json
from ionctl.records.pdf import event_lines
from tests.records.test_store import finished_record


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "records.sqlite3") as s:
        yield s


def test_an_addendum_follows_a_closed_record_without_changing_it(store: Store) -> None:
    record_id = finished_record(store)
    closed = store.get(record_id).fields
    store.append_audit("skin-check-after", "O-1", {"text": "mild erythema under the cathode"}, record_id=record_id)
    store.append_audit("adverse-reaction", "O-1", {"text": "none"}, record_id=record_id)
    record = store.get(record_id)
    assert record.fields == closed
    assert [a["action"] for a in record.addenda] == ["skin-check-after", "adverse-reaction"]
    assert record.addenda[0]["detail"] == {"text": "mild erythema under the cathode"}
    assert store.verify() is None


def test_addenda_travel_in_the_json_export_and_the_chart(store: Store, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    record_id = finished_record(store)
    store.append_audit("skin-check-after", "O-1", {"text": "mild erythema under the cathode"}, record_id=record_id)
    record = store.get(record_id)
    assert Record.from_dict(json.loads(to_json(record))) == record
    assert any("skin-check-after (O-1): mild erythema under the cathode" in line for line in event_lines(record))
    assert cli(["records", "show", str(record_id), "--db", str(store.path)]) == 0
    assert "skin-check-after by O-1" in capsys.readouterr().out


def test_an_addendum_to_another_record_is_not_shown_on_this_one(store: Store) -> None:
    first, second = finished_record(store), finished_record(store, patient="P-2")
    store.append_audit("adverse-reaction", "O-1", {"text": "itching"}, record_id=second)
    assert store.get(first).addenda == [] and len(store.get(second).addenda) == 1

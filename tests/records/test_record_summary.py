"""A record's closing is a typed `RecordSummary`: a field the closing does not know is refused, not dropped."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from ionctl.core.session import SessionResult
from ionctl.records import Store
from ionctl.records.chain import CLOSE_FIELDS
from ionctl.records.summary import RecordSummary


def open_record(store: Store) -> int:
    return store.open_record(patient="P-SUM", operator="O-1", prescription={"drug": "x"}, limits={},
                             limits_sha256="ab" * 32)  # fmt: skip


def test_a_summary_carries_every_closing_column_the_caller_gives() -> None:
    given = {f.name for f in fields(RecordSummary)}
    stored_by_the_store = {"ended_utc", "telemetry_count", "telemetry_sha256", "close_gseq"}
    assert given == set(CLOSE_FIELDS) - stored_by_the_store


def test_a_summary_from_a_session_result_takes_its_figures_field_by_field() -> None:
    result = SessionResult(outcome="completed", fault=None, message="done", dose_ma_min=40.0, host_dose_ma_min=40.0,
                           device_dose_ma_min=39.9, energised=True, impedance_min_ohm=900.0)  # fmt: skip
    summary = RecordSummary.from_result(result)
    assert summary == RecordSummary.from_mapping(result.to_dict())  # the opening's and events' keys are left out
    assert (summary.outcome, summary.dose_ma_min, summary.device_dose_ma_min, summary.energised) == (
        "completed", 40.0, 39.9, True)  # fmt: skip


def test_a_closing_with_a_misspelt_field_is_refused_and_the_record_stays_open(tmp_path: Path) -> None:
    with Store(tmp_path / "r.sqlite3") as store:
        record_id = open_record(store)
        with pytest.raises(ValueError, match="dose_mA_min"):
            store.close_record(record_id, {"outcome": "completed", "dose_mA_min": 40.0})
        assert store.get(record_id).fields["outcome"] is None
        store.close_record(record_id, RecordSummary(outcome="completed", dose_ma_min=40.0, energised=True))
        row = store.get(record_id).fields
        assert store.verify() is None
    assert (row["outcome"], row["dose_ma_min"], row["energised"]) == ("completed", 40.0, 1)


def test_figures_from_stored_samples_update_a_closing_but_only_its_own_fields() -> None:
    closing = RecordSummary(outcome="fault", fault="internal")
    assert closing.updated({"dose_ma_min": 1.5}).dose_ma_min == 1.5
    with pytest.raises(ValueError, match="prescription"):
        closing.updated({"prescription": {}})

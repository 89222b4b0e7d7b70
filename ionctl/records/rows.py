"""The rows the store returns, typed: a renamed or dropped column is a type error at every reader, and a test holds
`RecordRow` to the `records` table's columns."""

from __future__ import annotations

from typing import TypedDict


class RecordRow(TypedDict):
    """One row of `records`, as stored (JSON columns as their text). `outcome` is None while the record is open."""

    id: int
    created_utc: str
    patient: str
    operator: str
    prescription: str
    limits: str
    limits_sha256: str
    open_gseq: int
    open_hash: str
    outcome: str | None
    fault: str | None
    message: str | None
    device: str | None
    dose_ma_min: float | None
    dose_source: str | None
    host_dose_ma_min: float | None
    device_dose_ma_min: float | None
    prescribed_dose_ma_min: float | None
    duration_s: float | None
    peak_current_ma: float | None
    peak_density_ma_cm2: float | None
    time_at_compliance_s: float | None
    impedance_start_ohm: float | None
    impedance_end_ohm: float | None
    impedance_min_ohm: float | None
    impedance_max_ohm: float | None
    energised: int | None
    alarm: int | None
    ended_utc: str | None
    telemetry_count: int | None
    telemetry_sha256: str | None
    close_gseq: int | None
    chain_hash: str | None
    config_sha256: str | None
    course_id: int | None
    course_ref: str | None  # schema 3: another bench's course, "BENCH/ID"
    clinical: str | None  # schema 4: the chart details (`ionctl.records.clinical.ClinicalDetails`), canonical JSON

"""Exports of a stored record: JSON (the whole record, schema-versioned; `Record.from_dict` reads it back)
and CSV (one row per telemetry sample). PDF and FHIR are not built yet: `FORMATS_NOT_BUILT`."""

from __future__ import annotations

import csv
import io
import json

from ionctl.records.store import Record

FORMATS = ("json", "csv")
FORMATS_NOT_BUILT = ("pdf", "fhir")
CSV_HEADER = ("device_time_s", "current_ma", "voltage_v", "impedance_ohm", "dose_ma_min", "state")


def to_json(record: Record) -> str:
    return json.dumps(record.to_dict(), indent=2, ensure_ascii=False) + "\n"


def to_csv(record: Record) -> str:
    """One row per sample: device time s, measured current mA, voltage V, impedance Ω (empty when the
    device could not measure it), host-integrated dose mA·min so far, session state."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for s in record.telemetry:
        writer.writerow([s["t_s"], s["current_ma"], s["voltage_v"], "" if s["impedance_ohm"] is None
                         else s["impedance_ohm"], s["dose_ma_min"], s["state"]])  # fmt: skip
    return out.getvalue()

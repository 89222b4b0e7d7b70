"""A closed record's telemetry lines, as the sync sends them, are exactly what its closing hashed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ionctl.records import Store
from ionctl.records.chain import TELEMETRY_FIELDS, canonical, telemetry_digest
from ionctl.records.clinic.links import telemetry_lines

values = st.one_of(
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**62), max_value=2**62),
    st.text(max_size=12),
)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(*[values] * len(TELEMETRY_FIELDS)), min_size=1, max_size=20))
def test_lines_are_canonical_samples(rows: list[tuple[object, ...]]) -> None:
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE TABLE telemetry (record_id INTEGER, {', '.join(TELEMETRY_FIELDS)})")
    db.executemany(f"INSERT INTO telemetry VALUES (1, {', '.join('?' * len(TELEMETRY_FIELDS))})", rows)
    stored = db.execute(f"SELECT {', '.join(TELEMETRY_FIELDS)} FROM telemetry ORDER BY rowid").fetchall()
    expected = [canonical(dict(zip(TELEMETRY_FIELDS, row, strict=True))) for row in stored]
    assert list(telemetry_lines(db, 1)) == expected


def test_lines_hash_to_the_closing(tmp_path: Path) -> None:
    """The lines of a real record, joined as the closing hashes them, give the closing's count and SHA-256."""
    import hashlib

    store = Store(tmp_path / "records.sqlite3")
    record_id = store.open_record(patient="P-1", operator="tess", prescription={"current_ma": 2.0}, limits={},
                                  limits_sha256="")  # fmt: skip
    rows = [(i * 0.01, 2.0, 2.0 + i * 1e-5, 6.25, 3125.0, i * 1e-4, None, i % 2, "delivering") for i in range(300)]
    store.append_telemetry(record_id, rows)
    store.close_record(record_id, {"outcome": "completed", "dose_ma_min": 0.02})
    lines = list(telemetry_lines(store.db, record_id))
    digest = hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()
    assert (len(lines), digest) == telemetry_digest(store.db, record_id)


def test_awkward_samples_arrive_as_hashed(tmp_path: Path, clinic_db: str) -> None:
    """Backslashes, quotes, tabs, newlines and non-ASCII text in a sample travel through COPY unchanged: the
    server's re-verification of the closing (count and SHA-256 of its lines) accepts them, and the lines it holds
    equal the bench's."""
    from ionctl.records.clinic.schema import initialise
    from ionctl.records.clinic.sync import connect, push
    from tests.clinic.syncing import bound_to

    store = Store(tmp_path / "records.sqlite3")
    record_id = store.open_record(patient="P-2", operator="tess", prescription={"current_ma": 2.0}, limits={},
                                  limits_sha256="")  # fmt: skip
    states = ["a\\b", 'say "hi"', "tab\there", "line\nbreak", "crlf\r\n", "µA · Ω", "\\\\N", "\\."]
    rows = [(i * 0.01, 2.0, 2.0, 6.25, 3125.0, i * 1e-4, None, 0, states[i % len(states)]) for i in range(40)]
    store.append_telemetry(record_id, rows)
    store.close_record(record_id, {"outcome": "completed", "dose_ma_min": 0.02})
    initialise(clinic_db, benches=bound_to("postgres"))
    with connect(clinic_db) as clinic:
        pushed = push(store.db, clinic, "bench-a")
        held = [
            line
            for (line,) in clinic.execute(
                "SELECT line FROM ionctl.telemetry WHERE bench = 'bench-a' AND record_id = %s ORDER BY n", (record_id,)
            )
        ]
    assert pushed.samples == 40 and pushed.closings == 1
    assert held == list(telemetry_lines(store.db, record_id))

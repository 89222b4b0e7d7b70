"""The chart PDF and `records show` as a clinical document: every kind of record renders, reads as sentences
(never a repr, never a cut sentence), at the clinic's local time, with the plot drawn only when there is
telemetry (checked on the PDF itself: its text with pypdf, its pixels with PDFium)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ionctl.cli import main as cli
from ionctl.records import Store, narrative, timefmt
from tests.records.charts import CLINIC, add_skin_checks, page_pixels, pdf_text, record_of

pytest.importorskip("matplotlib")
pytest.importorskip("pypdf")
pytest.importorskip("pypdfium2")

from ionctl.records.pdf import CURRENT_COLOUR, to_pdf  # noqa: E402 - after the importorskip

KINDS = ("completed", "faulted", "stopped", "refused", "simulated", "no-telemetry", "long")


@pytest.fixture(autouse=True)
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The clinic's zone: the machine's (TZ), which `records show` keeps when no site file names one."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    timefmt.use_zone("Europe/Berlin")
    yield
    timefmt.use_zone(None)
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "records.sqlite3")


def text_of(store: Store, kind: str, **extra: object) -> tuple[list[str], bytes]:
    record = record_of(store, kind)
    if kind in ("completed", "faulted"):
        record = add_skin_checks(store, record, reaction="mild erythema under the cathode" if kind == "faulted" else "")
    data = to_pdf(record, head=store.chain_head(), clinic_name=CLINIC)
    return pdf_text(data), data


def flat(pages: list[str]) -> str:
    return " ".join(" ".join(pages).split())


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_record_reads_as_a_document_with_no_repr_and_no_cut_text(store: Store, kind: str) -> None:
    pages, _ = text_of(store, kind)
    text = flat(pages)
    assert "{" not in text and "}" not in text
    assert "…" not in text and "..." not in text  # wrapped, never cut
    assert CLINIC in pages[0] and "P-0042" in pages[0]
    assert f"page 1 of {len(pages)}" in text
    assert "CET" in text and "UTC" not in text  # the clinic's zone
    assert "Dr. A. Moreau" in text and "left hand" in text
    assert "4 mg/mL" in text and "1.5 mL" in text and "IontoPatch 10" in text and "cathode" in text
    for what in ("Current", "Density", "Dose", "Duration", "Site", "Drug", "Polarity", "Electrode"):
        assert what in text


def test_a_completed_record_shows_prescription_beside_delivery_and_the_skin_check_table(store: Store) -> None:
    text = flat(text_of(store, "completed")[0])
    assert "Completed as prescribed" in text
    assert re.search(r"40\.00 mA·min \(100 %\)", text), text
    assert "Skin check" in text and "Before the session" in text and "After the session" in text
    assert "Adverse reaction" not in text
    assert re.search(r"14:0\d:\d\d \+\d+:\d\d", text)  # local wall clock and session elapsed time


def test_a_faulted_record_says_what_was_done_and_the_dose_left_to_give(store: Store) -> None:
    text = flat(text_of(store, "faulted")[0])
    assert "an electrode lost contact (open circuit)" in text and "switched off at once" in text
    assert "Remaining dose not given:" in text
    assert "Adverse reaction" in text and "mild erythema under the cathode" in text
    assert "+4:00" in text


def test_a_refused_record_gives_every_reason_in_full(store: Store) -> None:
    text = flat(text_of(store, "refused")[0])
    assert "Refused: no current flowed" in text
    assert "Current 50.00 mA exceeds the site limit of 4.00 mA (max_current_ma)." in text
    assert "limit_name" not in text


def test_a_simulated_record_carries_the_watermark_and_a_real_one_does_not(store: Store) -> None:
    assert "SIMULATED DEVICE — NOT A TREATMENT" in flat(text_of(store, "simulated")[0])
    assert "SIMULATED" not in flat(text_of(store, "completed")[0])


def test_the_plot_is_drawn_with_telemetry_and_absent_without(store: Store) -> None:
    import numpy as np
    from matplotlib.colors import to_rgb

    def blue(data: bytes) -> int:
        """Pixels of the current trace's blue (its hue: blue well above red and green) on the rendered page."""
        rgb = page_pixels(data, scale=2.0).astype(float) / 255
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        target = np.array(to_rgb(CURRENT_COLOUR))
        return int(((b - r > 0.5 * (target[2] - target[0])) & (b - g > 0.5 * (target[2] - target[1]))).sum())

    pages, with_telemetry = text_of(store, "completed")
    assert "minutes since the session started" in pages[0]
    assert blue(with_telemetry) > 300
    pages, without = text_of(store, "no-telemetry")
    assert "No telemetry" in pages[0] and "minutes since the session started" not in pages[0]
    assert blue(without) == 0
    assert "Stopped before the prescribed dose" in flat(pages)


def test_a_record_too_long_for_a_page_runs_on_numbered_pages(store: Store) -> None:
    pages, _ = text_of(store, "long")
    assert len(pages) >= 2
    for k, page in enumerate(pages, start=1):
        assert f"page {k} of {len(pages)}" in page
    assert "continued" in pages[1]
    assert flat(pages).count("without a break in the current") == len(range(40, 561, 20))  # every note, whole


def test_records_show_reads_for_a_person_and_json_for_a_program(store: Store,
                                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    record = add_skin_checks(store, record_of(store, "faulted"), reaction="mild erythema")
    assert cli(["records", "show", str(record.id), "--db", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert "{" not in out and "}" not in out
    assert "Prescription and delivery" in out and "ADVERSE REACTION" in out and "Remaining dose not given" in out
    assert "2026-03-12 14:00:00 CET" in out and "14:04:01 +4:00" in out
    assert re.search(r"Dose\s+40\.00 mA·min\s+15\.\d\d mA·min \(38 %\)", out), out
    assert cli(["records", "show", str(record.id), "--json", "--db", str(store.path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["record"]["id"] == record.id and data["telemetry"]


def test_every_event_kind_is_a_sentence() -> None:
    assert narrative.note_sentence('device: {"model": "IONTO-3", "serial": "S1"}') == "Device IONTO-3, serial S1."
    assert narrative.state_sentence("ramping_down: dose reached") == "Current ramping down (dose reached)."
    said = narrative.fault_sentence("fault: host monitor: compliance for 180 s")
    assert said.startswith("Fault: the device could not drive") and "ramped down to zero" in said
    assert narrative.note_sentence('odd: {"a": 1}') == "Odd: a 1."

"""The PDF export: one A4 page, and the plot on it is really drawn (the same Figure rendered to PNG), with the
ramps shaded and a fault marked. matplotlib is loaded only by the export itself."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ionctl.cli import main as cli
from ionctl.records import Record, Store

pytest.importorskip("matplotlib")

from ionctl.records.pdf import (  # noqa: E402 - after the importorskip
    CURRENT_COLOUR,
    FAULT_LABEL_GID,
    FAULT_MARKER_GID,
    build_figure,
    to_pdf,
)

PRESCRIPTION = {"drug": "dexamethasone", "polarity": "cathode", "electrode_area_cm2": 10.0, "current_ma": 4.0,
                "density_ma_cm2": 0.4, "dose_ma_min": 40.0, "duration_min": None, "ramp_up_s": 3.0,
                "ramp_down_s": 2.0, "patient_id": "P-PDF", "operator_id": "T-07", "drug_charge": "negative",
                "protocol_class": "drug_electrode", "polarity_reversal_at_midpoint": False,
                "planned_dose_ma_min": 40.0}  # fmt: skip
DEVICE = {"address": "socket://sim", "model": "IONTO-SIM", "serial": "SN-0042", "firmware": "1.4.2",
          "protocol": "1.0"}  # fmt: skip
FAULT_AT_S = 8.0


def _profile(fault: bool) -> list[tuple[float, float, str]]:
    """(device t, current mA, state) at 10 Hz: ramp up 0-3 s, hold, then a fault at 8 s (the device drops the
    output) or a ramp down 8-10 s."""
    rows = []
    for i in range(101):
        t = i * 0.1
        if t < 3.0:
            rows.append((t, 4.0 * t / 3.0, "ramping_up"))
        elif t < FAULT_AT_S:
            rows.append((t, 4.0, "delivering"))
        elif fault:
            rows.append((t, 0.0, "fault"))
        else:
            rows.append((t, max(0.0, 4.0 * (10.0 - t) / 2.0), "ramping_down"))
    return rows


def stored_record(store: Store, *, fault: bool) -> Record:
    record_id = store.open_record(patient="P-PDF", operator="T-07", prescription=PRESCRIPTION,
                                  limits={"max_current_ma": 4.0}, limits_sha256="cd" * 32)  # fmt: skip
    writer = store.session_writer(record_id)
    writer.event("state", "ramping_up: prescribed start", device_t_s=0.0)
    dose = 0.0
    for n, (t, ma, state) in enumerate(_profile(fault)):
        if n == 30:
            writer.event("state", "delivering: target reached", device_t_s=t)
        if n == 80:
            if fault:
                writer.event("fault", "fault: open circuit (electrode lifted)", device_t_s=FAULT_AT_S)
            else:
                writer.event("state", "ramping_down: dose reached", device_t_s=t)
        dose += ma * 0.1 / 60
        impedance = 2500.0 + 10 * t if ma > 0.05 else None
        writer.sample((t, ma, ma, ma * 2.5 + 1, impedance, dose, dose * 0.99, 0, state))
    outcome = {"outcome": "fault", "fault": "open_circuit"} if fault else {"outcome": "completed", "fault": None}
    writer.close({**outcome, "message": "test session", "dose_ma_min": dose, "host_dose_ma_min": dose,
                  "device_dose_ma_min": dose * 0.99, "dose_source": "host", "duration_s": 10.0,
                  "peak_current_ma": 4.0, "device": DEVICE, "energised": True})  # fmt: skip
    return store.get(record_id)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "records.sqlite3")


def png_pixels(record: Record) -> Any:
    """The page's figure rendered to PNG and read back: an (h, w, 4) float array in 0..1."""
    from matplotlib.image import imread

    out = io.BytesIO()
    build_figure(record).savefig(out, format="png", dpi=100)
    out.seek(0)
    return imread(out)


def colour_pixels(pixels: Any, colour: str, tolerance: float = 0.08) -> int:
    import numpy as np
    from matplotlib.colors import to_rgb

    return int(np.all(np.abs(pixels[:, :, :3] - np.array(to_rgb(colour))) < tolerance, axis=2).sum())


def test_the_pdf_is_exactly_one_a4_page(store: Store) -> None:
    data = to_pdf(stored_record(store, fault=True))
    assert data.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data)) == 1  # /Page objects, not the /Pages tree
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", data)
    assert box is not None
    assert float(box[1]) == pytest.approx(595.3, abs=1.0) and float(box[2]) == pytest.approx(841.9, abs=1.0)
    assert b"Iontophoresis session record" in data  # the document title (page text is glyph ids)


def test_the_page_contains_the_plot_not_a_blank(store: Store) -> None:
    import numpy as np

    pixels = png_pixels(stored_record(store, fault=True))
    rgb = pixels[:, :, :3]
    non_white = float((rgb.min(axis=2) < 0.9).mean())
    assert non_white > 0.05, non_white
    assert float(rgb.std()) > 0.05
    drawn = colour_pixels(pixels, CURRENT_COLOUR)
    assert drawn > 200, drawn  # the current trace: a line across the top plot
    # and that colour is the trace, not something else on the page: without telemetry it is absent
    empty = Record({**stored_record(store, fault=False).fields, "id": 99}, [], [])
    assert colour_pixels(png_pixels(empty), CURRENT_COLOUR) == 0
    assert np.isfinite(rgb).all()


def test_a_fault_is_marked_on_every_plot_with_its_label(store: Store) -> None:
    import numpy as np

    fig = build_figure(stored_record(store, fault=True))
    axes = fig.get_axes()
    assert len(axes) == 3
    assert [ax.get_ylabel() for ax in axes] == ["Current\n(mA)", "Voltage\n(V)", "Impedance\n(Ω)"]
    for ax in axes:
        markers = [line for line in ax.get_lines() if line.get_gid() == FAULT_MARKER_GID]
        at_min = FAULT_AT_S / 60  # the axis is minutes since the session started (at device t 0 here)
        assert len(markers) == 1 and np.asarray(markers[0].get_xdata()).tolist() == pytest.approx([at_min, at_min])
    labels = [t.get_text() for ax in axes for t in ax.texts if t.get_gid() == FAULT_LABEL_GID]
    assert labels == ["open circuit"]  # the fault named by its code (the record's own, open_circuit)


def test_the_ramps_are_shaded_and_a_completed_record_has_no_fault_marker(store: Store) -> None:
    import numpy as np

    fig = build_figure(stored_record(store, fault=False))
    top = fig.get_axes()[0]
    spans = {p.get_gid() for p in top.patches}
    assert {"state-ramping_up", "state-delivering", "state-ramping_down"} <= spans
    assert not [line for ax in fig.get_axes() for line in ax.get_lines() if line.get_gid() == FAULT_MARKER_GID]
    assert not [t for ax in fig.get_axes() for t in ax.texts if t.get_gid() == FAULT_LABEL_GID]
    current = next(line for line in top.get_lines() if line.get_gid() == "current")
    assert float(np.nanmax(np.asarray(current.get_ydata(), dtype=float))) == pytest.approx(4.0)


def test_cli_export_pdf_writes_the_file_or_record_id_pdf(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = stored_record(store, fault=True)
    out = tmp_path / "chart.pdf"
    db = str(store.path)
    assert cli(["records", "export", str(record.id), "--format", "pdf", "-o", str(out), "--db", db]) == 0
    assert out.read_bytes().startswith(b"%PDF-")
    monkeypatch.chdir(tmp_path)
    assert cli(["records", "export", str(record.id), "--format", "pdf", "--db", db]) == 0
    assert (tmp_path / f"record-{record.id}.pdf").read_bytes().startswith(b"%PDF-")


def test_importing_the_records_package_does_not_load_matplotlib() -> None:
    code = ("import sys, ionctl.records, ionctl.records.export, ionctl.records.pdf; "
            "print('matplotlib' in sys.modules)")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def page_text(record: Record, head: tuple[int, str] | None = None) -> str:
    return "\n".join(t.get_text() for t in build_figure(record, head=head).texts)


def test_the_page_prints_the_signatures_the_record_chain_hash_and_the_chain_head(tmp_path: Path) -> None:
    """21 CFR 11.50: printed name, date and time, meaning; the hashes `records verify --anchor` checks."""
    from ionctl.config.people import PERFORMED
    from tests.people import SUPERVISOR, TECHNICIAN, make_clinic

    clinic = make_clinic(tmp_path / "clinic")
    with Store(clinic.store) as store:
        record = stored_record(store, fault=False)
        people = clinic.people(store)
        digest = store.record_digest(record.id)
        for name, meaning in ((TECHNICIAN, PERFORMED), (SUPERVISOR, "reviewed")):
            people.signed(clinic.login(store, name), "record-sign", {"meaning": meaning, "record_sha256": digest},
                          record_id=record.id)  # fmt: skip
        head = store.chain_head()
        record = store.get(record.id)
    text = page_text(record, head)
    when = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+"
    assert re.search(rf"Tess Technician \(tess, technician\)\n{when}\nperformed", text), text
    assert re.search(rf"Sam Supervisor \(sam, supervisor\)\n{when}\nreviewed", text), text
    assert f"Record chain hash (link {record.fields['close_gseq']}): {record.fields['chain_hash']}" in text
    assert f"Chain head at export (link {head[0]}): {head[1]}" in text
    assert "ionctl records verify --anchor HASH" in text
    assert "record-sign" not in text  # listed as signatures, not as addenda


def test_an_unsigned_record_says_so_and_the_cli_export_prints_the_head(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = stored_record(store, fault=True)
    assert f"None yet: the operator signs with `ionctl records sign {record.id} --as NAME`." in page_text(record)
    seen: list[tuple[int, str] | None] = []
    import ionctl.records.pdf as pdf

    real = pdf.build_figure

    real = pdf.build_pages

    def spy(r: Record, head: tuple[int, str] | None = None, clinic_name: str | None = None, **more: Any) -> Any:
        seen.append(head)
        return real(r, head=head, clinic_name=clinic_name, **more)

    monkeypatch.setattr(pdf, "build_pages", spy)
    out = tmp_path / "chart.pdf"
    assert cli(["records", "export", str(record.id), "--format", "pdf", "-o", str(out), "--db", str(store.path)]) == 0
    assert seen == [store.chain_head()]

"""`ionctl demo --preset NAME`: every packaged preset runs on the simulator's load model for its electrodes, and
the simulator's ground-truth trace says how it went (no device fault, the prescribed dose delivered, the
output back at zero); a preset the packaged limits refuse is refused before any current flows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ionctl.cli.demo import DEMO_PRESETS
from ionctl.config.site import packaged_text, parse_config
from ionctl.records.clinical import ClinicalDetails
from sim.plant import LOAD_PRESETS
from tests.test_run import ionctl, trace_rows

#: The demo's fastest dependable pace here: a 21-minute tap-water session takes ~13 s of wall time.
SCALE = "100"
PACKAGED = parse_config(packaged_text())
REFUSED_BY_THE_PACKAGED_LIMITS = {"asc-exosome-hand-eczema"}  # 50 mA against max_current_ma 4.0


def test_every_packaged_preset_has_a_demo_on_a_load_the_simulator_has() -> None:
    assert set(DEMO_PRESETS) == set(PACKAGED.presets)
    assert all(demo.load in LOAD_PRESETS for demo in DEMO_PRESETS.values())


def demo(tmp_path: Path, preset: str) -> tuple[int, dict[str, object], list[dict[str, object]], str]:
    trace = tmp_path / "truth.jsonl"
    done = ionctl("demo", "--preset", preset, "--time-scale", SCALE, "--json", "--out", str(tmp_path / "out"),
                  "--trace", str(trace), timeout_s=180)  # fmt: skip
    return done.returncode, json.loads(done.stdout), trace_rows(trace), done.stderr


@pytest.mark.parametrize("preset", sorted(set(PACKAGED.presets) - REFUSED_BY_THE_PACKAGED_LIMITS))
def test_the_demo_of_a_preset_completes_on_its_matching_load(preset: str, tmp_path: Path) -> None:
    code, result, rows, stderr = demo(tmp_path, preset)
    assert code == 0 and result["outcome"] == "completed", stderr
    # judged on the simulator's ground truth
    assert {r["fault"] for r in rows} == {"NONE"}, stderr
    target_ua = 1000 * float(PACKAGED.preset(preset).current_ma or 0)
    assert abs(max(float(r["current_ua"]) for r in rows) - target_ua) <= 0.02 * target_ua  # the current was reached
    assert rows[-1]["current_ua"] == 0 and rows[-1]["state"] != "RUNNING"
    true_dose = float(rows[-1]["dose_uas"]) / 60_000  # type: ignore[arg-type]
    prescribed = float(result["prescribed_dose_ma_min"])  # type: ignore[arg-type]
    assert abs(true_dose - prescribed) <= 0.01 * prescribed, (true_dose, prescribed)
    assert result["simulator_true_dose_ma_min"] == pytest.approx(true_dose)


@pytest.mark.parametrize("preset", sorted(REFUSED_BY_THE_PACKAGED_LIMITS))
def test_the_demo_of_a_preset_the_limits_refuse_shows_the_refusal_and_no_current_flows(
    preset: str, tmp_path: Path
) -> None:
    code, result, rows, stderr = demo(tmp_path, preset)
    assert code == 2 and result["outcome"] == "refused", stderr
    assert "max_current_ma" in str(result["message"]) and "50" in str(result["message"])
    assert all(r["current_ua"] == 0 and r["dose_uas"] == 0 for r in rows)


def test_the_demo_runs_as_its_own_technician_who_signs_the_record_and_a_second_run_logs_in_again(
    tmp_path: Path,
) -> None:
    from ionctl.cli.demo import DEMO_ADMINISTRATOR, DEMO_OPERATOR, DEMO_SITE, demo_people
    from ionctl.config.proof import check
    from ionctl.records import Store

    out = tmp_path / "out"
    for _ in (1, 2):  # the first run enrols the demo's people; the second only logs the technician in
        done = ionctl("demo", "--preset", "dexamethasone", "--time-scale", SCALE, "--out", str(out), timeout_s=180)
        assert done.returncode == 0, done.stderr
        assert "run by Demo Technician (demo-tech, technician)" in done.stderr
        assert "signed Demo Technician (demo-tech, technician)" in done.stdout and "performed" in done.stdout
    with Store(out / "records.sqlite3") as store:
        assert [r["operator"] for r in store.list_records()] == [DEMO_OPERATOR, DEMO_OPERATOR]
        for row in store.list_records():  # the preset names no site: the demo's own; a simulator, not a treatment
            details = ClinicalDetails.of_record(store.get(row["id"]).fields)
            assert details is not None and details.simulated and details.site is not None
            assert details.site.text == DEMO_SITE
        assert [e["actor"] for e in store.audit(action="record-sign")] == [DEMO_OPERATOR, DEMO_OPERATOR]
        assert {e["detail"]["name"] for e in store.audit(action="user-enrol")} == {DEMO_ADMINISTRATOR, DEMO_OPERATOR}
        config, _ = demo_people(store)
        checked = check(store.audit(), config.accounts.administrators, record_digest=store.record_digest,
                        chain_hash=store.link_hashes().get)  # fmt: skip
        assert checked.problem is None, str(checked.problem)

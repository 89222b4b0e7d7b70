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


# -- `ionctl demo --visit`: the preset's visit on one simulator serving a device per channel ---------------------


def test_the_visit_demo_treats_both_hands_each_with_the_dose_its_own_simulated_device_delivered(
    tmp_path: Path,
) -> None:
    from ionctl.records import Store

    trace, out = tmp_path / "truth.jsonl", tmp_path / "out"
    done = ionctl("demo", "--visit", "--time-scale", SCALE, "--json", "--out", str(out), "--trace", str(trace),
                  timeout_s=180)  # fmt: skip
    assert done.returncode == 0, done.stderr
    visit = json.loads(done.stdout)
    assert visit["exit_code"] == 0
    assert [c["label"] for c in visit["channels"]] == list(PACKAGED.preset("asc-exosome-hand-eczema").visit)
    rows = trace_rows(trace)
    for n, channel in enumerate(visit["channels"], start=1):  # channel K on simulated device K
        own = [r for r in rows if r["device"] == n]
        truth = float(own[-1]["dose_uas"]) / 60_000  # type: ignore[arg-type]
        assert channel["outcome"] == "completed" and channel["simulator_device"] == n
        assert abs(channel["dose_ma_min"] - truth) <= 0.01 * truth, (n, channel["dose_ma_min"], truth)
        assert channel["simulator_true_dose_ma_min"] == pytest.approx(truth)
        assert {r["fault"] for r in own} == {"NONE"} and own[-1]["current_ua"] == 0
        assert Path(channel["pdf"]).is_file()
    with Store(out / "records.sqlite3") as store:
        ids = [c["record_id"] for c in visit["channels"]]
        assert sorted(r["id"] for r in store.list_records()) == sorted(ids)  # a record per channel, no other
        details = [ClinicalDetails.of_record(store.get(i).fields) for i in ids]
        assert store.verify() is None
    assert [d.site.text for d in details if d is not None and d.site is not None] == ["left hand", "right hand"]
    assert all(d is not None and d.simulated and d.visit is not None for d in details)


def test_the_visit_demo_of_a_preset_without_a_visit_is_a_usage_error(tmp_path: Path) -> None:
    done = ionctl("demo", "--visit", "--preset", "dexamethasone", "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "preset 'dexamethasone' names no visit (a packaged preset with one: asc-exosome-hand-eczema)" in done.stderr
    assert not (tmp_path / "out").exists()  # nothing was opened


def test_ctrl_c_during_the_visit_demo_ramps_every_channel_down_and_closes_every_record(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from ionctl.records import Store
    from tests.sim.endpoints import ROOT

    trace, out = tmp_path / "truth.jsonl", tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "ionctl", "demo", "--visit", "--time-scale", "20", "--out",
                                str(out), "--trace", str(trace)], cwd=ROOT, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stderr is not None
    delivering: set[str] = set()
    for line in process.stderr:
        delivering |= {site for site in ("left hand", "right hand") if f"{site}] delivering" in line}
        if len(delivering) == 2:
            break
    else:
        raise AssertionError(f"not every channel delivered; exit {process.wait()}")
    process.send_signal(signal.SIGINT)  # as Ctrl-C at the terminal: the simulator runs in a session of its own
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode != 0, stderr
    rows = trace_rows(trace)
    for device in (1, 2):
        own = [r for r in rows if r["device"] == device]
        assert max(float(r["current_ua"]) for r in own) > 1000  # it had been delivering  # type: ignore[arg-type]
        assert own[-1]["current_ua"] == 0 and own[-1]["state"] != "RUNNING" and {r["fault"] for r in own} == {"NONE"}
    with Store(out / "records.sqlite3") as store:
        assert [r["outcome"] for r in store.list_records()] == ["stopped", "stopped"], stdout

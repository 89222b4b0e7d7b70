"""Acceptance: whole sessions against the simulator process over its real pty (and the SourceMeter over
TCP), at 50x device time. Every fault is made to happen in the simulator; each scenario checks the
outcome, the exit code and the settled dose against the simulator's ground-truth trace (±1 %)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ionctl.core.session import Session, SessionResult, exit_code
from ionctl.drivers import Polarity, open_device
from ionctl.safety import Prescription, PrescriptionRefused, SiteLimits, validate
from tests.sim.endpoints import running_sim

DEXAMETHASONE = dict(drug="dexamethasone", polarity=Polarity.CATHODE, electrode_area_cm2=10.0, current_ma=4.0,
                     dose_ma_min=40.0, patient_id="P-1", operator_id="OP-1")  # fmt: skip


@dataclass
class Run:
    result: SessionResult
    trace: list[dict[str, float | str]]

    @property
    def true_dose_ma_min(self) -> float:
        return float(self.trace[-1]["dose_uas"]) / 60_000

    @property
    def final_current_ua(self) -> float:
        return float(self.trace[-1]["current_ua"])


def session(tmp_path: Path, *sim_args: str, **changes: object) -> Run:
    link, trace = tmp_path / "dev", tmp_path / "trace.jsonl"
    with running_sim("--serial-link", str(link), "--time-scale", "50", "--trace", str(trace), *sim_args):
        device = open_device(str(link))
        try:
            run = Session(device, Prescription(**{**DEXAMETHASONE, **changes}), SiteLimits.load(None),
                          reconnect=lambda: open_device(str(link))).run()  # fmt: skip
        finally:
            device.close()
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    return Run(run, rows)


def assert_dose_matches_the_trace(run: Run) -> None:
    assert run.result.dose_ma_min == pytest.approx(run.true_dose_ma_min, rel=0.01)


def test_dexamethasone_4_ma_40_ma_min_completes_with_the_dose_of_the_trace(tmp_path: Path) -> None:
    run = session(tmp_path)
    assert (run.result.outcome, exit_code(run.result)) == ("completed", 0)
    assert_dose_matches_the_trace(run)
    assert run.true_dose_ma_min == pytest.approx(40.0, rel=0.01)
    assert run.final_current_ua == 0
    states = [change.state for change in run.result.timeline]
    assert states[-4:] == ["ramping_up", "delivering", "ramping_down", "completed"]


def test_the_same_at_6_ma_is_refused_for_density_before_any_device_is_touched() -> None:
    with pytest.raises(PrescriptionRefused) as refused:
        validate(Prescription(**{**DEXAMETHASONE, "current_ma": 6.0}), SiteLimits.load(None))
    assert "max_density_ma_cm2" in refused.value.limit_names
    assert "0.60" in str(refused.value) and "0.50" in str(refused.value)


def test_the_same_from_the_anode_is_refused_for_polarity() -> None:
    with pytest.raises(PrescriptionRefused, match="cathode"):
        validate(Prescription(**{**DEXAMETHASONE, "polarity": Polarity.ANODE}), SiteLimits.load(None))


# fault, expected fault code, expected outcome; times are device seconds after the output first energised.
# The normal load holds a 4 mA start at compliance for about 100 s, so the sensor faults come after it.
FAULTS = [
    ("electrode-lift@60", "open_circuit"),
    ("short@60", "low_impedance"),
    ("impedance-step=60000@150", "compliance"),
    ("sensor-drift=15@150", "overcurrent"),
    ("sensor-drift=-15@150", "current_mismatch"),
    ("reboot@60", "brownout"),
    ("link-drop@60:100", "host_lost"),
]


@pytest.mark.parametrize(("fault", "code"), FAULTS, ids=[f for f, _ in FAULTS])
def test_a_fault_ends_the_session_with_its_code_zero_current_and_the_dose_of_the_trace(
    tmp_path: Path, fault: str, code: str
) -> None:
    run = session(tmp_path, "--fault", fault)
    assert (run.result.outcome, run.result.fault, exit_code(run.result)) == ("fault", code, 3)
    assert not run.result.alarm
    assert run.final_current_ua == 0
    assert_dose_matches_the_trace(run)


def test_after_a_link_loss_the_dose_is_settled_from_the_devices_counter(tmp_path: Path) -> None:
    run = session(tmp_path, "--fault", "link-drop@60:100")
    assert run.result.dose_source == "device"
    assert run.result.host_dose_ma_min < run.result.dose_ma_min  # the device ramped down after the host lost it


@pytest.mark.parametrize(("fault", "alarm"), [("stuck-output@60", False), ("stuck-output=welded@60", True)])
def test_a_current_that_does_not_fall_is_cut_and_if_it_still_flows_raises_the_alarm(
    tmp_path: Path, fault: str, alarm: bool
) -> None:
    run = session(tmp_path, "--fault", fault, dose_ma_min=8.0)
    assert run.result.outcome == "fault" and exit_code(run.result) == 3
    assert "abort, then output off" in run.result.message
    assert run.result.alarm is alarm
    assert (run.final_current_ua > 0) is alarm  # welded: it really still flows
    if alarm:
        assert "remove the electrodes" in run.result.message
    assert_dose_matches_the_trace(run)


def test_the_sourcemeter_delivers_the_same_session_once_its_missing_watchdog_is_acknowledged() -> None:
    p = Prescription(**{**DEXAMETHASONE, "dose_ma_min": 10.0})
    with running_sim("--scpi-port", "0", "--time-scale", "50") as sim:
        address = "visa:" + sim.endpoints["scpi"]
        with open_device(address, sample_interval_s=0.005) as meter:
            refused = Session(meter, p, SiteLimits.load(None)).run()
        with open_device(address, sample_interval_s=0.005) as meter:
            result = Session(meter, p, SiteLimits.load(None), accept_no_watchdog=True).run()
    assert refused.outcome == "refused" and "watchdog" in refused.message
    assert (result.outcome, exit_code(result)) == ("completed", 0)
    assert result.dose_ma_min == pytest.approx(10.0, rel=0.01)


def test_a_new_session_on_the_same_device_clears_the_last_ones_fault_and_starts_from_zero(tmp_path: Path) -> None:
    link = tmp_path / "dev"
    limits = SiteLimits.load(None)
    first_p = Prescription(**DEXAMETHASONE)
    second_p = Prescription(**{**DEXAMETHASONE, "dose_ma_min": 5.0})
    with running_sim("--serial-link", str(link), "--time-scale", "50", "--fault", "electrode-lift@60:1"):
        with open_device(str(link)) as device:
            first = Session(device, first_p, limits).run()
        # The first session ends within the lift (1 device s = 20 ms here): let the electrode come back, or the
        # second contact check rightly finds an open circuit and refuses.
        time.sleep(0.2)
        with open_device(str(link)) as device:
            second = Session(device, second_p, limits).run()
    assert (first.outcome, first.fault) == ("fault", "open_circuit")
    assert second.outcome == "completed"
    assert second.notes == ["cleared a fault latched before this session: open_circuit"]
    assert second.device_dose_ma_min == pytest.approx(5.0, rel=0.01)  # the counter started again from zero


def test_a_stop_requested_while_preparing_cancels_before_any_current_flows(tmp_path: Path) -> None:
    link, trace = tmp_path / "dev", tmp_path / "trace.jsonl"
    with running_sim("--serial-link", str(link), "--time-scale", "50", "--trace", str(trace)):
        with open_device(str(link)) as device:
            s = Session(device, Prescription(**DEXAMETHASONE), SiteLimits.load(None))
            s.request("stop")  # e.g. Ctrl-C during the contact check
            result = s.run()
    assert (result.outcome, result.energised, exit_code(result)) == ("stopped", False, 4)
    assert "before any current" in result.message
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    assert all(row["state"] in ("IDLE", "ARMED") for row in rows)

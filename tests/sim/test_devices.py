"""`python -m sim --devices N`: several independent firmware devices in one process, as a visit (both hands at
once, on two devices) and a bench of devices meet them. Each is driven over its own socket, as a host would, and
judged on its own rows of the one ground-truth trace: two sessions run at once, each dosed on its own; a fault
aimed at one device, a host lost by one device and a host that stops reading touch that device only; options
aimed at a device that does not exist are refused before anything opens."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from firmware_protocol import Arm as ArmOutput
from firmware_protocol import Configure, Identify, Identity, Polarity, SetPolarity, SetTelemetry, Start, Stop
from sim.cli import main
from tests.sim.conftest import LIMITS, ok
from tests.sim.endpoints import WireClient, running_sim, symlink_target, trace_rows, true_dose_ma_min

SCALE = "20"  # device seconds per wall second: a 40-second delivery in two wall seconds
TARGET_UA = 2000
RAMP_MS = 2000  # device time: 0.1 wall seconds at SCALE


def start_delivery(client: WireClient, **limits: int) -> None:
    ok(client.request(Configure(**{**LIMITS, **limits})))
    ok(client.request(SetPolarity(Polarity.CATHODE)))
    ok(client.request(ArmOutput()))
    ok(client.request(Start(TARGET_UA, RAMP_MS)))


def deliver(client: WireClient, run_s: float) -> None:
    """A whole delivery: up, `run_s` wall seconds held, down, and the output seen at zero."""
    start_delivery(client)
    client.wait(run_s)
    ok(client.request(Stop(RAMP_MS)))
    client.wait(0.5)


def test_two_devices_run_two_sessions_at_once_each_traced_and_dosed_on_its_own(tmp_path: Path) -> None:
    trace = tmp_path / "truth.jsonl"
    with running_sim("--tcp", "0", "--time-scale", SCALE, "--trace", str(trace), "--device-load", "2:tap-water-hands",
                     devices=2) as sim:  # fmt: skip
        assert [d.number for d in sim.devices] == [1, 2]
        clients = [WireClient(device.endpoints["tcp"]) for device in sim.devices]
        try:
            serials = [c.request(Identify()) for c in clients]
            assert [s.serial for s in serials if isinstance(s, Identity)] == ["SIM-000001", "SIM-000002"]
            # two hosts, two threads, two deliveries of different lengths at the same time
            threads = [
                threading.Thread(target=deliver, args=(c, run_s)) for c, run_s in zip(clients, (1.5, 2.5), strict=True)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            assert not any(thread.is_alive() for thread in threads)
            device_dose = [c.telemetry[-1].dose_uas / 60_000 for c in clients]
        finally:
            for c in clients:
                c.close()
    rows = trace_rows(trace)
    assert rows and {row["device"] for row in rows} == {1, 2}  # every row says whose it is
    one, two = trace_rows(trace, device=1), trace_rows(trace, device=2)
    assert len(one) + len(two) == len(rows)
    for own in (one, two):
        assert own == sorted(own, key=lambda r: r["t_s"])  # each device's rows follow its own clock
        assert own[-1]["current_ua"] == 0 and own[-1]["state"] == "DONE" and own[-1]["fault"] == "NONE"
    # at once: device 2's output was on while device 1's rows were being written, and the other way round
    on_one, on_two = ([i for i, row in enumerate(rows) if row["device"] == k and row["current_ua"] > 0] for k in (1, 2))
    assert on_one[0] < on_two[-1] and on_two[0] < on_one[-1]
    truth = [true_dose_ma_min(trace, device=1), true_dose_ma_min(trace, device=2)]
    assert 0.5 < truth[0] < truth[1]  # device 2 ran a second longer
    for host_read, true in zip(device_dose, truth, strict=True):
        assert host_read == pytest.approx(true, rel=0.01)  # each device's counter is its own trace's dose


def test_a_fault_aimed_at_device_2_hits_only_device_2(tmp_path: Path) -> None:
    trace = tmp_path / "truth.jsonl"
    with running_sim("--tcp", "0", "--time-scale", SCALE, "--trace", str(trace), "--fault", "2:electrode-lift@10",
                     devices=2) as sim:  # fmt: skip
        clients = [WireClient(device.endpoints["tcp"]) for device in sim.devices]
        try:
            threads = [threading.Thread(target=deliver, args=(c, 2.0)) for c in clients]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
        finally:
            for c in clients:
                c.close()
    one, two = trace_rows(trace, device=1), trace_rows(trace, device=2)
    assert {row["fault"] for row in one} == {"NONE"}
    assert one[-1]["state"] == "DONE" and true_dose_ma_min(trace, device=1) > 1.0
    assert "OPEN_CIRCUIT" in {row["fault"] for row in two}
    lifted = next(row for row in two if row["fault"] == "OPEN_CIRCUIT")
    assert lifted["current_ua"] == 0 and two[-1]["current_ua"] == 0


def test_losing_device_1s_host_trips_its_watchdog_to_zero_while_device_2_runs_on(tmp_path: Path) -> None:
    trace = tmp_path / "truth.jsonl"
    with running_sim("--tcp", "0", "--time-scale", SCALE, "--trace", str(trace), devices=2) as sim:
        first, second = (WireClient(device.endpoints["tcp"]) for device in sim.devices)
        try:
            start_delivery(first)  # both with a watchdog of 1 s (LIMITS)
            start_delivery(second)
            first.wait(0.2)  # both deliver
            first.close()  # device 1's host is gone (its socket closed): no heartbeat reaches it any more
            second.wait(3.0)  # device 2's host heartbeats on, well past device 1's watchdog
            running = second.telemetry[-1]
            ok(second.request(Stop(RAMP_MS)))
            second.wait(0.5)
        finally:
            second.close()
    assert (running.state.name, running.fault.name) == ("RUNNING", "NONE")
    assert running.measured_ua == pytest.approx(TARGET_UA, rel=0.05)
    rows = trace_rows(trace)
    tripped = next(i for i, row in enumerate(rows) if row["device"] == 1 and row["fault"] == "HOST_LOST")
    one = trace_rows(trace, device=1)
    assert one[-1]["current_ua"] == 0 and one[-1]["fault"] == "HOST_LOST"
    after = [row for row in rows[tripped:] if row["device"] == 2]
    assert after and {row["fault"] for row in after} == {"NONE"}
    assert sum(row["current_ua"] >= 0.95 * TARGET_UA for row in after) > 100  # a second of device time and more


def test_each_device_has_its_own_pty_and_one_device_is_announced_as_ever(tmp_path: Path) -> None:
    link = tmp_path / "ionto"
    with running_sim("--serial-link", str(link), "--tcp", "0", devices=3) as sim:
        assert sorted(sim.endpoints) == ["serial.1", "serial.2", "serial.3", "tcp.1", "tcp.2", "tcp.3"]
        paths = [symlink_target(f"{link}-{k}") for k in (1, 2, 3)]
        assert paths == [device.endpoints["serial"] for device in sim.devices] == [d.address for d in sim.devices]
        assert len(set(paths)) == 3
    assert not any(os.path.lexists(f"{link}-{k}") for k in (1, 2, 3))
    with running_sim("--tcp", "0") as sim:
        assert list(sim.endpoints) == ["tcp"] and sim.devices[0].address == sim.endpoints["tcp"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--fault", "0:electrode-lift@30"], "there is no device 0; devices are numbered from 1"),
        (["--fault", "3:electrode-lift@30"], "--fault 3:electrode-lift@30: there is no device 3 (--devices 2: 1..2)"),
        (["--device-load", "0:normal"], "there is no device 0"),
        (["--device-load", "3:normal"], "there is no device 3"),
        (["--device-load", "2:wet-sponge"], "unknown load preset 'wet-sponge'; known: high-impedance, normal"),
        (["--device-load", "normal"], "expected K:PRESET"),
        (["--device-load", "2:normal", "--device-load", "2:high-impedance"], "--device-load given twice for device 2"),
        (["--device-serial", "2:SIM-000001"], "two devices would share a serial number"),
        (["--fault", "2:melt@3"], "unknown kind 'melt'"),
    ],
)
def test_an_option_aimed_at_no_device_is_refused_with_exit_2(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--tcp", "0", "--devices", "2", *args])
    assert exit_info.value.code == 2
    assert says in capsys.readouterr().err


def test_the_forms_without_a_device_still_mean_device_1(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--tcp", "0", "--fault", "electrode-lift@1", "--device-load", "2:normal"])  # one device: no device 2
    assert exit_info.value.code == 2 and "there is no device 2 (--devices 1: 1..1)" in capsys.readouterr().err


def test_a_host_that_stops_reading_one_device_does_not_slow_another(tmp_path: Path) -> None:
    with running_sim("--tcp", "0", "--time-scale", SCALE, devices=2) as sim:
        stalled, live = (WireClient(device.endpoints["tcp"]) for device in sim.devices)
        try:
            ok(stalled.request(SetTelemetry(10)))  # 100 frames a second that its host will not read
            slowest = 0.0
            for _ in range(40):
                asked = time.monotonic()
                assert isinstance(live.request(Identify()), Identity)
                slowest = max(slowest, time.monotonic() - asked)
                time.sleep(0.05)
        finally:
            stalled.close()
            live.close()
    assert slowest < 0.25

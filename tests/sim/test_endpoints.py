"""The simulator as a process, over a real pseudo-terminal (pyserial) and real sockets (pyserial, pyvisa-py)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from firmware_protocol import (
    Ack,
    Arm,
    Configure,
    Identify,
    Identity,
    Polarity,
    Result,
    SetPolarity,
    SetTelemetry,
    Start,
    State,
    Stop,
)
from tests.sim.conftest import LIMITS
from tests.sim.endpoints import ROOT, WireClient, running_sim, symlink_target


def ok(response: object) -> None:
    assert isinstance(response, Ack) and response.result is Result.OK, response


def test_a_full_delivery_over_the_pty_with_the_trace_as_ground_truth(tmp_path: Path) -> None:
    link, trace = tmp_path / "ionto", tmp_path / "trace.jsonl"
    with running_sim("--serial-link", str(link), "--time-scale", "50", "--load", "tap-water-hands",
                     "--trace", str(trace), "--seed", "3") as sim:  # fmt: skip
        assert symlink_target(str(link)) == sim.endpoints["serial"]
        client = WireClient(str(link))
        try:
            assert isinstance(client.request(Identify()), Identity)
            for message in (Configure(**LIMITS), SetPolarity(Polarity.CATHODE), Arm(), Start(2000, 10_000)):
                ok(client.request(message))
            client.wait(0.5)  # 25 s of device time: ramp (10 s) and hold
            assert client.telemetry[-1].state is State.RUNNING
            ok(client.request(Stop(2000)))
            client.wait(0.2)
            last = client.telemetry[-1]
        finally:
            client.close()
    assert last.state is State.DONE and client.errors == []
    stamps = [t.t_ms for t in client.telemetry]
    assert stamps == sorted(stamps)
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    assert rows[-1]["state"] == "DONE"
    assert last.dose_uas == pytest.approx(rows[-1]["dose_uas"], rel=0.01)
    assert not link.exists()  # the symlink goes with the simulator


def test_the_device_clock_runs_time_scale_times_faster_than_the_wall(tmp_path: Path) -> None:
    with running_sim("--serial-link", str(tmp_path / "dev"), "--time-scale", "20") as sim:
        client = WireClient(sim.endpoints["serial"])
        try:
            client.wait(0.2, heartbeat_s=None)
            first, t0 = client.telemetry[-1].t_ms, time.monotonic()
            client.wait(0.5, heartbeat_s=None)
            last, t1 = client.telemetry[-1].t_ms, time.monotonic()
        finally:
            client.close()
    assert (last - first) / 1000 == pytest.approx(20 * (t1 - t0), rel=0.15)


def test_a_second_host_is_refused_on_the_pty(tmp_path: Path) -> None:
    link = str(tmp_path / "dev")
    with running_sim("--serial-link", link):
        first = serial.serial_for_url(link, exclusive=True)
        try:
            with pytest.raises(serial.SerialException, match="exclusive"):
                serial.serial_for_url(link, exclusive=True)
        finally:
            first.close()


def test_the_firmware_protocol_over_tcp_and_one_host_at_a_time() -> None:
    with running_sim("--tcp", "0") as sim:
        url = sim.endpoints["tcp"]
        assert url.startswith("socket://127.0.0.1:")
        client = WireClient(url)
        try:
            identity = client.request(Identify())
            assert isinstance(identity, Identity) and identity.model == "IONTO-SIM 1"
            host, port = url.removeprefix("socket://").split(":")
            with socket.create_connection((host, int(port)), timeout=2) as second:
                second.settimeout(2)
                assert second.recv(100) == b""  # accepted and closed at once
            assert isinstance(client.request(Identify()), Identity)  # the first host is unaffected
        finally:
            client.close()


def test_the_scpi_instrument_over_tcp_with_pyvisa_py() -> None:
    pyvisa = pytest.importorskip("pyvisa")
    with running_sim("--scpi-port", "0", "--load", "tap-water-hands") as sim:
        resource = sim.endpoints["scpi"]
        assert resource.startswith("TCPIP::127.0.0.1::") and resource.endswith("::SOCKET")
        rm = pyvisa.ResourceManager("@py")
        inst = rm.open_resource(resource, read_termination="\n", write_termination="\n", timeout=2000)
        try:
            assert inst.query("*IDN?").startswith("KEITHLEY INSTRUMENTS INC.,MODEL 2400")
            inst.write("*RST")
            inst.write(':SOUR:FUNC CURR;:SOUR:CURR 0.002;:SENS:FUNC "VOLT","CURR";:SENS:VOLT:PROT 60')
            inst.write(":FORM:ELEM VOLT,CURR,TIME")
            inst.write(":OUTP ON")
            volts, amps, t = (float(x) for x in inst.query(":READ?").split(","))
            assert amps == pytest.approx(0.002, rel=0.02) and 0 < volts < 60 and t >= 0
            assert inst.query(":SYST:ERR?").startswith("0,")
            inst.write(":BOGUS:CMD")
            assert inst.query(":SYST:ERR?").startswith("-113")
            inst.write(":OUTP OFF")
        finally:
            inst.close()
            rm.close()


def test_the_scpi_instrument_over_a_pty(tmp_path: Path) -> None:
    link = tmp_path / "smu"
    with running_sim("--scpi-link", str(link)) as sim:
        port = serial.serial_for_url(sim.endpoints["scpi-serial"], timeout=2)
        try:
            port.write(b"*IDN?\n")
            assert port.readline().startswith(b"KEITHLEY")
        finally:
            port.close()


def test_a_bad_fault_argument_is_refused_with_the_reason() -> None:
    result = subprocess.run([sys.executable, "-m", "sim", "--tcp", "0", "--fault", "melt@3"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert result.returncode == 2 and "unknown kind 'melt'" in result.stderr


def test_ionctl_sim_takes_the_same_options_as_python_m_sim() -> None:
    def options_of(*command: str) -> list[str]:
        out = subprocess.run([sys.executable, "-m", *command, "--help"], cwd=ROOT, capture_output=True, text=True,
                             timeout=30).stdout  # fmt: skip
        return re.findall(r"^  (-[-\w]+(?:, --[-\w]+)?)", out, flags=re.M)

    options = options_of("sim")
    assert "--serial-link" in options and "--fault" in options
    assert options_of("ionctl", "sim") == options


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_shuts_the_simulator_down_cleanly_and_removes_the_link(tmp_path: Path, signal_name: str) -> None:
    import signal

    link = tmp_path / "dev"
    with running_sim("--serial-link", str(link)) as sim:
        sim.process.send_signal(getattr(signal, signal_name))
        assert sim.process.wait(timeout=10) == 0
    assert not link.exists()


def test_one_device_behind_the_pty_and_tcp_takes_one_host_and_serves_whichever_has_it(tmp_path: Path) -> None:
    link = str(tmp_path / "dev")
    with running_sim("--serial-link", link, "--tcp", "0") as sim:
        host, port = sim.endpoints["tcp"].removeprefix("socket://").split(":")
        pty_host = WireClient(link)
        try:
            pty_host.request(SetTelemetry(100))
            time.sleep(0.1)  # the pty host is noticed within 20 ms
            with socket.create_connection((host, int(port)), timeout=2) as intruder:
                intruder.settimeout(2)
                assert intruder.recv(100) == b""  # the device already has a host
        finally:
            pty_host.close()
        time.sleep(0.1)
        tcp_host = WireClient(sim.endpoints["tcp"])
        try:
            tcp_host.request(SetTelemetry(100))
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                tcp_host.pump()
            assert len(tcp_host.telemetry) >= 5 and tcp_host.errors == []  # telemetry reaches the TCP host
        finally:
            tcp_host.close()

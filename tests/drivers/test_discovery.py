"""`ionctl devices`: listing stays local and never talks to a device; probing asks who is there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ionctl.drivers import discovery
from tests.sim.endpoints import ROOT, running_sim


def ionctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ionctl", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_listing_prints_one_tab_separated_line_per_place_with_its_kind() -> None:
    result = ionctl("devices")
    assert result.returncode == 0, result.stderr
    expected = [f.line() for f in discovery.serial_ports()] + [f.line() for f in discovery.visa_resources()[0]]
    assert result.stdout.splitlines() == expected
    assert all(line.split("\t")[1] in ("serial", "visa") for line in expected)


def test_local_visa_listing_has_no_network_resources() -> None:
    found, note = discovery.visa_resources(lan=False)
    assert note is None
    assert not [f for f in found if "TCPIP" in f.address.upper()]


def test_probe_identifies_the_firmware_device_and_the_sourcemeter(tmp_path: Path) -> None:
    link = str(tmp_path / "dev")
    with running_sim("--serial-link", link, "--scpi-port", "0") as sim:
        visa = "visa:" + sim.endpoints["scpi"]
        result = ionctl("devices", "--probe", link, visa)
    assert result.returncode == 0, result.stdout + result.stderr
    firmware_line, scpi_line = result.stdout.splitlines()
    assert firmware_line.startswith(f"{link}\tserial\tgiven\t-> IONTO-SIM 1 serial ")
    assert "protocol 1." in firmware_line
    assert scpi_line.startswith(f"{visa}\tvisa\tgiven\t-> KEITHLEY INSTRUMENTS INC.,MODEL 2400")


def test_probing_an_address_where_nothing_answers_says_so_and_fails(tmp_path: Path) -> None:
    result = ionctl("devices", "--probe", "--timeout", "0.5", str(tmp_path / "nothing-here"),
                    "visa:TCPIP::127.0.0.1::1::SOCKET")  # fmt: skip
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all("\t-> no answer: " in line for line in lines)

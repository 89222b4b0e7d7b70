"""The shipped in-process simulated driver (`ionctl.drivers.simulated`, address `sim:`): a whole session through
`open_device`, `ionctl run --device sim:`, its addresses, its synthetic host clock and its link."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ionctl.core.session import Session
from ionctl.drivers import AddressError, DeviceLimits, LinkLost, OutputState, Polarity, open_device
from ionctl.drivers.simulated import SimulatedSource, parse_address
from ionctl.safety import Prescription, SiteLimits
from sim.device import SimulatedDevice
from sim.plant import LOAD_PRESETS

ROOT = Path(__file__).resolve().parents[2]
SITE = SiteLimits.load(None)
SHORT = Prescription(drug="dexamethasone", polarity=Polarity.CATHODE, electrode_area_cm2=10.0, current_ma=2.0,
                     dose_ma_min=2.0, ramp_up_s=5.0, ramp_down_s=5.0, patient_id="P-SIM",
                     operator_id="O-SIM")  # fmt: skip
#: What a session hands the device (a 2 s watchdog, as the packaged site limits).
LIMITS = DeviceLimits(max_current_ma=5.0, max_slew_ma_per_s=2.0, max_dose_ma_min=80.0, max_voltage_v=60.0,
                      max_duration_s=3600.0, min_impedance_ohm=500.0, max_impedance_ohm=100_000.0, area_cm2=10.0,
                      watchdog_s=2.0, compliance_timeout_s=30.0)  # fmt: skip
RUN_ARGS = ("--drug", "dexamethasone", "--polarity", "cathode", "--electrode-area", "10", "--current", "2",
            "--dose", "2", "--ramp-up", "5", "--ramp-down", "5", "--patient", "P-SIM")  # fmt: skip


@pytest.fixture
def source() -> Iterator[SimulatedSource]:
    # A device of its own for each test: through open_device, "sim:" would be the one device of the process.
    opened = SimulatedSource(SimulatedDevice(LOAD_PRESETS["normal"]), address="sim:")
    with opened:
        yield opened


def device_dose_ma_min(source: SimulatedSource) -> float:
    return source.device.firmware.dose_uas / 60_000


# -- a whole session -----------------------------------------------------------------------------------------


def test_a_whole_session_runs_through_open_device_sim_on_the_synthetic_clock() -> None:
    with open_device("sim:?load=normal&seed=7") as source:
        assert isinstance(source, SimulatedSource)
        result = Session(source, SHORT, SITE).run()  # its host clock is the source's synthetic one
        assert (result.outcome, result.fault) == ("completed", None), result.message
        assert result.dose_ma_min == pytest.approx(SHORT.planned_dose_ma_min, rel=0.01)
        assert result.dose_ma_min == pytest.approx(device_dose_ma_min(source), rel=0.01)
        assert source.device.firmware.state.name == "DONE"
        assert source.host_clock.monotonic() >= result.duration_s  # the session's minutes passed on the clock
        assert source.retransmissions == 0 and source.frames_damaged == 0 and source.frames_lost == 0


def test_ionctl_run_with_device_sim_completes_a_session(tmp_path: Path) -> None:
    from tests.test_run import TESS, in_clinic

    done = subprocess.run([sys.executable, "-m", "ionctl", "run",
                           "--site", "left forearm", "--device", "sim:", *RUN_ARGS, "--yes", "--json",
                           *in_clinic(tmp_path)], cwd=ROOT, input=TESS, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["outcome"], result["exit_code"]) == ("completed", 0)
    assert result["dose_ma_min"] == pytest.approx(2.0, rel=0.01)
    assert result["device"]["address"] == "sim:" and result["device"]["serial"] == "SIM-000001"


# -- addresses -----------------------------------------------------------------------------------------------


def test_an_address_names_the_load_the_seed_and_the_faults() -> None:
    load, seed, faults = parse_address(
        "sim:?load=tap-water-hands&seed=3&fault=electrode-lift@60&fault=corrupt=0.01@0:30"
    )
    assert (load, seed) == ("tap-water-hands", 3) and load in LOAD_PRESETS
    assert [(f.kind, f.at_s, f.duration_s, f.value) for f in faults] == [
        ("electrode-lift", 60.0, None, None),
        ("corrupt", 0.0, 30.0, 0.01),
    ]
    assert parse_address("sim:") == ("normal", 0, [])


@pytest.mark.parametrize(
    ("address", "named"),
    [
        ("sim:load=normal", "sim:?"),
        ("sim:?load=wet-sponge", "unknown load 'wet-sponge'"),
        ("sim:?seed=three", "seed must be an integer"),
        ("sim:?fault=meteor@5", "unknown kind 'meteor'"),
        ("sim:?colour=blue", "unknown option 'colour'"),
    ],
)
def test_an_address_it_cannot_read_is_refused_naming_what_is_wrong(address: str, named: str) -> None:
    with pytest.raises(AddressError, match=named):
        open_device(address)


def test_an_address_names_one_device_for_the_life_of_the_process_open_or_closed() -> None:
    first = open_device("sim:?seed=1")
    assert isinstance(first, SimulatedSource)
    again = open_device("sim:?seed=1")  # a second host on the line
    assert isinstance(again, SimulatedSource)
    assert again.device is first.device and again.harness is first.harness
    with pytest.raises(LinkLost, match="another host"):  # the new host took the line
        first.read_telemetry(0.1)
    first.close()
    again.close()
    later = open_device("sim:?seed=1")  # as a device outlives its host's port: the same device, the same clock
    assert isinstance(later, SimulatedSource)
    with later:
        assert later.device is first.device and later.harness is first.harness


def test_a_reconnect_after_a_lost_link_settles_the_dose_from_the_same_devices_counter() -> None:
    # The session closes the driver whose link was lost, then reopens the address: it must reach the device that
    # delivered the dose (its counter), not a fresh one with the same serial and a counter at zero.
    address = "sim:?seed=11&fault=link-drop@20"
    source = open_device(address)
    result = Session(source, SHORT, SITE, reconnect=lambda: open_device(address)).run()
    source.close()
    assert result.host_dose_ma_min > 0.1
    assert result.device_dose_ma_min is not None
    assert result.device_dose_ma_min >= result.host_dose_ma_min * 0.99, result.message
    assert result.dose_ma_min >= result.host_dose_ma_min * 0.99


# -- the synthetic host clock and the link ---------------------------------------------------------------------


def test_the_host_clock_is_the_link_time_and_its_sleep_passes_with_the_host_alive(source: SimulatedSource) -> None:
    source.configure(LIMITS)
    source.set_polarity(Polarity.CATHODE)
    source.arm()
    source.start(1.0, 1.0)
    clock = source.host_clock
    before = clock.monotonic()
    clock.sleep(10.0)  # five times the device's watchdog: only the link's heartbeats keep it energised
    assert clock.monotonic() == pytest.approx(before + 10.0)
    samples = source.read_telemetry(0.0)
    assert samples and samples[-1].state is OutputState.RUNNING and samples[-1].measured_ma == pytest.approx(1.0, 0.05)
    source.stop(1.0)


def test_a_silent_host_lets_the_devices_watchdog_take_the_output_to_zero(source: SimulatedSource) -> None:
    source.configure(LIMITS)
    source.set_polarity(Polarity.CATHODE)
    source.arm()
    source.start(1.0, 1.0)
    source.go_silent(LIMITS.watchdog_s + 2.0)
    assert source.device.firmware.fault.name == "HOST_LOST"


def test_a_dropped_link_is_lost_within_the_link_timeout_and_stays_lost() -> None:
    with open_device("sim:?fault=link-drop@1") as source:
        assert isinstance(source, SimulatedSource)
        source.configure(LIMITS)
        source.set_polarity(Polarity.CATHODE)
        source.arm()
        source.start(1.0, 1.0)
        with pytest.raises(LinkLost, match="no valid frame"):
            for _ in range(100):
                source.read_telemetry(0.25)
        lost_at = source.now_s
        assert lost_at < 1.0 + 1.0 + 0.5  # the drop, the link timeout, a read's worth
        with pytest.raises(LinkLost):
            source.arm()
        assert source.now_s == lost_at  # a lost link does not wait


def test_the_simulated_driver_is_not_loaded_for_other_addresses() -> None:
    code = "import sys, ionctl.drivers; ionctl.drivers.open_device; print('sim' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "False"

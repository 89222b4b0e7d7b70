"""Driver figures: `firmware_cmd_rtt_ms` (and its ratio to a driverless round trip).

* `firmware_cmd_rtt_ms`: IDENTIFY -> IDENTITY through `FirmwareDevice.identify()` to the simulator process
  over its pty (p50 and p99): the caller's thread sends, the driver's reader thread decodes and hands the
  reply back. Baseline: the same frame written and its reply decoded on the caller's own thread with no
  driver (as `tests/sim/endpoints.WireClient` does), against a second simulator process in the same run.
  Both links carry the 100 ms telemetry stream; the two are timed alternately so machine load hits both.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import serial

from firmware_protocol import Decoder, Identify, Packet, encode
from ionctl.drivers.firmware import FirmwareDevice
from sim.process import running_sim

ROOT = Path(__file__).resolve().parents[1]
WARM_UP = 20


@contextmanager
def _simulator(link: str) -> Iterator[str]:
    with running_sim("--serial-link", link):
        yield link


class _RawHost:
    """IDENTIFY round trips with no driver: write the frame, read and decode until its answer."""

    def __init__(self, link: str) -> None:
        self.port = serial.serial_for_url(link, timeout=1, exclusive=True)
        self.decoder = Decoder()
        self.seq = 0

    def round_trip(self) -> float:
        self.seq = (self.seq + 1) & 0xFF
        frame = encode(Identify(), seq=self.seq)
        t0 = time.perf_counter()
        self.port.write(frame)
        while True:
            for event in self.decoder.feed(self.port.read(max(1, self.port.in_waiting))):
                if isinstance(event, Packet) and event.is_response and event.ack == self.seq:
                    return time.perf_counter() - t0


def _p99(times: list[float]) -> float:
    return sorted(times)[int(0.99 * (len(times) - 1))]


def firmware_cmd_rtt(quick: bool) -> list[dict[str, Any]]:
    n = 30 if quick else 500
    driver_times: list[float] = []
    raw_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        with _simulator(os.path.join(tmp, "a")) as a, _simulator(os.path.join(tmp, "b")) as b:
            raw, device = _RawHost(b), FirmwareDevice.open(a)
            try:
                for i in range(n + WARM_UP):
                    t0 = time.perf_counter()
                    device.identify()
                    driver_rtt = time.perf_counter() - t0
                    raw_rtt = raw.round_trip()
                    if i >= WARM_UP:
                        driver_times.append(driver_rtt)
                        raw_times.append(raw_rtt)
            finally:
                device.close()
                raw.port.close()
            if device.retransmissions:
                raise RuntimeError(f"{device.retransmissions} retransmissions during the benchmark")
    p50, p50_raw = statistics.median(driver_times), statistics.median(raw_times)
    return [
        {
            "name": "firmware_cmd_rtt_ms",
            "value": round(p50 * 1000, 3),
            "p99": round(_p99(driver_times) * 1000, 3),
            "unit": f"ms, IDENTIFY -> IDENTITY through FirmwareDevice over the simulator's pty (median of {n})",
            "baseline": round(p50_raw * 1000, 3),
            "baseline_p99": round(_p99(raw_times) * 1000, 3),
            "baseline_name": "the same frame and reply on the caller's thread without the driver (WireClient-style)",
        },
        {
            "name": "firmware_cmd_rtt_vs_raw",
            "value": round(p50 / p50_raw, 2),
            "unit": "driver round trip / driverless round trip (medians)",
        },
    ]


def scpi_samples_per_s(quick: bool) -> list[dict[str, Any]]:
    """Telemetry samples per second from `ScpiSourceMeter.read_telemetry` (one `:READ?` returning V, I, TIME
    and status together) against the SCPI simulator over TCP with pyvisa-py, output on at 1 mA, unpaced.
    Baseline, in the same run against a second simulator: the obvious alternative, `:MEAS:VOLT?` then
    `:MEAS:CURR?` per sample on a bare pyvisa resource (no driver logic at all, so the ratio is conservative).
    Blocks of the two alternate so that machine load hits both alike.

    Target >= 1.5x: a sample costs one round trip instead of two, and on a real 2400 each `:MEAS` is a full
    reconfigure-source-measure cycle; besides, the two readings of the alternative are taken at different
    instants, so V/I mixes two moments of a ramp, and neither carries the instrument's TIME for the ramp clock.
    """
    import pyvisa

    from ionctl.drivers import DeviceLimits, OutputState, Polarity
    from ionctl.drivers.scpi import ScpiSourceMeter

    blocks, per_block = (4, 50) if quick else (20, 250)
    limits = DeviceLimits(max_current_ma=5.0, max_slew_ma_per_s=10.0, max_dose_ma_min=1000.0, max_voltage_v=60.0,
                          max_duration_s=3600.0, min_impedance_ohm=500.0, max_impedance_ohm=100_000.0,
                          area_cm2=10.0, watchdog_s=1.0, compliance_timeout_s=3600.0)  # fmt: skip
    driver_s = baseline_s = 0.0
    with running_sim("--scpi-port", "0") as sim_a, running_sim("--scpi-port", "0") as sim_b:
        resource_a, resource_b = sim_a.endpoints["scpi"], sim_b.endpoints["scpi"]
        meter = ScpiSourceMeter.open(resource_a, sample_interval_s=0.0)
        raw = pyvisa.ResourceManager("@py").open_resource(
            resource_b, read_termination="\n", write_termination="\n", timeout=2000
        )
        assert isinstance(raw, pyvisa.resources.MessageBasedResource)  # a TCPIP SOCKET resource speaks text
        try:
            meter.configure(limits)
            meter.set_polarity(Polarity.ANODE)
            meter.arm()
            meter.start(1.0, 0.1)
            while meter.read_telemetry(1.0)[-1].state is not OutputState.RUNNING:
                pass  # time only the steady state: no level writes
            for command in ("*RST", ":SOUR:FUNC CURR", ":SOUR:CURR 0.001", ":SENS:VOLT:PROT 60",
                            ":FORM:ELEM VOLT,CURR,TIME,STAT", ":OUTP ON"):  # fmt: skip
                raw.write(command)
            for _ in range(blocks):
                t0 = time.perf_counter()
                for _ in range(per_block):
                    meter.read_telemetry(1.0)
                t1 = time.perf_counter()
                for _ in range(per_block):
                    volts = float(raw.query(":MEAS:VOLT?").split(",")[0])
                    amps = float(raw.query(":MEAS:CURR?").split(",")[1])
                    assert volts and amps  # parsed, as the driver parses its one reading
                driver_s, baseline_s = driver_s + t1 - t0, baseline_s + time.perf_counter() - t1
            meter.stop(0.0)
        finally:
            meter.close()
            raw.write(":OUTP OFF")
            raw.close()
    n = blocks * per_block
    rate, baseline = n / driver_s, n / baseline_s
    ratio = rate / baseline
    return [
        {
            "name": "scpi_samples_per_s",
            "value": round(rate),
            "unit": f"samples/s, ScpiSourceMeter.read_telemetry (one :READ?) over TCP to the SCPI simulator ({n})",
            "baseline": round(baseline),
            "baseline_name": "separate :MEAS:VOLT? and :MEAS:CURR? per sample, bare pyvisa-py, same run",
        },
        {
            "name": "scpi_read_vs_meas",
            "value": round(ratio, 2),
            "unit": "driver samples/s / two-query samples/s",
            "target": ">= 1.5",
            "meets_target": ratio >= 1.5,
            "note": "one round trip per sample instead of two, V and I from one instant, with the instrument TIME",
        },
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    return [*firmware_cmd_rtt(quick), *scpi_samples_per_s(quick)]

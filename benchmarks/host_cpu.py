"""Host CPU figure: `host_cpu_100hz_pct`, and its ratio to a bare reader of the same stream.

A `Session` runs over `FirmwareDevice` (telemetry asked at 10 ms, i.e. 100 Hz: `LinkOptions.telemetry_period_s`,
which the driver sends as SET_TELEMETRY) against the simulator process on its pty at 1x time scale. Once the
session is energised, this process's CPU time (`time.process_time`: the session's thread, the driver's reader
thread, everything) is measured from the start of the ramp-up (5 s) over 10 s of wall time (3 s with --quick),
then the session is aborted.

Baseline, in the same run against a second simulator process (run before, not alongside, so the two do not
share the machine): the least a host can do with that stream, a loop that reads the pty (same 10 ms read
timeout as the driver) and decodes every frame with `firmware_protocol.Decoder`, nothing else, for the same
wall time. Both report their measured sample rate, so the figure is known to be at 100 Hz.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from typing import Any

import serial

from firmware_protocol import Decoder, Packet, SetTelemetry, encode
from firmware_protocol import Telemetry as WireTelemetry
from ionctl.core.session import Session
from ionctl.drivers.base import Polarity, Telemetry
from ionctl.drivers.firmware import FirmwareDevice
from ionctl.safety import Prescription, SiteLimits
from sim.process import running_sim

PERIOD_S = 0.010
TARGET_PCT = 10.0  # a tenth of one core at most: the bench PC also runs the technician's console and records
START_TIMEOUT_S = 30.0


def _prescription() -> Prescription:
    """2 mA for 40 mA·min: 20 minutes, far longer than the window, which ends with an abort."""
    return Prescription(
        drug="dexamethasone", polarity=Polarity.CATHODE, electrode_area_cm2=10.0, current_ma=2.0, dose_ma_min=40.0,
        ramp_up_s=5.0, ramp_down_s=5.0, patient_id="P-bench", operator_id="O-bench",
    )  # fmt: skip


def _cpu_over(wall_s: float, count: Any) -> tuple[float, float, int]:
    """(CPU s, wall s, samples) of this process over `wall_s` of wall time, sleeping on this thread."""
    n0, c0, w0 = count(), time.process_time(), time.perf_counter()
    time.sleep(wall_s)
    return time.process_time() - c0, time.perf_counter() - w0, count() - n0


def session_cpu(link: str, wall_s: float) -> tuple[float, float, int, str]:
    """(CPU s, wall s, samples, outcome) of an energised session over `wall_s` from its start."""
    samples = 0

    def on_sample(_: Session, __: Telemetry) -> None:
        nonlocal samples
        samples += 1

    device = FirmwareDevice.open(link, telemetry_period_s=PERIOD_S)
    try:
        session = Session(device, _prescription(), SiteLimits.load(None), on_sample=on_sample)
        runner = threading.Thread(target=session.run, name="benchmark session")
        runner.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while session.state not in ("ramping_up", "delivering"):
            if not runner.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"benchmark session did not start: {session.state}")
            time.sleep(0.05)
        cpu, wall, n = _cpu_over(wall_s, lambda: samples)
        session.request("abort")
        runner.join(START_TIMEOUT_S)
        if runner.is_alive():
            raise RuntimeError("benchmark session did not end after abort")
        return cpu, wall, n, session.result.outcome
    finally:
        device.close()


def raw_reader_cpu(link: str, wall_s: float) -> tuple[float, float, int]:
    """(CPU s, wall s, telemetry frames) of a bare read-and-decode loop over `wall_s`."""
    port = serial.serial_for_url(link, timeout=PERIOD_S, exclusive=True)
    frames = 0
    stop = threading.Event()

    def read() -> None:
        nonlocal frames
        decoder = Decoder()
        while not stop.is_set():
            for event in decoder.feed(port.read(max(1, port.in_waiting))):
                if isinstance(event, Packet) and isinstance(event.message, WireTelemetry):
                    frames += 1

    try:
        port.write(b"\x00" + encode(SetTelemetry(round(PERIOD_S * 1000)), seq=1))
        reader = threading.Thread(target=read, name="benchmark raw reader")
        reader.start()
        time.sleep(0.5)  # the new period in force
        result = _cpu_over(wall_s, lambda: frames)
        stop.set()
        reader.join()
        return result
    finally:
        port.close()


def run(quick: bool = False) -> list[dict[str, Any]]:
    wall_s = 3.0 if quick else 10.0
    with tempfile.TemporaryDirectory() as tmp:
        with running_sim("--serial-link", os.path.join(tmp, "raw")):
            raw_cpu, raw_wall, raw_frames = raw_reader_cpu(os.path.join(tmp, "raw"), wall_s)
        with running_sim("--serial-link", os.path.join(tmp, "session")):
            cpu, wall, samples, outcome = session_cpu(os.path.join(tmp, "session"), wall_s)
    pct, raw_pct = cpu / wall * 100, raw_cpu / raw_wall * 100
    return [
        {
            "name": "host_cpu_100hz_pct",
            "value": round(pct, 2),
            "unit": f"% of one core, this process (Session + FirmwareDevice, all threads) over {wall:.1f} s of an "
            "energised session (ramp-up, hold), 100 Hz telemetry, simulator on a pty at 1x",
            "samples_per_s": round(samples / wall, 1),
            "baseline": round(raw_pct, 2),
            "baseline_name": f"bare pty read + Decoder of the same 100 Hz stream, same run "
            f"({raw_frames / raw_wall:.1f} frames/s)",
            "ratio": round(pct / raw_pct, 2) if raw_pct else None,
            "outcome_after_window": outcome,
            "target": f"<= {TARGET_PCT:g}",
            "meets_target": pct <= TARGET_PCT and samples / wall >= 90,
        }
    ]

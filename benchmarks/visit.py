"""Visit figures: does supervising 8 channels at once cost any one of them its fault reaction, or its share of CPU?

`visit_fault_reaction_p99_vs_single`: the host-side time from the arrival of the telemetry sample on which a
channel's session decided a fault (stamped when the driver's reader thread decodes it) to the call of the command
that answers it, p99 over every channel of every round. The fault is `polarity-flip`: the device reports the other
polarity, which only the host judges (a ramp to zero, `abort`); a lifted electrode is cut by the device itself
first. Each round is a `VisitRunner` visit of 8 channels, each its own `FirmwareDevice` over its own pty to its own
simulator process at 1x with telemetry at 100 Hz (10 ms), every channel energised when its fault comes (5.5 s after
its output was energised, past its 5 s ramp; visit policy `continue`, so that every channel answers its own). The
baseline is the same figure for visits of one channel, as many faults as the visit's (a p99 of fewer than 100 samples
is their maximum, which grows with their number), in the same run: the ratio is what the other 7 channels cost
(target <= 1.5). The p50 and the maximum of both are given beside it.

`visit_host_cpu_pct_per_channel`: this process's CPU time (`time.process_time`: every channel's session thread,
every driver's reader thread) over 10 s of wall time with all 8 channels delivering, per channel, as % of one core;
baseline the same for a visit of one channel, same run (target: ratio <= 1.2).

No record store: the records' writer is measured by the `records` suite. The simulator processes run on this
machine too (each is a device); they are not counted in this process's CPU time.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import firmware_protocol as wire
from ionctl.config import load_config
from ionctl.drivers.firmware import FirmwareDevice
from ionctl.treatment import TreatmentRequest
from ionctl.treatment.visit import Channel, VisitPolicy, VisitRequest, VisitRunner, prepare_visit
from sim.process import running_sim

CHANNELS = 8
PERIOD_S = 0.010  # 100 Hz telemetry, as LinkOptions.telemetry_period_s asks of the firmware
FAULT_AFTER_S = 5.5  # device seconds after the output is first energised: delivering, past the 5 s ramp-up
CPU_WINDOW_S = 10.0
START_TIMEOUT_S = 60.0
SITES = ("left hand", "right hand", "left foot", "right foot", "left forearm", "right forearm", "left wrist",
         "right wrist")  # fmt: skip
BASE = TreatmentRequest(device="", operator="O-bench", patient="P-bench", preset="dexamethasone",
                        electrode_area_cm2=10.0, current_ma=2.0, dose_ma_min=40.0, ramp_up_s=5.0,
                        ramp_down_s=5.0)  # fmt: skip


class TimedDevice(FirmwareDevice):
    """The driver, stamping when each telemetry sample was decoded and when an answer to a fault was called."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrived: dict[int, float] = {}  # device time (ms) -> perf_counter at decoding
        self.decided: int | None = None  # the device time (ms) of the last sample the session has looked at
        self.reactions: list[float] = []

    def _route(self, events: list[wire.Event]) -> None:
        now = time.perf_counter()
        for event in events:
            if isinstance(event, wire.TelemetryReceived):
                self.arrived[int(event.message.t_ms)] = now
        super()._route(events)

    def output_off(self) -> None:
        self._answered()
        super().output_off()

    def abort(self) -> None:
        self._answered()
        super().abort()

    def _answered(self) -> None:
        if self.decided is not None and self.decided in self.arrived and not self.reactions:
            self.reactions.append(time.perf_counter() - self.arrived[self.decided])


class Watch:
    """The visit's display: which sample each channel's session is deciding on (called before its monitors)."""

    def __init__(self, devices: dict[int, TimedDevice]) -> None:
        self.devices = devices
        self.samples = 0
        self.delivering: set[int] = set()

    def on_sample(self, channel: int, session: Any, sample: Any) -> None:
        self.samples += 1
        self.devices[channel].decided = round(sample.t_s * 1000)
        if session.state == "delivering":
            self.delivering.add(channel)

    def on_state(self, channel: int, session: Any, change: Any) -> None:
        pass

    def alert(self, channel: int, text: str) -> None:
        pass

    def ended(self, channel: int, result: Any) -> None:
        pass


@contextmanager
def _simulators(count: int, tmp: Path, faults: list[str], time_scale: float) -> Iterator[list[Path]]:
    links = [tmp / f"dev{n}" for n in range(1, count + 1)]
    with ExitStack() as stack:
        for n, link in enumerate(links, start=1):
            args = ["--serial-link", str(link), "--seed", str(n), "--time-scale", str(time_scale)]
            for fault in faults:
                args += ["--fault", fault]
            stack.enter_context(running_sim(*args))
        yield links


def _visit(
    count: int, tmp: Path, *, faults: list[str], window_s: float | None, time_scale: float = 1.0
) -> tuple[list[float], float | None]:
    """Run one visit of `count` channels; (each channel's reaction s, CPU % of a core per channel over the window
    with every channel delivering, or None without a window)."""
    config = load_config(None)
    with _simulators(count, tmp, faults, time_scale) as links:
        channels = tuple(
            Channel(replace(BASE, device=str(link), site=site)) for link, site in zip(links, SITES, strict=False)
        )
        prepared = prepare_visit(VisitRequest(channels, VisitPolicy.CONTINUE), store=None, config=config)
        devices: dict[int, TimedDevice] = {}

        def open_source(n: int, channel: Channel) -> TimedDevice:
            device = TimedDevice.open(channel.request.device, telemetry_period_s=PERIOD_S)
            assert isinstance(device, TimedDevice)
            devices[n] = device
            return device

        watch = Watch(devices)
        runner = VisitRunner(prepared, open_source, store_path=None, display=watch)
        result: list[Any] = []
        thread = threading.Thread(target=lambda: result.append(runner.run()), name="benchmark visit")
        thread.start()
        cpu = None
        if window_s is not None:
            deadline = time.monotonic() + START_TIMEOUT_S
            while len(watch.delivering) < count:
                if not thread.is_alive() or time.monotonic() > deadline:
                    runner.request("abort")
                    thread.join(START_TIMEOUT_S)
                    raise RuntimeError(f"benchmark visit: {len(watch.delivering)} of {count} channels delivering")
                time.sleep(0.05)
            c0, w0 = time.process_time(), time.perf_counter()
            time.sleep(window_s)
            cpu = (time.process_time() - c0) / (time.perf_counter() - w0) * 100 / count
            runner.request("abort")
        thread.join(START_TIMEOUT_S * 2)
        if thread.is_alive():
            runner.request("abort")
            thread.join(START_TIMEOUT_S)
            raise RuntimeError("benchmark visit did not end")
        for device in devices.values():
            device.close()
    reactions = [r for d in devices.values() for r in d.reactions]
    if window_s is None and len(reactions) < count:
        outcomes = [(r.result.fault, r.result.message) for r in result[0].reports] if result else []
        raise RuntimeError(f"benchmark visit: {len(reactions)} of {count} faults answered by the host ({outcomes})")
    return reactions, cpu


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


def run(quick: bool = False) -> list[dict[str, Any]]:
    # --quick only shows that the benchmark runs: 3 channels on simulators at 5x, so that it takes seconds.
    rounds = 1 if quick else 4
    channels = 3 if quick else CHANNELS
    window = 1.0 if quick else CPU_WINDOW_S
    scale = 5.0 if quick else 1.0
    fault = [f"polarity-flip@{FAULT_AFTER_S}"]
    with tempfile.TemporaryDirectory() as tmp:
        single: list[float] = []
        many: list[float] = []
        # As many single-channel faults as the visit's: a p99 of n samples is (for n < 100) their maximum, which
        # grows with n, so only equal counts compare one channel alone with the visit fairly.
        for _ in range(rounds * channels):
            single += _visit(1, Path(tmp), faults=fault, window_s=None, time_scale=scale)[0]
        for _ in range(rounds):
            many += _visit(channels, Path(tmp), faults=fault, window_s=None, time_scale=scale)[0]
        _, cpu_one = _visit(1, Path(tmp), faults=[], window_s=window, time_scale=scale)
        _, cpu_many = _visit(channels, Path(tmp), faults=[], window_s=window, time_scale=scale)
    assert cpu_one is not None and cpu_many is not None
    p99_one, p99_many = _p99(single) * 1000, _p99(many) * 1000
    return [
        {
            "name": "visit_fault_reaction_p99_vs_single",
            "value": round(p99_many, 2),
            "p50": round(statistics.median(many) * 1000, 2),
            "max": round(max(many) * 1000, 2),
            "baseline_p50": round(statistics.median(single) * 1000, 2),
            "baseline_max": round(max(single) * 1000, 2),
            "unit": f"host ms from the deciding sample's arrival to the abort, p99 of {len(many)} faults, "
            f"{channels} channels at 100 Hz device time, simulators at {scale:g}x",
            "baseline": round(p99_one, 2),
            "baseline_name": f"the same, one channel alone, p99 of {len(single)} faults (same run)",
            "ratio": round(p99_many / p99_one, 2),
            "target": "ratio <= 1.5",
            "meets_target": p99_many <= 1.5 * p99_one,
        },
        {
            "name": "visit_host_cpu_pct_per_channel",
            "value": round(cpu_many, 2),
            "unit": f"% of one core per channel, {channels} channels delivering at 100 Hz device time, "
            f"simulators at {scale:g}x, {window:g} s window",
            "baseline": round(cpu_one, 2),
            "baseline_name": "the same, one channel alone (same run)",
            "ratio": round(cpu_many / cpu_one, 2),
            "target": "ratio <= 1.2",
            "meets_target": cpu_many <= 1.2 * cpu_one,
        },
    ]  # fmt: skip

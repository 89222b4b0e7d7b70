"""A whole simulated device: plant + firmware + scheduled faults + link damage + ground-truth trace.

Sans-I/O like its parts: the endpoint (or a test) hands it bytes and the host-facing wall clock; it
derives the device clock as `(wall - start) * time_scale`, so ramps, dose and telemetry timestamps run
`time_scale` times faster while the watchdog and the link keep real seconds.

Faults are scheduled in device seconds since the output was first energised (`KIND[=VALUE]@T[:D]`):

| kind | effect | ends after D |
|---|---|---|
| electrode-lift | open circuit at the electrodes | contact restored |
| short[=OHMS] | the electrodes touch (default 50 Ω) | short removed |
| impedance-step=OHMS | R_s rises by OHMS | step removed |
| link-drop | the device neither reads nor writes | link back |
| corrupt=RATE | each byte, either way, has a bit flipped with probability RATE | clean link |
| reboot | the processor restarts (FAULT BROWNOUT), silent for D if given | — |
| stuck-output[=welded] | firmware ignores target changes and stops; `welded`: the relay too | unstuck |
| sensor-drift=PCT | the current sensor reads PCT % high (negative: low) | drift removed |
| device-stop | the front panel's STOP: the device ramps to zero at max slew and ends (DONE), unasked | — |
| polarity-flip | the output polarity swaps on its own and the device reports it | — |
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from firmware_protocol import State
from sim.faults import FAULT_KINDS as FAULT_KINDS  # the fault language, importable from here as well
from sim.faults import FaultSpec as FaultSpec
from sim.faults import FaultSpecError as FaultSpecError
from sim.firmware import DeviceSpec, Firmware
from sim.plant import MAX_CATCH_UP_S as MAX_CATCH_UP_S
from sim.plant import LoadParams, Plant, PlantSample

TraceSink = Callable[[dict[str, object]], None]


class SimulatedDevice:
    """The device a host meets on the other end of a link (see module docstring)."""

    def __init__(
        self,
        load: LoadParams,
        *,
        spec: DeviceSpec | None = None,
        faults: Sequence[FaultSpec] = (),
        seed: int = 0,
        time_scale: float = 1.0,
        start_wall_s: float = 0.0,
        step_s: float = 0.010,
        trace: TraceSink | None = None,
        number: int = 1,
    ) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        spec = spec or DeviceSpec()
        self.plant = Plant(load, compliance_v=spec.hw_compliance_mv / 1000, rng=random.Random(seed))
        self.firmware = Firmware(self.plant, spec, step_s=step_s, on_step=self._on_step)
        self.time_scale = time_scale
        self.start_wall_s = start_wall_s
        self.trace = trace
        self.number = number  # which of the simulator's devices this is: every trace row names it
        self.energised_at_s: float | None = None  # device time the output was first energised
        self._pending = sorted(faults, key=lambda f: f.at_s)
        self._active: list[tuple[FaultSpec, float | None]] = []  # (fault, device end time)
        self._link_rng = random.Random(seed + 1)
        self._link_down = False
        self._corrupt_rate = 0.0

    # -- the link ------------------------------------------------------------------------------------------

    def device_time(self, wall_s: float) -> float:
        return (wall_s - self.start_wall_s) * self.time_scale

    def receive(self, data: bytes, wall_s: float) -> None:
        """Bytes from the host, arriving at wall time `wall_s`."""
        self.advance(wall_s)
        if self._link_down:
            return
        self.firmware.receive(self._damage(data), wall_s)

    def advance(self, wall_s: float) -> None:
        # At most MAX_CATCH_UP_S of device time per call: when the machine cannot keep up with the time
        # scale, the device clock falls behind instead of the caller's loop stalling (signals unanswered).
        device_s = min(self.device_time(wall_s), self.firmware.t + MAX_CATCH_UP_S)
        self.firmware.advance(device_s, wall_s)

    def reset_input(self) -> None:
        """A new host is on the link: drop any partial frame the previous one left."""
        self.firmware.reset_input()

    def take_output(self) -> bytes:
        """Bytes for the host, as far as the link lets them through."""
        out = self.firmware.take_output()
        if self._link_down:
            return b""
        return self._damage(out)

    def _damage(self, data: bytes) -> bytes:
        if not self._corrupt_rate or not data:
            return data
        damaged = bytearray(data)
        rate, rng = self._corrupt_rate, self._link_rng
        for i in range(len(damaged)):
            if rng.random() < rate:
                damaged[i] ^= 1 << rng.randrange(8)
        return bytes(damaged)

    # -- faults and trace, once per firmware step ------------------------------------------------------------

    def _on_step(self, fw: Firmware, sample: PlantSample) -> None:
        if self.energised_at_s is None and fw.relay and fw.state in (State.RAMP_UP, State.RUNNING):
            self.energised_at_s = fw.t
        if self.energised_at_s is not None and (self._pending or self._active):
            since = fw.t - self.energised_at_s
            while self._pending and self._pending[0].at_s <= since + 1e-9:
                fault = self._pending.pop(0)
                end = None if fault.duration_s is None else fw.t + fault.duration_s
                self._start(fault)
                self._active.append((fault, end))
            for item in [a for a in self._active if a[1] is not None and fw.t >= a[1] - 1e-9]:
                self._active.remove(item)
                self._end(item[0])
        if self.trace is not None:
            self.trace(
                {
                    "device": self.number,
                    "t_s": round(fw.t, 6),
                    "current_ua": round(sample.current_ua, 3),
                    "voltage_mv": round(sample.voltage_v * 1000, 1),
                    "state": fw.state.name,
                    "fault": fw.fault.name,
                    "dose_uas": round(sample.charge_uas, 3),
                }
            )

    def _start(self, fault: FaultSpec) -> None:
        plant, fw = self.plant, self.firmware
        match fault.kind:
            case "electrode-lift":
                plant.lift_electrode()
            case "short":
                plant.short(float(fault.value) if fault.value is not None else 50.0)
            case "impedance-step":
                plant.impedance_step(float(fault.value))  # type: ignore[arg-type]
            case "link-drop":
                self._link_down = True
            case "corrupt":
                self._corrupt_rate = float(fault.value)  # type: ignore[arg-type]
            case "reboot":
                fw.reboot()
                self._link_down = fault.duration_s is not None
            case "stuck-output":
                fw.stuck_output = True
                fw.relay_welded = fault.value == "welded"
            case "sensor-drift":
                plant.set_sensor_drift(float(fault.value))  # type: ignore[arg-type]
            case "device-stop":
                fw.panel_stop()
            case "polarity-flip":
                fw.flip_polarity()

    def _end(self, fault: FaultSpec) -> None:
        plant, fw = self.plant, self.firmware
        match fault.kind:
            case "electrode-lift":
                plant.restore_contact()
            case "short":
                plant.clear_short()
            case "impedance-step":
                plant.impedance_step(-float(fault.value))  # type: ignore[arg-type]
            case "link-drop" | "reboot":
                self._link_down = False
            case "corrupt":
                self._corrupt_rate = 0.0
            case "stuck-output":
                fw.stuck_output = False
                fw.relay_welded = False
                fw._apply_relay()
            case "sensor-drift":
                plant.set_sensor_drift(0.0)

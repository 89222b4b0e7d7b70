"""`InProcessSource`: the session's `CurrentSource` over an in-process `SimulatedDevice`, on a synthetic clock.

The same bytes cross the same codec as over a pty, but nothing waits: a command is encoded through
`sim.harness.Harness`, handed to the device at the present synthetic time, and its reply converted exactly as
`ionctl.drivers.firmware` converts it (its pure helpers and tables are reused, not copied). Time moves only
when the source is asked for telemetry (one telemetry period per `read_telemetry`) or waits for a reply, so a
20-minute session runs in a fraction of a second.

The commands themselves are the real driver's (`FirmwareCommands`); only the transport differs. Link
behaviour follows the firmware driver (PROTOCOL.md §4.4, §7.3, §8), in synthetic seconds: stop-and-wait
with up to `retransmissions` RETX resends; heartbeats every watchdog/4 in every state (the harness sends them
as it waits); the link is lost, and stays lost, when a request goes unanswered or no valid frame arrives for
the link timeout. Device time and host time are the same clock here (`time_scale` 1). The harness numbers
frames on, across `reopen`, so the driver's response-cache flush at connect has nothing to do here.

Hooks for tests: `at(t_s, fn)` runs `fn` once device time since the output was first energised (the origin
of `FaultSpec` times) reaches `t_s`; `before_read` is called at the start of every `read_telemetry`.

`GroundTruth` watches the simulator's per-step trace: the charge that really flowed, and what the current
and polarity really did.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import firmware_protocol as wire
from firmware_protocol import Configure, HeaderFlags, Message
from ionctl.drivers.base import (
    DeviceIdentity,
    HostClock,
    LinkLost,
    Telemetry,
)
from ionctl.drivers.firmware import (
    UAS_PER_MA_MIN,
    FirmwareCommands,
    LinkOptions,
    _Waiting,
    telemetry_sample,
)
from sim.device import SimulatedDevice
from sim.harness import Harness

RETRANSMIT = HeaderFlags.ACK_REQ | HeaderFlags.RETX
#: Synthetic seconds per poll while waiting for a reply (the device answers most commands at once).
POLL_S = 0.01


class InProcessSource(FirmwareCommands):
    """A `CurrentSource` speaking the firmware protocol to `device` in-process (module docstring)."""

    def __init__(
        self,
        device: SimulatedDevice,
        *,
        address: str = "inprocess:sim",
        options: LinkOptions | None = None,
        harness: Harness | None = None,
    ) -> None:
        self.device = device
        self.address = address
        self.options = options or LinkOptions()
        self.harness = harness or Harness(device)  # heartbeats every 0.25 s until CONFIGURE names the watchdog
        self.before_read: Callable[[InProcessSource], None] | None = None
        self.retransmissions = 0
        self.commands: list[str] = []  # every command sent, by name, for tests that care about the sequence
        self._scheduled: list[tuple[float, Callable[[], None]]] = []
        self._taken = len(self.harness.telemetry)  # telemetry frames already handed out
        self._last_frame_s = self.harness.wall_s
        self._lost: str | None = None
        self._wire_identity: wire.Identity | None = None
        self._identity: DeviceIdentity | None = None
        self.harness.device.reset_input()  # a new host on the link (as an endpoint does on open)
        self.identify()
        self._command(wire.SetTelemetry(round(self.options.telemetry_period_s * 1000)))

    def reopen(self) -> InProcessSource:
        """A new driver on the same device and clock: the session's `reconnect` after a link loss."""
        return InProcessSource(self.device, address=self.address, options=self.options, harness=self.harness)

    # -- the synthetic clock -------------------------------------------------------------------------------

    @property
    def now_s(self) -> float:
        """Device (= link) seconds on the synthetic clock."""
        return self.device.device_time(self.harness.wall_s)

    @property
    def since_energised_s(self) -> float | None:
        """Device seconds since the output was first energised (the origin of `FaultSpec.at_s`), or None."""
        first = self.device.energised_at_s
        return None if first is None else self.device.firmware.t - first

    @property
    def host_clock(self) -> HostClock:
        """The host's clock is the synthetic one too: `monotonic()` is the link time and `sleep` lets it pass
        (host alive). A session on this source reads it by itself, so its host-time margins (the stuck-output
        link margin, the reconnect window) pass with the device's minutes, not the machine's real seconds."""
        return _SyntheticHostClock(self.harness)

    def at(self, t_s: float, fn: Callable[[], None]) -> None:
        """Run `fn` once, when `since_energised_s` first reaches `t_s` (checked every telemetry period)."""
        self._scheduled.append((t_s, fn))
        self._scheduled.sort(key=lambda item: item[0])

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass with the host alive (heartbeats sent), telemetry queued for `read_telemetry`."""
        self.harness.wait(seconds)
        self._run_due()

    def go_silent(self, seconds: float) -> None:
        """Let `seconds` pass with the host silent (no heartbeats): what happens after a host dies."""
        heartbeat, self.harness.heartbeat_s = self.harness.heartbeat_s, None
        try:
            self.harness.wait(seconds)
        finally:
            self.harness.heartbeat_s = heartbeat

    def _run_due(self) -> None:
        since = self.since_energised_s
        while self._scheduled and since is not None and self._scheduled[0][0] <= since + 1e-9:
            _, fn = self._scheduled.pop(0)
            fn()

    # -- requests ----------------------------------------------------------------------------------------

    def _exchange(self, message: Message, wait_s: float) -> Message:
        """Stop-and-wait with bounded retransmission; latches the link lost when it runs out."""
        self._raise_if_lost()
        self.commands.append(message.NAME.lower())
        h = self.harness
        h.responses.clear()  # stop-and-wait: anything still queued answers an earlier request
        seq = h.send(message)
        waiting = _Waiting(seq, message)
        timeout_s = wait_s + self.options.response_timeout_s
        for attempt in range(self.options.retransmissions + 1):
            if attempt:
                self.retransmissions += 1
                h.send(message, seq=seq, flags=RETRANSMIT)
            reply = self._await_reply(waiting, timeout_s)
            if reply is not None:
                return reply
        raise self._lose(f"{self.address}: no answer to {message.NAME} after {self.options.retransmissions + 1} tries")

    def _await_reply(self, waiting: _Waiting, timeout_s: float) -> Message | None:
        h, waited = self.harness, 0.0
        while True:
            for packet in h.responses:
                if waiting.matches(packet):
                    h.responses.remove(packet)
                    self._last_frame_s = h.wall_s
                    return packet.message
            if waited >= timeout_s - 1e-9:
                return None
            h.wait(POLL_S)
            waited += POLL_S

    def _raise_if_lost(self) -> None:
        if self._lost is not None:
            raise LinkLost(self._lost)

    def _lose(self, reason: str) -> LinkLost:
        if self._lost is None:
            self._lost = reason
        return LinkLost(self._lost)

    # -- CurrentSource (the commands are the real driver's, ionctl.drivers.firmware.FirmwareCommands) ----------

    def _configured(self, message: Configure) -> None:
        self.harness.heartbeat_s = message.watchdog_ms / 1000 / 4  # as the driver: every watchdog / 4

    def read_telemetry(self, timeout_s: float) -> list[Telemetry]:
        """The samples queued so far (commands queue the device's state-change samples); if none, advance the
        clock one telemetry period at a time, up to `timeout_s`, until one arrives. So a session's read loop
        moves the device one period per call, and `read_telemetry(0)` only drains the queue."""
        if self.before_read is not None and timeout_s > 0:
            self.before_read(self)
        self._raise_if_lost()
        h, waited = self.harness, 0.0
        while len(h.telemetry) == self._taken and waited < timeout_s - 1e-9:
            step = min(self.options.telemetry_period_s, timeout_s - waited)
            self.advance(step)
            waited += step
        frames = h.telemetry[self._taken :]
        self._taken = len(h.telemetry)
        if frames:
            self._last_frame_s = h.wall_s
        else:
            timeout = self.options.link_timeout
            if timeout is not None and h.wall_s - self._last_frame_s > timeout:
                raise self._lose(f"{self.address}: no valid frame for {h.wall_s - self._last_frame_s:.2f} s")
        counter = self._identity.coulomb_counter if self._identity else True
        return [telemetry_sample(m, coulomb_counter=counter) for m in frames]

    def keep_alive(self) -> None:
        self._raise_if_lost()
        self.harness.send(wire.Heartbeat(0))

    def close(self) -> None:
        """Latch the driver closed (as `FirmwareDevice.close`); the device keeps running on the harness."""
        if self._lost is None:
            self._lost = f"{self.address}: the driver was closed"


# -- ground truth ------------------------------------------------------------------------------------------

#: Below this true current (µA) the output counts as off (the firmware's monitor floor).
FLOOR_UA = 100.0


@dataclass
class GroundTruth:
    """A `SimulatedDevice` trace sink: what really flowed, step by step (10 ms of device time)."""

    device: SimulatedDevice | None = None  # set after the device is built, to read its polarity
    dose_uas: float = 0.0
    current_ua: float = 0.0
    peak_ua: float = 0.0
    steps: int = 0
    polarity: Any = None
    polarity_changes_with_current: list[tuple[float, Any, Any, float]] = field(default_factory=list)
    over_ua: float = math.inf  # a current above this counts as overcurrent (set by the test)
    over_since_s: float | None = None
    longest_over_s: float = 0.0
    t_s: float = 0.0
    keep: list[dict[str, object]] | None = None  # set to a list to keep every row (short sessions only)

    def __call__(self, row: dict[str, object]) -> None:
        t_s = float(row["t_s"])  # type: ignore[arg-type]
        current = float(row["current_ua"])  # type: ignore[arg-type]
        self.t_s, self.steps = t_s, self.steps + 1
        self.dose_uas = float(row["dose_uas"])  # type: ignore[arg-type]
        previous_current, self.current_ua = self.current_ua, current
        self.peak_ua = max(self.peak_ua, current)
        if self.keep is not None:
            self.keep.append(row)
        if self.device is not None:
            polarity = self.device.firmware.polarity
            # NONE is no polarity (a reboot forgets it as the relay opens), not a change of direction.
            if polarity != self.polarity and self.polarity and polarity:
                if max(current, previous_current) >= FLOOR_UA:
                    self.polarity_changes_with_current.append((t_s, self.polarity, polarity, current))
            self.polarity = polarity
        if current > self.over_ua:
            if self.over_since_s is None:
                self.over_since_s = t_s
            self.longest_over_s = max(self.longest_over_s, t_s - self.over_since_s)
        else:
            self.over_since_s = None

    @property
    def dose_ma_min(self) -> float:
        return self.dose_uas / UAS_PER_MA_MIN


class _SyntheticHostClock:
    """A `HostClock` on a harness's synthetic clock (`InProcessSource.host_clock`)."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness

    def monotonic(self) -> float:
        return self.harness.wall_s

    def sleep(self, seconds: float) -> None:
        self.harness.wait(seconds)


def simulated(load: Any, *, faults: Any = (), seed: int = 0, spec: Any = None) -> tuple[InProcessSource, GroundTruth]:
    """A fresh device with `load` (a `LoadParams`), faults and seed, its ground truth, and a source on it."""
    truth = GroundTruth()
    device = SimulatedDevice(load, faults=list(faults), seed=seed, spec=spec, trace=truth)
    truth.device = device
    return InProcessSource(device), truth

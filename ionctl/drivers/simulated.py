"""The in-process simulated device as a driver: `open_device("sim:")`, on a synthetic clock.

`SimulatedSource` speaks the firmware protocol to a `sim.device.SimulatedDevice` in the same process: the same
`firmware_protocol.HostLink` as the serial driver (seq/ack, RETX, heartbeats every watchdog/4, link loss), the same
commands (`FirmwareCommands`), the same bytes through the same codec -- only the transport differs. Nothing waits:
time is the link time of a `sim.harness.Harness` and moves only when the host waits (for a reply, for telemetry,
or through its `host_clock`), so a 20-minute session runs in a fraction of a second. Device time and host time are
the same clock here (time scale 1).

Address (`ionctl run --device sim: ...`)::

    sim:                                  the normal skin load, seed 0, no faults
    sim:?load=tap-water-hands&seed=3      a load preset of sim.plant.LOAD_PRESETS, a noise seed
    sim:?fault=electrode-lift@60&fault=corrupt=0.01@0:30
                                          faults as `python -m sim --fault` takes them (device seconds since the
                                          output was first energised), repeatable

As with python-can's virtual bus, one address names one device, for the life of the process: opening it again
reaches the same device, on the same clock, as a new host on its line -- whether the driver before was closed or
not, as a real device outlives its host's port. So the session's reconnect after a lost link (which closes the
lost driver first) reaches the device that delivered the dose, and settles it from that device's counter; a fresh
device with the same serial and a counter at zero would make the record say nothing was delivered.

The link (PROTOCOL.md §4.4, §7.3, §8), in synthetic seconds: stop-and-wait with up to `retransmissions` RETX
resends; heartbeats every watchdog/4 in every state while the host waits; the link is lost, and stays lost, when
a request goes unanswered or no valid frame arrives for the link timeout. `go_silent` lets time pass with the host
alive but mute (no heartbeats), as after a host died.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

import firmware_protocol as wire
from firmware_protocol import Configure, LinkDown, LinkDownError, Message, Reply, TelemetryReceived
from ionctl.drivers import SIM_PREFIX
from ionctl.drivers.base import AddressError, HostClock, LinkLost, Telemetry
from ionctl.drivers.firmware_wire import FirmwareCommands, LinkOptions, telemetry_sample
from sim.device import FaultSpec, FaultSpecError, SimulatedDevice
from sim.harness import Harness
from sim.plant import LOAD_PRESETS

DEFAULT_LOAD = "normal"
#: Link seconds between the host's looks at the line while time passes (as `sim.harness.Harness.wait` steps).
STEP_S = 0.05
#: Link seconds between looks while a reply is awaited (the device answers most requests at once).
POLL_S = 0.01
#: Float noise allowed when comparing link times.
_EPSILON_S = 1e-9


# -- the line: one device, its synthetic clock, the host attached to it ---------------------------------------


class SimulatedLine:
    """One simulated device on its harness's clock, and the host (driver) now on its line: the device's bytes go to
    that host's link; a host opened later on the same harness takes the line over (the earlier one is lost)."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.host: SimulatedSource | None = None

    def attach(self, host: SimulatedSource) -> None:
        previous, self.host = self.host, host
        if previous is not None and previous is not host:
            previous._lose(f"{previous.address}: another host opened the simulated device")

    def send(self, frame: bytes) -> None:
        """Bytes from the host, now; the device's answers (if any) go straight back to the host on the line."""
        if frame:
            self.harness.device.receive(frame, self.harness.wall_s)
        self.deliver()

    def deliver(self) -> None:
        data = self.harness.device.take_output()
        if self.host is not None:
            self.host._receive(data)

    def run_for(
        self, seconds: float, *, alive: bool = True, until: Callable[[], bool] | None = None, step_s: float = STEP_S
    ) -> None:
        """Let `seconds` of link time pass (or until `until()` holds). `alive`: the host on the line polls its link
        (heartbeats, retransmissions, silence); otherwise it only reads what the device sends."""
        h = self.harness
        end = h.wall_s + seconds
        while True:
            if until is not None and until():
                return
            host = self.host if alive else None
            if host is not None:
                host._poll()
                if until is not None and until():
                    return
            if h.wall_s >= end - _EPSILON_S:
                return
            target = min(end, h.wall_s + step_s)
            deadline = host._link.next_deadline() if host is not None else None
            if deadline is not None and deadline > h.wall_s:
                target = min(target, deadline)
            h.wall_s = target
            h.device.advance(target)
            self.deliver()


#: The line of each harness, by the harness's id, while a driver holds it. The line holds its harness, so an id
#: cannot be reused while its entry lives (a dictionary keyed by the harness itself would keep both for ever).
_LINES: weakref.WeakValueDictionary[int, SimulatedLine] = weakref.WeakValueDictionary()


def line_of(harness: Harness) -> SimulatedLine:
    """The line of the device behind `harness` (one per harness, shared by every driver opened on it)."""
    line = _LINES.get(id(harness))
    if line is None or line.harness is not harness:
        line = _LINES[id(harness)] = SimulatedLine(harness)
    return line


class SyntheticClock:
    """The host clock of a simulated source (`CurrentSource.host_clock`): `monotonic()` is the harness's link time,
    and `sleep` lets the time pass on the line with the host alive."""

    def __init__(self, line: SimulatedLine) -> None:
        self.line = line

    def monotonic(self) -> float:
        return self.line.harness.wall_s

    def sleep(self, seconds: float) -> None:
        self.line.run_for(max(0.0, seconds))


# -- the driver ----------------------------------------------------------------------------------------------


class SimulatedSource(FirmwareCommands):
    """A `CurrentSource` speaking the firmware protocol to `device` in-process (see the module docstring).

    `commands` lists every command sent, by name; `frames_lost`, `frames_damaged` and `retransmissions` count link
    trouble since open."""

    def __init__(
        self,
        device: SimulatedDevice,
        *,
        address: str = SIM_PREFIX,
        options: LinkOptions | None = None,
        harness: Harness | None = None,
    ) -> None:
        self.device = device
        self.address = address
        self.options = options or LinkOptions()
        self.harness = harness or Harness(device)
        self.line = line_of(self.harness)
        self.commands: list[str] = []
        self._link = self.options.host_link(self.harness.wall_s)
        self._telemetry: list[wire.Telemetry] = []
        self._reply: Reply | None = None
        self._lost: str | None = None
        self._closed = False
        self._identity = None
        self._wire_identity = None
        self.line.attach(self)
        device.reset_input()  # a new host on the link (as an endpoint does on open)
        self._connect()

    @classmethod
    def open(cls, address: str = SIM_PREFIX, **options: Any) -> SimulatedSource:
        """The simulated device at `address` (module docstring), identified, its telemetry started.

        Options: the fields of `LinkOptions`. Raises `AddressError` for an address it cannot read."""
        load, seed, faults = parse_address(address)
        with _OPEN_LOCK:
            previous = _OPEN.get(address)
            if previous is not None:
                source = previous.reopen()
            else:
                device = SimulatedDevice(LOAD_PRESETS[load], faults=faults, seed=seed)
                source = cls(device, address=address, options=LinkOptions(**options))
            _OPEN[address] = source
        return source

    def reopen(self) -> SimulatedSource:
        """A new driver on the same device and clock (the session's reconnect after a link loss)."""
        return type(self)(self.device, address=self.address, options=self.options, harness=self.harness)

    @property
    def host_clock(self) -> HostClock:
        return SyntheticClock(self.line)

    # -- the synthetic clock -------------------------------------------------------------------------------

    @property
    def now_s(self) -> float:
        """Device (= link) seconds on the synthetic clock."""
        return self.device.device_time(self.harness.wall_s)

    @property
    def since_energised_s(self) -> float | None:
        """Device seconds since the output was first energised (the origin of fault times), or None."""
        first = self.device.energised_at_s
        return None if first is None else self.device.firmware.t - first

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass with the host alive (heartbeats sent), telemetry queued for `read_telemetry`."""
        self.line.run_for(seconds)

    def go_silent(self, seconds: float) -> None:
        """Let `seconds` pass with the host silent (no heartbeats): what happens after a host dies."""
        self.line.run_for(seconds, alive=False)

    # -- CurrentSource (the commands are FirmwareCommands') ---------------------------------------------------

    def read_telemetry(self, timeout_s: float) -> list[Telemetry]:
        """The samples queued so far (commands queue the device's state-change samples); if none, advance the
        clock one telemetry period at a time, up to `timeout_s`, until one arrives. So a session's read loop
        moves the device one period per call, and `read_telemetry(0)` only drains the queue."""
        self._raise_if_lost()
        period = self.options.telemetry_period_s or LinkOptions().telemetry_period_s
        waited = 0.0
        while not self._telemetry and self._lost is None and waited < timeout_s - _EPSILON_S:
            step = min(period, timeout_s - waited)
            self.advance(step)
            waited += step
        frames, self._telemetry = self._telemetry, []
        if not frames:
            self._raise_if_lost()
        counter = self._identity.coulomb_counter if self._identity else True
        return [telemetry_sample(m, coulomb_counter=counter) for m in frames]

    def keep_alive(self) -> None:
        self._raise_if_lost()
        self.line.send(self._link.heartbeat(self.harness.wall_s))

    def close(self) -> None:
        """Latch the driver closed (as `FirmwareDevice.close`); the device keeps running on its clock, and the
        address reaches it again."""
        self._closed = True
        self._lose(f"{self.address}: the driver was closed")

    # -- requests ----------------------------------------------------------------------------------------

    def _configured(self, message: Configure) -> None:
        # The harness heartbeats on its own when something else lets time pass on it (`Harness.wait`): at the
        # device's watchdog / 4 too.
        self.harness.heartbeat_s = message.watchdog_ms / 1000 / 4

    def _exchange(self, message: Message, wait_s: float) -> Message:
        self._raise_if_lost()
        self.commands.append(message.NAME.lower())
        return self._request(message, wait_s).reply

    def _request(self, message: Message, wait_s: float) -> Reply:
        """Stop-and-wait: send, then let time pass until the reply, or until the link is lost (§4.4)."""
        self._raise_if_lost()
        try:
            frame = self._link.request(message, self.harness.wall_s, wait_s=wait_s)
        except LinkDownError as exc:
            raise self._lose(f"{self.address}: {exc.reason}") from exc
        self._reply = None
        self.line.send(frame)
        o = self.options
        budget = (o.retransmissions + 1) * (wait_s + o.response_timeout_s) + STEP_S  # the link gives up by then
        self.line.run_for(budget, until=lambda: self._reply is not None or self._lost is not None, step_s=POLL_S)
        reply, self._reply = self._reply, None
        if reply is None:
            raise self._lose(f"{self.address}: no answer to {message.NAME}")
        return reply

    def _raise_if_lost(self) -> None:
        if self._lost is not None:
            raise LinkLost(self._lost)

    def _lose(self, reason: str) -> LinkLost:
        """Latch the link lost (the first reason sticks): no more heartbeats, every call raises `LinkLost`."""
        if self._lost is None:
            self._lost = reason
        self._link.abandon(reason)
        self._route()
        return LinkLost(self._lost)

    # -- the line ------------------------------------------------------------------------------------------

    def _poll(self) -> None:
        frames = self._link.poll(self.harness.wall_s)
        if frames:
            self.line.send(frames)
        self._route()

    def _receive(self, data: bytes) -> None:
        self._link.receive(data, self.harness.wall_s)
        self._route()

    def _route(self) -> None:
        for event in self._link.next_events():
            if isinstance(event, TelemetryReceived):
                self._telemetry.append(event.message)
            elif isinstance(event, Reply):
                self._reply = event
            elif isinstance(event, LinkDown) and self._lost is None:
                self._lost = f"{self.address}: {event.reason}"


# -- addresses -----------------------------------------------------------------------------------------------

_OPEN: dict[str, SimulatedSource] = {}  # address -> the latest driver on its device (open or closed)
_OPEN_LOCK = threading.RLock()


def parse_address(address: str) -> tuple[str, int, list[FaultSpec]]:
    """(load preset, seed, faults) of a `sim:` address (module docstring); `AddressError` naming what is wrong."""
    if not address.lower().startswith(SIM_PREFIX):
        raise AddressError(f"{address!r}: not a simulated device address (sim: or sim:?load=NAME&seed=N)")
    rest = address[len(SIM_PREFIX) :]
    if rest and not rest.startswith("?"):
        raise AddressError(f"{address!r}: options follow 'sim:?' as NAME=VALUE joined by '&', e.g. sim:?seed=3")
    load, seed, faults = DEFAULT_LOAD, 0, []
    for item in filter(None, rest[1:].split("&")):
        name, _, value = item.partition("=")
        if name == "load":
            if value not in LOAD_PRESETS:
                raise AddressError(f"{address!r}: unknown load {value!r}; known: {', '.join(LOAD_PRESETS)}")
            load = value
        elif name == "seed":
            try:
                seed = int(value)
            except ValueError:
                raise AddressError(f"{address!r}: seed must be an integer, got {value!r}") from None
        elif name == "fault":
            try:
                faults.append(FaultSpec.parse(value))
            except FaultSpecError as exc:
                raise AddressError(f"{address!r}: {exc}") from exc
        else:
            raise AddressError(f"{address!r}: unknown option {name!r}; sim: takes load, seed and fault")
    return load, seed, faults


__all__ = ["SIM_PREFIX", "SimulatedLine", "SimulatedSource", "SyntheticClock", "line_of", "parse_address"]

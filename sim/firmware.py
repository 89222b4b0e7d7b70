"""The device firmware, in software: PROTOCOL.md's state machine, limits, monitors, watchdog and counters.

Theory of operation
-------------------
`Firmware` is sans-I/O. Bytes from the host go in through `receive(data, link_s)`; time goes in through
`advance(device_s, link_s)`; frames for the host come out of `take_output()`. Two clocks, as on hardware:

* device time (`device_s`) drives the physics, ramps, monitors, dose and telemetry timestamps;
* link time (`link_s`, the host-facing wall clock) drives the host-loss watchdog,

so a simulator running its device clock 100x fast still gives the host real seconds to answer.

Every command's legality is in one table, `LEGAL` (PROTOCOL.md §6.3); every fault's action is in
`FAULT_CUTS` (§6.2). Monitors are evaluated every internal step (`step_s`, 10 ms by default, as §7.2
requires of a real device); their conditions and windows, CONFIGURE's checks and the dose and duration
limits are in `sim.monitors`, what a tripped one does is here. Commands are executed the moment they
arrive; their effect on the output follows in the next step.

Fault hooks for the simulator (`stuck_output`, `reboot`, `panel_stop`, `flip_polarity`) model firmware, supply and
front-panel events; electrical faults (lifted electrode, short, drift) are the plant's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from firmware_protocol import (
    IMPEDANCE_UNKNOWN,
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    SCHEMA_HASH,
    Abort,
    Ack,
    Arm,
    Capability,
    CheckContact,
    ClearFault,
    Configure,
    Contact,
    Decoder,
    Direction,
    Disarm,
    Fault,
    HeaderFlags,
    Heartbeat,
    Identify,
    Identity,
    Message,
    OutputOff,
    Packet,
    PacketError,
    Polarity,
    Reset,
    Result,
    SetPolarity,
    SetTarget,
    SetTelemetry,
    Start,
    State,
    Stop,
    Telemetry,
    TelemetryFlags,
    UnknownMessage,
    UnsupportedVersion,
    encode,
)
from sim.monitors import IMPEDANCE_FLOOR_UA, MONITOR_FLOOR_UA, Monitors, configure_result, limit_reached
from sim.plant import Plant, PlantSample

S = State
ALL_STATES = frozenset(State)
ENERGISED = frozenset({S.RAMP_UP, S.RUNNING, S.RAMP_DOWN})

#: Where each host command executes (PROTOCOL.md §6.3). Outside its set a command is refused with
#: FAULT_LATCHED in FAULT and BAD_STATE elsewhere; `·` no-ops are handled by the command itself.
LEGAL: dict[type[Message], frozenset[State]] = {
    Identify: ALL_STATES,
    Heartbeat: ALL_STATES,
    SetTelemetry: ALL_STATES,
    Configure: frozenset({S.IDLE}),
    SetPolarity: frozenset({S.IDLE, S.ARMED}),
    CheckContact: frozenset({S.IDLE, S.ARMED}),
    Arm: frozenset({S.IDLE, S.ARMED, S.DONE}),
    Disarm: frozenset({S.IDLE, S.ARMED}),
    Start: frozenset({S.ARMED}),
    SetTarget: frozenset({S.RAMP_UP, S.RUNNING}),
    Stop: ALL_STATES,
    Abort: ALL_STATES,
    OutputOff: ALL_STATES,
    ClearFault: frozenset({S.FAULT}),
    Reset: frozenset({S.IDLE, S.ARMED, S.DONE}),
}

#: What a device executes while a contact probe runs; anything else is refused BUSY (PROTOCOL.md §5.1).
DURING_PROBE = frozenset({Identify, Heartbeat, SetTelemetry, Stop, Abort, OutputOff})

#: Faults whose action is to open the relay at once; all others ramp to zero at max slew (§6.2).
FAULT_CUTS = frozenset(
    {Fault.OVERCURRENT, Fault.OPEN_CIRCUIT, Fault.OVERVOLTAGE, Fault.INTERNAL, Fault.BROWNOUT, Fault.OUTPUT_CUT}
)

PROBE_MAX_UA = 1000
POWER_UP_TELEMETRY_MS = 100
RESPONSE_CACHE = 4  # responses remembered for duplicate detection (§4.4)
PROBE_MIN_UA = 50  # = IMPEDANCE_FLOOR_UA, so every probe can report an impedance


@dataclass(frozen=True)
class DeviceSpec:
    """What the device says it is (IDENTITY) and its hardware limits."""

    model: str = "IONTO-SIM 1"
    serial: str = "SIM-000001"
    firmware: tuple[int, int, int] = (1, 0, 0)
    hw_rev: int = 1
    # A hardware ceiling above drug-electrode use (≤ 4 mA, ActivaDose II manual) and tap-water use
    # (15–20 mA, Hidrex material), below the 35 mA trip of tap-water units (docs/SOURCES.md).
    hw_max_current_ua: int = 30_000
    hw_compliance_mv: int = 60_000  # docs/SOURCES.md: compliance 30–60 V on tap-water units
    capabilities: int = int(
        Capability.NATIVE_RAMP
        | Capability.WATCHDOG
        | Capability.COULOMB_COUNTER
        | Capability.CONTACT_CHECK
        | Capability.OUTPUT_RELAY
    )
    proto_major: int = PROTOCOL_MAJOR  # overridable to test a host's version check
    proto_minor: int = PROTOCOL_MINOR
    schema_hash: int = SCHEMA_HASH

    def identity(self) -> Identity:
        return Identity(
            self.proto_major, self.proto_minor, *self.firmware, self.hw_rev, self.model, self.serial,
            self.schema_hash, self.hw_max_current_ua, self.hw_compliance_mv, self.capabilities,
        )  # fmt: skip


class Firmware:
    """The device firmware model. See the module docstring for how time and bytes flow."""

    def __init__(
        self,
        plant: Plant,
        spec: DeviceSpec | None = None,
        *,
        step_s: float = 0.010,
        on_step: Callable[[Firmware, PlantSample], None] | None = None,
    ) -> None:
        self.plant = plant
        self.spec = spec or DeviceSpec()
        self.step_s = step_s
        self.on_step = on_step  # called after every internal step (ground-truth trace, fault schedule)
        self.stuck_output = False  # fault hook: set point frozen, ramps and stops ignored
        self.relay_welded = False  # fault hook: the relay no longer opens
        self._boot(0.0, Fault.NONE)

    # -- power-up ------------------------------------------------------------------------------------------

    def _boot(self, device_s: float, fault: Fault) -> None:
        self._t0 = device_s  # t_ms counts from here
        self.t = device_s
        self._steps = round(device_s / self.step_s)  # the clock counts whole steps: no drift from float sums
        self.plant.compliance_v = self.spec.hw_compliance_mv / 1000
        self.state = S.FAULT if fault is not Fault.NONE else S.IDLE
        self.fault = fault
        self.limits: Configure | None = None
        self.polarity = Polarity.NONE
        self.set_ua = 0.0
        self.target_ua = 0.0
        self.rate_ua_per_s = 0.0
        self.relay = False
        self.dose_uas = 0.0
        self.energised_s = 0.0
        self.heartbeat = 0
        self.telemetry_period_s: float | None = POWER_UP_TELEMETRY_MS / 1000
        self._next_telemetry = device_s
        self._telemetry_due = True
        self._probe: tuple[float, int, int] | None = None  # (end time, seq, probe µA)
        self._watchdog_fed_link_s: float | None = None
        self._monitors = Monitors()  # the windowed monitors of §6.2 (sim.monitors)
        self._seq = 0
        # (request seq, msg_id) -> (response, response seq), the last RESPONSE_CACHE responses sent
        self._cache: dict[tuple[int, int], tuple[Message, int]] = {}
        self._decoder = Decoder()
        self._out = bytearray()
        self.last_sample: PlantSample = self.plant.sample
        self.measured_ua = 0.0
        self.output_mv = 0.0
        self._apply_relay()

    def panel_stop(self) -> None:
        """Fault hook: the front panel's STOP key (or the firmware ending a delivery by itself): an energised
        output ramps to zero at the maximum slew and opens (RAMP_DOWN, then DONE), without a fault, as a host's
        ABORT would; the host is not asked. A ramp down already under way goes on at the maximum slew. Elsewhere
        it does nothing."""
        if self.state in ENERGISED:
            self._ramp_to(0, 0)
            self._enter(S.RAMP_DOWN)

    def flip_polarity(self) -> None:
        """Fault hook: the output polarity swaps on its own (a firmware or wiring fault) and the device reports
        the swapped one; nothing else changes."""
        if self.polarity is not Polarity.NONE:
            self.polarity = Polarity.ANODE if self.polarity is Polarity.CATHODE else Polarity.CATHODE
            self._telemetry_due = True

    def reboot(self, fault: Fault = Fault.BROWNOUT) -> None:
        """Fault hook: the processor restarts (supply dip). Output off, counters lost, FAULT latched."""
        self._boot(self.t, fault)

    # -- bytes in and out ----------------------------------------------------------------------------------

    def receive(self, data: bytes, link_s: float) -> None:
        for event in self._decoder.feed(data):
            if isinstance(event, Packet):
                self._on_packet(event, link_s)
            elif isinstance(event, PacketError) and event.flags & HeaderFlags.ACK_REQ:
                if isinstance(event, UnsupportedVersion):
                    result = Result.UNSUPPORTED_VERSION
                elif isinstance(event, UnknownMessage):
                    result = Result.UNKNOWN_MESSAGE
                else:
                    result = Result.MALFORMED
                self._respond(event.seq, event.msg_id, self._ack(event.msg_id, result))
            # Damaged frames (FrameError) are dropped silently: the host retransmits (§2.5).

    def reset_input(self) -> None:
        """Forget a partly received frame: a new host is on the link (pty reopened, new TCP client)."""
        self._decoder = Decoder()

    def take_output(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def _send(self, message: Message, *, ack: int = 0, flags: int | None = None, seq: int | None = None) -> None:
        if seq is None:
            seq = self._seq
            self._seq = (self._seq + 1) & 0xFF
        self._out += encode(message, seq=seq, ack=ack, flags=flags, ver=self.spec.proto_major)

    def _respond(self, request_seq: int, msg_id: int, response: Message) -> None:
        response_seq = self._seq
        self._send(response, ack=request_seq)
        self._cache.pop((request_seq, msg_id), None)
        self._cache[(request_seq, msg_id)] = (response, response_seq)
        if len(self._cache) > RESPONSE_CACHE:
            del self._cache[next(iter(self._cache))]

    def _on_packet(self, packet: Packet, link_s: float) -> None:
        message = packet.message
        wants = packet.wants_ack
        if message.DIRECTION is not Direction.HOST:
            if wants:
                self._respond(packet.seq, message.MSG_ID, self._ack(message.MSG_ID, Result.UNKNOWN_MESSAGE))
            return
        if packet.ver != self.spec.proto_major and not isinstance(message, Identify):
            if wants:
                self._respond(packet.seq, message.MSG_ID, self._ack(message.MSG_ID, Result.UNSUPPORTED_VERSION))
            return
        if wants and packet.is_retransmit:
            cached = self._cache.get((packet.seq, message.MSG_ID))
            if cached is not None:
                cached_response, response_seq = cached
                self._send(
                    cached_response, ack=packet.seq, seq=response_seq, flags=HeaderFlags.RESPONSE | HeaderFlags.RETX
                )
                return
            if self._probe is not None and self._probe[1] == packet.seq and isinstance(message, CheckContact):
                return  # still measuring: the one response follows when the probe ends
        response = self._execute(message, packet.seq, link_s)
        if wants and response is not None:
            self._respond(packet.seq, message.MSG_ID, response)
        if self._telemetry_due:  # a state change is reported at once, right after the response
            self._send(self.telemetry())
            self._telemetry_due = False

    # -- commands ------------------------------------------------------------------------------------------

    def _ack(self, msg_id: int, result: Result) -> Ack:
        return Ack(msg_id, result, self.state, self.fault)

    def _execute(self, message: Message, seq: int, link_s: float) -> Message | None:
        """Run one host command; return its response (None: a probe that answers later)."""
        cls = type(message)
        if self._probe is not None and cls not in DURING_PROBE:
            return self._ack(message.MSG_ID, Result.BUSY)
        if self.state not in LEGAL[cls]:
            refused = Result.FAULT_LATCHED if self.state is S.FAULT else Result.BAD_STATE
            return self._ack(message.MSG_ID, refused)
        handler = getattr(self, "_do_" + message.NAME.lower())
        result = handler(message, seq, link_s)
        if isinstance(result, Result):
            return self._ack(message.MSG_ID, result)
        return result  # type: ignore[no-any-return]

    def _do_identify(self, m: Identify, seq: int, link_s: float) -> Message:
        return self.spec.identity()

    def _do_heartbeat(self, m: Heartbeat, seq: int, link_s: float) -> Result:
        self.heartbeat = m.counter
        if self._watchdog_fed_link_s is not None:
            self._watchdog_fed_link_s = link_s
        return Result.OK

    def _do_set_telemetry(self, m: SetTelemetry, seq: int, link_s: float) -> Result:
        if m.period_ms != 0 and not 10 <= m.period_ms <= 10_000:
            return Result.BAD_ARGUMENT
        self.telemetry_period_s = m.period_ms / 1000 if m.period_ms else None
        self._next_telemetry = self.t
        return Result.OK

    def _do_configure(self, m: Configure, seq: int, link_s: float) -> Result:
        result = configure_result(m, hw_max_current_ua=self.spec.hw_max_current_ua,
                                  hw_compliance_mv=self.spec.hw_compliance_mv)  # fmt: skip
        if result is not Result.OK:
            return result
        self.limits = m
        self.plant.compliance_v = m.max_voltage_mv / 1000
        return Result.OK

    def _do_set_polarity(self, m: SetPolarity, seq: int, link_s: float) -> Result:
        if m.polarity is Polarity.NONE:
            return Result.BAD_ARGUMENT
        self.polarity = m.polarity
        return Result.OK

    def _do_check_contact(self, m: CheckContact, seq: int, link_s: float) -> Result | None:
        if self.limits is None:
            return Result.NOT_CONFIGURED
        if not PROBE_MIN_UA <= m.probe_ua <= PROBE_MAX_UA or not 10 <= m.duration_ms <= 1000:
            return Result.BAD_ARGUMENT
        if m.probe_ua > self.limits.max_current_ua:
            return Result.LIMIT_EXCEEDED
        self._probe = (self.t + m.duration_ms / 1000, seq, m.probe_ua)
        self.relay = True
        self._apply_relay()
        return None

    def _do_arm(self, m: Arm, seq: int, link_s: float) -> Result:
        if self.state is S.ARMED:
            return Result.OK
        if self.limits is None or self.polarity is Polarity.NONE:
            return Result.NOT_CONFIGURED
        self._enter(S.ARMED)
        return Result.OK

    def _do_disarm(self, m: Disarm, seq: int, link_s: float) -> Result:
        self._enter(S.IDLE)
        return Result.OK

    def _do_start(self, m: Start, seq: int, link_s: float) -> Result:
        assert self.limits is not None  # ARMED implies configured
        if m.target_ua == 0:
            return Result.BAD_ARGUMENT
        if m.target_ua > self.limits.max_current_ua:
            return Result.LIMIT_EXCEEDED
        if self.dose_uas >= self.limits.max_dose_uas or self.energised_s * 1000 >= self.limits.max_duration_ms:
            return Result.LIMIT_EXCEEDED
        self.relay = True
        self._apply_relay()
        self._ramp_to(m.target_ua, m.ramp_ms)
        self._watchdog_fed_link_s = link_s
        self._monitors.clear()
        self._enter(S.RAMP_UP)
        return Result.OK

    def _do_set_target(self, m: SetTarget, seq: int, link_s: float) -> Result:
        assert self.limits is not None
        if m.target_ua > self.limits.max_current_ua:
            return Result.LIMIT_EXCEEDED
        self._ramp_to(m.target_ua, m.ramp_ms)
        return Result.OK

    def _do_stop(self, m: Stop, seq: int, link_s: float) -> Result:
        if self.state in (S.RAMP_UP, S.RUNNING):
            self._ramp_to(0, m.ramp_ms)
            self._enter(S.RAMP_DOWN)
        elif self.state is S.RAMP_DOWN:
            previous = self.rate_ua_per_s
            self._ramp_to(0, m.ramp_ms)
            self.rate_ua_per_s = max(previous, self.rate_ua_per_s)
        return Result.OK

    def _do_abort(self, m: Abort, seq: int, link_s: float) -> Result:
        if self.state in ENERGISED:
            self._ramp_to(0, 0)
            self._enter(S.RAMP_DOWN)
        return Result.OK

    def _do_output_off(self, m: OutputOff, seq: int, link_s: float) -> Result:
        was_closed = self.relay and self._probe is None
        if self._probe is not None:  # the probe is cut short; its request still gets its one reply
            _, probe_seq, _ = self._probe
            self._probe = None
            self._respond(probe_seq, CheckContact.MSG_ID, Contact(IMPEDANCE_UNKNOWN, round(self.output_mv), 0))
        if was_closed:
            self._latch(Fault.OUTPUT_CUT)  # opens the relay (or keeps a FAULT's code and opens it)
        self.relay = False
        if not self.stuck_output:
            self.set_ua = self.target_ua = 0.0
        self._apply_relay()
        return Result.OK

    def _do_clear_fault(self, m: ClearFault, seq: int, link_s: float) -> Result:
        if self.set_ua > 0 or self.relay:
            return Result.BUSY
        self.fault = Fault.NONE
        self._enter(S.DONE)
        return Result.OK

    def _do_reset(self, m: Reset, seq: int, link_s: float) -> Result:
        self.limits = None
        self.polarity = Polarity.NONE
        self.dose_uas = 0.0
        self.energised_s = 0.0
        self.plant.compliance_v = self.spec.hw_compliance_mv / 1000
        self._enter(S.IDLE)
        return Result.OK

    # -- behaviour over time -------------------------------------------------------------------------------

    def _enter(self, state: State) -> None:
        if state is not self.state:
            self.state = state
            self._telemetry_due = True
        if state not in ENERGISED and state is not S.FAULT:
            self._watchdog_fed_link_s = None

    def _ramp_to(self, target_ua: float, ramp_ms: int) -> None:
        """Aim the set point at `target_ua`, at |Δ|/ramp but never faster than max slew (§7.1)."""
        max_slew = self.limits.max_slew_ua_per_s if self.limits else 1.0
        delta = abs(target_ua - self.set_ua)
        rate = delta / (ramp_ms / 1000) if ramp_ms else max_slew
        if self.stuck_output:
            return  # the firmware bug: it believes it ramps, the set point never moves
        self.target_ua = float(target_ua)
        self.rate_ua_per_s = min(rate, max_slew) if delta else max_slew

    def _latch(self, fault: Fault) -> None:
        """Latch `fault` (§6.2): the first code stays; a relay-cutting action is taken even if later."""
        if self.state is not S.FAULT:
            self.fault = fault
            self._enter(S.FAULT)
            self._probe = None
            self._ramp_to(0, 0)
        if fault in FAULT_CUTS:
            self.relay = False
            if not self.stuck_output:
                self.set_ua = self.target_ua = 0.0
            self._apply_relay()
        self._watchdog_fed_link_s = None

    def _apply_relay(self) -> None:
        self.plant.set_output(self.relay or self.relay_welded)

    def advance(self, device_s: float, link_s: float) -> None:
        """Run the device up to `device_s` (its own clock) with `link_s` as the host-facing clock now."""
        fed = self._watchdog_fed_link_s
        if fed is not None and self.limits is not None and self.state in ENERGISED:
            if (link_s - fed) * 1000 > self.limits.watchdog_ms:
                self._latch(Fault.HOST_LOST)
        # Whole steps only, on a fixed grid (as a firmware's control loop): a call that falls between
        # two grid points leaves the rest for the next one, so frequent calls cost nothing extra.
        while self.t + self.step_s <= device_s + 1e-9:
            self._step(self.step_s)

    def _step(self, dt: float) -> None:
        self._steps += 1
        self.t = self._steps * self.step_s
        if not self.stuck_output and self.set_ua != self.target_ua:
            move = self.rate_ua_per_s * dt
            if abs(self.target_ua - self.set_ua) <= move:
                self.set_ua = self.target_ua
            else:
                self.set_ua += move if self.target_ua > self.set_ua else -move
        probe = self._probe
        closed = self.relay or self.relay_welded
        demand = probe[2] if probe is not None else self.set_ua
        sample = self.plant.step(dt, demand if closed else 0.0)
        self.last_sample = sample
        measured = self.plant.measure(sample)
        self.measured_ua = measured.current_ua
        self.output_mv = measured.voltage_mv
        if sample.at_compliance and probe is None and not self.stuck_output:
            # Anti-windup (§7.1): the set point never runs ahead of what the load accepts, so when the
            # load recovers the current comes back along a ramp instead of a step.
            self.set_ua = min(self.set_ua, self.measured_ua + max(0.05 * self.target_ua, MONITOR_FLOOR_UA))
        if closed and probe is None:
            self.dose_uas += abs(measured.current_ua) * dt
            self.energised_s += dt
        if self.state in ENERGISED or (self.state is S.FAULT and self.relay):
            self._monitor(sample.at_compliance)
        else:
            if self._monitors.stray(self.t, self.measured_ua, probing=probe is not None):
                self._latch(Fault.INTERNAL)  # current through an output that was commanded open (§6.2)
        self._progress()
        if self.on_step is not None:
            self.on_step(self, sample)
        self._maybe_telemetry()

    def _progress(self) -> None:
        """The transitions the device makes on its own (§6.3, last paragraph)."""
        if self._probe is not None and self.t >= self._probe[0] - 1e-12:
            _, seq, _ = self._probe
            self._probe = None
            self.relay = False
            self._apply_relay()
            self._respond(seq, CheckContact.MSG_ID, Contact(self._impedance(), round(self.output_mv),
                                                            round(self.measured_ua)))  # fmt: skip
        if self.state is S.RAMP_UP and self.set_ua == self.target_ua:
            self._enter(S.RUNNING)
        elif self.state in (S.RAMP_DOWN, S.FAULT) and self.set_ua == 0 and self.target_ua == 0 and self.relay:
            self.relay = False
            self._apply_relay()
            if self.state is S.RAMP_DOWN:
                self._enter(S.DONE)

    def _monitor(self, at_compliance: bool) -> None:
        """The monitors of §6.2 on this step's measurement (sim.monitors): latch whatever tripped, then stop at
        the dose or duration limit if nothing did."""
        limits = self.limits
        if limits is None:  # energised without limits: only after a reboot, where the relay is open
            return
        tripped = self._monitors.tripped(self.t, limits, measured_ua=self.measured_ua, output_mv=self.output_mv,
                                         set_ua=self.set_ua, target_ua=self.target_ua,
                                         at_compliance=at_compliance)  # fmt: skip
        for fault in tripped:
            self._latch(fault)
        if self.state is S.FAULT:
            return
        limit = limit_reached(limits, dose_uas=self.dose_uas, energised_s=self.energised_s, set_ua=self.set_ua)
        if limit is not None:
            self._latch(limit)

    def _impedance(self) -> int:
        if self.measured_ua < IMPEDANCE_FLOOR_UA:
            return IMPEDANCE_UNKNOWN
        return min(round(self.output_mv * 1000 / self.measured_ua), IMPEDANCE_UNKNOWN - 1)

    # -- telemetry -----------------------------------------------------------------------------------------

    def flags(self) -> int:
        flags = 0
        if self.last_sample.at_compliance and (self.relay or self.relay_welded):
            flags |= TelemetryFlags.AT_COMPLIANCE
        if self.relay or self.relay_welded:
            flags |= TelemetryFlags.OUTPUT_ON
        if self.set_ua != self.target_ua:
            flags |= TelemetryFlags.RAMPING
        if self.limits is not None:
            flags |= TelemetryFlags.CONFIGURED
        if self._watchdog_fed_link_s is not None:
            flags |= TelemetryFlags.WATCHDOG_ARMED
        if self._probe is not None:
            flags |= TelemetryFlags.PROBING
        return int(flags)

    def telemetry(self) -> Telemetry:
        return Telemetry(
            t_ms=round((self.t - self._t0) * 1000) & 0xFFFF_FFFF,
            state=self.state,
            fault=self.fault,
            flags=self.flags(),
            polarity=self.polarity,
            set_ua=round(self.set_ua),
            measured_ua=round(self.measured_ua),
            output_mv=round(self.output_mv),
            impedance_ohm=self._impedance(),
            dose_uas=min(int(self.dose_uas), 0xFFFF_FFFF),
            energised_ms=min(int(self.energised_s * 1000), 0xFFFF_FFFF),
            heartbeat=self.heartbeat,
        )

    def _maybe_telemetry(self) -> None:
        periodic = self.telemetry_period_s is not None and self.t >= self._next_telemetry - 1e-9
        if periodic or self._telemetry_due:
            self._send(self.telemetry())
            self._telemetry_due = False
            if self.telemetry_period_s is not None:
                while self._next_telemetry <= self.t + 1e-9:
                    self._next_telemetry += self.telemetry_period_s

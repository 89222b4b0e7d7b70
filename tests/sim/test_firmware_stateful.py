"""The firmware model under random command sequences, time advances, heartbeat gaps, faults and retransmits.

Invariants are checked at every internal step of the device (through its `on_step` hook), not only
between rules, so a violation that lasts one 10 ms step is caught.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from firmware_protocol import (
    Abort,
    Arm,
    CheckContact,
    ClearFault,
    Configure,
    Decoder,
    Disarm,
    HeaderFlags,
    Heartbeat,
    Identify,
    OutputOff,
    Polarity,
    ProtocolError,
    Reset,
    SetPolarity,
    SetTarget,
    SetTelemetry,
    Start,
    State,
    Stop,
    encode,
)
from sim.firmware import ENERGISED, Firmware
from sim.plant import LOAD_PRESETS, Plant, PlantSample

HW_MAX_UA = 30_000
STEP_S = 0.010
currents = st.integers(0, 35_000)
ramps = st.integers(0, 20_000)

configures = st.builds(
    Configure,
    max_current_ua=st.integers(0, 32_000),
    max_slew_ua_per_s=st.integers(0, 20_000),
    max_dose_uas=st.integers(0, 2_000_000),
    max_voltage_mv=st.integers(0, 61_000),
    max_duration_ms=st.integers(0, 600_000),
    min_impedance_ohm=st.integers(0, 3000),
    max_impedance_ohm=st.integers(1000, 200_000),
    area_mm2=st.integers(0, 5000),
    watchdog_ms=st.integers(50, 3000),
    compliance_timeout_ms=st.integers(0, 20_000),
)
valid_configures = st.builds(
    Configure,
    max_current_ua=st.integers(100, 30_000),
    max_slew_ua_per_s=st.integers(100, 20_000),
    max_dose_uas=st.integers(1000, 50_000),  # small, so random runs reach the cap
    max_voltage_mv=st.integers(1000, 60_000),
    max_duration_ms=st.integers(1000, 600_000),
    min_impedance_ohm=st.integers(0, 1000),
    max_impedance_ohm=st.integers(30_000, 200_000),
    area_mm2=st.integers(1, 5000),
    watchdog_ms=st.integers(100, 3000),
    compliance_timeout_ms=st.integers(0, 20_000),
)
commands = st.one_of(
    configures,
    st.builds(SetPolarity, st.sampled_from(list(Polarity))),
    st.builds(CheckContact, st.integers(0, 1200), st.integers(0, 1100)),
    st.builds(Start, currents, ramps),
    st.builds(SetTarget, currents, ramps),
    st.builds(Stop, ramps),
    st.sampled_from([Arm(), Disarm(), Abort(), OutputOff(), ClearFault(), Reset(), Identify()]),
    st.builds(SetTelemetry, st.sampled_from([0, 5, 10, 100, 1000, 20_000])),
)


class FirmwareMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.plant = Plant(LOAD_PRESETS["normal"], rng=random.Random(0))
        self.fw = Firmware(self.plant, on_step=self.check_step)
        self.t = 0.0  # device time; the link clock runs alongside at the same rate here
        self.seq = 0
        self.last_frame: bytes | None = None
        self.heartbeats = True
        self.fed_at = 0.0  # link time of the last START or HEARTBEAT
        self.hb = 0
        self.decoder = Decoder()
        self.prev = self.snapshot()
        self.prev_current_ua = 0.0
        self.steps_added = 0

    # -- what the device is doing, seen from outside the state machine's own bookkeeping -----------------

    def snapshot(self) -> tuple[float, Polarity, float, bool, State]:
        fw = self.fw
        return fw.set_ua, fw.polarity, fw.dose_uas, self.plant.output_on, fw.state

    def check_step(self, fw: Firmware, sample: PlantSample) -> None:
        set_before, polarity_before, dose_before, relay_before, state_before = self.prev
        limits = fw.limits
        bound = limits.max_current_ua if limits else HW_MAX_UA
        probe = 1000 if fw.flags() & 0x20 else 0
        assert sample.current_ua <= max(bound, probe) + 1.0, "current above the configured maximum"
        assert sample.current_ua <= HW_MAX_UA + 1.0, "current above the hardware maximum"
        assert sample.voltage_v <= self.plant.compliance_v + 1e-6, "voltage above compliance"
        if relay_before and self.plant.output_on and limits is not None:
            slew_step = limits.max_slew_ua_per_s * STEP_S + 1e-6
            rise = fw.set_ua - set_before
            assert rise <= slew_step, "set point rising faster than max slew"
            if not sample.at_compliance:  # at compliance the set point comes down to what flows (anti-windup)
                assert -rise <= slew_step, "set point falling faster than max slew"
            # What flows may never step up either, e.g. when a load held at compliance recovers. (A contact
            # probe is the one deliberate step: at most 1 mA for at most 1 s, PROTOCOL.md §5.1.)
            margin = max(0.05 * fw.target_ua, 100.0) * 1.1
            if not fw.flags() & 0x20:
                assert sample.current_ua - self.prev_current_ua <= slew_step + margin, "current stepped up"
        if fw.state in (State.IDLE, State.ARMED, State.DONE) and not fw.flags() & 0x20:
            assert not self.plant.output_on and fw.set_ua == 0, f"output on in {fw.state.name}"
        if fw.state is State.FAULT and state_before is State.FAULT:
            assert fw.set_ua <= set_before, "current rising in FAULT"
        if fw.polarity is not polarity_before:
            assert not relay_before and not self.plant.output_on, "polarity changed with the output on"
        if fw.dose_uas < dose_before:
            assert fw.dose_uas == 0, "dose counter went backwards other than by RESET or reboot"
        if limits is not None:
            assert fw.dose_uas <= limits.max_dose_uas + bound * STEP_S + 1e-6, "dose past the cap"
        self.prev = self.snapshot()
        self.prev_current_ua = sample.current_ua

    # -- rules -------------------------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        self.last_frame = frame
        _, polarity_before, _, relay_before, _ = self.snapshot()
        self.fw.receive(frame, self.t)
        if self.fw.polarity is not polarity_before:
            assert not relay_before and not self.plant.output_on, "polarity changed with the output on"
        self.prev = self.snapshot()

    @rule(message=commands)
    def command(self, message) -> None:
        if isinstance(message, Start):
            self.fed_at = self.t
        self.send(encode(message, seq=self.seq))
        self.seq = (self.seq + 1) & 0xFF

    @rule(config=valid_configures, polarity=st.sampled_from([Polarity.ANODE, Polarity.CATHODE]),
          target_ua=st.integers(1, 30_000), ramp_ms=ramps)  # fmt: skip
    def configure_arm_and_start(self, config: Configure, polarity: Polarity, target_ua: int, ramp_ms: int) -> None:
        """The usual way into the energised states, so that random runs spend time there."""
        for message in (config, SetPolarity(polarity), Arm(), Start(min(target_ua, config.max_current_ua), ramp_ms)):
            self.command(message)

    @precondition(lambda self: self.last_frame is not None)
    @rule()
    def retransmit(self) -> None:
        # Same seq, msg_id and payload; the device must not execute it twice (answers from its cache).
        frame = self.last_frame
        from firmware_protocol import decode_frame, encode_packet

        packet = decode_frame(frame[:-1])
        self.send(encode_packet(packet._replace(flags=packet.flags | HeaderFlags.RETX)))

    @rule(seconds=st.floats(0.001, 10.0))
    def wait(self, seconds: float) -> None:
        end = self.t + seconds
        while self.t < end - 1e-9:
            self.t = min(end, self.t + 0.05)
            if self.heartbeats and self.fw.state in ENERGISED:
                self.hb = (self.hb + 1) & 0xFFFF
                self.fed_at = self.t
                self.fw.receive(encode(Heartbeat(self.hb), seq=self.seq), self.t)
                self.seq = (self.seq + 1) & 0xFF
            self.fw.advance(self.t, self.t)
            limits = self.fw.limits
            if self.fw.state in ENERGISED and limits is not None:
                silent = self.t - self.fed_at
                assert silent <= limits.watchdog_ms / 1000 + 1e-9, "energised past the watchdog without HOST_LOST"

    @rule()
    def toggle_heartbeats(self) -> None:
        self.heartbeats = not self.heartbeats

    @rule(
        fault=st.sampled_from(["lift", "restore", "short", "unshort", "drift", "undrift", "reboot", "step", "unstep"])
    )
    def inject(self, fault: str) -> None:
        plant = self.plant
        {
            "lift": plant.lift_electrode,
            "restore": plant.restore_contact,
            "short": plant.short,
            "unshort": plant.clear_short,
            "drift": lambda: plant.set_sensor_drift(25.0),
            "undrift": lambda: plant.set_sensor_drift(0.0),
            "reboot": self.fw.reboot,
            "step": lambda: self.impedance_step(+1),
            "unstep": lambda: self.impedance_step(-1),
        }[fault]()
        self.prev = self.snapshot()

    def impedance_step(self, direction: int) -> None:
        if direction > 0 or self.steps_added > 0:
            self.plant.impedance_step(direction * 40_000.0)  # a drying sponge, then re-wetted
            self.steps_added += direction

    @invariant()
    def device_frames_always_decode(self) -> None:
        events = self.decoder.feed(self.fw.take_output())
        assert not [e for e in events if isinstance(e, ProtocolError)]


TestFirmwareMachine = FirmwareMachine.TestCase
TestFirmwareMachine.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

"""Drive a `SimulatedDevice` in-process, frame by frame, on a synthetic clock (tests and benchmarks).

This is not a host: it has no retries, no safety logic and no opinion. It encodes a command, hands the
bytes to the device at the present synthetic time, and returns the response the device produced,
keeping every telemetry frame it saw. Time moves only when told (`wait`), so a 20-minute session runs in
however long the stepping takes.
"""

from __future__ import annotations

from firmware_protocol import Decoder, Heartbeat, Message, Packet, ProtocolError, Telemetry, encode
from sim.device import SimulatedDevice


class NoResponse(AssertionError):
    """The device did not answer a request within the harness's wait."""


class Harness:
    def __init__(self, device: SimulatedDevice, *, heartbeat_s: float | None = 0.25) -> None:
        self.device = device
        self.wall_s = device.start_wall_s
        self.heartbeat_s = heartbeat_s
        self._next_heartbeat = self.wall_s
        self._hb_counter = 0
        self._seq = 0
        self._decoder = Decoder()
        self.telemetry: list[Telemetry] = []
        self.responses: list[Packet] = []
        self.errors: list[ProtocolError] = []

    def _collect(self) -> None:
        for event in self._decoder.feed(self.device.take_output()):
            if isinstance(event, ProtocolError):
                self.errors.append(event)
            elif isinstance(event.message, Telemetry):
                self.telemetry.append(event.message)
            else:
                self.responses.append(event)

    def send(self, message: Message, *, flags: int | None = None, seq: int | None = None) -> int:
        """Send one frame now; return its seq."""
        if seq is None:
            seq = self._seq
            self._seq = (self._seq + 1) & 0xFF
        self.device.receive(encode(message, seq=seq, flags=flags), self.wall_s)
        self._collect()
        return seq

    def request(self, message: Message, *, max_wait_s: float = 2.0) -> Message:
        """Send `message` and return the response to it (advancing time if the device needs it)."""
        seq = self.send(message)
        waited = 0.0
        while True:
            for packet in self.responses:
                if packet.is_response and packet.ack == seq:
                    self.responses.remove(packet)
                    return packet.message
            if waited >= max_wait_s:
                raise NoResponse(f"no response to {message!r} after {max_wait_s} s")
            self.wait(0.01)
            waited += 0.01

    def wait(self, wall_s: float, *, step_s: float = 0.05) -> None:
        """Let `wall_s` of link time pass, heartbeating as a live host would (unless heartbeat_s is None)."""
        end = self.wall_s + wall_s
        while self.wall_s < end - 1e-12:
            self.wall_s = min(end, self.wall_s + step_s)
            if self.heartbeat_s is not None and self.wall_s >= self._next_heartbeat:
                self._hb_counter = (self._hb_counter + 1) & 0xFFFF
                self.send(Heartbeat(self._hb_counter))
                self._next_heartbeat = self.wall_s + self.heartbeat_s
            self.device.advance(self.wall_s)
            self._collect()

    @property
    def last(self) -> Telemetry:
        return self.telemetry[-1]

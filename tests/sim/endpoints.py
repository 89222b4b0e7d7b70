"""Talk to the simulator as a host would, over its pty or sockets; `running_sim` (from `sim.process`) starts it
as a real process; `trace_rows` and `true_dose_ma_min` read its ground truth, device by device."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import serial

from firmware_protocol import Decoder, Message, Packet, ProtocolError, Telemetry, encode
from sim.process import SimDevice, SimProcess, running_sim

__all__ = ["ROOT", "SimDevice", "SimProcess", "WireClient", "running_sim", "symlink_target", "trace_rows",
           "true_dose_ma_min"]  # fmt: skip

ROOT = Path(__file__).resolve().parents[2]


class WireClient:
    """A bare protocol client over a pyserial port: enough to exercise the simulator, no host logic."""

    def __init__(self, url: str) -> None:
        self.port = serial.serial_for_url(url, timeout=0.05, exclusive=True) if url.startswith("/") else \
            serial.serial_for_url(url, timeout=0.05)  # fmt: skip
        self.decoder = Decoder()
        self.seq = 0
        self.telemetry: list[Telemetry] = []
        self.pending: list[Packet] = []
        self.errors: list[ProtocolError] = []

    def close(self) -> None:
        self.port.close()

    def pump(self) -> None:
        data = self.port.read(max(1, self.port.in_waiting))
        for event in self.decoder.feed(data):
            if isinstance(event, ProtocolError):
                self.errors.append(event)
            elif isinstance(event.message, Telemetry):
                self.telemetry.append(event.message)
            else:
                self.pending.append(event)

    def send(self, message: Message) -> int:
        seq = self.seq
        self.seq = (self.seq + 1) & 0xFF
        self.port.write(encode(message, seq=seq))
        return seq

    def request(self, message: Message, timeout_s: float = 2.0) -> Message:
        seq = self.send(message)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.pump()
            for packet in self.pending:
                if packet.ack == seq and packet.is_response:
                    self.pending.remove(packet)
                    return packet.message
        raise TimeoutError(f"no response to {message!r}")

    def wait(self, seconds: float, heartbeat_s: float | None = 0.2) -> None:
        from firmware_protocol import Heartbeat

        end = time.monotonic() + seconds
        next_hb = 0.0
        while time.monotonic() < end:
            if heartbeat_s is not None and time.monotonic() >= next_hb:
                self.send(Heartbeat(self.seq))
                next_hb = time.monotonic() + heartbeat_s
            self.pump()


def symlink_target(path: str) -> str | None:
    return os.readlink(path) if os.path.islink(path) else None


def trace_rows(path: Path, device: int | None = None) -> list[dict[str, Any]]:
    """The rows of a `--trace` file (the whole rows written so far), of one device if `device` is given."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    return rows if device is None else [row for row in rows if row["device"] == device]


def true_dose_ma_min(path: Path, device: int = 1) -> float:
    """Device `device`'s true dose so far: its coulomb count in its last row of the trace (0 before any row)."""
    rows = trace_rows(path, device)
    return float(rows[-1]["dose_uas"]) / 60_000 if rows else 0.0

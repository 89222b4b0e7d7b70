"""The ionctl firmware device over pyserial: `FirmwareDevice.open("/dev/ttyUSB0")` (PROTOCOL.md).

Theory of operation
-------------------
The link's rules live in `firmware_protocol.HostLink`, which is pure; this module is its I/O. One background
thread owns reading the port: it hands every chunk of bytes, with `time.monotonic()`, to the link, then polls it
and writes what the link says is due (a retransmission, a HEARTBEAT every `watchdog / 4`, whatever the caller
is doing, §7.3). The link's events come back out: each reply wakes the request waiting for it, TELEMETRY is
queued for `read_telemetry`, a lost link wakes everyone. Callers' commands go out stop-and-wait under a lock
(§4.2); the reader thread keeps their deadlines, so a request resent `retransmissions` times with RETX and still
unanswered loses the link (§4.4).

The link is lost when a request goes unanswered after its last retransmission, when no valid frame arrives for
`link_timeout_s` (§8: three telemetry periods or 1 s, whichever is longer), or when the port fails. Silence is
judged only after the port was drained, and counted on the reader's own passes (`READER_PASS_S` at most each):
a host that stalled finds the device's frames waiting, not a silent device (docs/SESSION.md, "Link
supervision": the timeout keeps half the device's watchdog as margin). Loss is latched: from then on every
command and `read_telemetry` raise `LinkLost`, and no more heartbeats are sent, so the device's own watchdog
takes the output to zero. A new driver (a new `open`) is the only way back.

Wire units stay in the firmware drivers (`ionctl.drivers.firmware_wire`, re-exported here): the rest of ionctl
sees `ionctl.drivers.base` values in mA, V, Ω, s.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import serial

import firmware_protocol as wire
from firmware_protocol import LinkDown, LinkDownError, Message, Reply, TelemetryReceived
from firmware_protocol.link import RESPONSE_CACHE, RETRANSMIT, UNCONFIGURED_WATCHDOG_S
from ionctl.drivers.base import AddressError, LinkLost, Telemetry
from ionctl.drivers.firmware_wire import (
    MM2_PER_CM2,
    U16,
    U32,
    UA_PER_MA,
    UAS_PER_MA_MIN,
    FirmwareCommands,
    LinkOptions,
    OutOfRange,
    check_version,
    configure_message,
    device_identity,
    telemetry_sample,
    to_wire,
)

#: Samples kept for a caller that does not read (at 10 Hz, more than two hours).
TELEMETRY_QUEUE = 100_000
WRITE_TIMEOUT_S = 0.5
JOIN_TIMEOUT_S = 2.0
#: The most one pass of the reader thread counts toward the link's silence (host seconds): a pass blocks for
#: `read_timeout_s` (at most 0.1 s); a longer one means the host itself did not run, and that is not the device's
#: silence. Under a host so loaded that every pass is late, detection slows by at most pass / READER_PASS_S; the
#: device's watchdog does not wait for it.
READER_PASS_S = 0.25

__all__ = [
    "JOIN_TIMEOUT_S",
    "MM2_PER_CM2",
    "READER_PASS_S",
    "RESPONSE_CACHE",
    "RETRANSMIT",
    "TELEMETRY_QUEUE",
    "U16",
    "U32",
    "UAS_PER_MA_MIN",
    "UA_PER_MA",
    "UNCONFIGURED_WATCHDOG_S",
    "WRITE_TIMEOUT_S",
    "FirmwareCommands",
    "FirmwareDevice",
    "LinkOptions",
    "OutOfRange",
    "check_version",
    "configure_message",
    "device_identity",
    "telemetry_sample",
    "to_wire",
]


def _open_port(address: str, read_timeout_s: float) -> serial.SerialBase:
    # An exclusive lock keeps a second host off a real port or pty; URL transports have no such lock.
    extra = {} if "://" in address else {"exclusive": True}
    try:
        return serial.serial_for_url(address, timeout=read_timeout_s, write_timeout=WRITE_TIMEOUT_S, **extra)
    except ValueError as exc:  # pyserial's answer to an unknown URL scheme or a bad URL option
        raise AddressError(f"{address!r}: not a serial port or a pyserial URL ({exc})") from exc
    except (serial.SerialException, OSError) as exc:
        raise LinkLost(f"cannot open the device port {address!r}: {exc}") from exc


class FirmwareDevice(FirmwareCommands):
    """A device speaking the ionctl firmware protocol; see the module docstring for how the link runs.

    `frames_lost`, `frames_damaged` and `retransmissions` count link trouble since open."""

    def __init__(self, port: serial.SerialBase, address: str, options: LinkOptions | None = None) -> None:
        self.address = address
        self.options = options or LinkOptions()
        self._port = port
        self._link = self.options.host_link(time.monotonic(), max_silence_step_s=READER_PASS_S)
        # Lock order: `_lock` (the link and the port's write side), then `_cond` (what the link's events fill in).
        self._lock = threading.RLock()
        self._cond = threading.Condition()  # guards the telemetry queue, the reply, `_lost`
        self._request_lock = threading.Lock()  # stop-and-wait: one request in flight
        self._telemetry: deque[Telemetry] = deque(maxlen=TELEMETRY_QUEUE)
        self._reply: Reply | None = None
        self._lost: str | None = None
        self._stop = threading.Event()
        self._identity = None
        self._wire_identity = None
        self._thread = threading.Thread(target=self._run, name=f"ionctl-firmware {address}", daemon=True)

    @classmethod
    def open(cls, address: str, **options: Any) -> FirmwareDevice:
        """Open the port, identify the device (refusing another protocol) and start its telemetry.

        Options: the fields of `LinkOptions`. Raises `LinkLost`, `VersionMismatch`, `DeviceError`."""
        link = LinkOptions(**options)
        device = cls(_open_port(address, link.read_timeout_s), address, link)
        try:
            device._connect()
        except BaseException:
            device.close()
            raise
        return device

    def _connect(self) -> None:
        self._thread.start()
        with self._lock:
            self._write(b"\x00")  # ends any partial frame held by the device's decoder (§2.4)
        super()._connect()

    # -- CurrentSource (the commands are FirmwareCommands') ---------------------------------------------------

    def read_telemetry(self, timeout_s: float) -> list[Telemetry]:
        """Samples received so far, waiting up to `timeout_s` for one. A FAULT sample is returned, not
        raised: the session must see it. Samples that arrived before a link loss are still handed out;
        after them, `LinkLost`."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while not self._telemetry and self._lost is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if not self._telemetry and self._lost is not None:
                raise LinkLost(self._lost)
            samples = list(self._telemetry)
            self._telemetry.clear()
        return samples

    def keep_alive(self) -> None:
        with self._lock:
            self._raise_if_lost()
            self._write(self._link.heartbeat(time.monotonic()))

    def close(self) -> None:
        """Stop the reader thread and release the port; idempotent, bounded in time."""
        self._lose(f"{self.address}: the driver was closed")
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT_S)
        try:
            self._port.close()
        except (serial.SerialException, OSError):
            pass  # the port is gone already: nothing left to release

    # -- requests ----------------------------------------------------------------------------------------

    def _request(self, message: Message, wait_s: float) -> Reply:
        """Stop-and-wait (§4.2); the reader thread retransmits and, when the tries run out, loses the link."""
        with self._request_lock:
            with self._lock:
                self._raise_if_lost()
                try:
                    frame = self._link.request(message, time.monotonic(), wait_s=wait_s)
                except LinkDownError as exc:
                    raise self._lose(f"{self.address}: {exc.reason}") from exc
                with self._cond:
                    self._reply = None
                self._write(frame)
            with self._cond:
                while self._reply is None and self._lost is None:
                    self._cond.wait()
                reply, self._reply = self._reply, None
                if reply is None:
                    raise LinkLost(self._lost)
                return reply

    def _write(self, frame: bytes) -> None:
        """Write under `_lock`; a failing port latches the link lost."""
        if not frame:
            return
        try:
            self._port.write(frame)
        except (serial.SerialException, OSError) as exc:
            raise self._lose(f"{self.address}: write failed: {exc}") from exc

    def _raise_if_lost(self) -> None:
        with self._cond:
            if self._lost is not None:
                raise LinkLost(self._lost)

    def _lose(self, reason: str) -> LinkLost:
        """Latch the link lost (the first reason sticks), wake every waiter, stop the reader thread."""
        with self._lock:
            self._link.abandon(reason)
        with self._cond:
            if self._lost is None:
                self._lost = reason
            self._cond.notify_all()
            error = LinkLost(self._lost)
        self._stop.set()
        return error

    # -- the reader thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        port = self._port
        try:
            while not self._stop.is_set():
                data = port.read(max(1, port.in_waiting))
                while data and port.in_waiting:  # drain what waited (a stalled host finds a backlog)
                    data += port.read(port.in_waiting)
                with self._lock:
                    now = time.monotonic()
                    self._link.receive(data, now)
                    self._write(self._link.poll(now))
                    events = self._link.next_events()
                self._route(events)
        except LinkLost:
            pass  # already latched by _lose
        except (serial.SerialException, OSError) as exc:
            self._lose(f"{self.address}: read failed: {exc}")
        finally:  # whatever ended the thread, nobody may wait for it any more
            self._lose(f"{self.address}: the reader stopped")

    def _route(self, events: list[wire.Event]) -> None:
        lost: str | None = None
        with self._cond:
            for event in events:
                if isinstance(event, TelemetryReceived):
                    counter = self._identity.coulomb_counter if self._identity else True
                    self._telemetry.append(telemetry_sample(event.message, coulomb_counter=counter))
                elif isinstance(event, Reply):
                    self._reply = event
                elif isinstance(event, LinkDown):
                    lost = event.reason
            self._cond.notify_all()
        if lost is not None:
            raise self._lose(f"{self.address}: {lost}")

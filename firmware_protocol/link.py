"""The host's side of the link, sans-I/O: `HostLink` (PROTOCOL.md §4, §7.3, §8).

Theory of operation
-------------------
`HostLink` holds everything the host must remember about the link and nothing else: its own `seq` counter,
the one request in flight (stop-and-wait, §4.2), the device's last `seq`, when the next HEARTBEAT is due and how
long the device has been silent. It never reads a clock, sleeps or touches a port: every call that depends on
time takes `now` (host monotonic seconds) and every byte to send is returned to the caller, who writes it. So one
link serves a driver with a reader thread over a serial port and an in-process simulator on a synthetic clock
alike, and its tests are scripts of device bytes at given times.

The caller's side, in the shape of h11's `Connection`:

* `request(message, now)` -> the frame to write (stop-and-wait: one request at a time);
* `receive(data, now)` feeds the device's bytes in, any chunking; damaged frames are counted and dropped (§2.5);
* `poll(now)` -> the frames now due: a retransmission with RETX once a reply is overdue (§4.4), a HEARTBEAT every
  watchdog/4 (§7.3), in every state, since the device's watchdog starts when it executes START, before the host
  can know it did;
* `next_events()` -> what happened: `Reply`, `TelemetryReceived`, `LinkDown`;
* `next_deadline()` -> the host time by which `poll` must next be called.

The link is lost, and stays lost (as Klipper's host latches its shutdown), when a request is still unanswered
after its last retransmission, when no valid frame arrives for `link_timeout_s` of polling (§8), or when the
caller abandons it (its port failed). Silence is counted on the caller's polls, each adding at most
`max_silence_step_s`: a host that did not run (a stall, a suspended process) finds the device's frames waiting
and does not count its own absence as the device's silence. Once lost, the link sends nothing, heartbeats
included, so the device's own watchdog takes the output to zero (§7.3), and every request raises `LinkDownError`.

Response cache (§4.4): a new request never reuses a `(seq, msg_id)` that the device may still hold among its last
four responses: a retransmission of it would be answered from that cache and not executed. Skipping such a `seq`
costs one HEARTBEAT. A device whose cache may hold a previous host's answers is flushed by the caller with
requests of its own (`Reply.replayed` says which answers came from the cache).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from firmware_protocol.codec import Decoder, Packet, encode
from firmware_protocol.errors import ProtocolError
from firmware_protocol.messages import (
    REGISTRY,
    REPLIES,
    Ack,
    Configure,
    HeaderFlags,
    Heartbeat,
    Message,
    Result,
    Telemetry,
)

#: Responses a device remembers for duplicate detection (PROTOCOL.md §4.4).
RESPONSE_CACHE = 4
#: The shortest watchdog a device accepts (§5.1 CONFIGURE): heartbeat as if it were this until CONFIGURE names one.
UNCONFIGURED_WATCHDOG_S = 0.100
RETRANSMIT = HeaderFlags.ACK_REQ | HeaderFlags.RETX
_U16 = 0xFFFF
#: Float noise allowed when comparing accumulated silence with the link timeout.
_EPSILON_S = 1e-9


# -- errors ------------------------------------------------------------------------------------------------


class LinkError(ProtocolError):
    """Base of the errors `HostLink` raises."""


class LinkUsageError(LinkError, RuntimeError):
    """The caller broke the link's rules (a second request while one is in flight): a bug in the caller."""


class LinkDownError(LinkError, ConnectionError):
    """The link is lost (latched); `reason` says why, as the `LinkDown` event did."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- events ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """The response to the request in flight: `reply` answers `request` (sent with `seq`). `replayed`: the
    response carried RETX, so the device answered from its cache of recent responses (§4.4)."""

    request: Message
    reply: Message
    seq: int
    replayed: bool


@dataclass(frozen=True)
class TelemetryReceived:
    """A TELEMETRY frame from the device (device `seq`)."""

    message: Telemetry
    seq: int


@dataclass(frozen=True)
class LinkDown:
    """The link was lost (once per link; see the module docstring)."""

    reason: str


Event = Reply | TelemetryReceived | LinkDown


# -- the link ----------------------------------------------------------------------------------------------


class _InFlight:
    """The one outstanding request: which response answers it (`ack` = its seq, one of its reply types)."""

    def __init__(self, message: Message, seq: int, deadline: float, timeout_s: float) -> None:
        self.message = message
        self.seq = seq
        self.deadline = deadline
        self.timeout_s = timeout_s
        self.tries = 1
        reply = REPLIES.get(message.MSG_ID)
        self.replies: tuple[type[Message], ...] = (Ack, REGISTRY[reply]) if reply else (Ack,)

    def answered_by(self, packet: Packet) -> bool:
        message = packet.message
        return (
            packet.ack == self.seq
            and type(message) in self.replies
            and (not isinstance(message, Ack) or message.acked_msg_id == self.message.MSG_ID)
        )


class HostLink:
    """The host's end of one link to one device, from `now` on (see the module docstring).

    `response_timeout_s` (at least 0.1 s, §4.4) and `retransmissions` bound each request; `link_timeout_s` is the
    silence after which the link is lost (None: not supervised); heartbeats go every `watchdog_s / 4`, and
    `watchdog_s` follows the CONFIGURE the device accepts. `frames_lost` (by `seq` gaps, §4.1),
    `frames_damaged` and `retransmissions_sent` count link trouble."""

    def __init__(
        self,
        now: float,
        *,
        response_timeout_s: float = 0.150,
        retransmissions: int = 3,
        link_timeout_s: float | None = None,
        watchdog_s: float = UNCONFIGURED_WATCHDOG_S,
        max_silence_step_s: float | None = None,
    ) -> None:
        if not response_timeout_s > 0:
            raise ValueError(f"response_timeout_s must be positive, got {response_timeout_s}")
        if retransmissions < 0:
            raise ValueError(f"retransmissions must be 0 or more, got {retransmissions}")
        if link_timeout_s is not None and not link_timeout_s > 0:
            raise ValueError(f"link_timeout_s must be positive or None, got {link_timeout_s}")
        if not watchdog_s > 0:
            raise ValueError(f"watchdog_s must be positive, got {watchdog_s}")
        self.response_timeout_s = response_timeout_s
        self.retransmissions = retransmissions
        self.link_timeout_s = link_timeout_s
        self.heartbeat_s = watchdog_s / 4
        self.max_silence_step_s = max_silence_step_s
        self.frames_lost = 0
        self.frames_damaged = 0
        self.retransmissions_sent = 0
        self._decoder = Decoder()
        self._events: list[Event] = []
        self._seq = 0
        self._heartbeat_counter = 0
        self._recent: deque[tuple[int, int]] = deque(maxlen=RESPONSE_CACHE)  # (seq, msg_id) the device may cache
        self._in_flight: _InFlight | None = None
        self._device_seq: int | None = None
        self._next_heartbeat = now  # the first poll heartbeats at once
        self._polled = now
        self._silent_s = 0.0
        self._lost: str | None = None

    # -- state ---------------------------------------------------------------------------------------------

    @property
    def lost(self) -> str | None:
        """Why the link was lost, or None while it is up."""
        return self._lost

    @property
    def in_flight(self) -> Message | None:
        """The request awaiting its reply, if any."""
        return self._in_flight.message if self._in_flight is not None else None

    def next_deadline(self) -> float | None:
        """The host time at which `poll` must next be called (None once the link is lost)."""
        if self._lost is not None:
            return None
        deadline = self._next_heartbeat
        if self._in_flight is not None:
            deadline = min(deadline, self._in_flight.deadline)
        if self.link_timeout_s is not None:
            deadline = min(deadline, self._polled + max(0.0, self.link_timeout_s - self._silent_s))
        return deadline

    def next_events(self) -> list[Event]:
        """The events since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    # -- sending -------------------------------------------------------------------------------------------

    def request(self, message: Message, now: float, *, wait_s: float = 0.0) -> bytes:
        """The frame(s) to write for a new request; its `Reply` comes out of `next_events`. `wait_s` is how long
        the device may take beyond its usual 50 ms (a CHECK_CONTACT's `duration_ms`, §4.2): each try waits
        `wait_s + response_timeout_s` before the next. Raises `LinkDownError` on a lost link and `LinkUsageError`
        while another request is in flight (stop-and-wait, §4.2) or for a HEARTBEAT (not a request)."""
        if self._lost is not None:
            raise LinkDownError(self._lost)
        if self._in_flight is not None:
            raise LinkUsageError(f"{message.NAME} while {self._in_flight.message.NAME} awaits its reply (§4.2)")
        if isinstance(message, Heartbeat):
            raise LinkUsageError("HEARTBEAT is not a request; the link sends it (poll, heartbeat)")
        out = bytearray()
        while (self._seq, message.MSG_ID) in self._recent:
            out += self._heartbeat_frame()
        seq = self._take_seq()
        self._recent.append((seq, message.MSG_ID))
        timeout_s = wait_s + self.response_timeout_s
        self._in_flight = _InFlight(message, seq, now + timeout_s, timeout_s)
        out += encode(message, seq=seq)
        return bytes(out)

    def heartbeat(self, now: float) -> bytes:
        """A HEARTBEAT to write now, besides the scheduled ones (the host says it is alive)."""
        if self._lost is not None:
            raise LinkDownError(self._lost)
        return self._heartbeat_frame()

    def poll(self, now: float) -> bytes:
        """What is due at `now`: frames to write (a retransmission, a heartbeat). May lose the link (`LinkDown`)."""
        if self._lost is not None:
            return b""
        step = max(0.0, now - self._polled)
        if self.max_silence_step_s is not None:
            step = min(step, self.max_silence_step_s)
        self._polled = now
        self._silent_s += step
        timeout = self.link_timeout_s
        if timeout is not None and self._silent_s >= timeout - _EPSILON_S:
            self.abandon(f"no valid frame for {self._silent_s:.2f} s of reading (limit {timeout:g} s)")
            return b""
        out = bytearray()
        waiting = self._in_flight
        if waiting is not None and now >= waiting.deadline:
            if waiting.tries > self.retransmissions:
                self.abandon(f"no answer to {waiting.message.NAME} after {waiting.tries} tries")
                return b""
            waiting.tries += 1
            waiting.deadline = now + waiting.timeout_s
            self.retransmissions_sent += 1
            out += encode(waiting.message, seq=waiting.seq, flags=RETRANSMIT)
        if now >= self._next_heartbeat:
            out += self._heartbeat_frame()
            self._next_heartbeat = now + self.heartbeat_s
        return bytes(out)

    def abandon(self, reason: str) -> None:
        """Latch the link lost (the port failed, the driver closed): nothing more is sent. The first reason sticks."""
        if self._lost is None:
            self._lost = reason
            self._in_flight = None
            self._events.append(LinkDown(reason))

    # -- receiving -----------------------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        """Bytes from the device, as they came; events for `next_events`. Ignored once the link is lost."""
        if self._lost is not None or not data:
            return
        for packet in self._decoder.feed(data):
            if isinstance(packet, ProtocolError):
                self.frames_damaged += 1
                continue
            self._silent_s = 0.0
            self._polled = max(self._polled, now)
            if not packet.is_retransmit:
                if self._device_seq is not None:
                    self.frames_lost += (packet.seq - self._device_seq - 1) & 0xFF
                self._device_seq = packet.seq
            message = packet.message
            if isinstance(message, Telemetry):
                self._events.append(TelemetryReceived(message, packet.seq))
            elif packet.is_response:
                self._answer(packet)

    def _answer(self, packet: Packet) -> None:
        waiting = self._in_flight
        if waiting is None or not waiting.answered_by(packet):
            return  # a late or duplicate answer to a request already settled
        self._in_flight = None
        reply = packet.message
        if isinstance(waiting.message, Configure) and isinstance(reply, Ack) and reply.result is Result.OK:
            self.heartbeat_s = waiting.message.watchdog_ms / 1000 / 4  # §7.3: at least every watchdog / 4
        self._events.append(Reply(waiting.message, reply, waiting.seq, packet.is_retransmit))

    # -- numbering -----------------------------------------------------------------------------------------

    def _heartbeat_frame(self) -> bytes:
        self._heartbeat_counter = (self._heartbeat_counter + 1) & _U16
        return encode(Heartbeat(self._heartbeat_counter), seq=self._take_seq())

    def _take_seq(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) & 0xFF
        return seq

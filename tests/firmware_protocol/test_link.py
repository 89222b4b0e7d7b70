"""`HostLink`, the host's side of the link (PROTOCOL.md §4, §7.3, §8), as scripts: device bytes at given host
times in, the frames the host writes and the events it reports out. No thread, no port, no clock.

Each case is a script of steps `(t, action, argument)`:

* `request`: the caller sends a request (a message, or `(message, wait_s)`);
* `device`: bytes from the device arrive;
* `poll`: the caller polls the link;
* `heartbeat`: the caller asks for an extra heartbeat (`keep_alive`);

and the transcript it must produce, one line per frame the host writes (`→ NAME #seq`, `RETX` for a resend) or
event it reports, each prefixed with the time, then the link's counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from firmware_protocol import (
    Ack,
    Arm,
    CheckContact,
    Configure,
    Decoder,
    Disarm,
    Event,
    Fault,
    HeaderFlags,
    Heartbeat,
    HostLink,
    Identify,
    Identity,
    LinkDown,
    LinkDownError,
    LinkUsageError,
    Message,
    Polarity,
    Reply,
    Result,
    Start,
    State,
    Telemetry,
    TelemetryReceived,
    encode,
)

RESPONSE = HeaderFlags.RESPONSE
RETX = HeaderFlags.RETX

# -- device frames -----------------------------------------------------------------------------------------


def ack(request: type[Message], to_seq: int, seq: int, *, result: Result = Result.OK, replay: bool = False) -> bytes:
    """The device's ACK (`seq`) to the host's request `to_seq` of type `request`."""
    flags = RESPONSE | (RETX if replay else 0)
    return encode(Ack(request.MSG_ID, result, State.IDLE, Fault.NONE), seq=seq, ack=to_seq, flags=flags)


def identity(to_seq: int, seq: int) -> bytes:
    reply = Identity(1, 0, 1, 0, 0, 1, "IONTO", "SN1", 0, 5000, 60000, 0x1F)
    return encode(reply, seq=seq, ack=to_seq, flags=RESPONSE)


def telemetry(seq: int, *, state: State = State.RUNNING, retx: bool = False) -> bytes:
    message = Telemetry(seq * 100, state, Fault.NONE, 0, Polarity.CATHODE, 2000, 2000, 9000, 4500, 0, 0, 0)
    return encode(message, seq=seq, flags=RETX if retx else 0)


def configure(watchdog_ms: int) -> Configure:
    return Configure(4000, 1000, 600_000, 60_000, 3_600_000, 500, 100_000, 1000, watchdog_ms, 30_000)


# -- the script runner ---------------------------------------------------------------------------------------


def describe(event: Event) -> str:
    if isinstance(event, Reply):
        replayed = " (replayed)" if event.replayed else ""
        return f"reply {event.reply.NAME} to {event.request.NAME} #{event.seq}{replayed}"
    if isinstance(event, TelemetryReceived):
        return f"telemetry #{event.seq}"
    assert isinstance(event, LinkDown)
    return f"lost: {event.reason}"


def run(link: HostLink, script: list[tuple[float, str, Any]]) -> list[str]:
    """The transcript of `script` on `link` (see the module docstring)."""
    lines: list[str] = []
    for t, action, argument in script:
        data = b""
        if action == "request":
            message, wait_s = argument if isinstance(argument, tuple) else (argument, 0.0)
            data = link.request(message, t, wait_s=wait_s)
        elif action == "device":
            link.receive(argument, t)
        elif action == "poll":
            data = link.poll(t)
        elif action == "heartbeat":
            data = link.heartbeat(t)
        else:
            raise AssertionError(f"unknown action {action!r}")
        for packet in Decoder().feed(data):
            assert not isinstance(packet, Exception), packet
            assert packet.wants_ack == (not isinstance(packet.message, Heartbeat))  # requests ask for an answer
            lines.append(f"{t:.3f} → {packet.message.NAME} #{packet.seq}{' RETX' if packet.is_retransmit else ''}")
        lines += [f"{t:.3f} {describe(event)}" for event in link.next_events()]
    lines.append(f"damaged={link.frames_damaged} lost={link.frames_lost} retx={link.retransmissions_sent}")
    return lines


@dataclass
class Case:
    script: list[tuple[float, str, Any]]
    transcript: list[str]
    options: dict[str, Any] = field(default_factory=dict)


#: A link as the reference host runs it (§8), its watchdog configured at 2 s (heartbeat every 0.5 s), not
#: supervised for silence unless a case says so.
DEFAULTS: dict[str, Any] = {"response_timeout_s": 0.150, "retransmissions": 3, "watchdog_s": 2.0}

CASES = {
    "a reply that arrives settles the request; no retransmission follows": Case(
        [(0.0, "request", Identify()), (0.01, "device", identity(0, 0)), (0.2, "poll", None), (0.4, "poll", None)],
        ["0.000 → IDENTIFY #0", "0.010 reply IDENTITY to IDENTIFY #0", "0.200 → HEARTBEAT #1",
         "damaged=0 lost=0 retx=0"],
    ),
    "a lost reply: the same request is resent with RETX at the deadline, answered from the device's cache": Case(
        [(0.0, "request", Arm()), (0.1, "poll", None), (0.149, "poll", None), (0.15, "poll", None),
         (0.16, "device", ack(Arm, 0, 3, replay=True))],
        ["0.000 → ARM #0", "0.100 → HEARTBEAT #1", "0.150 → ARM #0 RETX", "0.160 reply ACK to ARM #0 (replayed)",
         "damaged=0 lost=0 retx=1"],
    ),
    "a duplicate ACK is ignored, and never answers the next request": Case(
        [(0.0, "request", Arm()), (0.01, "device", ack(Arm, 0, 0)), (0.02, "device", ack(Arm, 0, 0, replay=True)),
         (0.03, "request", Disarm()), (0.04, "device", ack(Arm, 0, 0, replay=True)),
         (0.05, "device", ack(Disarm, 0, 1)), (0.06, "device", ack(Disarm, 1, 2))],
        ["0.000 → ARM #0", "0.010 reply ACK to ARM #0", "0.030 → DISARM #1", "0.060 reply ACK to DISARM #1",
         "damaged=0 lost=0 retx=0"],
    ),
    "an ACK naming another message is not the reply": Case(
        [(0.0, "request", Arm()), (0.01, "device", ack(Start, 0, 0)), (0.02, "device", ack(Arm, 0, 1))],
        ["0.000 → ARM #0", "0.020 reply ACK to ARM #0", "damaged=0 lost=0 retx=0"],
    ),
    "garbage between frames is counted and dropped; the frames around it get through": Case(
        [(0.0, "device", b"\x00\x05\xff\x13\x00" + telemetry(1) + b"noise\x00\x00"),
         (0.1, "device", b"\x07" * 300 + b"\x00" + telemetry(2))],
        ["0.000 telemetry #1", "0.100 telemetry #2", "damaged=3 lost=0 retx=0"],
    ),
    "a frame split across reads arrives whole": Case(
        [(0.0, "device", telemetry(4)[:7]), (0.01, "device", telemetry(4)[7:-1]), (0.02, "device", b"\x00")],
        ["0.020 telemetry #4", "damaged=0 lost=0 retx=0"],
    ),
    "a gap in the device's seq counts the frames lost; a retransmitted frame does not count": Case(
        [(0.0, "device", telemetry(5)), (0.1, "device", telemetry(6)), (0.2, "device", telemetry(9)),
         (0.3, "device", telemetry(3, retx=True)), (0.4, "device", telemetry(10))],
        ["0.000 telemetry #5", "0.100 telemetry #6", "0.200 telemetry #9", "0.300 telemetry #3",
         "0.400 telemetry #10", "damaged=0 lost=2 retx=0"],
    ),
    "the device's seq wraps at 256 without a gap": Case(
        [(0.0, "device", telemetry(254) + telemetry(255) + telemetry(0) + telemetry(1))],
        ["0.000 telemetry #254", "0.000 telemetry #255", "0.000 telemetry #0", "0.000 telemetry #1",
         "damaged=0 lost=0 retx=0"],
    ),
    "silence for the link timeout loses the link, and it stays lost": Case(
        [(0.0, "poll", None), (0.5, "poll", None), (0.999, "poll", None), (1.0, "poll", None), (2.0, "poll", None),
         (2.1, "device", telemetry(1))],
        ["0.000 → HEARTBEAT #0", "0.500 → HEARTBEAT #1", "1.000 lost: no valid frame for 1.00 s of reading "
         "(limit 1 s)", "damaged=0 lost=0 retx=0"],
        {"link_timeout_s": 1.0},
    ),
    "frames keep the link up; a damaged frame does not": Case(
        [(0.0, "poll", None), (0.4, "device", telemetry(1)), (0.5, "poll", None), (1.3, "device", telemetry(2)),
         (1.35, "poll", None), (1.5, "device", b"\x02\x01\x00"), (2.0, "poll", None), (2.3, "poll", None)],
        ["0.000 → HEARTBEAT #0", "0.400 telemetry #1", "0.500 → HEARTBEAT #1", "1.300 telemetry #2",
         "1.350 → HEARTBEAT #2", "2.000 → HEARTBEAT #3",
         "2.300 lost: no valid frame for 1.00 s of reading (limit 1 s)", "damaged=1 lost=0 retx=0"],
        {"link_timeout_s": 1.0},
    ),
    "a host that did not run counts at most one step of silence per poll, and finds the frames waiting": Case(
        [(0.0, "poll", None), (0.5, "poll", None), (3.0, "poll", None), (3.0, "device", telemetry(1)),
         (3.01, "poll", None)],
        ["0.000 → HEARTBEAT #0", "0.500 → HEARTBEAT #1", "3.000 → HEARTBEAT #2", "3.000 telemetry #1",
         "damaged=0 lost=0 retx=0"],
        {"link_timeout_s": 1.0, "max_silence_step_s": 0.25},
    ),
    "heartbeats at watchdog/4 from the CONFIGURE the device accepted, while energised, without caller traffic": Case(
        [(0.0, "poll", None), (0.0, "request", configure(2000)), (0.01, "device", ack(Configure, 1, 0)),
         (0.025, "poll", None), (0.3, "poll", None), (0.5, "request", Start(4000, 10_000)),
         (0.51, "device", ack(Start, 3, 1)), (0.525, "poll", None), (0.6, "device", telemetry(2)),
         (1.0, "poll", None), (1.025, "poll", None), (1.525, "poll", None)],
        ["0.000 → HEARTBEAT #0", "0.000 → CONFIGURE #1", "0.010 reply ACK to CONFIGURE #1", "0.025 → HEARTBEAT #2",
         "0.500 → START #3", "0.510 reply ACK to START #3", "0.525 → HEARTBEAT #4", "0.600 telemetry #2",
         "1.025 → HEARTBEAT #5", "1.525 → HEARTBEAT #6", "damaged=0 lost=0 retx=0"],
        {"watchdog_s": 0.1},
    ),
    "a CONFIGURE the device refused leaves the heartbeat period as it was": Case(
        [(0.0, "poll", None), (0.0, "request", configure(2000)),
         (0.01, "device", ack(Configure, 1, 0, result=Result.BAD_ARGUMENT)), (0.025, "poll", None),
         (0.05, "poll", None)],
        ["0.000 → HEARTBEAT #0", "0.000 → CONFIGURE #1", "0.010 reply ACK to CONFIGURE #1", "0.025 → HEARTBEAT #2",
         "0.050 → HEARTBEAT #3", "damaged=0 lost=0 retx=0"],
        {"watchdog_s": 0.1},
    ),
    "an extra heartbeat takes the next seq and leaves the schedule as it is": Case(
        [(0.0, "poll", None), (0.2, "heartbeat", None), (0.4, "poll", None), (0.5, "poll", None)],
        ["0.000 → HEARTBEAT #0", "0.200 → HEARTBEAT #1", "0.500 → HEARTBEAT #2", "damaged=0 lost=0 retx=0"],
    ),
    "the retransmissions run out: the link is lost, nothing more is sent, a late answer is ignored": Case(
        [(0.0, "request", Arm()), (0.15, "poll", None), (0.3, "poll", None), (0.45, "poll", None),
         (0.599, "poll", None), (0.6, "poll", None), (0.7, "poll", None), (0.8, "device", ack(Arm, 0, 0))],
        ["0.000 → ARM #0", "0.150 → ARM #0 RETX", "0.150 → HEARTBEAT #1", "0.300 → ARM #0 RETX",
         "0.450 → ARM #0 RETX", "0.600 lost: no answer to ARM after 4 tries", "damaged=0 lost=0 retx=3"],
    ),
    "a contact probe's reply is awaited for its duration before the first retransmission": Case(
        [(0.0, "request", (CheckContact(100, 500), 0.5)), (0.15, "poll", None), (0.649, "poll", None),
         (0.65, "poll", None), (0.7, "device", encode(Ack(0x04, Result.OK, State.IDLE, Fault.NONE), seq=0, ack=0,
                                                        flags=RESPONSE | RETX))],
        ["0.000 → CHECK_CONTACT #0", "0.150 → HEARTBEAT #1", "0.650 → CHECK_CONTACT #0 RETX",
         "0.650 → HEARTBEAT #2", "0.700 reply ACK to CHECK_CONTACT #0 (replayed)", "damaged=0 lost=0 retx=1"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_script(case: Case) -> None:
    link = HostLink(0.0, **{**DEFAULTS, **case.options})
    assert run(link, case.script) == case.transcript


# -- rules a table does not show -----------------------------------------------------------------------------


def test_a_lost_link_refuses_requests_and_heartbeats_with_its_reason() -> None:
    link = HostLink(0.0, link_timeout_s=1.0)
    link.poll(1.0)
    assert [type(e) for e in link.next_events()] == [LinkDown]
    with pytest.raises(LinkDownError, match="no valid frame") as caught:
        link.request(Arm(), 1.1)
    assert isinstance(caught.value, ConnectionError)
    with pytest.raises(LinkDownError):
        link.heartbeat(1.1)
    assert link.poll(9.0) == b"" and link.next_deadline() is None and link.next_events() == []


def test_a_second_request_while_one_is_in_flight_is_the_callers_error() -> None:
    link = HostLink(0.0)
    link.request(Arm(), 0.0)
    with pytest.raises(LinkUsageError, match="ARM awaits its reply"):
        link.request(Disarm(), 0.01)
    with pytest.raises(LinkUsageError):
        HostLink(0.0).request(Heartbeat(1), 0.0)  # not a request: the link sends heartbeats itself


def test_abandoning_the_link_reports_it_once_with_the_first_reason_and_stops_every_frame() -> None:
    link = HostLink(0.0)
    link.request(Arm(), 0.0)
    link.abandon("write failed")
    link.abandon("closed")
    assert link.next_events() == [LinkDown("write failed")] and link.lost == "write failed"
    assert link.in_flight is None and link.poll(5.0) == b""


def test_a_new_request_never_reuses_a_seq_and_message_the_device_may_still_have_cached() -> None:
    # §4.4: the device answers a RETX under (seq, msg_id) from its last four responses. After the host's seq wraps
    # to a value it used for the same message, one heartbeat moves the request past it.
    link = HostLink(0.0)
    assert decoded(link.request(Arm(), 0.0)) == [("ARM", 0)]
    link.receive(ack(Arm, 0, 0), 0.0)
    for _ in range(255):
        link.heartbeat(0.0)
    assert decoded(link.request(Arm(), 0.0)) == [("HEARTBEAT", 0), ("ARM", 1)]
    link.receive(ack(Arm, 1, 1), 0.0)
    assert decoded(link.request(Disarm(), 0.0)) == [("DISARM", 2)]  # another message may take a cached seq


def test_next_deadline_is_the_earliest_of_heartbeat_reply_and_silence() -> None:
    link = HostLink(0.0, response_timeout_s=0.15, link_timeout_s=1.0, watchdog_s=2.0)
    assert link.next_deadline() == 0.0  # the first heartbeat is due at once
    link.poll(0.0)
    assert link.next_deadline() == 0.5
    link.request(Arm(), 0.3)
    assert link.next_deadline() == pytest.approx(0.45)
    link.receive(ack(Arm, 1, 0), 0.35)
    assert link.next_deadline() == 0.5
    quiet = HostLink(0.0, link_timeout_s=1.0, watchdog_s=10.0)
    quiet.poll(0.0)
    quiet.poll(0.3)
    assert quiet.next_deadline() == pytest.approx(1.0)


def test_polling_at_each_deadline_drives_the_link_to_its_loss_without_stalling() -> None:
    # A caller on a synthetic clock steps to `next_deadline()` and polls; with a silent device the link must
    # reach its loss in a bounded number of steps (no deadline that never comes due).
    link = HostLink(0.0, link_timeout_s=1.0, watchdog_s=0.1)
    link.request(Identify(), 0.0)
    now, steps = 0.0, 0
    while (deadline := link.next_deadline()) is not None:
        now = max(now, deadline)
        link.poll(now)
        steps += 1
        assert steps < 200
    assert [e for e in link.next_events() if isinstance(e, LinkDown)] == [
        LinkDown("no answer to IDENTIFY after 4 tries")
    ]
    assert now == pytest.approx(0.6)


def test_options_out_of_range_are_refused() -> None:
    for bad in ({"response_timeout_s": 0}, {"retransmissions": -1}, {"link_timeout_s": 0}, {"watchdog_s": 0}):
        with pytest.raises(ValueError):
            HostLink(0.0, **bad)


def decoded(data: bytes) -> list[tuple[str, int]]:
    return [(p.message.NAME, p.seq) for p in Decoder().feed(data) if not isinstance(p, Exception)]

"""The simulator's I/O edge in-process: real sockets and ptys, a stand-in model, the loop stepped by hand."""

from __future__ import annotations

import contextlib
import os
import re
import socket
from collections.abc import Callable, Iterator

import pytest

from sim.server import Channel, Link, PtyChannel, Server, TcpChannel

LINE = re.compile(rb"(\d{8}):(x*)\n")


class Lines:
    """A model that produces one numbered line of `size` bytes per call and records what it is sent."""

    def __init__(self, size: int = 16 * 1024) -> None:
        self.size = size
        self.n = 0
        self.received = bytearray()
        self.resets = 0
        self.quiet = False

    def receive(self, data: bytes, now_s: float) -> None:
        self.received += data

    def advance(self, now_s: float) -> None:
        pass

    def take_output(self) -> bytes:
        if self.quiet:
            return b""
        self.n += 1
        return b"%08d:" % self.n + b"x" * (self.size - 10) + b"\n"

    def reset_input(self) -> None:
        self.resets += 1
        self.received.clear()


def run(server: Server, iterations: int) -> None:
    """Run the real loop for a number of iterations (no sleeping: tick_s is 0)."""
    left = [iterations]

    def count() -> None:
        left[0] -= 1
        if left[0] <= 0:
            server.stop()

    server.on_tick = count
    server._stop = False
    loop_close, server.close = server.close, lambda: None  # keep the endpoints open between runs
    try:
        server.serve_forever()
    finally:
        server.close = loop_close  # type: ignore[method-assign]


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server(tick_s=0)
    yield s
    s.close()


def whole_lines(data: bytes, size: int) -> list[int]:
    """The numbers of the lines in `data`; fails on any torn or merged line."""
    numbers = []
    for raw in data.splitlines(keepends=True):
        match = LINE.fullmatch(raw)
        assert match and len(raw) == size, f"torn line: {raw[:40]!r}... ({len(raw)} bytes)"
        numbers.append(int(match.group(1)))
    assert numbers == sorted(numbers)
    return numbers


def drain(server: Server, model: Lines, read: Callable[[], bytes]) -> bytes:
    """Stop the model's output, then read everything while the loop delivers what it still holds."""
    model.quiet = True
    data = bytearray()
    idle = 0
    while idle < 20:
        run(server, 2)
        chunk = read()
        data += chunk
        idle = 0 if chunk else idle + 1
    return bytes(data)


def test_a_tcp_host_that_stops_reading_gets_whole_lines_and_the_loop_goes_on(server: Server) -> None:
    model = Lines()
    channel = server.add(TcpChannel(Link(model), 0))
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(("127.0.0.1", int(channel.address().rsplit(":", 1)[1])))
    run(server, 2)  # accept
    run(server, 1500)  # ~24 MB offered to a host that reads nothing
    assert channel.dropped_bytes > 0
    assert isinstance(channel, TcpChannel) and channel.client is not None  # still connected
    client.setblocking(False)

    def recv() -> bytes:
        with contextlib.suppress(BlockingIOError):
            return client.recv(1 << 20)
        return b""

    numbers = whole_lines(drain(server, model, recv), model.size)
    assert len(numbers) < model.n - 100  # lines were dropped, whole
    client.close()


def test_a_pty_host_that_stops_reading_gets_whole_lines_and_the_loop_goes_on(server: Server) -> None:
    model = Lines(size=2048)
    channel = server.add(PtyChannel(Link(model), None))
    slave = os.open(channel.address(), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        run(server, 30)  # the host is noticed within one 20 ms check
        run(server, 3000)
        assert channel.dropped_bytes > 0

        def read() -> bytes:
            with contextlib.suppress(BlockingIOError):
                return os.read(slave, 1 << 16)
            return b""

        numbers = whole_lines(drain(server, model, read), model.size)
        assert numbers and len(numbers) < model.n - 100
    finally:
        os.close(slave)


def test_a_host_on_one_endpoint_shuts_out_a_host_on_the_other(server: Server) -> None:
    model = Lines(size=64)
    link = Link(model)
    pty = server.add(PtyChannel(link, None))
    tcp = server.add(TcpChannel(link, 0))
    slave = os.open(pty.address(), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        run(server, 30)
        assert link.owner is pty
        intruder = socket.create_connection(("127.0.0.1", int(tcp.address().rsplit(":", 1)[1])))
        intruder.settimeout(2)
        run(server, 5)
        assert intruder.recv(100) == b""  # accepted and closed: the device already has a host
        intruder.close()
        assert os.read(slave, 4096)  # the pty host keeps its telemetry
    finally:
        os.close(slave)
    run(server, 30)  # the pty host left: the link is free
    assert link.owner is None
    host = socket.create_connection(("127.0.0.1", int(tcp.address().rsplit(":", 1)[1])))
    host.settimeout(2)
    run(server, 5)
    assert link.owner is tcp
    assert LINE.match(host.recv(64))  # and the new host gets the output, from a line's start
    host.close()


def test_a_new_host_does_not_inherit_the_previous_hosts_partial_input(server: Server) -> None:
    model = Lines(size=64)
    tcp = server.add(TcpChannel(Link(model), 0))
    port = int(tcp.address().rsplit(":", 1)[1])
    first = socket.create_connection(("127.0.0.1", port))
    run(server, 3)
    first.sendall(b"half a comm")
    run(server, 3)
    assert model.received == b"half a comm"
    first.close()
    run(server, 3)
    second = socket.create_connection(("127.0.0.1", port))
    run(server, 3)
    second.sendall(b"*IDN?\n")
    run(server, 3)
    assert model.received == b"*IDN?\n"
    second.close()


def test_output_while_no_host_is_connected_is_discarded(server: Server) -> None:
    model = Lines(size=64)
    tcp = server.add(TcpChannel(Link(model), 0))
    run(server, 50)  # 50 lines made with nobody listening
    host = socket.create_connection(("127.0.0.1", int(tcp.address().rsplit(":", 1)[1])))
    host.settimeout(2)
    run(server, 3)
    first = int(LINE.match(host.recv(64)).group(1))  # type: ignore[union-attr]
    assert first > 50
    host.close()


def test_the_symlink_is_made_atomically_and_removed_only_while_it_names_our_pty(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "dev")
    first = PtyChannel(Link(Lines()), path)
    second = PtyChannel(Link(Lines()), path)  # another simulator takes the path over
    assert os.readlink(path) == second.address()
    first.close()
    assert os.readlink(path) == second.address()  # not ours any more: left alone
    second.close()
    assert not os.path.lexists(path)


def test_a_link_path_that_is_a_regular_file_is_refused_and_kept(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "dev"
    path.write_text("precious")
    with pytest.raises(FileExistsError):
        PtyChannel(Link(Lines()), str(path))
    assert path.read_text() == "precious"


def test_a_port_outside_the_tcp_range_is_refused() -> None:
    with pytest.raises(ValueError, match="65535"):
        TcpChannel(Link(Lines()), 70000)


def test_every_channel_kind_is_a_channel() -> None:
    assert issubclass(PtyChannel, Channel) and issubclass(TcpChannel, Channel)

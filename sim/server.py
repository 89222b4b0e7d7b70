"""The simulator's I/O edge: pseudo-terminals and TCP sockets, a selector loop per device.

Everything with a clock or a file descriptor is here; the models it serves are sans-I/O. A `Server` runs one
single-threaded selector loop; a `Bench` runs several servers, each on a thread of its own (one per device, one
for the SCPI SourceMeter), so nothing one device does or suffers (a fault, a slow or vanished host, a burst of
catch-up stepping) waits on another's loop. Each loop iteration reads what arrived, hands it to the model with
the present monotonic time, lets the models run up to now, and writes what they produced. The loop wakes at
least every `tick_s` (2 ms) so the device clock advances smoothly even on a silent link.

A device is served through a `Link`, which one host holds at a time, whichever endpoint it came
through (`--serial-link` and `--tcp` may serve the same device). On TCP a connection that finds the
link held is accepted and closed at once. On a pty the simulator cannot refuse an open; a host that
opens it with an exclusive lock (pyserial's `exclusive=True`, as ionctl does) makes a second such host
fail, and a host that opens it while the link is held elsewhere is ignored: its bytes are discarded and
nothing is written to it. Writes never block the loop (see `Channel`).
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import signal
import socket
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from sim.trace import TraceWriter as TraceWriter  # importable from here, as before

READ_SIZE = 4096


class Model(Protocol):
    """What a link serves: takes bytes, runs to a time, gives bytes (whole frames or lines per call)."""

    def receive(self, data: bytes, now_s: float) -> None: ...

    def advance(self, now_s: float) -> None: ...

    def take_output(self) -> bytes: ...

    def reset_input(self) -> None: ...


class Link:
    """One model and the endpoints it is reachable through; at most one host holds it at a time.

    The first endpoint to get a host owns the link until that host leaves. Bytes from any other
    endpoint are ignored and nothing is written to it, so two hosts can never both command one device.
    Output produced while no host holds the link is discarded: a host never reads frames from before it
    connected. A new host starts with an empty input buffer, so a partial frame or line left by the
    previous one cannot swallow its first command.
    """

    def __init__(self, model: Model) -> None:
        self.model = model
        self.owner: Channel | None = None

    def attach(self, channel: Channel) -> bool:
        if self.owner is None:
            self.owner = channel
            self.model.take_output()
            self.model.reset_input()
        return self.owner is channel

    def detach(self, channel: Channel) -> None:
        if self.owner is channel:
            self.owner = None

    def receive(self, channel: Channel, data: bytes, now_s: float) -> None:
        if self.owner is channel:
            self.model.receive(data, now_s)
            self.flush()  # answer at once, not at the next tick

    def tick(self, now_s: float) -> None:
        self.model.advance(now_s)
        self.flush()

    def flush(self) -> None:
        out = self.model.take_output()
        if out and self.owner is not None:
            self.owner.send(out)


class Channel:
    """A byte pipe to at most one host. Subclasses own the file descriptors.

    Writes never block the loop: what the host has not yet taken waits in `_pending`, and when more
    than `MAX_PENDING` bytes wait, new output is dropped in whole chunks (frames or lines, as the model
    produced them), as a UART overruns, so the host never receives a torn frame.
    """

    MAX_PENDING = 64 * 1024

    def __init__(self, link: Link) -> None:
        self.link = link
        self._pending = bytearray()
        self.dropped_bytes = 0

    def register(self, sel: selectors.BaseSelector) -> None:
        raise NotImplementedError

    def on_readable(self, key: selectors.SelectorKey, sel: selectors.BaseSelector, now_s: float) -> None:
        raise NotImplementedError

    def _write_some(self, data: memoryview) -> int:
        """Write what the host will take now without blocking; raise OSError if the host is gone."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def address(self) -> str:
        raise NotImplementedError

    def tick(self, now_s: float, sel: selectors.BaseSelector) -> None:
        self.flush_pending(sel)

    def send(self, data: bytes) -> None:
        if len(self._pending) + len(data) > self.MAX_PENDING:
            self.dropped_bytes += len(data)
            return
        self._pending += data
        with contextlib.suppress(OSError):  # a vanished host is noticed by tick / on_readable
            self._flush()

    def flush_pending(self, sel: selectors.BaseSelector) -> None:
        if self._pending:
            try:
                self._flush()
            except OSError:
                self.host_left(sel)

    def _flush(self) -> None:
        while self._pending:
            try:
                sent = self._write_some(memoryview(self._pending))
            except (BlockingIOError, InterruptedError):
                return
            if sent <= 0:
                return
            del self._pending[:sent]

    def host_left(self, sel: selectors.BaseSelector) -> None:
        self._pending.clear()
        self.link.detach(self)


class PtyChannel(Channel):
    """A raw-mode pseudo-terminal; `link_path` (if given) is made a symlink to its slave side."""

    def __init__(self, link: Link, link_path: str | None) -> None:
        super().__init__(link)
        self.symlink = Path(link_path) if link_path else None
        if self.symlink is not None and self.symlink.exists() and not self.symlink.is_symlink():
            raise FileExistsError(f"{self.symlink} exists and is not a symlink; refusing to replace it")
        self.master, slave = os.openpty()
        try:
            self.slave_path = os.ttyname(slave)
            tty.setraw(slave)  # persists on the pty after the slave closes; the host may set it again
            os.set_blocking(self.master, False)
            if self.symlink is not None:
                tmp = self.symlink.with_name(f".{self.symlink.name}.{os.getpid()}.tmp")
                tmp.unlink(missing_ok=True)
                tmp.symlink_to(self.slave_path)
                tmp.replace(self.symlink)  # atomic: the path never names nothing or a half-made link
        except BaseException:
            os.close(self.master)
            raise
        finally:
            os.close(slave)
        self._poll = select.poll()
        self._poll.register(self.master, select.POLLIN)
        self._registered = False
        self._next_check_s = 0.0

    def connected(self) -> bool:
        # With no process holding the slave open, the master reports POLLHUP.
        return not any(ev & select.POLLHUP for _, ev in self._poll.poll(0))

    def register(self, sel: selectors.BaseSelector) -> None:
        self._sync(sel)

    def _sync(self, sel: selectors.BaseSelector) -> None:
        want = self.connected()
        if want and not self._registered:
            sel.register(self.master, selectors.EVENT_READ, self)
        if want:
            self.link.attach(self)  # also takes over a link another endpoint's host has since left
        elif not want and self._registered:
            sel.unregister(self.master)
            self.host_left(sel)
        self._registered = want

    def on_readable(self, key: selectors.SelectorKey, sel: selectors.BaseSelector, now_s: float) -> None:
        try:
            data = os.read(self.master, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: the host closed the slave
            self._sync(sel)
            return
        if data:
            self.link.receive(self, data, now_s)

    def tick(self, now_s: float, sel: selectors.BaseSelector) -> None:
        if now_s >= self._next_check_s:  # a host coming or going is noticed within 20 ms
            self._sync(sel)
            self._next_check_s = now_s + 0.020
        super().tick(now_s, sel)

    def _write_some(self, data: memoryview) -> int:
        return os.write(self.master, data)

    def close(self) -> None:
        # Remove the symlink only while it still names our pty: another simulator may have taken the path.
        if self.symlink is not None:
            with contextlib.suppress(OSError):
                if os.readlink(self.symlink) == self.slave_path:
                    self.symlink.unlink()
        with contextlib.suppress(OSError):
            os.close(self.master)

    def address(self) -> str:
        return self.slave_path


class TcpChannel(Channel):
    """A listening socket on 127.0.0.1 that serves one client at a time."""

    def __init__(self, link: Link, port: int) -> None:
        super().__init__(link)
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} is outside 0..65535")
        self.listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.client: socket.socket | None = None

    def register(self, sel: selectors.BaseSelector) -> None:
        sel.register(self.listener, selectors.EVENT_READ, self)

    def on_readable(self, key: selectors.SelectorKey, sel: selectors.BaseSelector, now_s: float) -> None:
        if key.fileobj is self.listener:
            self._accept(sel)
            return
        try:
            data = self.client.recv(READ_SIZE) if self.client else b""
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            self.link.receive(self, data, now_s)
        else:
            self.host_left(sel)

    def _accept(self, sel: selectors.BaseSelector) -> None:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        if self.client is not None or not self.link.attach(self):
            conn.close()  # one host at a time, on this endpoint and on any other serving the same model
            return
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client = conn
        sel.register(conn, selectors.EVENT_READ, self)

    def _write_some(self, data: memoryview) -> int:
        if self.client is None:
            raise ConnectionError("no client")
        return self.client.send(data)

    def host_left(self, sel: selectors.BaseSelector) -> None:
        super().host_left(sel)
        if self.client is not None:
            sel.unregister(self.client)
            self.client.close()
            self.client = None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.listener.close()

    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def stop_on_signals(stop: Callable[[], None]) -> None:
    """SIGINT, SIGTERM and SIGHUP call `stop` (from the main thread, between its own steps)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop())


class Server:
    """Runs channels until `stop()` (or SIGINT/SIGTERM/SIGHUP when `install_signals()` was called).

    Install the signal handlers before opening endpoints, so a signal during start-up still ends in
    `serve_forever`'s clean-up (which returns at once when a stop was already requested).
    """

    def __init__(self, *, tick_s: float = 0.002, on_tick: Callable[[], None] | None = None) -> None:
        self.channels: list[Channel] = []
        self.links: list[Link] = []
        self.tick_s = tick_s
        self.on_tick = on_tick
        self._stop = False
        self._sel = selectors.DefaultSelector()

    def add(self, channel: Channel) -> Channel:
        self.channels.append(channel)
        if all(link is not channel.link for link in self.links):
            self.links.append(channel.link)
        channel.register(self._sel)
        return channel

    def install_signals(self) -> None:
        stop_on_signals(self.stop)

    def stop(self) -> None:
        self._stop = True

    def close(self) -> None:
        for channel in self.channels:
            channel.close()
        self.channels.clear()
        self._sel.close()

    def serve_forever(self) -> None:
        try:
            while not self._stop:
                for key, _ in self._sel.select(self.tick_s):
                    key.data.on_readable(key, self._sel, time.monotonic())
                now = time.monotonic()
                for channel in self.channels:
                    channel.tick(now, self._sel)
                for link in self.links:
                    link.tick(now)
                if self.on_tick is not None:
                    self.on_tick()
        finally:
            self.close()


class Bench:
    """Several servers, each looping on a thread of its own, until `stop()` (or SIGINT/SIGTERM/SIGHUP when
    `install_signals()` was called: the main thread keeps the signals and stops every loop).

    A loop that fails stops the others; `serve_forever` then raises its exception, after every loop has ended
    and closed its endpoints.
    """

    POLL_S = 0.05  # how soon the main thread notices a stop or a failed loop

    def __init__(self) -> None:
        self.servers: list[Server] = []
        self._stop = False
        self._failure: BaseException | None = None

    def add(self, server: Server) -> Server:
        self.servers.append(server)
        return server

    def install_signals(self) -> None:
        stop_on_signals(self.stop)

    def stop(self) -> None:
        self._stop = True
        for server in self.servers:
            server.stop()

    def close(self) -> None:
        for server in self.servers:
            server.close()

    def _run(self, server: Server) -> None:
        try:
            server.serve_forever()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            self._failure = self._failure or exc
            self.stop()

    def serve_forever(self) -> None:
        threads = [
            threading.Thread(target=self._run, args=(server,), name=f"sim-loop-{i}", daemon=True)
            for i, server in enumerate(self.servers, 1)
        ]
        try:
            for thread in threads:
                if not self._stop:
                    thread.start()
            while not self._stop and all(thread.is_alive() for thread in threads):
                time.sleep(self.POLL_S)
        finally:
            self.stop()
            for thread in threads:
                if thread.is_alive():
                    thread.join()
            self.close()  # loops never started still hold their endpoints
        if self._failure is not None:
            raise self._failure

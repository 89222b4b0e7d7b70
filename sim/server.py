"""The simulator's I/O edge: pseudo-terminals and TCP sockets in one single-threaded selector loop.

Everything with a clock or a file descriptor is here; the models it serves are sans-I/O. Each loop
iteration reads what arrived, hands it to the model with the present monotonic time, lets the models
run up to now, and writes what they produced. The loop wakes at least every `tick_s` (2 ms) so the
device clock advances smoothly even on a silent link.

A link takes one host at a time. On TCP a second connection is accepted and closed at once. On a
pty, the simulator cannot see who opens the slave side; a host that opens it with an exclusive lock
(pyserial's `exclusive=True`, as ionctl does) makes a second such host fail. While no host holds the
pty open, nothing is written to it, so a host never reads stale frames from before it connected.
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import signal
import socket
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

READ_SIZE = 4096


class Model(Protocol):
    """What a link serves: takes bytes, runs to a time, gives bytes."""

    def receive(self, data: bytes, now_s: float) -> None: ...

    def advance(self, now_s: float) -> None: ...

    def take_output(self) -> bytes: ...


class Channel:
    """A byte pipe to at most one host. Subclasses own the file descriptors."""

    label = ""

    def __init__(self, model: Model) -> None:
        self.model = model

    def register(self, sel: selectors.BaseSelector) -> None:
        raise NotImplementedError

    def on_readable(self, key: selectors.SelectorKey, sel: selectors.BaseSelector, now_s: float) -> None:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def address(self) -> str:
        raise NotImplementedError

    def tick(self, now_s: float, sel: selectors.BaseSelector) -> None:
        self.model.advance(now_s)
        out = self.model.take_output()
        if out:
            self.write(out)


class PtyChannel(Channel):
    """A raw-mode pseudo-terminal; `link` (if given) is made a symlink to its slave side."""

    def __init__(self, model: Model, link: str | None) -> None:
        super().__init__(model)
        self.master, slave = os.openpty()
        self.slave_path = os.ttyname(slave)
        tty.setraw(slave)  # persists on the pty after the slave closes; the host may set it again
        os.close(slave)
        os.set_blocking(self.master, False)
        self.link = Path(link) if link else None
        if self.link is not None:
            if self.link.is_symlink():
                self.link.unlink()
            elif self.link.exists():
                os.close(self.master)
                raise FileExistsError(f"{self.link} exists and is not a symlink; refusing to replace it")
            self.link.symlink_to(self.slave_path)
        self._poll = select.poll()
        self._poll.register(self.master, select.POLLIN)
        self._registered = False
        self._next_check_s = 0.0

    def connected(self) -> bool:
        # With no process holding the slave open, the master reports POLLHUP.
        return not any(ev & select.POLLHUP for _, ev in self._poll.poll(0))

    def register(self, sel: selectors.BaseSelector) -> None:
        self._sync_registration(sel)

    def _sync_registration(self, sel: selectors.BaseSelector) -> None:
        want = self.connected()
        if want and not self._registered:
            sel.register(self.master, selectors.EVENT_READ, self)
        elif not want and self._registered:
            sel.unregister(self.master)
        self._registered = want

    def on_readable(self, key: selectors.SelectorKey, sel: selectors.BaseSelector, now_s: float) -> None:
        try:
            data = os.read(self.master, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: the host closed the slave
            self._sync_registration(sel)
            return
        if data:
            self.model.receive(data, now_s)
            out = self.model.take_output()  # answer at once, not at the next tick
            if out:
                self.write(out)

    def tick(self, now_s: float, sel: selectors.BaseSelector) -> None:
        if now_s >= self._next_check_s:  # a host coming or going is noticed within 20 ms
            self._sync_registration(sel)
            self._next_check_s = now_s + 0.020
        self.model.advance(now_s)
        out = self.model.take_output()
        if out and self._registered:
            self.write(out)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + 0.5
        while view:
            try:
                view = view[os.write(self.master, view) :]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return  # the host is not reading: drop, as a UART would overrun
                select.select([], [self.master], [], 0.01)
            except OSError:
                return

    def close(self) -> None:
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()
        with contextlib.suppress(OSError):
            os.close(self.master)

    def address(self) -> str:
        return self.slave_path


class TcpChannel(Channel):
    """A listening socket on 127.0.0.1 that serves one client at a time."""

    def __init__(self, model: Model, port: int) -> None:
        super().__init__(model)
        self.listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.client: socket.socket | None = None

    def register(self, sel: selectors.BaseSelector) -> None:
        sel.register(self.listener, selectors.EVENT_READ, self)

    def on_readable(self, key: selectors.SelectorKey, sel: selectors.BaseSelector, now_s: float) -> None:
        if key.fileobj is self.listener:
            try:
                conn, _ = self.listener.accept()
            except BlockingIOError:
                return
            if self.client is not None:
                conn.close()  # one host at a time
                return
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.client = conn
            self.model.take_output()  # nothing from before the host connected
            sel.register(conn, selectors.EVENT_READ, self)
            return
        try:
            data = self.client.recv(READ_SIZE) if self.client else b""
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            self.model.receive(data, now_s)
            out = self.model.take_output()  # answer at once, not at the next tick
            if out:
                self.client.sendall(out)  # type: ignore[union-attr]
        else:
            self._drop(sel)

    def _drop(self, sel: selectors.BaseSelector) -> None:
        if self.client is not None:
            sel.unregister(self.client)
            self.client.close()
            self.client = None

    def tick(self, now_s: float, sel: selectors.BaseSelector) -> None:
        self.model.advance(now_s)
        out = self.model.take_output()
        if out and self.client is not None:
            try:
                self.client.sendall(out)
            except OSError:
                self._drop(sel)

    def write(self, data: bytes) -> None:
        if self.client is not None:
            self.client.sendall(data)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.listener.close()

    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class Server:
    """Runs channels until `stop()` (or SIGINT/SIGTERM when `install_signals()` was called)."""

    def __init__(self, channels: list[Channel], *, tick_s: float = 0.002, on_tick: Callable[[], None] | None = None):
        self.channels = channels
        self.tick_s = tick_s
        self.on_tick = on_tick
        self._stop = False
        self._sel = selectors.DefaultSelector()
        for channel in channels:
            channel.register(self._sel)

    def install_signals(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stop())

    def stop(self) -> None:
        self._stop = True

    def serve_forever(self) -> None:
        try:
            while not self._stop:
                for key, _ in self._sel.select(self.tick_s):
                    key.data.on_readable(key, self._sel, time.monotonic())
                now = time.monotonic()
                for channel in self.channels:
                    channel.tick(now, self._sel)
                if self.on_tick is not None:
                    self.on_tick()
        finally:
            for channel in self.channels:
                channel.close()
            self._sel.close()


class TraceWriter:
    """JSONL ground truth, written as the simulation steps and flushed every loop iteration."""

    def __init__(self, path: str) -> None:
        self._file: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        import json

        self._dumps = json.dumps

    def __call__(self, row: dict[str, object]) -> None:
        self._file.write(self._dumps(row, separators=(",", ":")) + "\n")

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

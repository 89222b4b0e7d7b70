"""A TCP proxy between a driver and the simulator that drops chosen frames: line damage, made deterministic.

The simulator's `link-drop` and `corrupt=` faults hit whatever crosses the link at the time; a test that
needs *this* frame lost (the first copy of a request, the answer to START) puts `FrameDropper` in between
and names the frames with a predicate over decoded packets. Everything else passes unchanged, byte for byte.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from firmware_protocol import Packet, ProtocolError, decode_frame

#: Return True to drop the frame. Called on the proxy's threads, one per direction.
Drop = Callable[[Packet], bool]


def _never(packet: Packet) -> bool:
    return False


@contextmanager
def frame_dropper(upstream: str, *, to_device: Drop = _never, to_host: Drop = _never) -> Iterator[str]:
    """Listen on 127.0.0.1; forward one connection to `upstream` (`socket://host:port`), dropping the frames
    the predicates pick. Yields the `socket://` URL to open instead of `upstream`."""
    host, port = upstream.removeprefix("socket://").rsplit(":", 1)
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"socket://127.0.0.1:{listener.getsockname()[1]}"
    stop = threading.Event()
    sockets: list[socket.socket] = [listener]

    def pump(source: socket.socket, sink: socket.socket, drop: Drop) -> None:
        buffer = b""
        try:
            while not stop.is_set():
                data = source.recv(4096)
                if not data:
                    break
                buffer += data
                *frames, buffer = buffer.split(b"\x00")
                out = bytearray()
                for frame in frames:
                    try:
                        keep = not frame or not drop(decode_frame(frame))
                    except ProtocolError:
                        keep = True  # not ours to judge: the receiver counts it
                    if keep:
                        out += frame + b"\x00"
                if out:
                    sink.sendall(out)
        except OSError:
            pass
        finally:
            stop.set()
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def accept() -> None:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        device = socket.create_connection((host, int(port)))
        sockets.extend((client, device))
        for args in ((client, device, to_device), (device, client, to_host)):
            threading.Thread(target=pump, args=args, name="frame-dropper", daemon=True).start()

    acceptor = threading.Thread(target=accept, name="frame-dropper", daemon=True)
    acceptor.start()
    try:
        yield url
    finally:
        stop.set()
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        acceptor.join(1.0)


class Relay:
    """A TCP relay for link trouble that is not frame loss: every connection is forwarded to `upstream` (which a
    test may re-point: a port that re-enumerated onto another device), each direction delayed by `delay_s`
    (latency), and `cut()` drops the connections open now (a cable pulled). Use as a context manager; `url` is
    the `socket://` address to open instead of the upstream."""

    def __init__(self, upstream: str, *, delay_s: float = 0.0) -> None:
        self.upstream = upstream
        self.delay_s = delay_s
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self._listener.getsockname()[1]}"
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name="relay", daemon=True)

    def __enter__(self) -> Relay:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self.cut()
        self._listener.close()
        self._acceptor.join(1.0)

    def cut(self) -> None:
        with self._lock:
            sockets, self._open = self._open, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            host, port = self.upstream.removeprefix("socket://").rsplit(":", 1)
            device = socket.create_connection((host, int(port)))
            with self._lock:
                self._open += [client, device]
                self.connections += 1
            for source, sink in ((client, device), (device, client)):
                threading.Thread(target=self._pump, args=(source, sink), name="relay", daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        import queue
        import time

        pending: queue.Queue[tuple[float, bytes] | None] = queue.Queue()

        def deliver() -> None:
            while (item := pending.get()) is not None:
                due, data = item
                time.sleep(max(0.0, due - time.monotonic()))
                try:
                    sink.sendall(data)
                except OSError:
                    return

        sender = threading.Thread(target=deliver, name="relay", daemon=True)
        sender.start()
        try:
            while data := source.recv(4096):
                pending.put((time.monotonic() + self.delay_s, data))
        except OSError:
            pass
        finally:
            pending.put(None)
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

"""The record writer a running session uses: storage never blocks the session's supervision.

The session's callbacks only *enqueue* (a bounded queue, `put_nowait`); a thread of the writer's own, on a
connection of its own, commits what was queued in order: telemetry in batches at least every
`FLUSH_EVERY_S`, events one transaction each, the closing last. A write that fails (another process holding
the store's write lock, a full disk, an I/O error) is retried; when the queue fills, or writes have kept
failing for `STALL_S` host seconds, `failure` says why and the session is told (`ionctl.treatment.Recorder` stops it
with a ramp: a session must not run on without its record). The writes go on being retried afterwards: the
ramp-down belongs in the record too.

What is needed to close the record truthfully even when the store cannot be written is kept beside it: the
*closing journal* (`<db>.closing.<id>`), a file of `JOURNAL_RESERVE` bytes allocated when the record opens
(so it needs no new space later) into which the session's result is written as it ends. When the closing
commits, the journal is removed; otherwise crash recovery (`ionctl.records.recovery`) closes the record from
it once the store can be written again.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ionctl.records.store import FLUSH_EVERY_S, Store, StoreError, utc_now
from ionctl.records.summary import RecordSummary

#: Queued items (samples and events) the writer may fall behind by: at 10 samples a second, over half an hour.
QUEUE_CAPACITY = 20_000
#: Host seconds that writes may keep failing (or a queued item wait unwritten) before the session is stopped.
STALL_S = 10.0
#: While the store is busy, each write attempt waits at most this long for its lock (host seconds).
BUSY_TIMEOUT_MS = 200
#: Retry pause after a failed write (host seconds).
RETRY_S = 0.1
#: Items the writer takes from the queue at a time (the rest wait in the bounded queue).
BATCH = 1_000
#: Bytes allocated for the closing journal when a record opens (a closing summary is about 2 KiB).
JOURNAL_RESERVE = 64 * 1024


def journal_path(store_path: Path, record_id: int) -> Path:
    path = store_path.resolve()
    return path.with_name(f"{path.name}.closing.{record_id}")


class ClosingJournal:
    """The record's closing, kept beside the store in space reserved at opening."""

    def __init__(self, store_path: Path, record_id: int) -> None:
        self.path = journal_path(store_path, record_id)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.posix_fallocate(fd, 0, JOURNAL_RESERVE)  # ENOSPC here refuses the session before it starts
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            raise
        self._fd: int | None = fd

    def write(self, closing: dict[str, Any]) -> None:
        """Write the closing into the reserved space (no allocation) and make it durable."""
        if self._fd is None:
            return
        data = (json.dumps(closing, sort_keys=True, allow_nan=False, default=str) + "\n").encode()
        if len(data) > JOURNAL_RESERVE:
            raise ValueError(f"the closing ({len(data)} bytes) does not fit the journal's {JOURNAL_RESERVE}")
        os.pwrite(self._fd, data, 0)
        os.fsync(self._fd)

    def discard(self) -> None:
        """The closing is in the store: the journal is no longer needed."""
        self.release()
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_journal(store_path: Path, record_id: int) -> dict[str, Any] | None:
    """The closing a session wrote into its journal, or None (no journal, or the session never got there)."""
    try:
        data = journal_path(store_path, record_id).read_bytes()
    except OSError:
        return None
    line = data.split(b"\n", 1)[0].strip(b"\0 ")
    if not line:
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) and isinstance(value.get("summary"), dict) else None


class RecordWriter:
    """Writes one record from its own thread; `sample`, `event` and `close` return at once or within bounds."""

    def __init__(self, store_path: Path, record_id: int, *, flush_every_s: float = FLUSH_EVERY_S,
                 stall_s: float = STALL_S, capacity: int = QUEUE_CAPACITY,
                 summarise: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None) -> None:  # fmt: skip
        self.store_path = store_path
        self.record_id = record_id
        self.flush_every_s = flush_every_s
        self.stall_s = stall_s
        self.summarise = summarise  # the dose and figures from stored samples (a closing `from_samples`)
        self._queue: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=capacity)
        self._batch = min(BATCH, capacity)  # so that at most twice `capacity` items wait in all
        self.failure: str | None = None  # why the record cannot be written (set once)
        self.error: str | None = None  # the last write error, if any
        self.samples = 0
        self.closed = False
        self.closing: dict[str, Any] | None = None  # what the closing committed (`RecordSummary.to_dict()`)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"record-{record_id}-writer", daemon=True)
        self._thread.start()

    # -- the session's side: enqueue only ------------------------------------------------------------------

    def sample(self, row: Sequence[Any]) -> None:
        self.samples += 1
        self._put(("sample", tuple(row)))

    def event(self, kind: str, text: str, *, utc: str | None = None, device_t_s: float | None = None) -> None:
        self._put(("event", kind, text, utc or utc_now(), device_t_s))

    def _put(self, item: tuple[Any, ...]) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._fail(f"{self._queue.maxsize} items are waiting to be written (the store has not accepted a "
                       f"write for too long: {self.error or 'no error reported'})")  # fmt: skip

    def _fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason

    def close(self, summary: RecordSummary | Mapping[str, Any], *, ended_utc: str | None = None,
              from_samples: bool = False, timeout_s: float | None = None) -> bool:  # fmt: skip
        """Queue the closing after everything else and wait for the writer to commit it (at most `timeout_s`,
        default `stall_s`); whether the record is closed. A mapping is read as a `RecordSummary` here, in the
        caller's thread, so a field that is not a closing's raises at once."""
        closing = RecordSummary.of(summary)
        timeout = self.stall_s if timeout_s is None else timeout_s
        try:
            self._queue.put(("close", closing, ended_utc or utc_now(), from_samples), timeout=timeout)
        except queue.Full:
            self._fail("the closing could not be queued")
        self._done.wait(timeout)
        return self.closed

    def stop(self) -> None:
        """Give up (the record stays open: recovery closes it, from the journal if there is one)."""
        self._put_stop()
        self._thread.join(timeout=1.0)

    def _put_stop(self) -> None:
        try:
            self._queue.put_nowait(("stop",))
        except queue.Full:
            pass
        self._stopping = True

    _stopping = False

    # -- the writer's thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        ops: deque[tuple[Any, ...]] = deque()
        store: Store | None = None
        last_flush = time.monotonic()
        failing_since: float | None = None
        waiting_since: float | None = None  # the oldest unwritten item's arrival
        try:
            while not self._stopping:
                try:  # what waits beyond BATCH stays in the bounded queue, so a stalled store fills it
                    if len(ops) < self._batch:
                        ops.append(self._queue.get(timeout=0.05 if ops else 0.2))
                    while len(ops) < self._batch:
                        ops.append(self._queue.get_nowait())
                except queue.Empty:
                    pass
                if ops and ops[-1][0] == "stop":
                    return
                if ops and waiting_since is None:
                    waiting_since = time.monotonic()
                try:
                    if store is None:
                        store = Store(self.store_path)
                        store.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                    due = time.monotonic() - last_flush >= self.flush_every_s
                    if self._drain(store, ops, due):
                        last_flush = time.monotonic()
                    failing_since = None
                    if not ops:
                        waiting_since = None
                    if self.closed:
                        return
                except Exception as exc:  # sqlite3.Error, OSError, StoreError: retried until it works
                    self.error = f"{type(exc).__name__}: {exc}"
                    now = time.monotonic()
                    failing_since = failing_since if failing_since is not None else now
                    if now - failing_since >= self.stall_s:
                        self._fail(f"writes have failed for {now - failing_since:.0f} s: {self.error}")
                    time.sleep(RETRY_S)
                if waiting_since is not None and time.monotonic() - waiting_since >= self.stall_s and ops:
                    self._fail(f"nothing has been written for {self.stall_s:g} s"
                               + (f": {self.error}" if self.error else ""))  # fmt: skip
        finally:
            self._done.set()
            if store is not None:
                store.close()

    def _drain(self, store: Store, ops: deque[tuple[Any, ...]], due: bool) -> bool:
        """Write the queued items in order (samples only when a batch is due or something follows them);
        whether samples were committed. Raises on a failed write, leaving the unwritten items queued."""
        flushed = False
        while ops:
            kind = ops[0][0]
            if kind == "sample":
                n = 0
                while n < len(ops) and ops[n][0] == "sample":
                    n += 1
                if n == len(ops) and not due:
                    return flushed
                store.append_telemetry(self.record_id, [ops[i][1] for i in range(n)])
                for _ in range(n):
                    ops.popleft()
                flushed = True
            elif kind == "event":
                _, event_kind, text, utc, device_t_s = ops[0]
                store.append_event(self.record_id, event_kind, text, utc=utc, device_t_s=device_t_s)
                ops.popleft()
            elif kind == "close":
                _, closing, ended_utc, from_samples = ops[0]
                if from_samples and self.summarise is not None:
                    closing = closing.updated(self.summarise(store.telemetry(self.record_id)))
                try:
                    store.close_record(self.record_id, closing, ended_utc=ended_utc)
                except StoreError:
                    if store.get(self.record_id).fields["outcome"] is None:
                        raise
                self.closing = closing.to_dict()
                self.closed = True
                ops.popleft()
                return flushed
            else:
                ops.popleft()
        return flushed

"""The anchor: signed checkpoints of the record store's chain head, kept outside the store file.

The hash chain shows an edited or removed link in its middle, but not the removal of its newest links: what is
left is still a valid chain. So each record's close appends a checkpoint (the chain's head: its place `gseq` and
hash, and the store's identity) signed by the operator, to a file in the directory the site configuration names
(`[accounts] anchor`: another disk or a share the bench PC's account may append to). `ionctl records verify`
then checks that the store still holds every checkpointed head and the newest record's close; `--anchor HASH`
checks one printed on a chart page (docs/SAFETY.md, "truncation").

The file is named by the store's identity, the hash of its chain's first link (`Store.first_link`), not by the
store file's path: a copy of the store elsewhere is checked against the same checkpoints.

Writing a checkpoint never delays a session or hangs its command: it happens after the record is closed and the
session's lock released; the file is opened without blocking and refused unless it is a regular file (a FIFO or
a device put at its name, a symbolic link), and the write runs in a thread of its own that is waited for at most
`WRITE_WAIT_S` (a share that stopped answering); a failure is an `OSError` for the caller to report.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ionctl.config.people import Identity, Signature
from ionctl.records.chain import canonical

#: One file per record store, named by the store's identity (a site may anchor several).
SUFFIX = ".anchor.jsonl"
#: How long a checkpoint's write is waited for before the command goes on without it (a hung share).
WRITE_WAIT_S = 3.0

#: A store: its identity (the hash of its chain's first link), or the path of its file (its identity read there).
StoreRef = str | Path


class AnchorError(Exception):
    """The anchor file cannot be read as checkpoints: it is not a regular file, or a line other than a torn
    last one does not parse."""


class AnchorUnfinished(OSError):
    """The checkpoint's write did not finish within its wait: the anchor's share may be hung."""


def store_identity(store: StoreRef) -> str:
    """The identity of `store` (given, or read from the store file at that path); ValueError for an empty store."""
    if isinstance(store, str):
        return store
    from ionctl.records import Store

    with Store(store, create=False) as opened:
        identity = opened.first_link()
    if identity is None:
        raise ValueError(f"the record store {store} has no links yet, so no identity")
    return identity


def anchor_file(directory: Path, store: StoreRef) -> Path:
    return directory / f"store-{store_identity(store)[:32]}{SUFFIX}"


def _subject(store: str, gseq: int, head: str) -> str:
    return hashlib.sha256(canonical({"store": store, "gseq": gseq, "hash": head}).encode()).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """One line of an anchor file: the store's identity, the checkpointed link and hash, the signature, and
    the line's number in the file (1 for the first)."""

    store: str
    gseq: int
    hash: str
    signature: Signature | None
    line: int = 0

    @classmethod
    def from_line(cls, line: str, number: int = 0) -> Checkpoint:
        data: Mapping[str, Any] = json.loads(line)
        raw = data.get("signature")
        return cls(str(data["store"]), int(data["gseq"]), str(data["hash"]),
                   Signature.from_dict(raw) if isinstance(raw, Mapping) else None, number)  # fmt: skip

    @property
    def subject(self) -> str:
        return _subject(self.store, self.gseq, self.hash)


def write_checkpoint(directory: Path, store: StoreRef, head: tuple[int, str], identity: Identity, utc: str, *,
                     wait_s: float | None = None) -> Path:  # fmt: skip
    """Append a checkpoint of `head` (gseq, hash), signed by `identity`, durable on return (fsync). OSError if
    it cannot be written (not a regular file, a directory that cannot be written), `AnchorUnfinished` if the
    write did not finish within `wait_s` (default `WRITE_WAIT_S`; it is left to finish or hang in a daemon
    thread, which never keeps the process alive). The file is created owner/group-only (0640)."""
    store_id = store_identity(store)
    gseq, digest = head
    signature = identity.sign("checkpoint", _subject(store_id, gseq, digest), utc)
    line = canonical({"store": store_id, "gseq": gseq, "hash": digest, "signature": signature.to_dict()}) + "\n"
    path = anchor_file(directory, store_id)
    failure: list[BaseException] = []

    def append() -> None:
        try:
            _append(path, line.encode())
        except BaseException as exc:  # reported by the waiting thread
            failure.append(exc)

    thread = threading.Thread(target=append, name="anchor-checkpoint", daemon=True)
    thread.start()
    wait = WRITE_WAIT_S if wait_s is None else wait_s
    thread.join(wait)
    if thread.is_alive():
        raise AnchorUnfinished(f"writing to {path} did not finish within {wait:g} s (is the share hung?)")
    if failure:
        raise failure[0]
    return path


def _open(path: Path, flags: int, mode: int = 0o660) -> int:
    """An open descriptor of `path`, never blocking on it (O_NONBLOCK: a FIFO, a device) nor following a
    symbolic link; OSError unless it is a regular file. A new file is the owner's and, as far as the umask allows
    (a group of bench accounts appending to one anchor), the group's; never other accounts'."""
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, mode & ~0o007)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.ELOOP):  # a FIFO without a reader; a symbolic link
            raise OSError(exc.errno, f"{path} is not a regular file") from exc
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{path} is not a regular file")
    return fd


def _append(path: Path, data: bytes) -> None:
    fd = _open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    try:
        size = os.fstat(fd).st_size
        if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # a torn last line stays a line of its own (and is named by verify)
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_checkpoints(directory: Path, store: StoreRef) -> list[Checkpoint]:
    """The checkpoints of `store`, oldest first ([] if there is no file). Only a torn last line (no line end:
    a write cut short) is passed over; any other line that does not parse raises `AnchorError` naming it, as
    does a file that is not a regular one."""
    path = anchor_file(directory, store)
    try:
        fd = _open(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise AnchorError(str(exc)) from exc
    with os.fdopen(fd, "rb") as file:
        text = file.read().decode("utf-8", errors="replace")
    lines = text.split("\n")
    torn = lines.pop()  # "" when the file ends with a line end
    found = []
    for number, line in enumerate(lines, start=1):
        try:
            found.append(Checkpoint.from_line(line, number))
        except (ValueError, KeyError, TypeError) as exc:
            raise AnchorError(f"line {number} is not a checkpoint ({type(exc).__name__}: {exc}): the file was "
                              "edited, or a write was cut short and written after") from exc  # fmt: skip
    if torn:
        try:
            found.append(Checkpoint.from_line(torn, len(lines) + 1))
        except (ValueError, KeyError, TypeError):
            pass  # a write cut short: its record's close is checked against the newest record (verify)
    return found

"""The anchor: signed checkpoints of the record store's chain head, kept outside the store file.

The hash chain shows an edited or removed link in its middle, but not the removal of its newest links: what is
left is still a valid chain. So each record's close appends a checkpoint (the chain's head: its place `gseq` and
hash, the store's file, the time) signed by the operator, to a file in the directory the site configuration
names (`[accounts] anchor`: another disk or a share the bench PC's account may append to). `ionctl records
verify` then checks that the store still holds every checkpointed head; `--anchor HASH` checks one printed on a
chart page. Writing a checkpoint never delays a session: it happens after the record is closed, and a failure
is reported, not raised.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ionctl.config.people import Identity, Signature
from ionctl.records.chain import canonical

#: One file per record store, named by the SHA-256 of the store's absolute path (a site may anchor several).
SUFFIX = ".anchor.jsonl"


def anchor_file(directory: Path, store_path: Path) -> Path:
    digest = hashlib.sha256(str(store_path.resolve()).encode()).hexdigest()[:16]
    return directory / f"{store_path.stem}-{digest}{SUFFIX}"


def _subject(store: str, gseq: int, head: str) -> str:
    return hashlib.sha256(canonical({"store": store, "gseq": gseq, "hash": head}).encode()).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    store: str
    gseq: int
    hash: str
    signature: Signature | None

    @classmethod
    def from_line(cls, line: str) -> Checkpoint:
        data: Mapping[str, Any] = json.loads(line)
        raw = data.get("signature")
        return cls(str(data["store"]), int(data["gseq"]), str(data["hash"]),
                   Signature.from_dict(raw) if isinstance(raw, Mapping) else None)  # fmt: skip

    @property
    def subject(self) -> str:
        return _subject(self.store, self.gseq, self.hash)


def write_checkpoint(directory: Path, store_path: Path, head: tuple[int, str], identity: Identity, utc: str) -> Path:
    """Append a checkpoint of `head` (gseq, hash), signed by `identity`, durable on return (fsync). OSError if
    the directory cannot be written; the file is created owner/group-only (0640)."""
    store = str(store_path.resolve())
    gseq, digest = head
    signature = identity.sign("checkpoint", _subject(store, gseq, digest), utc)
    line = canonical({"store": store, "gseq": gseq, "hash": digest, "signature": signature.to_dict()}) + "\n"
    path = anchor_file(directory, store_path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def read_checkpoints(directory: Path, store_path: Path) -> list[Checkpoint]:
    """The checkpoints of the store at `store_path`, oldest first ([] if there is no file); a line that does
    not parse is skipped (a torn last write), never fatal."""
    path = anchor_file(directory, store_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    found = []
    for line in text.splitlines():
        try:
            found.append(Checkpoint.from_line(line))
        except (ValueError, KeyError, TypeError):
            continue
    return found

"""What the record store raises (`ionctl.records.store`)."""

from __future__ import annotations

from pathlib import Path


class StoreError(Exception):
    """The store cannot be opened or written (not a records file, a newer schema, a closed record)."""


class StoreMissing(StoreError):
    """A store opened to read (`create=False`) does not exist: reading never creates one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"no record store at {path}: a command that only reads never creates one; only a session "
            "(ionctl run, ionctl console, ionctl demo) or an explicit write (ionctl users, ionctl config approve "
            "or set; ionctl course start) does. Check --db, or the site configuration's [records] store"
        )

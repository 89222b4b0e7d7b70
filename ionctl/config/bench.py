"""Where this PC keeps its record store, and which clock the clinic reads: one answer for every command.

The record store holds the records, the audit trail (approvals, the supervisor PIN) and the courses. Which
file it is, first found:

1. `--db PATH` on the command line;
2. `[records] store` in the site configuration in force (`--config FILE`, else the site file), so that every
   account on a shared bench PC reads and writes the same store;
3. `records.sqlite3` in the user's own data directory (`ionctl.records.default_path()`).

`ionctl demo` is the one exception: it keeps its own demo store and never touches the clinic's.

A command that only reads opens the store with `open_store(..., create=False)`: a mistyped path is refused
(`StoreMissing`) instead of becoming a new, empty store that then "verifies".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ionctl.config.site import ClinicSettings, bench_settings

if TYPE_CHECKING:
    from ionctl.records import Store


def store_path(db: str | os.PathLike[str] | None, config: str | os.PathLike[str] | None = None) -> Path:
    """The record store: `db` if given, else the site configuration's `[records] store`, else the user's."""
    if db is not None:
        return Path(db)
    named = bench_settings(None if config is None else Path(config)).store
    if named is not None:
        return named
    from ionctl.records import default_path

    return default_path()


def use_clinic_time(config: str | os.PathLike[str] | None = None) -> None:
    """Show every time in the site configuration's `time_zone` (else the machine's zone)."""
    from ionctl.records import timefmt

    timefmt.use_zone(bench_settings(None if config is None else Path(config)).time_zone)


def open_store(db: str | os.PathLike[str] | None, config: str | os.PathLike[str] | None = None, *,
               create: bool) -> Store:  # fmt: skip
    """The store `store_path` names, with the clinic's time zone in force. `create=False` for a command that
    only reads: `StoreMissing` if there is no such file (and none is made)."""
    from ionctl.records import Store

    use_clinic_time(config)
    return Store(store_path(db, config), create=create)


def clinic_settings(config: str | os.PathLike[str] | None = None) -> ClinicSettings | None:
    """The site configuration's `[clinic]` (the clinic's PostgreSQL store and this bench's name), or None: this
    bench keeps its records to itself."""
    return bench_settings(None if config is None else Path(config)).clinic

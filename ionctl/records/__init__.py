"""Session records for the chart: a durable, append-only, hash-chained SQLite store (`store`), crash
recovery (`recovery`) and exports (`export`). Standard library (and platformdirs) only; never imports the
session or the front ends: `ionctl.treatment.Recorder` feeds it."""

from ionctl.records.recovery import SessionLock, recover_interrupted
from ionctl.records.store import (
    SCHEMA_VERSION,
    BrokenLink,
    Record,
    SessionWriter,
    Store,
    StoreError,
    StoreMissing,
    default_path,
)

__all__ = ["SCHEMA_VERSION", "BrokenLink", "Record", "SessionLock", "SessionWriter", "Store", "StoreError",
           "StoreMissing", "default_path", "recover_interrupted"]  # fmt: skip

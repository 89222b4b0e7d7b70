"""Session records for the chart: a durable, append-only, hash-chained SQLite store (`store`), crash
recovery (`recovery`) and exports (`export`). Standard library (and platformdirs) only; never imports the
session or the front ends: `ionctl.treatment.Recorder` feeds it.

The names below are loaded when first used (PEP 562), so that importing a light submodule (`ionctl.records.skin`
for `ionctl records addendum --help`) does not open SQLite, hashlib and the store's modules."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: Each name this package gives, and the submodule it comes from.
_FROM = {"SessionLock": "recovery", "recover_interrupted": "recovery", "SCHEMA_VERSION": "store", "BrokenLink": "store",
         "Record": "store", "SessionWriter": "store", "Store": "store", "StoreError": "store",
         "StoreMissing": "store", "default_path": "store"}  # fmt: skip

__all__ = ["SCHEMA_VERSION", "BrokenLink", "Record", "SessionLock", "SessionWriter", "Store", "StoreError",
           "StoreMissing", "default_path", "recover_interrupted"]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _FROM:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_FROM[name]}"), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value

"""Every test runs with its own user data and configuration directories (the site's too), so no test (nor an
`ionctl` it starts) writes into the real record store, or reads the real site configuration, of the machine
running the suite; and in the UTC time zone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("xdg")
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_DIRS"):
        monkeypatch.setenv(name, str(home / name.lower()))
    return home


@pytest.fixture(autouse=True)
def clinic_in_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clinic's time zone (the machine's local time: course days) is UTC in every test, whatever the
    machine's, so dates in expectations are the same everywhere. A test of another zone sets TZ itself."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    from ionctl.records import timefmt

    timefmt.use_zone(None)  # no site time zone left over from another test

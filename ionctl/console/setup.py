"""What the console runs with: the site configuration, the record store, and how devices are found and opened.

`ConsoleSetup.from_args` reads them as `ionctl console` is given them (the packaged configuration unless
`--config`, the default record store unless `--db`), closes any record a killed session left open (as
`ionctl run` does), and notes when a hand-edited configuration has not been approved: the console then shows
why and starts no session. Tests build a `ConsoleSetup` directly, with a simulator behind `open_device`.

The people who may log in are the store's accounts under the trust of the configuration in force (its
`[accounts]` table names the administrators whose enrolments count, the lockout and the idle lock).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ionctl.config.people import PRODUCTION_COST, Cost, People, Trust
from ionctl.drivers.base import CurrentSource
from ionctl.safety import SiteLimits

if TYPE_CHECKING:
    from ionctl.config import Electrode, Preset, SiteConfig
    from ionctl.config.people import AuditLog
    from ionctl.drivers.discovery import Found

#: The idle lock when there is no site configuration to say (`[accounts] idle_lock_minutes`' default).
DEFAULT_IDLE_LOCK_MIN = 10.0


def open_device(address: str) -> CurrentSource:
    from ionctl.drivers import open_device as open_at

    return open_at(address)


def discover() -> tuple[list[Found], str | None]:
    """Serial ports and local VISA resources (never a network broadcast), and a note if VISA could not look."""
    from ionctl.drivers import discovery

    found = discovery.serial_ports()
    visa, note = discovery.visa_resources(lan=False)
    return found + visa, note


@dataclass
class ConsoleSetup:
    """Everything the console needs besides the technician."""

    limits: SiteLimits
    presets: Mapping[str, Preset]
    store_path: Path | None  # None: the default record store
    electrodes: Mapping[str, Electrode] = field(default_factory=dict)
    config_source: str = "packaged defaults"
    config_sha256: str = ""
    blocked: str | None = None  # why no session may start (an unapproved configuration)
    device: str | None = None  # the address to offer first (--device)
    open_device: Callable[[str], CurrentSource] = open_device
    discover: Callable[[], tuple[list[Found], str | None]] = discover
    reconnect: bool = True  # reopen the device after a lost link to settle the dose from its counter
    accept_no_watchdog: bool = False
    export_dir: Path = field(default_factory=Path.cwd)  # where the chart PDF goes
    recovered: list[int] = field(default_factory=list)  # records closed as interrupted at start-up
    config: SiteConfig | None = None  # the configuration itself (the confirmation's drug-catalog advice)
    cost: Cost = PRODUCTION_COST  # the scrypt cost of a password set at the console (first use)
    clock: Callable[[], float] = time.monotonic  # the idle lock's clock (seconds; tests move it)

    def people(self, store: AuditLog) -> People:
        """The store's accounts, under the trust of the configuration in force."""
        trust = Trust.of(self.config) if self.config is not None else Trust()
        return People(store, trust, cost=self.cost)

    @property
    def idle_lock_s(self) -> float:
        """Seconds without a key or mouse event before the console locks (`[accounts] idle_lock_minutes`)."""
        minutes = self.config.accounts.idle_lock_minutes if self.config is not None else DEFAULT_IDLE_LOCK_MIN
        return minutes * 60.0

    @classmethod
    def from_config(cls, config: SiteConfig, store_path: Path | None, **options: object) -> ConsoleSetup:
        return cls(limits=config.limits, presets=config.presets, electrodes=config.electrodes,
                   store_path=store_path, config_source=config.source, config_sha256=config.sha256,
                   config=config, **options)  # type: ignore[arg-type]  # fmt: skip

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ConsoleSetup:
        """Load the configuration and open the store once (recovery, approval); raises `ConfigError`,
        `StoreError` or `OSError` for the command to report."""
        from ionctl.config import ConfigNotApproved, load_config, require_approved
        from ionctl.config.bench import open_store
        from ionctl.records import recover_interrupted

        config = load_config(args.config)
        with open_store(args.db, args.config, create=True) as store:  # the console runs sessions: it may create
            recovered = recover_interrupted(store)
            try:
                require_approved(config, store)
                blocked = None
            except ConfigNotApproved as exc:
                blocked = str(exc)
            path = store.path
        return cls.from_config(config, path, blocked=blocked, device=args.device, recovered=recovered)

"""A clinic for tests: a site file naming its administrator, a record store with one person of each role
(activated, with the passwords below), and that site file approved by the supervisor.

Their credentials use a cheap scrypt cost (`TEST_COST`): each credential keeps its own cost, so logging in
from a test, or from an `ionctl` a test starts, is fast, while every credential `ionctl` itself makes uses the
production cost (tests/config/test_people.py checks that).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ionctl.config.authority import initial_text
from ionctl.config.people import Cost, Identity, People, Role, Trust
from ionctl.config.site import load_config
from ionctl.records import Store

TEST_COST = Cost(2**10, 8, 1)
ADMIN, SUPERVISOR, TECHNICIAN, AUDITOR = "ada", "sam", "tess", "otto"
PASSWORDS = {ADMIN: "Keeper-lantern-1", SUPERVISOR: "Super-harbour-2", TECHNICIAN: "Tech-meadow-33",
             AUDITOR: "Audit-copper-44"}  # fmt: skip
FULL_NAMES = {ADMIN: "Ada Admin", SUPERVISOR: "Sam Supervisor", TECHNICIAN: "Tess Technician",
              AUDITOR: "Otto Auditor"}  # fmt: skip
ROLES = {SUPERVISOR: Role.SUPERVISOR, TECHNICIAN: Role.TECHNICIAN, AUDITOR: Role.AUDITOR}


def accounts_table(fingerprint: str, extra: str = "") -> str:
    return f'\n[accounts]\nadministrators = ["{fingerprint}"]\n{extra}'


@dataclass
class Clinic:
    """A site file and a record store with people in it."""

    config: Path
    store: Path
    administrator: str  # the administrator's key fingerprint

    def people(self, store: Store, *, clock: Callable[[], datetime] | None = None) -> People:
        return People(store, Trust.of(load_config(self.config)), clock=clock, cost=TEST_COST)

    def login(self, store: Store, name: str) -> Identity:
        return self.people(store).login(name, PASSWORDS[name])

    def stdin(self, name: str) -> str:
        """What `--password-stdin` reads for `name`."""
        return PASSWORDS[name] + "\n"


def make_clinic(folder: Path, *, config_text: str | None = None, approve: bool = True,
                store_name: str = "records.sqlite3", config_name: str = "site.toml") -> Clinic:  # fmt: skip
    """A clinic in `folder`: `config_text` (default: `ionctl config init`'s file) with an `[accounts]` table
    naming the administrator added; the store with its people; the file approved by the supervisor."""
    folder.mkdir(parents=True, exist_ok=True)
    config, store_path = folder / config_name, folder / store_name
    with Store(store_path) as store:
        admin = People(store, cost=TEST_COST).bootstrap(ADMIN, FULL_NAMES[ADMIN], PASSWORDS[ADMIN])
        config.write_text((config_text if config_text is not None else initial_text())
                          + accounts_table(admin.fingerprint), encoding="utf-8")  # fmt: skip
        clinic = Clinic(config, store_path, admin.fingerprint)
        people = clinic.people(store)
        ada = people.login(ADMIN, PASSWORDS[ADMIN])
        for name, role in ROLES.items():
            initial = f"Initial-{len(name)}-pw9x"
            people.add(ada, name, FULL_NAMES[name], role, initial)
            people.activate(name, initial, PASSWORDS[name])
        if approve:
            site = load_config(config)
            detail = {"path": site.source, "sha256": site.sha256, "presets": sorted(site.presets), "note": ""}
            people.signed(people.login(SUPERVISOR, PASSWORDS[SUPERVISOR]), "config-approve", detail)
    return clinic

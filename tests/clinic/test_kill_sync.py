"""`ionctl records sync` killed (SIGKILL) 20 times at random instants over a big backlog, started again each time,
then run to its end: nothing lost, nothing twice, judged on the rows of both sides."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from ionctl.records import Store
from tests.clinic.syncing import ROOT, assert_equal_sides, fill, ionctl, rows, set_up, site_file
from tests.pg import PostgresServer

KILLS = 20


def test_twenty_sigkills_of_the_sync_lose_nothing_and_duplicate_nothing(
    postgres: PostgresServer, clinic_db: str, tmp_path: Path
) -> None:
    clinic = set_up(postgres, clinic_db)
    store = tmp_path / "bench.sqlite3"
    fill(store, records=200, samples=400)
    site = site_file(tmp_path / "site.toml", store, clinic.bench)
    command = [sys.executable, "-m", "ionctl", "records", "sync", "--config", str(site), "--batch", "1", "--quiet"]
    chance = random.Random(17)
    mid_backlog = 0
    for _ in range(KILLS):
        sync = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        delay = chance.uniform(0.2, 0.7)
        time.sleep(delay)  # from before its first round to well into its rounds
        sync.send_signal(signal.SIGKILL)
        _, err = sync.communicate(timeout=30)
        assert sync.returncode in (-signal.SIGKILL, 0), err
        sent, _ = rows(clinic.admin)
        local = _head(store)
        print(f"killed after {delay:.2f} s: {sent} of {local} links in the clinic store")
        assert sent <= local
        mid_backlog += 0 < sent < local
        fill(store, records=3, samples=400)  # the bench goes on writing between syncs
    assert mid_backlog >= KILLS // 4  # kills landed with work half done (not all of them before any round)
    done = ionctl("records", "sync", "--config", str(site), "--batch", "50")
    assert done.returncode == 0, done.stderr
    here = assert_equal_sides(store, clinic.admin)  # every (gseq, hash), every record's samples; row counts exact
    assert len(here.telemetry) == 200 + 3 * KILLS


def _head(path: Path) -> int:
    with Store(path, create=False) as store:
        return store.chain_head()[0]

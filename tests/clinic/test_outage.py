"""The clinic server stopped (an immediate shutdown, as a crash) in the middle of a sync and in the middle of a
session: the sync says the clinic is unreachable and keeps what it committed; the session completes locally with
the outcome, dose and exit code it has without a clinic, in about the same time; after a restart the sync catches
up, and both sides are equal link by link and sample by sample."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ionctl.config.authority import initial_text
from ionctl.records import Store
from ionctl.records.clinic.sync import ClinicUnreachable, Pushed, connect, push
from tests.clinic.syncing import (
    ROOT,
    assert_equal_sides,
    clinic_side,
    fill,
    ionctl,
    local_side,
    set_up,
    site_file,
)
from tests.people import make_clinic
from tests.pg import PostgresServer
from tests.test_run import DEXAMETHASONE, TESS, simulator, true_dose_ma_min, wait_for_line, with_option, within_1pct

SHORT = with_option(DEXAMETHASONE, "--dose", "5")


@contextmanager
def restarted(postgres: PostgresServer) -> Iterator[None]:
    """Whatever the test does to the server, it runs again afterwards (the other tests share it)."""
    try:
        yield
    finally:
        if not postgres.running():
            postgres.start()


def test_a_server_stopped_in_the_middle_of_a_sync_loses_nothing_and_the_next_sync_catches_up(
    postgres: PostgresServer, clinic_db: str, tmp_path: Path
) -> None:
    clinic = set_up(postgres, clinic_db)
    store = tmp_path / "bench.sqlite3"
    fill(store, records=40, samples=300)
    go, stopped = threading.Event(), threading.Event()

    def stop_server() -> None:
        go.wait(30)
        postgres.stop("immediate")
        stopped.set()

    def progress(pushed: Pushed) -> None:
        if pushed.rounds == 2:
            go.set()  # the server is stopped from another thread while the rounds go on
        if go.is_set():
            time.sleep(0.02)  # rounds slower than the stop: it lands during the backlog, not after it

    stopper = threading.Thread(target=stop_server, daemon=True)
    stopper.start()
    with restarted(postgres):
        with Store(store, create=False) as bench, connect(clinic.bench) as db:
            with pytest.raises(ClinicUnreachable, match="went away during the sync"):
                push(bench.db, db, "bench-a", batch=4, progress=progress)
        stopper.join(30)
        assert stopped.is_set()
        postgres.start()
    here, kept = local_side(store), clinic_side(clinic.admin)
    assert 8 <= len(kept.links) < len(here.links)  # the committed rounds survived the crash, the rest is missing
    assert kept.links == here.links[: len(kept.links)]  # a prefix of the chain, nothing else
    assert all(kept.telemetry[rid] == here.telemetry[rid] for rid in kept.telemetry)  # a record's samples whole
    with Store(store, create=False) as bench, connect(clinic.bench) as db:
        caught_up = push(bench.db, db, "bench-a", batch=50)
    assert caught_up.links == len(here.links) - len(kept.links)
    assert_equal_sides(store, clinic.admin)


def _site_text(conninfo: str | None) -> str:
    clinic = f'\n[clinic]\nstore = "{conninfo}"\nbench = "bench-a"\ntimeout_s = 2\n' if conninfo else ""
    return initial_text() + clinic


def _run(device: str, folder: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    options = (
        "--db",
        str(folder / "records.sqlite3"),
        "--config",
        str(folder / "site.toml"),
        "--operator",
        "tess",
        "--password-stdin",
    )
    started = time.monotonic()
    done = ionctl("run", "--device", device, *SHORT, *options, "--yes", "--json", input=TESS)
    return done, time.monotonic() - started


def test_with_the_server_stopped_a_run_ends_as_it_does_without_a_clinic(
    postgres: PostgresServer, clinic_db: str, tmp_path: Path
) -> None:
    clinic = set_up(postgres, clinic_db)
    make_clinic(tmp_path / "alone", config_text=_site_text(None))
    make_clinic(tmp_path / "clinic", config_text=_site_text(clinic.bench))
    (tmp_path / "s1").mkdir()
    (tmp_path / "s2").mkdir()
    with simulator(tmp_path / "s1") as (device, _):
        alone, alone_s = _run(device, tmp_path / "alone")
    with restarted(postgres):
        postgres.stop("immediate")
        with simulator(tmp_path / "s2") as (device, trace):
            stopped, stopped_s = _run(device, tmp_path / "clinic")
    assert alone.returncode == stopped.returncode == 0, (alone.stderr, stopped.stderr)
    a, b = json.loads(alone.stdout), json.loads(stopped.stdout)
    assert a["outcome"] == b["outcome"] == "completed"
    assert within_1pct(b["dose_ma_min"], true_dose_ma_min(trace))
    assert stopped_s < alone_s + 3.0, (alone_s, stopped_s)
    # the sync is not the session's: nothing of it is said; the one mention of the clinic is that this patient's
    # courses at other benches could not be checked (none of its sessions waits on that)
    assert "sync" not in stopped.stderr
    assert [line for line in stopped.stderr.splitlines() if "clinic store" in line] == [
        line for line in stopped.stderr.splitlines() if "this bench's were checked" in line]


def test_a_server_stopped_in_the_middle_of_a_session_the_session_completes_and_sync_catches_up_after(
    postgres: PostgresServer, clinic_db: str, tmp_path: Path
) -> None:
    clinic = set_up(postgres, clinic_db)
    folder = tmp_path / "clinic"
    make_clinic(folder, config_text=_site_text(clinic.bench))
    db, site = folder / "records.sqlite3", folder / "site.toml"
    first = ionctl("records", "sync", "--db", str(db), "--config", str(site))  # the people's links: sent before
    assert first.returncode == 0, first.stderr
    with restarted(postgres), simulator(tmp_path) as (device, trace):
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ionctl",
                "run",
                "--device",
                device,
                *SHORT,
                "--db",
                str(db),
                "--config",
                str(site),
                "--operator",
                "tess",
                "--password-stdin",
                "--yes",
                "--json",
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdin is not None
        process.stdin.write(TESS)
        process.stdin.close()
        process.stdin = None
        wait_for_line(process, r"\] ramping_up +[1-9]")  # current flowing (this short dose never holds)
        postgres.stop("immediate")
        assert process.poll() is None  # stopped while the session runs
        stdout, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        result = json.loads(stdout)
        assert result["outcome"] == "completed"
        assert within_1pct(result["dose_ma_min"], true_dose_ma_min(trace))
        offline = ionctl("records", "sync", "--db", str(db), "--config", str(site))
        assert offline.returncode == 3 and "cannot be reached" in offline.stderr
        postgres.start()
    caught_up = ionctl("records", "sync", "--db", str(db), "--config", str(site))
    assert caught_up.returncode == 0, caught_up.stderr
    here = assert_equal_sides(db, clinic.admin)
    assert here.telemetry[result["record_id"]][0] == len(result["telemetry"]) > 10


def _wait_for(condition: Callable[[], bool], within_s: float = 20) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "not within the time given"
        time.sleep(0.1)


def test_watch_says_once_per_outage_that_the_clinic_is_unreachable_and_catches_up_after(
    postgres: PostgresServer, clinic_db: str, tmp_path: Path
) -> None:
    clinic = set_up(postgres, clinic_db)
    store = tmp_path / "bench.sqlite3"
    fill(store, records=3, samples=50)
    site = site_file(tmp_path / "site.toml", store, clinic.bench)
    log = tmp_path / "watch.err"
    with log.open("w") as err, restarted(postgres):
        watch = subprocess.Popen([sys.executable, "-m", "ionctl", "records", "sync", "--watch", "--interval", "0.2",
                                  "--config", str(site)], cwd=ROOT, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
        try:
            _wait_for(lambda: len(clinic_side(clinic.admin).links) == len(local_side(store).links))
            postgres.stop("immediate")
            fill(store, records=2, samples=50)  # the bench goes on while the clinic is down
            time.sleep(2.0)  # ten intervals of retrying
            postgres.start()
            _wait_for(lambda: len(clinic_side(clinic.admin).links) == len(local_side(store).links))
            watch.send_signal(signal.SIGTERM)
            assert watch.wait(timeout=10) == 0
        finally:
            if watch.poll() is None:
                watch.kill()
    said = log.read_text()
    assert said.count("clinic unreachable, retrying") == 1, said
    assert said.count("reachable again") == 1, said
    assert_equal_sides(store, clinic.admin)

"""`ionctl records sync` and `push` against a real PostgreSQL server: idempotent, a conflict reported and never an
overwrite, a tampered link never sent and a forged one refused by the server, the bench role refused UPDATE,
DELETE and TRUNCATE by the server itself (tried with psql), and a record that closes in `ionctl run` in the
clinic store seconds later."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from ionctl.records import Store
from ionctl.records.clinic.sync import LinkRefused, SyncConflict, connect, push
from tests.clinic.syncing import (
    BENCH_LOGIN,
    assert_equal_sides,
    clinic_side,
    fill,
    ionctl,
    local_side,
    rows,
    set_up,
    site_file,
)
from tests.pg import PostgresServer


def _push(path: Path, conninfo: str, bench: str = "bench-a", batch: int = 500) -> object:
    with Store(path, create=False) as store, connect(conninfo) as clinic:
        return push(store.db, clinic, bench, batch=batch)


def test_a_second_sync_sends_nothing_and_both_sides_are_equal(
    postgres: PostgresServer, clinic_db: str, tmp_path: Path
) -> None:
    clinic = set_up(postgres, clinic_db)
    store = tmp_path / "bench.sqlite3"
    fill(store, records=6, samples=150)
    site = site_file(tmp_path / "site.toml", store, clinic.bench)
    first = ionctl("records", "sync", "--config", str(site))
    assert first.returncode == 0, first.stderr
    here = assert_equal_sides(store, clinic.admin)
    assert f"sent {len(here.links)} links" in first.stdout and "6 closings with 900 telemetry samples" in first.stdout
    assert f"bench bench-a up to link {here.links[-1][0]}" in first.stdout
    again = ionctl("records", "sync", "--config", str(site))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("up to date:") and f"up to link {here.links[-1][0]}" in again.stdout
    assert_equal_sides(store, clinic.admin)


def test_a_backlog_in_small_rounds_is_the_same_as_in_one(
    postgres: PostgresServer, clinic_db: str, tmp_path: Path
) -> None:
    clinic = set_up(postgres, clinic_db)
    store = tmp_path / "bench.sqlite3"
    fill(store, records=5, samples=40)
    pushed = _push(store, clinic.bench, batch=3)
    assert pushed.rounds > 5  # type: ignore[attr-defined]
    assert_equal_sides(store, clinic.admin)
    assert _push(store, clinic.bench).links == 0  # type: ignore[attr-defined]


def test_a_bench_name_taken_by_another_store_is_refused_with_a_conflict_row(
    postgres: PostgresServer, clinic_db: str, tmp_path: Path
) -> None:
    clinic = set_up(postgres, clinic_db)
    a, b = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    fill(a, records=2, samples=10)
    fill(b, records=1, samples=10, patient="P-2")
    _push(a, clinic.bench)
    before = clinic_side(clinic.admin)
    done = ionctl("records", "sync", "--config", str(site_file(tmp_path / "b.toml", b, clinic.bench)))
    assert done.returncode == 4, done.stderr
    assert "bench 'bench-a' in the clinic store is another store" in done.stderr
    assert clinic_side(clinic.admin) == before
    with psycopg.connect(clinic.admin) as db:
        assert db.execute("SELECT bench, what FROM ionctl.conflicts").fetchall() == [("bench-a", "bench name taken")]


def test_different_content_under_a_number_the_clinic_holds_is_a_conflict_not_an_overwrite(
    postgres: PostgresServer, clinic_db: str, tmp_path: Path
) -> None:
    clinic = set_up(postgres, clinic_db)
    a, copy = tmp_path / "a.sqlite3", tmp_path / "copy.sqlite3"
    fill(a, records=2, samples=10)
    shutil.copy(a, copy)  # the same first links: the same bench as far as the clinic can tell
    fill(a, records=1, samples=10, patient="P-A")
    fill(copy, records=1, samples=12, patient="P-B")  # the same numbers, other content
    _push(a, clinic.bench)
    before = clinic_side(clinic.admin)
    with pytest.raises(SyncConflict, match="nothing overwritten"):
        _push(copy, clinic.bench)
    assert clinic_side(clinic.admin) == before == local_side(a)
    with psycopg.connect(clinic.admin) as db:
        found = db.execute("SELECT bench, gseq, what FROM ionctl.conflicts").fetchall()
    assert found == [("bench-a", before.links[-1][0], "different content under the same number")]
    # --watch stops at a conflict (exit 4) instead of retrying it every interval
    site = site_file(tmp_path / "copy.toml", copy, clinic.bench)
    started = time.monotonic()
    watched = ionctl("records", "sync", "--watch", "--interval", "0.1", "--config", str(site), timeout_s=30)
    assert watched.returncode == 4 and "nothing overwritten" in watched.stderr
    assert time.monotonic() - started < 15
    with psycopg.connect(clinic.admin) as db:
        assert db.execute("SELECT count(*) FROM ionctl.conflicts").fetchone() == (1,)  # the same conflict, once


def _without_triggers(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        db.execute(f'DROP TRIGGER "{name}"')
    return db


def test_a_link_tampered_in_the_local_file_is_not_sent(
    postgres: PostgresServer, clinic_db: str, tmp_path: Path
) -> None:
    clinic = set_up(postgres, clinic_db)
    store = tmp_path / "bench.sqlite3"
    fill(store, records=3, samples=10)
    _push(store, clinic.bench)
    sent = clinic_side(clinic.admin)
    fill(store, records=1, samples=10)
    db = _without_triggers(store)
    with db:
        db.execute("UPDATE events SET text = 'nothing happened' WHERE record_id = 4 AND seq = 1")
    db.close()
    with pytest.raises(LinkRefused, match="does not verify in this store; not sent"):
        _push(store, clinic.bench)
    assert clinic_side(clinic.admin) == sent  # the links before it were sent already; nothing after it
    done = ionctl("records", "sync", "--config", str(site_file(tmp_path / "site.toml", store, clinic.bench)))
    assert done.returncode == 4 and "does not verify" in done.stderr


def test_a_forged_link_inserted_by_the_bench_role_is_refused_by_the_server(
    postgres: PostgresServer, clinic_db: str, tmp_path: Path
) -> None:
    clinic = set_up(postgres, clinic_db)
    store = tmp_path / "bench.sqlite3"
    fill(store, records=2, samples=5)
    _push(store, clinic.bench)
    sent = clinic_side(clinic.admin)
    gseq = sent.links[-1][0] + 1
    content = json.dumps(
        {
            "action": "note",
            "actor": "mallory",
            "course_id": None,
            "detail": "{}",
            "gseq": gseq,
            "record_id": None,
            "seq": 99,
            "utc": "x",
        },
        separators=(",", ":"),
        sort_keys=True,
    )
    insert = (
        f"INSERT INTO ionctl.links (bench, gseq, kind, content, hash) VALUES ('bench-a', {gseq}, 'audit', "
        f"'{content}', '{'ab' * 32}')"
    )
    done = _psql(postgres, clinic.dbname, insert)
    assert done.returncode != 0 and "does not verify" in done.stderr, done.stderr
    assert clinic_side(clinic.admin) == sent


def _psql(postgres: PostgresServer, dbname: str, statement: str) -> subprocess.CompletedProcess[str]:
    """`statement` through psql as the bench login (the server trusts its socket), stopping at an error."""
    return subprocess.run(
        [
            str(postgres.bin / "psql"),
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(postgres.socket_dir),
            "-p",
            "5432",
            "-U",
            BENCH_LOGIN,
            "-d",
            dbname,
            "-c",
            statement,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ionctl.links SET content = content WHERE gseq = 1",
        "DELETE FROM ionctl.links WHERE gseq = 1",
        "TRUNCATE ionctl.links",
        "UPDATE ionctl.telemetry SET line = line",
        "DELETE FROM ionctl.telemetry",
        "TRUNCATE ionctl.telemetry, ionctl.conflicts",
    ],
)
def test_the_bench_role_gets_permission_denied_from_psql(
    postgres: PostgresServer, clinic_db: str, tmp_path: Path, statement: str
) -> None:
    clinic = set_up(postgres, clinic_db)
    store = tmp_path / "bench.sqlite3"
    fill(store, records=2, samples=5)
    _push(store, clinic.bench)
    before, counts = clinic_side(clinic.admin), rows(clinic.admin)
    done = _psql(postgres, clinic.dbname, statement)
    assert done.returncode == 1, (done.returncode, done.stderr)
    table = statement.split("ionctl.")[1].split()[0].rstrip(",")
    assert f"ERROR:  permission denied for table {table}" in done.stderr, done.stderr
    assert clinic_side(clinic.admin) == before and rows(clinic.admin) == counts


def test_without_a_clinic_store_sync_says_how_to_name_one(tmp_path: Path) -> None:
    store = tmp_path / "bench.sqlite3"
    fill(store, records=1, samples=2)
    site = tmp_path / "site.toml"
    site.write_text(f'[records]\nstore = "{store}"\n', encoding="utf-8")
    done = ionctl("records", "sync", "--config", str(site))
    assert done.returncode == 2
    assert "[clinic]" in done.stderr and "bench = " in done.stderr and "store = " in done.stderr


def test_a_record_closed_by_ionctl_run_is_in_the_clinic_store_seconds_later(
    postgres: PostgresServer, clinic_db: str, tmp_path: Path
) -> None:
    from ionctl.config.authority import initial_text
    from tests.people import make_clinic
    from tests.test_run import DEXAMETHASONE, TESS, simulator, with_option

    clinic = set_up(postgres, clinic_db)
    folder = tmp_path / "bench"
    make_clinic(folder, config_text=initial_text() + f'\n[clinic]\nstore = "{clinic.bench}"\nbench = "bench-a"\n')
    db = folder / "records.sqlite3"
    with simulator(tmp_path) as (device, _):
        done = ionctl(
            "run",
            "--device",
            device,
            *with_option(DEXAMETHASONE, "--dose", "5"),
            "--db",
            str(db),
            "--config",
            str(folder / "site.toml"),
            "--operator",
            "tess",
            "--password-stdin",
            "--yes",
            "--json",
            input=TESS,
        )
    closed = time.monotonic()
    assert done.returncode == 0, done.stderr
    record_id = json.loads(done.stdout)["record_id"]
    while time.monotonic() - closed < 10:
        with psycopg.connect(clinic.admin) as pg:
            found = pg.execute(
                "SELECT count(*) FROM ionctl.links WHERE bench = 'bench-a' AND kind = 'close' "
                "AND (doc->>'id')::bigint = %s",
                (record_id,),
            ).fetchone()
        if found == (1,):
            break
        time.sleep(0.1)
    assert found == (1,), "the closed record did not reach the clinic store within 10 s"
    assert time.monotonic() - closed < 5
    # one round (batch 500) sent the whole chain as the session left it, its sign-off included
    assert_equal_sides(db, clinic.admin)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP])
def test_watch_ends_cleanly_on_a_signal(postgres: PostgresServer, clinic_db: str, tmp_path: Path, signum: int) -> None:
    clinic = set_up(postgres, clinic_db)
    store = tmp_path / "bench.sqlite3"
    fill(store, records=1, samples=5)
    site = site_file(tmp_path / "site.toml", store, clinic.bench)
    watch = subprocess.Popen(
        [sys.executable, "-m", "ionctl", "records", "sync", "--watch", "--config", str(site)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while len(clinic_side(clinic.admin).links) < len(local_side(store).links):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    watch.send_signal(signum)
    out, err = watch.communicate(timeout=10)
    assert watch.returncode == 0, err
    assert out.startswith("sent 5 links") and err == ""


def test_a_sync_that_cannot_be_started_is_a_note_never_an_exception(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ionctl.records.clinic import spawn

    monkeypatch.setattr(spawn.sys, "executable", str(tmp_path / "no-such-python"))
    monkeypatch.setattr(spawn, "log_path", lambda: tmp_path / "logs" / "sync.log")
    note = spawn.start_sync(tmp_path / "bench.sqlite3", tmp_path / "site.toml")
    assert note is not None and "could not be started" in note and "ionctl records sync" in note


def test_the_detached_sync_runs_in_a_session_of_its_own_with_its_messages_in_the_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ionctl.records.clinic import spawn

    log = tmp_path / "logs" / "sync.log"
    monkeypatch.setattr(spawn, "log_path", lambda: log)
    started: list[subprocess.Popen[bytes]] = []
    given: dict[str, object] = {}
    real = subprocess.Popen

    def popen(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        given.update(kwargs)
        started.append(real(*args, **kwargs))  # type: ignore[call-overload]
        return started[-1]

    monkeypatch.setattr(spawn.subprocess, "Popen", popen)
    assert spawn.start_sync(tmp_path / "no-store.sqlite3", tmp_path / "no-site.toml") is None
    (child,) = started
    assert child.wait(timeout=30) != 0  # no such site file: said in the log, nobody waited for it
    assert given["start_new_session"] is True  # a signal to the session's process group never reaches it
    assert given["stdin"] == given["stdout"] == subprocess.DEVNULL
    assert "no-site.toml" in log.read_text()
    assert child.args[-6:] == [
        "sync",
        "--quiet",
        "--db",
        str((tmp_path / "no-store.sqlite3").resolve()),
        "--config",
        str(tmp_path / "no-site.toml"),
    ]

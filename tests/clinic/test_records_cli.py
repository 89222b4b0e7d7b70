"""`ionctl records list|show|export|verify` with `[clinic]` in the site file: two benches' chains in the clinic
store and a record of this bench not sent yet, read through the command line as a clinic reads them."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from ionctl.records import Store
from ionctl.records.export import to_json
from tests.clinic.benches import add_record, bench_store, clinic_store, push_store, site_file
from tests.pg import PostgresServer


@dataclass
class Site:
    config: Path
    store_a: Path
    store_b: Path
    conninfo: str


@pytest.fixture
def site(tmp_path: Path, clinic_db: str) -> Site:
    """bench-a (this bench: records 1 and 2 sent, 3 not yet) and bench-b (record 1 sent), one site file."""
    clinic_a, store_a = bench_store(tmp_path / "a", "p-100", records=2)
    clinic_b, store_b = bench_store(tmp_path / "b", "p-200", records=1)
    clinic_store(clinic_db)
    push_store(store_a, clinic_db, "bench-a")
    push_store(store_b, clinic_db, "bench-b")
    with Store(store_a) as store:
        add_record(store, clinic_a, "p-300")
    config = site_file(tmp_path / "site.toml", store=store_a, conninfo=clinic_db, bench="bench-a",
                       administrators=[clinic_a.administrator, clinic_b.administrator])  # fmt: skip
    return Site(config, store_a, store_b, clinic_db)


def ionctl(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ionctl", "records", *args, "--config", str(site.config)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def names(listing: str) -> list[str]:
    return [line.split("\t")[0] for line in listing.splitlines()[2:]]


def test_list_reads_every_bench_in_the_clinic_and_this_benchs_unsent_record(site: Site) -> None:
    done = ionctl(site, "list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"read: clinic store {site.conninfo} (2 benches) + bench-a's 1 record not yet sent " \
                       f"({site.store_a})"  # fmt: skip
    assert lines[1].startswith("record\tcreated")
    assert names(done.stdout) == ["bench-a/1", "bench-a/2", "bench-b/1", "bench-a/3"]
    assert [line.endswith("not yet in the clinic store") for line in lines[2:]] == [False, False, False, True]
    patient = ionctl(site, "list", "--patient", "p-200")
    assert names(patient.stdout) == ["bench-b/1"]
    as_json = ionctl(site, "list", "--json")
    assert as_json.stderr.startswith("read: clinic store") and "not yet sent" in as_json.stderr
    rows = json.loads(as_json.stdout)
    assert [(r["name"], r["read_from"]) for r in rows] == [("bench-a/1", "clinic"), ("bench-a/2", "clinic"),
                                                           ("bench-b/1", "clinic"), ("bench-a/3", "local")]  # fmt: skip


def test_local_reads_this_benchs_store_only(site: Site) -> None:
    done = ionctl(site, "list", "--local")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"read: this bench's store only (--local): {site.store_a}"
    assert [line.split("\t")[0] for line in done.stdout.splitlines()[2:]] == ["1", "2", "3"]
    other = ionctl(site, "show", "bench-b/1", "--local")
    assert other.returncode == 1 and "another bench's" in other.stderr


def test_show_and_export_read_another_benchs_record_from_the_clinic(site: Site) -> None:
    shown = ionctl(site, "show", "bench-b/1")
    assert shown.returncode == 0, shown.stderr
    first, *rest = shown.stdout.splitlines()
    assert first.startswith(f"read: clinic store {site.conninfo}: bench-b's chain (")
    assert "  Patient: p-200" in rest and "Telemetry: 40 samples (ionctl records export bench-b/1 --format csv)" in rest
    assert any("performed" in line for line in rest) and any("reviewed" in line for line in rest)
    exported = ionctl(site, "export", "bench-b/1", "--format", "json")
    assert exported.returncode == 0, exported.stderr
    assert exported.stderr.startswith("read: clinic store")
    with Store(site.store_b, create=False) as b:
        assert json.loads(exported.stdout) == json.loads(to_json(b.get(1)))


def test_this_benchs_record_is_read_where_it_is_complete(site: Site) -> None:
    sent = ionctl(site, "show", "bench-a/1")
    assert sent.stdout.splitlines()[0].startswith("read: clinic store") and "Patient: p-100" in sent.stdout
    unsent = ionctl(site, "show", "3")
    assert unsent.returncode == 0, unsent.stderr
    assert unsent.stdout.splitlines()[0] == (f"read: this bench's store {site.store_a} (record bench-a/3 is not yet "
                                             f"all in the clinic store {site.conninfo})")  # fmt: skip
    assert "Patient: p-300" in unsent.stdout
    missing = ionctl(site, "show", "bench-b/7")
    assert missing.returncode == 1 and "no record bench-b/7 in the clinic store" in missing.stderr


def test_verify_checks_this_bench_and_every_benchs_chain_in_the_clinic(site: Site) -> None:
    done = ionctl(site, "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0].startswith(f"read: this bench's store {site.store_a} + clinic store")
    assert "ok: bench bench-a's chain in the clinic store verifies" in done.stdout
    assert "ok: bench bench-b's chain in the clinic store verifies" in done.stdout
    with psycopg.connect(site.conninfo, autocommit=True) as db:  # as the superuser, the triggers off
        (gseq,) = db.execute("SELECT min(gseq) FROM ionctl.links WHERE bench = 'bench-b' AND kind = 'event'"
                             ).fetchone() or (None,)  # fmt: skip
        db.execute("ALTER TABLE ionctl.links DISABLE TRIGGER ALL")
        db.execute("UPDATE ionctl.links SET content = replace(content, 'delivering', 'paused') "
                   "WHERE bench = 'bench-b' AND gseq = %s", (gseq,))  # fmt: skip
        db.execute("ALTER TABLE ionctl.links ENABLE TRIGGER ALL")
    broken = ionctl(site, "verify")
    assert broken.returncode == 1
    assert f"BROKEN: bench bench-b: chain: link {gseq}: event" in broken.stdout, broken.stdout
    assert "ok: bench bench-a's chain in the clinic store verifies" in broken.stdout


def test_a_clinic_copy_that_is_not_this_benchs_chain_fails_verify(site: Site, tmp_path: Path) -> None:
    """bench-a's name in the clinic store holding another store's chain: not a prefix of this one."""
    other = site_file(tmp_path / "other.toml", store=site.store_b, conninfo=site.conninfo, bench="bench-a",
                      administrators=[])  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "ionctl", "records", "verify", "--config", str(other)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1
    assert "BROKEN: bench bench-a: link 1: the clinic store holds" in done.stdout


def test_the_clinic_unreachable_falls_back_to_this_benchs_store(site: Site, postgres: PostgresServer) -> None:
    postgres.stop("immediate")
    try:
        listed = ionctl(site, "list")
        shown = ionctl(site, "show", "1")
        other = ionctl(site, "show", "bench-b/1")
        verified = ionctl(site, "verify")
    finally:
        postgres.start()
    assert listed.returncode == 0
    assert "the clinic store cannot be reached" in listed.stderr and "reading this bench's store only" in listed.stderr
    assert listed.stdout.splitlines()[0].startswith("read: this bench's store only (the clinic store")
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()[2:]] == ["1", "2", "3"]
    assert shown.returncode == 0 and "Patient: p-100" in shown.stdout
    assert other.returncode == 1 and "in the clinic store only" in other.stderr
    assert verified.returncode == 1 and "cannot be reached" in verified.stderr
    assert f"ok: the chain of {site.store_a} verifies" in verified.stdout


def test_a_clinic_database_without_the_clinic_schema_is_named(tmp_path: Path, clinic_db: str) -> None:
    _clinic, store = bench_store(tmp_path / "a", "p-100", records=1)
    config = site_file(tmp_path / "site.toml", store=store, conninfo=clinic_db, bench="bench-a", administrators=[])
    done = subprocess.run([sys.executable, "-m", "ionctl", "records", "list", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1
    assert "cannot be read" in done.stderr and "ionctl clinic init" in done.stderr
    assert "Traceback" not in done.stderr

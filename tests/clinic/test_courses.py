"""Course rules clinic-wide: two benches (two simulators, two local stores, one clinic store on a real PostgreSQL
server) run one course's sessions alternately; the rules at each bench see the other's sessions; the clinic
store lists both; both chains verify. With the clinic server stopped (immediate shutdown), a course session is
refused (`offline_courses = "refuse"`) or needs a supervisor's override noted as unchecked (`"override"`)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ionctl.cli import main as cli
from ionctl.config.authority import initial_text
from ionctl.records import Store
from ionctl.records.chain import GENESIS, link_hash
from ionctl.records.clinic.courses import course_records, parse_name
from ionctl.records.clinic.replay import replay
from ionctl.records.clinic.schema import SCHEMA, initialise
from ionctl.records.clinic.sync import connect, push
from ionctl.treatment.prepare import UNCHECKED
from tests.clinic.syncing import bound_to
from tests.people import PASSWORDS, SUPERVISOR, TECHNICIAN, Clinic, make_clinic
from tests.pg import PostgresServer
from tests.sim.endpoints import running_sim

DAY = timedelta(days=1)
TESS, SAM = PASSWORDS[TECHNICIAN] + "\n", PASSWORDS[SUPERVISOR] + "\n"
PATIENT = "P-CLINIC"
#: A short session well below the simulated skin's compliance (1 mA at ~20 kΩ), so that it completes as prescribed.
#: 1 mA, 0.3 mA·min, the simulator at 10x: the dose-overshoot monitor allows 2 % (0.006 mA·min), about 36 ms of the
#: host's time at 1 mA, which a loaded machine keeps to (at 20x it had 18 ms)
SESSION = ("--current", "1", "--dose", "0.3", "--ramp-up", "5", "--ramp-down", "5", "--yes")
OVERRIDE = ("--supervisor-override", "clinic server down, patient here", "--supervisor", SUPERVISOR)


def bench(folder: Path, name: str, conninfo: str, offline: str = "refuse") -> Clinic:
    """A bench: its own site file (its store, the clinic store, its name) approved, and its own store of people."""
    store = folder / "records.sqlite3"
    text = (f'{initial_text()}\n[records]\nstore = "{store}"\n\n[clinic]\nstore = "{conninfo}"\nbench = "{name}"\n'
            f'offline_courses = "{offline}"\ntimeout_s = 2\n')  # fmt: skip
    return make_clinic(folder, config_text=text)


def at(monkeypatch: pytest.MonkeyPatch, later: timedelta) -> None:
    """The course rules' clock (`ionctl.core.courses.clock`) `later` than now: a later appointment."""
    monkeypatch.setattr("ionctl.core.courses.clock", lambda: datetime.now(UTC) + later)


def ionctl(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str,
           stdin: str = TESS) -> tuple[int, str, str]:  # fmt: skip
    """`ionctl ARGS` in this process (so the clock above applies): exit code, stdout, stderr."""
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], where: Clinic, course: str,
        device: Path, *extra: str, stdin: str = TESS) -> tuple[int, str]:  # fmt: skip
    code, out, err = ionctl(monkeypatch, capsys, "run", "--course", course,
                            "--site", "left forearm", "--device", str(device), *SESSION,
                            "--config", str(where.config), "--operator", TECHNICIAN, "--password-stdin", "--json",
                            *extra, stdin=stdin)  # fmt: skip
    return code, err


def skin_checked(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], where: Clinic) -> None:
    """The skin check after the bench's last session (the patient's next session there waits for it)."""
    last = max(r["id"] for r in records_of(where) if r["energised"])
    code, _, err = ionctl(monkeypatch, capsys, "records", "addendum", str(last), "--config", str(where.config), "--as",
                          TECHNICIAN, "--password-stdin", "--skin-check", "erythema=no", "blistering=no", "pain=no",
                          "itching=no", "other=no")  # fmt: skip
    assert code == 0, err


def sync(where: Clinic, name: str, conninfo: str) -> None:
    with Store(where.store) as store, connect(conninfo) as clinic:
        push(store.db, clinic, name)


def records_of(where: Clinic) -> list[dict[str, Any]]:
    with Store(where.store) as store:
        return [dict(r) for r in store.list_records()]


def replayed(conninfo: str, name: str) -> int:
    """Walk the bench's links in the clinic store from the genesis hash, recomputing each: how many verified."""
    previous, n = GENESIS, 0
    with psycopg.connect(conninfo) as db:
        for gseq, kind, content, stored in db.execute(
            f"SELECT gseq, kind, content, hash FROM {SCHEMA}.links WHERE bench = %s ORDER BY gseq", (name,)
        ):
            assert gseq == n + 1 and link_hash(previous, kind, json.loads(content)) == stored, (name, gseq)
            previous, n = stored, n + 1
    return n


@pytest.fixture
def clinic(clinic_db: str) -> str:
    initialise(clinic_db, benches=bound_to("postgres"))
    return clinic_db


def test_two_benches_run_one_course_alternately_and_its_rules_see_both(
    tmp_path: Path, clinic: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = bench(tmp_path / "a", "bench-a", clinic), bench(tmp_path / "b", "bench-b", clinic)
    code, out, err = ionctl(monkeypatch, capsys, "course", "start", "--patient", PATIENT, "--preset",
                            "dexamethasone", "--sessions", "3", "--min-interval-days", "3", "--electrode-area", "10",
                            "--config", str(a.config), "--operator", TECHNICIAN, "--password-stdin")  # fmt: skip
    assert code == 0, err
    assert "course bench-a/1: patient P-CLINIC" in out and "--course bench-a/1" in out
    sync(a, "bench-a", clinic)  # the course itself is in the clinic store
    link_a, link_b = tmp_path / "ionto-a", tmp_path / "ionto-b"
    with running_sim("--serial-link", str(link_a), "--time-scale", "10"), \
            running_sim("--serial-link", str(link_b), "--time-scale", "10"):  # fmt: skip
        # Monday at bench A: session 1, sent to the clinic store.
        assert run(monkeypatch, capsys, a, "1", link_a)[0] == 0
        skin_checked(monkeypatch, capsys, a)
        sync(a, "bench-a", clinic)
        # The same day at bench B: refused by the interval, seen from bench A's session.
        code, err = run(monkeypatch, capsys, b, "bench-a/1", link_b)
        assert code == 2, err
        assert "course bench-a/1: the minimum interval is 3 days" in err and "--supervisor-override" in err
        # Four days later at bench B: allowed; its record names the course clinic-wide.
        at(monkeypatch, 4 * DAY)
        code, err = run(monkeypatch, capsys, b, "bench-a/1", link_b)
        assert code == 0, err
        skin_checked(monkeypatch, capsys, b)
        sync(b, "bench-b", clinic)
        # Eight days later at bench A: the rules see B's session (2 done), the third runs.
        at(monkeypatch, 8 * DAY)
        code, err = run(monkeypatch, capsys, a, "1", link_a)
        assert code == 0, err
        skin_checked(monkeypatch, capsys, a)
        sync(a, "bench-a", clinic)
        # Twelve days later at bench B: the course's three sessions are done across the benches.
        at(monkeypatch, 12 * DAY)
        code, err = run(monkeypatch, capsys, b, "bench-a/1", link_b)
        assert code == 2, err
        assert "course bench-a/1: all 3 planned sessions are done" in err
        sync(b, "bench-b", clinic)

    # Ground truth at each bench: what ran, and how each record names the course.
    at_a, at_b = records_of(a), records_of(b)
    assert [(r["outcome"], r["energised"], r["course_id"], r["course_ref"]) for r in at_a] == [
        ("completed", 1, 1, None), ("completed", 1, 1, None)]  # fmt: skip
    assert [(r["outcome"], r["energised"], r["course_id"], r["course_ref"]) for r in at_b] == [
        ("refused", 0, None, "bench-a/1"),
        ("completed", 1, None, "bench-a/1"),
        ("refused", 0, None, "bench-a/1"),
    ]
    # The clinic store lists the course's records of both benches, as each bench holds them.
    with connect(clinic) as db:
        listed = course_records(db, "bench-a", 1)
    assert [(r["bench"], r["id"], r["outcome"]) for r in listed] == [
        ("bench-a", 1, "completed"), ("bench-a", 2, "completed"),
        ("bench-b", 1, "refused"), ("bench-b", 2, "completed"), ("bench-b", 3, "refused")]  # fmt: skip
    mine = {("bench-a", r["id"]): r["open_hash"] for r in at_a} | {("bench-b", r["id"]): r["open_hash"] for r in at_b}
    assert {(r["bench"], r["id"]): r["open_hash"] for r in listed} == mine
    # Verify on both sides: each bench's chain, and each bench's chain replayed from the clinic store.
    for where, name in ((a, "bench-a"), (b, "bench-b")):
        with Store(where.store) as store:
            assert store.verify() is None
            assert replayed(clinic, name) == store.chain_head()[0]
            # and replayed into a store of its own (bench B's openings name bench A's course by course_ref): the
            # same chain, every record's content equal
            with connect(clinic) as db:
                copy = replay(db, name, tmp_path / f"replayed-{name}.sqlite3")
            assert copy.broken is None and copy.store.verify() is None
            assert copy.store.link_hashes() == store.link_hashes()
            assert all(copy.store.record_digest(r["id"]) == store.record_digest(r["id"]) for r in store.list_records())
            copy.store.close()
    # `course show` at bench B: the sessions of both benches, each named BENCH/ID.
    code, out, err = ionctl(monkeypatch, capsys, "course", "show", "bench-a/1", "--config", str(b.config))
    assert code == 0, err
    assert out.startswith("course bench-a/1 (read the clinic store") and "sessions at bench-a, bench-b" in out
    for name in ("bench-a/1", "bench-b/2", "bench-a/2"):
        assert name in out
    code, out, err = ionctl(monkeypatch, capsys, "course", "show", "bench-a/1", "--json", "--config", str(b.config))
    shown = json.loads(out)
    assert (shown["status"]["done"], shown["status"]["left"]) == (3, 0)
    assert [s["record"] for s in shown["sessions"] if s["counts"]] == ["bench-a/1", "bench-b/2", "bench-a/2"]


@pytest.fixture
def stopped(postgres: PostgresServer) -> Iterator[PostgresServer]:
    """The clinic server stopped as by a crash (immediate shutdown) for the test, started again after it."""
    postgres.stop("immediate")
    try:
        yield postgres
    finally:
        postgres.start()


def start_course(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], where: Clinic) -> None:
    code, _, err = ionctl(monkeypatch, capsys, "course", "start", "--patient", PATIENT, "--preset", "dexamethasone",
                          "--sessions", "3", "--electrode-area", "10", "--config", str(where.config),
                          "--operator", TECHNICIAN, "--password-stdin")  # fmt: skip
    assert code == 0, err


def test_with_the_clinic_unreachable_a_course_session_is_refused_or_needs_a_noted_override(
    tmp_path: Path, clinic: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    refuse = bench(tmp_path / "r", "bench-r", clinic, "refuse")
    override = bench(tmp_path / "o", "bench-o", clinic, "override")
    for where in (refuse, override):
        start_course(monkeypatch, capsys, where)
    sync(refuse, "bench-r", clinic)
    request.getfixturevalue("stopped")
    nowhere = tmp_path / "no-such-port"  # a device that is never opened: exit 2, not 5
    # refuse: refused, naming the setting that would allow an override, even with a supervisor at hand.
    for extra, stdin in (((), TESS), (OVERRIDE, TESS + SAM)):
        code, err = run(monkeypatch, capsys, refuse, "1", nowhere, *extra, stdin=stdin)
        assert code == 2, err
        assert "course bench-r/1: the clinic store cannot be reached" in err
        assert 'offline_courses = "override"' in err and "--supervisor-override REASON" not in err
    assert [(r["outcome"], r["energised"], r["course_id"]) for r in records_of(refuse)] == [("refused", 0, 1)] * 2
    # Another bench's course cannot even be read: refused, nothing recorded.
    code, err = run(monkeypatch, capsys, override, "bench-r/1", nowhere, *OVERRIDE, stdin=TESS + SAM)
    assert code == 2 and "course bench-r/1: the clinic store cannot be reached" in err, err
    assert records_of(override) == []
    # override: refused without a supervisor; with one, the session runs and the audit trail says why.
    code, err = run(monkeypatch, capsys, override, "1", nowhere)
    assert code == 2 and "the clinic store cannot be reached" in err and "--supervisor-override" in err, err
    link = tmp_path / "ionto"
    with running_sim("--serial-link", str(link), "--time-scale", "10"):
        code, err = run(monkeypatch, capsys, override, "1", link, *OVERRIDE, stdin=TESS + SAM)
    assert code == 0, err
    with Store(override.store) as store:
        ran = [r for r in store.list_records() if r["energised"]]
        assert [(r["outcome"], r["course_id"]) for r in ran] == [("completed", 1)]
        (entry,) = store.audit(action="course-override", course_id=1)
        assert entry["actor"] == SUPERVISOR and entry["record_id"] == ran[0]["id"]
        assert entry["detail"]["clinic"] == UNCHECKED and entry["detail"]["signature"]["signer"] == SUPERVISOR
        assert entry["detail"]["rule"].startswith("course bench-o/1: the clinic store cannot be reached")
        assert store.verify() is None


def test_course_names() -> None:
    assert parse_name("3") == (None, 3) and parse_name("bench-a/12") == ("bench-a", 12)
    for bad in ("0", "bench-a/", "Bench/3", "a/b/3", "bench-a/0"):
        with pytest.raises(ValueError):
            parse_name(bad)

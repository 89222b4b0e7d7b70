"""`ionctl records verify` proves authorship and detects truncation, tested by making each attack happen on the
SQLite file itself: an approval written in with the chain recomputed, a technician's own signature on an
approval, a record's sign-off copied onto another record, and the newest two records deleted (triggers dropped)
with the chain still valid, caught by the anchor's signed checkpoints and by a hash printed on a chart page."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ionctl.cli import main as cli
from ionctl.config.anchor import anchor_file, read_checkpoints, write_checkpoint
from ionctl.config.people import PERFORMED, Identity, subject_of
from ionctl.config.site import load_config
from ionctl.config.verification import verify_store
from ionctl.records import Store
from ionctl.records.chain import (
    AUDIT_FIELDS,
    COURSE_FIELDS,
    EVENT_FIELDS,
    GENESIS,
    canonical,
    closing,
    link_hash,
    opening,
)
from tests.people import SUPERVISOR, TECHNICIAN, Clinic, make_clinic

PRESCRIPTION = {"drug": "dexamethasone", "electrode_area_cm2": 10.0, "current_ma": 4.0, "planned_dose_ma_min": 40.0}
LIMITS = {"max_current_ma": 4.0}


# -- what an attacker with the file does ---------------------------------------------------------------------


def drop_triggers(db: sqlite3.Connection) -> None:
    """What anyone with write access to the file can do first (`ionctl.records.schema` makes them)."""
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        db.execute(f"DROP TRIGGER {name}")


def rehash(db: sqlite3.Connection) -> None:
    """Recompute every link's stored hash in chain order (`ionctl.records.chain`), as a forger who knows the
    format would after editing the file: the chain then verifies on its own."""
    links: list[tuple[int, str, Any]] = []
    for row in db.execute("SELECT id, open_gseq, close_gseq FROM records"):
        links.append((row[1], "open", row[0]))
        if row[2] is not None:
            links.append((row[2], "close", row[0]))
    links += [(row[0], "event", (row[1], row[2])) for row in db.execute("SELECT gseq, record_id, seq FROM events")]
    links += [(row[0], "audit", row[1]) for row in db.execute("SELECT gseq, seq FROM audit")]
    links += [(row[0], "course", row[1]) for row in db.execute("SELECT gseq, id FROM courses")]
    db.row_factory = sqlite3.Row
    previous = GENESIS
    for _gseq, kind, key in sorted(links, key=lambda link: link[0]):
        if kind in ("open", "close"):
            r = dict(db.execute("SELECT * FROM records WHERE id = ?", (key,)).fetchone())
            content, column = (opening(r), "open_hash") if kind == "open" else (closing(r), "chain_hash")
            previous = link_hash(previous, kind, content)
            db.execute(f"UPDATE records SET {column} = ? WHERE id = ?", (previous, key))
        else:
            table, fields, where = {
                "event": ("events", EVENT_FIELDS, "record_id = ? AND seq = ?"),
                "audit": ("audit", AUDIT_FIELDS, "seq = ?"),
                "course": ("courses", COURSE_FIELDS, "id = ?"),
            }[kind]
            params = key if isinstance(key, tuple) else (key,)
            row = dict(db.execute(f"SELECT * FROM {table} WHERE {where}", params).fetchone())
            previous = link_hash(previous, kind, {k: row[k] for k in fields})
            db.execute(f"UPDATE {table} SET chain_hash = ? WHERE {where}", (previous, *params))
    db.row_factory = None


def insert_audit(path: Path, action: str, actor: str, detail: dict[str, Any], *, at: int | None = None,
                 record_id: int | None = None, utc: str = "2026-03-01T09:00:00.000+00:00") -> int:  # fmt: skip
    """Write an audit entry straight into the file at link `at` (default: the end), move the later links on
    by one and recompute the chain; the new entry's link (gseq)."""
    db = sqlite3.connect(path)
    drop_triggers(db)
    (last,) = db.execute(
        "SELECT max(g) FROM (SELECT max(open_gseq) g FROM records UNION SELECT max(close_gseq) FROM records "
        "UNION SELECT max(gseq) FROM events UNION SELECT max(gseq) FROM audit UNION SELECT max(gseq) FROM courses)"
    ).fetchone()
    gseq = last + 1 if at is None else at
    if at is not None:  # make room: every later link and audit number moves on by one
        (seq,) = db.execute("SELECT min(seq) FROM audit WHERE gseq >= ?", (at,)).fetchone()
        db.execute("UPDATE audit SET seq = -(seq + 1) WHERE gseq >= ?", (at,))  # negated first: they are unique
        db.execute("UPDATE audit SET seq = -seq WHERE seq < 0")
        for table, column in (("records", "open_gseq"), ("records", "close_gseq"), ("events", "gseq"),
                              ("audit", "gseq"), ("courses", "gseq")):  # fmt: skip
            db.execute(f"UPDATE {table} SET {column} = -({column} + 1) WHERE {column} >= ?", (at,))
            db.execute(f"UPDATE {table} SET {column} = -{column} WHERE {column} < 0")
    else:
        (seq,) = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM audit").fetchone()
    db.execute(f"INSERT INTO audit ({', '.join(AUDIT_FIELDS)}, chain_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '')",
               (seq, utc, actor, action, record_id, None, canonical(detail), gseq))  # fmt: skip
    rehash(db)
    db.commit()
    db.close()
    return int(gseq)


# -- a clinic with records ------------------------------------------------------------------------------------


@dataclass
class Site:
    clinic: Clinic
    anchored: Path  # the clinic's site file with `[accounts] anchor` set
    anchor: Path  # the anchor directory

    def verify(self, *, anchored: bool = True, anchor_hash: str | None = None) -> Any:
        with Store(self.clinic.store) as store:
            return verify_store(store, load_config(self.anchored if anchored else self.clinic.config),
                                anchor_hash=anchor_hash)  # fmt: skip


def session(store: Store, tess: Identity, clinic: Clinic, anchor: Path | None = None, *, sign: bool = True) -> int:
    """A session's record as `ionctl run` leaves it: opened and closed with the operator's account name, signed
    by them as performed, and the chain head checkpointed in the `anchor` directory (if given)."""
    record_id = store.open_record(patient="P-1", operator=tess.name, prescription=PRESCRIPTION, limits=LIMITS,
                                  limits_sha256="ab" * 32)  # fmt: skip
    writer = store.session_writer(record_id)
    writer.event("state", "delivering: start", device_t_s=0.0)
    writer.sample((0.0, 4.0, 4.0, 12.5, 3125.0, 0.0, 0.0, 0, "delivering"))
    writer.close({"outcome": "completed", "dose_ma_min": 1.0, "energised": True})
    if sign:
        detail = {"meaning": PERFORMED, "record_sha256": store.record_digest(record_id)}
        clinic.people(store).signed(tess, "record-sign", detail, record_id=record_id)
    if anchor is not None:
        write_checkpoint(anchor, store.path, store.chain_head(), tess, "2026-03-01T10:00:00.000+00:00")
    return record_id


@pytest.fixture
def site(tmp_path: Path) -> Site:
    clinic = make_clinic(tmp_path / "clinic")
    anchor = tmp_path / "anchor"
    anchor.mkdir()
    anchored = clinic.config.with_name("anchored.toml")
    text = clinic.config.read_text(encoding="utf-8").replace("[accounts]\n", f'[accounts]\nanchor = "{anchor}"\n')
    anchored.write_text(text, encoding="utf-8")
    return Site(clinic, anchored, anchor)


@pytest.fixture
def records(site: Site) -> Iterator[list[int]]:
    with Store(site.clinic.store) as store:
        tess = site.clinic.login(store, TECHNICIAN)
        yield [session(store, tess, site.clinic, site.anchor) for _ in range(4)]


# -- a clean store ------------------------------------------------------------------------------------------------


def test_a_clinic_store_with_signed_records_and_checkpoints_verifies(site: Site, records: list[int]) -> None:
    result = site.verify()
    assert result.ok, result.problems
    assert result.people.signatures > 10  # enrolments, activations, logins, the approval, the four sign-offs
    assert result.anchor.checkpoints == 4
    assert result.unsigned == ()


def test_verify_prints_what_it_checked(site: Site, records: list[int], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["records", "verify", "--db", str(site.clinic.store), "--config", str(site.anchored)]) == 0
    out = capsys.readouterr().out
    result = site.verify()
    assert f"chain: {result.links} links" in out
    assert f"signatures: {result.people.signatures} checked" in out
    assert f"anchor: 4 checkpoints in {site.anchor}" in out
    assert out.rstrip().splitlines()[-1].startswith("ok:")


def test_a_record_closed_without_a_performed_sign_off_is_named(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    with Store(site.clinic.store) as store:
        record_id = session(store, site.clinic.login(store, TECHNICIAN), site.clinic, sign=False)
    result = site.verify(anchored=False)
    assert result.ok and result.unsigned == (record_id,)
    assert cli(["records", "verify", "--db", str(site.clinic.store), "--config", str(site.clinic.config)]) == 0
    assert f'1 closed records have no "performed" sign-off ({record_id})' in capsys.readouterr().out


def test_a_pin_era_approval_attested_by_the_first_enrolment_is_counted_not_refused(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    with Store(folder / "records.sqlite3") as store:  # a store from before named accounts: an unsigned approval
        store.append_audit("config-approve", "supervisor", {"path": "site.toml", "sha256": "00" * 32})
    clinic = make_clinic(folder)
    with Store(clinic.store) as store:
        result = verify_store(store, load_config(clinic.config))
    assert result.ok, result.problems
    assert result.people.legacy == 1


# -- forgery ----------------------------------------------------------------------------------------------------


def test_an_approval_inserted_at_the_end_with_the_chain_recomputed_fails_naming_its_link(
    site: Site, records: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    gseq = insert_audit(site.clinic.store, "config-approve", SUPERVISOR, {"path": "evil.toml", "sha256": "ee" * 32})
    result = site.verify(anchored=False)
    assert result.broken is None  # the chain itself was recomputed: it verifies
    assert not result.ok and result.people.problem is not None
    assert result.people.problem.gseq == gseq
    assert cli(["records", "verify", "--db", str(site.clinic.store), "--config", str(site.clinic.config)]) == 1
    out = capsys.readouterr().out
    assert f"BROKEN: signatures: link {gseq}: audit entry" in out and "config-approve by sam" in out
    assert "not signed" in out


def test_an_approval_with_a_real_signature_copied_from_another_entry_fails(site: Site, records: list[int]) -> None:
    with Store(site.clinic.store) as store:
        genuine = store.audit(action="config-approve")[-1]
    detail = {**genuine["detail"], "path": "evil.toml", "sha256": "ee" * 32}  # the supervisor's signature kept
    gseq = insert_audit(site.clinic.store, "config-approve", SUPERVISOR, detail)
    result = site.verify(anchored=False)
    assert result.broken is None and result.people.problem is not None
    assert result.people.problem.gseq == gseq
    assert "not over this entry" in result.people.problem.reason


def test_an_approval_inserted_in_the_middle_with_the_chain_recomputed_fails(site: Site, records: list[int]) -> None:
    insert_audit(site.clinic.store, "config-approve", SUPERVISOR, {"path": "evil.toml", "sha256": "ee" * 32}, at=3)
    result = site.verify(anchored=False)
    assert result.broken is None
    assert not result.ok and result.people.problem is not None and result.people.problem.gseq is not None
    assert "link" in result.problems[0]


def test_a_technician_signing_an_approval_with_their_own_key_fails(site: Site, records: list[int]) -> None:
    """A technician who knows their own password writes an approval past `People.signed` (which refuses)."""
    with Store(site.clinic.store) as store:
        tess = site.clinic.login(store, TECHNICIAN)
        detail: dict[str, Any] = {"path": "evil.toml", "sha256": "ee" * 32}
        utc = "2026-03-02T09:00:00.000+00:00"
        signature = tess.sign("config-approve", subject_of("config-approve", tess.name, detail, None, None, utc), utc)
        store.append_audit("config-approve", tess.name, {**detail, "signature": signature.to_dict()}, utc=utc)
        gseq = store.chain_head()[0]
    result = site.verify(anchored=False)
    assert result.broken is None and result.people.problem is not None
    assert result.people.problem.gseq == gseq
    assert "technician, who may not" in result.people.problem.reason


def test_a_record_sign_off_copied_onto_another_record_fails_naming_its_link(site: Site, records: list[int]) -> None:
    first, second = records[0], records[1]
    with Store(site.clinic.store) as store:
        sign_off = store.audit(action="record-sign", record_id=first)[0]
        digest = store.record_digest(second)
    for detail in (sign_off["detail"], {**sign_off["detail"], "record_sha256": digest}):  # as is; digest swapped
        path = site.clinic.store
        fresh = path.with_name(f"copy-{len(detail)}-{detail['record_sha256'][:6]}.sqlite3")
        fresh.write_bytes(path.read_bytes())
        gseq = insert_audit(fresh, "record-sign", TECHNICIAN, detail, record_id=second, utc=sign_off["utc"])
        with Store(fresh) as store:
            result = verify_store(store, load_config(site.clinic.config))
        assert result.broken is None and result.people.problem is not None
        assert result.people.problem.gseq == gseq
        assert "not over this entry" in result.people.problem.reason


# -- truncation ---------------------------------------------------------------------------------------------------


def delete_newest(path: Path, record_ids: list[int]) -> None:
    """Delete records and every link from the first one's opening on (triggers dropped): what is left is a
    valid chain, as if the sessions had never happened."""
    db = sqlite3.connect(path)
    drop_triggers(db)
    (cut,) = db.execute(f"SELECT min(open_gseq) FROM records WHERE id IN ({', '.join('?' * len(record_ids))})",
                        record_ids).fetchone()  # fmt: skip
    db.execute("DELETE FROM telemetry WHERE record_id IN (SELECT id FROM records WHERE open_gseq >= ?)", (cut,))
    for table in ("events", "audit", "courses"):
        db.execute(f"DELETE FROM {table} WHERE gseq >= ?", (cut,))
    db.execute("DELETE FROM records WHERE open_gseq >= ?", (cut,))
    db.commit()
    db.close()


def test_deleting_the_newest_two_records_fails_against_the_anchor(
    site: Site, records: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    third = read_checkpoints(site.anchor, site.clinic.store)[2]  # the first checkpoint the deletion removes
    delete_newest(site.clinic.store, records[-2:])
    result = site.verify()
    assert result.broken is None and result.people.problem is None  # the rest is a valid, signed chain
    assert not result.ok and result.anchor.problem is not None
    assert result.anchor.checkpoints == 2  # the first two records' checkpoints are still in the chain
    assert cli(["records", "verify", "--db", str(site.clinic.store), "--config", str(site.anchored)]) == 1
    out = capsys.readouterr().out
    assert f"BROKEN: anchor: {anchor_file(site.anchor, site.clinic.store)}" in out
    assert f"the checkpoint of link {third.gseq} (signed by tess at" in out
    assert f"the chain ends at link {result.links}" in out and "the newest records were deleted" in out


def test_deleting_the_newest_two_records_fails_against_a_hash_printed_on_a_chart(
    site: Site, records: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    with Store(site.clinic.store) as store:
        printed = str(store.get(records[-1]).fields["chain_hash"])  # what record 4's chart page shows
        older = str(store.get(records[0]).fields["chain_hash"])
    db = ["--db", str(site.clinic.store), "--config", str(site.clinic.config)]
    assert cli(["records", "verify", *db, "--anchor", printed]) == 0
    delete_newest(site.clinic.store, records[-2:])
    assert site.verify(anchored=False).ok  # without the anchor, nothing shows
    assert cli(["records", "verify", *db, "--anchor", older]) == 0
    capsys.readouterr()
    assert cli(["records", "verify", *db, "--anchor", printed]) == 1
    out = capsys.readouterr().out
    assert f"BROKEN: anchor: no link of the chain has the hash {printed}" in out


def test_a_checkpoint_signed_by_a_key_not_enrolled_in_the_store_fails(site: Site, records: list[int]) -> None:
    other = make_clinic(site.anchor.parent / "elsewhere")  # the same names, other keys
    with Store(other.store) as elsewhere, Store(site.clinic.store) as store:
        stranger = other.login(elsewhere, TECHNICIAN)
        write_checkpoint(site.anchor, store.path, store.chain_head(), stranger, "2026-03-03T10:00:00.000+00:00")
    problem = site.verify().anchor.problem
    assert problem is not None and "which no enrolment in this store gives 'tess'" in problem


def test_a_missing_anchor_directory_fails_rather_than_passing_unchecked(site: Site, records: list[int]) -> None:
    for file in site.anchor.iterdir():
        file.unlink()
    site.anchor.rmdir()
    result = site.verify()
    assert result.anchor.problem is not None and "is not there" in result.anchor.problem


def test_the_anchor_file_is_owner_and_group_only(site: Site, records: list[int]) -> None:
    import stat

    assert stat.S_IMODE(anchor_file(site.anchor, site.clinic.store).stat().st_mode) == 0o640


# -- an anchor cut along with the newest records ------------------------------------------------------------------


def copy_store(source: Path, target: Path) -> Path:
    """A copy of the store file at another path, its write-ahead log included (SQLite's backup)."""
    target.parent.mkdir()
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    return target


def test_the_store_identity_is_its_first_link_and_a_copy_keeps_it(site: Site, records: list[int]) -> None:
    copy = copy_store(site.clinic.store, site.anchor.parent / "elsewhere" / "records.sqlite3")
    with Store(site.clinic.store) as store, Store(copy) as copied:
        assert store.first_link() == store.link_hashes()[1] == copied.first_link()
    assert anchor_file(site.anchor, copy) == anchor_file(site.anchor, site.clinic.store)
    with Store(copy) as copied:
        assert verify_store(copied, load_config(site.anchored)).ok  # the untouched copy: the same checkpoints


def test_anchor_lines_torn_with_the_newest_two_records_deleted_fail_naming_the_line(
    site: Site, records: list[int]
) -> None:
    file = anchor_file(site.anchor, site.clinic.store)
    lines = file.read_text(encoding="utf-8").splitlines()
    file.write_text("\n".join(lines[:2] + [line[:-1] for line in lines[2:]]) + "\n", encoding="utf-8")
    delete_newest(site.clinic.store, records[-2:])
    problem = site.verify().anchor.problem
    assert problem is not None and f"{file}: line 3 is not a checkpoint" in problem


def test_a_torn_last_line_is_passed_over_but_not_once_a_checkpoint_follows_it(site: Site, records: list[int]) -> None:
    file = anchor_file(site.anchor, site.clinic.store)
    whole = file.read_text(encoding="utf-8")
    with file.open("a", encoding="utf-8") as out:
        out.write(whole.splitlines()[-1][:40])  # a write cut short: no line end
    assert site.verify().ok
    with Store(site.clinic.store) as store:
        session(store, site.clinic.login(store, TECHNICIAN), site.clinic, site.anchor)
    assert file.read_text(encoding="utf-8").splitlines()[-1].startswith("{")  # the next one on a line of its own
    problem = site.verify().anchor.problem
    assert problem is not None and "line 5 is not a checkpoint" in problem


def test_the_anchor_file_removed_with_the_newest_two_records_deleted_fails(site: Site, records: list[int]) -> None:
    anchor_file(site.anchor, site.clinic.store).unlink()
    delete_newest(site.clinic.store, records[-2:])
    result = site.verify()
    assert not result.ok and result.anchor.problem is not None
    assert "no checkpoint of this store, though its records are closed" in result.anchor.problem


def test_an_anchor_cut_short_of_the_newest_closes_fails(site: Site, records: list[int]) -> None:
    """Lines removed from the anchor's end: each checkpoint left is in the chain, but none reaches the newest
    closes. (Lines removed together with the records they checkpoint leave a consistent, shorter pair: what
    only an append-only share prevents.)"""
    file = anchor_file(site.anchor, site.clinic.store)
    lines = file.read_text(encoding="utf-8").splitlines(keepends=True)
    file.write_text("".join(lines[:2]), encoding="utf-8")
    result = site.verify()
    assert result.anchor.checkpoints == 2 and result.anchor.problem is not None
    assert "older than the newest record's close" in result.anchor.problem
    assert "the anchor missed checkpoints" in result.anchor.problem


def test_a_copy_of_the_store_at_another_path_with_the_newest_two_records_deleted_fails(
    site: Site, records: list[int]
) -> None:
    copy = copy_store(site.clinic.store, site.anchor.parent / "elsewhere" / "records.sqlite3")
    delete_newest(copy, records[-2:])
    with Store(copy) as copied:
        result = verify_store(copied, load_config(site.anchored))
    assert not result.ok and result.anchor.problem is not None
    assert "the newest records were deleted" in result.anchor.problem


def test_a_closed_record_with_no_checkpoint_fails_until_the_next_close_writes_one(
    site: Site, records: list[int]
) -> None:
    with Store(site.clinic.store) as store:
        tess = site.clinic.login(store, TECHNICIAN)
        session(store, tess, site.clinic)  # closed while the share was away
    problem = site.verify().anchor.problem
    assert problem is not None and "older than the newest record's close" in problem
    with Store(site.clinic.store) as store:
        session(store, site.clinic.login(store, TECHNICIAN), site.clinic, site.anchor)
    assert site.verify().ok


def test_an_anchor_file_that_is_a_fifo_fails_verify_at_once(site: Site, records: list[int]) -> None:
    import os

    file = anchor_file(site.anchor, site.clinic.store)
    file.unlink()
    os.mkfifo(file)
    problem = site.verify().anchor.problem
    assert problem is not None and "is not a regular file" in problem

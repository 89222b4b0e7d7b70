"""Addenda: a skin check or an adverse reaction noted after a record has closed is appended to the audit trail
against that record (the closed record itself never changes), and travels with it: `records show`, the JSON
export and its round trip, the chart PDF, and `verify`."""

from __future__ import annotations

import io
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from ionctl.cli import main as cli
from ionctl.records import Record, Store, timefmt
from ionctl.records.export import to_json
from ionctl.records.pdf import build_pages
from tests.people import AUDITOR, PASSWORDS, TECHNICIAN, make_clinic
from tests.records.test_store import finished_record


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A clinic's record store (its people in it; its site file next to it)."""
    clinic = make_clinic(tmp_path / "clinic")
    with Store(clinic.store) as s:
        yield s


def test_an_addendum_follows_a_closed_record_without_changing_it(store: Store) -> None:
    record_id = finished_record(store)
    closed = store.get(record_id).fields
    store.append_audit("skin-check-after", "O-1", {"text": "mild erythema under the cathode"}, record_id=record_id)
    store.append_audit("adverse-reaction", "O-1", {"text": "none"}, record_id=record_id)
    record = store.get(record_id)
    assert record.fields == closed
    assert [a["action"] for a in record.addenda] == ["skin-check-after", "adverse-reaction"]
    assert record.addenda[0]["detail"] == {"text": "mild erythema under the cathode"}
    assert store.verify() is None


def test_addenda_travel_in_the_json_export_and_the_chart(store: Store, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    record_id = finished_record(store)
    store.append_audit("skin-check-after", "O-1", {"text": "mild erythema under the cathode"}, record_id=record_id)
    record = store.get(record_id)
    assert Record.from_dict(json.loads(to_json(record))) == record
    page = " ".join(t.get_text() for t in build_pages(record)[0].texts)
    assert re.search(r"Skin check after the session \(#\d+, by O-1\): mild erythema under the cathode\.", page)
    assert cli(["records", "show", str(record_id), "--db", str(store.path)]) == 0
    assert re.search(r"Skin check after the session \(#\d+, by O-1\): mild erythema", capsys.readouterr().out)


def test_an_addendum_to_another_record_is_not_shown_on_this_one(store: Store) -> None:
    first, second = finished_record(store), finished_record(store, patient="P-2")
    store.append_audit("adverse-reaction", "O-1", {"text": "itching"}, record_id=second)
    assert store.get(first).addenda == [] and len(store.get(second).addenda) == 1


# -- `ionctl records addendum`, corrections, the triggers, what is pending -------------------------------------

SKIN_ALL_NO = ["erythema=no", "blistering=no", "pain=no", "itching=no", "other=no"]


def addendum(store: Store, record_id: int, *options: str, name: str = TECHNICIAN, password: str | None = None) -> int:
    """`ionctl records addendum` as `name` (the clinic's technician), who logs in with `--password-stdin`."""
    typed = (password if password is not None else PASSWORDS[name]) + "\n"
    with mock.patch("sys.stdin", io.StringIO(typed)):
        site = str(Path(store.path).parent / "site.toml")
        return cli(["records", "addendum", str(record_id), "--db", str(store.path), "--config", site, "--as", name,
                    "--password-stdin", *options])  # fmt: skip


def test_an_addendum_is_made_by_the_person_who_logs_in_and_nobody_else(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    record_id = finished_record(store)
    assert addendum(store, record_id, "--note", "typed", password="Not-the-password-1") == 2
    assert "nothing recorded" in capsys.readouterr().err
    assert addendum(store, record_id, "--note", "read", name=AUDITOR) == 2  # an auditor reads, never adds
    assert "only a supervisor or technician may record skin checks and addenda" in capsys.readouterr().err
    assert store.get(record_id).addenda == []
    (denied,) = store.audit(action="login-denied")
    assert denied["actor"] == TECHNICIAN
    assert addendum(store, record_id, "--note", "seen again") == 0
    assert [a["actor"] for a in store.get(record_id).addenda] == [TECHNICIAN]


def test_the_skin_check_after_is_appended_from_the_command_line_and_the_chain_verifies(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    record_id = finished_record(store)
    assert addendum(store, record_id, "--skin-check", *SKIN_ALL_NO[:2], "pain=not-inspected", *SKIN_ALL_NO[3:],
                    "--reason", "patient asleep") == 0  # fmt: skip
    said = capsys.readouterr().out
    assert (
        f"recorded in record {record_id} by tess: erythema: no; blistering: no; pain: not inspected (patient "
        "asleep)" in said
    )
    (entry,) = store.get(record_id).addenda
    assert entry["action"] == "skin-check-after" and entry["actor"] == "tess"
    assert entry["detail"]["items"]["pain"] == {"answer": "not inspected", "reason": "patient asleep"}
    assert cli(["records", "verify", "--db", str(store.path), "--config", str(store.path.parent / "site.toml")]) == 0
    assert "ok: the chain" in capsys.readouterr().out


def test_a_skin_check_with_an_item_unanswered_is_refused_from_the_command_line_naming_it(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    record_id = finished_record(store)
    assert addendum(store, record_id, "--skin-check", *[a for a in SKIN_ALL_NO if not a.startswith("pain")]) == 2
    assert "skin check item 'pain' (pain or burning (the patient reports)) is not answered" in capsys.readouterr().err
    assert store.get(record_id).addenda == []


def test_not_inspected_without_a_reason_is_refused_from_the_command_line(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    record_id = finished_record(store)
    assert addendum(store, record_id, "--skin-check", "erythema=not-inspected", *SKIN_ALL_NO[1:]) == 2
    assert "'erythema' is 'not inspected' without a reason" in capsys.readouterr().err
    assert store.get(record_id).addenda == []


def test_a_late_adverse_reaction_and_a_note_are_addenda(store: Store) -> None:
    record_id = finished_record(store)
    assert addendum(store, record_id, "--reaction", "blister under the anode, seen the next day") == 0
    assert addendum(store, record_id, "--note", "patient phoned; advised cold compress") == 0
    actions = [(a["action"], a["detail"]["text"]) for a in store.get(record_id).addenda]
    assert actions == [("adverse-reaction", "blister under the anode, seen the next day"),
                       ("note", "patient phoned; advised cold compress")]  # fmt: skip


@pytest.mark.parametrize("options", [(), ("--reaction", "x", "--note", "y"), ("--correction", "x"),
                                     ("--reason", "asleep", "--note", "x")])  # fmt: skip
def test_an_addendum_that_is_not_exactly_one_thing_is_refused(
    store: Store, options: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    record_id = finished_record(store)
    assert addendum(store, record_id, *options) == 2
    assert capsys.readouterr().err.startswith("ionctl records addendum: ")
    assert store.get(record_id).addenda == []


def test_an_addendum_to_no_such_record_is_refused(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert addendum(store, 99, "--note", "x") == 1
    assert "no record 99" in capsys.readouterr().err


def test_the_store_refuses_to_update_or_delete_an_addendum(store: Store) -> None:
    record_id = finished_record(store)
    assert addendum(store, record_id, "--skin-check", *SKIN_ALL_NO) == 0
    with pytest.raises(sqlite3.IntegrityError, match="append-only: an entry cannot be changed"):
        store.db.execute("UPDATE audit SET detail = '{}' WHERE record_id = ?", (record_id,))
    with pytest.raises(sqlite3.IntegrityError, match="append-only: an entry cannot be deleted"):
        store.db.execute("DELETE FROM audit WHERE record_id = ?", (record_id,))
    with pytest.raises(sqlite3.IntegrityError, match="cannot be replaced"):
        store.db.execute("INSERT OR REPLACE INTO audit SELECT * FROM audit WHERE record_id = ?", (record_id,))
    (entry,) = store.get(record_id).addenda
    assert entry["detail"]["items"]["erythema"] == {"answer": "no"} and store.verify() is None


def test_an_addendum_edited_around_the_triggers_breaks_the_chain(store: Store) -> None:
    record_id = finished_record(store)
    assert addendum(store, record_id, "--skin-check", *SKIN_ALL_NO) == 0
    store.db.execute("DROP TRIGGER audit_no_update")
    store.db.execute("UPDATE audit SET detail = replace(detail, '\"no\"', '\"yes\"') WHERE record_id = ?",
                     (record_id,))  # fmt: skip
    broken = store.verify()
    assert broken is not None and "skin-check-after" in broken.what


def test_a_correction_names_the_addendum_it_corrects_and_both_are_shown_and_exported(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    record_id = finished_record(store)
    assert addendum(store, record_id, "--skin-check", *SKIN_ALL_NO) == 0
    (original,) = store.get(record_id).addenda
    assert addendum(store, record_id, "--correction", "erythema was present under the cathode (2 cm), not absent",
                    "--corrects", str(original["seq"])) == 0  # fmt: skip
    record = store.get(record_id)
    first, correction = record.addenda
    assert first == original  # the corrected addendum never changes
    assert correction["action"] == "correction" and correction["detail"]["corrects"] == original["seq"]
    capsys.readouterr()
    assert cli(["records", "show", str(record_id), "--db", str(store.path)]) == 0
    shown = capsys.readouterr().out
    shown_at = {a["seq"]: timefmt.local_text(a["utc"]) for a in record.addenda}  # the clinic's time zone
    first_at, correction_at = shown_at[original["seq"]], shown_at[correction["seq"]]
    said = " ".join(shown.split())  # the sentences are wrapped for the terminal
    assert (
        f"{first_at}: Skin check after the session (#{original['seq']}, by tess): erythema: no; blistering: no; "
        f"pain: no; itching: no; other: no; no adverse reaction. Corrected by #{correction['seq']}."
    ) in said
    assert (
        f"{correction_at}: Correction (#{correction['seq']}, by tess): corrects #{original['seq']}: erythema was "
        "present under the cathode (2 cm), not absent."
    ) in said
    assert "{" not in shown.split("Addenda (2)")[1]  # no JSON or Python repr
    assert cli(["records", "export", str(record_id), "--format", "json", "--db", str(store.path)]) == 0
    exported = json.loads(capsys.readouterr().out)["addenda"]
    assert [(a["seq"], a["action"], a["detail"].get("corrects")) for a in exported] == [
        (original["seq"], "skin-check-after", None),
        (correction["seq"], "correction", original["seq"]),
    ]
    assert exported[0]["detail"] == original["detail"]
    assert cli(["records", "verify", "--db", str(store.path), "--config", str(store.path.parent / "site.toml")]) == 0


def test_a_correction_of_an_addendum_of_another_record_is_refused(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = finished_record(store), finished_record(store, patient="P-2")
    assert addendum(store, first, "--note", "x") == 0
    (note,) = store.get(first).addenda
    assert addendum(store, second, "--correction", "y", "--corrects", str(note["seq"])) == 1
    assert f"record {second} has no addendum #{note['seq']} to correct" in capsys.readouterr().err
    assert store.get(second).addenda == []


def test_a_session_that_energised_the_patient_is_pending_until_its_skin_check_after(store: Store) -> None:
    energised = finished_record(store, patient="P-1")
    refused = store.open_record(patient="P-1", operator="O-1", prescription={}, limits={}, limits_sha256="")
    store.close_record(refused, {"outcome": "refused", "energised": False})
    other = finished_record(store, patient="P-2")
    assert [r["id"] for r in store.pending_skin_checks("P-1")] == [energised]
    assert addendum(store, energised, "--reaction", "itching") == 0  # a reaction alone is not the skin check
    assert [r["id"] for r in store.pending_skin_checks("P-1")] == [energised]
    assert addendum(store, energised, "--skin-check", *SKIN_ALL_NO) == 0
    assert store.pending_skin_checks("P-1") == []
    assert [r["id"] for r in store.pending_skin_checks()] == [other]

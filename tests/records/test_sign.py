"""`ionctl records sign ID --as NAME`: a supervisor countersigns a closed record as reviewed; the record's own
operator signs it as performed (a record closed by crash recovery never was). Refused, naming why: an open
record, a technician countersigning, someone else's "performed", the same person signing twice with the same
meaning, a wrong password. `records show` lists every signature with its printed name, date and time and
meaning (21 CFR 11.50), and `records verify` checks them."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ionctl.cli import main as cli
from ionctl.config.people import PERFORMED
from ionctl.config.site import load_config
from ionctl.config.verification import verify_store
from ionctl.records import Store
from tests.people import PASSWORDS, SUPERVISOR, TECHNICIAN, Clinic, make_clinic
from tests.records.test_verify_people import session


@dataclass
class Bench:
    clinic: Clinic
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]

    def sign(self, record_id: int, name: str, *extra: str, stdin: str | None = None) -> tuple[int, str]:
        """`ionctl records sign` as `name` with their password on stdin: (exit status, stdout + stderr)."""
        self.monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORDS[name] + "\n" if stdin is None else stdin))
        code = cli(["records", "sign", str(record_id), "--as", name, "--password-stdin", *extra, *self.where])
        out = self.capsys.readouterr()
        return code, out.out + out.err

    @property
    def where(self) -> list[str]:
        return ["--db", str(self.clinic.store), "--config", str(self.clinic.config)]

    def signatures(self, record_id: int) -> list[tuple[str, str]]:
        with Store(self.clinic.store) as store:
            return [(e["actor"], e["detail"]["meaning"]) for e in store.audit(action="record-sign",
                                                                              record_id=record_id)]  # fmt: skip


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Bench]:
    yield Bench(make_clinic(tmp_path / "clinic"), monkeypatch, capsys)


def closed(bench: Bench, *, sign: bool = True) -> int:
    with Store(bench.clinic.store) as store:
        return session(store, bench.clinic.login(store, TECHNICIAN), bench.clinic, sign=sign)


def test_a_supervisor_countersigns_and_show_lists_both_signatures(bench: Bench) -> None:
    record_id = closed(bench)
    code, out = bench.sign(record_id, SUPERVISOR)
    assert code == 0, out
    assert f"record {record_id} signed: Sam Supervisor (sam, supervisor), 20" in out and ": reviewed\n" in out
    assert bench.signatures(record_id) == [(TECHNICIAN, PERFORMED), (SUPERVISOR, "reviewed")]
    assert cli(["records", "show", str(record_id), "--db", str(bench.clinic.store)]) == 0
    shown = bench.capsys.readouterr().out
    assert "Signatures (`ionctl records verify` checks them)" in shown
    assert re.search(r"  Tess Technician \(tess, technician\)\s+20\S+ \S+ \S+\s+performed", shown), shown
    assert re.search(r"  Sam Supervisor \(sam, supervisor\)\s+20\S+ \S+ \S+\s+reviewed", shown), shown
    assert "record-sign by" not in shown  # a signature, not an addendum
    with Store(bench.clinic.store) as store:
        result = verify_store(store, load_config(bench.clinic.config))
    assert result.ok, result.problems


def test_the_operator_signs_a_record_crash_recovery_closed_as_performed(bench: Bench) -> None:
    with Store(bench.clinic.store) as store:  # a session killed before its end: the record stays open
        record_id = store.open_record(patient="P-1", operator=TECHNICIAN, prescription={}, limits={},
                                      limits_sha256="ab" * 32)  # fmt: skip
    code, out = bench.sign(record_id, TECHNICIAN)  # the command first closes it as interrupted
    assert code == 0, out
    assert "closed as interrupted" in out and f"record {record_id} signed: Tess Technician" in out
    assert ": performed\n" in out
    assert bench.signatures(record_id) == [(TECHNICIAN, PERFORMED)]
    with Store(bench.clinic.store) as store:
        result = verify_store(store, load_config(bench.clinic.config))
    assert result.ok and result.unsigned == ()


def test_an_open_record_is_refused_before_a_password_is_asked(bench: Bench) -> None:
    with Store(bench.clinic.store) as store:
        record_id = store.open_record(patient="P-1", operator=TECHNICIAN, prescription={}, limits={},
                                      limits_sha256="ab" * 32)  # fmt: skip
        from ionctl.records import SessionLock

        lock = SessionLock(store, record_id)  # the session is still running
        code, out = bench.sign(record_id, SUPERVISOR, stdin="")
        lock.release()
    assert code == 2 and "still open" in out
    assert bench.signatures(record_id) == []


def test_a_technician_cannot_countersign(bench: Bench) -> None:
    record_id = closed(bench)
    code, out = bench.sign(record_id, TECHNICIAN, "--meaning", "reviewed")
    assert code == 2 and "only a supervisor may countersign" in out
    assert bench.signatures(record_id) == [(TECHNICIAN, PERFORMED)]


def test_nobody_signs_another_operators_session_as_performed(bench: Bench) -> None:
    record_id = closed(bench, sign=False)
    code, out = bench.sign(record_id, SUPERVISOR, "--meaning", "performed")
    assert code == 2 and "only they sign it as performed" in out
    assert bench.signatures(record_id) == []


def test_a_second_signature_of_the_same_meaning_by_the_same_person_is_refused(bench: Bench) -> None:
    record_id = closed(bench)
    assert bench.sign(record_id, SUPERVISOR)[0] == 0
    code, out = bench.sign(record_id, SUPERVISOR)
    assert code == 2 and "already signed" in out
    code, out = bench.sign(record_id, TECHNICIAN)  # the operator's "performed" is there already
    assert code == 2 and "already signed" in out
    assert bench.signatures(record_id) == [(TECHNICIAN, PERFORMED), (SUPERVISOR, "reviewed")]


def test_a_wrong_password_signs_nothing(bench: Bench) -> None:
    record_id = closed(bench)
    code, out = bench.sign(record_id, SUPERVISOR, stdin="not-sams-password\n")
    assert code == 2 and "wrong password" in out
    assert bench.signatures(record_id) == [(TECHNICIAN, PERFORMED)]


def test_the_fhir_export_says_each_signature_in_words_and_as_a_provenance(bench: Bench) -> None:
    import json

    record_id = closed(bench)
    assert bench.sign(record_id, SUPERVISOR)[0] == 0
    assert cli(["records", "export", str(record_id), "--format", "fhir", "--db", str(bench.clinic.store)]) == 0
    bundle = json.loads(bench.capsys.readouterr().out)
    resources = [e["resource"] for e in bundle["entry"]]
    (procedure,) = [r for r in resources if r["resourceType"] == "Procedure"]
    texts = [n["text"] for n in procedure["note"]]
    signed = [t for t in texts if t.startswith("Signed (#")]
    assert len(signed) == 2
    assert "by Tess Technician (tess, technician), 20" in signed[0] and signed[0].endswith(": performed")
    assert "by Sam Supervisor (sam, supervisor), 20" in signed[1] and signed[1].endswith(": reviewed")
    assert all("{" not in t and "value" not in t for t in signed)  # words, not the signature's JSON
    assert procedure["performer"][0]["actor"]["display"] == "Tess Technician"  # the printed name she signed with
    provenances = [r for r in resources if r["resourceType"] == "Provenance"]
    assert [(p["agent"][0]["who"]["display"], p["signature"][0]["type"][0]["code"]) for p in provenances] == [
        ("Tess Technician", "1.2.840.10065.1.12.1.1"), ("Sam Supervisor", "1.2.840.10065.1.12.1.5")]  # fmt: skip
    with Store(bench.clinic.store) as store:
        stored = [e["detail"]["signature"]["value"] for e in store.audit(action="record-sign", record_id=record_id)]
    assert [base64.b64decode(p["signature"][0]["data"]).hex() for p in provenances] == stored

"""`ionctl users` and the signed supervisor acts, end to end over the command line with a clinic (tests/people.py):
a technician cannot approve a configuration or override a course rule; a supervisor can, and the audit trail
names them; five wrong passwords lock the account and the message says until when; an administrator unlocks
it; `users list` never shows a credential; a store from before named accounts (a supervisor PIN) migrates: its
PIN authorises nothing, an administrator enrols the supervisor, who sets a password at first use and approves.
Every refusal exits 2."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import pytest

from ionctl.cli.main import main
from ionctl.config import ConfigNotApproved, approved_sha256, load_config, require_approved
from ionctl.config.authority import initial_text
from ionctl.config.people import LoginRefused, People
from ionctl.config.proof import check
from ionctl.records import Store
from tests.people import (
    ADMIN,
    AUDITOR,
    FULL_NAMES,
    PASSWORDS,
    SUPERVISOR,
    TECHNICIAN,
    TEST_COST,
    Clinic,
    accounts_table,
    make_clinic,
)

NEW = "Initial-lark-77"  # an initial password an administrator gives


def ionctl(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str,
           stdin: str = "") -> tuple[int, str, str]:  # fmt: skip
    """`ionctl ARGS` in this process with `stdin` (not a terminal): (exit code, stdout, stderr)."""
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def clinic(tmp_path: Path) -> Clinic:
    return make_clinic(tmp_path)


def where(clinic: Clinic) -> tuple[str, ...]:
    return ("--db", str(clinic.store), "--config", str(clinic.config))


def edit(clinic: Clinic) -> None:
    """A hand edit of the site file: it needs a supervisor's approval."""
    clinic.config.write_text(clinic.config.read_text().replace("max_current_ma = 4.0", "max_current_ma = 3.5"))


def verified(store: Store, clinic: Clinic) -> None:
    checked = check(store.audit(), load_config(clinic.config).accounts.administrators,
                    record_digest=store.record_digest, chain_hash=store.link_hashes().get)  # fmt: skip
    assert checked.problem is None, checked.problem


# -- approving a configuration ---------------------------------------------------------------------------------


def test_a_technician_cannot_approve_a_configuration(clinic: Clinic, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    edit(clinic)
    code, _, err = ionctl(capsys, monkeypatch, "config", "approve", *where(clinic), "--as", TECHNICIAN,
                          "--password-stdin", stdin=clinic.stdin(TECHNICIAN))  # fmt: skip
    assert code == 2 and "tess is a technician: only a supervisor may approve" in err
    with Store(clinic.store) as store:
        with pytest.raises(ConfigNotApproved):
            require_approved(load_config(clinic.config), store)
        (denied,) = store.audit(action="act-denied")
        assert denied["actor"] == TECHNICIAN and "signature" in denied["detail"]
        verified(store, clinic)


def test_a_technician_cannot_change_a_limit(clinic: Clinic, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    before = clinic.config.read_bytes()
    code, _, err = ionctl(capsys, monkeypatch, "config", "set", "limits.max_current_ma", "3.0", *where(clinic),
                          "--yes", "--as", TECHNICIAN, "--password-stdin", stdin=clinic.stdin(TECHNICIAN))  # fmt: skip
    assert code == 2 and "only a supervisor may" in err
    assert clinic.config.read_bytes() == before


def test_a_supervisor_approves_and_the_audit_trail_names_them(clinic: Clinic, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    edit(clinic)
    code, out, err = ionctl(capsys, monkeypatch, "config", "approve", *where(clinic), "--note", "reviewed",
                            "--as", SUPERVISOR, "--password-stdin", stdin=clinic.stdin(SUPERVISOR))  # fmt: skip
    assert code == 0, err
    assert f"signed by {FULL_NAMES[SUPERVISOR]} (sam, supervisor)" in out
    with Store(clinic.store) as store:
        require_approved(load_config(clinic.config), store)
        approval = store.audit(action="config-approve")[-1]
        assert approval["actor"] == SUPERVISOR
        assert approval["detail"]["signature"]["full_name"] == FULL_NAMES[SUPERVISOR]
        verified(store, clinic)
    code, out, _ = ionctl(capsys, monkeypatch, "config", "audit", "--db", str(clinic.store))
    assert code == 0
    (line,) = [line for line in out.splitlines() if "config-approve" in line and "reviewed" in line]
    assert f" {SUPERVISOR} " in line


def test_a_supervisor_changes_a_limit_signed(clinic: Clinic, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    setter = ("config", "set", "limits.max_current_ma", "3.0", *where(clinic), "--yes", "--as", SUPERVISOR)
    code, out, err = ionctl(capsys, monkeypatch, *setter, "--password-stdin", stdin=clinic.stdin(SUPERVISOR))
    assert code == 0, err
    assert "signed by Sam Supervisor" in out and "max_current_ma = 3.0" in clinic.config.read_text()
    with Store(clinic.store) as store:
        (change,) = store.audit(action="config-set")
        assert change["actor"] == SUPERVISOR and change["detail"]["signature"]["meaning"] == "config-set"
        require_approved(load_config(clinic.config), store)
        verified(store, clinic)


def test_an_approval_written_into_the_store_without_a_signature_is_not_trusted(clinic: Clinic) -> None:
    edit(clinic)
    config = load_config(clinic.config)
    with Store(clinic.store) as store:
        store.append_audit("config-approve", SUPERVISOR, {"path": config.source, "sha256": config.sha256,
                                                          "presets": sorted(config.presets), "note": ""})  # fmt: skip
        assert approved_sha256(store) == config.sha256
        with pytest.raises(ConfigNotApproved, match="does not prove who made it.*not signed"):
            require_approved(config, store)


def test_an_approval_signed_by_a_technician_is_not_trusted(clinic: Clinic) -> None:
    """Signed with the technician's real key (bypassing `People.signed`'s role check): the role still fails."""
    from ionctl.config.people import subject_of

    edit(clinic)
    config = load_config(clinic.config)
    with Store(clinic.store) as store:
        tess = clinic.login(store, TECHNICIAN)
        detail = {"path": config.source, "sha256": config.sha256, "presets": sorted(config.presets), "note": ""}
        utc = "2026-03-02T09:00:00.000+00:00"
        signature = tess.sign("config-approve", subject_of("config-approve", TECHNICIAN, detail, None, None, utc), utc)
        store.append_audit("config-approve", TECHNICIAN, {**detail, "signature": signature.to_dict()}, utc=utc)
        with pytest.raises(ConfigNotApproved, match="tess' is a technician, who may not"):
            require_approved(config, store)


def test_an_approval_by_a_supervisor_the_sites_administrators_did_not_enrol_is_not_trusted(tmp_path: Path) -> None:
    """Another site file naming another administrator: the clinic's supervisor is nobody there."""
    clinic = make_clinic(tmp_path / "a")
    other = make_clinic(tmp_path / "b")
    foreign = load_config(other.config)
    with Store(clinic.store) as store:
        people = clinic.people(store)
        people.signed(clinic.login(store, SUPERVISOR), "config-approve",
                      {"path": foreign.source, "sha256": foreign.sha256, "presets": [], "note": ""})  # fmt: skip
        with pytest.raises(ConfigNotApproved, match="does not lead to an administrator|enrolled themselves"):
            require_approved(foreign, store)


# -- course rules ------------------------------------------------------------------------------------------------

COURSE = ("course", "start", "--patient", "P-7", "--preset", "dexamethasone", "--operator", TECHNICIAN,
          "--password-stdin", "--sessions", "6", "--current", "2", "--electrode-area", "10",
          "--dose", "20")  # fmt: skip


def test_a_technician_cannot_override_a_course_rule_and_a_supervisor_can(
    clinic: Clinic, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tess = clinic.stdin(TECHNICIAN)  # the operator's password: the first line --password-stdin reads
    assert ionctl(capsys, monkeypatch, *COURSE, *where(clinic), stdin=tess)[0] == 0
    second = (*COURSE, *where(clinic), "--supervisor-override", "new plan after review")
    code, _, err = ionctl(capsys, monkeypatch, *COURSE, *where(clinic), stdin=tess)
    assert code == 2 and "already has course 1" in err
    code, _, err = ionctl(capsys, monkeypatch, *second, "--supervisor", TECHNICIAN, stdin=tess + tess)
    assert code == 2 and "override refused: tess is a technician: only a supervisor may override" in err
    code, _, err = ionctl(capsys, monkeypatch, *second, "--supervisor", SUPERVISOR, stdin=tess + "Wrong-pass-123\n")
    assert code == 2 and "override refused" in err and "wrong password" in err
    code, _, err = ionctl(capsys, monkeypatch, *second, stdin=tess + clinic.stdin(SUPERVISOR))
    assert code == 2 and "--supervisor NAME" in err
    with Store(clinic.store) as store:
        assert [c["id"] for c in store.courses()] == [1]
        assert store.audit(action="course-start-override") == []
    code, out, err = ionctl(capsys, monkeypatch, *second, "--supervisor", SUPERVISOR,
                            stdin=tess + clinic.stdin(SUPERVISOR))  # fmt: skip
    assert code == 0, err
    with Store(clinic.store) as store:
        (override,) = store.audit(action="course-start-override", course_id=2)
        assert override["actor"] == SUPERVISOR and override["detail"]["reason"] == "new plan after review"
        assert override["detail"]["signature"]["signer"] == SUPERVISOR
        verified(store, clinic)


# -- lockout -----------------------------------------------------------------------------------------------------


def test_five_wrong_passwords_lock_and_an_administrator_unlocks(
    clinic: Clinic, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    edit(clinic)
    approve = ("config", "approve", *where(clinic), "--as", SUPERVISOR, "--password-stdin")
    for attempt in range(1, 5):
        code, _, err = ionctl(capsys, monkeypatch, *approve, stdin=f"Wrong-pass-{attempt}x\n")
        assert code == 2 and re.search(f"{5 - attempt} (tries|try) before a lockout", err), err
    code, _, err = ionctl(capsys, monkeypatch, *approve, stdin="Wrong-pass-5x\n")
    assert code == 2 and re.search(r"locked after 5 wrong passwords until \d{4}-\d\d-\d\dT\d\d:\d\d", err), err
    code, _, err = ionctl(capsys, monkeypatch, *approve, stdin=clinic.stdin(SUPERVISOR))
    assert code == 2 and "locked after 5 wrong passwords until" in err and "ionctl users unlock" in err
    code, out, _ = ionctl(capsys, monkeypatch, "users", "list", *where(clinic))
    assert re.search(rf"^{SUPERVISOR}\t.*\tlocked until \d{{4}}-", out, re.MULTILINE), out
    code, _, err = ionctl(capsys, monkeypatch, "users", "unlock", SUPERVISOR, *where(clinic), "--as", TECHNICIAN,
                          "--password-stdin", stdin=clinic.stdin(TECHNICIAN))  # fmt: skip
    assert code == 2 and "only a administrator may manage user accounts" in err
    code, out, err = ionctl(capsys, monkeypatch, "users", "unlock", SUPERVISOR, *where(clinic), "--as", ADMIN,
                            "--password-stdin", stdin=clinic.stdin(ADMIN))  # fmt: skip
    assert code == 0, err
    code, _, err = ionctl(capsys, monkeypatch, *approve, stdin=clinic.stdin(SUPERVISOR))
    assert code == 0, err
    with Store(clinic.store) as store:
        assert len(store.audit(action="user-locked")) == 1
        assert store.audit(action="user-unlock")[0]["actor"] == ADMIN
        verified(store, clinic)


# -- users -------------------------------------------------------------------------------------------------------


def test_users_list_shows_names_roles_fingerprints_and_states_never_a_credential(
    clinic: Clinic, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = ("--as", ADMIN, "--password-stdin", *where(clinic))
    assert ionctl(capsys, monkeypatch, "users", "add", "nora", "--full-name", "Nora Nurse", "--role", "technician",
                  *admin, stdin=f"{PASSWORDS[ADMIN]}\n{NEW}\n")[0] == 0  # fmt: skip
    assert ionctl(capsys, monkeypatch, "users", "disable", AUDITOR, *admin, stdin=clinic.stdin(ADMIN))[0] == 0
    code, out, _ = ionctl(capsys, monkeypatch, "users", "list", *where(clinic))
    assert code == 0
    rows = {line.split("\t")[0]: line.split("\t") for line in out.splitlines()[1:]}
    with Store(clinic.store) as store:
        people = clinic.people(store)
        assert rows[TECHNICIAN] == [TECHNICIAN, FULL_NAMES[TECHNICIAN], "technician",
                                    people.account(TECHNICIAN).fingerprint, "active"]  # fmt: skip
        credentials = [str(v) for e in store.audit() for k, v in (e["detail"].get("credential") or {}).items()
                       if k in ("salt", "verifier", "sealed", "nonce")]  # fmt: skip
    assert rows["nora"][2:] == ["technician", rows["nora"][3], "must set password"]
    assert rows[AUDITOR][4] == "disabled" and rows[ADMIN][2] == "administrator"
    outputs = [out]
    for extra in ((), ("--json",)):
        outputs.append(ionctl(capsys, monkeypatch, "config", "audit", "--db", str(clinic.store), *extra)[1])
    assert credentials and all(secret not in text for secret in credentials for text in outputs)
    for password in (*PASSWORDS.values(), NEW):
        assert all(password not in text for text in outputs)
    lines = [json.loads(line) for line in outputs[2].splitlines()]
    assert {e["detail"]["credential"] for e in lines if "credential" in e["detail"]} == {"(not shown)"}


def test_an_administrator_the_site_does_not_name_can_do_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, site = tmp_path / "r.sqlite3", tmp_path / "site.toml"
    site.write_text(initial_text(), encoding="utf-8")
    place = ("--db", str(db), "--config", str(site))
    code, out, err = ionctl(capsys, monkeypatch, "users", "bootstrap", "root", "--full-name", "Rita Root", *place,
                            "--password-stdin", stdin="Basalt-granite-8\n")  # fmt: skip
    assert code == 0, err
    fingerprint = re.search(r"key fingerprint (SHA256:\S+)", out)
    assert fingerprint is not None and f'administrators = ["{fingerprint[1]}"]' in out
    add = ("users", "add", "sam", "--full-name", "Sam S", "--role", "supervisor", "--as", "root", "--password-stdin")
    code, _, err = ionctl(capsys, monkeypatch, *add, *place, stdin=f"Basalt-granite-8\n{NEW}\n")
    assert code == 2 and "not one the site configuration names" in err
    code, _, err = ionctl(capsys, monkeypatch, "users", "bootstrap", "root", "--full-name", "Rita Root", *place,
                          "--password-stdin", stdin="Basalt-granite-8\n")  # fmt: skip
    assert code == 2 and "already an account 'root'" in err
    site.write_text(initial_text() + accounts_table(fingerprint[1]), encoding="utf-8")  # IT names the key
    code, _, err = ionctl(capsys, monkeypatch, *add, *place, stdin=f"Basalt-granite-8\n{NEW}\n")
    assert code == 0, err


def test_reset_and_passwd(clinic: Clinic, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    code, _, err = ionctl(capsys, monkeypatch, "users", "reset", TECHNICIAN, "--as", SUPERVISOR, "--password-stdin",
                          *where(clinic), stdin=f"{PASSWORDS[SUPERVISOR]}\n{NEW}\n")  # fmt: skip
    assert code == 2 and "only a administrator may manage user accounts" in err
    code, _, err = ionctl(capsys, monkeypatch, "users", "reset", "nobody", "--as", ADMIN, "--password-stdin",
                          *where(clinic), stdin=f"{PASSWORDS[ADMIN]}\n{NEW}\n")  # fmt: skip
    assert code == 2 and "no account 'nobody'" in err
    code, _, err = ionctl(capsys, monkeypatch, "users", "reset", TECHNICIAN, "--as", ADMIN, "--password-stdin",
                          *where(clinic), stdin=f"{PASSWORDS[ADMIN]}\n{NEW}\n")  # fmt: skip
    assert code == 0, err
    passwd = ("users", "passwd", "--as", TECHNICIAN, "--password-stdin", *where(clinic))
    code, _, err = ionctl(capsys, monkeypatch, *passwd, stdin=f"{NEW}\n12345678\n")
    assert code == 2 and "all-digit" in err
    code, _, err = ionctl(capsys, monkeypatch, *passwd, stdin=f"{NEW}\nMeadow-river-51\n")
    assert code == 0, err
    code, _, err = ionctl(capsys, monkeypatch, *passwd, stdin="Meadow-river-51\nMeadow-stone-52\n")
    assert code == 0, err
    with Store(clinic.store) as store:
        assert clinic.people(store).login(TECHNICIAN, "Meadow-stone-52").name == TECHNICIAN
        verified(store, clinic)


def test_config_pin_is_gone_and_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    code, _, err = ionctl(capsys, monkeypatch, "config", "pin", "--db", str(tmp_path / "r.sqlite3"), "--pin-stdin",
                          stdin="24681012\n")  # fmt: skip
    assert code == 2 and "ionctl users add NAME" in err and "--role supervisor" in err
    assert not (tmp_path / "r.sqlite3").exists()


# -- a store from before named accounts --------------------------------------------------------------------------


def pin_era_store(path: Path, site: Path) -> None:
    """What the PIN-era `ionctl config pin` and `config approve` wrote: a salted scrypt hash of the shared PIN,
    then an approval by the actor "supervisor" without a signature, and a refused PIN."""
    salt = bytes(range(16))
    pin = {"scheme": "scrypt", "n": 2**14, "r": 8, "p": 1, "salt": salt.hex(),
           "hash": hashlib.scrypt(b"24681012", salt=salt, n=2**14, r=8, p=1, dklen=32).hex()}  # fmt: skip
    config = load_config(site)
    with Store(path) as store:
        store.append_audit("pin-set", "supervisor", {"pin": pin})
        store.append_audit("config-approve", "supervisor", {"path": config.source, "sha256": config.sha256,
                                                            "presets": sorted(config.presets), "note": ""})  # fmt: skip
        store.append_audit("auth-denied", "supervisor", {"attempt": "set limits.max_current_ma"})


def test_a_pin_era_store_migrates(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    db, site = tmp_path / "r.sqlite3", tmp_path / "site.toml"
    site.write_text(initial_text(), encoding="utf-8")
    pin_era_store(db, site)
    place = ("--db", str(db), "--config", str(site))
    with Store(db) as store:  # its unsigned approval proves nobody: no administrator has attested it
        with pytest.raises(ConfigNotApproved, match="does not prove who made it"):
            require_approved(load_config(site), store)
        admin = People(store, cost=TEST_COST).bootstrap(ADMIN, FULL_NAMES[ADMIN], PASSWORDS[ADMIN])
    site.write_text(initial_text() + accounts_table(admin.fingerprint), encoding="utf-8")  # IT names the key
    with Store(db) as store:  # the administrator's enrolment attested the history before it
        checked = check(store.audit(), frozenset({admin.fingerprint}), record_digest=store.record_digest,
                        chain_hash=store.link_hashes().get)  # fmt: skip
        assert checked.problem is None and checked.legacy == 1
    approve = ("config", "approve", *place, "--as", SUPERVISOR, "--password-stdin")
    code, _, err = ionctl(capsys, monkeypatch, *approve, stdin="24681012\n")  # the old PIN: nothing
    assert code == 2, err
    assert "predates named accounts: its supervisor PIN no longer authorises anything" in err
    assert "ionctl users add NAME --full-name '...' --role supervisor --as ADMIN" in err
    code, _, err = ionctl(capsys, monkeypatch, "users", "add", SUPERVISOR, "--full-name", FULL_NAMES[SUPERVISOR],
                          "--role", "supervisor", "--as", ADMIN, "--password-stdin", *place,
                          stdin=f"{PASSWORDS[ADMIN]}\n{NEW}\n")  # fmt: skip
    assert code == 0, err
    code, out, _ = ionctl(capsys, monkeypatch, "users", "list", *place)
    assert re.search(rf"^{SUPERVISOR}\t.*\tmust set password$", out, re.MULTILINE), out
    code, out, err = ionctl(capsys, monkeypatch, *approve, stdin=f"{NEW}\n{PASSWORDS[SUPERVISOR]}\n")
    assert code == 0, err
    assert "initial password; set a password of your own" in err and "signed by Sam Supervisor" in out
    with Store(db) as store:
        require_approved(load_config(site), store)
        assert store.audit(action="config-approve")[-1]["actor"] == SUPERVISOR
        checked = check(store.audit(), frozenset({admin.fingerprint}), record_digest=store.record_digest,
                        chain_hash=store.link_hashes().get)  # fmt: skip
        assert checked.problem is None and checked.legacy == 1
        store.append_audit(
            "config-approve", "supervisor", {"path": "x", "sha256": "0" * 64, "presets": [], "note": ""}
        )  # a PIN-era-looking row after the enrolment
        checked = check(store.audit(), frozenset({admin.fingerprint}), record_digest=store.record_digest,
                        chain_hash=store.link_hashes().get)  # fmt: skip
        assert checked.problem is not None and "not signed" in checked.problem.reason


def test_a_config_file_of_ones_own_cannot_name_the_administrators_when_the_site_file_exists(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, clinic: Clinic, tmp_path: Path
) -> None:
    """The root of trust is the site file IT keeps: a technician who bootstraps an administrator of their own and
    names it in a --config file of their own enrols nobody, approves nothing, and the limits stay the site's."""
    from ionctl.config.site import default_path

    site = default_path()
    site.parent.mkdir(parents=True, exist_ok=True)
    site.write_text(clinic.config.read_text(encoding="utf-8"), encoding="utf-8")  # the site file names ada only
    db = ("--db", str(clinic.store))
    code, out, _ = ionctl(capsys, monkeypatch, "users", "bootstrap", "mallory", "--full-name", "Mal Lory", *db,
                          "--password-stdin", stdin="Orchard-gate-58\n")  # fmt: skip
    assert code == 0
    (fingerprint,) = set(re.findall(r"SHA256:[A-Za-z0-9+/]+", out))
    mine = tmp_path / "mine.toml"
    mine.write_text(clinic.config.read_text(encoding="utf-8").replace(
        f'administrators = ["{clinic.administrator}"]',
        f'administrators = ["{clinic.administrator}", "{fingerprint}"]').replace(
        "max_current_ma = 4.0", "max_current_ma = 10.0", 1), encoding="utf-8")  # fmt: skip
    assert fingerprint in mine.read_text() and fingerprint not in site.read_text()
    assert load_config(mine).accounts.administrators == frozenset({clinic.administrator})
    code, _, err = ionctl(capsys, monkeypatch, "users", "add", "malsup", "--full-name", "Mal Sup", "--role",
                          "supervisor", "--as", "mallory", *db, "--config", str(mine), "--password-stdin",
                          stdin="Orchard-gate-58\nInitial-pass-77\n")  # fmt: skip
    assert code == 2 and "not one the site configuration names" in err, err
    with Store(clinic.store) as store:
        assert "malsup" not in People(store).all_accounts()
        with pytest.raises(ConfigNotApproved):
            require_approved(load_config(mine), store)


def test_a_replayed_approval_or_password_change_is_refused_and_fails_verify(clinic: Clinic, tmp_path: Path) -> None:
    """Entries copied verbatim (signature and all) and appended again, as anyone who can write the store could:
    an old approval does not bring back the configuration it approved, an old password change does not bring
    back the password it set, and the check names each copy as a replay."""
    old_text = clinic.config.read_text(encoding="utf-8")
    with Store(clinic.store) as store:
        people = clinic.people(store)
        tess = people.login(TECHNICIAN, PASSWORDS[TECHNICIAN])
        people.change_password(tess, PASSWORDS[TECHNICIAN], "Leaked-pebble-61")
        people.change_password(tess, "Leaked-pebble-61", "Fresh-window-72")  # the leaked one is replaced
        clinic.config.write_text(old_text.replace("max_current_ma = 4.0", "max_current_ma = 2.0", 1), "utf-8")
        new = load_config(clinic.config)
        detail = {"path": new.source, "sha256": new.sha256, "presets": sorted(new.presets), "note": ""}
        people.signed(clinic.login(store, SUPERVISOR), "config-approve", detail)
        (first, *_) = store.audit(action="config-approve")
        leaked = store.audit(action="user-passwd")[0]
        for entry in (first, leaked):
            store.append_audit(entry["action"], entry["actor"], entry["detail"], utc=entry["utc"])
        old = tmp_path / "old.toml"
        old.write_text(old_text, encoding="utf-8")
        with pytest.raises(ConfigNotApproved, match="replayed"):
            require_approved(load_config(old), store)
        with pytest.raises(LoginRefused):
            people.login(TECHNICIAN, "Leaked-pebble-61")
        assert people.login(TECHNICIAN, "Fresh-window-72").name == TECHNICIAN
        hashes = store.link_hashes()
        checked = check(store.audit(), frozenset({clinic.administrator}), record_digest=store.record_digest,
                        chain_hash=hashes.get, keep_going=True)  # fmt: skip
    assert [p.reason for p in checked.problems] == [
        f"its signature is a copy of link {first['gseq']}'s: a replayed entry",
        f"its signature is a copy of link {leaked['gseq']}'s: a replayed entry",
    ]

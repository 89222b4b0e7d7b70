"""`ionctl.config.people`, unit by unit: the lockout after five wrong passwords and its end (a moved clock), the
passwords refused as weak, the production scrypt cost of what `ionctl users add` makes, and an enrolment row
written into the store by something other than an administrator's signed act failing `check`."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ionctl.config.people import (
    PRODUCTION_COST,
    Account,
    Identity,
    LoginRefused,
    People,
    Role,
    WeakPassword,
    check_password,
    new_key,
    seal,
)
from ionctl.config.proof import Checked, check
from ionctl.config.site import load_config
from ionctl.records import Store
from tests.people import ADMIN, PASSWORDS, SUPERVISOR, TECHNICIAN, TEST_COST, Clinic, make_clinic


@pytest.fixture
def clinic(tmp_path: Path) -> Clinic:
    return make_clinic(tmp_path)


def _check(store: Store, clinic: Clinic) -> Checked:
    return check(store.audit(), load_config(clinic.config).accounts.administrators,
                 record_digest=store.record_digest, chain_hash=store.link_hashes().get)  # fmt: skip


# -- lockout ---------------------------------------------------------------------------------------------------


def test_five_wrong_passwords_lock_the_account_until_the_lockout_ends(clinic: Clinic) -> None:
    now = [datetime(2026, 3, 2, 9, 0, tzinfo=UTC)]
    with Store(clinic.store) as store:
        people = clinic.people(store, clock=lambda: now[0])
        for attempt in range(1, 5):
            with pytest.raises(LoginRefused, match=f"{5 - attempt} (tries|try) before a lockout") as refused:
                people.login(TECHNICIAN, f"wrong-guess-{attempt}")
            assert refused.value.until is None
        with pytest.raises(LoginRefused, match="locked after 5 wrong passwords until 2026-03-02T09:15") as locked:
            people.login(TECHNICIAN, "wrong-guess-5")
        assert locked.value.until == now[0] + timedelta(minutes=15)
        now[0] += timedelta(minutes=14, seconds=59)
        with pytest.raises(LoginRefused, match="locked") as still:  # the right password does not open it early
            people.login(TECHNICIAN, PASSWORDS[TECHNICIAN])
        assert still.value.until == datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
        now[0] += timedelta(seconds=1)
        assert people.login(TECHNICIAN, PASSWORDS[TECHNICIAN]).name == TECHNICIAN
        denied = [e["detail"]["reason"] for e in store.audit(action="login-denied") if e["actor"] == TECHNICIAN]
        assert denied == ["wrong password"] * 5 + ["locked"]
        (lock,) = store.audit(action="user-locked")
        assert lock["detail"]["until"].startswith("2026-03-02T09:15:00") and lock["detail"]["failures"] == 5


def test_a_lockout_that_ended_counts_afresh(clinic: Clinic) -> None:
    now = [datetime(2026, 3, 2, 9, 0, tzinfo=UTC)]
    with Store(clinic.store) as store:
        people = clinic.people(store, clock=lambda: now[0])
        for attempt in range(5):
            with pytest.raises(LoginRefused):
                people.login(TECHNICIAN, f"wrong-{attempt}")
        now[0] += timedelta(minutes=16)
        with pytest.raises(LoginRefused, match="4 tries before a lockout"):
            people.login(TECHNICIAN, "wrong-again")


def test_an_administrator_unlocks_a_locked_account(clinic: Clinic) -> None:
    with Store(clinic.store) as store:
        people = clinic.people(store)
        for attempt in range(5):
            with pytest.raises(LoginRefused):
                people.login(SUPERVISOR, f"wrong-{attempt}")
        assert people.account(SUPERVISOR).locked_until is not None
        people.unlock(clinic.login(store, ADMIN), SUPERVISOR)
        assert people.login(SUPERVISOR, PASSWORDS[SUPERVISOR]).name == SUPERVISOR


# -- passwords -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "why"),
    [("12345678", "all-digit"), (" " * 8, "blanks"), ("password1", "common"), ("Password1", "common"),
     ("1234567", "at least 8"), ("xxxxxxxx", "repeated"), ("my-tess-pass9", "name")],
)  # fmt: skip
def test_weak_passwords_are_refused(password: str, why: str) -> None:
    with pytest.raises(WeakPassword, match=why):
        check_password(password, TECHNICIAN)


def test_a_weak_initial_password_enrols_nobody(clinic: Clinic) -> None:
    with Store(clinic.store) as store:
        people = clinic.people(store)
        with pytest.raises(WeakPassword):
            people.add(clinic.login(store, ADMIN), "nora", "Nora Nurse", Role.TECHNICIAN, "12345678")
        assert "nora" not in people.accounts()


def test_ionctl_users_add_seals_the_credential_at_the_production_cost(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ionctl.cli.main import main

    monkeypatch.setattr("sys.stdin", io.StringIO(f"{PASSWORDS[ADMIN]}\nInitial-lark-77\n"))
    code = main(["users", "add", "nora", "--full-name", "Nora Nurse", "--role", "technician", "--as", ADMIN,
                 "--password-stdin", "--db", str(clinic.store), "--config", str(clinic.config)])  # fmt: skip
    assert code == 0
    with Store(clinic.store) as store:
        (enrolment,) = [e for e in store.audit(action="user-enrol") if e["detail"]["name"] == "nora"]
    credential = enrolment["detail"]["credential"]
    assert (credential["n"], credential["r"], credential["p"]) == (PRODUCTION_COST.n, PRODUCTION_COST.r,
                                                                   PRODUCTION_COST.p)  # fmt: skip
    assert PRODUCTION_COST.n >= 2**17 and TEST_COST.n < PRODUCTION_COST.n


# -- forged enrolments -----------------------------------------------------------------------------------------


def test_the_clinics_people_verify(clinic: Clinic) -> None:
    with Store(clinic.store) as store:
        checked = _check(store, clinic)
    assert checked.problem is None and checked.signatures > 0


def _forged(name: str, role: Role) -> Identity:
    private, public = new_key()
    account = Account(name, "Mallory Forger", role, public, seal(private, "Forged-pass-99", public, TEST_COST))
    return Identity(account, private)


def test_a_self_signed_supervisor_enrolment_fails_check_and_cannot_log_in(clinic: Clinic) -> None:
    with Store(clinic.store) as store:
        mallory = _forged("mallory", Role.SUPERVISOR)
        detail = {"name": "mallory", "full_name": "Mallory Forger", "role": "supervisor",
                  "public_key": mallory.account.public_key.hex(), "credential": dict(mallory.account.credential),
                  "must_change": False}  # fmt: skip
        gseq = People(store, cost=TEST_COST).signed(mallory, "user-enrol", detail)
        checked = _check(store, clinic)
        assert checked.problem is not None and "enrolled themselves" in str(checked.problem)
        assert checked.problem.gseq == store.audit()[-1]["gseq"] == gseq
        with pytest.raises(LoginRefused, match="not enrolled by an administrator"):
            clinic.people(store).login("mallory", "Forged-pass-99")


def test_an_enrolment_claiming_the_administrator_but_signed_with_another_key_fails_check(clinic: Clinic) -> None:
    with Store(clinic.store) as store:
        real = clinic.people(store).account(ADMIN)
        impostor = _forged(ADMIN, Role.ADMINISTRATOR)
        other = Identity(Account(ADMIN, real.full_name, Role.ADMINISTRATOR, impostor.account.public_key,
                                 impostor.account.credential), impostor._private)  # fmt: skip
        mallory = _forged("mallory", Role.SUPERVISOR)
        detail = {"name": "mallory", "full_name": "Mallory Forger", "role": "supervisor",
                  "public_key": mallory.account.public_key.hex(), "credential": dict(mallory.account.credential),
                  "must_change": False}  # fmt: skip
        People(store, cost=TEST_COST).signed(other, "user-enrol", detail)
        checked = _check(store, clinic)
        assert checked.problem is not None
        assert f"not the one {ADMIN!r} held then" in str(checked.problem)


def test_an_enrolment_row_without_a_signature_fails_check(clinic: Clinic) -> None:
    with Store(clinic.store) as store:
        mallory = _forged("mallory", Role.SUPERVISOR)
        store.append_audit("user-enrol", ADMIN, {"name": "mallory", "full_name": "Mallory Forger",
                                                 "role": "supervisor", "public_key": mallory.account.public_key.hex(),
                                                 "credential": dict(mallory.account.credential)})  # fmt: skip
        checked = _check(store, clinic)
        assert "not signed" in str(checked.problem)
        with pytest.raises(LoginRefused):
            clinic.people(store).login("mallory", "Forged-pass-99")


def test_a_name_typed_with_caps_lock_on_is_the_account_and_its_password_stays_exact(tmp_path: Path) -> None:
    clinic = make_clinic(tmp_path / "clinic")
    with Store(clinic.store) as store:
        people = clinic.people(store)
        assert people.login(TECHNICIAN.upper(), PASSWORDS[TECHNICIAN]).name == TECHNICIAN
        with pytest.raises(LoginRefused, match="wrong password"):
            people.login(TECHNICIAN.upper(), PASSWORDS[TECHNICIAN].swapcase())
        assert [e["detail"]["name"] for e in store.audit(action="login-denied")] == [TECHNICIAN]


def test_guesses_made_at_once_from_many_connections_check_no_more_passwords_than_the_lockout_allows(
    tmp_path: Path,
) -> None:
    """Ten wrong passwords tried at the same instant, each from its own connection (as ten processes would): the
    attempt is counted in the same write transaction as the lockout check, before the password is checked, so
    five are checked and the other five are refused as locked without a check."""
    import threading

    from ionctl.config.people import Cost, People, Role, Trust

    clinic = make_clinic(tmp_path / "clinic")
    slow = Cost(2**14, 8, 1)  # a check long enough (tens of ms) for the guesses to overlap
    with Store(clinic.store) as store:
        people = People(store, Trust.of(load_config(clinic.config)), cost=slow)
        people.add(clinic.login(store, ADMIN), "vic", "Vic Victim", Role.TECHNICIAN, "Initial-plum-pw1")
        people.activate("vic", "Initial-plum-pw1", "Harbour-kite-93")
    barrier, outcomes = threading.Barrier(10), []

    def guess(n: int) -> None:
        with Store(clinic.store) as own:
            mine = People(own, Trust.of(load_config(clinic.config)), cost=slow)
            barrier.wait()
            try:
                mine.login("vic", f"Wrong-guess-{n:02d}")
            except LoginRefused as refused:
                outcomes.append(str(refused))

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    with Store(clinic.store) as store:
        attempts = [e for e in store.audit(action="login-attempt") if e["detail"]["name"] == "vic"]
        denied = [e["detail"]["reason"] for e in store.audit(action="login-denied") if e["detail"]["name"] == "vic"]
        assert People(store, Trust.of(load_config(clinic.config))).account("vic").locked_until is not None
    assert len(outcomes) == 10 and all("is locked" in o or "wrong password" in o for o in outcomes), outcomes
    assert len(attempts) == 1 + 5  # the activation's own, then exactly five guesses checked
    assert sorted(denied) == ["locked"] * 5 + ["wrong password"] * 5

"""The site configuration and who may change it: packaged presets, errors that name the key and its line,
a hand-edited file refused until a supervisor approves it (signed, under their own account), a wrong password
that changes nothing, and every act in the hash-chained audit trail. `ionctl run` is run as a user runs it (a
subprocess): a refusal before the device is touched exits 2, an accepted configuration reaches the device (exit 5
for a port that is not there)."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ionctl.config import (
    ConfigError,
    ConfigNotApproved,
    approve,
    approved_sha256,
    load_config,
    parse_config,
    require_approved,
    set_value,
)
from ionctl.config.authority import initial_text
from ionctl.config.people import Identity, LoginRefused, NotAllowed, People, WeakPassword, check_password
from ionctl.drivers.base import Polarity
from ionctl.records import Store
from ionctl.records.store import GENESIS, OPEN_FIELDS, SCHEMA_VERSION, link_hash, migrate
from ionctl.safety import Prescription, PrescriptionError, PrescriptionRefused, SiteLimits, validate
from tests.people import PASSWORDS, SUPERVISOR, TECHNICIAN, Clinic, make_clinic
from tests.sim.endpoints import ROOT
from tests.test_run import DEXAMETHASONE, simulator, with_option


def ionctl(*args: str, input_: str = "") -> subprocess.CompletedProcess[str]:
    """`python -m ionctl ARGS` with `input_` on a stdin that is not a terminal."""
    return subprocess.run([sys.executable, "-m", "ionctl", *args], cwd=ROOT, input=input_, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def bench(clinic: Clinic, config: Path | None = None) -> tuple[str, ...]:
    """`ionctl run` options for a session in `clinic` (its site file, or `config`) run by its technician, who logs
    in: their password is `clinic.stdin(TECHNICIAN)` on stdin."""
    return ("--db", str(clinic.store), "--config", str(config or clinic.config), "--operator", TECHNICIAN,
            "--password-stdin")  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "records.sqlite3") as s:
        yield s


@pytest.fixture
def clinic(tmp_path: Path, store: Store) -> Clinic:
    """A complete site file naming the clinic's administrator, approved by its supervisor, in `store`."""
    return make_clinic(tmp_path)


@pytest.fixture
def site(clinic: Clinic) -> Path:
    return clinic.config


@pytest.fixture
def sam(clinic: Clinic, store: Store) -> tuple[People, Identity]:
    """The clinic's supervisor, logged in."""
    return clinic.people(store), clinic.login(store, SUPERVISOR)


# -- the packaged defaults -------------------------------------------------------------------------------------


def test_the_packaged_defaults_load_with_the_packaged_limits_and_a_source_for_every_preset() -> None:
    config = load_config(None)
    assert config.packaged and config.limits == SiteLimits.load(None)
    assert {"dexamethasone", "lidocaine", "tap-water-hands", "asc-exosome-hand-eczema"} <= set(config.presets)
    assert all(p.source.strip() for p in config.presets.values())
    assert all(d.source.strip() for d in config.drugs.values())


def test_the_dexamethasone_preset_is_cathode_4_ma_40_ma_min_and_passes_the_limits_on_10_cm2() -> None:
    config = load_config(None)
    p = config.preset("dexamethasone").prescription(patient_id="P", operator_id="O", electrode_area_cm2=10.0)
    assert (p.polarity.value, p.current_ma, p.dose_ma_min) == ("cathode", 4.0, 40.0)
    validate(p, config.limits)


def test_the_lidocaine_preset_is_delivered_from_the_anode() -> None:
    config = load_config(None)
    p = config.preset("lidocaine").prescription(patient_id="P", operator_id="O", electrode_area_cm2=10.0)
    assert p.polarity.value == "anode"
    validate(p, config.limits)


def test_the_tap_water_preset_is_duration_based_in_trays_under_the_tap_water_class() -> None:
    config = load_config(None)
    preset = config.preset("tap-water-hands")
    p = preset.prescription(patient_id="P", operator_id="O")
    assert p.protocol_class == "tap-water" and p.duration_min == 20.0 and p.dose_ma_min is None
    assert p.electrode_area_cm2 == config.electrode("tray-100cm2").area_cm2
    validate(p, config.limits)
    reversed_ = preset.prescription(patient_id="P", operator_id="O", polarity_reversal_at_midpoint=True)
    validate(reversed_, config.limits)  # neutral: the optional reversal is allowed


def test_the_exosome_preset_leaves_area_and_duration_to_the_clinician() -> None:
    preset = load_config(None).preset("asc-exosome-hand-eczema")
    assert preset.missing == ("electrode_area_cm2", "dose_ma_min or duration_min")
    assert preset.course is not None and (preset.course.sessions, preset.course.min_interval_days) == (6, 3.0)
    with pytest.raises(PrescriptionError, match="electrode_area_cm2, dose_ma_min or duration_min to the clinician"):
        preset.prescription(patient_id="P", operator_id="O")


def test_the_exosome_presets_50_ma_is_refused_by_the_maximum_current_limit() -> None:
    config = load_config(None)
    p = config.preset("asc-exosome-hand-eczema").prescription(
        patient_id="P", operator_id="O", electrode_area_cm2=200.0, duration_min=20.0
    )
    with pytest.raises(PrescriptionRefused) as refused:
        validate(p, config.limits)
    # 50/200 = 0.25 mA/cm² passes the density limit; the current itself is what is forbidden (and 20 min of it
    # would be 1000 mA·min, so the dose limit is named too)
    assert refused.value.limit_names == ("max_current_ma", "max_dose_ma_min")
    assert "current 50.00 mA exceeds the site limit of 4.00 mA (max_current_ma)" in str(refused.value)


def test_ionctl_run_with_the_exosome_preset_is_refused_naming_the_limit(tmp_path: Path) -> None:
    clinic = make_clinic(tmp_path / "clinic")
    done = ionctl("run", "--preset", "asc-exosome-hand-eczema", "--electrode-area", "100", "--duration", "20",
                  "--patient", "P", *bench(clinic), "--device", str(tmp_path / "no-port"), "--yes",
                  input_=clinic.stdin(TECHNICIAN))  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "max_current_ma" in done.stderr and "50.00" in done.stderr and "4.00" in done.stderr


def test_ionctl_run_names_what_a_preset_leaves_to_the_clinician(tmp_path: Path) -> None:
    clinic = make_clinic(tmp_path / "clinic")
    done = ionctl("run", "--preset", "asc-exosome-hand-eczema", "--patient", "P", *bench(clinic),
                  "--device", str(tmp_path / "no-port"), "--yes", input_=clinic.stdin(TECHNICIAN))  # fmt: skip
    assert done.returncode == 2
    assert "--electrode-area or --electrode and --dose or --duration" in done.stderr


def test_an_option_changes_a_preset_value_and_the_limits_still_apply(tmp_path: Path) -> None:
    config = load_config(None)
    p = config.preset("dexamethasone").prescription(
        patient_id="P", operator_id="O", electrode_area_cm2=10.0, duration_min=12.0
    )
    assert p.duration_min == 12.0 and p.dose_ma_min is None  # a duration replaces the preset's dose
    with pytest.raises(PrescriptionRefused, match="max_current_ma"):
        preset = config.preset("dexamethasone")
        validate(preset.prescription(patient_id="P", operator_id="O", electrode_area_cm2=20.0, current_ma=4.5),
                 config.limits)  # fmt: skip


def test_a_dose_outside_the_drugs_usual_range_gets_a_note_not_a_refusal() -> None:
    config = load_config(None)
    preset = config.preset("lidocaine")
    usual = preset.prescription(patient_id="P", operator_id="O", electrode_area_cm2=10.0)
    high = preset.prescription(patient_id="P", operator_id="O", electrode_area_cm2=10.0, dose_ma_min=10.0)
    assert config.usual_dose_note(usual) is None
    note = config.usual_dose_note(high)
    assert note is not None and "10.0 mA·min is outside the usual 20–80 mA·min for lidocaine" in note
    validate(high, config.limits)


def test_the_exosome_preset_visits_both_hands_one_channel_each() -> None:
    preset = load_config(None).preset("asc-exosome-hand-eczema")
    assert preset.visit == ("left hand", "right hand")
    assert preset.site == "both hands"  # a session alone with the preset
    assert load_config(None).preset("dexamethasone").visit == ()


_VISIT = 'visit = ["left hand", "right hand"]'


@pytest.mark.parametrize(
    ("visit", "sites"),
    [('["L hand", "Right-Hand"]', ("left hand", "right hand")),
     ('["left foot", "right foot", "both hands"]', ("left foot", "right foot", "both hands"))],
)  # fmt: skip
def test_a_presets_visit_is_kept_as_the_chart_says_its_sites(visit: str, sites: tuple[str, ...]) -> None:
    text = initial_text()
    assert text.count(_VISIT) == 1
    config = parse_config(text.replace(_VISIT, f"visit = {visit}"), source="site.toml")
    assert config.preset("asc-exosome-hand-eczema").visit == sites


@pytest.mark.parametrize(
    ("visit", "problem"),
    [('["left hand", "L hand"]', "'L hand' is the left hand twice"),
     ('["left hand", "left earlobe"]', "'left earlobe' is not a treatment site"),
     ('["left hand"]', "a list of 2 to 8 treatment sites"),
     ('"left hand"', "a list of 2 to 8 treatment sites"),
     ('["left hand", 3]', "3 is not a treatment site"),
     ("[" + ", ".join(f'"{s} {b}"' for s in ("left", "right") for b in ("hand", "foot", "knee", "ankle", "wrist"))
      + "]", "a list of 2 to 8")],
)  # fmt: skip
def test_a_bad_visit_is_refused_naming_the_preset_and_the_site(visit: str, problem: str) -> None:
    text = initial_text()
    error = _error(text.replace(_VISIT, f"visit = {visit}"))
    assert error.key == "presets.asc-exosome-hand-eczema.visit", error
    assert "preset 'asc-exosome-hand-eczema'" in error.problem and problem in error.problem, error.problem
    assert error.line == _line(text, _VISIT)


# -- a bad file names the key and its line ---------------------------------------------------------------------


def _error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="site.toml")
    return caught.value


def _line(text: str, needle: str) -> int:
    """The line where `needle` (unique in `text`) starts."""
    assert text.count(needle) == 1, needle
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize(
    ("needle", "replacement", "key", "problem"),
    [
        ('current_ma = 4.0\ndose_ma_min = 40.0\nsource = "40', 'current_ma = -4.0\ndose_ma_min = 40.0\nsource = "40',
         "presets.dexamethasone.current_ma", "positive"),
        ('polarity = "anode"\ncurrent_ma = 4.0', 'polarity = "positive"\ncurrent_ma = 4.0',
         "presets.lidocaine.polarity", "anode"),
        ('electrode = "tray-100cm2"', 'electrode = "tray-200cm2"', "presets.tap-water-hands.electrode", "tray-200cm2"),
        ('charge = "+"', 'charge = "-"', "drugs.lidocaine.charge", "contradicts"),
        ("area_cm2 = 10.0", "area_cm2 = 0", "electrodes.patch-10cm2.area_cm2", "positive"),
        ("max_current_ma = 4.0", 'max_current_ma = "four"', "limits.max_current_ma", "number"),
        ("max_current_ma = 20.0", "max_current_ma = -20.0", "limits.class.tap-water.max_current_ma", "positive"),
        ("sessions = 6", "sessions = 0", "presets.asc-exosome-hand-eczema.course.sessions", "whole number"),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_with_its_key_and_line(needle: str, replacement: str, key: str, problem: str) -> None:
    text = initial_text()
    assert text.count(needle) == 1, needle
    bad = text.replace(needle, replacement)
    error = _error(bad)
    assert error.key == key and problem in error.problem
    assert error.line == _line(text, needle)  # the replacement starts where the needle did
    assert f"site.toml:{error.line}: {key}" in str(error)


def test_an_unknown_key_is_refused_with_its_line() -> None:
    bad = initial_text().replace("volume_ml = 1.5", "volume_ml = 1.5\nvolume_l = 0.0015")
    error = _error(bad)
    assert error.key == "presets.asc-exosome-hand-eczema.volume_l" and "unknown key" in error.problem
    assert error.line == _line(bad, "volume_l ")


def test_a_missing_limit_names_the_key_and_the_table_line() -> None:
    text = initial_text()
    bad = "\n".join(line for line in text.splitlines() if not line.startswith("watchdog_s"))
    error = _error(bad)
    assert error.key == "limits.watchdog_s" and error.problem == "missing"
    assert error.line == _line(bad, "\n[limits]\n") + 1


def test_invalid_toml_is_refused_with_the_line() -> None:
    text = initial_text()
    bad = text.replace("current_ma = 15.0", "current_ma = = 15.0")
    error = _error(bad)
    assert error.line == _line(bad, "current_ma = = 15.0") and "not valid TOML" in error.problem


def test_ionctl_run_refuses_a_bad_site_file_naming_key_and_line(tmp_path: Path) -> None:
    clinic = make_clinic(tmp_path / "clinic")
    bad = tmp_path / "site.toml"
    bad.write_text(clinic.config.read_text().replace("area_cm2 = 10.0", "area_cm2 = -1"), encoding="utf-8")
    done = ionctl("run", "--device", str(tmp_path / "no-port"), *DEXAMETHASONE, "--yes", *bench(clinic, bad),
                  input_=clinic.stdin(TECHNICIAN))  # fmt: skip
    assert done.returncode == 2
    assert f"{bad}:{_line(bad.read_text(), 'area_cm2 = -1')}: electrodes.patch-10cm2.area_cm2" in done.stderr


# -- approval ---------------------------------------------------------------------------------------------------


def test_a_hand_edited_file_is_refused_until_a_supervisor_approves_it(
    site: Path, store: Store, sam: tuple[People, Identity]
) -> None:
    require_approved(load_config(site), store)
    site.write_text(site.read_text().replace("max_current_ma = 4.0", "max_current_ma = 8.0"), encoding="utf-8")
    edited = load_config(site)
    with pytest.raises(ConfigNotApproved, match="not approved"):
        require_approved(edited, store)
    approve(*sam, edited, note="reviewed")
    require_approved(edited, store)
    assert approved_sha256(store) == edited.sha256


def test_ionctl_run_refuses_a_hand_edited_file_before_the_device_and_runs_once_approved(
    tmp_path: Path, clinic: Clinic, site: Path, store: Store
) -> None:
    db = str(store.path)
    args = ("run", "--device", str(tmp_path / "no-port"), *DEXAMETHASONE, "--yes", *bench(clinic))
    tess = clinic.stdin(TECHNICIAN)
    assert ionctl(*args, input_=tess).returncode == 5  # approved: accepted, then the port is not there
    site.write_text(site.read_text() + "\n# a comment is an edit too\n", encoding="utf-8")
    refused = ionctl(*args, input_=tess)
    assert refused.returncode == 2 and "is not approved" in refused.stderr and "ionctl config approve" in refused.stderr
    approved = ionctl("config", "approve", "--config", str(site), "--db", db, "--as", SUPERVISOR, "--password-stdin",
                      input_=PASSWORDS[SUPERVISOR] + "\n")  # fmt: skip
    assert approved.returncode == 0, approved.stderr
    assert ionctl(*args, input_=tess).returncode == 5


def test_a_wrong_password_changes_nothing_and_is_recorded(site: Path, store: Store) -> None:
    before_text, before_approved = site.read_bytes(), approved_sha256(store)
    db = str(store.path)
    as_sam = ("--as", SUPERVISOR, "--password-stdin")
    wrong = ionctl("config", "set", "limits.max_current_ma", "8.0", "--config", str(site), "--db", db, "--yes",
                   *as_sam, input_="Wrong-pass-999\n")  # fmt: skip
    assert wrong.returncode == 2 and "wrong password" in wrong.stderr
    site.write_text(site.read_text() + "# edit\n", encoding="utf-8")
    refused = ionctl("config", "approve", "--config", str(site), "--db", db, *as_sam, input_="Wrong-pass-000\n")
    assert refused.returncode == 2 and "wrong password" in refused.stderr
    assert approved_sha256(store) == before_approved
    site.write_bytes(before_text)
    assert load_config(site).limits.max_current_ma == 4.0
    denied = store.audit(action="login-denied")
    assert [(e["actor"], e["detail"]["reason"]) for e in denied] == [(SUPERVISOR, "wrong password")] * 2


def test_in_a_store_where_nobody_is_enrolled_nothing_can_be_approved(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "site.toml"
    path.write_text(initial_text(), encoding="utf-8")
    done = ionctl("config", "approve", "--config", str(path), "--db", str(store.path), "--as", SUPERVISOR,
                  "--password-stdin", input_="Super-harbour-2\n")  # fmt: skip
    assert done.returncode == 2 and "no account 'sam'" in done.stderr and "ionctl users add" in done.stderr
    assert approved_sha256(store) is None


def test_a_technician_cannot_approve_or_change_the_configuration(clinic: Clinic, site: Path, store: Store) -> None:
    people, tess = clinic.people(store), clinic.login(store, TECHNICIAN)
    before = site.read_bytes()
    with pytest.raises(NotAllowed, match="only a supervisor may approve"):
        set_value(people, tess, site, "limits.max_current_ma", "3.0")
    site.write_text(site.read_text() + "# edit\n", encoding="utf-8")
    with pytest.raises(NotAllowed):
        approve(people, tess, load_config(site))
    assert not store.audit(action="config-set") and len(store.audit(action="config-approve")) == 1
    site.write_bytes(before)


def test_set_keeps_the_comments_and_the_new_file_is_the_approved_one(
    site: Path, store: Store, sam: tuple[People, Identity]
) -> None:
    change = set_value(*sam, site, "limits.max_current_ma", "5.0")
    text = site.read_text()
    assert (change.old, change.new) == (4.0, 5.0)
    assert "max_current_ma = 5.0" in text and "# source: ActivaDose II manual" in text
    require_approved(load_config(site), store)
    assert load_config(site).limits.max_current_ma == 5.0


def test_set_refuses_a_value_that_breaks_the_file_and_writes_nothing(
    site: Path, store: Store, sam: tuple[People, Identity]
) -> None:
    before = site.read_bytes()
    with pytest.raises(ConfigError, match="limits.min_ramp_s"):
        set_value(*sam, site, "limits.min_ramp_s", "90.0")  # above max_ramp_s (60)
    assert site.read_bytes() == before
    assert not store.audit(action="config-set")


def test_set_refuses_to_carry_a_hand_edit_along(site: Path, store: Store, sam: tuple[People, Identity]) -> None:
    site.write_text(site.read_text().replace("max_dose_ma_min = 80.0", "max_dose_ma_min = 70.0"), encoding="utf-8")
    with pytest.raises(ConfigNotApproved):
        set_value(*sam, site, "limits.max_current_ma", "5.0")
    assert "max_current_ma = 4.0" in site.read_text()


# -- the audit trail --------------------------------------------------------------------------------------------


def test_every_change_is_an_audit_entry_in_the_verified_chain(
    site: Path, store: Store, sam: tuple[People, Identity]
) -> None:
    set_value(*sam, site, "presets.lidocaine.dose_ma_min", "30.0")
    people, identity = sam
    people.change_password(identity, PASSWORDS[SUPERVISOR], "Harbour-lights-77")
    actions = [
        e["action"]
        for e in store.audit()
        if e["action"] not in ("user-enrol", "user-activate", "login", "login-attempt")
    ]
    assert actions == ["config-approve", "config-set", "user-passwd"]
    assert {e["actor"] for e in store.audit() if e["action"] in ("config-approve", "config-set")} == {SUPERVISOR}
    setting = store.audit(action="config-set")[0]["detail"]
    assert (setting["key"], setting["old"], setting["new"]) == ("presets.lidocaine.dose_ma_min", 40.0, 30.0)
    assert store.verify() is None
    for statement in ("UPDATE audit SET actor = 'x'", "DELETE FROM audit"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            store.db.execute(statement)


def test_an_edited_audit_entry_breaks_the_chain(site: Path, store: Store) -> None:
    store.db.execute("DROP TRIGGER audit_no_update")
    store.db.execute("UPDATE audit SET detail = replace(detail, 'reviewed', 'x') WHERE action = 'config-approve'")
    store.db.execute("UPDATE audit SET actor = 'someone-else' WHERE action = 'config-approve'")
    broken = store.verify()
    assert broken is not None and "config-approve" in broken.what


def test_a_password_is_stored_only_as_a_salted_scrypt_verifier_and_a_sealed_key(clinic: Clinic, store: Store) -> None:
    credentials = [e["detail"]["credential"] for e in store.audit() if "credential" in e["detail"]]
    assert {c["scheme"] for c in credentials} == {"scrypt+aes-256-gcm"}
    assert len({c["salt"] for c in credentials}) == len(credentials)
    dump = "\n".join(store.db.iterdump())
    assert all(password not in dump for password in PASSWORDS.values())
    with pytest.raises(WeakPassword, match="at least 8"):
        check_password("1234567")


def test_the_config_commands_set_approve_and_list_the_audit(tmp_path: Path) -> None:
    clinic = make_clinic(tmp_path, approve=False)
    db, path = str(clinic.store), clinic.config
    as_sam = ("--as", SUPERVISOR, "--password-stdin")
    show = ionctl("config", "show", "--config", str(path), "--db", db, "--json")
    assert json.loads(show.stdout)["state"].startswith("NOT APPROVED")
    approved = ionctl("config", "approve", "--config", str(path), "--db", db, *as_sam, input_=clinic.stdin(SUPERVISOR))
    assert approved.returncode == 0, approved.stderr
    wrong = ionctl("config", "set", "limits.max_dose_ma_min", "60", "--config", str(path), "--db", db, *as_sam,
                   "--yes", input_="Wrong-pass-000\n")  # fmt: skip
    assert wrong.returncode == 2 and "wrong password" in wrong.stderr
    done = ionctl("config", "set", "limits.max_dose_ma_min", "60", "--config", str(path), "--db", db, *as_sam,
                  "--yes", input_=clinic.stdin(SUPERVISOR))  # fmt: skip
    assert done.returncode == 0, done.stderr
    show = json.loads(ionctl("config", "show", "--config", str(path), "--db", db, "--json").stdout)
    assert show["state"] == "approved" and show["limits"]["max_dose_ma_min"] == 60.0
    audit = ionctl("config", "audit", "--db", db).stdout
    rows = [line.split()[4:6] for line in audit.splitlines()]  # seq, local date, time and zone, actor, action
    assert [row for row in rows if row[1] not in ("user-enrol", "user-activate", "login", "login-attempt")] == [
        [SUPERVISOR, "config-approve"],
        [SUPERVISOR, "login-denied"],
        [SUPERVISOR, "config-set"],
    ]
    verified = ionctl("records", "verify", "--db", db, "--config", str(path))
    assert verified.returncode == 0, verified.stdout + verified.stderr


# -- the record carries the configuration ------------------------------------------------------------------------


def test_a_session_record_carries_the_sha256_of_the_configuration_in_force(
    tmp_path: Path, clinic: Clinic, site: Path, store: Store
) -> None:
    args = with_option(DEXAMETHASONE, "--dose", "3")
    with simulator(tmp_path) as (device, _):
        done = ionctl("run", "--device", device, *args, "--yes", "--json", *bench(clinic),
                      input_=clinic.stdin(TECHNICIAN))  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)["record"]
    assert record["config_sha256"] == load_config(site).sha256
    assert store.verify() is None


def test_a_schema_1_file_is_migrated_and_its_records_still_verify(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, target=1)
    row = {"id": 1, "created_utc": "2026-01-01T00:00:00.000+00:00", "patient": "P", "operator": "O",
           "prescription": "{}", "limits": "{}", "limits_sha256": "x", "open_gseq": 1}  # fmt: skip
    db.execute(f"INSERT INTO records ({', '.join(OPEN_FIELDS)}, open_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               [row[k] for k in OPEN_FIELDS] + [link_hash(GENESIS, "open", row)])  # fmt: skip
    db.close()
    with Store(path) as migrated:
        assert migrated.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert migrated.verify() is None
        migrated.append_audit("note", "tester", {"text": "after migration"})
        migrated.close_record(1, {"outcome": "interrupted"})
        assert migrated.verify() is None


def test_read_password_reads_one_line_per_password_from_stdin() -> None:
    from ionctl.cli.login import PasswordUnavailable, read_password

    stdin = io.StringIO("first-pass-1\nsecond-pass-2\n")
    assert read_password("a", from_stdin=True, stdin=stdin) == "first-pass-1"
    assert read_password("b", from_stdin=True, stdin=stdin) == "second-pass-2"
    with pytest.raises(PasswordUnavailable):
        read_password("c", from_stdin=True, stdin=stdin)
    with pytest.raises(PasswordUnavailable, match="--password-stdin"):
        read_password("d", from_stdin=False, stdin=io.StringIO(""))


# -- found in review ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "key"),
    [({"protocol_class": "tap-water"}, "protocol_class"), ({"drug": "lidocaine"}, "drug"),
     ({"polarity": Polarity.ANODE}, "polarity")],
)  # fmt: skip
def test_a_preset_fixes_its_drug_polarity_and_class(change: dict[str, object], key: str) -> None:
    preset = load_config(None).preset("dexamethasone")
    with pytest.raises(PrescriptionError, match=f"gives {key} .* cannot be changed"):
        preset.prescription(patient_id="P", operator_id="O", electrode_area_cm2=40.0, **change)
    same = preset.prescription(patient_id="P", operator_id="O", electrode_area_cm2=10.0, drug=preset.drug)
    assert same.drug == preset.drug  # giving the preset's own value is no change


def test_ionctl_run_refuses_a_drug_preset_under_the_tap_water_limits(tmp_path: Path) -> None:
    clinic = make_clinic(tmp_path / "clinic")
    done = ionctl("run", "--preset", "dexamethasone", "--protocol-class", "tap-water", "--current", "20",
                  "--electrode-area", "40", "--dose", "100", "--patient", "P", *bench(clinic), "--device",
                  str(tmp_path / "no-port"), "--yes", input_=clinic.stdin(TECHNICIAN))  # fmt: skip
    assert done.returncode == 2 and "cannot be changed" in done.stderr


def test_the_tap_water_class_is_refused_for_a_charged_drug_even_without_a_preset() -> None:
    p = Prescription(drug="dexamethasone", polarity=Polarity.CATHODE, electrode_area_cm2=40.0, current_ma=4.0,
                     dose_ma_min=40.0, protocol_class="tap-water", patient_id="P", operator_id="O")  # fmt: skip
    with pytest.raises(PrescriptionRefused) as refused:
        validate(p, load_config(None).limits)
    assert refused.value.limit_names == ("protocol_class",) and "neutral solution" in str(refused.value)


def test_once_a_site_file_is_approved_a_missing_one_does_not_fall_back_to_the_packaged_defaults(
    site: Path, store: Store, sam: tuple[People, Identity]
) -> None:
    packaged = load_config(None)  # no site file in the (private) site directory
    with pytest.raises(ConfigNotApproved, match="packaged defaults are not what the supervisor approved"):
        require_approved(packaged, store)
    approve(*sam, packaged, note="back to the packaged limits")  # sam: trusted under the site file's administrators
    require_approved(packaged, store)
    with pytest.raises(ConfigNotApproved):
        require_approved(load_config(site), store)  # the site file is no longer the approved one


def test_the_packaged_defaults_need_no_approval_in_a_store_that_never_approved_anything(
    tmp_path: Path, store: Store
) -> None:
    make_clinic(tmp_path, approve=False)  # people, but nothing approved
    require_approved(load_config(None), store)


@pytest.mark.parametrize("key", ["presets.dexamethasone.current_ma.x", "drugs.lidocaine.usual_dose_ma_min.0"])
def test_set_through_a_value_is_an_error_naming_the_key_and_changes_nothing(
    site: Path, sam: tuple[People, Identity], key: str
) -> None:
    before = site.read_bytes()
    with pytest.raises(ConfigError, match="is a value, not a table"):
        set_value(*sam, site, key, "1.0")
    assert site.read_bytes() == before


def test_an_electrode_that_is_not_a_name_is_a_config_error() -> None:
    bad = initial_text().replace('electrode = "tray-100cm2"', 'electrode = ["tray-100cm2"]')
    assert _error(bad).key == "presets.tap-water-hands.electrode"


def test_a_wrong_current_password_is_recorded_even_with_a_too_short_new_one(
    store: Store, sam: tuple[People, Identity]
) -> None:
    people, identity = sam
    with pytest.raises(LoginRefused, match="wrong current password"):
        people.change_password(identity, "Wrong-pass-000", "1")
    assert store.audit()[-1]["action"] == "login-denied" and store.audit()[-1]["actor"] == SUPERVISOR


def test_an_approval_withdrawn_after_the_checks_stops_the_session_as_its_record_opens(
    tmp_path: Path, site: Path, store: Store, sam: tuple[People, Identity]
) -> None:
    """The console checks the approval when it starts; the record's opening checks it again (in its write
    transaction), so a configuration a supervisor has since replaced starts nothing."""
    from ionctl.treatment import Recorder, opening_check

    config = load_config(site)
    rx = config.preset("dexamethasone").prescription(patient_id="P", operator_id="O", electrode_area_cm2=10.0)
    set_value(*sam, site, "limits.max_current_ma", "3.0")  # a supervisor lowers a limit meanwhile
    err = io.StringIO()
    recorder = Recorder.open(store, rx, config.limits, err, config_sha256=config.sha256,
                             check=opening_check(config, None, course_rules=True))  # fmt: skip
    assert recorder is None and "is not approved" in err.getvalue()
    assert store.list_records() == []  # the opening was rolled back

"""`prepare`: everything decided before a device is touched, returned as data or refused as a typed value, and
never a line printed."""

from __future__ import annotations

from typing import Any

import pytest

from ionctl.config import SiteConfig
from ionctl.config.people import Identity, LoginRefused
from ionctl.records import Store
from ionctl.treatment import CourseRuleRefused, Prepared, Refused, TreatmentRequest, prepare
from tests.people import ADMIN, AUDITOR, PASSWORDS, SUPERVISOR, TECHNICIAN, Clinic
from tests.treatment.conftest import PATIENT

DEXA = TreatmentRequest(device="inprocess:sim", operator="typed text, never recorded", patient=PATIENT,
                        preset="dexamethasone", electrode_area_cm2=10.0, current_ma=2.0, dose_ma_min=0.5, ramp_up_s=5.0,
                        ramp_down_s=5.0, site="left forearm")  # fmt: skip


def test_a_prescription_over_a_limit_is_refused_naming_each_limit_and_nothing_is_printed(
    config: SiteConfig, store: Store, tess: Identity, capsys: pytest.CaptureFixture[str]
) -> None:
    request = TreatmentRequest(**{**DEXA.__dict__, "current_ma": 6.0})  # 0.6 mA/cm² on 10 cm²
    with pytest.raises(Refused) as refused:
        prepare(request, store=store, config=config, operator=tess)
    names = [v["limit_name"] for v in refused.value.violations]
    assert "max_density_ma_cm2" in names and "max_density_ma_cm2" in refused.value.message
    assert refused.value.prescription is not None and refused.value.prescription.current_ma == 6.0
    assert refused.value.config_sha256 == config.sha256  # what the refused session's record names
    assert capsys.readouterr() == ("", "")
    assert store.list_records() == []  # a refusal is a value: recording it is the front end's call


def test_a_request_that_describes_no_prescription_is_refused_without_one(
    config: SiteConfig, store: Store, tess: Identity
) -> None:
    with pytest.raises(Refused, match="give --patient") as refused:
        prepare(TreatmentRequest(**{**DEXA.__dict__, "patient": None}), store=store, config=config, operator=tess)
    assert refused.value.prescription is None and refused.value.violations == []


def test_a_checked_prescription_is_returned_as_data_with_its_summary(
    config: SiteConfig, store: Store, tess: Identity, capsys: pytest.CaptureFixture[str]
) -> None:
    prepared = prepare(DEXA, store=store, config=config, operator=tess)
    assert isinstance(prepared, Prepared) and prepared.override is None and prepared.course is None
    assert prepared.prescription.current_ma == 2.0 and prepared.limits is config.limits
    assert prepared.charge == "anionic"
    assert "Prescription (checked against the site limits)" in prepared.summary()
    assert "device: inprocess:sim" in prepared.summary()
    assert capsys.readouterr() == ("", "")


def test_a_course_rule_that_refuses_is_a_refusal_value_naming_the_rule(
    config: SiteConfig, store: Store, tess: Identity, refusing_course: int, capsys: pytest.CaptureFixture[str]
) -> None:
    request = TreatmentRequest(**{**DEXA.__dict__, "course_id": refusing_course})
    with pytest.raises(CourseRuleRefused) as refused:
        prepare(request, store=store, config=config, operator=tess,
                supervisor=lambda: pytest.fail("no override asked: no supervisor asked"))  # fmt: skip
    assert "the minimum interval is 3 days" in refused.value.rule
    assert refused.value.denied is None and refused.value.prescription is not None
    assert capsys.readouterr() == ("", "")


def test_a_supervisor_override_by_a_logged_in_supervisor_is_accepted_and_the_course_rules_left_out_at_opening(
    config: SiteConfig, store: Store, tess: Identity, sam: Identity, refusing_course: int
) -> None:
    request = TreatmentRequest(**{**DEXA.__dict__, "course_id": refusing_course, "override_reason": "missed visit"})
    prepared = prepare(request, store=store, config=config, operator=tess, supervisor=lambda: sam)
    override = prepared.override
    assert override is not None and override.reason == "missed visit" and override.course_id == refusing_course
    assert "minimum interval" in override.rule and override.operator == TECHNICIAN
    assert override.supervisor is sam
    assert override.audit() == {"reason": "missed visit", "rule": override.rule, "operator": TECHNICIAN,
                                "supervisor": SUPERVISOR}  # fmt: skip
    prepared.opening_check()(store)  # the course's rule is not checked again as the record opens
    assert store.audit(action="course-override") == []  # written, signed, once the record is open


def test_a_supervisor_override_with_a_wrong_password_is_refused_and_the_attempt_recorded(
    config: SiteConfig, store: Store, clinic: Clinic, tess: Identity, refusing_course: int
) -> None:
    request = TreatmentRequest(**{**DEXA.__dict__, "course_id": refusing_course, "override_reason": "missed visit"})
    people = clinic.people(store)
    wrong = "override refused: 'sam': unknown account or wrong password"
    with pytest.raises(CourseRuleRefused, match=wrong) as refused:
        prepare(request, store=store, config=config, operator=tess,
                supervisor=lambda: people.login(SUPERVISOR, "Wrong-password-1"))  # fmt: skip
    assert refused.value.denied is not None and "the minimum interval is 3 days" in refused.value.rule
    (denied,) = store.audit(action="login-denied")
    assert denied["actor"] == SUPERVISOR and denied["detail"]["reason"] == "wrong password"


def test_a_technician_cannot_override_a_course_rule(
    config: SiteConfig, store: Store, tess: Identity, refusing_course: int
) -> None:
    request = TreatmentRequest(**{**DEXA.__dict__, "course_id": refusing_course, "override_reason": "missed visit"})
    with pytest.raises(CourseRuleRefused, match="override refused: tess is a technician: only a supervisor may"):
        prepare(request, store=store, config=config, operator=tess, supervisor=lambda: tess)


def test_an_override_without_a_supervisor_to_ask_is_refused(
    config: SiteConfig, store: Store, tess: Identity, refusing_course: int
) -> None:
    request = TreatmentRequest(**{**DEXA.__dict__, "course_id": refusing_course, "override_reason": "missed visit"})
    with pytest.raises(CourseRuleRefused, match="override refused: no supervisor logged in"):
        prepare(request, store=store, config=config, operator=tess)


def test_a_session_outside_a_course_of_the_same_preset_is_refused_and_may_be_overridden(
    config: SiteConfig, store: Store, tess: Identity, sam: Identity, refusing_course: int
) -> None:
    with pytest.raises(CourseRuleRefused, match=f"course {refusing_course}"):
        prepare(DEXA, store=store, config=config, operator=tess)
    overridden = TreatmentRequest(**{**DEXA.__dict__, "override_reason": "a second site"})
    prepared = prepare(overridden, store=store, config=config, operator=tess, supervisor=lambda: sam)
    assert prepared.override is not None and prepared.override.outside_course
    assert prepared.override.audit()["course_id"] == refusing_course


def test_with_a_record_store_the_session_runs_as_its_authenticated_operator_never_typed_text(
    config: SiteConfig, store: Store, tess: Identity
) -> None:
    with pytest.raises(Refused, match="log in first"):
        prepare(DEXA, store=store, config=config)
    prepared = prepare(DEXA, store=store, config=config, operator=tess)
    assert prepared.prescription.operator_id == TECHNICIAN and prepared.request.operator == TECHNICIAN
    assert prepared.operator is tess and "operator tess" in prepared.summary()


@pytest.mark.parametrize("name", [ADMIN, AUDITOR])
def test_an_administrator_or_an_auditor_runs_no_sessions(
    config: SiteConfig, store: Store, clinic: Clinic, name: str
) -> None:
    person = clinic.people(store).login(name, PASSWORDS[name])
    with pytest.raises(Refused, match="an administrator or auditor runs no sessions") as refused:
        prepare(DEXA, store=store, config=config, operator=person)
    assert refused.value.prescription is None  # refused before any prescription: no record of it either


def test_a_person_of_another_store_cannot_run_a_session_here(config: SiteConfig, store: Store, tmp_path: Any) -> None:
    from tests.people import make_clinic

    elsewhere = make_clinic(tmp_path / "elsewhere")
    with Store(elsewhere.store) as other:
        stranger = elsewhere.login(other, TECHNICIAN)  # the same name, another key
    with pytest.raises(Refused, match="has changed since they logged in"):
        prepare(DEXA, store=store, config=config, operator=stranger)


def test_an_operator_disabled_since_logging_in_cannot_start_a_session(
    config: SiteConfig, store: Store, clinic: Clinic, tess: Identity
) -> None:
    people = clinic.people(store)
    people.disable(people.login(ADMIN, PASSWORDS[ADMIN]), TECHNICIAN)
    with pytest.raises(Refused, match="has changed since they logged in"):
        prepare(DEXA, store=store, config=config, operator=tess)
    with pytest.raises(LoginRefused, match="disabled"):
        people.login(TECHNICIAN, PASSWORDS[TECHNICIAN])


def test_without_a_record_store_the_request_is_prepared_as_given(config: SiteConfig) -> None:
    prepared = prepare(DEXA, store=None, config=config)
    assert prepared.prescription.operator_id == DEXA.operator and prepared.operator is None

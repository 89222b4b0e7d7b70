"""`prepare`: everything decided before a device is touched, returned as data or refused as a typed value, and
never a line printed."""

from __future__ import annotations

import pytest

from ionctl.config import SiteConfig
from ionctl.records import Store
from ionctl.treatment import CourseRuleRefused, Prepared, Refused, TreatmentRequest, prepare
from tests.treatment.conftest import PATIENT, PIN

DEXA = TreatmentRequest(device="inprocess:sim", operator="T-1", patient=PATIENT, preset="dexamethasone",
                        electrode_area_cm2=10.0, current_ma=2.0, dose_ma_min=0.5, ramp_up_s=5.0,
                        ramp_down_s=5.0)  # fmt: skip


def test_a_prescription_over_a_limit_is_refused_naming_each_limit_and_nothing_is_printed(
    config: SiteConfig, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    request = TreatmentRequest(**{**DEXA.__dict__, "current_ma": 6.0})  # 0.6 mA/cm² on 10 cm²
    with pytest.raises(Refused) as refused:
        prepare(request, store=store, config=config)
    names = [v["limit_name"] for v in refused.value.violations]
    assert "max_density_ma_cm2" in names and "max_density_ma_cm2" in refused.value.message
    assert refused.value.prescription is not None and refused.value.prescription.current_ma == 6.0
    assert refused.value.config_sha256 == config.sha256  # what the refused session's record names
    assert capsys.readouterr() == ("", "")
    assert store.list_records() == []  # a refusal is a value: recording it is the front end's call


def test_a_request_that_describes_no_prescription_is_refused_without_one(config: SiteConfig, store: Store) -> None:
    with pytest.raises(Refused, match="give --patient") as refused:
        prepare(TreatmentRequest(**{**DEXA.__dict__, "patient": None}), store=store, config=config)
    assert refused.value.prescription is None and refused.value.violations == []


def test_a_checked_prescription_is_returned_as_data_with_its_summary(
    config: SiteConfig, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    prepared = prepare(DEXA, store=store, config=config)
    assert isinstance(prepared, Prepared) and prepared.override is None and prepared.course is None
    assert prepared.prescription.current_ma == 2.0 and prepared.limits is config.limits
    assert prepared.charge == "anionic"
    assert "Prescription (checked against the site limits)" in prepared.summary()
    assert "device: inprocess:sim" in prepared.summary()
    assert capsys.readouterr() == ("", "")


def test_a_course_rule_that_refuses_is_a_refusal_value_naming_the_rule(
    config: SiteConfig, store: Store, refusing_course: int, capsys: pytest.CaptureFixture[str]
) -> None:
    request = TreatmentRequest(**{**DEXA.__dict__, "course_id": refusing_course})
    with pytest.raises(CourseRuleRefused) as refused:
        prepare(request, store=store, config=config, pin=lambda: pytest.fail("no override asked: no PIN asked"))
    assert "the minimum interval is 3 days" in refused.value.rule
    assert refused.value.denied is None and refused.value.prescription is not None
    assert capsys.readouterr() == ("", "")


def test_a_supervisor_override_with_the_right_pin_is_accepted_and_the_course_rules_left_out_at_opening(
    config: SiteConfig, store: Store, refusing_course: int
) -> None:
    request = TreatmentRequest(**{**DEXA.__dict__, "course_id": refusing_course, "override_reason": "missed visit"})
    prepared = prepare(request, store=store, config=config, pin=lambda: PIN)
    override = prepared.override
    assert override is not None and override.reason == "missed visit" and override.course_id == refusing_course
    assert "minimum interval" in override.rule and override.operator == "T-1"
    assert override.audit() == {"reason": "missed visit", "rule": override.rule, "operator": "T-1"}
    prepared.opening_check()(store)  # the course's rule is not checked again as the record opens
    assert store.audit(action="auth-denied") == []


def test_a_supervisor_override_with_a_wrong_pin_is_refused_and_the_attempt_recorded(
    config: SiteConfig, store: Store, refusing_course: int
) -> None:
    request = TreatmentRequest(**{**DEXA.__dict__, "course_id": refusing_course, "override_reason": "missed visit"})
    with pytest.raises(CourseRuleRefused, match="override refused: wrong supervisor PIN") as refused:
        prepare(request, store=store, config=config, pin=lambda: "00000000")
    assert refused.value.denied is not None and "the minimum interval is 3 days" in refused.value.rule
    assert len(store.audit(action="auth-denied")) == 1


def test_an_override_without_a_pin_to_ask_is_refused(config: SiteConfig, store: Store, refusing_course: int) -> None:
    request = TreatmentRequest(**{**DEXA.__dict__, "course_id": refusing_course, "override_reason": "missed visit"})
    with pytest.raises(CourseRuleRefused, match="override refused: no supervisor PIN was given"):
        prepare(request, store=store, config=config)


def test_a_session_outside_a_course_of_the_same_preset_is_refused_and_may_be_overridden(
    config: SiteConfig, store: Store, refusing_course: int
) -> None:
    with pytest.raises(CourseRuleRefused, match=f"course {refusing_course}"):
        prepare(DEXA, store=store, config=config)
    overridden = TreatmentRequest(**{**DEXA.__dict__, "override_reason": "a second site"})
    prepared = prepare(overridden, store=store, config=config, pin=lambda: PIN)
    assert prepared.override is not None and prepared.override.outside_course
    assert prepared.override.audit()["course_id"] == refusing_course

"""The skin check model: every item answered (yes, no, or not inspected with a reason), never an unanswered item
taken for "no", stored exactly as answered and shown in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from ionctl.records import Store
from ionctl.records.skin import (
    AFTER,
    BEFORE,
    ITEMS,
    SKIN_CHECK_AFTER,
    Addendum,
    Answer,
    SkinCheck,
    SkinCheckError,
    SkinCheckIncomplete,
    addendum_text,
    parse_items,
)
from tests.records.test_store import finished_record

ALL_NO = dict.fromkeys(ITEMS, "no")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "records.sqlite3") as s:
        yield s


@pytest.mark.parametrize("missing", list(ITEMS))
def test_an_unanswered_item_is_refused_naming_it(missing: str) -> None:
    answers: dict[str, str | None] = {**ALL_NO, missing: None}
    with pytest.raises(SkinCheckIncomplete, match=f"item '{missing}' .* is not answered"):
        SkinCheck.of(AFTER, answers)


def test_nothing_answered_is_refused_naming_every_item() -> None:
    with pytest.raises(SkinCheckIncomplete) as refused:
        SkinCheck.of(AFTER, {})
    assert all(key in str(refused.value) for key in ITEMS)


def test_not_inspected_without_a_reason_is_refused() -> None:
    with pytest.raises(SkinCheckIncomplete, match="'pain' is 'not inspected' without a reason"):
        SkinCheck.of(AFTER, {**ALL_NO, "pain": "not-inspected"}, reasons={"pain": "  "})


def test_a_yes_needs_the_adverse_reaction_described() -> None:
    with pytest.raises(SkinCheckIncomplete, match="'erythema' is yes: describe the adverse reaction"):
        SkinCheck.of(AFTER, {**ALL_NO, "erythema": "yes"})


def test_an_answer_that_is_not_yes_no_or_not_inspected_is_refused_naming_it() -> None:
    with pytest.raises(SkinCheckError, match="answer 'maybe'"):
        SkinCheck.of(AFTER, {**ALL_NO, "itching": "maybe"})


def test_an_unknown_item_is_refused_naming_the_items() -> None:
    with pytest.raises(SkinCheckError, match="unknown skin check item 'rash'; the items are erythema"):
        parse_items(["rash=no"])


def test_a_complete_check_is_stored_exactly_as_answered(store: Store) -> None:
    record_id = finished_record(store)
    answers = {"erythema": "yes", "blistering": "no", "pain": "not inspected", "itching": "NO", "other": "n"}
    check = SkinCheck.of(AFTER, answers, reasons={"pain": "patient asleep"}, note="reviewed with the patient",
                         reaction="mild erythema under the cathode, 2 cm")  # fmt: skip
    store.append_addendum(record_id, "T-1", Addendum(SKIN_CHECK_AFTER, skin=check))
    (stored,) = store.get(record_id).addenda
    assert stored["action"] == SKIN_CHECK_AFTER and stored["actor"] == "T-1"
    assert stored["detail"]["items"] == {
        "erythema": {"answer": "yes"}, "blistering": {"answer": "no"},
        "pain": {"answer": "not inspected", "reason": "patient asleep"}, "itching": {"answer": "no"},
        "other": {"answer": "no"},
    }  # fmt: skip
    assert SkinCheck.from_detail(stored["detail"]) == check
    assert check.items["pain"].answer is Answer.NOT_INSPECTED and check.adverse
    assert store.verify() is None


def test_the_check_is_shown_in_words() -> None:
    check = SkinCheck.of(AFTER, {**ALL_NO, "pain": "ni"}, reasons={"pain": "patient asleep"})
    text = addendum_text({"detail": check.to_detail()})
    assert text == ("erythema: no; blistering: no; pain: not inspected (patient asleep); itching: no; other: no; "
                    "no adverse reaction")  # fmt: skip


def test_a_before_check_names_a_finding_not_an_adverse_reaction() -> None:
    check = SkinCheck.of(BEFORE, {**ALL_NO, "other": "yes"}, reaction="a small cut on the left palm")
    assert not check.adverse and check.findings == ["other"]
    assert check.text().endswith("other: yes; finding: a small cut on the left palm")


def test_a_checklist_stored_before_the_typed_model_is_shown_in_words_not_as_a_repr() -> None:
    legacy = {"items": {"No blister, burn or broken skin": True, "The patient reports no pain": False},
              "adverse_reaction": "none"}  # fmt: skip
    text = addendum_text({"detail": legacy})
    assert text == "No blister, burn or broken skin: confirmed; The patient reports no pain: NOT confirmed; " \
                   "adverse_reaction: none"
    assert "{" not in text and "True" not in text

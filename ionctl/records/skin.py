"""The skin check and the addenda of a record: typed, complete, stored exactly as answered.

The chart of an iontophoresis session states that the skin was inspected before and after the session and
notes any adverse reaction (CPT 97033 chart guidance: "skin inspected before and after; adverse reactions
noted"). A `SkinCheck` is that inspection: every item (`ITEMS`) answered yes (seen), no (not seen) or "not
inspected" with the reason why; a free-text note; and the adverse reaction (or, before a session, the finding)
described whenever an item is yes. An unanswered item is never taken for a "no": building a check with one
missing raises `SkinCheckIncomplete` naming it.

An `Addendum` is what follows a record into the chart after the fact, append-only: a skin check (before or
after the session), a late adverse reaction, a note, or a correction that names the addendum it corrects (the
corrected one stays as it was). `Store.append_addendum` writes one into the record's audit trail (and so into
the hash chain); `addendum_text` renders one for `records show`, the chart PDF and the FHIR export.

Pure: the standard library only.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: What is inspected under and around both electrodes, in the order asked: key -> the question's label.
#: Erythema, burns (blistering) and tingling or itching are the skin reactions iontophoresis device labels warn
#: of (FDA's MAUDE lists burns among the reported events for 21 CFR 890.5525 devices); broken or inflamed skin is
#: a labelled contraindication, asked under "other".
ITEMS: dict[str, str] = {
    "erythema": "erythema (redness)",
    "blistering": "blistering or burn",
    "pain": "pain or burning (the patient reports)",
    "itching": "itching or tingling",
    "other": "other finding (broken skin, swelling, ...)",
}

BEFORE, AFTER = "before", "after"


class Answer(enum.StrEnum):
    YES = "yes"
    NO = "no"
    NOT_INSPECTED = "not inspected"

    @classmethod
    def parse(cls, text: str) -> Answer:
        """'yes', 'no' or 'not inspected' (also 'y', 'n', 'not-inspected', 'ni'), in any case."""
        key = " ".join(text.strip().lower().replace("-", " ").replace("_", " ").split())
        found = {"yes": cls.YES, "y": cls.YES, "no": cls.NO, "n": cls.NO, "not inspected": cls.NOT_INSPECTED,
                 "ni": cls.NOT_INSPECTED}.get(key)  # fmt: skip
        if found is None:
            raise SkinCheckError(f"answer {text!r}: give yes, no or not-inspected")
        return found


class SkinCheckError(ValueError):
    """A skin check or addendum that cannot be recorded as given (the message names what is wrong)."""


class SkinCheckIncomplete(SkinCheckError):
    """An item is unanswered, or answered "not inspected" without a reason."""


@dataclass(frozen=True)
class ItemAnswer:
    answer: Answer
    reason: str = ""  # why it was not inspected (required then)

    def text(self) -> str:
        return f"{self.answer.value} ({self.reason})" if self.answer is Answer.NOT_INSPECTED else self.answer.value


@dataclass(frozen=True)
class SkinCheck:
    """One skin inspection, `when` "before" or "after" the session; every item of `ITEMS` answered."""

    when: str
    items: Mapping[str, ItemAnswer]
    note: str = ""
    reaction: str = ""  # the adverse reaction (after) or the finding (before) described; required if any yes

    def __post_init__(self) -> None:
        if self.when not in (BEFORE, AFTER):
            raise SkinCheckError(f"a skin check is {BEFORE!r} or {AFTER!r} the session, not {self.when!r}")
        unknown = [k for k in self.items if k not in ITEMS]
        if unknown:
            raise SkinCheckError(f"unknown skin check item {unknown[0]!r}; the items are {', '.join(ITEMS)}")
        missing = [k for k in ITEMS if k not in self.items]
        if missing:
            raise SkinCheckIncomplete(f"skin check item {missing[0]!r} ({ITEMS[missing[0]]}) is not answered"
                                      + (f" (nor {', '.join(missing[1:])})" if missing[1:] else ""))  # fmt: skip
        for key in ITEMS:
            item = self.items[key]
            if item.answer is Answer.NOT_INSPECTED and not item.reason.strip():
                raise SkinCheckIncomplete(f"skin check item {key!r} is 'not inspected' without a reason")
        if self.findings and not self.reaction.strip():
            what = "adverse reaction" if self.when == AFTER else "finding"
            raise SkinCheckIncomplete(f"skin check item {self.findings[0]!r} is yes: describe the {what}")
        object.__setattr__(self, "items", {k: self.items[k] for k in ITEMS})  # the order asked

    @classmethod
    def of(cls, when: str, answers: Mapping[str, str | Answer | None], *, reasons: Mapping[str, str] | None = None,
           note: str = "", reaction: str = "") -> SkinCheck:  # fmt: skip
        """Build from plain answers (None: unanswered); `reasons` per item for those not inspected."""
        reasons = reasons or {}
        unknown = [k for k in (*answers, *reasons) if k not in ITEMS]
        if unknown:
            raise SkinCheckError(f"unknown skin check item {unknown[0]!r}; the items are {', '.join(ITEMS)}")
        items = {}
        for key, value in answers.items():
            if value is None:
                continue
            answer = value if isinstance(value, Answer) else Answer.parse(value)
            items[key] = ItemAnswer(answer, reasons.get(key, "").strip() if answer is Answer.NOT_INSPECTED else "")
        return cls(when, items, note.strip(), reaction.strip())

    @property
    def findings(self) -> list[str]:
        """The items answered yes."""
        return [k for k, item in self.items.items() if item.answer is Answer.YES]

    @property
    def not_inspected(self) -> list[str]:
        return [k for k, item in self.items.items() if item.answer is Answer.NOT_INSPECTED]

    @property
    def adverse(self) -> bool:
        """After a session: an adverse reaction was seen or stated."""
        return self.when == AFTER and (bool(self.findings) or bool(self.reaction))

    def to_detail(self) -> dict[str, Any]:
        """The JSON object stored in the audit trail."""
        return {"when": self.when, "items": {k: {"answer": v.answer.value, **({"reason": v.reason} if v.reason
                else {})} for k, v in self.items.items()}, "note": self.note,
                "reaction": self.reaction}  # fmt: skip

    @classmethod
    def from_detail(cls, detail: Mapping[str, Any]) -> SkinCheck:
        items = detail.get("items")
        if not isinstance(items, Mapping):
            raise SkinCheckError("not a skin check: no items")
        answers = {k: (v.get("answer") if isinstance(v, Mapping) else None) for k, v in items.items()}
        reasons = {k: str(v.get("reason", "")) for k, v in items.items() if isinstance(v, Mapping)}
        return cls.of(str(detail.get("when")), answers, reasons=reasons, note=str(detail.get("note") or ""),
                      reaction=str(detail.get("reaction") or ""))  # fmt: skip

    def text(self) -> str:
        """'erythema: no; pain: not inspected (patient asleep); ...' and the reaction and note."""
        parts = [f"{k}: {item.text()}" for k, item in self.items.items()]
        if self.reaction:
            parts.append(f"{'adverse reaction' if self.when == AFTER else 'finding'}: {self.reaction}")
        elif self.when == AFTER:
            parts.append("no adverse reaction")
        if self.note:
            parts.append(f"note: {self.note}")
        return "; ".join(parts)


def parse_items(pairs: Iterable[str], reasons: Iterable[str] = ()) -> tuple[dict[str, str], dict[str, str]]:
    """`ITEM=ANSWER` pairs and `--reason` values (`ITEM=TEXT`, or a TEXT for every item not inspected) as
    (answers, reasons); SkinCheckError naming a malformed or repeated one."""
    answers: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().lower()
        if not sep or not value.strip():
            raise SkinCheckError(f"skin check {pair!r}: give ITEM=ANSWER, e.g. erythema=no")
        if key not in ITEMS:
            raise SkinCheckError(f"unknown skin check item {key!r}; the items are {', '.join(ITEMS)}")
        if key in answers:
            raise SkinCheckError(f"skin check item {key!r} is given twice")
        answers[key] = value
    given: dict[str, str] = {}
    common = ""
    for text in reasons:
        key, sep, value = text.partition("=")
        if sep and key.strip().lower() in ITEMS:
            given[key.strip().lower()] = value.strip()
        else:
            common = text.strip()
    out = {k: given.get(k, common) for k, v in answers.items()
           if Answer.parse(v) is Answer.NOT_INSPECTED}  # fmt: skip
    return answers, out


# -- addenda ------------------------------------------------------------------------------------------------

SKIN_CHECK_BEFORE = "skin-check-before"
SKIN_CHECK_AFTER = "skin-check-after"
ADVERSE_REACTION = "adverse-reaction"
CORRECTION = "correction"
NOTE = "note"
#: The audit actions that are addenda to a record's chart.
ADDENDUM_KINDS = (SKIN_CHECK_BEFORE, SKIN_CHECK_AFTER, ADVERSE_REACTION, CORRECTION, NOTE)


@dataclass(frozen=True)
class Addendum:
    """One addendum: a skin check (`skin` set), or a text (`adverse-reaction`, `correction`, `note`). A
    correction names the addendum it corrects (`corrects`, its number in the record's audit trail); a skin check
    may too (a repeated inspection replacing an earlier one)."""

    kind: str
    skin: SkinCheck | None = None
    text: str = ""
    corrects: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # kept as given (a supervisor's context, ...)

    def __post_init__(self) -> None:
        if self.kind not in ADDENDUM_KINDS:
            raise SkinCheckError(f"addendum kind {self.kind!r}: one of {', '.join(ADDENDUM_KINDS)}")
        if self.kind in (SKIN_CHECK_BEFORE, SKIN_CHECK_AFTER):
            when = self.kind.removeprefix("skin-check-")
            if self.skin is None or self.skin.when != when:
                raise SkinCheckError(f"a {self.kind} addendum needs a skin check {when} the session")
        elif self.skin is not None:
            raise SkinCheckError(f"a {self.kind} addendum carries text, not a skin check")
        elif not self.text.strip():
            raise SkinCheckError(f"a {self.kind} addendum needs its text")
        if self.kind == CORRECTION and self.corrects is None:
            raise SkinCheckError("a correction names the addendum it corrects")
        if self.corrects is not None and self.kind not in (CORRECTION, SKIN_CHECK_AFTER, SKIN_CHECK_BEFORE):
            raise SkinCheckError(f"a {self.kind} addendum does not correct another; record a correction")

    def detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = dict(self.extra)
        if self.skin is not None:
            detail.update(self.skin.to_detail())
        else:
            detail["text"] = self.text.strip()
        if self.corrects is not None:
            detail["corrects"] = self.corrects
        return detail


def addendum_text(entry: Mapping[str, Any]) -> str:
    """One addendum (an audit entry about a record) as one line of plain words, never a JSON or Python repr:
    'erythema: no; pain: not inspected (patient asleep); no adverse reaction'."""
    detail = entry.get("detail")
    detail = detail if isinstance(detail, Mapping) else {}
    prefix = f"corrects #{detail['corrects']}: " if detail.get("corrects") is not None else ""
    if isinstance(detail.get("items"), Mapping):
        try:
            return prefix + SkinCheck.from_detail(detail).text()
        except SkinCheckError:  # a check stored before the typed model (a checklist of labels)
            return prefix + _legacy_checklist(detail)
    if detail.get("text") is not None:
        return prefix + " ".join(str(detail["text"]).split())
    if detail.get("description") is not None:
        return prefix + " ".join(str(detail["description"]).split())
    return prefix + "; ".join(f"{k}: {_plain(v)}" for k, v in detail.items() if k != "corrects")


def corrected_by(addenda: Iterable[Mapping[str, Any]]) -> dict[int, list[int]]:
    """Addendum number -> the numbers of the later addenda that correct it."""
    found: dict[int, list[int]] = {}
    for entry in addenda:
        detail = entry.get("detail")
        if isinstance(detail, Mapping) and isinstance(detail.get("corrects"), int):
            found.setdefault(int(detail["corrects"]), []).append(int(entry["seq"]))
    return found


def _legacy_checklist(detail: Mapping[str, Any]) -> str:
    items = detail.get("items")
    parts = [f"{k}: {'confirmed' if v is True else 'NOT confirmed' if v is False else _plain(v)}"
             for k, v in (items.items() if isinstance(items, Mapping) else ())]  # fmt: skip
    parts += [f"{k}: {_plain(v)}" for k, v in detail.items() if k != "items" and v not in ("", None)]
    return "; ".join(parts)


def _plain(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return " ".join(str(value).split())

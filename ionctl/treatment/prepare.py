"""Everything decided before the device is touched: `prepare(request)` checks the site configuration's
approval, builds the prescription, validates it against the site limits and drug catalog, and applies the course
rules (a supervisor, logged in, may set one aside with a reason). With a record store the session runs as its
authenticated operator (an `Identity` allowed to run sessions): the record names that account, never typed text
(docs/SAFETY.md, "impersonation"). It prints nothing and opens no device: it returns a `Prepared` (the data a front
end confirms and runs) or raises `Refused`, which carries what the front end shows and, once a prescription exists,
what the refused session's record holds.

The order is the safety argument of docs/ARCHITECTURE.md: a prescription that breaks a limit is refused,
naming every limit broken, before any port is opened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ionctl.treatment.report import summary
from ionctl.treatment.request import TreatmentRequest, build_prescription

if TYPE_CHECKING:
    from ionctl.config import SiteConfig
    from ionctl.config.people import Identity
    from ionctl.records import Store
    from ionctl.safety import Prescription, SiteLimits

#: The audit trail's action for a course rule a supervisor set aside for one session.
OVERRIDE_ACTION = "course-override"


class Refused(Exception):
    """The session may not start; no current flowed and no device was opened. `message` says why; with a
    `prescription` (and its `limits`) the refusal gets a record of its own (`record_refusal`), each broken
    limit of `violations` a note in it."""

    def __init__(self, message: str, *, prescription: Prescription | None = None, limits: SiteLimits | None = None,
                 violations: list[dict[str, Any]] | None = None, config_sha256: str | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.message = message
        self.prescription = prescription
        self.limits = limits
        self.violations = violations or []
        self.config_sha256 = config_sha256  # the configuration the refused record names


class CourseRuleRefused(Refused):
    """A course rule refuses the session: `rule` names it and its numbers. `denied` says why a supervisor's
    override was refused (no supervisor named, a wrong password, not a supervisor); None when no override was
    asked for (the front end says how to ask for one)."""

    def __init__(self, rule: str, *, denied: str | None, prescription: Prescription, limits: SiteLimits,
                 config_sha256: str | None = None) -> None:  # fmt: skip
        message = f"{rule}; override refused: {denied}" if denied is not None else rule
        super().__init__(message, prescription=prescription, limits=limits, config_sha256=config_sha256)
        self.rule = rule
        self.denied = denied


@dataclass(frozen=True)
class Override:
    """A course rule a supervisor (logged in) set aside for one session: recorded in the audit trail against
    the session's record once it is open, signed by that supervisor (`SessionRunner`)."""

    reason: str
    rule: str
    operator: str
    course_id: int | None  # the course whose rule it was
    outside_course: bool = False  # a session outside any course, bound by a course of the same preset or drug
    supervisor: Identity | None = field(default=None, compare=False)  # who set it aside; signs the audit entry

    def audit(self) -> dict[str, Any]:
        """The audit entry's details (the supervisor who signs it named among them)."""
        entry: dict[str, Any] = {"reason": self.reason, "rule": self.rule, "operator": self.operator}
        if self.supervisor is not None:
            entry["supervisor"] = self.supervisor.name
        if self.outside_course:
            entry.update(course_id=self.course_id, outside_course=True)
        return entry


@dataclass(frozen=True)
class Prepared:
    """A session ready to confirm and run: the prescription checked against `limits`, the course rules
    passed (or overridden), and `notes` for the operator (a course's preset changed, a course in progress)."""

    request: TreatmentRequest
    config: SiteConfig
    prescription: Prescription
    charge: str  # the drug's charge as the validation found it ("anionic", …)
    course: dict[str, Any] | None = None
    override: Override | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    operator: Identity | None = field(default=None, compare=False)  # who runs it (None: no store, no record)

    @property
    def limits(self) -> SiteLimits:
        return self.config.limits

    def summary(self) -> str:
        """What is about to be delivered, for the operator to confirm."""
        return summary(self.prescription, self.charge, self.limits, self.request.device, self.config)

    def opening_check(self) -> Callable[[Store], None]:
        """What the record's opening checks again (in its write transaction): the approval, and the course
        rules unless a supervisor set them aside."""
        rx = self.prescription
        return opening_check(self.config, self.request.course_id, course_rules=self.override is None,
                             patient=rx.patient_id, preset=self.request.preset, drug=rx.drug)  # fmt: skip


def prepare(
    request: TreatmentRequest,
    *,
    store: Store | None,
    config: SiteConfig | None = None,
    config_file: str | None = None,
    operator: Identity | None = None,
    supervisor: Callable[[], Identity] | None = None,
) -> Prepared:
    """Approve, build, validate and apply the course rules; `Refused` (or `CourseRuleRefused`) if the session
    may not start. `config` (else the file `config_file`, else the site's) must be the approved one when there
    is a `store`; without a store (pure in-process use) there are no courses and no people. With a store the
    `operator` must be a person of that store allowed to run sessions (an administrator or an auditor runs
    none); the prescription and the record name their account. `supervisor()` is called only when a course rule
    refuses and the request carries an override reason: it logs the supervisor in and returns them, or raises
    (any exception: nobody named, a wrong password) and the override is refused with its message."""
    from ionctl.config import ConfigError, ConfigNotApproved, load_config, require_approved
    from ionctl.records import StoreError
    from ionctl.safety import PrescriptionError, PrescriptionRefused, validate

    try:
        config = config if config is not None else load_config(config_file)
    except ConfigError as exc:
        raise Refused(str(exc)) from exc
    if store is not None:
        request = replace(request, operator=_operator(store, operator, config))
    try:
        if store is not None:
            require_approved(config, store)
        course = _course(store, request.course_id) if request.course_id is not None else None
        prescription = build_prescription(request, config, course)
    except (PrescriptionError, ConfigError, ConfigNotApproved, StoreError) as exc:
        raise Refused(str(exc)) from exc
    limits = config.limits
    try:
        validated = validate(prescription, limits, catalog=config.drugs)
    except PrescriptionRefused as exc:
        raise Refused(str(exc), prescription=prescription, limits=limits, config_sha256=config.sha256,
                      violations=[asdict(v) for v in exc.violations]) from exc  # fmt: skip
    notes: list[str] = []
    override: Override | None = None
    if store is not None:
        override = _admit(store, request, prescription, config, course, supervisor)
        if course is not None:
            changed = _preset_changed(config, course)
            if changed:
                notes.append(f"preset {course['preset']} has changed since course {course['id']} started ({changed}); "
                             "the preset in force applies")  # fmt: skip
        else:
            notes += _courses_in_progress(store, prescription.patient_id)
    return Prepared(request, config, prescription, validated.drug_charge.name.lower(), course, override, tuple(notes),
                    operator if store is not None else None)  # fmt: skip


def _operator(store: Store, operator: Identity | None, config: SiteConfig) -> str:
    """The login name a session with a record runs under: `operator`, if they are a person of this store (the
    account and key they logged in with are the store's now) allowed to run sessions; else `Refused`."""
    from ionctl.config.people import Act, People, PeopleError, Trust

    if operator is None:
        raise Refused("log in first: a session with a record runs as its authenticated operator (`ionctl run "
                      "--operator NAME`, your own account; `ionctl users list`)")  # fmt: skip
    if not operator.may(Act.RUN_SESSION):
        raise Refused(f"{operator.name} is an {operator.role}: an administrator or auditor runs no sessions (a "
                      "technician or supervisor logs in to run one)")  # fmt: skip
    try:
        account = People(store, Trust.of(config)).account(operator.name)
    except PeopleError as exc:
        raise Refused(f"{operator.name} is not a person of the record store {store.path}: {exc}") from None
    if account.public_key != operator.account.public_key or account.disabled:
        raise Refused(f"{operator.name}'s account in {store.path} has changed since they logged in (disabled, or a "
                      "new password): log in again")  # fmt: skip
    return operator.name


def _course(store: Store | None, course_id: int) -> dict[str, Any]:
    from ionctl.records import StoreError

    if store is None:
        raise StoreError("a course session needs the record store")
    return store.course(course_id)


def _admit(store: Store, request: TreatmentRequest, prescription: Prescription, config: SiteConfig,
           course: dict[str, Any] | None, supervisor: Callable[[], Identity] | None) -> Override | None:  # fmt: skip
    """None if the course rules allow the session now (a course's own, or, outside any course, those of a
    course of the patient's of the same preset or drug); the override if a supervisor sets the rule aside;
    else CourseRuleRefused."""
    from datetime import UTC, datetime

    from ionctl.core.courses import CourseRefused, check_next, check_outside, conflicting_courses

    try:
        if course is not None:
            check_next(store, course["id"])
        else:
            check_outside(store, prescription.patient_id, preset=request.preset, drug=prescription.drug)
        return None
    except CourseRefused as exc:
        rule = str(exc)
    by = authorise_override(request.override_reason, supervisor,
                            refusal=CourseRuleRefused(rule, denied=None, prescription=prescription,
                                                      limits=config.limits, config_sha256=config.sha256))  # fmt: skip
    assert request.override_reason is not None
    if course is not None:
        return Override(request.override_reason, rule, request.operator, course["id"], supervisor=by)
    held = conflicting_courses(store, prescription.patient_id, preset=request.preset, drug=prescription.drug,
                               now=datetime.now(UTC))  # fmt: skip
    return Override(request.override_reason, rule, request.operator, held[0][0] if held else None,
                    outside_course=True, supervisor=by)  # fmt: skip


def authorise_override(reason: str | None, supervisor: Callable[[], Identity] | None, *,
                       refusal: CourseRuleRefused) -> Identity:  # fmt: skip
    """The supervisor who sets the rule of `refusal` aside: a reason given, and `supervisor()` returns a person
    allowed to override course rules (their login, its failures, is in the audit trail); else raise `refusal`,
    with why the override was refused when one was asked for."""
    from ionctl.config.people import Act

    if not reason:
        raise refusal
    try:
        if supervisor is None:
            raise LookupError("no supervisor logged in to set the rule aside (--supervisor NAME)")
        by = supervisor()
        by.require(Act.OVERRIDE_COURSE)
    except Exception as denied:  # a wrong password, nobody to ask, not a supervisor: no override
        assert refusal.prescription is not None and refusal.limits is not None
        raise CourseRuleRefused(refusal.rule, denied=str(denied), prescription=refusal.prescription,
                                limits=refusal.limits, config_sha256=refusal.config_sha256) from None  # fmt: skip
    return by


def opening_check(config: SiteConfig, course_id: int | None, *, course_rules: bool, patient: str | None = None,
                  preset: str | None = None, drug: str | None = None) -> Callable[[Store], None]:  # fmt: skip
    """What to check again as the record opens (`Recorder.open`): the configuration is still the approved one,
    and the course (unless a supervisor overrode its rules) still allows a session; a session outside any
    course (given its `patient`, `preset` and `drug`) is still not bound by a course in progress."""

    def check(store: Store) -> None:
        from ionctl.config import require_approved
        from ionctl.core.courses import check_next, check_outside

        require_approved(config, store)
        if course_id is not None and course_rules:
            check_next(store, course_id)
        elif course_id is None and course_rules and patient is not None:
            check_outside(store, patient, preset=preset, drug=drug)

    return check


def _courses_in_progress(store: Store, patient: str) -> list[str]:
    """A line for each course of `patient` with sessions left: a session outside it is not counted in it."""
    from datetime import UTC, datetime

    from ionctl.core.courses import status

    lines = []
    for course in store.courses(patient=patient):
        now = status(store, course["id"], datetime.now(UTC))
        if now.left:
            lines.append(f"patient {patient} has course {course['id']} ({course['preset']}, {now.done} of "
                         f"{now.plan.sessions} done) in progress; this session is not part of it (--course "
                         f"{course['id']} to make it one)")  # fmt: skip
    return lines


def _preset_changed(config: SiteConfig, course: dict[str, Any]) -> str:
    """Which of the course's preset values differ now ("" if none, or if the course kept none)."""
    from ionctl.core.courses import preset_values

    then = (course.get("plan") or {}).get("preset")
    if not isinstance(then, dict) or course["preset"] not in config.presets:
        return ""
    now = preset_values(config.presets[course["preset"]])
    return ", ".join(f"{k} {then.get(k)!r} -> {now[k]!r}" for k in sorted(now) if then.get(k) != now[k])

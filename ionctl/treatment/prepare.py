"""Everything decided before the device is touched: `prepare(request)` checks the site configuration's
approval, builds the prescription, validates it against the site limits and drug catalog, and applies the course
rules (a supervisor, logged in, may set one aside with a reason). With a record store the session runs as its
authenticated operator (an `Identity` allowed to run sessions): the record names that account, never typed text
(docs/SAFETY.md, "impersonation"). It prints nothing and opens no device: it returns a `Prepared` (the data a front
end confirms and runs) or raises `Refused`, which carries what the front end shows and, once a prescription exists,
what the refused session's record holds.

The order is the safety argument of docs/ARCHITECTURE.md: a prescription that breaks a limit is refused,
naming every limit broken, before any port is opened. So is a session whose chart details cannot be recorded (no
treatment site, or one outside `ionctl.records.clinical.BODY_SITES`: the refusal names the sites accepted); with
no prescription checked yet, such a refusal has no record.

Clinic-wide courses: at a bench whose site file has `[clinic]`, a course's rules see its sessions at every bench:
the clinic store's records of the course, with this bench's own in place of the clinic's copies
(`ionctl.records.clinic.courses.history`). A course is this bench's (`--course 3`, or `--course BENCH/3` naming
this bench) or another's (`--course bench-a/3`: its content is read from the clinic store, and the session's record
names it in `course_ref`). When the clinic store cannot be read, `[clinic] offline_courses` decides: "refuse" (the
default) refuses the course session, naming the setting that would allow an override; "override" lets a supervisor
set the unchecked rules aside for it, noted in the audit trail as unchecked clinic-wide. A session outside any
course is bound by the patient's courses of the same preset or drug at every bench (`PatientCourses`), read and
judged the same way, with the same `offline_courses` when they cannot be read. A bench whose store has forked
from the clinic's copy of it (restored from an older copy: `ionctl.records.clinic.courses.forked`) cannot match
its records to the clinic's, so its course rules are not checkable clinic-wide: such a session is refused,
whatever `offline_courses` says, until the clinic's database administrator resolves it. A bench without
`[clinic]` applies its own store's records, as always."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ionctl.treatment.report import summary
from ionctl.treatment.request import TreatmentRequest, build_prescription, clinical_details

if TYPE_CHECKING:
    from ionctl.config import SiteConfig
    from ionctl.config.people import Identity
    from ionctl.config.site import ClinicSettings
    from ionctl.core.courses import CourseStatus
    from ionctl.records import Store
    from ionctl.records.clinical import ClinicalDetails
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
        self.course_id: int | None = None  # the course the refused record names (this bench's, or BENCH/ID)
        self.course_ref: str | None = None
        self.clinical: ClinicalDetails | None = None  # the chart details the refused record names


class CourseRuleRefused(Refused):
    """A course rule refuses the session: `rule` names it and its numbers. `denied` says why a supervisor's
    override was refused (no supervisor named, a wrong password, not a supervisor); None when no override was
    asked for (the front end says how to ask for one)."""

    def __init__(self, rule: str, *, denied: str | None, prescription: Prescription, limits: SiteLimits,
                 config_sha256: str | None = None, overridable: bool = True) -> None:  # fmt: skip
        message = f"{rule}; override refused: {denied}" if denied is not None else rule
        super().__init__(message, prescription=prescription, limits=limits, config_sha256=config_sha256)
        self.rule = rule
        self.denied = denied
        self.overridable = overridable  # False: no supervisor may set it aside (the site file says so)


#: What the audit entry of an override says when the clinic store could not be read.
UNCHECKED = "clinic store unreachable: the course rules were not checked clinic-wide"


@dataclass(frozen=True)
class ClinicView:
    """What the clinic store said of a course as the session was prepared: its records from every bench
    (`rows`), or None and why (`problem`) if it could not be read. `bench` is this bench's name there."""

    name: str  # the course's clinic-wide name, "bench-a/3"
    bench: str
    offline_courses: str
    rows: tuple[dict[str, Any], ...] | None
    problem: str | None = None
    forked: bool = False  # this bench's store is not the clinic's copy of it: the rules are not checkable

    @property
    def remote(self) -> bool:
        """Whether the course is another bench's."""
        return not self.name.startswith(f"{self.bench}/")

    def unreachable(self) -> str:
        if self.forked:
            return f"course {self.name}: {self.problem}"
        return (f"course {self.name}: the clinic store cannot be reached ({self.problem}), so the course's "
                "sessions at other benches cannot be checked")  # fmt: skip


@dataclass(frozen=True)
class PatientCourses:
    """What the clinic store said of a patient's courses as a session outside any course was prepared: each
    course of every bench with its records from every bench (`courses`), or None and why (`problem`) if they could
    not be read (`forked` as in `ClinicView`). `bench` is this bench's name there."""

    bench: str
    offline_courses: str
    courses: tuple[tuple[dict[str, Any], tuple[dict[str, Any], ...]], ...] | None
    problem: str | None = None
    forked: bool = False

    def unreachable(self) -> str:
        if self.forked:
            return f"the patient's courses: {self.problem}"
        return (f"the clinic store cannot be reached ({self.problem}), so the patient's courses at other benches "
                "cannot be checked")  # fmt: skip

    def binding(self, store: Store, patient: str, *, preset: str | None, drug: str | None,
                now: datetime) -> list[tuple[dict[str, Any], str]]:  # fmt: skip
        """The patient's courses, at every bench, that bind a session of `preset` or `drug` outside any course at
        `now` (`ionctl.core.courses.binding`): the clinic's, with this bench's own courses and records (its store,
        read now) in place of the clinic's copies and added where the clinic has none yet."""
        from ionctl.core.courses import binding, evaluate
        from ionctl.records.clinic.courses import history, name

        found: dict[tuple[str, int], tuple[dict[str, Any], tuple[dict[str, Any], ...]]] = {}
        for course, rows in self.courses or ():
            found[(str(course["bench"]), int(course["id"]))] = (course, rows)
        for course in store.courses(patient=patient):
            key = (self.bench, int(course["id"]))
            clinic_rows = found[key][1] if key in found else ()
            found[key] = ({**course, "bench": self.bench, "name": name(*key)}, clinic_rows)
        judged = []
        for (bench, course_id), (course, rows) in sorted(found.items()):
            mine = bench == self.bench
            local = store.course_records(course_id) if mine else store.course_records(ref=str(course["name"]))
            judged.append((course, evaluate(course, history(rows, local, self.bench), now)))
        return [(dict(course), why) for course, why in binding(judged, preset=preset, drug=drug, now=now)]


@dataclass(frozen=True)
class Override:
    """A course rule a supervisor (logged in) set aside for one session: recorded in the audit trail against
    the session's record once it is open, signed by that supervisor (`SessionRunner`)."""

    reason: str
    rule: str
    operator: str
    course_id: int | None  # the course whose rule it was (this bench's)
    outside_course: bool = False  # a session outside any course, bound by a course of the same preset or drug
    supervisor: Identity | None = field(default=None, compare=False)  # who set it aside; signs the audit entry
    course_ref: str | None = None  # another bench's course whose rule it was ("bench-a/3")
    unchecked: str | None = None  # why the rules were not checked clinic-wide (`UNCHECKED`), if they were not

    def audit(self) -> dict[str, Any]:
        """The audit entry's details (the supervisor who signs it named among them)."""
        entry: dict[str, Any] = {"reason": self.reason, "rule": self.rule, "operator": self.operator}
        if self.supervisor is not None:
            entry["supervisor"] = self.supervisor.name
        if self.outside_course:
            entry.update(course_id=self.course_id, outside_course=True)
        if self.course_ref is not None:
            entry["course_ref"] = self.course_ref
        if self.unchecked is not None:
            entry["clinic"] = self.unchecked
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
    clinic: ClinicView | None = None  # the course's records at every bench, as read before the session
    patient_courses: PatientCourses | None = None  # outside any course: the patient's courses at every bench
    clinical: ClinicalDetails | None = None  # the chart details the record's opening holds (treatment site, ...)

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
                             patient=rx.patient_id, preset=self.request.preset, drug=rx.drug, clinic=self.clinic,
                             course=self.course, patient_courses=self.patient_courses)  # fmt: skip


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
    from ionctl.records.clinical import ClinicalError
    from ionctl.safety import PrescriptionError, PrescriptionRefused, validate

    try:
        config = config if config is not None else load_config(config_file)
    except ConfigError as exc:
        raise Refused(str(exc)) from exc
    if store is not None:
        request = replace(request, operator=_operator(store, operator, config))
    view: ClinicView | None = None
    try:
        if store is not None:
            require_approved(config, store)
        request, course, view = _course(store, request, config)
        prescription = build_prescription(request, config, course)
        clinical = clinical_details(request, config, course)  # a missing or unknown treatment site is refused here
        outside = None
        if store is not None and course is None and view is None and config.bench.clinic is not None:
            outside = read_patient(config.bench.clinic, store, prescription.patient_id)
    except (PrescriptionError, ConfigError, ConfigNotApproved, StoreError, ClinicalError) as exc:
        if view is not None and view.rows is None:  # another bench's course, its plan unread: say why first
            raise Refused(f"{view.unreachable()}; the course's plan cannot be read either: {exc}") from exc
        raise Refused(str(exc)) from exc
    limits = config.limits
    try:
        try:
            validated = validate(prescription, limits, catalog=config.drugs)
        except PrescriptionRefused as exc:
            raise Refused(str(exc), prescription=prescription, limits=limits, config_sha256=config.sha256,
                          violations=[asdict(v) for v in exc.violations]) from exc  # fmt: skip
        override = _admit(store, request, prescription, config, course, supervisor, view, outside) if store else None
    except Refused as refused:  # its record names the course, as this bench or the clinic names it
        refused.course_id, refused.course_ref = request.course_id, request.course_ref
        refused.clinical = clinical
        raise
    notes: list[str] = []
    if store is not None:
        if course is not None:
            changed = _preset_changed(config, course)
            if changed:
                notes.append(f"preset {course['preset']} has changed since course {course.get('name') or course['id']} "
                             f"started ({changed}); the preset in force applies")  # fmt: skip
        elif view is None:
            notes += _courses_in_progress(store, prescription.patient_id)
            if outside is not None and outside.courses is None:
                notes.append(outside_note(outside))
    return Prepared(request, config, prescription, validated.drug_charge.name.lower(), course, override, tuple(notes),
                    operator if store is not None else None, view, outside, clinical)  # fmt: skip


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


def _course(store: Store | None, request: TreatmentRequest,
            config: SiteConfig) -> tuple[TreatmentRequest, dict[str, Any] | None, ClinicView | None]:  # fmt: skip
    """(the request, its course, what the clinic store said of the course): a `course_ref` naming this bench
    becomes its `course_id`; with `[clinic]` the course's records at every bench are read (another bench's
    course's content too: StoreError if the clinic store does not have it). The course is None for another
    bench's course while the clinic store cannot be read (`view.rows` None); refused at once then if the site
    file's `offline_courses` is "refuse"."""
    from ionctl.records import StoreError
    from ionctl.records.clinic.courses import parse_name

    if request.course_id is None and request.course_ref is None:
        return request, None, None
    if store is None:
        raise StoreError("a course session needs the record store")
    settings = config.bench.clinic
    bench, course_id = (None, request.course_id) if request.course_ref is None else parse_name(request.course_ref)
    assert course_id is not None
    if bench is not None and (settings is None or bench != settings.bench):
        if settings is None:
            raise StoreError(f"course {request.course_ref} is another bench's: reading it needs the clinic store "
                             "([clinic] in the site file)")  # fmt: skip
        view, course = read_clinic(settings, bench, course_id, remote=True, store=store)
        if view.rows is not None and course is None:
            raise StoreError(f"course {request.course_ref} is not in the clinic store (not started there, or not "
                             "sent yet: `ionctl records sync` at that bench)")  # fmt: skip
        if view.forked:
            raise Refused(view.unreachable())
        if view.rows is None and view.offline_courses != "override":
            raise Refused(f"{view.unreachable()}; {_ALLOW}")
        return replace(request, course_id=None, course_ref=view.name), course, view
    request = replace(request, course_id=course_id, course_ref=None)
    course = store.course(course_id)
    if settings is None:
        return request, course, None
    view, _ = read_clinic(settings, settings.bench, course_id, remote=False, store=store)
    return request, {**course, "name": view.name}, view


_ALLOW = "offline_courses = \"override\" in the site file's [clinic] would allow a supervisor's override"


def read_clinic(settings: ClinicSettings, bench: str, course_id: int, *, remote: bool,
                store: Store | None = None) -> tuple[ClinicView, dict[str, Any] | None]:  # fmt: skip
    """(what the clinic store holds of course `bench`/`course_id`, its content if `remote`), within the site
    file's `timeout_s`; a view without rows (and why) if the clinic store cannot be read, or (with this bench's
    `store`) if that store has forked from the clinic's copy of it (`forked`)."""
    from ionctl.records.clinic import courses as clinic_courses
    from ionctl.records.clinic.schema import ClinicError

    name = clinic_courses.name(bench, course_id)
    try:
        content, rows = clinic_courses.read(settings.store, bench, course_id, timeout_s=settings.timeout_s,
                                            content=remote, local=store.db if store is not None else None,
                                            me=settings.bench)  # fmt: skip
    except ClinicError as exc:
        problem, forked = _problem(exc)
        return ClinicView(name, settings.bench, settings.offline_courses, None, problem, forked), None
    return ClinicView(name, settings.bench, settings.offline_courses, tuple(rows)), content


def read_patient(settings: ClinicSettings, store: Store, patient: str) -> PatientCourses:
    """`patient`'s courses at every bench with their records (`PatientCourses`), within the site file's
    `timeout_s`; without them (and why) if the clinic store cannot be read or this bench's store has forked."""
    from ionctl.records.clinic import courses as clinic_courses
    from ionctl.records.clinic.schema import ClinicError

    try:
        found = clinic_courses.read_patient(settings.store, patient, timeout_s=settings.timeout_s, local=store.db,
                                            me=settings.bench)  # fmt: skip
    except ClinicError as exc:
        problem, forked = _problem(exc)
        return PatientCourses(settings.bench, settings.offline_courses, None, problem, forked)
    courses = tuple((course, tuple(rows)) for course, rows in found)
    return PatientCourses(settings.bench, settings.offline_courses, courses)


def _problem(exc: Exception) -> tuple[str, bool]:
    """(why the clinic's records of a course cannot be used, whether because this bench's store has forked)."""
    from ionctl.records.clinic.courses import StoreForked

    text = str(exc).strip().removeprefix("the clinic store cannot be reached: ")
    return (text.splitlines()[0] if text else type(exc).__name__), isinstance(exc, StoreForked)


def course_status(store: Store, course: dict[str, Any], view: ClinicView | None, now: datetime) -> CourseStatus:
    """The course's `CourseStatus` at `now`: from this bench's records of it, with the clinic's from every
    bench when `view` holds them."""
    from ionctl.core.courses import evaluate
    from ionctl.records.clinic.courses import history

    if view is None:
        return evaluate(course, store.course_records(int(course["id"])), now)
    local = store.course_records(ref=view.name) if view.remote else store.course_records(int(course["id"]))
    return evaluate(course, history(view.rows or (), local, view.bench), now)


def outside_note(outside: PatientCourses) -> str:
    """What the operator is told when a session outside any course could not be checked against the patient's
    courses at other benches."""
    return f"{outside.unreachable()}; this bench's were checked"


def _admit(store: Store, request: TreatmentRequest, prescription: Prescription, config: SiteConfig,
           course: dict[str, Any] | None, supervisor: Callable[[], Identity] | None,
           view: ClinicView | None = None, outside: PatientCourses | None = None) -> Override | None:  # fmt: skip
    """None if the course rules allow the session now (a course's own, clinic-wide with `view`, or, outside any
    course, those of a course of the patient's of the same preset or drug, at every bench with `outside`); the
    override if a supervisor sets the rule aside; else CourseRuleRefused. With the clinic store unreachable
    (`view.rows` or `outside.courses` None) the session is refused, or (offline_courses "override") needs a
    supervisor's override noted as unchecked; with this bench's store forked from the clinic's copy, refused."""
    from datetime import UTC, datetime

    from ionctl.core.courses import CourseRefused, check_outside, clock, conflicting_courses, refuse_outside

    unchecked = view is not None and view.rows is None
    # Only a course session waits on `offline_courses` (the "refuse course sessions"): a session outside
    # any course whose patient's courses at other benches cannot be read is judged on this bench's courses, and
    # says so (`outside_note`), so that a clinic server that is down does not stop every session at every bench.
    gap: ClinicView | None = view if unchecked else None
    offline_outside = outside is not None and outside.courses is None
    rule: str | None = None
    held: list[tuple[dict[str, Any], str]] = []
    patient = prescription.patient_id
    try:
        if course is not None:
            current = course_status(store, course, None if unchecked else view, clock())
            rule = current.refusal
        elif outside is not None and outside.courses is not None:
            held = outside.binding(store, patient, preset=request.preset, drug=prescription.drug, now=clock())
            refuse_outside(patient, [(str(c["name"]), why) for c, why in held])
        elif not unchecked:
            check_outside(store, patient, preset=request.preset, drug=prescription.drug)
    except CourseRefused as exc:
        rule = str(exc)
    if offline_outside and rule is not None and outside is not None:
        rule = f"{rule}; {outside_note(outside)}"
    if gap is not None:
        local = f" (and at this bench: {rule})" if rule else ""
        rule = f"{gap.unreachable()}{local}"
        if gap.forked or gap.offline_courses != "override":
            why = rule if gap.forked else f"{rule}; {_ALLOW}"
            raise CourseRuleRefused(why, denied=None, prescription=prescription, limits=config.limits,
                                    config_sha256=config.sha256, overridable=False)  # fmt: skip
    if rule is None:
        return None
    by = authorise_override(request.override_reason, supervisor,
                            refusal=CourseRuleRefused(rule, denied=None, prescription=prescription,
                                                      limits=config.limits, config_sha256=config.sha256))  # fmt: skip
    assert request.override_reason is not None
    if view is not None or course is not None:
        return Override(request.override_reason, rule, request.operator, request.course_id, supervisor=by,
                        course_ref=request.course_ref, unchecked=UNCHECKED if unchecked else None)  # fmt: skip
    if outside is not None and outside.courses is not None:  # the first course that binds it, as its bench names it
        first = held[0][0] if held else None
        mine = first is not None and first["bench"] == outside.bench
        own = int(first["id"]) if first is not None and mine else None
        ref = str(first["name"]) if first is not None and not mine else None
        return Override(request.override_reason, rule, request.operator, own, outside_course=True, supervisor=by,
                        course_ref=ref, unchecked=UNCHECKED if gap is not None else None)  # fmt: skip
    bound = conflicting_courses(store, prescription.patient_id, preset=request.preset, drug=prescription.drug,
                               now=datetime.now(UTC))  # fmt: skip
    return Override(request.override_reason, rule, request.operator, bound[0][0] if bound else None,
                    outside_course=True, supervisor=by, unchecked=UNCHECKED if offline_outside else None)  # fmt: skip


def authorise_override(reason: str | None, supervisor: Callable[[], Identity] | None, *,
                       refusal: CourseRuleRefused) -> Identity:  # fmt: skip
    """The supervisor who sets the rule of `refusal` aside: a reason given, and `supervisor()` returns a person
    allowed to override course rules (their login, its failures, is in the audit trail); else raise `refusal`,
    with why the override was refused when one was asked for."""
    from ionctl.config.people import Act

    if not reason or not refusal.overridable:
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
                  preset: str | None = None, drug: str | None = None, clinic: ClinicView | None = None,
                  course: dict[str, Any] | None = None,
                  patient_courses: PatientCourses | None = None) -> Callable[[Store], None]:  # fmt: skip
    """What to check again as the record opens (`Recorder.open`): the configuration is still the approved one,
    and the course (unless a supervisor overrode its rules) still allows a session; a session outside any
    course (given its `patient`, `preset` and `drug`) is still not bound by a course in progress.

    Clinic-wide (`clinic` with its rows, and the `course`), this bench's records of the course are read again
    here, inside the opening's write transaction, and the clinic's are those read just before: nothing about a
    session may wait on the network. So two benches starting sessions of the same course within the same few
    seconds are not prevented from both running, only recorded (both records name the course, and both count
    in its rules from then on); two sessions at one bench are prevented, as without a clinic store. Outside any
    course, the patient's courses at every bench (`patient_courses` with its courses) are judged likewise."""

    def check(store: Store) -> None:
        from ionctl.config import require_approved
        from ionctl.core.courses import CourseRefused, check_next, check_outside, clock, refuse_outside

        require_approved(config, store)
        if course_rules and clinic is not None and clinic.rows is not None and course is not None:
            refusal = course_status(store, course, clinic, clock()).refusal
            if refusal is not None:
                raise CourseRefused(refusal)
        elif course_id is not None and course_rules:
            check_next(store, course_id)
        elif course_id is None and course_rules and patient is not None:
            if patient_courses is not None and patient_courses.courses is not None:
                held = patient_courses.binding(store, patient, preset=preset, drug=drug, now=clock())
                refuse_outside(patient, [(str(c["name"]), why) for c, why in held])
            else:
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

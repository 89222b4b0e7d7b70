"""Treatment courses: a preset given as a planned series of sessions (the seed case: six sessions, two a week,
at least 3 days apart), and the rules that say whether the next session may start now.

Theory of operation. A course is a row of the record store (`Store.insert_course`): patient, preset and the
plan (`sessions` in all, at most `per_week`, at least `min_interval_days` apart), with the preset's values and
the configuration's SHA-256 as they were when it started. Its sessions are the records that name it
(`course_id`). The rules are pure functions of that plain data and of `now` (a timezone-aware UTC datetime);
only `check_next` reads the clock, and only when it is not given one.

Which records count as sessions done: a record counts when current flowed (`energised` is 1: completed,
stopped, faulted or interrupted after the ramp began), or when it is still open (a running session, or one
whose process died and that recovery has not closed yet), so a second session cannot start beside it.
Refused records (limits, course rules, not confirmed, device unreachable: nothing flowed) do not count.
A session's time is its record's `created_utc`.

Clinic-wide: a course's sessions may be at several benches. Its records then come from the clinic store and from
this bench's store (`ionctl.records.clinic.courses.history`), each carrying its `bench`; a session and a course are
then named `BENCH/ID` ("bench-a/3"), and the rules are the same. `clock()` is the one place the rules read the time
when they are not given one.

The rules, for a session starting at `now`:

- count: at most `sessions` sessions; the next one after the last planned is refused;
- running: no session of the course may be open (running) already;
- interval: at least `min_interval_days` calendar days after the day of the last session (a Monday session,
  3 days: from Thursday's midnight, whatever the hours of the two appointments);
- rate: `per_week` = p allows n = max(1, floor(p)) sessions in any rolling window of 7·n/p days, rounded up
  to whole calendar days (for a whole p that is "at most p sessions in any 7 days"; 0.5 is one in any 14).

Days are calendar days in the clinic's time zone (the machine's local time), the way a twice-a-week
schedule is kept; times are stored in UTC and shown in local time with the zone's name.

The next earliest date is the latest of the interval rule and the rate rule. A refusal (`CourseRefused`) names
the rule and its numbers; a supervisor may override it (`ionctl run --supervisor-override`, recorded in the
audit trail as `course-override`).

A course carries the prescription it is given at: `start_course` builds it from the preset and the values the
clinician gives (current, electrode area, dose or duration, ramps), checks it with the one validation of
`ionctl.safety` against the limits in force, and stores it in the plan; a plan that breaks a limit is refused
with every violation named and nothing is stored. The course's sessions default to that prescription.

The rules bind the patient, not only the course: while a course of a patient is in progress (sessions left)
or inside the minimum interval after its last session, a session of the same preset or the same drug outside
it is refused (`check_outside`: run it with `--course ID`), and so is a second course of the same preset or
drug (`start_course`), unless a supervisor overrides (logged in and signed; `course-override` and
`course-start-override` in the audit trail).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ionctl.config import SiteConfig
    from ionctl.config.people import Identity, People
    from ionctl.records import Store
    from ionctl.records.course_export import CourseSummary

DAY = timedelta(days=1)
WEEK_DAYS = 7.0
OVERRIDE_ACTION = "course-override"
START_OVERRIDE_ACTION = "course-start-override"
#: The version of the `plan` JSON stored with a course (2: with the planned `prescription`).
PLAN_VERSION = 2
#: The prescription values a course may set for its sessions (Prescription field names).
PLANNED_KEYS = ("current_ma", "electrode_area_cm2", "dose_ma_min", "duration_min", "ramp_up_s", "ramp_down_s")


class CourseRefused(Exception):
    """A course session that its plan does not allow now."""


class CourseError(ValueError):
    """A course that cannot be started as asked: an unknown preset, no session count, a value out of range, a
    planned prescription that is incomplete or breaks a limit in force (`violations`: every one broken)."""

    def __init__(self, message: str, violations: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.violations = tuple(violations)


# -- plain data -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How many sessions, how often, how far apart. Validated when built."""

    sessions: int
    per_week: float | None = None
    min_interval_days: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.sessions, bool) or not isinstance(self.sessions, int) or self.sessions < 1:
            raise CourseError(f"sessions must be a whole number >= 1, got {self.sessions!r}")
        if self.per_week is not None and not (_finite(self.per_week) and self.per_week > 0):
            raise CourseError(f"per_week must be a number > 0, got {self.per_week!r}")
        if self.min_interval_days is not None and not (_finite(self.min_interval_days) and self.min_interval_days >= 0):
            raise CourseError(f"min_interval_days must be a number >= 0, got {self.min_interval_days!r}")

    @property
    def rate_window(self) -> tuple[int, timedelta] | None:
        """(n, window): at most n sessions in any rolling window; None without a per-week rule."""
        if self.per_week is None:
            return None
        n = max(1, math.floor(self.per_week))
        return n, timedelta(days=WEEK_DAYS * n / self.per_week)

    def text(self) -> str:
        """The plan in words, for a person."""
        parts = [f"{self.sessions} session{'s' if self.sessions != 1 else ''}"]
        if self.per_week is not None:
            parts.append(f"at most {self.per_week:g} a week")
        if self.min_interval_days is not None:
            parts.append(f"at least {self.min_interval_days:g} days apart")
        return ", ".join(parts)


@dataclass(frozen=True)
class CourseSession:
    """One record of a course, and whether it counts as a session done."""

    record_id: int
    started: datetime  # the record's created_utc
    outcome: str | None  # None: open (running, or not yet recovered)
    energised: bool
    dose_ma_min: float | None
    prescribed_dose_ma_min: float | None
    counts: bool
    number: int | None  # 1, 2, ... among the sessions that count; None for one that does not
    # What the session's own record says it was given at and delivered (never the preset's values).
    current_ma: float | None = None  # prescribed hold current
    peak_current_ma: float | None = None  # measured peak
    duration_s: float | None = None
    electrode_area_cm2: float | None = None
    bench: str | None = None  # the bench whose record it is (clinic-wide); None: this bench's store alone
    site: dict[str, str] | None = None  # the record's treatment site ({"body_site", "laterality"}), if it names one

    @property
    def name(self) -> str:
        """The record's name: "bench-a/12" clinic-wide, else "12"."""
        return f"{self.bench}/{self.record_id}" if self.bench else str(self.record_id)

    def to_dict(self) -> dict[str, Any]:
        where = {"bench": self.bench, "record": self.name} if self.bench else {}
        return {**where, "record_id": self.record_id, "started_utc": iso(self.started), "outcome": self.outcome,
                "energised": self.energised, "dose_ma_min": self.dose_ma_min,
                "prescribed_dose_ma_min": self.prescribed_dose_ma_min, "counts": self.counts,
                "number": self.number, "current_ma": self.current_ma, "peak_current_ma": self.peak_current_ma,
                "duration_s": self.duration_s, "electrode_area_cm2": self.electrode_area_cm2,
                "site": self.site}  # fmt: skip


@dataclass(frozen=True)
class CourseStatus:
    """Where a course stands at `now`: sessions done and left, cumulative dose, the last session, the next
    earliest date, and why a session now would be refused (`refusal`, None if it is allowed)."""

    course_id: int
    plan: Plan
    now: datetime
    sessions: tuple[CourseSession, ...]  # every record of the course, oldest first (refused ones too)
    done: int
    left: int
    cumulative_dose_ma_min: float
    last_session: datetime | None
    next_earliest: datetime | None  # None: no session is left
    refusal: str | None
    name: str | None = None  # clinic-wide, "bench-a/3"; None: this bench's course `course_id`

    @property
    def allowed_now(self) -> bool:
        return self.refusal is None

    @property
    def running(self) -> tuple[int, ...]:
        """The ids of the course's records still open."""
        return tuple(s.record_id for s in self.sessions if s.outcome is None)

    def to_dict(self) -> dict[str, Any]:
        return {**({"course": self.name} if self.name else {}),
                "course_id": self.course_id, "sessions_planned": self.plan.sessions, "per_week": self.plan.per_week,
                "min_interval_days": self.plan.min_interval_days, "as_of_utc": iso(self.now), "done": self.done,
                "left": self.left, "cumulative_dose_ma_min": self.cumulative_dose_ma_min,
                "last_session_utc": iso(self.last_session) if self.last_session else None,
                "next_earliest_utc": iso(self.next_earliest) if self.next_earliest else None,
                "allowed_now": self.allowed_now, "refusal": self.refusal}  # fmt: skip


# -- the rules (pure) -------------------------------------------------------------------------------------------


def counts(record: Mapping[str, Any]) -> bool:
    """Whether a record is a session done: current flowed, or it is still open (see the module docstring)."""
    return record.get("outcome") is None or bool(record.get("energised"))


def day_start(t: datetime) -> datetime:
    """The start (local midnight, in the clinic's time zone: the site's `time_zone`, else the machine's) of the
    day `t` falls on, in UTC."""
    from ionctl.records.timefmt import local as in_clinic_zone

    local = in_clinic_zone(t)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def _days(span: timedelta) -> timedelta:
    """A span in whole calendar days (rounded up)."""
    return math.ceil(span / DAY - 1e-9) * DAY


def interval_end(last: datetime, plan: Plan) -> datetime | None:
    """When the minimum interval after a session at `last` ends: `min_interval_days` calendar days after its day
    (a Monday session, 3 days: Thursday from midnight, at whatever hour Monday's was)."""
    if not plan.min_interval_days:
        return None
    return day_start(last) + _days(plan.min_interval_days * DAY)


def next_earliest(times: Sequence[datetime], plan: Plan) -> datetime | None:
    """The earliest time the next session may start, given the times of the sessions done (any order):
    None if the plan allows it at any time (nothing done, or no interval or rate rule). Rules count calendar
    days in the clinic's time zone, as a twice-a-week schedule is kept."""
    done = sorted(times)
    candidates: list[datetime] = []
    end = interval_end(done[-1], plan) if done else None
    if end is not None:
        candidates.append(end)
    window = plan.rate_window
    if window is not None and len(done) >= window[0]:
        n, span = window
        candidates.append(day_start(done[-n]) + _days(span))  # the day the n-th latest leaves the window
    return max(candidates) if candidates else None


def evaluate(course: Mapping[str, Any], records: Sequence[Mapping[str, Any]], now: datetime) -> CourseStatus:
    """The status of `course` (a `Store.course` row) with its `records` (`Store.course_records` rows) at `now`.
    Clinic-wide, the course carries its `name` and each record its `bench` (`ionctl.records.clinic.courses`)."""
    _require_utc(now)
    course_id = int(course["id"])
    plan = plan_of(course)
    sessions: list[CourseSession] = []
    number = 0
    for r in sorted(records, key=lambda r: (parse_utc(r["created_utc"]), r.get("bench") or "", r["id"])):
        counted = counts(r)
        number += counted
        rx = _decoded(r.get("prescription"))
        sessions.append(CourseSession(
            record_id=int(r["id"]), started=parse_utc(r["created_utc"]), outcome=r.get("outcome"),
            energised=bool(r.get("energised")), dose_ma_min=_float(r.get("dose_ma_min")),
            prescribed_dose_ma_min=_float(r.get("prescribed_dose_ma_min")), counts=counted,
            number=number if counted else None, current_ma=_number(rx.get("current_ma")),
            peak_current_ma=_float(r.get("peak_current_ma")), duration_s=_float(r.get("duration_s")),
            electrode_area_cm2=_number(rx.get("electrode_area_cm2")), bench=r.get("bench"),
            site=_decoded(r.get("clinical")).get("site") or None,
        ))  # fmt: skip
    done_times = [s.started for s in sessions if s.counts]
    done = len(done_times)
    left = max(0, plan.sessions - done)
    dose = sum(s.dose_ma_min or 0.0 for s in sessions if s.counts)
    last = max(done_times) if done_times else None
    earliest = next_earliest(done_times, plan) if left else None
    status = CourseStatus(course_id, plan, now, tuple(sessions), done, left, dose, last, earliest, None,
                          course.get("name"))  # fmt: skip
    return _with_refusal(status, done_times)


def _with_refusal(status: CourseStatus, done_times: Sequence[datetime]) -> CourseStatus:
    """`status` with the rules a session at `status.now` breaks, named with their numbers: the count, a session
    still running, or the interval and rate rules (both named when both are broken, with the next earliest
    date that satisfies every rule)."""
    c, plan, now = f"course {status.name or status.course_id}", status.plan, status.now
    refusal: str | None = None
    if status.left == 0:
        extra = f" ({status.done} sessions on record)" if status.done > plan.sessions else ""
        refusal = f"{c}: all {plan.sessions} planned sessions are done{extra}"
    elif status.running:
        ids = ", ".join(s.name for s in status.sessions if s.outcome is None)
        refusal = f"{c}: a session of this course is still running (record {ids} is open); one session at a time"
    else:
        broken: list[str] = []
        end = interval_end(status.last_session, plan) if status.last_session is not None else None
        if end is not None and status.last_session is not None:
            if now < end:
                broken.append(f"the minimum interval is {plan.min_interval_days:g} days; the last session was on "
                              f"{when(status.last_session)}")  # fmt: skip
        window = plan.rate_window
        if window is not None:
            n, span = window
            since = day_start(now) - _days(span) + DAY  # the first day of the window that ends today
            inside = sorted(t for t in done_times if t >= since)
            if len(inside) >= n:
                broken.append(f"at most {n} session{'s' if n != 1 else ''} in any {_days(span) / DAY:g} days "
                              f"({plan.per_week:g} a week); {len(inside)} since {when(since)}: "
                              f"{', '.join(when(t) for t in inside)}")  # fmt: skip
        if broken and status.next_earliest is not None:
            refusal = f"{c}: {'; '.join(broken)}, the next earliest is {when(status.next_earliest, up=True)}"
    return CourseStatus(status.course_id, plan, now, status.sessions, status.done, status.left,
                        status.cumulative_dose_ma_min, status.last_session, status.next_earliest, refusal,
                        status.name)  # fmt: skip


def plan_of(course: Mapping[str, Any]) -> Plan:
    """The plan of a stored course row."""
    return Plan(int(course["sessions"]), _float(course.get("per_week")), _float(course.get("min_interval_days")))


# -- the store ---------------------------------------------------------------------------------------------------


def start_course(store: Store, config: SiteConfig, *, patient: str, operator: str, preset: str,
                 sessions: int | None = None, per_week: float | None = None, min_interval_days: float | None = None,
                 prescription: Mapping[str, Any] | None = None, override: Mapping[str, Any] | None = None,
                 people: People | None = None, supervisor: Identity | None = None,
                 created_utc: str | None = None) -> int:  # fmt: skip
    """Start a course of `preset` for `patient`; its id. The plan is the preset's `course`, with any value given
    here replacing the preset's; `sessions` must come from one or the other. The planned prescription is the
    preset with `prescription` (values of `PLANNED_KEYS`) replacing its values; it must be complete and pass
    the limits in force (`ionctl.safety.validate`), else CourseError names every violation and nothing is
    stored. A course of the same preset or drug still in progress for the patient (or inside its minimum
    interval) refuses it (CourseRefused) unless `override` is given with the logged-in `supervisor` and the
    `people` of this store: the override (its reason, the rule it set aside) is an audit entry against the new
    course signed by the supervisor (`People.signed`); someone whose role may not override is refused before
    anything is stored. The caller checks that `config` is approved (`require_approved`). The stored
    plan keeps the preset's values and the configuration's SHA-256 as they are now, so a later change of the
    preset does not rewrite the course."""
    from ionctl.config import ConfigError
    from ionctl.safety.identifiers import identifier_problem

    if not patient.strip() or not operator.strip():
        raise CourseError("a course needs a patient and an operator")
    for field, value in (("patient", patient), ("operator", operator), ("preset", preset)):
        problem = identifier_problem(field, value)
        if problem is not None:
            raise CourseError(problem)
    try:
        chosen = config.preset(preset)
    except ConfigError as exc:
        raise CourseError(str(exc)) from exc
    planned = chosen.course
    given = {"sessions": sessions, "per_week": per_week, "min_interval_days": min_interval_days}
    values: dict[str, Any] = {k: getattr(planned, k) if planned is not None else None for k in given}
    values.update({k: v for k, v in given.items() if v is not None})
    if values["sessions"] is None:
        raise CourseError(f"preset {preset!r} has no course plan: give the number of sessions (--sessions N)")
    plan = Plan(values["sessions"], _float(values["per_week"]), _float(values["min_interval_days"]))
    rx_given = {k: v for k, v in (prescription or {}).items() if v is not None}
    rx = planned_prescription(config, preset, patient=patient, operator=operator, values=rx_given)
    conflicts = conflicting_courses(store, patient, preset=preset, drug=chosen.drug, now=datetime.now(UTC))
    held = "; ".join(text for _, text in conflicts)
    rule = (f"patient {patient} already has {held}: a second course of the same preset or drug is a "
            "supervisor's act") if conflicts else None  # fmt: skip
    if rule is not None and override is None:
        raise CourseRefused(f"course not started: {rule}; a supervisor may start it with --supervisor-override "
                            "REASON --supervisor NAME")  # fmt: skip
    if rule is not None and (people is None or supervisor is None):
        raise CourseRefused(f"course not started: {rule}; an override needs the supervisor who gives it, logged in")
    if rule is not None and supervisor is not None:
        from ionctl.config.people import Act, NotAllowed

        try:
            supervisor.require(Act.OVERRIDE_COURSE)
        except NotAllowed as refused:
            raise CourseRefused(f"course not started: {rule}; override refused: {refused}") from None
    detail = {
        "version": PLAN_VERSION,
        "sessions": plan.sessions,
        "per_week": plan.per_week,
        "min_interval_days": plan.min_interval_days,
        "from_preset": {k: getattr(planned, k) for k in given} if planned is not None else None,
        "given": {k: v for k, v in given.items() if v is not None},
        "prescription": rx,
        "prescription_given": rx_given,
        "preset": preset_values(chosen),
        "config_source": config.source,
        "config_sha256": config.sha256,
    }
    course_id = store.insert_course(patient=patient, operator=operator, preset=preset, sessions=plan.sessions,
                                    per_week=plan.per_week, min_interval_days=plan.min_interval_days, plan=detail,
                                    config_sha256=config.sha256, created_utc=created_utc)  # fmt: skip
    if rule is not None and override is not None and people is not None and supervisor is not None:
        people.signed(supervisor, START_OVERRIDE_ACTION, {**override, "rule": rule}, course_id=course_id)
    return course_id


def planned_prescription(config: SiteConfig, preset: str, *, patient: str, operator: str,
                         values: Mapping[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The prescription a course of `preset` is given at (`values` replacing the preset's), as plain JSON
    values, after `ionctl.safety.validate` accepted it against the limits in force; CourseError (naming what is
    missing, or every violation) if it is incomplete or breaks a limit."""
    from ionctl.safety import PrescriptionError, PrescriptionRefused, validate

    unknown = sorted(set(values) - set(PLANNED_KEYS))
    if unknown:
        raise CourseError(f"a course's prescription cannot set {', '.join(unknown)} (only {', '.join(PLANNED_KEYS)})")
    try:
        rx = config.preset(preset).prescription(patient_id=patient, operator_id=operator, **values)
        validate(rx, config.limits)
    except PrescriptionRefused as exc:
        raise CourseError(f"course not started: its planned prescription can never pass the limits in force "
                          f"({config.limits.source}); {exc}", exc.violations) from exc  # fmt: skip
    except PrescriptionError as exc:
        raise CourseError(f"course not started: {exc}") from exc
    return rx_values(rx)


def rx_values(rx: Any) -> dict[str, Any]:
    """A Prescription as plain JSON values, with its planned dose and density (what a course keeps of it)."""
    out = {k: v for k, v in preset_values(rx).items() if k not in ("patient_id", "operator_id")}
    out["planned_dose_ma_min"] = rx.planned_dose_ma_min
    out["density_ma_cm2"] = rx.density_ma_cm2
    return out


def planned_values(course: Mapping[str, Any]) -> dict[str, Any]:
    """What a course's sessions default to (`PLANNED_KEYS` of its planned prescription); {} for a course
    started before courses carried one (its sessions give every value at the bench, as then)."""
    rx = (course.get("plan") or {}).get("prescription")
    if not isinstance(rx, Mapping):
        return {}
    return {k: rx[k] for k in PLANNED_KEYS if rx.get(k) is not None}


# -- the rules across courses -----------------------------------------------------------------------------------


def same_drug(a: str | None, b: str | None) -> bool:
    """Whether two drug names name the same drug (synonyms, case, spaces, `_` and `-` do not matter)."""
    from ionctl.safety import find_drug
    from ionctl.safety.drugs import normalise_drug_name

    if not a or not b:
        return False
    known_a, known_b = find_drug(a), find_drug(b)
    if known_a is not None and known_b is not None:
        return known_a.name == known_b.name
    return normalise_drug_name(a) == normalise_drug_name(b)


def course_drug(course: Mapping[str, Any]) -> str | None:
    plan = course.get("plan") or {}
    for part in ("prescription", "preset"):
        value = (plan.get(part) or {}).get("drug")
        if value:
            return str(value)
    return None


def conflicting_courses(store: Store, patient: str, *, preset: str | None, drug: str | None, now: datetime,
                        exclude: int | None = None) -> list[tuple[int, str]]:  # fmt: skip
    """The courses of `patient` of the same preset or drug that bind a session now, (id, why in words): in
    progress (sessions left), or all done but inside the minimum interval after their last session."""
    found = [(course, status(store, int(course["id"]), now))
             for course in store.courses(patient=patient) if course["id"] != exclude]  # fmt: skip
    return [(int(course["id"]), why) for course, why in binding(found, preset=preset, drug=drug, now=now)]


def binding(courses: Sequence[tuple[Mapping[str, Any], CourseStatus]], *, preset: str | None, drug: str | None,
            now: datetime) -> list[tuple[Mapping[str, Any], str]]:  # fmt: skip
    """Of `courses` (each with its status at `now`: this bench's, or clinic-wide with its `name`), those of the same
    preset or drug that bind a session now, each with why in words (`conflicting_courses`)."""
    out: list[tuple[Mapping[str, Any], str]] = []
    for course, current in courses:
        drug_of = course_drug(course)
        if not (course["preset"] == preset or same_drug(drug_of, drug)):
            continue
        what = f"course {course.get('name') or course['id']} ({course['preset']}, {drug_of or 'drug unknown'}"
        if current.left:
            out.append((course, f"{what}; {current.done} of {current.plan.sessions} done) in progress"))
            continue
        end = interval_end(current.last_session, current.plan) if current.last_session is not None else None
        if end is not None and now < end:
            out.append((course, f"{what}; all {current.plan.sessions} done) whose minimum interval of "
                        f"{current.plan.min_interval_days:g} days runs until {when(end, up=True)}"))  # fmt: skip
    return out


def check_outside(store: Store, patient: str, *, preset: str | None, drug: str | None,
                  now: datetime | None = None) -> None:  # fmt: skip
    """Return if a session of `drug` (and `preset`, if one) outside any course may run for `patient` now; else
    CourseRefused naming the course(s) whose rules it must go through (`ionctl run --course ID`)."""
    conflicts = conflicting_courses(store, patient, preset=preset, drug=drug,
                                    now=now if now is not None else datetime.now(UTC))  # fmt: skip
    refuse_outside(patient, [(str(i), why) for i, why in conflicts])


def refuse_outside(patient: str, conflicts: Sequence[tuple[str, str]]) -> None:
    """CourseRefused if any course binds the session (`conflicts`: each course's name and why), naming them."""
    if conflicts:
        ids = " or --course ".join(i for i, _ in conflicts)
        raise CourseRefused(f"patient {patient} has {'; '.join(t for _, t in conflicts)}: a session of the same "
                            f"preset or drug goes through its course's rules: run it with --course {ids}")  # fmt: skip


def preset_values(preset: Any) -> dict[str, Any]:
    """A preset as plain JSON values (what the course keeps of it)."""
    from dataclasses import asdict
    from enum import Enum

    out: dict[str, Any] = {}
    for key, value in asdict(preset).items():
        out[key] = value.value if isinstance(value, Enum) else value
    return out


def status(store: Store, course_id: int, now: datetime) -> CourseStatus:
    """The status of a stored course at `now` (StoreError if there is no such course)."""
    return evaluate(store.course(course_id), store.course_records(course_id), now)


def check_next(store: Store, course_id: int, now: datetime | None = None) -> None:
    """Return if the course allows a session at `now` (default: the clock, UTC); else raise CourseRefused
    naming the rule and its numbers."""
    current = status(store, course_id, now if now is not None else clock())
    if current.refusal is not None:
        raise CourseRefused(current.refusal)


def overrides(store: Store, course_id: int) -> list[dict[str, Any]]:
    """The supervisor overrides of a course's rules, oldest first (audit entries)."""
    return store.audit(action=OVERRIDE_ACTION, course_id=course_id)


def summary(store: Store, course_id: int, now: datetime) -> CourseSummary:
    """Everything the chart needs of a course (the export's content): the course, its status at `now`, its
    sessions and the overrides."""
    from ionctl.records.course_export import CourseSummary

    course = store.course(course_id)
    current = evaluate(course, store.course_records(course_id), now)
    return CourseSummary(course=course, status=current.to_dict(), sessions=[s.to_dict() for s in current.sessions],
                         overrides=overrides(store, course_id))  # fmt: skip


# -- times -------------------------------------------------------------------------------------------------------


def clock() -> datetime:
    """The time now (UTC) as the course rules read it when not given one."""
    return datetime.now(UTC)


def parse_utc(text: str) -> datetime:
    """A stored ISO 8601 time as an aware UTC datetime (a time without an offset is taken as UTC)."""
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def when(value: datetime, *, up: bool = False) -> str:
    """A time for a person, to the minute, in the clinic's time zone (named); `up` rounds up so that the time
    shown is never too early."""
    from ionctl.records.timefmt import local

    value = local(value)
    if up and (value.second or value.microsecond):
        value = value.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return value.strftime("%Y-%m-%d %H:%M %Z")


def _require_utc(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be a timezone-aware datetime, got {now!r}")


def _finite(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _number(value: Any) -> float | None:
    """A number from a record's JSON, or None for anything else (a record written by hand, an old version)."""
    return float(value) if _finite(value) else None


def _decoded(value: Any) -> dict[str, Any]:
    """A record's prescription as a dict (the store gives the JSON text; a test may give the dict)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            return {}
        return decoded if isinstance(decoded, dict) else {}
    return {}

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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ionctl.config import SiteConfig
    from ionctl.records import Store
    from ionctl.records.course_export import CourseSummary

DAY = timedelta(days=1)
WEEK_DAYS = 7.0
OVERRIDE_ACTION = "course-override"
#: The version of the `plan` JSON stored with a course.
PLAN_VERSION = 1


class CourseRefused(Exception):
    """A course session that its plan does not allow now."""


class CourseError(ValueError):
    """A course that cannot be started as asked: an unknown preset, no session count, a value out of range."""


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

    def to_dict(self) -> dict[str, Any]:
        return {"record_id": self.record_id, "started_utc": iso(self.started), "outcome": self.outcome,
                "energised": self.energised, "dose_ma_min": self.dose_ma_min,
                "prescribed_dose_ma_min": self.prescribed_dose_ma_min, "counts": self.counts,
                "number": self.number}  # fmt: skip


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

    @property
    def allowed_now(self) -> bool:
        return self.refusal is None

    @property
    def running(self) -> tuple[int, ...]:
        """The ids of the course's records still open."""
        return tuple(s.record_id for s in self.sessions if s.outcome is None)

    def to_dict(self) -> dict[str, Any]:
        return {"course_id": self.course_id, "sessions_planned": self.plan.sessions, "per_week": self.plan.per_week,
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
    """The start (local midnight, in the clinic's time zone: the machine's) of the day `t` falls on, in UTC."""
    local = t.astimezone()
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
    """The status of `course` (a `Store.course` row) with its `records` (`Store.course_records` rows) at `now`."""
    _require_utc(now)
    course_id = int(course["id"])
    plan = plan_of(course)
    sessions: list[CourseSession] = []
    number = 0
    for r in sorted(records, key=lambda r: (parse_utc(r["created_utc"]), r["id"])):
        counted = counts(r)
        number += counted
        sessions.append(CourseSession(
            record_id=int(r["id"]), started=parse_utc(r["created_utc"]), outcome=r.get("outcome"),
            energised=bool(r.get("energised")), dose_ma_min=_float(r.get("dose_ma_min")),
            prescribed_dose_ma_min=_float(r.get("prescribed_dose_ma_min")), counts=counted,
            number=number if counted else None,
        ))  # fmt: skip
    done_times = [s.started for s in sessions if s.counts]
    done = len(done_times)
    left = max(0, plan.sessions - done)
    dose = sum(s.dose_ma_min or 0.0 for s in sessions if s.counts)
    last = max(done_times) if done_times else None
    earliest = next_earliest(done_times, plan) if left else None
    status = CourseStatus(course_id, plan, now, tuple(sessions), done, left, dose, last, earliest, None)
    return _with_refusal(status, done_times)


def _with_refusal(status: CourseStatus, done_times: Sequence[datetime]) -> CourseStatus:
    """`status` with the rules a session at `status.now` breaks, named with their numbers: the count, a session
    still running, or the interval and rate rules (both named when both are broken, with the next earliest
    date that satisfies every rule)."""
    c, plan, now = f"course {status.course_id}", status.plan, status.now
    refusal: str | None = None
    if status.left == 0:
        extra = f" ({status.done} sessions on record)" if status.done > plan.sessions else ""
        refusal = f"{c}: all {plan.sessions} planned sessions are done{extra}"
    elif status.running:
        ids = ", ".join(str(i) for i in status.running)
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
                        status.cumulative_dose_ma_min, status.last_session, status.next_earliest, refusal)  # fmt: skip


def plan_of(course: Mapping[str, Any]) -> Plan:
    """The plan of a stored course row."""
    return Plan(int(course["sessions"]), _float(course.get("per_week")), _float(course.get("min_interval_days")))


# -- the store ---------------------------------------------------------------------------------------------------


def start_course(store: Store, config: SiteConfig, *, patient: str, operator: str, preset: str,
                 sessions: int | None = None, per_week: float | None = None, min_interval_days: float | None = None,
                 created_utc: str | None = None) -> int:  # fmt: skip
    """Start a course of `preset` for `patient`; its id. The plan is the preset's `course`, with any value given
    here replacing the preset's; `sessions` must come from one or the other. The caller checks that `config`
    is approved (`require_approved`). The stored plan keeps the preset's values and the configuration's
    SHA-256 as they are now, so a later change of the preset does not rewrite the course."""
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
    detail = {
        "version": PLAN_VERSION,
        "sessions": plan.sessions,
        "per_week": plan.per_week,
        "min_interval_days": plan.min_interval_days,
        "from_preset": {k: getattr(planned, k) for k in given} if planned is not None else None,
        "given": {k: v for k, v in given.items() if v is not None},
        "preset": preset_values(chosen),
        "config_source": config.source,
        "config_sha256": config.sha256,
    }
    return store.insert_course(patient=patient, operator=operator, preset=preset, sessions=plan.sessions,
                               per_week=plan.per_week, min_interval_days=plan.min_interval_days, plan=detail,
                               config_sha256=config.sha256, created_utc=created_utc)  # fmt: skip


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
    current = status(store, course_id, now if now is not None else datetime.now(UTC))
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


def parse_utc(text: str) -> datetime:
    """A stored ISO 8601 time as an aware UTC datetime (a time without an offset is taken as UTC)."""
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def when(value: datetime, *, up: bool = False) -> str:
    """A time for a person, to the minute, in the clinic's time zone (named); `up` rounds up so that the time
    shown is never too early."""
    value = value.astimezone()
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

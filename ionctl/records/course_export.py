"""The course summary for the chart: JSON (format `ionctl.course`, schema-versioned; `CourseSummary.from_dict`
reads it back) and a one-page A4 PDF (patient, preset, plan, the sessions, cumulative dose per session, the
next earliest date, the supervisor overrides).

What the plan said and what each session delivered are kept apart: the header shows the course's planned
prescription (or, for a course started before courses carried one, the preset's values marked as such), and
each session's row what that session's own record says: the current prescribed and the peak measured, the
duration, the dose delivered against the dose prescribed, the outcome, and its date in the clinic's time zone.

The summary is plain data (the stored course row, its status as `ionctl.core.courses.CourseStatus.to_dict` gives it,
one dict per record, the override audit entries), built by `ionctl.core.courses.summary`: this module computes
nothing about the rules, so the records package does not depend on them. matplotlib is imported inside the PDF
functions only, and draws through `Figure` (no pyplot), as `ionctl.records.pdf` does.
"""

from __future__ import annotations

import io
import json
import math
import os
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMAT = "ionctl.course"
SCHEMA_VERSION = 2  # 2: sessions carry current_ma, peak_current_ma, duration_s, electrode_area_cm2
A4_PORTRAIT_IN = (8.27, 11.69)
DOSE_COLOUR = "#0050c8"  # the cumulative dose line: the tests look for it in the rendered page
SESSION_COLOUR = "#9dbbe8"
REFUSED_COLOUR = "#b0b0b0"
MAX_ROWS = 22  # sessions listed on the page; the rest are in `ionctl course show`
MAX_OVERRIDES = 6
PRESET_SHOWN = (("current_ma", "current", "mA"), ("electrode_area_cm2", "area", "cm²"),
                ("dose_ma_min", "dose", "mA·min"), ("duration_min", "duration", "min"))  # fmt: skip


class CourseExportError(ValueError):
    """Not a course export this ionctl can read."""


@dataclass
class CourseSummary:
    """A course, its status, its sessions (every record, refused ones too) and its overrides."""

    course: dict[str, Any]
    status: dict[str, Any]
    sessions: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> int:
        return int(self.course["id"])

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "schema_version": SCHEMA_VERSION, "course": self.course, "status": self.status,
                "sessions": self.sessions, "overrides": self.overrides}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CourseSummary:
        if data.get("format") != FORMAT:
            raise CourseExportError(f"not an ionctl course export (format {data.get('format')!r})")
        version = data.get("schema_version")
        if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
            raise CourseExportError(f"course export schema version {version!r}, expected 1 to {SCHEMA_VERSION}")
        return cls(dict(data["course"]), dict(data["status"]), list(data["sessions"]), list(data["overrides"]))


def to_json(summary: CourseSummary) -> str:
    return json.dumps(summary.to_dict(), indent=2, ensure_ascii=False) + "\n"


# -- the page ---------------------------------------------------------------------------------------------------


def _num(value: Any, fmt: str, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:{fmt}}{' ' + unit if unit else ''}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _short(utc: Any) -> str:
    """A stored (UTC) time to the minute in the clinic's time zone, for the page."""
    from ionctl.records.timefmt import local_text

    return local_text(utc, seconds=False)


def _next(status: dict[str, Any]) -> str:
    """The next earliest date in words: a time, any time (no rule holds it back), or none left."""
    if not status.get("left"):
        return "none left"
    return _short(status["next_earliest_utc"]) if status.get("next_earliest_utc") else "any time"


def planned_parts(rx: dict[str, Any]) -> tuple[str, str]:
    """A course's planned prescription: (current on area and density, dose or duration)."""
    if rx.get("dose_ma_min") is not None:
        amount = f"dose {_num(rx.get('dose_ma_min'), 'g', 'mA·min')}"
    else:
        amount = (f"duration {_num(rx.get('duration_min'), 'g', 'min')} "
                  f"(about {_num(rx.get('planned_dose_ma_min'), '.2f', 'mA·min')})")  # fmt: skip
    return (f"{_num(rx.get('current_ma'), 'g', 'mA')} on {_num(rx.get('electrode_area_cm2'), 'g', 'cm²')} "
            f"({_num(rx.get('density_ma_cm2'), '.3f', 'mA/cm²')})", amount)  # fmt: skip


def planned_text(rx: dict[str, Any]) -> str:
    """A course's planned prescription in one line."""
    return ", ".join(planned_parts(rx))


def _span(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    low, high = min(values), max(values)
    return f"{low:{fmt}} mA" if f"{low:{fmt}}" == f"{high:{fmt}}" else f"{low:{fmt}} to {high:{fmt}} mA"


def plan_text(course: dict[str, Any]) -> str:
    parts = [f"{course['sessions']} sessions"]
    if course.get("per_week") is not None:
        parts.append(f"at most {course['per_week']:g} a week")
    if course.get("min_interval_days") is not None:
        parts.append(f"at least {course['min_interval_days']:g} days apart")
    return ", ".join(parts)


def header_lines(summary: CourseSummary) -> tuple[list[str], list[str]]:
    """The two text columns: (patient, plan as planned), (where the course stands, what was delivered)."""
    c, s = summary.course, summary.status
    plan = c.get("plan") or {}
    preset = plan.get("preset") or {}
    rx = plan.get("prescription")
    left = [
        f"Patient:    {c.get('patient', '-')}",
        f"Started by: {c.get('operator', '-')} on {_short(c.get('created_utc'))}",
        f"Preset      {c.get('preset', '-')}",
        f"  drug      {preset.get('drug', '-')}",  # a drug's full name, on a line of its own: the column is narrow
        f"  active    {preset.get('polarity', '-')}",
    ]
    if isinstance(rx, dict):
        current, amount = planned_parts(rx)
        left += [f"Planned     {current}", f"  {amount}", f"  ramps {_num(rx.get('ramp_up_s'), 'g', 's')} up, "
                 f"{_num(rx.get('ramp_down_s'), 'g', 's')} down"]  # fmt: skip
    else:  # a course started before courses carried their prescription: the preset's values, not a delivery
        values = ", ".join(f"{label} {preset[k]:g} {unit}" for k, label, unit in PRESET_SHOWN
                           if isinstance(preset.get(k), int | float))  # fmt: skip
        left += ["Planned     not kept with this course (given at the bench)",
                 f"  preset's  {values or '-'} (what each session got: below)"]  # fmt: skip
    left += [
        f"Plan        {plan_text(c)}",
        f"Config      SHA-256 {str(c.get('config_sha256') or '-')[:16]}…",
    ]
    given = [row for row in summary.sessions if row.get("counts")]
    currents = [float(row["current_ma"]) for row in given if row.get("current_ma") is not None]
    peaks = [float(row["peak_current_ma"]) for row in given if row.get("peak_current_ma") is not None]
    allowed = "yes" if s.get("allowed_now") else "no"
    right = [
        f"Sessions:   {s.get('done', 0)} done, {s.get('left', 0)} left of {c.get('sessions')}",
        f"Cumulative  {_num(s.get('cumulative_dose_ma_min'), '.3f', 'mA·min')} delivered",
        f"Given at    {_span(currents, 'g')} prescribed",
        f"Peak        {_span(peaks, '.2f')} measured",
        f"Last        {_short(s.get('last_session_utc'))}",
        f"Next from   {_next(s)}",
        f"As of       {_short(s.get('as_of_utc'))}",
        f"Session now {allowed}",
        f"Overrides   {len(summary.overrides)}",
    ]
    return left, right


def session_lines(summary: CourseSummary, limit: int = MAX_ROWS) -> list[str]:
    """The table of sessions, from each session's record: number, record, date (local), outcome, current
    prescribed and peak measured, duration, dose delivered / prescribed."""
    lines = [
        f"{'#':>3} {'record':>6}  {'started':<21}{'outcome':<15}{'Rx mA':>6}{'peak mA':>9}{'min':>7}"
        f"{'dose mA·min':>13}{'Rx dose':>8}  {'site':<14}"
    ]
    for row in summary.sessions[:limit]:
        number = str(row["number"]) if row.get("number") is not None else "-"
        outcome = row.get("outcome") or "open (running)"
        if not row.get("counts"):
            outcome += " *"
        duration = row.get("duration_s")
        lines.append(
            f"{number:>3} {row['record_id']:>6}  {_short(row['started_utc']):<21}{_clip(outcome, 14):<15}"
            f"{_num(row.get('current_ma'), '.2f'):>6}{_num(row.get('peak_current_ma'), '.2f'):>9}"
            f"{_num(duration / 60 if duration is not None else None, '.1f'):>7}"
            f"{_num(row.get('dose_ma_min'), '.3f'):>13}{_num(row.get('prescribed_dose_ma_min'), '.2f'):>8}"
            f"  {_clip(site_text(row.get('site')), 14):<14}"
        )
    if len(summary.sessions) > limit:
        lines.append(f"… {len(summary.sessions) - limit} more: ionctl course show {summary.id}")
    if not summary.sessions:
        lines.append("(no sessions yet)")
    elif any(not row.get("counts") for row in summary.sessions):
        lines.append("* not a session done: no current flowed (refused, or stopped before the ramp)")
    return lines


def site_text(site: Any) -> str:
    """A session's treatment site as the chart says it ("left hand"); "-" for a record that names none."""
    from ionctl.records.clinical import ClinicalError, TreatmentSite

    if not isinstance(site, dict):
        return "-"
    try:
        return TreatmentSite(str(site.get("body_site")), str(site.get("laterality"))).text
    except ClinicalError:
        return "-"


def site_lines(summary: CourseSummary) -> list[str]:
    """The cumulative dose delivered at each treatment site, over the sessions that count."""
    totals: dict[str, tuple[int, float]] = {}
    for row in summary.sessions:
        if row.get("number") is None:
            continue
        site = site_text(row.get("site"))
        n, dose = totals.get(site, (0, 0.0))
        totals[site] = (n + 1, dose + float(row.get("dose_ma_min") or 0.0))
    lines = [f"{site:<16}{n:>3} session{'s' if n != 1 else ' '}{dose:>10.2f} mA·min"
             for site, (n, dose) in totals.items()]  # fmt: skip
    return lines or ["(no sessions yet)"]


def override_lines(summary: CourseSummary, limit: int = MAX_OVERRIDES) -> list[str]:
    lines = []
    for e in summary.overrides[:limit]:
        detail = e.get("detail") or {}
        lines.append(_clip(f"{_short(e.get('utc'))}  {e.get('actor')}: {detail.get('reason', '-')} "
                           f"(rule: {detail.get('rule', '-')})", 62))  # fmt: skip
    if len(summary.overrides) > limit:
        lines.append(f"… {len(summary.overrides) - limit} more: ionctl course show {summary.id}")
    return lines or ["(none)"]


def cumulative_points(summary: CourseSummary) -> tuple[list[int], list[float], list[float]]:
    """(session number, dose of that session, cumulative dose) for each session that counts."""
    numbers, doses, total = [], [], []
    running = 0.0
    for row in summary.sessions:
        if row.get("number") is None:
            continue
        dose = float(row.get("dose_ma_min") or 0.0)
        running += dose
        numbers.append(int(row["number"]))
        doses.append(dose)
        total.append(running)
    return numbers, doses, total


def build_figure(summary: CourseSummary) -> Figure:
    """The page as a matplotlib Figure (A4 portrait) on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=A4_PORTRAIT_IN, dpi=100)
    FigureCanvasAgg(fig)
    c = summary.course
    fig.text(0.06, 0.965, f"Iontophoresis treatment course #{summary.id}", fontsize=15, weight="bold")
    fig.text(0.06, 0.948, f"ionctl · course summary as of {_short(summary.status.get('as_of_utc'))}",
             fontsize=8.5, color="#444444")  # fmt: skip
    mono: dict[str, Any] = {"family": "DejaVu Sans Mono", "fontsize": 7.6, "va": "top", "linespacing": 1.45}
    left, right = header_lines(summary)
    fig.text(0.06, 0.93, "\n".join(left), **mono)
    fig.text(0.56, 0.93, "\n".join(right), **mono)
    refusal = summary.status.get("refusal")
    if refusal:
        wrapped = textwrap.wrap(f"A session now would be refused: {refusal}", width=104)[:3]
        fig.text(0.06, 0.795, "\n".join(wrapped), **{**mono, "fontsize": 7, "color": "#8a0010"})
    fig.text(0.06, 0.748, "Sessions", fontsize=8.5, weight="bold", va="top")
    fig.text(0.06, 0.732, "\n".join(session_lines(summary)), **{**mono, "fontsize": 7, "linespacing": 1.35})
    fig.text(0.56, 0.445, "Cumulative dose by treatment site", fontsize=8.5, weight="bold", va="top")
    fig.text(0.56, 0.429, "\n".join(site_lines(summary)[:6]), **{**mono, "fontsize": 7, "linespacing": 1.35})
    fig.text(0.06, 0.445, "Supervisor overrides", fontsize=8.5, weight="bold", va="top")
    fig.text(0.06, 0.429, "\n".join(override_lines(summary)), **{**mono, "fontsize": 7, "linespacing": 1.35})

    ax = fig.add_axes((0.1, 0.07, 0.85, 0.24))
    numbers, doses, total = cumulative_points(summary)
    planned = int(c.get("sessions") or 0)
    if numbers:
        ax.bar(numbers, doses, color=SESSION_COLOUR, width=0.6, label="dose of the session", gid="session-dose")
        ax.plot(numbers, total, color=DOSE_COLOUR, linewidth=2.0, marker="o", label="cumulative dose",
                gid="cumulative-dose")  # fmt: skip
        ax.legend(loc="upper left", fontsize=7, frameon=False)
    else:
        ax.text(0.5, 0.5, "no sessions yet", ha="center", va="center", transform=ax.transAxes, fontsize=9,
                color="#666666")  # fmt: skip
    ax.set_xlim(0.4, max(planned, len(numbers), 1) + 0.6)
    if max(planned, len(numbers)) <= 20:
        ax.set_xticks(range(1, max(planned, len(numbers), 1) + 1))
    if planned:
        ax.axvline(planned + 0.5, color=REFUSED_COLOUR, linestyle=":", linewidth=1.0, gid="planned-end")
    ax.set_title("Dose per session and cumulative dose", fontsize=8.5, loc="left")
    ax.set_xlabel("session", fontsize=8)
    ax.set_ylabel("dose (mA·min)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, linewidth=0.4, color="#cccccc")
    ax.set_ylim(bottom=0.0)
    fig.text(0.06, 0.012, f"Course {summary.id} · its sessions are records in the store; verify with "
                          "`ionctl records verify`", fontsize=6.5, color="#666666")  # fmt: skip
    return fig


def to_pdf(summary: CourseSummary) -> bytes:
    """The one-page PDF (bytes)."""
    fig = build_figure(summary)
    out = io.BytesIO()
    meta = {"Title": f"Iontophoresis treatment course {summary.id}",
            "Subject": f"patient {summary.course.get('patient')}", "Creator": "ionctl"}  # fmt: skip
    fig.savefig(out, format="pdf", metadata=meta)
    return out.getvalue()


def write_pdf(summary: CourseSummary, path: str | os.PathLike[str]) -> None:
    with open(path, "wb") as f:
        f.write(to_pdf(summary))

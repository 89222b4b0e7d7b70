"""The PDF export of a record: one A4 portrait page for the patient's chart.

The top half is the record in words (patient, operator, device, prescription, outcome, fault, host and device
dose, duration, the short list of faults and events); the bottom half plots measured current (mA), voltage
(V) and impedance (Ω) over device time, with the session states shaded (the ramps stand out) and every fault
marked by a vertical line and its label. Below the plot: the record's electronic signatures (printed name, date
and time, meaning: 21 CFR 11.50; docs/SOURCES.md, "Part 11"), the record's chain hash (the hash of its closing
link) and the chain head when the page was made, which `ionctl records verify --anchor HASH` checks are still in
the store: a page in the paper chart is an anchor outside the store file that deleting records cannot reach.

matplotlib is imported here, inside the functions, and only when a PDF is made: `ionctl --help` and
`import ionctl.records` never load it. It draws through `Figure` (no pyplot, so no global state and no GUI
backend): Agg for pixels, matplotlib's PDF backend for the page. `build_figure` is the one place the page is
drawn; `to_pdf` / `write_pdf` save it, and the tests render the same figure to PNG.
"""

from __future__ import annotations

import io
import json
import math
import os
import textwrap
from typing import TYPE_CHECKING, Any

from ionctl.records import timefmt
from ionctl.records.export import SIGN_ACTION, signature_text
from ionctl.records.store import Record

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

A4_PORTRAIT_IN = (8.27, 11.69)
CURRENT_COLOUR = "#0050c8"  # blue: the tests look for it in the rendered page
VOLTAGE_COLOUR = "#d46a00"
IMPEDANCE_COLOUR = "#1e8c3a"
FAULT_COLOUR = "#c0001a"
#: Light fills for the session states, so the ramps and pauses are visible behind the traces.
STATE_COLOURS = {
    "ramping_up": "#fff1a8",
    "delivering": "#e4f1e4",
    "paused": "#e2e2e2",
    "reversing": "#eadcf5",
    "ramping_down": "#ffd8b0",
}
FAULT_MARKER_GID = "fault-marker"
FAULT_LABEL_GID = "fault-label"
MAX_EVENTS = 12  # events listed on the page (faults first); the rest are in `ionctl records show`
MAX_FAULT_LABELS = 3  # labelled above the plot, stacked
MAX_POINTS = 6000  # telemetry drawn per trace; longer records are reduced to a min/max envelope
MAX_SIGNATURES = 4  # signatures printed on the page; the rest are in `ionctl records show`


def _parsed(value: Any) -> dict[str, Any]:
    """A JSON column (prescription, limits, device) as a dict ({} when absent or not an object)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _num(value: Any, fmt: str, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:{fmt}}{' ' + unit if unit else ''}"


def _short_hash(value: Any) -> str:
    return f"{value[:16]}…" if isinstance(value, str) and value else "-"


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "-"
    s = float(seconds)
    return f"{s:.1f} s ({int(s // 60)} min {s % 60:04.1f} s)"


def summary_lines(record: Record) -> tuple[list[str], list[str]]:
    """The two text columns of the page: (who, device and prescription), (outcome, dose and measurements)."""
    f = record.fields
    rx = _parsed(f.get("prescription"))
    device = _parsed(f.get("device"))
    if rx.get("dose_ma_min") is not None:
        amount = f"dose {_num(rx['dose_ma_min'], '.2f', 'mA·min')}"
    elif rx.get("duration_min") is not None:
        amount = f"duration {_num(rx['duration_min'], '.1f', 'min')}"
    else:
        amount = "-"
    reversal = " (reversed at midpoint)" if rx.get("polarity_reversal_at_midpoint") else ""
    left = [
        f"Patient:    {f.get('patient', '-')}",
        f"Operator:   {f.get('operator', '-')}",
        "",
        "Device",
        f"  model     {device.get('model', '-')}",
        f"  serial    {device.get('serial', '-')}",
        f"  firmware  {device.get('firmware', '-')}",
        f"  protocol  {device.get('protocol', '-')}",
        "",
        "Prescription",
        f"  drug      {rx.get('drug', '-')}" + (f" ({rx['drug_charge']})" if rx.get("drug_charge") else ""),
        f"  polarity  {rx.get('polarity', '-')} (active electrode){reversal}",
        f"  current   {_num(rx.get('current_ma'), '.2f', 'mA')} on {_num(rx.get('electrode_area_cm2'), '.2f', 'cm²')}",
        f"  density   {_num(rx.get('density_ma_cm2'), '.3f', 'mA/cm²')}",
        f"  {amount}" + (f" (planned {_num(rx['planned_dose_ma_min'], '.2f', 'mA·min')})"
                         if rx.get("planned_dose_ma_min") is not None and rx.get("dose_ma_min") is None else ""),
        f"  ramps     {_num(rx.get('ramp_up_s'), 'g', 's')} up, {_num(rx.get('ramp_down_s'), 'g', 's')} down",
        f"  class     {rx.get('protocol_class', '-')}",
    ]  # fmt: skip
    source = f" ({f['dose_source']})" if f.get("dose_source") else ""
    right = [
        f"Outcome:    {f.get('outcome') or 'open (running)'}",
        f"Fault:      {f.get('fault') or 'none'}",
        "",
        f"Dose        {_num(f.get('dose_ma_min'), '.3f', 'mA·min')}{source}",
        f"  host      {_num(f.get('host_dose_ma_min'), '.3f', 'mA·min')}",
        f"  device    {_num(f.get('device_dose_ma_min'), '.3f', 'mA·min')}",
        f"  prescr.   {_num(f.get('prescribed_dose_ma_min'), '.2f', 'mA·min')}",
        f"Duration    {_duration(f.get('duration_s'))}",
        f"Peak        {_num(f.get('peak_current_ma'), '.2f', 'mA')}, "
        f"{_num(f.get('peak_density_ma_cm2'), '.3f', 'mA/cm²')}",
        f"Compliance  {_num(f.get('time_at_compliance_s'), '.1f', 's')} at the voltage limit",
        "Impedance   start {} / end {}".format(_num(f.get("impedance_start_ohm"), ".0f", "Ω"),
                                               _num(f.get("impedance_end_ohm"), ".0f", "Ω")),
        "            min {} / max {}".format(_num(f.get("impedance_min_ohm"), ".0f", "Ω"),
                                             _num(f.get("impedance_max_ohm"), ".0f", "Ω")),
        "",
        f"Started     {timefmt.local_text(f.get('created_utc'))}",
        f"Ended       {timefmt.local_text(f.get('ended_utc'))}",
        f"Limits SHA-256  {_short_hash(f.get('limits_sha256'))}",
        f"Config SHA-256  {_short_hash(f.get('config_sha256'))}"
        + (f"   course {f['course_id']}" if f.get("course_id") is not None else ""),
        f"Telemetry   {len(record.telemetry)} samples",
    ]  # fmt: skip
    return left, right


def event_lines(record: Record, limit: int = MAX_EVENTS) -> list[str]:
    """The faults and events for the page: every fault first in priority, then the others, in order."""
    events = record.events
    chosen = events
    if len(events) > limit:
        faults = [e for e in events if e["kind"] == "fault"][:limit]
        others = [e for e in events if e["kind"] != "fault"][: limit - len(faults)]
        chosen = sorted(faults + others, key=lambda e: e["seq"])
    lines = []
    start = timefmt.session_start_s(record.events, record.telemetry)
    for e in chosen:
        at = f"+{timefmt.since_start(start, e.get('device_t_s'))}" if e.get("device_t_s") is not None else "-"
        at = f"{timefmt.local_text(e.get('utc'))[11:19]} {at:>7}"  # the clinic's clock, and the session's
        mark = "FAULT" if e["kind"] == "fault" else e["kind"]
        lines.append(_clip(f"{at}  {mark:<5}  {' '.join(str(e['text']).split())}", 112))
    if len(events) > len(chosen):
        lines.append(f"… {len(events) - len(chosen)} more: ionctl records show {record.id}")
    lines += addendum_lines(record)
    return lines or ["(no events)"]


def addendum_lines(record: Record) -> list[str]:
    """Skin checks, adverse reactions and other addenda, one line each (CPT 97033 chart guidance: skin
    inspected before and after, adverse reactions noted)."""
    from ionctl.records.skin import addendum_text

    lines = []
    for a in record.addenda:
        if a.get("action") == SIGN_ACTION:
            continue  # a signature: `signature_lines`
        raw = a.get("detail")
        text = addendum_text({**a, "detail": raw if isinstance(raw, dict) else _parsed(raw)})
        when = timefmt.local_text(a.get("utc"), seconds=False)
        lines.append(_clip(f"{when}  #{a.get('seq', '-')} {a.get('action', '-')} ({a.get('actor', '-')}): {text}", 112))
    return lines


def signature_lines(record: Record, limit: int = MAX_SIGNATURES) -> list[str]:
    """The record's sign-offs, one line each: printed name, login name and role, date and time (clinic time),
    meaning (21 CFR 11.50(a)), as `Signature.manifestation` says them."""
    texts = (signature_text(a, timefmt.local_text) for a in record.addenda)
    lines = [_clip(text, 112) for text in texts if text is not None]
    if len(lines) > limit:
        lines = [*lines[: limit - 1], f"… {len(lines) - limit + 1} more: ionctl records show {record.id}"]
    return lines or ["none yet (ionctl records sign " + str(record.id) + " --as NAME)"]


def chain_lines(record: Record, head: tuple[int, str] | None) -> list[str]:
    """The record's chain hash (its closing link's) and the chain head when the page was made."""
    f = record.fields
    closing = f.get("chain_hash")
    lines = [f"Record chain hash (link {f.get('close_gseq')}): {closing}" if closing else
             "Record chain hash: none yet (the record is open)"]  # fmt: skip
    if head is not None:
        lines.append(f"Chain head at export (link {head[0]}): {head[1]}")
    lines.append("`ionctl records verify --anchor HASH` checks that a hash above is still a link of the store's "
                 "chain (records deleted after it show)")  # fmt: skip
    return lines


def _clip(text: str, width: int) -> str:
    """`text` cut to `width` characters with an ellipsis (its inner spacing kept, unlike textwrap.shorten)."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _envelope(t: Any, y: Any) -> tuple[Any, Any]:
    """At most MAX_POINTS points keeping each bucket's min and max (a spike survives the reduction)."""
    import numpy as np

    n = len(t)
    if n <= MAX_POINTS:
        return t, y
    buckets = MAX_POINTS // 2
    size = n // buckets
    used = buckets * size
    tb = t[:used].reshape(buckets, size)
    yb = y[:used].reshape(buckets, size)
    # nan-aware: an all-NaN bucket (impedance not measurable) stays NaN, so the trace shows a gap
    with np.errstate(invalid="ignore"):
        lo = np.where(np.all(np.isnan(yb), axis=1), np.nan, np.nanmin(np.where(np.isnan(yb), np.inf, yb), axis=1))
        hi = np.where(np.all(np.isnan(yb), axis=1), np.nan, np.nanmax(np.where(np.isnan(yb), -np.inf, yb), axis=1))
    tt = np.repeat(tb[:, 0], 2)
    yy = np.column_stack([lo, hi]).ravel()
    return np.concatenate([tt, t[used:]]), np.concatenate([yy, y[used:]])


def state_spans(record: Record) -> list[tuple[str, float, float]]:
    """(state, device t from, device t to) for each run of consecutive samples in one state."""
    spans: list[tuple[str, float, float]] = []
    for s in record.telemetry:
        state, t = s.get("state"), float(s["t_s"])
        if spans and spans[-1][0] == state:
            spans[-1] = (spans[-1][0], spans[-1][1], t)
        elif state is not None:
            if spans:  # the previous span reaches to where this one starts
                spans[-1] = (spans[-1][0], spans[-1][1], t)
            spans.append((str(state), t, t))
    return spans


def fault_marks(record: Record) -> list[tuple[float, str]]:
    """(device t, label) of each fault: the fault events with a device time; if none has one and the record
    ended in a fault, the record's fault at the last sample."""
    marks = [(float(e["device_t_s"]), str(e["text"])) for e in record.events
             if e["kind"] == "fault" and e.get("device_t_s") is not None]  # fmt: skip
    fault = record.fields.get("fault")
    if not marks and fault and record.telemetry:
        marks.append((float(record.telemetry[-1]["t_s"]), f"fault: {fault}"))
    return marks


def build_figure(record: Record, *, head: tuple[int, str] | None = None) -> Figure:
    """The page as a matplotlib Figure (A4 portrait), drawn on an Agg canvas. `head`: the store's chain head
    (gseq, hash) now, printed with the record's own chain hash."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    fig = Figure(figsize=A4_PORTRAIT_IN, dpi=100)
    FigureCanvasAgg(fig)
    f = record.fields
    fig.text(0.06, 0.965, f"Iontophoresis session record #{record.id}", fontsize=15, weight="bold")
    fig.text(0.06, 0.948, f"ionctl · created {timefmt.local_text(f.get('created_utc'))} · outcome: "
                          f"{f.get('outcome') or 'open (running)'}", fontsize=8.5, color="#444444")  # fmt: skip
    left, right = summary_lines(record)
    mono: dict[str, Any] = {"family": "DejaVu Sans Mono", "fontsize": 7.6, "va": "top", "linespacing": 1.45}
    fig.text(0.06, 0.93, "\n".join(left), **mono)
    fig.text(0.52, 0.93, "\n".join(right), **mono)
    message = f.get("message")
    y = 0.69
    if message:
        wrapped = textwrap.wrap(f"Message: {message}", width=108)[:3]
        fig.text(0.06, y, "\n".join(wrapped), **mono)
        y -= 0.013 * len(wrapped) + 0.008
    fig.text(0.06, y, "Faults and events (clinic time, +m:ss since the session started)", fontsize=8.5,
             weight="bold", va="top")  # fmt: skip
    events = event_lines(record)
    fig.text(0.06, y - 0.016, "\n".join(events), **{**mono, "fontsize": 7, "linespacing": 1.35})

    t = np.array([float(s["t_s"]) for s in record.telemetry], dtype=float)
    series = [
        ("current_ma", "Current (mA)", CURRENT_COLOUR, "current"),
        ("voltage_v", "Voltage (V)", VOLTAGE_COLOUR, "voltage"),
        ("impedance_ohm", "Impedance (Ω)", IMPEDANCE_COLOUR, "impedance"),
    ]
    axes: list[Axes] = []
    bottom, height, gap = 0.145, 0.1, 0.012  # below: the signatures and the chain hashes
    for row, (key, label, colour, gid) in enumerate(series):
        ax = fig.add_axes((0.1, bottom + (2 - row) * (height + gap), 0.85, height),
                          sharex=axes[0] if axes else None)  # fmt: skip
        values = np.array([np.nan if s.get(key) is None else float(s[key]) for s in record.telemetry], dtype=float)
        tt, vv = _envelope(t, values)
        ax.plot(tt, vv, color=colour, linewidth=1.3, gid=gid)
        finite = vv[np.isfinite(vv)]
        if finite.size:  # from zero (or below, for a reversed current): magnitudes read true on the chart
            lo, hi = min(0.0, float(finite.min())), max(0.0, float(finite.max()))
            pad = 0.08 * (hi - lo) or 1.0
            ax.set_ylim(lo - (pad if lo < 0 else 0.0), hi + pad)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, linewidth=0.4, color="#cccccc")
        if row < 2:
            ax.tick_params(labelbottom=False)
        axes.append(ax)
    _elapsed_axis(axes[-1], timefmt.session_start_s(record.events, record.telemetry))
    if not record.telemetry:
        axes[0].text(0.5, 0.5, "no telemetry (the output was never energised)", ha="center", va="center",
                     transform=axes[0].transAxes, fontsize=9, color="#666666")  # fmt: skip

    seen: dict[str, str] = {}
    for state, start, end in state_spans(record):
        fill = STATE_COLOURS.get(state)
        if fill is None or end <= start:
            continue
        seen[state] = fill
        for ax in axes:
            ax.axvspan(start, end, color=fill, alpha=0.9, linewidth=0, zorder=0, gid=f"state-{state}")
    handles = [Patch(color=c, label=s.replace("_", " ")) for s, c in seen.items()]
    marks = fault_marks(record)
    times = [float(x) for x in t] + [m[0] for m in marks]
    t_lo, t_hi = (min(times), max(times)) if times else (0.0, 1.0)
    for n, (t_fault, text) in enumerate(marks):
        # the label hangs left of a late fault, right of an early one, so it stays on the page
        where = (t_fault - t_lo) / (t_hi - t_lo) if t_hi > t_lo else 0.5
        ha = "right" if where > 0.7 else "left" if where < 0.3 else "center"
        for ax in axes:
            ax.axvline(t_fault, color=FAULT_COLOUR, linestyle="--", linewidth=1.2, gid=FAULT_MARKER_GID)
        if n >= MAX_FAULT_LABELS:
            continue  # every fault has its line; the labels of the first few (the list above has them all)
        if n == MAX_FAULT_LABELS - 1 and len(marks) > MAX_FAULT_LABELS:
            text = f"{text} (+{len(marks) - MAX_FAULT_LABELS} more faults)"
        axes[0].text(t_fault, 1.03 + 0.09 * n, _clip(" ".join(text.split()), 70), color=FAULT_COLOUR,
                     fontsize=7, ha=ha, va="bottom", transform=axes[0].get_xaxis_transform(),
                     gid=FAULT_LABEL_GID, clip_on=False)  # fmt: skip
    if marks:
        handles.append(Patch(color=FAULT_COLOUR, label="fault"))
    if handles:
        top = bottom + 3 * height + 2 * gap
        fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.1, top + 0.004), ncol=len(handles),
                   fontsize=7, frameon=False)  # fmt: skip
    signatures = signature_lines(record)
    fig.text(0.06, 0.103, "Signatures (printed name, date and time, meaning)", fontsize=8, weight="bold", va="top")
    fig.text(0.06, 0.089, "\n".join(signatures), **{**mono, "fontsize": 7, "linespacing": 1.3})
    fig.text(0.06, 0.012, "\n".join(chain_lines(record, head)), va="bottom", family="DejaVu Sans Mono",
             fontsize=6.2, color="#444444", linespacing=1.3)  # fmt: skip
    return fig


def _elapsed_axis(ax: Axes, start_s: float | None) -> None:
    """Label the (device time) axis with the time since the session started, m:ss, ticks at round elapsed
    times (0:30, 1:00, 2:00, 5:00 ... after the start)."""
    from matplotlib.ticker import FuncFormatter, Locator, MaxNLocator

    origin = start_s or 0.0
    rounded = MaxNLocator(nbins=8, steps=[1, 1.2, 3, 6, 10])  # x 10^k s: 10 s, 12 s, 30 s, 1 min, 2 min, 5 min

    class Elapsed(Locator):
        def __call__(self) -> Any:
            lo, hi = ax.xaxis.get_view_interval()
            return [origin + t for t in rounded.tick_values(lo - origin, hi - origin)]

    ax.xaxis.set_major_locator(Elapsed())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: timefmt.elapsed(x - origin)))
    ax.set_xlabel("time since the session started (m:ss)", fontsize=8)


def to_pdf(record: Record, *, head: tuple[int, str] | None = None) -> bytes:
    """The one-page PDF (bytes); `head` the store's chain head now (`Store.chain_head`)."""
    fig = build_figure(record, head=head)
    out = io.BytesIO()
    meta = {"Title": f"Iontophoresis session record {record.id}", "Subject": f"patient {record.fields.get('patient')}",
            "Creator": "ionctl"}  # fmt: skip
    fig.savefig(out, format="pdf", metadata=meta)
    return out.getvalue()


def write_pdf(record: Record, path: str | os.PathLike[str], *, head: tuple[int, str] | None = None) -> None:
    with open(path, "wb") as f:
        f.write(to_pdf(record, head=head))

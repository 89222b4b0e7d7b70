"""The chart PDF of a record: A4 portrait pages a technician can print and file as they are.

Page 1 heads with the clinic's name (the site configuration's `clinic_name`) and the patient, then says how the
session ended (with the dose still to give when it ended early), sets the prescription beside what was delivered,
tabulates the skin check before and after, puts an adverse reaction in its own highlighted box, plots current,
voltage and impedance over the session's time in minutes with the states shaded and every fault marked (no plot
when there is no telemetry), and lists what happened in sentences at the clinic's local time and the session's
elapsed time (`ionctl.records.narrative`). The addenda follow with their author and time, then the signature block
(printed name, date and time, meaning: 21 CFR 11.50; docs/SOURCES.md, "Part 11") and the record's chain hash with
the store's chain head when the page was made, which `ionctl records verify --anchor HASH` checks are still in the
store. What does not fit on page 1 flows onto further pages, each marked "page K of N". A record of a simulated
device carries "SIMULATED DEVICE — NOT A TREATMENT" across every page. Text is wrapped, never cut.

matplotlib is imported here, inside the functions, and only when a PDF is made: `ionctl --help` and
`import ionctl.records` never load it. It draws through `Figure` (no pyplot, so no global state and no GUI
backend). `build_pages` lays the pages out; `to_pdf` / `write_pdf` save them, and the tests render them to PNG.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ionctl.records import narrative, timefmt
from ionctl.records.store import Record

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

A4_PORTRAIT_IN = (8.27, 11.69)
MARGIN_IN = 0.55
CURRENT_COLOUR = "#0050c8"  # blue: the tests look for it in the rendered page
VOLTAGE_COLOUR = "#d46a00"
IMPEDANCE_COLOUR = "#1e8c3a"
FAULT_COLOUR = "#c0001a"
ALERT_FILL = "#fde4e4"
HEADING_COLOUR = "#1b3a5c"
RULE_COLOUR = "#9aa7b4"
WATERMARK = "SIMULATED DEVICE — NOT A TREATMENT"
WATERMARK_GID = "simulated-watermark"
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
PLOT_GID = "telemetry-plot"
MAX_POINTS = 6000  # telemetry drawn per trace; longer records are reduced to a min/max envelope
PLOT_HEIGHT_IN = 2.75
BODY_PT = 7.6
LINE_IN = BODY_PT * 1.42 / 72  # one line of body text
CHAR_IN = BODY_PT * 0.56 / 72  # a generous average width of a DejaVu Sans character: wrapping stays on the page


# -- layout: pages of drawing operations ------------------------------------------------------------------------


@dataclass
class _Page:
    ops: list[tuple[Any, ...]] = field(default_factory=list)


class _Flow:
    """Lays out blocks top to bottom in inches from the page's top, starting a new page when one does not fit."""

    def __init__(self, footer_in: float) -> None:
        self.pages: list[_Page] = [_Page()]
        self.y = MARGIN_IN
        self.bottom = A4_PORTRAIT_IN[1] - MARGIN_IN - footer_in
        self.width = A4_PORTRAIT_IN[0] - 2 * MARGIN_IN

    @property
    def page(self) -> _Page:
        return self.pages[-1]

    def need(self, height: float) -> None:
        if self.y + height > self.bottom and self.y > MARGIN_IN + 0.6:
            self.pages.append(_Page())
            self.y = MARGIN_IN + 0.35  # below the continuation header

    def text(self, x: float, text: str, *, size: float = BODY_PT, advance: bool = True, **style: Any) -> None:
        self.page.ops.append(("text", x, self.y, text, {"fontsize": size, **style}))
        if advance:
            self.y += size * 1.42 / 72

    def heading(self, text: str) -> None:
        self.need(0.3 + 2 * LINE_IN)
        self.y += 0.08
        self.text(MARGIN_IN, text, size=9.5, weight="bold", color=HEADING_COLOUR)
        self.page.ops.append(("rule", MARGIN_IN, self.y - 0.02, self.width))
        self.y += 0.05

    def paragraph(self, text: str, *, x: float = MARGIN_IN, width: float | None = None, hang: str = "",
                  **style: Any) -> None:  # fmt: skip
        size = style.pop("size", BODY_PT)
        chars = int((width or self.width - (x - MARGIN_IN)) / (size * 0.56 / 72))
        for line in narrative.wrap(text, chars, hang):
            self.need(size * 1.42 / 72)
            self.text(x, line, size=size, **style)


def _columns_text(flow: _Flow, rows: Sequence[Sequence[str]], widths: list[float], *, header: bool = True,
                  x0: float = MARGIN_IN) -> float:  # fmt: skip
    """A table of wrapped cells at the flow's cursor; its height. The first row bold when `header`."""
    start = flow.y
    for n, row in enumerate(rows):
        cells = [narrative.wrap(cell, max(8, int(w / CHAR_IN))) for cell, w in zip(row, widths, strict=True)]
        height = max(len(c) for c in cells) * LINE_IN
        flow.need(height)
        x = x0
        for cell, w in zip(cells, widths, strict=True):
            for k, line in enumerate(cell):
                flow.page.ops.append(
                    (
                        "text",
                        x,
                        flow.y + k * LINE_IN,
                        line,
                        {"fontsize": BODY_PT, **({"weight": "bold"} if header and n == 0 else {})},
                    )
                )
            x += w
        flow.y += height
        if header and n == 0:
            flow.page.ops.append(("rule", x0, flow.y - 0.03, sum(widths)))
    return flow.y - start


def _layout(record: Record, head: tuple[int, str] | None, clinic_name: str | None,
            visit: Sequence[Sequence[str]] = ()) -> tuple[list[_Page], bool]:  # fmt: skip
    """The pages of the record; whether the plot is on page 1."""
    f = record.fields
    flow = _Flow(footer_in=0.0)
    clinic = clinic_name or "Clinic not named (clinic_name in the site configuration)"
    flow.text(MARGIN_IN, clinic, size=14, weight="bold", color=HEADING_COLOUR)
    flow.y += 0.04
    title = f"Iontophoresis session record #{record.id}"
    flow.text(MARGIN_IN, title, size=11, weight="bold", advance=False)
    flow.text(MARGIN_IN + 3.55, f"Patient: {f.get('patient', '-')}", size=11, weight="bold")
    started = timefmt.local_text(f.get("created_utc"))
    ended = timefmt.local_text(f.get("ended_utc"), missing="still open")
    flow.text(MARGIN_IN, f"Started {started} · ended {ended} · times are {timefmt.zone_label()}, with +m:ss "
                         "since the session started", size=7.4, color="#444444")  # fmt: skip
    flow.y += 0.06
    details = [row for row in narrative.details_lines(record) if row[0] != "Patient"]
    line = " · ".join(f"{label}: {value}" for label, value in details)
    flow.paragraph(line, size=BODY_PT)

    # how it ended, in a box coloured by outcome
    outcome = narrative.outcome_sentence(record)
    reasons = narrative.refusal_reasons(record) if f.get("outcome") == "refused" else []
    lines = narrative.wrap(outcome, int((flow.width - 0.2) / (8.2 * 0.56 / 72)))
    for reason in reasons:
        lines += narrative.wrap(f"• {reason}", int((flow.width - 0.2) / (8.2 * 0.56 / 72)), "   ")
    box = len(lines) * 8.2 * 1.42 / 72 + 0.12
    flow.y += 0.06
    fill = "#e6f2e6" if f.get("outcome") == "completed" else ALERT_FILL
    flow.page.ops.append(("box", MARGIN_IN, flow.y, flow.width, box, fill))
    flow.y += 0.06
    for n, text in enumerate(lines):
        flow.text(MARGIN_IN + 0.1, text, size=8.2, weight="bold" if n == 0 else "normal")
    flow.y += 0.08

    flow.heading("Prescription and delivery")
    rows = [("", "Prescribed", "Delivered"), *narrative.comparison(record)]
    _columns_text(flow, rows, [0.95, 3.6, 2.6])

    if visit:
        flow.heading(f"This visit's channels ({len(visit)}), each its own session and record")
        _columns_text(flow, [("Channel", "Site", "Record", "Outcome", "Dose delivered"), *visit],
                      [0.7, 1.5, 1.45, 0.9, 2.6])  # fmt: skip

    skin = narrative.skin_table(record)
    if skin:
        flow.heading("Skin check")
        _columns_text(flow, [("Item", "Before the session", "After the session"), *skin], [1.6, 2.75, 2.8])
    adverse = [a for a in record.addenda if narrative.is_adverse(a)]
    if adverse:
        flow.heading("Adverse reaction")
        texts = [f"{timefmt.local_text(a.get('utc'), seconds=False)}: {narrative.addendum_sentence(a)}"
                 for a in adverse]  # fmt: skip
        chars = int((flow.width - 0.2) / CHAR_IN * 0.9)  # bold is wider
        wrapped = [line for t in texts for line in narrative.wrap(t, chars, "   ")]
        height = len(wrapped) * LINE_IN + 0.1
        flow.need(height)
        flow.page.ops.append(("box", MARGIN_IN, flow.y, flow.width, height, ALERT_FILL))
        flow.y += 0.05
        for text in wrapped:
            flow.text(MARGIN_IN + 0.1, text, color="#7a0010", weight="bold")
        flow.y += 0.05

    plotted = False
    if record.telemetry:
        flow.heading("Current, voltage and impedance over the session (minutes since it started)")
        height = PLOT_HEIGHT_IN - (0.3 if skin or adverse else 0.0)  # the page keeps room for the rest
        flow.need(height)
        plotted = len(flow.pages) == 1
        flow.page.ops.append(("plot", flow.y, height))
        flow.y += height + 0.05
    else:
        flow.heading("Telemetry")
        flow.paragraph("No telemetry: the output was never energised, so there is nothing to plot.",
                       color="#444444")  # fmt: skip

    flow.heading("What happened")
    stamp_w = 1.2
    for entry in _merged(_events_of(record)):
        style: dict[str, Any] = {"color": FAULT_COLOUR, "weight": "bold"} if entry.alert else {}
        chars = int((flow.width - stamp_w) / CHAR_IN * (0.9 if entry.alert else 1.0))  # bold is wider
        lines = narrative.wrap(entry.text, chars)
        flow.need(len(lines) * LINE_IN)
        flow.text(MARGIN_IN, f"{entry.when} {entry.elapsed}".strip(), advance=False, family="DejaVu Sans Mono",
                  size=7.2, **style)  # fmt: skip
        for text in lines:
            flow.text(MARGIN_IN + stamp_w, text, **style)

    addenda = [a for a in record.addenda if narrative.signature(a) is None]
    flow.heading("Addenda (after the fact, in the record's audit trail)")
    if not addenda:
        flow.paragraph("None: no skin check or note has been added to this record.", color="#444444")
    from ionctl.records.skin import corrected_by

    later = corrected_by(addenda)
    for a in addenda:
        mark = f" Corrected by {', '.join(f'#{n}' for n in later[a['seq']])}." if a.get("seq") in later else ""
        said = narrative.addendum_sentence(a)
        if str(a.get("action", "")).startswith("skin-check") and skin:  # its answers are in the table above
            said = said.split(":", 1)[0] + (": the answers are in the skin check table above; see the adverse "
                                            "reaction above" if narrative.is_adverse(a) else
                                            ": the answers are in the skin check table above") + "."  # fmt: skip
        flow.paragraph(f"{timefmt.local_text(a.get('utc'), seconds=False)}: {said}{mark}", hang="   ")

    flow.heading("Signatures")
    signatures = [s for s in (narrative.signature(a) for a in record.addenda) if s is not None]
    if signatures:
        rows = [
            ("Printed name", "Date and time", "Meaning"),
            *[(f"{s['name']} ({s['login']}, {s['role']})", s["when"], s["meaning"]) for s in signatures],
        ]
        _columns_text(flow, rows, [3.3, 2.2, 1.6])  # fmt: skip
    else:
        flow.paragraph(f"None yet: the operator signs with `ionctl records sign {record.id} --as NAME`.")

    flow.y += 0.08
    closing = f.get("chain_hash")
    chain = [f"Record chain hash (link {f.get('close_gseq')}): {closing}" if closing else
             "Record chain hash: none yet (the record is open)"]  # fmt: skip
    if head is not None:
        chain.append(f"Chain head at export (link {head[0]}): {head[1]}")
    for text in chain:
        flow.paragraph(text, family="DejaVu Sans Mono", size=6.6)
    flow.paragraph("`ionctl records verify --anchor HASH` checks that a hash above is still a link of the store's "
                   "chain (records deleted after it show).", size=6.6, color="#444444")  # fmt: skip
    return flow.pages, plotted


def _merged(entries: list[narrative.Entry]) -> list[narrative.Entry]:
    """The entries with the routine steps before the output started (same minute, no elapsed time, nothing to
    alert) run together as one paragraph: the page keeps room for what happened while the patient was treated."""
    out: list[narrative.Entry] = []
    for entry in entries:
        last = out[-1] if out else None
        if (last is not None and not entry.elapsed and not last.elapsed and not entry.alert and not last.alert
                and entry.kind in ("state", "note") and last.kind in ("state", "note")
                and entry.when[:5] == last.when[:5]):  # fmt: skip
            out[-1] = narrative.Entry(last.utc, last.when, "", last.kind, f"{last.text} {entry.text}")
        else:
            out.append(entry)
    return out


def _events_of(record: Record) -> list[narrative.Entry]:
    """The entries that are the session's own events (not addenda or sign-offs)."""
    return narrative.entries(Record(record.fields, record.events, record.telemetry, []))


# -- drawing ----------------------------------------------------------------------------------------------------


def _fy(y_in: float) -> float:
    return 1.0 - y_in / A4_PORTRAIT_IN[1]


def _fx(x_in: float) -> float:
    return x_in / A4_PORTRAIT_IN[0]


def build_pages(record: Record, *, head: tuple[int, str] | None = None, clinic_name: str | None = None,
                visit: Sequence[Sequence[str]] = ()) -> list[Figure]:  # fmt: skip
    """Every page of the chart as a matplotlib Figure (A4 portrait) on an Agg canvas. `head`: the store's chain
    head (gseq, hash) now, printed with the record's own chain hash; `clinic_name` heads the first page; `visit`
    the channels of the record's visit (`narrative.visit_channels`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    pages, _ = _layout(record, head, clinic_name, visit)
    figures = []
    simulated = narrative.simulated(record)
    for k, page in enumerate(pages, start=1):
        fig = Figure(figsize=A4_PORTRAIT_IN, dpi=100)
        FigureCanvasAgg(fig)
        if k > 1:
            fig.text(
                _fx(MARGIN_IN),
                _fy(MARGIN_IN),
                f"Iontophoresis session record #{record.id} · patient {record.fields.get('patient', '-')} · continued",
                fontsize=8,
                va="top",
                color="#444444",
            )
        for op in page.ops:
            if op[0] == "text":
                _, x, y, text, style = op
                fig.text(_fx(x), _fy(y), text, va="top", **style)
            elif op[0] == "rule":
                _, x, y, width = op
                fig.add_artist(Rectangle((_fx(x), _fy(y)), _fx(width), 0.0006, transform=fig.transFigure,
                                         color=RULE_COLOUR, linewidth=0))  # fmt: skip
            elif op[0] == "box":
                _, x, y, width, height, fill = op
                fig.add_artist(
                    Rectangle(
                        (_fx(x), _fy(y + height)),
                        _fx(width),
                        height / A4_PORTRAIT_IN[1],
                        transform=fig.transFigure,
                        color=fill,
                        linewidth=0,
                        zorder=-1,
                    )
                )
            elif op[0] == "plot":
                _, y, height = op
                _plot(fig, record, y, height)
        footer = (
            f"ionctl · record #{record.id} · patient {record.fields.get('patient', '-')} · page {k} of {len(pages)}"
        )
        fig.text(0.5, _fy(A4_PORTRAIT_IN[1] - 0.3), footer, ha="center", va="bottom", fontsize=7, color="#444444")
        if simulated:
            fig.text(0.5, 0.5, WATERMARK, ha="center", va="center", rotation=54, fontsize=34, weight="bold",
                     color="#c0001a", alpha=0.16, gid=WATERMARK_GID, zorder=10)  # fmt: skip
        figures.append(fig)
    return figures


def build_figure(record: Record, *, head: tuple[int, str] | None = None, clinic_name: str | None = None) -> Figure:
    """Page 1 of the chart (`build_pages`)."""
    return build_pages(record, head=head, clinic_name=clinic_name)[0]


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
    """(device t, short label) of each fault: the fault events with a device time; if none has one and the record
    ended in a fault, the record's fault at the last sample."""
    fault = record.fields.get("fault")
    marks = []
    for e in record.events:
        if e["kind"] == "fault" and e.get("device_t_s") is not None:
            code = narrative.fault_code(str(e["text"]), fault)
            marks.append((float(e["device_t_s"]), (code or "fault").replace("_", " ")))
    if not marks and fault and record.telemetry:
        marks.append((float(record.telemetry[-1]["t_s"]), str(fault).replace("_", " ")))
    return marks


def _plot(fig: Figure, record: Record, top_in: float, height_in: float) -> None:
    """Current, voltage and impedance over minutes since the session started, states shaded, faults marked."""
    import numpy as np
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    origin = narrative.start_s(record) or 0.0
    t = np.array([(float(s["t_s"]) - origin) / 60.0 for s in record.telemetry], dtype=float)
    series = [
        ("current_ma", "Current\n(mA)", CURRENT_COLOUR, "current"),
        ("voltage_v", "Voltage\n(V)", VOLTAGE_COLOUR, "voltage"),
        ("impedance_ohm", "Impedance\n(Ω)", IMPEDANCE_COLOUR, "impedance"),
    ]
    legend_in, axis_in, gap_in = 0.22, 0.36, 0.07
    each = (height_in - legend_in - axis_in - 2 * gap_in) / 3
    axes: list[Axes] = []
    left, width = _fx(MARGIN_IN + 0.55), _fx(A4_PORTRAIT_IN[0] - 2 * MARGIN_IN - 0.6)
    for row, (key, label, colour, gid) in enumerate(series):
        y_top = top_in + legend_in + row * (each + gap_in)
        ax = fig.add_axes((left, _fy(y_top + each), width, each / A4_PORTRAIT_IN[1]),
                          sharex=axes[0] if axes else None, gid=PLOT_GID)  # fmt: skip
        values = np.array([np.nan if s.get(key) is None else float(s[key]) for s in record.telemetry], dtype=float)
        tt, vv = _envelope(t, values)
        ax.plot(tt, vv, color=colour, linewidth=1.2, gid=gid)
        finite = vv[np.isfinite(vv)]
        if finite.size:  # from zero (or below, for a reversed current): magnitudes read true on the chart
            lo, hi = min(0.0, float(finite.min())), max(0.0, float(finite.max()))
            pad = 0.1 * (hi - lo) or 1.0
            ax.set_ylim(lo - (pad if lo < 0 else 0.0), hi + pad)
        ax.set_ylabel(label, fontsize=7, linespacing=1.1)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=3))
        ax.tick_params(labelsize=7)
        ax.grid(True, linewidth=0.4, color="#cccccc")
        if row < 2:
            ax.tick_params(labelbottom=False)
        axes.append(ax)
    axes[-1].set_xlabel("minutes since the session started", fontsize=7.5)
    seen: dict[str, str] = {}
    for state, start, end in state_spans(record):
        fill = STATE_COLOURS.get(state)
        if fill is None or end <= start:
            continue
        seen[state] = fill
        for ax in axes:
            ax.axvspan((start - origin) / 60, (end - origin) / 60, color=fill, alpha=0.9, linewidth=0, zorder=0,
                       gid=f"state-{state}")  # fmt: skip
    handles = [Patch(color=c, label=s.replace("_", " ")) for s, c in seen.items()]
    marks = fault_marks(record)
    if len(t):
        axes[0].set_xlim(min(0.0, float(t.min())), max(float(t.max()), *((m[0] - origin) / 60 for m in marks), 0.5))
    lo, hi = axes[0].get_xlim()
    for n, (t_fault, text) in enumerate(marks):
        at = (t_fault - origin) / 60
        for ax in axes:
            ax.axvline(at, color=FAULT_COLOUR, linestyle="--", linewidth=1.2, gid=FAULT_MARKER_GID)
        late = (at - lo) / (hi - lo) > 0.6 if hi > lo else False  # the label hangs inside the plot, never off it
        axes[0].annotate(text, xy=(at, 1.0), xycoords=axes[0].get_xaxis_transform(),
                         xytext=(-3 if late else 3, -3 - 9 * n), textcoords="offset points", color=FAULT_COLOUR,
                         fontsize=7, ha="right" if late else "left", va="top",
                         weight="bold", gid=FAULT_LABEL_GID, annotation_clip=False,
                         bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})  # fmt: skip
    if marks:
        handles.append(Patch(color=FAULT_COLOUR, label="fault"))
    if handles:
        fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(left, _fy(top_in + legend_in)),
                   ncol=len(handles), fontsize=7, frameon=False, borderaxespad=0.0)  # fmt: skip


def to_pdf(record: Record, *, head: tuple[int, str] | None = None, clinic_name: str | None = None,
           visit: Sequence[Sequence[str]] = ()) -> bytes:  # fmt: skip
    """The chart PDF (bytes): one page when it fits, more marked "page K of N". `head`: the store's chain head
    now (`Store.chain_head`); `clinic_name`: the site configuration's, heading page 1; `visit`: the channels of
    the record's visit (`narrative.visit_channels_in`), listed under the prescription."""
    from matplotlib.backends.backend_pdf import PdfPages

    out = io.BytesIO()
    meta = {"Title": f"Iontophoresis session record {record.id}", "Subject": f"patient {record.fields.get('patient')}",
            "Creator": "ionctl"}  # fmt: skip
    with PdfPages(out, metadata=meta) as pdf:
        for fig in build_pages(record, head=head, clinic_name=clinic_name, visit=visit):
            pdf.savefig(fig)
    return out.getvalue()


def write_pdf(record: Record, path: str | os.PathLike[str], *, head: tuple[int, str] | None = None,
              clinic_name: str | None = None, visit: Sequence[Sequence[str]] = ()) -> None:  # fmt: skip
    with open(path, "wb") as f:
        f.write(to_pdf(record, head=head, clinic_name=clinic_name, visit=visit))

"""The benchmark report: one JSON document and its Markdown rendering (docs/PERFORMANCE.md).

A figure is a dict with at least `name`, `value` and `unit`; it may carry `baseline` (measured in the same run)
with `baseline_name`, `ratio`, `target` and `meets_target`, and any details of its own. A figure that could not be
measured here (say, no PostgreSQL server on the machine) has no value, `meets_target` None and `not_measured` (why):
it is counted as not measured, never as met. The writer renders
whatever the suites report and adds nothing by hand: the ratio column is the figure's own `ratio`, or
value / baseline when it has a numeric baseline and no ratio.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any, TypeGuard

COLUMNS = ("figure", "value", "baseline (same run)", "ratio", "target", "met?")
NONE = "—"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine() -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "processor": platform.machine(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def ratio(figure: dict[str, Any]) -> float | None:
    """The figure's own ratio, else value / baseline when both are numbers."""
    if _number(figure.get("ratio")):
        return float(figure["ratio"])
    value, baseline = figure.get("value"), figure.get("baseline")
    if _number(value) and _number(baseline) and baseline:
        return round(value / baseline, 3)
    return None


def row(figure: dict[str, Any]) -> list[str]:
    """One table row: the cells under `COLUMNS`."""
    met = figure.get("meets_target") if "target" in figure else None
    return [
        f"`{figure['name']}`",
        _cell(figure.get("value")),
        _cell(figure.get("baseline")),
        _cell(ratio(figure)),
        _cell(figure.get("target")),
        _cell(met),
    ]


def markdown(document: dict[str, Any], json_link: str | None = None) -> str:
    """docs/PERFORMANCE.md for one benchmark run; `json_link`: where the run's JSON is, relative to it."""
    figures: list[dict[str, Any]] = document["figures"]
    m = document["machine"]
    targeted = [f for f in figures if "target" in f]
    missed = [f["name"] for f in targeted if f.get("meets_target") is False]
    unmeasured = [f["name"] for f in targeted if f.get("meets_target") is None]
    verdict = f"{len(targeted) - len(missed) - len(unmeasured)} met"
    verdict += f", missed: {', '.join(missed)}" if missed else ""
    verdict += f", not measured: {', '.join(unmeasured)}" if unmeasured else ""
    quick = " (quick: sizes too small for the figures to mean anything)" if document.get("quick") else ""
    took = f"; the whole run took {document['wall_s']:.0f} s" if "wall_s" in document else ""
    lines = [
        "# Performance",
        "",
        "<!-- Written by `python -m benchmarks` from the figures of one run; do not edit by hand. -->",
        "",
        f"Command: `{document['command']}`{quick}",
        "",
        f"Date: {document['date']}{took}",
        "",
        f"Machine: {m['cpu_model']}, {m['cpus']} logical cores ({m['processor']}); "
        f"{m['implementation']} {m['python']}; {m['platform']}",
        "",
        f"{len(figures)} figures, {len(targeted)} with a target: "
        + (f"{verdict}." if missed or unmeasured else "all met."),
        "",
        "A target is either on a ratio to a baseline measured in the same run (a figure whose value is a ratio, "
        "or that shows a ratio) or absolute, as the issue that set it asks (a share of a CPU core, a speed-up, "
        "samples per second against a fixed rate); see each suite's docstring in `benchmarks/` for what exactly "
        "is measured.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(row(f)) + " |" for f in figures]
    lines += ["", "## What each figure is", ""]
    for f in figures:
        text = f"- `{f['name']}`: {_cell(f.get('unit'))}"
        if f.get("baseline_name"):
            text += f". Baseline: {_cell(f['baseline_name'])}"
        if f.get("not_measured"):
            text += f". Not measured: {_cell(f['not_measured'])}"
        lines.append(text)
    lines.append("")
    if json_link:
        lines += [f"The same run's JSON, with every detail each suite reports: [{json_link}]({json_link}).", ""]
    return "\n".join(lines)


def write(document: dict[str, Any], *, json_path: Path | None, markdown_path: Path | None) -> list[Path]:
    """Write the JSON and/or the Markdown report; returns the paths written."""
    written = []
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        written.append(json_path)
    if markdown_path is not None:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        link = os.path.relpath(json_path, markdown_path.parent) if json_path is not None else None
        markdown_path.write_text(markdown(document, link), encoding="utf-8")
        written.append(markdown_path)
    return written

"""The benchmark report writer (`benchmarks.report`): the table and the JSON it writes, from figures made up here.

No timing is measured or asserted: this checks the writer, not the machine.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.__main__ import main as benchmarks_main

FIGURES: list[dict[str, Any]] = [
    {"name": "alpha_ms", "value": 2.5, "unit": "ms, a made-up round trip", "baseline": 1.25,
     "baseline_name": "a made-up echo", "ratio": 2.0, "target": "<= 3", "meets_target": True},
    {"name": "beta_per_s", "value": 400, "unit": "things/s", "baseline": 1000, "baseline_name": "a floor"},
    {"name": "gamma_pct", "value": 12.0, "unit": "% of one core", "target": "<= 10", "meets_target": False},
    {"name": "delta", "value": 7, "unit": "count | with a bar"},
]  # fmt: skip


def _document(figures: list[dict[str, Any]] = FIGURES) -> dict[str, Any]:
    machine = {"cpu_model": "Test CPU 9000", "cpus": 2, "processor": "x86_64", "python": "3.11.7",
               "implementation": "CPython", "platform": "Linux-test"}  # fmt: skip
    return {"date": "2026-01-02T03:04:05+00:00", "command": "python -m benchmarks", "machine": machine,
            "quick": False, "wall_s": 12.0, "figures": figures}  # fmt: skip


def _table(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])] for line in rows]


def test_table_has_one_row_per_figure_under_the_six_columns(tmp_path: Path) -> None:
    report.write(_document(), json_path=None, markdown_path=tmp_path / "PERF.md")
    table = _table((tmp_path / "PERF.md").read_text(encoding="utf-8"))
    header, separator, *rows = table
    assert header == ["figure", "value", "baseline (same run)", "ratio", "target", "met?"]
    assert all(set(cell) == {"-"} for cell in separator) and len(separator) == 6
    assert [r[0] for r in rows] == ["`alpha_ms`", "`beta_per_s`", "`gamma_pct`", "`delta`"]
    assert all(len(r) == 6 for r in rows)


def test_cells_show_value_baseline_ratio_target_and_whether_met(tmp_path: Path) -> None:
    report.write(_document(), json_path=None, markdown_path=tmp_path / "PERF.md")
    rows = {r[0]: r for r in _table((tmp_path / "PERF.md").read_text(encoding="utf-8"))[2:]}
    assert rows["`alpha_ms`"][1:] == ["2.5", "1.25", "2", "<= 3", "yes"]
    assert rows["`beta_per_s`"][1:] == ["400", "1000", "0.4", "—", "—"]  # ratio = value / baseline
    assert rows["`gamma_pct`"][1:] == ["12", "—", "—", "<= 10", "no"]
    assert rows["`delta`"][1:] == ["7", "—", "—", "—", "—"]


def test_report_names_the_machine_date_command_and_misses(tmp_path: Path) -> None:
    report.write(_document(), json_path=tmp_path / "perf.json", markdown_path=tmp_path / "PERF.md")
    text = (tmp_path / "PERF.md").read_text(encoding="utf-8")
    for expected in ("Test CPU 9000", "2 logical cores", "CPython 3.11.7", "Linux-test", "2026-01-02T03:04:05",
                     "`python -m benchmarks`", "missed: gamma_pct", "[perf.json](perf.json)"):  # fmt: skip
        assert expected in text
    assert "count \\| with a bar" in text  # a '|' in a unit does not break the table


def test_json_is_the_whole_document(tmp_path: Path) -> None:
    written = report.write(_document(), json_path=tmp_path / "sub" / "perf.json", markdown_path=None)
    assert written == [tmp_path / "sub" / "perf.json"]
    assert json.loads(written[0].read_text(encoding="utf-8")) == _document()


def test_machine_names_cpu_cores_python_and_os() -> None:
    machine = report.machine()
    assert machine["cpu_model"] and machine["cpus"] >= 1
    assert machine["python"].count(".") == 2 and machine["platform"]


def test_no_write_writes_nothing(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from benchmarks import __main__ as entry

    monkeypatch.setattr(entry, "SUITES", {"fake": lambda quick: [dict(FIGURES[1])]})
    monkeypatch.setattr(entry, "DEFAULT_JSON", tmp_path / "perf.json")
    monkeypatch.setattr(entry, "DEFAULT_MARKDOWN", tmp_path / "PERF.md")
    assert benchmarks_main(["--no-write", "-o", str(tmp_path / "x.json")]) == 0
    assert list(tmp_path.iterdir()) == []
    assert json.loads(capsys.readouterr().out)["figures"] == [FIGURES[1]]


def test_full_run_writes_both_default_files(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from benchmarks import __main__ as entry

    monkeypatch.setattr(entry, "SUITES", {"fake": lambda quick: [dict(FIGURES[2])]})
    monkeypatch.setattr(entry, "DEFAULT_JSON", tmp_path / "perf.json")
    monkeypatch.setattr(entry, "DEFAULT_MARKDOWN", tmp_path / "PERF.md")
    assert benchmarks_main([]) == 1  # gamma_pct misses its target
    assert json.loads((tmp_path / "perf.json").read_text(encoding="utf-8"))["figures"] == [FIGURES[2]]
    assert "`gamma_pct`" in (tmp_path / "PERF.md").read_text(encoding="utf-8")


def test_quick_run_leaves_the_docs_alone(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from benchmarks import __main__ as entry

    monkeypatch.setattr(entry, "SUITES", {"fake": lambda quick: [dict(FIGURES[0])]})
    monkeypatch.setattr(entry, "DEFAULT_JSON", tmp_path / "perf.json")
    monkeypatch.setattr(entry, "DEFAULT_MARKDOWN", tmp_path / "PERF.md")
    assert benchmarks_main(["--quick"]) == 0
    assert list(tmp_path.iterdir()) == []


def test_a_figure_not_measured_is_never_counted_as_met(tmp_path: Path) -> None:
    unmeasured = {"name": "epsilon_ms", "value": None, "unit": "ms", "target": "<= 5", "meets_target": None,
                  "not_measured": "no PostgreSQL server could be started"}  # fmt: skip
    report.write(_document([FIGURES[0], unmeasured]), json_path=None, markdown_path=tmp_path / "PERF.md")
    text = (tmp_path / "PERF.md").read_text(encoding="utf-8")
    rows = {r[0]: r for r in _table(text)[2:]}
    assert rows["`epsilon_ms`"][1:] == ["—", "—", "—", "<= 5", "—"]
    assert "2 with a target: 1 met, not measured: epsilon_ms." in text
    assert "all met" not in text
    assert "Not measured: no PostgreSQL server could be started" in text

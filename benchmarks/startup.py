"""Start-up figures: `cli_help_s`, `import_ionctl_s`, `cli_help_heavy_imports`.

* `cli_help_s`: wall time of `python -m ionctl --help` in a fresh interpreter (what typing `ionctl --help`
  costs), best of N, against `python -c pass` timed alternately in the same run: the ratio is the figure with
  the target, as interpreter start-up differs from machine to machine.
* `import_ionctl_s`: `python -c "import ionctl"` against the same baseline.
* `cli_help_heavy_imports`: the modules of `matplotlib`, `textual`, `pyvisa`, `serial` and `transitions` that
  `ionctl --help` imports (from `python -X importtime`): each subcommand imports what it needs when it runs,
  so the help imports none of them. The figure fails if it imports any.

The interpreters run with bytecode caching on (PYTHONDONTWRITEBYTECODE removed from their environment) and
after a warm-up run, as an installed ionctl runs: `pip install` compiles the package's bytecode.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("matplotlib", "textual", "pyvisa", "serial", "transitions")
HELP = ("-m", "ionctl", "--help")
BASELINE = ("-c", "pass")
HELP_TARGET_RATIO = 3.0  # --help costs at most 3 bare interpreter start-ups


def _env() -> dict[str, str]:
    """This environment with bytecode caching allowed (see the module docstring)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _wall_s(args: tuple[str, ...]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL, env=_env())
    return time.perf_counter() - t0


def best_of(n: int, args: tuple[str, ...], baseline: tuple[str, ...] = BASELINE) -> tuple[float, float]:
    """(best wall s of `args`, best wall s of `baseline`), the two run alternately after one warm-up each."""
    _wall_s(args), _wall_s(baseline)  # warm the page cache and the bytecode cache
    times: list[float] = []
    base: list[float] = []
    for _ in range(n):
        times.append(_wall_s(args))
        base.append(_wall_s(baseline))
    return min(times), min(base)  # the least disturbed run: other load only ever adds time


def imported_modules(args: tuple[str, ...]) -> list[str]:
    """Every module `python -X importtime ARGS` imports, in import order."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args], cwd=ROOT, check=True, capture_output=True, text=True, env=_env()
    )
    modules = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                modules.append(name)
    return modules


def heavy_imports(modules: list[str], heavy: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in heavy)


def _timing_figure(name: str, what: str, value: float, baseline: float, n: int, target: float | None) -> dict[str, Any]:
    ratio = value / baseline
    figure: dict[str, Any] = {
        "name": name,
        "value": round(value, 4),
        "unit": f"s wall, {what} in a fresh interpreter (best of {n})",
        "baseline": round(baseline, 4),
        "baseline_name": "python -c pass (interpreter start-up), best of the same number, run alternately",
        "ratio": round(ratio, 2),
    }
    if target is not None:
        figure |= {"target": f"ratio <= {target:g}", "meets_target": ratio <= target}
    return figure


def run(quick: bool = False) -> list[dict[str, Any]]:
    n = 3 if quick else 20
    help_s, help_base = best_of(n, HELP)
    import_s, import_base = best_of(n, ("-c", "import ionctl"))
    modules = imported_modules(HELP)
    heavy = heavy_imports(modules)
    return [
        _timing_figure("cli_help_s", "python -m ionctl --help", help_s, help_base, n, HELP_TARGET_RATIO),
        _timing_figure("import_ionctl_s", "import ionctl", import_s, import_base, n, None),
        {
            "name": "cli_help_heavy_imports",
            "value": len(heavy),
            "unit": f"modules of {', '.join(HEAVY)} imported by ionctl --help (python -X importtime)",
            "imported": heavy,
            "modules_imported": len(modules),
            "target": "0",
            "meets_target": not heavy,
        },
    ]

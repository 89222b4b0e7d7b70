"""docs/ARCHITECTURE.md matches the code: every path and dotted name it mentions exists, its state diagram is the
one the session's machine draws, and the import arrows it states inside `ionctl/` hold."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

from ionctl.core import diagram

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
PACKAGES = ("firmware_protocol", "sim", "ionctl", "tests", "benchmarks")
TOP_DIRS = (*PACKAGES, "docs")

_MERMAID = re.compile(re.escape(diagram.BEGIN) + ".*?" + re.escape(diagram.END), re.S)
_PATH = re.compile(r"(?<![\w/.-])((?:" + "|".join(TOP_DIRS) + r")/[\w./-]*\w/?)")
_NAME = re.compile(r"(?<![\w/.-])((?:" + "|".join(PACKAGES) + r")(?:\.\w+)+)")
_LINK = re.compile(r"\]\(([^)#\s]+)\)")


def _text() -> str:
    """The page without the generated diagram (checked on its own)."""
    return _MERMAID.sub("", DOC.read_text(encoding="utf-8"))


def _resolves(dotted: str) -> bool:
    """A module, or an attribute reached from the longest importable module prefix."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        module_name = ".".join(parts[:i])
        try:
            if importlib.util.find_spec(module_name) is None:
                continue
        except ModuleNotFoundError:
            continue
        if i == len(parts):
            return True
        obj: object = importlib.import_module(module_name)
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_the_page_mentions_paths_and_names_at_all() -> None:
    text = _text()
    assert len(set(_PATH.findall(text))) >= 20
    assert len(set(_NAME.findall(text))) >= 20


@pytest.mark.parametrize("path", sorted(set(_PATH.findall(_text()))))
def test_every_path_exists(path: str) -> None:
    assert (ROOT / path).exists(), f"docs/ARCHITECTURE.md mentions {path}, which does not exist"


@pytest.mark.parametrize("link", sorted(set(_LINK.findall(_text()))))
def test_every_link_resolves(link: str) -> None:
    assert (DOC.parent / link).exists(), f"docs/ARCHITECTURE.md links to {link}, which does not exist"


@pytest.mark.parametrize("name", sorted(set(_NAME.findall(_text()))))
def test_every_dotted_name_exists(name: str) -> None:
    assert _resolves(name), f"docs/ARCHITECTURE.md mentions {name}, which does not exist"


def test_name_check_rejects_what_does_not_exist() -> None:
    assert _resolves("ionctl.core.session.Session")
    assert not _resolves("ionctl.core.session.NoSuchThing")
    assert not _resolves("ionctl.no_such_module")


def test_state_diagram_is_the_one_the_machine_draws() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert diagram.BEGIN in text
    assert diagram.render(text) == text, "run: python -m ionctl.core.diagram docs/ARCHITECTURE.md"


# -- the import arrows the page states inside ionctl/ -----------------------------------------------------------

#: The session's vocabulary, state machine table and pure supervision, which its parts share.
CORE_WORDS = ("ionctl.core.vocabulary", "ionctl.core.machine", "ionctl.core.supervision")
#: The parts of the session: its dose, monitors, result and transitions' device commands, and the words above.
SESSION_PARTS = ("ionctl.core.dose", "ionctl.core.monitors", "ionctl.core.result", "ionctl.core.steps", *CORE_WORDS)
#: Where each part of ionctl may import from ionctl (itself always): the "it imports" column of the layers table.
ALLOWED = {
    "ionctl/drivers/": ("ionctl.drivers",),
    "ionctl/safety/": ("ionctl.safety", "ionctl.drivers.base"),
    "ionctl/core/dose.py": ("ionctl.drivers.base",),
    "ionctl/core/monitors.py": ("ionctl.core.dose", "ionctl.safety", "ionctl.drivers.base", *CORE_WORDS),
    "ionctl/core/session.py": ("ionctl.safety", "ionctl.drivers", *SESSION_PARTS),
    "ionctl/records/": ("ionctl.records",),
    "ionctl/config/": ("ionctl.config", "ionctl.safety", "ionctl.drivers.base", "ionctl.records"),
    "ionctl/core/courses.py": ("ionctl.config", "ionctl.safety", "ionctl.records"),  # as the table in ARCHITECTURE.md
}
ENTRY_POINTS = ("ionctl/cli/main.py", "ionctl/cli/demo.py", "ionctl/__main__.py", "ionctl/console/")


def _imports(path: Path) -> set[str]:
    """Every absolute import in the module, function-level ones included, as dotted names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _modules(prefix: str) -> list[Path]:
    target = ROOT / prefix
    return sorted(target.rglob("*.py")) if prefix.endswith("/") else [target]


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_lower_layers_import_nothing_above_them(part: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(part)
        for name in sorted(_imports(path))
        if _within(name, ("ionctl", "sim")) and not _within(name, ALLOWED[part])
    ]
    assert not wrong, wrong


def test_only_the_entry_points_import_the_simulator() -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "ionctl").rglob("*.py"))
        if not str(path.relative_to(ROOT)).startswith(ENTRY_POINTS)
        for name in sorted(_imports(path))
        if _within(name, ("sim",))
    ]
    assert not wrong, wrong


def test_import_check_sees_function_level_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from ionctl.cli import run\n    import sim.cli\n", encoding="utf-8")
    assert _imports(module) == {"ionctl.cli.run", "sim.cli"}


# -- the top-level packages and the sans-I/O rule ---------------------------------------------------------------

#: Third-party and sibling packages each top-level package may not import (the standard library is always fine).
FORBIDDEN = {
    "firmware_protocol": ("ionctl", "sim", "serial", "pyvisa", "transitions"),  # it may use cobs
    "sim": ("ionctl", "pyvisa", "transitions"),  # it may use firmware_protocol, serial and cobs
}
CLOCK_CALLS = {("time", "time"), ("time", "monotonic"), ("time", "sleep"), ("time", "perf_counter"),
               ("time", "monotonic_ns"), ("time", "time_ns"), ("datetime", "now")}  # fmt: skip


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_the_wire_contract_and_the_simulator_import_nothing_above_them(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in sorted(_imports(path))
        if _within(name.split(".")[0], FORBIDDEN[package])
    ]
    assert not wrong, wrong


def test_the_wire_contract_reads_no_clock() -> None:
    wrong = []
    for path in sorted((ROOT / "firmware_protocol").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                base = node.func.value
                if isinstance(base, ast.Name) and (base.id, node.func.attr) in CLOCK_CALLS:
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: {base.id}.{node.func.attr}()")
    assert not wrong, wrong

"""docs/ARCHITECTURE.md matches the code: every path and dotted name it mentions exists, its state diagram is the
one the session's machine draws, every module imports only what its folder's rule in the page allows, and no file
cites design notes kept outside the repository."""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import re
import subprocess
import sys
from dataclasses import dataclass
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


# -- the import rules: one rule per folder, read from the page's tables ------------------------------------------

_RULES = re.compile(r"<!-- import-rules:begin -->(.*?)<!-- import-rules:end -->", re.S)
_ITEM = re.compile(r"`([\w.]+)`(?:\s*\(only in `([\w./]+)`\))?")
STDLIB = frozenset(sys.stdlib_module_names)
#: The packages whose modules the rules govern, every module of them.
GOVERNED = ("firmware_protocol", "sim", "ionctl")


def _imports(path: Path) -> set[str]:
    """Every absolute import in the module, function-level ones included, as dotted names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@dataclass(frozen=True)
class Allowed:
    """One name a rule allows (a package or module, first- or third-party), perhaps only in one module."""

    name: str
    only_in: str | None = None


def import_rules(text: str) -> dict[str, tuple[Allowed, ...]]:
    """{path: what it may import} from the rows of the tables between the import-rules markers; a path ending in
    `/` is a folder."""
    found = _RULES.search(text)
    assert found, "docs/ARCHITECTURE.md has no <!-- import-rules:begin --> ... <!-- import-rules:end --> tables"
    rules: dict[str, tuple[Allowed, ...]] = {}
    for line in found.group(1).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("| `") or len(cells) < 2:
            continue  # a header, a rule line, a blank
        allowed = tuple(Allowed(name, only or None) for name, only in _ITEM.findall(cells[-1]))
        for path in re.findall(r"`([^`]+)`", cells[0]):
            assert path not in rules, f"two rules for {path}"
            rules[path] = allowed
    return rules


def _rule_for(relative: str, rules: dict[str, tuple[Allowed, ...]]) -> str | None:
    """The row that governs a module: its own, else the deepest folder holding it."""
    if relative in rules:
        return relative
    folders = [path for path in rules if path.endswith("/") and relative.startswith(path)]
    return max(folders, key=len) if folders else None


def _dotted(path: str) -> str:
    return path.rstrip("/").removesuffix(".py").replace("/", ".")


def import_violations(root: Path, rules: dict[str, tuple[Allowed, ...]]) -> list[str]:
    """Every import under `root`'s governed packages that the rules do not allow, and every module no rule governs."""
    wrong = []
    for package in GOVERNED:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            rule = _rule_for(relative, rules)
            if rule is None:
                wrong.append(f"{relative}: no rule in docs/ARCHITECTURE.md governs it")
                continue
            allowed = [a.name for a in rules[rule] if a.only_in in (None, relative)]
            itself = (_dotted(rule), _dotted(relative))
            for name in sorted(_imports(path)):
                top = name.split(".")[0]
                if top in STDLIB or _within(name, itself) or _within(name, tuple(allowed)):
                    continue
                if top == "ionctl" and package == "ionctl" and (name == "ionctl" or name.split(".")[1][:2] == "__"):
                    continue  # the root package: its version
                wrong.append(f"{relative} imports {name}, which the rule for {rule} does not allow")
    return wrong


RULES = import_rules(DOC.read_text(encoding="utf-8"))
#: The folders the page gives a rule (the tree of "The layers"); a second test holds the page's table to it.
FOLDERS = ("firmware_protocol/", "sim/", "ionctl/drivers/", "ionctl/safety/", "ionctl/records/", "ionctl/config/",
           "ionctl/core/", "ionctl/treatment/", "ionctl/cli/", "ionctl/console/")  # fmt: skip
#: Where ionctl may import the simulator: the front ends and the simulated driver.
SIM_IMPORTERS = {"ionctl/cli/", "ionctl/console/", "ionctl/drivers/simulated.py"}


@functools.cache
def _violations() -> tuple[str, ...]:
    return tuple(import_violations(ROOT, RULES))


def test_the_page_gives_every_folder_one_rule() -> None:
    assert [folder for folder in FOLDERS if folder not in RULES] == []
    assert {path for path in RULES if path.endswith("/")} == set(FOLDERS)


def test_a_module_rule_only_narrows_its_folders() -> None:
    for path, allowed in RULES.items():
        folder = _rule_for(path, {k: v for k, v in RULES.items() if k != path})
        if path.endswith("/") or folder is None:
            continue
        wider = {a.name for a in RULES[folder]} | {_dotted(folder)}
        assert [a.name for a in allowed if not _within(a.name, tuple(wider))] == [], path


@pytest.mark.parametrize("rule", sorted(RULES))
def test_lower_layers_import_nothing_above_them(rule: str) -> None:
    """Each module imports only what the row that governs it allows."""
    wrong = [line for line in _violations() if line.endswith(f"the rule for {rule} does not allow")]
    assert not wrong, wrong


def test_every_module_is_governed_by_a_rule() -> None:
    assert [line for line in _violations() if line.endswith("no rule in docs/ARCHITECTURE.md governs it")] == []


def test_only_the_entry_points_import_the_simulator() -> None:
    where = {a.only_in or path for path, allowed in RULES.items() if path.startswith("ionctl") for a in allowed
             if a.name == "sim"}  # fmt: skip
    assert where == SIM_IMPORTERS
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "ionctl").rglob("*.py"))
        if not path.relative_to(ROOT).as_posix().startswith(tuple(SIM_IMPORTERS))
        for name in sorted(_imports(path))
        if _within(name, ("sim",))
    ]
    assert not wrong, wrong


def test_a_planted_violation_is_caught(tmp_path: Path) -> None:
    planted = {
        "ionctl/safety/limits.py": "from ionctl.records import Store\n",  # a lower layer importing a higher one
        "ionctl/core/session.py": "def f():\n    from ionctl.records import Store\n",  # narrower than core's rule
        "ionctl/drivers/firmware.py": "import sim.device\nimport pyvisa\n",  # sim outside simulated.py
        "ionctl/drivers/simulated.py": "import sim.device\nfrom ionctl.drivers.base import CurrentSource\n",
        "ionctl/console/app.py": "from ionctl.cli import run\nimport textual\n",  # the console never imports the CLI
        "ionctl/records/store.py": "import requests\nimport sqlite3\nfrom ionctl import __version__\n",
        "sim/plant.py": "import ionctl\n",
        "firmware_protocol/codec.py": "import cobs.cobs\nfrom . import messages\n",
        "ionctl/elsewhere/thing.py": "",  # a folder with no rule
    }
    for relative, source in planted.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(source, encoding="utf-8")
    assert sorted(import_violations(tmp_path, RULES)) == [
        "ionctl/console/app.py imports ionctl.cli.run, which the rule for ionctl/console/ does not allow",
        "ionctl/core/session.py imports ionctl.records.Store, which the rule for ionctl/core/session.py does not allow",
        "ionctl/drivers/firmware.py imports sim.device, which the rule for ionctl/drivers/ does not allow",
        "ionctl/elsewhere/thing.py: no rule in docs/ARCHITECTURE.md governs it",
        "ionctl/records/store.py imports requests, which the rule for ionctl/records/ does not allow",
        "ionctl/safety/limits.py imports ionctl.records.Store, which the rule for ionctl/safety/ does not allow",
        "sim/plant.py imports ionctl, which the rule for sim/ does not allow",
    ]


def test_the_rules_table_is_read_as_written() -> None:
    rules = import_rules("<!-- import-rules:begin -->\n| folder | what | may import |\n|---|---|---|\n"
                         "| `a/` | x `not.this` | `b`, `c.d` (only in `a/e.py`) |\n"
                         "| `f/`, `g.py` | y | nothing |\n<!-- import-rules:end -->")  # fmt: skip
    assert rules == {"a/": (Allowed("b"), Allowed("c.d", "a/e.py")), "f/": (), "g.py": ()}


def test_import_check_sees_function_level_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from ionctl.cli import run\n    import sim.cli\n", encoding="utf-8")
    assert _imports(module) == {"ionctl.cli.run", "sim.cli"}


# -- no citation of notes outside the repository ---------------------------------------------------------------

_OUTSIDE_NOTES = ("DESIGN" + ".md", "DOMAIN" + ".md")  # built from parts, so this file does not mention them


def _repository_files() -> list[Path]:
    """The files of the repository: git's list (tracked and untracked, not ignored), else every file outside
    hidden folders and caches."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                                capture_output=True, check=True, timeout=60).stdout.decode()  # fmt: skip
        return [ROOT / name for name in listed.split("\0") if name]
    except (OSError, subprocess.SubprocessError):
        skip = ("__pycache__", ".egg-info")
        return [path for path in ROOT.rglob("*") if path.is_file() and not any(
            part.startswith(".") or part.endswith(skip) for part in path.relative_to(ROOT).parts)]  # fmt: skip


def test_no_file_cites_notes_outside_the_repository() -> None:
    files = _repository_files()
    assert any(path.name == "ARCHITECTURE.md" for path in files)
    wrong = [str(path.relative_to(ROOT)) for path in files if path.is_file()
             and any(name.encode() in path.read_bytes() for name in _OUTSIDE_NOTES)]  # fmt: skip
    assert not wrong, f"cite docs/ARCHITECTURE.md (its numbered principles) or docs/SOURCES.md instead: {wrong}"


def test_the_principles_are_numbered_for_citing() -> None:
    text = _text()
    section = text[text.index("## Principles") : text.index("## The layers")]
    numbers = [int(n) for n in re.findall(r"^(\d+)\. \*\*", section, re.M)]
    assert numbers == list(range(1, 9))


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

"""The wheel `pip install .` builds holds the whole product: every package of the source tree, the package data
and the `ionctl` command. Built from a clean copy of the tree (a stale build/ directory in the work tree could
otherwise hide a package the packaging leaves out)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("ionctl", "firmware_protocol", "sim")


def source_packages() -> set[str]:
    """Every folder with an __init__.py under the installed top-level packages, as a dotted name."""
    found = set()
    for top in TOP_LEVEL:
        for init in (ROOT / top).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                found.add(".".join(init.parent.relative_to(ROOT).parts))
    return found


def package_data() -> list[str]:
    """The package-data files pyproject names, as paths inside the wheel."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    data = table["tool"]["setuptools"]["package-data"]
    return [f"{package.replace('.', '/')}/{name}" for package, names in data.items() for name in names]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    for top in TOP_LEVEL:
        shutil.copytree(ROOT / top, tree / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "--quiet", "--wheel-dir", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, f"pip wheel failed:\n{done.stdout}\n{done.stderr}"
    (built,) = out.glob("ionctl-*.whl")
    return zipfile.ZipFile(built)


def test_the_source_tree_has_the_packages_the_check_looks_for() -> None:
    # Guards the check below against an empty walk (a moved tree would make it vacuous).
    assert {"ionctl", "ionctl.console", "ionctl.console.screens", "firmware_protocol", "sim"} <= source_packages()


def test_the_wheel_holds_every_package_of_the_source_tree(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    missing = sorted(p for p in source_packages() if f"{p.replace('.', '/')}/__init__.py" not in names)
    assert not missing, f"packages left out of the wheel: {missing}"
    for package in source_packages():  # and every module of each
        folder = ROOT.joinpath(*package.split("."))
        for module in folder.glob("*.py"):
            assert f"{package.replace('.', '/')}/{module.name}" in names, f"{package}.{module.stem} not in the wheel"


def test_the_wheel_holds_the_package_data(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    expected = package_data()
    assert "ionctl/data/limits.toml" in expected and "firmware_protocol/vectors.json" in expected
    assert not [path for path in expected if path not in names]
    for path in expected:
        assert wheel.read(path) == (ROOT / path).read_bytes(), path


def test_the_wheel_installs_the_command_and_no_tests(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "ionctl = ionctl.cli:main" in wheel.read(entry_points).decode()
    assert not [n for n in wheel.namelist() if n.split("/")[0] in ("tests", "benchmarks")]

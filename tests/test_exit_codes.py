"""Every exit status in `ionctl/` is an `ionctl.core.vocabulary.ExitCode` member: no bare integer ends a command
and no module keeps exit codes of its own (read as text with `ast`; nothing is run)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ionctl.core.vocabulary import ExitCode

ROOT = Path(__file__).resolve().parents[1]
#: Modules whose every function's integer result is an exit status: the command line and the console's entry point.
FRONT_ENDS = ("ionctl/cli/", "ionctl/console/command.py")
_OWN_CONSTANT = re.compile(r"EXIT_[A-Z0-9_]+")


def _integers(node: ast.expr | None) -> bool:
    """The expression is an integer literal, or a conditional with one on either side."""
    if isinstance(node, ast.Constant):
        return type(node.value) is int
    if isinstance(node, ast.IfExp):
        return _integers(node.body) or _integers(node.orelse)
    return False


def _exit_call(node: ast.Call) -> bool:
    """`sys.exit(...)`, `os._exit(...)`, `SystemExit(...)`, `exit(...)`."""
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return (func.value.id, func.attr) in {("sys", "exit"), ("os", "_exit")}
    return isinstance(func, ast.Name) and func.id in {"SystemExit", "exit", "quit"}


def _status_function(fn: ast.FunctionDef | ast.AsyncFunctionDef, front_end: bool) -> bool:
    returns = ast.unparse(fn.returns) if fn.returns is not None else ""
    return fn.name == "main" or "ExitCode" in returns or (front_end and returns == "int")


def bare_statuses(source: str, relative: str) -> list[str]:
    """Each place in the module where an exit status is not an `ExitCode` member, as `line: what`."""
    tree = ast.parse(source)
    front_end = relative.startswith(FRONT_ENDS)
    wrong = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and _OWN_CONSTANT.fullmatch(node.id):
            wrong.append(f"{node.lineno}: {node.id} (an exit code of its own)")
        elif isinstance(node, ast.Call) and _exit_call(node) and node.args and _integers(node.args[0]):
            wrong.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _status_function(node, front_end):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Return) and _integers(inner.value):
                    wrong.append(f"{inner.lineno}: {ast.unparse(inner)} in {node.name}()")
    return sorted(set(wrong), key=lambda text: int(text.split(":")[0]))


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "ionctl").rglob("*.py")))
def test_every_exit_status_is_an_exit_code_member(path: str) -> None:
    wrong = bare_statuses((ROOT / path).read_text(encoding="utf-8"), path)
    assert not wrong, f"{path}: use ionctl.core.vocabulary.ExitCode: {wrong}"


def test_the_check_catches_every_form_of_a_bare_status() -> None:
    planted = """
import os, sys
EXIT_BAD = 2
def main(args):
    if args:
        return 2
    return 0 if args else 1
def finish() -> ExitCode:
    return 3
def run():
    sys.exit(1)
def other():
    raise SystemExit(4)
def child():
    os._exit(5)
def handler(args) -> int:
    return 6
"""
    found = bare_statuses(planted, "ionctl/cli/planted.py")
    assert [line.split(":")[0] for line in found] == ["3", "6", "7", "9", "11", "13", "15", "17"], found


def test_the_check_accepts_exit_code_members_and_plain_numbers() -> None:
    fine = """
import sys
from ionctl.core.vocabulary import ExitCode
def main(args) -> int:
    return ExitCode.FAILED if args else ExitCode.OK
def run():
    sys.exit(main([]))
def ramp_pairs() -> int:
    return 2
def flag() -> bool:
    return True
"""
    assert bare_statuses(fine, "ionctl/safety/planted.py") == []  # outside the front ends, a count is a number
    in_front_end = bare_statuses(fine, "ionctl/cli/planted.py")  # in them, an `int` result is an exit status
    assert in_front_end == ["9: return 2 in ramp_pairs()"]


def test_the_exit_codes_are_the_documented_ones() -> None:
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0, "FAILED": 1, "REFUSED": 2, "FAULT": 3, "OPERATOR": 4, "DEVICE": 5, "RECORD_FAILED": 6,
        "INTERRUPTED": 130, "BROKEN_PIPE": 141,
    }  # fmt: skip

"""The `ionctl` entry points, run as a user runs them: in a subprocess."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from firmware_protocol.vectors import load
from ionctl import __version__
from ionctl.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
#: The commands `ionctl --help` lists, each a module of its own in ionctl/cli/.
COMMANDS = ("run", "demo", "sim", "devices", "protocol", "console", "records", "config", "course", "users", "clinic")


def ionctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ionctl", *args], capture_output=True, text=True, timeout=60)


def test_version_prints_the_package_version() -> None:
    result = ionctl("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"ionctl {__version__}"


def test_help_lists_the_commands() -> None:
    result = ionctl("--help")
    assert result.returncode == 0
    for command in ("demo", "protocol"):
        assert command in result.stdout


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def _handlers(parser: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, object]]:
    """(`command action`, its handler) for every command the parser runs, nested actions included."""
    for name, sub in _subcommands(parser).items():
        here = f"{path} {name}".strip()
        yield here, sub.get_default("handler")
        yield from _handlers(sub, here)


def _command_modules() -> list[ModuleType]:
    modules = [importlib.import_module(f"ionctl.cli.{p.stem}") for p in sorted((ROOT / "ionctl/cli").glob("*.py"))]
    return [m for m in modules if hasattr(m, "register")]


def test_help_lists_the_commands_in_order() -> None:
    assert list(_subcommands(build_parser())) == list(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_is_a_module_whose_main_runs_it(name: str) -> None:
    module = importlib.import_module(f"ionctl.cli.{name}")
    assert _subcommands(build_parser())[name].get_default("handler") is module.main


def test_records_addendum_is_its_own_module() -> None:
    from ionctl.cli import addendum

    assert dict(_handlers(build_parser()))["records addendum"] is addendum.main


def test_every_command_module_has_the_one_signature_and_is_registered() -> None:
    modules = _command_modules()
    names = {module.__name__ for module in modules}
    assert sorted(f"ionctl.cli.{name}" for name in COMMANDS if f"ionctl.cli.{name}" not in names) == []
    for module in modules:
        assert list(inspect.signature(module.register).parameters) == ["commands"], module.__name__
        assert list(inspect.signature(module.main).parameters) == ["args"], module.__name__
    handlers = {handler for _, handler in _handlers(build_parser())}
    assert [m.__name__ for m in modules if m.main not in handlers] == []


def test_help_does_not_import_heavy_or_device_packages() -> None:
    code = (
        "import sys; from ionctl.cli import build_parser; build_parser().format_help(); "
        "print(sorted(m for m in ('pyvisa', 'serial', 'matplotlib', 'textual', 'transitions') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]"


def test_protocol_decode_prints_the_fields_of_a_golden_frame() -> None:
    vector = next(v for v in load()["valid"] if v["name"] == "telemetry_running")
    result = ionctl("protocol", "decode", vector["hex"])
    assert result.returncode == 0, result.stderr
    decoded = json.loads(result.stdout)
    assert decoded["message"] == "TELEMETRY"
    assert decoded["fields"] == vector["fields"]


def test_protocol_decode_reports_a_damaged_frame_and_fails() -> None:
    vector = next(v for v in load()["invalid"] if v["name"] == "crc_bit_flip")
    result = ionctl("protocol", "decode", vector["hex"])
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"] == "CrcMismatch"


def test_protocol_decode_refuses_non_hex_input() -> None:
    result = ionctl("protocol", "decode", "zz")
    assert result.returncode == 2
    assert "not hexadecimal" in result.stderr


def test_protocol_decode_refuses_input_with_no_frame_bytes() -> None:
    for empty in ("", "00", "00 00"):
        result = ionctl("protocol", "decode", empty)
        assert result.returncode == 2 and "no frame bytes" in result.stderr


def test_protocol_schema_prints_the_hash() -> None:
    result = ionctl("protocol", "schema")
    assert result.returncode == 0
    assert load()["schema_hash"] in result.stdout


def test_benchmarks_run_and_emit_every_figure() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"],
        capture_output=True,
        text=True,
        timeout=300,  # about 60 s on an idle machine of 2 cores; CI runs it beside other tests
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr
    names = {figure["name"] for figure in json.loads(result.stdout)["figures"]}
    assert {
        "codec_frames_per_s",
        "codec_vs_floor",
        "codec_cpu_at_115200_pct",
        "sim_speedup",
        "sim_pty_rtt_ms",
        "sim_pty_rtt_vs_echo",
    } <= names

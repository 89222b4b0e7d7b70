"""The simulator's command-line options that shape the model (no process needed)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from sim.cli import UsageError, add_arguments, build_parser, check, load_from, main
from sim.plant import LOAD_PRESETS


def parse(*args: str):
    return build_parser().parse_args(list(args))


def test_explicit_load_values_override_the_preset() -> None:
    load = load_from(parse("--load", "high-impedance", "--rs", "250", "--rp", "40000", "--cp", "0.8"))
    preset = LOAD_PRESETS["high-impedance"]
    assert (load.rs_ohm, load.rp_rest_ohm, load.cp_uf) == (250, 40_000, 0.8)
    assert load.rp_min_ohm == preset.rp_min_ohm and load.charge_scale_uas == preset.charge_scale_uas


def test_a_resting_rp_below_the_presets_minimum_lowers_the_minimum() -> None:
    load = load_from(parse("--rp", "1000"))
    assert load.rp_rest_ohm == load.rp_min_ohm == 1000


def test_a_non_physical_load_is_refused() -> None:
    with pytest.raises(ValueError, match="rs_ohm"):
        load_from(parse("--rs", "-5"))


def test_protocol_version_is_parsed_as_major_minor() -> None:
    assert parse("--protocol-version", "2.3").protocol_version == (2, 3)
    with pytest.raises(SystemExit):
        parse("--protocol-version", "two")


def test_faults_are_parsed_at_the_command_line() -> None:
    faults = parse("--fault", "electrode-lift@60", "--fault", "2:corrupt=0.01@0:30").fault
    assert [(f.device, f.value.kind) for f in faults] == [(1, "electrode-lift"), (2, "corrupt")]


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "1e9", "fast"])
def test_a_time_scale_that_is_not_a_sane_positive_number_is_refused(value: str) -> None:
    with pytest.raises(SystemExit):
        parse("--tcp", "0", "--time-scale", value)


@pytest.mark.parametrize("option", ["--tcp", "--scpi-port"])
@pytest.mark.parametrize("value", ["-1", "65536", "99999999999999999999", "http"])
def test_a_port_outside_the_tcp_range_is_refused(option: str, value: str) -> None:
    with pytest.raises(SystemExit):
        parse(option, value)


@pytest.mark.parametrize("value", ["256.0", "1.256", "-1.0"])
def test_a_protocol_version_that_does_not_fit_a_byte_is_refused(value: str) -> None:
    with pytest.raises(SystemExit):
        parse("--protocol-version", value)


@pytest.mark.parametrize(
    "args",
    [
        ["--scpi-port", "0", "--fault", "electrode-lift@1"],  # faults act on the firmware device only
        ["--scpi-port", "0", "--trace", "t.jsonl"],
        ["--serial-link", "/tmp/x", "--scpi-link", "/tmp/x"],  # one path cannot be two ptys
    ],
)
def test_contradictory_endpoint_options_are_refused_before_anything_opens(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2 and "error:" in capsys.readouterr().err


def test_a_trace_in_a_missing_directory_fails_cleanly(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    link = tmp_path / "dev"
    assert main(["--serial-link", str(link), "--trace", str(tmp_path / "no" / "such" / "t.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "cannot start" in err and "Traceback" not in err
    assert not link.exists()  # nothing left behind


# -- the options are defined once: `python -m sim` and `ionctl sim` both take them from sim.cli.add_arguments --


def test_ionctl_sim_parses_the_simulators_own_options() -> None:
    from ionctl.cli import build_parser as ionctl_parser
    from ionctl.cli import sim as sim_command

    args = ionctl_parser().parse_args(["sim", "--tcp", "0", "--time-scale", "5", "--fault", "electrode-lift@60"])
    assert args.handler is sim_command.main
    assert (args.tcp, args.time_scale, [f.value.kind for f in args.fault]) == (0, 5.0, ["electrode-lift"])
    assert vars(args).keys() >= vars(parse("--tcp", "0")).keys()


def test_ionctl_sim_refuses_contradictory_options_with_its_own_usage(capsys: pytest.CaptureFixture[str]) -> None:
    from ionctl.cli import main as ionctl_main

    with pytest.raises(SystemExit) as exit_info:
        ionctl_main(["sim", "--scpi-port", "0", "--trace", "t.jsonl"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("usage: ionctl sim") and "ionctl sim: error: --fault, --trace" in err


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ([], "give at least one endpoint"),
        (["--tcp", "0", "--trace-every-step"], "--trace-every-step needs --trace"),
        (["--tcp", "0", "--rs", "-5"], "rs_ohm"),
    ],
)
def test_check_says_what_cannot_run(args: list[str], reason: str) -> None:
    with pytest.raises(UsageError, match=reason):
        check(parse(*args))


def test_the_options_go_onto_any_parser() -> None:
    parser = argparse.ArgumentParser(prog="host")
    add_arguments(parser)
    assert parser.parse_args(["--scpi-port", "5025"]).scpi_port == 5025


def test_parsing_the_options_does_not_load_the_device_model_or_the_endpoints() -> None:
    code = "import sys, sim.cli; print(sorted(m for m in sys.modules if m.startswith(('sim.', 'firmware_protocol'))))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "sim.cli" in loaded
    for heavy in ("sim.device", "sim.firmware", "sim.server", "sim.scpi'", "firmware_protocol"):
        assert heavy not in loaded

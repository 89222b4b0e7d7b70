"""The simulator's command-line options that shape the model (no process needed)."""

from __future__ import annotations

import pytest

from sim.cli import build_parser, load_from
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
    faults = parse("--fault", "electrode-lift@60", "--fault", "corrupt=0.01@0:30").fault
    assert [f.kind for f in faults] == ["electrode-lift", "corrupt"]

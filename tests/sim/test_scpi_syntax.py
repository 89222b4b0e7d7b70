"""IEEE 488.2/SCPI program-message syntax on its own: splitting, header patterns, parameters and NR3."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sim.scpi_syntax import (
    COMMAND_ERRORS,
    ScpiError,
    boolean,
    choice,
    compile_header,
    header_matches,
    message_units,
    mnemonic_forms,
    no_params,
    nr3,
    number,
    numeric_query,
    numeric_value,
    one_param,
    parse_unit,
    split_outside_quotes,
    string,
)


def code_of(call: Callable[..., object], *args: object) -> int:
    with pytest.raises(ScpiError) as raised:
        call(*args)
    return raised.value.code


# -- program messages ------------------------------------------------------------------------------------------


def test_separators_inside_quotes_do_not_split() -> None:
    assert split_outside_quotes("a;'b;c';\"d;e\";", ";") == ["a", "'b;c'", '"d;e"', ""]
    assert split_outside_quotes("'it''s',2", ",") == ["'it''s'", "2"]


def test_message_units_are_stripped_and_empty_ones_dropped() -> None:
    assert message_units("  *IDN? ;\t:OUTP ON ;") == ["*IDN?", ":OUTP ON"]
    assert message_units(" ; ") == []


def test_a_unit_splits_into_header_query_flag_and_stripped_parameters() -> None:
    unit = parse_unit(":SENS:FUNC  'VOLT', 'CURR' ,\"a,b\"", ())
    assert unit.header == ("SENS", "FUNC")
    assert not unit.query and not unit.common
    assert unit.params == ["'VOLT'", "'CURR'", '"a,b"']
    assert unit.path == ("SENS",)
    assert parse_unit("SOUR:CURR?", ()).query


def test_a_relative_header_continues_from_the_path_and_an_absolute_one_does_not() -> None:
    assert parse_unit("RANG?", ("SOUR", "CURR")).header == ("SOUR", "CURR", "RANG")
    assert parse_unit(":OUTP?", ("SOUR", "CURR")).header == ("OUTP",)


def test_common_commands_are_upper_cased_and_leave_the_path_alone() -> None:
    unit = parse_unit(":*cls", ("SOUR",))
    assert (unit.header, unit.common, unit.path) == (("*CLS",), True, ("SOUR",))


@pytest.mark.parametrize("text", [":SOUR:CURR 1,,2", "SOUR::CURR", "SOUR:1CURR", ":", "?", "SOUR:CU-RR 1"])
def test_empty_parameters_and_malformed_mnemonics_are_syntax_errors(text: str) -> None:
    assert code_of(parse_unit, text, ()) == -102


# -- header patterns -------------------------------------------------------------------------------------------


def test_the_short_form_is_the_capitals_of_the_manuals_mnemonic() -> None:
    assert mnemonic_forms("CURRent") == ("CURR", "CURRENT")
    assert mnemonic_forms("TIME") == ("TIME", "TIME")


@pytest.mark.parametrize(
    ("tokens", "matches"),
    [
        (("SOUR", "CURR"), True),
        (("source", "current", "level"), True),
        (("SoUr1", "CuRr", "LEV"), True),
        (("CURR",), True),
        (("SOUR2", "CURR"), False),  # only a suffix of 1 is allowed
        (("SOURC", "CURR"), False),  # between short and long form
        (("SOUR", "CURR1"), False),  # no suffix allowed on CURRent
        (("SOUR", "CURR", "LEV", "LEV"), False),
        ((), False),
    ],
)
def test_a_header_pattern_matches_long_or_short_forms_with_optional_nodes(
    tokens: tuple[str, ...], matches: bool
) -> None:
    assert header_matches(compile_header("[:SOURce[1]]:CURRent[:LEVel]"), tokens) is matches


def test_a_malformed_header_pattern_is_refused() -> None:
    with pytest.raises(ValueError):
        compile_header("SOURce:CURRent")


# -- parameters ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "unit", "value"),
    [
        ("0.001", "", 1e-3),
        ("+.5e-2", "", 5e-3),
        ("1 mA", "A", 1e-3),
        ("1MA", "A", 1e-3),  # MA is milli, not mega, for amps
        ("1000uA", "A", 1e-3),
        ("1 kOHM", "OHM", 1e3),
        ("1MOHM", "OHM", 1e6),  # but mega for ohms
        ("2 V", "V", 2.0),
        ("1 HZ", "HZ", 1.0),
    ],
)
def test_numbers_take_exponents_suffixes_and_multipliers(text: str, unit: str, value: float) -> None:
    assert number(text, unit) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "unit", "code"),
    [("abc", "", -104), ("'1'", "", -104), ("1.2.3", "", -120), ("1 V", "A", -131), ("1 mA", "", -131)]
    + [("1e999", "", -222)],
)
def test_bad_numbers_raise_the_matching_error(text: str, unit: str, code: int) -> None:
    assert code_of(number, text, unit) == code


def test_min_max_and_def_stand_for_the_values_given() -> None:
    assert [numeric_value(t, "A", -1.0, 2.0, 0.5) for t in ("MIN", "maximum", "DEF", "1mA")] == [-1.0, 2.0, 0.5, 1e-3]


def test_a_numeric_query_reports_the_present_value_or_the_one_asked_for() -> None:
    assert numeric_query([], 7.0, -1.0, 2.0, 0.5) == 7.0
    assert numeric_query(["MAX"], 7.0, -1.0, 2.0, 0.5) == 2.0
    assert code_of(numeric_query, ["UP"], 7.0, -1.0, 2.0, 0.5) == -224
    assert code_of(numeric_query, ["3"], 7.0, -1.0, 2.0, 0.5) == -104
    assert code_of(numeric_query, ["MIN", "MAX"], 7.0, -1.0, 2.0, 0.5) == -108


@pytest.mark.parametrize(("text", "value"), [("ON", True), ("off", False), ("1", True), ("0", False), ("0.6", True)])
def test_booleans_take_on_off_and_numbers(text: str, value: bool) -> None:
    assert boolean(text) is value


def test_a_boolean_that_is_neither_is_an_illegal_value() -> None:
    assert code_of(boolean, "MAYBE") == -224


def test_a_choice_gives_the_short_form_of_the_mnemonic_sent() -> None:
    assert choice("voltage", "CURRent", "VOLTage") == "VOLT"
    assert code_of(choice, "WATT", "CURRent", "VOLTage") == -224
    assert code_of(choice, "3", "CURRent", "VOLTage") == -104


def test_strings_are_unquoted_with_doubled_quotes_kept_once() -> None:
    assert string("'VOLT'") == "VOLT"
    assert string('"it\'s"') == "it's"
    assert string("'it''s'") == "it's"
    assert string("VOLT") == "VOLT"  # bare words are accepted
    for bad in ("'it's'", "'VOLT", "VO'LT"):
        assert code_of(string, bad) == -151


def test_one_parameter_or_none() -> None:
    assert one_param(["x"]) == "x"
    assert code_of(one_param, []) == -109
    assert code_of(one_param, ["x", "y"]) == -108
    no_params([])
    assert code_of(no_params, ["x"]) == -108


def test_nr3_has_a_sign_and_seven_significant_digits() -> None:
    assert nr3(1e-3) == "+1.000000E-03"
    assert nr3(-21.0) == "-2.100000E+01"
    assert nr3(0.0) == "+0.000000E+00"


def test_the_error_table_is_the_command_error_range() -> None:
    assert COMMAND_ERRORS[-113] == "Undefined header"
    assert all(-200 < code <= -100 for code in COMMAND_ERRORS)

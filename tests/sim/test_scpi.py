"""The Keithley 2400 model: IEEE 488.2/SCPI parsing, the error queue, *RST defaults, readings against the plant,
and robustness against arbitrary input."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.plant import LoadParams, Plant
from sim.scpi import DEFAULT_IDN, SourceMeter

FROZEN = LoadParams(charge_scale_uas=1e30)  # R_p stays at rest: a fixed 300 Ω + 20 kΩ ∥ 0.5 µF load
R_TOTAL = FROZEN.rs_ohm + FROZEN.rp_rest_ohm
NAN = 9.91e37


def make_meter(seed: int = 1) -> SourceMeter:
    return SourceMeter(Plant(FROZEN, rng=random.Random(seed)))


def ask(meter: SourceMeter, message: str) -> str:
    response = meter.handle(message)
    assert response is not None, f"no response to {message!r}; errors: {meter.handle('SYST:ERR:ALL?')}"
    return response


def numbers(response: str) -> list[float]:
    return [float(x) for x in response.split(",")]


def errors(meter: SourceMeter) -> list[int]:
    return [int(code) for code in ask(meter, "SYST:ERR:CODE:ALL?").split(",")]


def source_current(meter: SourceMeter, amps: float, *, compliance_v: float = 60.0) -> None:
    meter.handle(f":SOUR:FUNC CURR;:SOUR:CURR {amps};:SENS:VOLT:PROT {compliance_v};:SENS:FUNC 'VOLT','CURR'")
    meter.handle(":OUTP ON")


# -- headers ---------------------------------------------------------------------------------------------------


def test_idn_identifies_a_keithley_2400() -> None:
    assert ask(make_meter(), "*IDN?") == DEFAULT_IDN
    assert DEFAULT_IDN.startswith("KEITHLEY INSTRUMENTS INC.,MODEL 2400,")


@pytest.mark.parametrize(
    "header",
    [
        ":SOURce:CURRent:LEVel",
        ":SOUR:CURR:LEV",
        "sour:curr",
        ":source:current:level:immediate:amplitude",
        ":SOUR1:CURR:LEV:IMM:AMPL",
        "SoUrCe:CuRr:AmPl",
    ],
)
def test_long_and_short_forms_in_any_case_name_the_same_command(header: str) -> None:
    meter = make_meter()
    assert meter.handle(f"{header} 2.5e-3") is None
    assert numbers(ask(meter, ":SOUR:CURR?")) == [2.5e-3]
    assert errors(meter) == [0]


def test_a_mnemonic_between_short_and_long_form_is_undefined() -> None:
    meter = make_meter()
    meter.handle(":SOURC:CURR 1e-3")
    assert errors(meter) == [-113]


def test_the_leading_colon_is_optional_at_the_start_of_a_message() -> None:
    meter = make_meter()
    meter.handle("SOUR:CURR 1e-3")
    assert ask(meter, "SOUR:CURR?") == ask(meter, ":SOUR:CURR?") == "+1.000000E-03"


def test_optional_nodes_may_be_given_or_left_out() -> None:
    meter = make_meter()
    meter.handle("OUTP:STAT ON")
    assert ask(meter, "OUTPUT?") == "1"
    meter.handle("OUTP1 OFF")
    assert ask(meter, "OUTP:STAT?") == "0"
    meter.handle(":SENSe1:VOLTage:DC:PROTection:LEVel 12")
    assert numbers(ask(meter, "VOLT:PROT?")) == [12.0]  # SENSe is the 2400's default root


def test_compound_queries_are_answered_in_order_joined_by_semicolons() -> None:
    assert ask(make_meter(), "*IDN?;:SOUR:FUNC?;:OUTP?") == f"{DEFAULT_IDN};VOLT;0"


def test_a_header_without_leading_colon_continues_from_the_previous_path() -> None:
    meter = make_meter()
    assert ask(meter, ":SOUR:CURR:LEV 1e-3;RANG?") == "+1.050000E-03"  # :SOUR:CURR:RANG?
    meter.handle(":SOUR:CURR:RANG:AUTO 0;:SOUR:CURR:RANG 1e-2")  # absolute again after ';:'
    assert ask(meter, ":SOUR:CURR:RANG?;RANG:AUTO?") == "+1.050000E-02;0"


def test_the_path_ends_at_the_last_node_sent_not_at_an_implied_one() -> None:
    meter = make_meter()
    assert meter.handle(":SOUR:CURR 1e-3;RANG?") is None  # the path is :SOUR:, and :SOUR:RANG is undefined
    assert errors(meter) == [-113]


def test_common_commands_leave_the_path_alone() -> None:
    assert ask(make_meter(), ":SOUR:CURR:LEV 1e-3;*OPC?;RANG?") == "1;+1.050000E-03"


def test_a_trailing_semicolon_and_surrounding_whitespace_are_tolerated() -> None:
    meter = make_meter()
    assert ask(meter, "  :SOUR:FUNC CURR ; :SOUR:FUNC? ;") == "CURR"
    assert errors(meter) == [0]


# -- parameters ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "amps"),
    [("0.001", 1e-3), ("1e-3", 1e-3), ("1E-3", 1e-3), ("1 mA", 1e-3), ("1MA", 1e-3), ("1000uA", 1e-3)]
    + [("+.5e-2", 5e-3), ("MAX", 1.05), ("MIN", -1.05), ("DEF", 0.0), ("maximum", 1.05)],
)
def test_numeric_parameters_take_exponents_suffixes_and_min_max_def(text: str, amps: float) -> None:
    meter = make_meter()
    meter.handle(f":SOUR:CURR {text}")
    assert numbers(ask(meter, ":SOUR:CURR?")) == [pytest.approx(amps)]
    assert errors(meter) == [0]


def test_a_query_can_ask_for_the_minimum_maximum_and_default() -> None:
    assert ask(make_meter(), ":SOUR:CURR? MAX;:SOUR:CURR? MIN;:SENS:VOLT:PROT? DEF") == (
        "+1.050000E+00;-1.050000E+00;+2.100000E+01"
    )


@pytest.mark.parametrize("text", ["ON", "on", "1", "OFF", "0"])
def test_boolean_parameters_take_on_off_1_and_0(text: str) -> None:
    meter = make_meter()
    meter.handle(f":OUTP {text}")
    assert ask(meter, ":OUTP?") == ("1" if text.upper() in ("ON", "1") else "0")


def test_a_current_level_beyond_1_05_a_is_data_out_of_range_and_changes_nothing() -> None:
    meter = make_meter()
    meter.handle(":SOUR:CURR 1e-3;:SOUR:CURR 1.2")
    assert errors(meter) == [-222]
    assert ask(meter, ":SOUR:CURR?") == "+1.000000E-03"


def test_a_manual_source_range_caps_the_level() -> None:
    meter = make_meter()
    meter.handle(":SOUR:CURR:RANG:AUTO 0;:SOUR:CURR:RANG 1e-3;:SOUR:CURR 2e-3")
    assert errors(meter) == [-221]


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (":SOUR:CURR", -109),  # missing parameter
        (":SOUR:CURR 1,2", -108),  # parameter not allowed
        (":SOUR:CURR abc", -104),  # data type error
        (":SOUR:CURR 1.2.3", -120),  # numeric data error
        (":SOUR:CURR 1 V", -131),  # a volt suffix on a current
        (":OUTP MAYBE", -224),  # illegal parameter value
        (":SOUR:FUNC 3", -104),
        (":SENS:FUNC 'WATT'", -224),
    ],
)
def test_bad_parameters_queue_the_matching_error(message: str, code: int) -> None:
    meter = make_meter()
    assert meter.handle(message) is None
    assert errors(meter) == [code]


# -- errors and status -----------------------------------------------------------------------------------------


def test_unknown_headers_queue_undefined_header() -> None:
    meter = make_meter()
    assert meter.handle(":FOO:BAR 1") is None
    assert ask(meter, ":SYST:ERR?") == '-113,"Undefined header"'


@pytest.mark.parametrize("message", ["READ", "*RST?", ":SYST:ERR", ":SYST:TIME:RES?"])
def test_a_query_only_command_sent_as_a_command_or_vice_versa_is_undefined_header(message: str) -> None:
    meter = make_meter()
    meter.handle(message)
    assert errors(meter) == [-113]


def test_the_error_queue_is_first_in_first_out_and_then_reports_no_error() -> None:
    meter = make_meter()
    meter.handle(":FOO;:SOUR:CURR 5;:OUTP MAYBE")
    assert ask(meter, ":SYST:ERR?") == '-113,"Undefined header"'
    assert ask(meter, ":SYST:ERR:NEXT?") == '-222,"Data out of range"'
    assert ask(meter, ":STAT:QUE?") == '-224,"Illegal parameter value"'
    assert ask(meter, ":SYST:ERR?") == '0,"No error"'


def test_an_overflowing_error_queue_keeps_ten_entries_ending_with_350() -> None:
    meter = make_meter()
    for _ in range(12):
        meter.handle(":FOO")
    assert ask(meter, ":SYST:ERR:COUN?") == "10"
    assert errors(meter) == [-113] * 9 + [-350]


def test_cls_clears_the_error_queue_and_the_event_register() -> None:
    meter = make_meter()
    meter.handle(":FOO")
    meter.handle("*CLS")
    assert ask(meter, "*ESR?;:SYST:ERR?") == '0;0,"No error"'


def test_esr_records_command_and_execution_errors_and_clears_when_read() -> None:
    meter = make_meter()
    meter.handle(":FOO")
    assert ask(meter, "*ESR?") == "32"  # command error
    meter.handle(":SOUR:CURR 5")
    assert ask(meter, "*ESR?;*ESR?") == "16;0"  # execution error, then cleared


def test_stb_flags_an_error_available() -> None:
    meter = make_meter()
    assert ask(meter, "*STB?") == "0"
    meter.handle(":FOO")
    assert int(ask(meter, "*STB?")) & 4


def test_rst_restores_the_manual_defaults_but_keeps_the_error_queue() -> None:
    meter = make_meter()
    source_current(meter, 4e-3)
    meter.handle(":FORM:ELEM CURR;:SOUR:CLE:AUTO ON;:SENS:CURR:PROT 0.5;:FOO")
    meter.handle("*RST")
    assert ask(meter, ":SOUR:FUNC?;:SOUR:VOLT?;:SOUR:CURR?;:OUTP?") == "VOLT;+0.000000E+00;+0.000000E+00;0"
    assert ask(meter, ":SENS:CURR:PROT?;:SENS:VOLT:PROT?") == "+1.050000E-04;+2.100000E+01"
    assert ask(meter, ":FORM:ELEM?;:SOUR:CLE:AUTO?;:SENS:FUNC?") == 'VOLT,CURR,RES,TIME,STAT;0;"CURR:DC"'
    assert not meter.plant.output_on
    assert errors(meter) == [-113]


# -- readings --------------------------------------------------------------------------------------------------


def test_form_elem_is_honoured_in_the_manuals_fixed_order() -> None:
    meter = make_meter()
    source_current(meter, 1e-3)
    meter.handle(":FORM:ELEM STAT,TIME,VOLT")
    assert ask(meter, ":FORM:ELEM?") == "VOLT,TIME,STAT"
    voltage, time_s, status = numbers(ask(meter, ":READ?"))
    assert time_s == 0.0
    assert int(status) & (1 << 15)  # I-source
    assert voltage < 100.0


def test_unmeasured_elements_read_nan_and_the_source_value_stands_in_for_an_unmeasured_source() -> None:
    meter = make_meter()
    meter.handle(":SOUR:FUNC CURR;:SOUR:CURR 1e-3;:SENS:FUNC:OFF:ALL;:SENS:FUNC 'VOLT';:OUTP ON")
    voltage, current, resistance, _, _ = numbers(ask(meter, ":READ?"))
    assert current == 1e-3  # the programmed source value
    assert resistance == NAN
    assert voltage != NAN


def test_read_below_compliance_gives_ohms_law_across_the_settled_load() -> None:
    meter = make_meter()
    source_current(meter, 1e-3)
    meter.advance(1.0)  # 100 RC time constants
    voltage, current, _, time_s, status = numbers(ask(meter, ":READ?"))
    assert current == pytest.approx(1e-3, rel=0.01)
    assert voltage == pytest.approx(1e-3 * R_TOTAL, rel=0.01)
    assert time_s == pytest.approx(1.0)
    assert not int(status) & (1 << 3)


def test_at_compliance_the_voltage_reads_the_compliance_and_the_status_says_so() -> None:
    meter = make_meter()
    source_current(meter, 4e-3, compliance_v=21.0)
    meter.advance(1.0)
    voltage, current, _, _, status = numbers(ask(meter, ":READ?"))
    assert voltage == pytest.approx(21.0, rel=0.01)
    assert current == pytest.approx(21.0 / R_TOTAL, rel=0.01)
    assert int(status) & (1 << 3)
    assert ask(meter, ":SENS:VOLT:PROT:TRIP?") == "1"


def test_resistance_reads_voltage_over_current() -> None:
    meter = make_meter()
    source_current(meter, 1e-3)
    meter.handle(":SENS:FUNC 'RES'")
    meter.advance(1.0)
    assert numbers(ask(meter, ":READ?"))[2] == pytest.approx(R_TOTAL, rel=0.01)


def test_a_negative_source_level_gives_readings_of_that_sign() -> None:
    meter = make_meter()
    source_current(meter, -1e-3)
    meter.advance(1.0)
    voltage, current, _, _, _ = numbers(ask(meter, ":READ?"))
    assert current == pytest.approx(-1e-3, rel=0.01)
    assert voltage == pytest.approx(-1e-3 * R_TOTAL, rel=0.01)


def test_sourcing_voltage_limits_the_current_at_the_current_compliance() -> None:
    meter = make_meter()
    meter.handle(":SOUR:FUNC VOLT;:SOUR:VOLT 10;:SENS:CURR:PROT 1e-4;:SENS:FUNC 'VOLT','CURR';:OUTP ON")
    meter.advance(1.0)
    voltage, current, _, _, status = numbers(ask(meter, ":READ?"))
    assert current == pytest.approx(1e-4, abs=1e-5)  # the sensor's noise floor is 2 µA
    assert voltage == pytest.approx(1e-4 * R_TOTAL, rel=0.02)
    assert int(status) & (1 << 3)
    meter.handle(":SENS:CURR:PROT 1e-2")
    meter.advance(2.0)
    voltage, current, _, _, status = numbers(ask(meter, ":READ?"))
    assert voltage == pytest.approx(10.0, rel=0.01)
    assert current == pytest.approx(10.0 / R_TOTAL, rel=0.01)
    assert not int(status) & (1 << 3)


def test_read_with_the_output_off_queues_error_803_and_returns_nothing() -> None:
    meter = make_meter()
    assert meter.handle(":READ?") is None
    assert ask(meter, ":SYST:ERR?") == '803,"Not permitted with OUTPUT off"'


def test_with_auto_output_off_read_runs_one_on_measure_off_cycle() -> None:
    meter = make_meter()
    meter.handle(":SOUR:FUNC CURR;:SOUR:CURR 1e-3;:SENS:FUNC 'CURR';:SOUR:CLE:AUTO ON")
    current = numbers(ask(meter, ":READ?"))[1]
    assert current == pytest.approx(1e-3, rel=0.01)
    assert ask(meter, ":OUTP?") == "0"
    assert not meter.plant.output_on


def test_meas_turns_the_output_on_and_leaves_it_on() -> None:
    meter = make_meter()
    meter.handle(":SOUR:FUNC CURR;:SOUR:CURR 1e-3")
    voltage, current, _, _, _ = numbers(ask(meter, ":MEAS:VOLT?"))
    assert current == 1e-3  # not measured after :CONF:VOLT, so the source value
    assert voltage > 0.0
    assert ask(meter, ":OUTP?") == "1"


def test_fetch_returns_the_last_readings_without_measuring_again() -> None:
    meter = make_meter()
    assert meter.handle(":FETC?") is None
    assert errors(meter) == [-230]
    source_current(meter, 1e-3)
    first = ask(meter, ":READ?")
    meter.advance(5.0)
    assert ask(meter, ":FETC?") == first


def test_trigger_count_multiplies_the_readings() -> None:
    meter = make_meter()
    source_current(meter, 1e-3)
    meter.handle(":FORM:ELEM CURR;:TRIG:COUN 3")
    assert len(numbers(ask(meter, ":READ?"))) == 3


# -- time ------------------------------------------------------------------------------------------------------


def test_the_time_element_follows_advance_and_can_be_reset() -> None:
    meter = make_meter()
    source_current(meter, 1e-3)
    meter.handle(":FORM:ELEM TIME")
    assert numbers(ask(meter, ":READ?")) == [0.0]
    meter.advance(12.5)
    assert numbers(ask(meter, ":READ?")) == [12.5]
    meter.handle(":SYST:TIME:RES")
    meter.advance(13.0)
    assert numbers(ask(meter, ":READ?")) == [0.5]


def test_the_clock_only_moves_forward() -> None:
    meter = make_meter()
    meter.advance(2.0)
    with pytest.raises(ValueError):
        meter.advance(1.0)


def test_without_a_watchdog_the_output_stays_on_through_a_long_silence() -> None:
    meter = make_meter()
    source_current(meter, 1e-3)
    meter.advance(3600.0)
    assert ask(meter, ":OUTP?") == "1"
    assert meter.plant.sample.current_ua == pytest.approx(1000.0)


# -- clients and robustness ------------------------------------------------------------------------------------

# Command strings exactly as pymeasure's Keithley2400 (0.16, and the older 0.x one) sends them.
PYMEASURE_MESSAGES = [
    ":FORMAT:ELEMENTS VOLTAGE, CURRENT, RESISTANCE, TIME, STATUS",
    "status:queue:clear;*RST;:stat:pres;:*CLS;",
    ":SOURCE:FUNCTION CURR",
    ":SOUR:CURR:RANG:AUTO 1",
    ":SOUR:CURR:RANG:AUTO 0;:SOUR:CURR:RANG 0.01",
    ":SENS:VOLT:PROT 60",
    ":SOURCE:CURRENT 0.001",
    ":SOUR:CURR:LEV 0.001",
    "OUTPUT 1",
    "OUTPUT ON",
    ":SENS:FUNC 'VOLT';:SENS:VOLT:NPLC 1.000000;:FORM:ELEM VOLT;",
    ":SENS:VOLT:RANG:AUTO 1;",
    ":SENS:FUNC 'CURR';:SENS:CURR:NPLC 1.000000;",
    ":SENS:CURR:RANG:AUTO 0;:SENS:CURR:RANG 0.001",
    ":SENS:FUNC 'RES';:SENS:RES:MODE MAN;:SENS:RES:NPLC 1.000000;",
    ":SENSE:FUNCTION:ALL",
    ":SYSTEM:AZERO:STATE ONCE",
    ":SENSE:AVERAGE:TCONTROL MOV",
    ":SENSE:AVERAGE:COUNT 5",
    ":OUTPUT:SMODE NORM",
    ":SOURCE:DELAY:AUTO 1",
    ":ARM:SOUR IMM;:TRIG:SOUR IMM;",
    ":TRIG:COUN 1;:ARM:COUN 1",
    ":TRIG:OUTP NONE",
    ":TRAC:FEED:CONT NEV",
    ":STAT:PRES;*CLS;*SRE 1;:STAT:MEAS:ENAB 512;",
    ":TRAC:CLEAR;",
    ":TRAC:POIN 5",
    ":TRAC:FEED SENSE;:TRAC:FEED:CONT NEXT;",
    ":ROUT:TERM FRON",
    ":SYSTEM:RSENSE 0",
    ":SYST:BEEP 1000, 0.1",
    ":FORM:DATA ASCII",
    ":ABORT",
    "OUTPUT 0",
]
PYMEASURE_QUERIES = [
    "*IDN?",
    "OUTPUT?",
    ":SOURCE:FUNCTION?",
    ":SOURCE:CURRENT?",
    ":SOURCE:CURRENT:RANGE?",
    ":SENSE:VOLTAGE:PROTECTION?",
    ":SENSE:CURRENT:RANGE?",
    ":SENSE:VOLTAGE:NPLCYCLES?",
    ":SYSTEM:AZERO:STATE?",
    ":SYSTEM:LFREQUENCY?",
    ":TRIGGER:COUNT?",
    ":ARM:COUNT?",
    "*STB?",
    "*OPC?",
    "SYST:ERR?",
]


def test_pymeasure_keithley2400_command_strings_are_accepted_without_errors() -> None:
    meter = make_meter()
    for message in PYMEASURE_MESSAGES:
        meter.handle(message)
    for query in PYMEASURE_QUERIES:
        assert meter.handle(query) is not None, query
    assert errors(meter) == [0]


scpi_words = st.sampled_from(
    [":", ";", ",", "?", " ", "*", "'", '"', "SOUR", "CURR", "VOLT", "LEV", "RANG", "AUTO", "SENS", "FUNC", "PROT"]
    + ["OUTP", "READ", "FETC", "MEAS", "FORM", "ELEM", "SYST", "ERR", "*RST", "*IDN", "ON", "OFF", "MAX", "DEF"]
    + ["1", "0", "-1e-3", "1e999", "1 mA", "UP", "DOWN", "ALL", "TRIG", "COUN", "2500", "TRAC", "DATA", "TIME"]
)


@settings(max_examples=300, deadline=None)
@given(messages=st.lists(st.text(max_size=60) | st.lists(scpi_words, max_size=25).map("".join), max_size=6))
def test_handle_never_raises_on_arbitrary_text(messages: list[str]) -> None:
    meter = make_meter()
    for message in messages:
        response = meter.handle(message)
        assert response is None or isinstance(response, str)
        meter.advance(meter.t_s + 0.5)
    assert meter.handle("*IDN?") == DEFAULT_IDN

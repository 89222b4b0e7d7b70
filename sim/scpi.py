"""A Keithley 2400-class SourceMeter, sans-I/O, sourcing into the simulated `Plant`.

Theory of operation
-------------------
`handle()` takes one program message (without its terminator) and returns the response, if any; `advance()`
moves the instrument clock and steps the plant with whatever the source is set to. Nothing here reads a clock,
sleeps or touches a port; an endpoint (TCP, pty) wraps this object.

Parsing (`sim.scpi_syntax`) follows IEEE 488.2 and the SCPI tree rules. Headers match the 2400 manual's
patterns (Keithley 2400 Series SourceMeter User's Manual, 2400S-900-01 Rev. K, section 18) in long or short
form, any case, with optional nodes in brackets. A bad unit queues an error (SCPI -1xx/-2xx, or the 2400's
+8xx) and the next unit is still executed; nothing raises to the caller.

What the instrument does (manual references in the command table and helpers below):
- Source I or V; the plant works in magnitude, so the sign of the source level is re-applied to readings.
  Sourcing V is modelled as the plant at a compliance of |V| with its current limited to the current
  compliance, which is what a SourceMeter sourcing V does. The plant cannot sink current.
- READ? = INIT + FETC?; with the output off and auto output-off disabled (the *RST default) INIT is refused
  with +803 "Not permitted with OUTPUT off" (Table B-1). MEAS? turns the output on (section 17).
- Readings come out in the fixed order VOLT,CURR,RES,TIME,STAT whatever order FORM:ELEM named them;
  unmeasured values are the NAN +9.91e37; TIME is the instrument clock (wrapping at 99,999.999 s);
  STAT is the 24-bit status word.
- No watchdog: the output stays as last set until told otherwise.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sim.plant import Plant, PlantSample
from sim.scpi_syntax import (
    COMMAND_ERRORS,
    WHITESPACE,
    MessageUnit,
    Node,
    ScpiError,
    boolean,
    choice,
    compile_header,
    header_matches,
    keyword,
    message_units,
    no_params,
    nr3,
    number,
    numeric_query,
    numeric_value,
    one_param,
    parse_unit,
    string,
)

DEFAULT_IDN = "KEITHLEY INSTRUMENTS INC.,MODEL 2400,4000001,C32   Oct  4 2010 14:20:11/A02  /S/K"

_NAN = 9.91e37  # "not a number": an element that was neither sourced nor measured (manual 18-51)
_OVERFLOW = 9.9e37  # an overflowed reading, e.g. resistance at zero current
_TIME_WRAP_S = 100_000.0  # the timestamp restarts from zero after 99,999.999 s
_ERROR_QUEUE_SIZE = 10  # ":SYSTem:ERRor[:NEXT]?": the Error Queue "can hold up to 10 messages"
_MAX_STEP_S = 0.1  # advance() steps the plant at most this far at a time, so R_p is followed closely
_MAX_READINGS = 2500  # arm count x trigger count may not exceed 2500

# Ranges are reported and selected as 1.05x their nominal full scale, as the 2400 does.
_CURRENT_RANGES_A = (1.05e-6, 1.05e-5, 1.05e-4, 1.05e-3, 1.05e-2, 1.05e-1, 1.05)
_VOLTAGE_RANGES_V = (0.21, 2.1, 21.0, 210.0)
_RESISTANCE_RANGES_OHM = (2.1, 21.0, 210.0, 2.1e3, 2.1e4, 2.1e5, 2.1e6, 2.1e7, 2.1e8)
_UNITS = {"CURR": "A", "VOLT": "V", "RES": "OHM"}
_SOURCE_RANGE_DEFAULT = {"CURR": 1.05e-4, "VOLT": 21.0}  # 18-75: DEFault is the 100 µA and 20 V range

_ERRORS = {
    0: "No error",
    **COMMAND_ERRORS,
    -221: "Settings conflict",
    -222: "Data out of range",
    -224: "Illegal parameter value",
    -230: "Data corrupt or stale",
    -350: "Queue overflow",
    803: "Not permitted with OUTPUT off",  # Table B-1, "Additional command execution errors"
}

# Standard Event Status Register bits (IEEE 488.2).
_ESR_OPC, _ESR_QYE, _ESR_DDE, _ESR_EXE, _ESR_CME = 1, 4, 8, 16, 32

# Status word bits for the STAT element (manual 18-50/51).
_STAT_FILTER, _STAT_FRONT, _STAT_COMPLIANCE = 1 << 1, 1 << 2, 1 << 3
_STAT_AUTO_OHMS, _STAT_V_MEAS, _STAT_I_MEAS, _STAT_R_MEAS = 1 << 10, 1 << 11, 1 << 12, 1 << 13
_STAT_V_SOUR, _STAT_I_SOUR, _STAT_REMOTE_SENSE = 1 << 14, 1 << 15, 1 << 22

_ELEMENTS = ("VOLT", "CURR", "RES", "TIME", "STAT")
_ELEMENT_MNEMONICS = ("VOLTage", "CURRent", "RESistance", "TIME", "STATus")
_FUNCTIONS = ("VOLT", "CURR", "RES")
_FUNCTION_NAMES = {"VOLT": '"VOLT:DC"', "CURR": '"CURR:DC"', "RES": '"RES"'}


class SourceMeter:
    """A Keithley 2400 SourceMeter model: a SCPI parser and instrument state around a `Plant`."""

    def __init__(self, plant: Plant, *, idn: str = DEFAULT_IDN) -> None:
        self._plant = plant
        self._idn = idn
        self._t_s = 0.0  # seconds since power-on
        self._time_zero_s = 0.0  # reset by :SYSTem:TIME:RESet
        self._errors: list[int] = []
        self._esr = 0
        self._ese = 0
        self._sre = 0
        self._reset()

    # -- the public surface ------------------------------------------------------------------------------------

    @property
    def t_s(self) -> float:
        """The instrument clock: seconds since power-on."""
        return self._t_s

    @property
    def output_on(self) -> bool:
        """The OUTPut state as the instrument reports it (the plant's relay follows it)."""
        return self._output

    @property
    def source_level(self) -> tuple[str, float]:
        """The source function ("CURR" or "VOLT") and its programmed level (A or V, signed)."""
        return self._source, self._level[self._source]

    @property
    def plant(self) -> Plant:
        """The simulated load, for fault injection and ground truth."""
        return self._plant

    def advance(self, t_s: float) -> None:
        """Move the instrument clock to `t_s`, stepping the plant with the present source setting."""
        if not math.isfinite(t_s) or t_s < self._t_s:
            raise ValueError(f"the instrument clock only moves forward: {self._t_s} -> {t_s}")
        pieces = math.ceil((t_s - self._t_s) / _MAX_STEP_S)
        dt = (t_s - self._t_s) / pieces if pieces else 0.0
        for _ in range(pieces):
            self._step(dt)
        self._t_s = t_s

    def handle(self, program_message: str) -> str | None:
        """Execute one program message; return the responses of its queries joined by ';', or None."""
        responses: list[str] = []
        path: tuple[str, ...] = ()
        for text in message_units(program_message):
            try:
                unit = parse_unit(text, path)
                response = self._execute(unit)
            except ScpiError as error:
                self._push_error(error.code)
                continue  # a failed unit leaves the path where it was
            path = unit.path
            if response is not None:
                responses.append(response)
        return ";".join(responses) if responses else None

    def _execute(self, unit: MessageUnit) -> str | None:
        if unit.common:
            command = _COMMON.get(unit.header[0])
        else:
            command = _lookup(unit.header)
        if unit.query:
            if command is None or command.query is None:
                raise ScpiError(-113)
            return command.query(self, unit.params)
        if command is None or command.setter is None:
            raise ScpiError(-113)
        command.setter(self, unit.params)
        return None

    # -- state -------------------------------------------------------------------------------------------------

    def _reset(self) -> None:
        """*RST defaults (Tables 18-3 to 18-7). The error queue and the clock are not affected."""
        self._settings: dict[str, float | bool | str] = {s.key: s.default for s in _SETTINGS}
        self._source: str = "VOLT"
        self._level = {"CURR": 0.0, "VOLT": 0.0}
        self._source_range = dict(_SOURCE_RANGE_DEFAULT)
        self._source_range_auto = {"CURR": True, "VOLT": True}
        self._sense: set[str] = {"CURR"}
        self._concurrent: bool = True
        self._elements: tuple[str, ...] = _ELEMENTS
        self._readings: list[tuple[float, ...]] = []
        self._buffer: list[tuple[float, ...]] = []
        self._set_output(False)

    def _push_error(self, code: int) -> None:
        if code <= -400:
            self._esr |= _ESR_QYE
        elif code <= -300 or 0 < code < 800:
            self._esr |= _ESR_DDE
        elif code <= -200 or code >= 800:
            self._esr |= _ESR_EXE
        else:
            self._esr |= _ESR_CME
        if len(self._errors) < _ERROR_QUEUE_SIZE:
            self._errors.append(code)
        else:
            self._errors[-1] = -350

    def _status_byte(self) -> int:
        stb = 0
        if self._errors:
            stb |= 4  # EAV
        if self._esr & self._ese:
            stb |= 32  # ESB
        if stb & self._sre:
            stb |= 64  # MSS
        return stb

    def _drive(self) -> tuple[float, float]:
        """(compliance V, current µA) for the plant. Sourcing V is the plant at |V| with I limited to the
        current compliance."""
        if self._source == "CURR":
            return float(self._settings["sens.volt.prot"]), abs(self._level["CURR"]) * 1e6
        return abs(self._level["VOLT"]), float(self._settings["sens.curr.prot"]) * 1e6

    def _step(self, dt_s: float) -> PlantSample:
        compliance_v, current_ua = self._drive()
        self._plant.compliance_v = compliance_v
        self._plant.set_output(self._output)
        return self._plant.step(dt_s, current_ua)

    def _set_output(self, on: bool) -> None:
        self._output = on
        self._step(0.0)

    def _in_compliance(self, sample: PlantSample) -> bool:
        if not self._output:
            return False
        if self._source == "CURR":
            return sample.at_compliance
        limit_ua = float(self._settings["sens.curr.prot"]) * 1e6
        return not sample.at_compliance and limit_ua > 0 and sample.current_ua >= limit_ua * (1 - 1e-9)

    def _status_word(self, sample: PlantSample) -> int:
        word = _STAT_V_SOUR if self._source == "VOLT" else _STAT_I_SOUR
        if self._settings["sens.aver"]:
            word |= _STAT_FILTER
        if self._settings["rout.term"] == "FRON":
            word |= _STAT_FRONT
        if self._in_compliance(sample):
            word |= _STAT_COMPLIANCE
        for function, bit in (("VOLT", _STAT_V_MEAS), ("CURR", _STAT_I_MEAS), ("RES", _STAT_R_MEAS)):
            if function in self._sense:
                word |= bit
        if "RES" in self._sense and self._settings["sens.res.mode"] == "AUTO":
            word |= _STAT_AUTO_OHMS
        if self._settings["syst.rsen"]:
            word |= _STAT_REMOTE_SENSE
        return word

    # -- measuring ---------------------------------------------------------------------------------------------

    def _initiate(self) -> None:
        """Run the trigger model once: arm count x trigger count source-measure cycles, all at this instant."""
        count = round(float(self._settings["arm.coun"])) * round(float(self._settings["trig.coun"]))
        if count > _MAX_READINGS:
            raise ScpiError(-221)
        auto_off = bool(self._settings["sour.cle.auto"])
        if not self._output and not auto_off:
            raise ScpiError(803)
        if auto_off:
            self._set_output(True)  # on at the start of each source-delay-measure cycle ...
        sample = self._step(0.0)
        self._readings = [self._reading(sample) for _ in range(count)]
        if auto_off:
            self._set_output(False)  # ... and off after it (manual 18-72)
        if self._settings["trac.feed.cont"] == "NEXT":
            points = round(float(self._settings["trac.poin"]))
            self._buffer.extend(self._readings[: points - len(self._buffer)])
            if len(self._buffer) >= points:
                self._settings["trac.feed.cont"] = "NEV"

    def _reading(self, sample: PlantSample) -> tuple[float, ...]:
        measured = self._plant.measure(sample)
        sign = -1.0 if self._level[self._source] < 0 else 1.0
        volts = sign * measured.voltage_mv / 1000.0
        amps = sign * measured.current_ua * 1e-6
        voltage = volts if "VOLT" in self._sense else self._level["VOLT"] if self._source == "VOLT" else _NAN
        current = amps if "CURR" in self._sense else self._level["CURR"] if self._source == "CURR" else _NAN
        resistance = _NAN
        if "RES" in self._sense:
            resistance = volts / amps if amps != 0.0 else _OVERFLOW
        timestamp = (self._t_s - self._time_zero_s) % _TIME_WRAP_S
        return voltage, current, resistance, timestamp, float(self._status_word(sample))

    def _format(self, readings: list[tuple[float, ...]]) -> str:
        picked = [i for i, name in enumerate(_ELEMENTS) if name in self._elements]
        return ",".join(nr3(reading[i]) for reading in readings for i in picked)

    def _fetch(self) -> str:
        if not self._readings:
            raise ScpiError(-230)
        return self._format(self._readings)

    def _read(self) -> str:
        self._initiate()
        return self._format(self._readings)

    def _configure(self, function: str | None, params: list[str]) -> None:
        """:CONFigure:<function>: select the function, one reading per trigger, and turn the output on
        (manual Table 17-1)."""
        no_params(params)
        if function is not None:
            self._sense = {function}
        self._settings["arm.coun"] = self._settings["trig.coun"] = 1
        self._set_output(True)

    def _measure(self, function: str | None, params: list[str]) -> str:
        """:MEASure[:<function>]? = :CONFigure + :READ?; the output stays on unless auto output-off is enabled."""
        self._configure(function, params)
        if self._settings["sour.cle.auto"]:
            self._set_output(False)  # the READ? below runs one on-measure-off cycle
        return self._read()

    # -- command handlers: common commands ---------------------------------------------------------------------

    def _read_esr(self) -> str:
        register, self._esr = self._esr, 0
        return str(register)

    def _operation_complete(self) -> None:
        self._esr |= _ESR_OPC  # nothing is ever pending in the model

    def _clear_status(self) -> None:
        self._errors.clear()
        self._esr = 0

    def _set_ese(self, params: list[str]) -> None:
        self._ese = _register_value(params)

    def _set_sre(self, params: list[str]) -> None:
        self._sre = _register_value(params) & ~0x40

    # -- command handlers: source ------------------------------------------------------------------------------

    def _set_function(self, params: list[str]) -> None:
        self._source = choice(one_param(params), "CURRent", "VOLTage")
        self._step(0.0)

    def _set_level(self, function: str, params: list[str]) -> None:
        ranges = _ranges(function)
        value = numeric_value(one_param(params), _UNITS[function], -ranges[-1], ranges[-1], 0.0)
        if abs(value) > ranges[-1]:
            raise ScpiError(-222)
        if self._source_range_auto[function]:
            self._source_range[function] = _range_for(abs(value), ranges)
        elif abs(value) > self._source_range[function] * (1 + 1e-9):
            # A manual range caps the level, so MIN and MAX need the highest range (manual 18-78/79).
            raise ScpiError(-221)
        self._level[function] = value
        self._step(0.0)

    def _query_level(self, function: str, params: list[str]) -> str:
        top = _ranges(function)[-1]
        return nr3(numeric_query(params, self._level[function], -top, top, 0.0))

    def _set_source_range(self, function: str, params: list[str]) -> None:
        present = self._source_range[function]
        chosen = _pick_range(
            one_param(params), _ranges(function), present, _UNITS[function], _SOURCE_RANGE_DEFAULT[function]
        )
        if abs(self._level[function]) > chosen * (1 + 1e-9):
            raise ScpiError(-221)  # the present level would not fit: refuse rather than change the output
        self._source_range[function] = chosen
        self._source_range_auto[function] = False

    def _query_source_range(self, function: str, params: list[str]) -> str:
        ranges = _ranges(function)
        present = self._source_range[function]
        return nr3(numeric_query(params, present, ranges[0], ranges[-1], _SOURCE_RANGE_DEFAULT[function]))

    def _set_source_range_auto(self, function: str, params: list[str]) -> None:
        self._source_range_auto[function] = boolean(one_param(params))
        if self._source_range_auto[function]:
            self._source_range[function] = _range_for(abs(self._level[function]), _ranges(function))

    # -- command handlers: sense, format, output ---------------------------------------------------------------

    def _set_sense_functions(self, on: bool, params: list[str]) -> None:
        if not params:
            raise ScpiError(-109)
        functions = [_sense_function(name) for p in params for name in string(p).split(",")]
        if not on:
            self._sense.difference_update(functions)
        elif self._concurrent:
            self._sense.update(functions)
        else:
            self._sense = {functions[-1]}

    def _sense_functions(self) -> str:
        return ",".join(_FUNCTION_NAMES[f] for f in _FUNCTIONS if f in self._sense)

    def _set_all_functions(self, on: bool, params: list[str]) -> None:
        no_params(params)
        self._sense = set(_FUNCTIONS) if on else set()

    def _query_function_state(self, params: list[str]) -> str:
        return "1" if _sense_function(one_param(params)) in self._sense else "0"

    def _set_concurrent(self, params: list[str]) -> None:
        self._concurrent = boolean(one_param(params))
        if not self._concurrent and len(self._sense) > 1:
            self._sense = {next(f for f in _FUNCTIONS if f in self._sense)}

    def _tripped(self, function: str) -> str:
        return "1" if self._source != function and self._in_compliance(self._step(0.0)) else "0"

    def _set_elements(self, params: list[str]) -> None:
        if not params:
            raise ScpiError(-109)
        chosen = {choice(p, *_ELEMENT_MNEMONICS) for p in params}
        self._elements = tuple(e for e in _ELEMENTS if e in chosen)  # always in the manual's fixed order

    # -- command handlers: system, status ----------------------------------------------------------------------

    def _reset_time(self) -> None:
        self._time_zero_s = self._t_s

    def _beep(self, params: list[str]) -> None:
        if len(params) != 2:
            raise ScpiError(-109 if len(params) < 2 else -108)
        frequency, duration = number(params[0], "HZ"), number(params[1], "S")
        if not (65 <= frequency <= 2e6 and 0 <= duration <= 7.9):
            raise ScpiError(-222)

    def _status_preset(self) -> None:
        for key in ("stat.meas.enab", "stat.oper.enab", "stat.ques.enab"):
            self._settings[key] = 0

    def _measurement_condition(self) -> str:
        return str((1 << 14) if self._in_compliance(self._step(0.0)) else 0)  # bit 14: in compliance

    # -- plain settings ----------------------------------------------------------------------------------------

    def _set_setting(self, setting: _Setting, params: list[str]) -> None:
        text = one_param(params)
        value: float | bool | str
        if setting.one_shot and keyword(text, setting.one_shot):
            return
        if setting.kind == "bool":
            value = boolean(text)
        elif setting.kind == "range":
            present = float(self._settings[setting.key])
            value = _pick_range(text, setting.ranges, present, setting.unit, float(setting.default))
        elif setting.kind == "choice":
            value = choice(text, *setting.choices)
        else:
            value = numeric_value(text, setting.unit, setting.lo, setting.hi, float(setting.default))
            if not setting.lo <= value <= setting.hi:
                raise ScpiError(-222)
            if setting.kind == "int":
                value = round(value)
            elif setting.magnitude:
                value = abs(value)
        self._settings[setting.key] = value
        if setting.clears:
            self._settings[setting.clears] = False
        self._step(0.0)

    def _query_setting(self, setting: _Setting, params: list[str]) -> str:
        value = self._settings[setting.key]
        if setting.kind in ("bool", "choice"):
            no_params(params)
            return str(value) if setting.kind == "choice" else "1" if value else "0"
        lo, hi = (setting.ranges[0], setting.ranges[-1]) if setting.kind == "range" else (setting.lo, setting.hi)
        shown = numeric_query(params, float(value), lo, hi, float(setting.default))
        return str(round(shown)) if setting.kind == "int" else nr3(shown)


# -- parameters the instrument parses --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _lookup(header: tuple[str, ...]) -> _Command | None:
    """The command a header spells (the table scan, cached: a host repeats the same few headers)."""
    return next((c for nodes, c in _COMMANDS if header_matches(nodes, header)), None)


def _register_value(params: list[str]) -> int:
    """The value for *ESE or *SRE: 0 to 255."""
    value = number(one_param(params))
    if not 0 <= value <= 255:
        raise ScpiError(-222)
    return round(value)


def _ranges(function: str) -> tuple[float, ...]:
    return _CURRENT_RANGES_A if function == "CURR" else _VOLTAGE_RANGES_V


def _range_for(magnitude: float, ranges: tuple[float, ...]) -> float:
    """The lowest range that can accommodate `magnitude` (manual 18-75)."""
    return next((r for r in ranges if magnitude <= r * (1 + 1e-9)), ranges[-1])


def _pick_range(text: str, ranges: tuple[float, ...], present: float, unit: str, default: float) -> float:
    """<n>|UP|DOWN|MIN|MAX|DEF for a range command: the range to select (manual 18-74/75)."""
    step = keyword(text, "UP", "DOWN")
    if step is not None:
        index = ranges.index(present) if present in ranges else len(ranges) - 1
        return ranges[min(index + 1, len(ranges) - 1)] if step == "UP" else ranges[max(index - 1, 0)]
    value = abs(numeric_value(text, unit, ranges[0], ranges[-1], default))
    if value > ranges[-1] * (1 + 1e-9):
        raise ScpiError(-222)
    return _range_for(value, ranges)


def _sense_function(text: str) -> str:
    """'"VOLT"', '"VOLT:DC"', '"CURRent:DC"', '"RES"' -> 'VOLT' / 'CURR' / 'RES'."""
    parts = string(text).strip(WHITESPACE).split(":")
    name = keyword(parts[0], "VOLTage", "CURRent", "RESistance")
    if name is None or len(parts) > 2 or (len(parts) == 2 and (name == "RES" or parts[1].upper() != "DC")):
        raise ScpiError(-224)
    return name


# -- settings that are stored and reported but do not change the simulation ------------------------------------


@dataclass(frozen=True)
class _Setting:
    """A plain instrument setting: how to parse it, its limits and its *RST default."""

    key: str
    kind: str  # "num", "int", "bool", "choice" or "range"
    default: float | bool | str
    lo: float = 0.0
    hi: float = 0.0
    unit: str = ""
    choices: tuple[str, ...] = ()
    magnitude: bool = False  # the manual treats the value as a magnitude: -5 means 5
    clears: str = ""  # setting this turns that boolean off (e.g. a manual range turns autorange off)
    ranges: tuple[float, ...] = ()  # for "range": the ranges, selected as the lowest that holds the value
    one_shot: str = ""  # a keyword accepted as an action that leaves the setting alone (AZER ONCE)


_SETTINGS = (
    _Setting("sens.volt.prot", "num", 21.0, -210.0, 210.0, "V", magnitude=True),  # 18-68: DEF 21 V, ±210 V
    _Setting("sens.curr.prot", "num", 1.05e-4, -1.05, 1.05, "A", magnitude=True),  # 18-68: DEF 105 µA
    _Setting("sens.curr.rang", "range", 1.05e-4, unit="A", ranges=_CURRENT_RANGES_A, clears="sens.curr.rang.auto"),
    _Setting("sens.volt.rang", "range", 21.0, unit="V", ranges=_VOLTAGE_RANGES_V, clears="sens.volt.rang.auto"),
    _Setting("sens.res.rang", "range", 2.1e5, unit="OHM", ranges=_RESISTANCE_RANGES_OHM, clears="sens.res.rang.auto"),
    _Setting("sens.curr.rang.auto", "bool", True),
    _Setting("sens.volt.rang.auto", "bool", True),
    _Setting("sens.res.rang.auto", "bool", True),
    _Setting("sens.curr.nplc", "num", 1.0, 0.01, 10.0),
    _Setting("sens.volt.nplc", "num", 1.0, 0.01, 10.0),
    _Setting("sens.res.nplc", "num", 1.0, 0.01, 10.0),
    _Setting("sens.res.mode", "choice", "AUTO", choices=("MANual", "AUTO")),
    _Setting("sens.res.ocom", "bool", False),
    _Setting("sens.aver", "bool", False),
    _Setting("sens.aver.tcon", "choice", "REP", choices=("REPeat", "MOVing")),
    _Setting("sens.aver.coun", "int", 10, 1, 100),
    _Setting("sour.volt.prot", "num", 210.0, -210.0, 210.0, "V", magnitude=True),
    _Setting("sour.del", "num", 0.0, 0.0, 999.9999, "S", clears="sour.del.auto"),
    _Setting("sour.del.auto", "bool", True),
    _Setting("sour.cle.auto", "bool", False),  # 18-72: auto output-off disabled is the *RST default
    _Setting("sour.cle.auto.mode", "choice", "ALW", choices=("ALWays", "TCOunt")),
    _Setting("sour.curr.mode", "choice", "FIX", choices=("FIXed",)),  # sweeps and lists are not modelled
    _Setting("sour.volt.mode", "choice", "FIX", choices=("FIXed",)),
    _Setting("outp.smod", "choice", "NORM", choices=("HIMPedance", "NORMal", "ZERO", "GUARd")),
    _Setting("outp.enab", "bool", False),
    _Setting("form.data", "choice", "ASC", choices=("ASCii",)),  # binary formats are not modelled
    _Setting("form.bord", "choice", "NORM", choices=("NORMal", "SWAPped")),
    _Setting("form.sreg", "choice", "ASC", choices=("ASCii", "HEXadecimal", "OCTal", "BINary")),
    _Setting("trig.coun", "int", 1, 1, 2500),
    _Setting("arm.coun", "int", 1, 1, 2500),
    _Setting("trig.del", "num", 0.0, 0.0, 999.9999, "S"),
    _Setting("trig.sour", "choice", "IMM", choices=("IMMediate", "TLINk")),
    _Setting("arm.sour", "choice", "IMM", choices=("IMMediate", "TIMer", "MANual", "BUS", "TLINk", "NSTest")),
    _Setting("arm.tim", "num", 0.1, 0.001, 99999.99, "S"),
    _Setting("trig.outp", "choice", "NONE", choices=("SOURce", "DELay", "SENSe", "NONE")),
    _Setting("arm.outp", "choice", "NONE", choices=("TENTer", "TEXit", "NONE")),
    _Setting("trig.ilin", "int", 1, 1, 4),
    _Setting("trig.olin", "int", 2, 1, 4),
    _Setting("arm.ilin", "int", 1, 1, 4),
    _Setting("arm.olin", "int", 2, 1, 4),
    _Setting("syst.rsen", "bool", False),
    _Setting("syst.azer", "bool", True, one_shot="ONCE"),
    _Setting("syst.lfr", "int", 60, 50, 60),
    _Setting("syst.lfr.auto", "bool", True),
    _Setting("syst.beep.stat", "bool", True),
    _Setting("disp.enab", "bool", True),
    _Setting("rout.term", "choice", "FRON", choices=("FRONt", "REAR")),
    _Setting("trac.poin", "int", 100, 1, 2500),
    _Setting("trac.feed", "choice", "SENS", choices=("SENSe",)),
    _Setting("trac.feed.cont", "choice", "NEV", choices=("NEVer", "NEXT")),
    _Setting("stat.meas.enab", "int", 0, 0, 65535),
    _Setting("stat.oper.enab", "int", 0, 0, 65535),
    _Setting("stat.ques.enab", "int", 0, 0, 65535),
)
_SETTING = {s.key: s for s in _SETTINGS}


# -- the command table -----------------------------------------------------------------------------------------

Handler = Callable[["SourceMeter", list[str]], None]
Query = Callable[["SourceMeter", list[str]], str]


@dataclass(frozen=True)
class _Command:
    setter: Handler | None = None
    query: Query | None = None


_Entry = tuple[tuple[Node, ...], _Command]  # a header pattern and what it does


_R = TypeVar("_R", str, None)


def _bare(action: Callable[[SourceMeter], _R]) -> Callable[[SourceMeter, list[str]], _R]:
    """A handler for a command or query that takes no parameters."""

    def handler(meter: SourceMeter, params: list[str]) -> _R:
        no_params(params)
        return action(meter)

    return handler


_NOTHING = _bare(lambda m: None)  # accepted and ignored
_ZERO = _bare(lambda m: "0")


def _error_query(*, every: bool, described: bool) -> Query:
    """SYST:ERR? and its variants: the oldest error (0 if none) or all of them, taken off the queue."""

    def query(meter: SourceMeter) -> str:
        taken = len(meter._errors) if every else 1
        codes = meter._errors[:taken] or [0]
        del meter._errors[:taken]
        return ",".join(f'{code},"{_ERRORS.get(code, "Error")}"' if described else str(code) for code in codes)

    return _bare(query)


def _command(pattern: str, setter: Handler | None = None, query: Query | None = None) -> _Entry:
    return compile_header(pattern), _Command(setter, query)


def _setting(pattern: str, key: str) -> _Entry:
    spec = _SETTING[key]
    return _command(
        pattern,
        lambda meter, params: meter._set_setting(spec, params),
        lambda meter, params: meter._query_setting(spec, params),
    )


def _per_function(function: str) -> list[_Entry]:
    long = {"CURR": "CURRent", "VOLT": "VOLTage"}[function]
    return [
        _command(
            f":SOURce[1]:{long}[:LEVel][:IMMediate][:AMPLitude]",
            lambda m, p: m._set_level(function, p),
            lambda m, p: m._query_level(function, p),
        ),
        _command(
            f":SOURce[1]:{long}:RANGe:AUTO",
            lambda m, p: m._set_source_range_auto(function, p),
            _bare(lambda m: "1" if m._source_range_auto[function] else "0"),
        ),
        _command(
            f":SOURce[1]:{long}:RANGe",
            lambda m, p: m._set_source_range(function, p),
            lambda m, p: m._query_source_range(function, p),
        ),
        _setting(f":SOURce[1]:{long}:MODE", f"sour.{function.lower()}.mode"),
        _setting(f"[:SENSe[1]]:{long}[:DC]:PROTection[:LEVel]", f"sens.{function.lower()}.prot"),
        _command(f"[:SENSe[1]]:{long}[:DC]:PROTection:TRIPped", query=_bare(lambda m: m._tripped(function))),
        _setting(f"[:SENSe[1]]:{long}[:DC]:RANGe:AUTO", f"sens.{function.lower()}.rang.auto"),
        _setting(f"[:SENSe[1]]:{long}[:DC]:RANGe[:UPPer]", f"sens.{function.lower()}.rang"),
        _setting(f"[:SENSe[1]]:{long}[:DC]:NPLCycles", f"sens.{function.lower()}.nplc"),
        _command(f":CONFigure:{long}[:DC]", lambda m, p: m._configure(function, p)),
        _command(f":MEASure:{long}[:DC]", query=lambda m, p: m._measure(function, p)),
    ]


# IEEE 488.2 common commands, by upper-cased header.
_COMMON = {
    "*IDN": _Command(query=_bare(lambda m: m._idn)),
    "*OPC": _Command(_bare(SourceMeter._operation_complete), _bare(lambda m: "1")),
    "*ESR": _Command(query=_bare(SourceMeter._read_esr)),
    "*STB": _Command(query=_bare(lambda m: str(m._status_byte()))),
    "*TST": _Command(query=_ZERO),
    "*ESE": _Command(SourceMeter._set_ese, _bare(lambda m: str(m._ese))),
    "*SRE": _Command(SourceMeter._set_sre, _bare(lambda m: str(m._sre))),
    "*RST": _Command(_bare(SourceMeter._reset)),
    "*CLS": _Command(_bare(SourceMeter._clear_status)),
    "*WAI": _Command(_NOTHING),
    "*TRG": _Command(_NOTHING),
}

_COMMANDS: tuple[_Entry, ...] = (
    *_per_function("CURR"),
    *_per_function("VOLT"),
    _command(":SOURce[1]:FUNCtion[:MODE]", SourceMeter._set_function, _bare(lambda m: m._source)),
    _command(":SOURce[1]:CLEar[:IMMediate]", _bare(lambda m: m._set_output(False))),
    _setting(":SOURce[1]:CLEar:AUTO", "sour.cle.auto"),
    _setting(":SOURce[1]:CLEar:AUTO:MODE", "sour.cle.auto.mode"),
    _setting(":SOURce[1]:DELay", "sour.del"),
    _setting(":SOURce[1]:DELay:AUTO", "sour.del.auto"),
    _setting(":SOURce[1]:VOLTage:PROTection[:LEVel]", "sour.volt.prot"),
    _command(
        "[:SENSe[1]]:FUNCtion:CONCurrent",
        SourceMeter._set_concurrent,
        _bare(lambda m: "1" if m._concurrent else "0"),
    ),
    _command("[:SENSe[1]]:FUNCtion[:ON]:ALL", lambda m, p: m._set_all_functions(True, p)),
    _command("[:SENSe[1]]:FUNCtion:OFF:ALL", lambda m, p: m._set_all_functions(False, p)),
    _command("[:SENSe[1]]:FUNCtion:OFF", lambda m, p: m._set_sense_functions(False, p)),
    _command("[:SENSe[1]]:FUNCtion:STATe", query=SourceMeter._query_function_state),
    _command(
        "[:SENSe[1]]:FUNCtion[:ON]",
        lambda m, p: m._set_sense_functions(True, p),
        _bare(SourceMeter._sense_functions),
    ),
    _setting("[:SENSe[1]]:RESistance:RANGe:AUTO", "sens.res.rang.auto"),
    _setting("[:SENSe[1]]:RESistance:RANGe[:UPPer]", "sens.res.rang"),
    _setting("[:SENSe[1]]:RESistance:NPLCycles", "sens.res.nplc"),
    _setting("[:SENSe[1]]:RESistance:MODE", "sens.res.mode"),
    _setting("[:SENSe[1]]:RESistance:OCOMpensated", "sens.res.ocom"),
    _setting("[:SENSe[1]]:AVERage:TCONtrol", "sens.aver.tcon"),
    _setting("[:SENSe[1]]:AVERage:COUNt", "sens.aver.coun"),
    _setting("[:SENSe[1]]:AVERage[:STATe]", "sens.aver"),
    _command(":CONFigure:RESistance", lambda m, p: m._configure("RES", p), _bare(SourceMeter._sense_functions)),
    _command(":CONFigure", query=_bare(SourceMeter._sense_functions)),
    _command(":MEASure:RESistance", query=lambda m, p: m._measure("RES", p)),
    _command(":MEASure", query=lambda m, p: m._measure(None, p)),
    _command(":FORMat:ELEMents[:SENSe[1]]", SourceMeter._set_elements, _bare(lambda m: ",".join(m._elements))),
    _setting(":FORMat[:DATA]", "form.data"),
    _setting(":FORMat:BORDer", "form.bord"),
    _setting(":FORMat:SREGister", "form.sreg"),
    _command(
        ":OUTPut[1][:STATe]",
        lambda m, p: m._set_output(boolean(one_param(p))),
        _bare(lambda m: "1" if m._output else "0"),
    ),
    _setting(":OUTPut[1]:SMODe", "outp.smod"),
    _setting(":OUTPut[1]:ENABle[:STATe]", "outp.enab"),
    _command(":INITiate[:IMMediate]", _bare(SourceMeter._initiate)),
    _command(":ABORt", _NOTHING),
    _command(":FETCh", query=_bare(SourceMeter._fetch)),
    _command(":READ", query=_bare(SourceMeter._read)),
    _setting(":TRIGger[:SEQuence[1]]:COUNt", "trig.coun"),
    _setting(":TRIGger[:SEQuence[1]]:DELay", "trig.del"),
    _setting(":TRIGger[:SEQuence[1]]:SOURce", "trig.sour"),
    _setting(":TRIGger[:SEQuence[1]]:OUTPut", "trig.outp"),
    _setting(":TRIGger[:SEQuence[1]]:ILINe", "trig.ilin"),
    _setting(":TRIGger[:SEQuence[1]]:OLINe", "trig.olin"),
    _command(":TRIGger:CLEar", _NOTHING),
    _setting(":ARM[:SEQuence[1]][:LAYer[1]]:COUNt", "arm.coun"),
    _setting(":ARM[:SEQuence[1]][:LAYer[1]]:SOURce", "arm.sour"),
    _setting(":ARM[:SEQuence[1]][:LAYer[1]]:TIMer", "arm.tim"),
    _setting(":ARM[:SEQuence[1]][:LAYer[1]]:OUTPut", "arm.outp"),
    _setting(":ARM[:SEQuence[1]][:LAYer[1]]:ILINe", "arm.ilin"),
    _setting(":ARM[:SEQuence[1]][:LAYer[1]]:OLINe", "arm.olin"),
    _command(":SYSTem:ERRor[:NEXT]", query=_error_query(every=False, described=True)),
    _command(":SYSTem:ERRor:ALL", query=_error_query(every=True, described=True)),
    _command(":SYSTem:ERRor:COUNt", query=_bare(lambda m: str(len(m._errors)))),
    _command(":SYSTem:ERRor:CODE[:NEXT]", query=_error_query(every=False, described=False)),
    _command(":SYSTem:ERRor:CODE:ALL", query=_error_query(every=True, described=False)),
    _command(":SYSTem:CLEar", _bare(lambda m: m._errors.clear())),
    _command(":SYSTem:PRESet", _bare(SourceMeter._reset)),
    _command(":SYSTem:TIME:RESet", _bare(SourceMeter._reset_time)),
    _command(":SYSTem:VERSion", query=_bare(lambda m: "1996.0")),
    _command(":SYSTem:BEEPer[:IMMediate]", SourceMeter._beep),
    _setting(":SYSTem:BEEPer:STATe", "syst.beep.stat"),
    _setting(":SYSTem:RSENse", "syst.rsen"),
    _setting(":SYSTem:AZERo[:STATe]", "syst.azer"),
    _setting(":SYSTem:LFRequency", "syst.lfr"),
    _setting(":SYSTem:LFRequency:AUTO", "syst.lfr.auto"),
    _command(":SYSTem:LOCal", _NOTHING),
    _command(":SYSTem:REMote", _NOTHING),
    _command(":STATus:QUEue[:NEXT]", query=_error_query(every=False, described=True)),
    _command(":STATus:QUEue:CLEar", _bare(lambda m: m._errors.clear())),
    _command(":STATus:PRESet", _bare(SourceMeter._status_preset)),
    _command(":STATus:MEASurement:CONDition", query=_bare(SourceMeter._measurement_condition)),
    _command(":STATus:MEASurement[:EVENt]", query=_ZERO),
    _setting(":STATus:MEASurement:ENABle", "stat.meas.enab"),
    _command(":STATus:OPERation:CONDition", query=_ZERO),
    _command(":STATus:OPERation[:EVENt]", query=_ZERO),
    _setting(":STATus:OPERation:ENABle", "stat.oper.enab"),
    _command(":STATus:QUEStionable:CONDition", query=_ZERO),
    _command(":STATus:QUEStionable[:EVENt]", query=_ZERO),
    _setting(":STATus:QUEStionable:ENABle", "stat.ques.enab"),
    _setting(":DISPlay:ENABle", "disp.enab"),
    _setting(":ROUTe:TERMinals", "rout.term"),
    _command(":TRACe:CLEar", _bare(lambda m: m._buffer.clear())),
    _setting(":TRACe:POINts", "trac.poin"),
    _command(":TRACe:POINts:ACTual", query=_bare(lambda m: str(len(m._buffer)))),
    _setting(":TRACe:FEED", "trac.feed"),
    _setting(":TRACe:FEED:CONTrol", "trac.feed.cont"),
    _command(":TRACe:DATA", query=_bare(lambda m: m._format(m._buffer))),
)

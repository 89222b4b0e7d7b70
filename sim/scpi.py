"""A Keithley 2400-class SourceMeter, sans-I/O, sourcing into the simulated `Plant`.

Theory of operation
-------------------
`handle()` takes one program message (without its terminator) and returns the response, if any; `advance()`
moves the instrument clock and steps the plant with whatever the source is set to. Nothing here reads a clock,
sleeps or touches a port; an endpoint (TCP, pty) wraps this object.

Parsing (`sim.scpi_syntax`) follows IEEE 488.2 and the SCPI tree rules. Headers match the 2400 manual's
patterns (Keithley 2400 Series SourceMeter User's Manual, 2400S-900-01 Rev. K, section 18) in long or short
form, any case, with optional nodes in brackets; the command set (which header runs which of this model's
handlers, the plain settings and their limits) is in `sim.scpi_commands`. A bad unit queues an error (SCPI
-1xx/-2xx, or the 2400's +8xx) and the next unit is still executed; nothing raises to the caller.

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

import math

from sim.plant import Plant, PlantSample
from sim.scpi_commands import (
    COMMON,
    SETTINGS,
    SOURCE_RANGE_DEFAULT,
    UNITS,
    Setting,
    lookup,
    pick_range,
    range_for,
    ranges_of,
    register_value,
    sense_function,
)
from sim.scpi_syntax import (
    MessageUnit,
    ScpiError,
    boolean,
    choice,
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

    # Declared here for the command table in sim.scpi_commands, which reads them.
    _idn: str
    _ese: int
    _sre: int
    _output: bool

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
            command = COMMON.get(unit.header[0])
        else:
            command = lookup(unit.header)
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
        self._settings: dict[str, float | bool | str] = {s.key: s.default for s in SETTINGS}
        self._source: str = "VOLT"
        self._level = {"CURR": 0.0, "VOLT": 0.0}
        self._source_range = dict(SOURCE_RANGE_DEFAULT)
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
        self._ese = register_value(params)

    def _set_sre(self, params: list[str]) -> None:
        self._sre = register_value(params) & ~0x40

    # -- command handlers: source ------------------------------------------------------------------------------

    def _set_function(self, params: list[str]) -> None:
        self._source = choice(one_param(params), "CURRent", "VOLTage")
        self._step(0.0)

    def _set_level(self, function: str, params: list[str]) -> None:
        ranges = ranges_of(function)
        value = numeric_value(one_param(params), UNITS[function], -ranges[-1], ranges[-1], 0.0)
        if abs(value) > ranges[-1]:
            raise ScpiError(-222)
        if self._source_range_auto[function]:
            self._source_range[function] = range_for(abs(value), ranges)
        elif abs(value) > self._source_range[function] * (1 + 1e-9):
            # A manual range caps the level, so MIN and MAX need the highest range (manual 18-78/79).
            raise ScpiError(-221)
        self._level[function] = value
        self._step(0.0)

    def _query_level(self, function: str, params: list[str]) -> str:
        top = ranges_of(function)[-1]
        return nr3(numeric_query(params, self._level[function], -top, top, 0.0))

    def _set_source_range(self, function: str, params: list[str]) -> None:
        present = self._source_range[function]
        chosen = pick_range(
            one_param(params), ranges_of(function), present, UNITS[function], SOURCE_RANGE_DEFAULT[function]
        )
        if abs(self._level[function]) > chosen * (1 + 1e-9):
            raise ScpiError(-221)  # the present level would not fit: refuse rather than change the output
        self._source_range[function] = chosen
        self._source_range_auto[function] = False

    def _query_source_range(self, function: str, params: list[str]) -> str:
        ranges = ranges_of(function)
        present = self._source_range[function]
        return nr3(numeric_query(params, present, ranges[0], ranges[-1], SOURCE_RANGE_DEFAULT[function]))

    def _set_source_range_auto(self, function: str, params: list[str]) -> None:
        self._source_range_auto[function] = boolean(one_param(params))
        if self._source_range_auto[function]:
            self._source_range[function] = range_for(abs(self._level[function]), ranges_of(function))

    # -- command handlers: sense, format, output ---------------------------------------------------------------

    def _set_sense_functions(self, on: bool, params: list[str]) -> None:
        if not params:
            raise ScpiError(-109)
        functions = [sense_function(name) for p in params for name in string(p).split(",")]
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
        return "1" if sense_function(one_param(params)) in self._sense else "0"

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

    def _set_setting(self, setting: Setting, params: list[str]) -> None:
        text = one_param(params)
        value: float | bool | str
        if setting.one_shot and keyword(text, setting.one_shot):
            return
        if setting.kind == "bool":
            value = boolean(text)
        elif setting.kind == "range":
            present = float(self._settings[setting.key])
            value = pick_range(text, setting.ranges, present, setting.unit, float(setting.default))
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

    def _query_setting(self, setting: Setting, params: list[str]) -> str:
        value = self._settings[setting.key]
        if setting.kind in ("bool", "choice"):
            no_params(params)
            return str(value) if setting.kind == "choice" else "1" if value else "0"
        lo, hi = (setting.ranges[0], setting.ranges[-1]) if setting.kind == "range" else (setting.lo, setting.hi)
        shown = numeric_query(params, float(value), lo, hi, float(setting.default))
        return str(round(shown)) if setting.kind == "int" else nr3(shown)

"""The Keithley 2400's command set, for the SourceMeter model in `sim.scpi`: which header runs which handler
(`COMMON` for the IEEE 488.2 common commands, `lookup()` for the SCPI tree), the plain settings the instrument
stores and reports (`SETTINGS`, with their *RST defaults and limits), and the parameters it parses (ranges,
sense functions, register values).

Header patterns and defaults are the manual's (Keithley 2400 Series SourceMeter User's Manual, 2400S-900-01
Rev. K, section 18; page references in the comments). The table is part of the model: its handlers reach into
the `SourceMeter`'s state as its own methods do. Nothing here runs at import but building the table.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from sim.scpi_syntax import (
    COMMAND_ERRORS,
    WHITESPACE,
    Node,
    ScpiError,
    boolean,
    compile_header,
    header_matches,
    keyword,
    no_params,
    number,
    numeric_value,
    one_param,
    string,
)

if TYPE_CHECKING:
    from sim.scpi import SourceMeter

# Ranges are reported and selected as 1.05x their nominal full scale, as the 2400 does.
CURRENT_RANGES_A = (1.05e-6, 1.05e-5, 1.05e-4, 1.05e-3, 1.05e-2, 1.05e-1, 1.05)
VOLTAGE_RANGES_V = (0.21, 2.1, 21.0, 210.0)
RESISTANCE_RANGES_OHM = (2.1, 21.0, 210.0, 2.1e3, 2.1e4, 2.1e5, 2.1e6, 2.1e7, 2.1e8)
UNITS = {"CURR": "A", "VOLT": "V", "RES": "OHM"}
SOURCE_RANGE_DEFAULT = {"CURR": 1.05e-4, "VOLT": 21.0}  # 18-75: DEFault is the 100 µA and 20 V range

ERRORS = {
    0: "No error",
    **COMMAND_ERRORS,
    -221: "Settings conflict",
    -222: "Data out of range",
    -224: "Illegal parameter value",
    -230: "Data corrupt or stale",
    -350: "Queue overflow",
    803: "Not permitted with OUTPUT off",  # Table B-1, "Additional command execution errors"
}


# -- parameters the instrument parses --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def lookup(header: tuple[str, ...]) -> Command | None:
    """The command a header spells (the table scan, cached: a host repeats the same few headers)."""
    return next((c for nodes, c in COMMANDS if header_matches(nodes, header)), None)


def register_value(params: list[str]) -> int:
    """The value for *ESE or *SRE: 0 to 255."""
    value = number(one_param(params))
    if not 0 <= value <= 255:
        raise ScpiError(-222)
    return round(value)


def ranges_of(function: str) -> tuple[float, ...]:
    return CURRENT_RANGES_A if function == "CURR" else VOLTAGE_RANGES_V


def range_for(magnitude: float, ranges: tuple[float, ...]) -> float:
    """The lowest range that can accommodate `magnitude` (manual 18-75)."""
    return next((r for r in ranges if magnitude <= r * (1 + 1e-9)), ranges[-1])


def pick_range(text: str, ranges: tuple[float, ...], present: float, unit: str, default: float) -> float:
    """<n>|UP|DOWN|MIN|MAX|DEF for a range command: the range to select (manual 18-74/75)."""
    step = keyword(text, "UP", "DOWN")
    if step is not None:
        index = ranges.index(present) if present in ranges else len(ranges) - 1
        return ranges[min(index + 1, len(ranges) - 1)] if step == "UP" else ranges[max(index - 1, 0)]
    value = abs(numeric_value(text, unit, ranges[0], ranges[-1], default))
    if value > ranges[-1] * (1 + 1e-9):
        raise ScpiError(-222)
    return range_for(value, ranges)


def sense_function(text: str) -> str:
    """'"VOLT"', '"VOLT:DC"', '"CURRent:DC"', '"RES"' -> 'VOLT' / 'CURR' / 'RES'."""
    parts = string(text).strip(WHITESPACE).split(":")
    name = keyword(parts[0], "VOLTage", "CURRent", "RESistance")
    if name is None or len(parts) > 2 or (len(parts) == 2 and (name == "RES" or parts[1].upper() != "DC")):
        raise ScpiError(-224)
    return name


# -- settings that are stored and reported but do not change the simulation ------------------------------------


@dataclass(frozen=True)
class Setting:
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


SETTINGS = (
    Setting("sens.volt.prot", "num", 21.0, -210.0, 210.0, "V", magnitude=True),  # 18-68: DEF 21 V, ±210 V
    Setting("sens.curr.prot", "num", 1.05e-4, -1.05, 1.05, "A", magnitude=True),  # 18-68: DEF 105 µA
    Setting("sens.curr.rang", "range", 1.05e-4, unit="A", ranges=CURRENT_RANGES_A, clears="sens.curr.rang.auto"),
    Setting("sens.volt.rang", "range", 21.0, unit="V", ranges=VOLTAGE_RANGES_V, clears="sens.volt.rang.auto"),
    Setting("sens.res.rang", "range", 2.1e5, unit="OHM", ranges=RESISTANCE_RANGES_OHM, clears="sens.res.rang.auto"),
    Setting("sens.curr.rang.auto", "bool", True),
    Setting("sens.volt.rang.auto", "bool", True),
    Setting("sens.res.rang.auto", "bool", True),
    Setting("sens.curr.nplc", "num", 1.0, 0.01, 10.0),
    Setting("sens.volt.nplc", "num", 1.0, 0.01, 10.0),
    Setting("sens.res.nplc", "num", 1.0, 0.01, 10.0),
    Setting("sens.res.mode", "choice", "AUTO", choices=("MANual", "AUTO")),
    Setting("sens.res.ocom", "bool", False),
    Setting("sens.aver", "bool", False),
    Setting("sens.aver.tcon", "choice", "REP", choices=("REPeat", "MOVing")),
    Setting("sens.aver.coun", "int", 10, 1, 100),
    Setting("sour.volt.prot", "num", 210.0, -210.0, 210.0, "V", magnitude=True),
    Setting("sour.del", "num", 0.0, 0.0, 999.9999, "S", clears="sour.del.auto"),
    Setting("sour.del.auto", "bool", True),
    Setting("sour.cle.auto", "bool", False),  # 18-72: auto output-off disabled is the *RST default
    Setting("sour.cle.auto.mode", "choice", "ALW", choices=("ALWays", "TCOunt")),
    Setting("sour.curr.mode", "choice", "FIX", choices=("FIXed",)),  # sweeps and lists are not modelled
    Setting("sour.volt.mode", "choice", "FIX", choices=("FIXed",)),
    Setting("outp.smod", "choice", "NORM", choices=("HIMPedance", "NORMal", "ZERO", "GUARd")),
    Setting("outp.enab", "bool", False),
    Setting("form.data", "choice", "ASC", choices=("ASCii",)),  # binary formats are not modelled
    Setting("form.bord", "choice", "NORM", choices=("NORMal", "SWAPped")),
    Setting("form.sreg", "choice", "ASC", choices=("ASCii", "HEXadecimal", "OCTal", "BINary")),
    Setting("trig.coun", "int", 1, 1, 2500),
    Setting("arm.coun", "int", 1, 1, 2500),
    Setting("trig.del", "num", 0.0, 0.0, 999.9999, "S"),
    Setting("trig.sour", "choice", "IMM", choices=("IMMediate", "TLINk")),
    Setting("arm.sour", "choice", "IMM", choices=("IMMediate", "TIMer", "MANual", "BUS", "TLINk", "NSTest")),
    Setting("arm.tim", "num", 0.1, 0.001, 99999.99, "S"),
    Setting("trig.outp", "choice", "NONE", choices=("SOURce", "DELay", "SENSe", "NONE")),
    Setting("arm.outp", "choice", "NONE", choices=("TENTer", "TEXit", "NONE")),
    Setting("trig.ilin", "int", 1, 1, 4),
    Setting("trig.olin", "int", 2, 1, 4),
    Setting("arm.ilin", "int", 1, 1, 4),
    Setting("arm.olin", "int", 2, 1, 4),
    Setting("syst.rsen", "bool", False),
    Setting("syst.azer", "bool", True, one_shot="ONCE"),
    Setting("syst.lfr", "int", 60, 50, 60),
    Setting("syst.lfr.auto", "bool", True),
    Setting("syst.beep.stat", "bool", True),
    Setting("disp.enab", "bool", True),
    Setting("rout.term", "choice", "FRON", choices=("FRONt", "REAR")),
    Setting("trac.poin", "int", 100, 1, 2500),
    Setting("trac.feed", "choice", "SENS", choices=("SENSe",)),
    Setting("trac.feed.cont", "choice", "NEV", choices=("NEVer", "NEXT")),
    Setting("stat.meas.enab", "int", 0, 0, 65535),
    Setting("stat.oper.enab", "int", 0, 0, 65535),
    Setting("stat.ques.enab", "int", 0, 0, 65535),
)
SETTING = {s.key: s for s in SETTINGS}


# -- the command table -----------------------------------------------------------------------------------------

Handler = Callable[["SourceMeter", list[str]], None]
Query = Callable[["SourceMeter", list[str]], str]


@dataclass(frozen=True)
class Command:
    setter: Handler | None = None
    query: Query | None = None


Entry = tuple[tuple[Node, ...], Command]  # a header pattern and what it does


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
        return ",".join(f'{code},"{ERRORS.get(code, "Error")}"' if described else str(code) for code in codes)

    return _bare(query)


def _command(pattern: str, setter: Handler | None = None, query: Query | None = None) -> Entry:
    return compile_header(pattern), Command(setter, query)


def _setting(pattern: str, key: str) -> Entry:
    spec = SETTING[key]
    return _command(
        pattern,
        lambda meter, params: meter._set_setting(spec, params),
        lambda meter, params: meter._query_setting(spec, params),
    )


def _per_function(function: str) -> list[Entry]:
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
COMMON = {
    "*IDN": Command(query=_bare(lambda m: m._idn)),
    "*OPC": Command(_bare(lambda m: m._operation_complete()), _bare(lambda m: "1")),
    "*ESR": Command(query=_bare(lambda m: m._read_esr())),
    "*STB": Command(query=_bare(lambda m: str(m._status_byte()))),
    "*TST": Command(query=_ZERO),
    "*ESE": Command(lambda m, p: m._set_ese(p), _bare(lambda m: str(m._ese))),
    "*SRE": Command(lambda m, p: m._set_sre(p), _bare(lambda m: str(m._sre))),
    "*RST": Command(_bare(lambda m: m._reset())),
    "*CLS": Command(_bare(lambda m: m._clear_status())),
    "*WAI": Command(_NOTHING),
    "*TRG": Command(_NOTHING),
}

COMMANDS: tuple[Entry, ...] = (
    *_per_function("CURR"),
    *_per_function("VOLT"),
    _command(":SOURce[1]:FUNCtion[:MODE]", lambda m, p: m._set_function(p), _bare(lambda m: m._source)),
    _command(":SOURce[1]:CLEar[:IMMediate]", _bare(lambda m: m._set_output(False))),
    _setting(":SOURce[1]:CLEar:AUTO", "sour.cle.auto"),
    _setting(":SOURce[1]:CLEar:AUTO:MODE", "sour.cle.auto.mode"),
    _setting(":SOURce[1]:DELay", "sour.del"),
    _setting(":SOURce[1]:DELay:AUTO", "sour.del.auto"),
    _setting(":SOURce[1]:VOLTage:PROTection[:LEVel]", "sour.volt.prot"),
    _command(
        "[:SENSe[1]]:FUNCtion:CONCurrent",
        lambda m, p: m._set_concurrent(p),
        _bare(lambda m: "1" if m._concurrent else "0"),
    ),
    _command("[:SENSe[1]]:FUNCtion[:ON]:ALL", lambda m, p: m._set_all_functions(True, p)),
    _command("[:SENSe[1]]:FUNCtion:OFF:ALL", lambda m, p: m._set_all_functions(False, p)),
    _command("[:SENSe[1]]:FUNCtion:OFF", lambda m, p: m._set_sense_functions(False, p)),
    _command("[:SENSe[1]]:FUNCtion:STATe", query=lambda m, p: m._query_function_state(p)),
    _command(
        "[:SENSe[1]]:FUNCtion[:ON]",
        lambda m, p: m._set_sense_functions(True, p),
        _bare(lambda m: m._sense_functions()),
    ),
    _setting("[:SENSe[1]]:RESistance:RANGe:AUTO", "sens.res.rang.auto"),
    _setting("[:SENSe[1]]:RESistance:RANGe[:UPPer]", "sens.res.rang"),
    _setting("[:SENSe[1]]:RESistance:NPLCycles", "sens.res.nplc"),
    _setting("[:SENSe[1]]:RESistance:MODE", "sens.res.mode"),
    _setting("[:SENSe[1]]:RESistance:OCOMpensated", "sens.res.ocom"),
    _setting("[:SENSe[1]]:AVERage:TCONtrol", "sens.aver.tcon"),
    _setting("[:SENSe[1]]:AVERage:COUNt", "sens.aver.coun"),
    _setting("[:SENSe[1]]:AVERage[:STATe]", "sens.aver"),
    _command(":CONFigure:RESistance", lambda m, p: m._configure("RES", p), _bare(lambda m: m._sense_functions())),
    _command(":CONFigure", query=_bare(lambda m: m._sense_functions())),
    _command(":MEASure:RESistance", query=lambda m, p: m._measure("RES", p)),
    _command(":MEASure", query=lambda m, p: m._measure(None, p)),
    _command(":FORMat:ELEMents[:SENSe[1]]", lambda m, p: m._set_elements(p), _bare(lambda m: ",".join(m._elements))),
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
    _command(":INITiate[:IMMediate]", _bare(lambda m: m._initiate())),
    _command(":ABORt", _NOTHING),
    _command(":FETCh", query=_bare(lambda m: m._fetch())),
    _command(":READ", query=_bare(lambda m: m._read())),
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
    _command(":SYSTem:PRESet", _bare(lambda m: m._reset())),
    _command(":SYSTem:TIME:RESet", _bare(lambda m: m._reset_time())),
    _command(":SYSTem:VERSion", query=_bare(lambda m: "1996.0")),
    _command(":SYSTem:BEEPer[:IMMediate]", lambda m, p: m._beep(p)),
    _setting(":SYSTem:BEEPer:STATe", "syst.beep.stat"),
    _setting(":SYSTem:RSENse", "syst.rsen"),
    _setting(":SYSTem:AZERo[:STATe]", "syst.azer"),
    _setting(":SYSTem:LFRequency", "syst.lfr"),
    _setting(":SYSTem:LFRequency:AUTO", "syst.lfr.auto"),
    _command(":SYSTem:LOCal", _NOTHING),
    _command(":SYSTem:REMote", _NOTHING),
    _command(":STATus:QUEue[:NEXT]", query=_error_query(every=False, described=True)),
    _command(":STATus:QUEue:CLEar", _bare(lambda m: m._errors.clear())),
    _command(":STATus:PRESet", _bare(lambda m: m._status_preset())),
    _command(":STATus:MEASurement:CONDition", query=_bare(lambda m: m._measurement_condition())),
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

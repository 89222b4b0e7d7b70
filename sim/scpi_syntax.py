"""IEEE 488.2 / SCPI program-message syntax, independent of any instrument.

A program message is split into message units at ';' (outside quotes); each unit is a header, optionally
ending in '?', then parameters separated by ','. Headers are either common commands ('*IDN') or a path of
mnemonics ('SOUR:CURR:LEV'); a path with no leading ':' is resolved relative to the previous unit's path.
Instruments describe their headers with the manuals' patterns (':SOURce[1]:CURRent[:LEVel]'): the short form
in capitals, optional nodes in brackets, '[1]' for an allowed numeric suffix of 1.

Anything malformed raises `ScpiError` with a SCPI error code; the instrument decides what to do with it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# The SCPI "Command Error" range (-1xx), which this module's parsing raises.
COMMAND_ERRORS = {
    -101: "Invalid character",
    -102: "Syntax error",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -120: "Numeric data error",
    -131: "Invalid suffix",
    -151: "Invalid string data",
}

WHITESPACE = "".join(chr(code) for code in range(33))  # IEEE 488.2 <white space>: control characters and space


class ScpiError(Exception):
    """Abandon the current message unit and queue `code`."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# -- program messages ------------------------------------------------------------------------------------------


def split_outside_quotes(text: str, separator: str) -> list[str]:
    """`text` split at every `separator` that is not inside a '...' or "..." string."""
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == separator:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def message_units(program_message: str) -> list[str]:
    """The message units of a program message, stripped; empty ones (a trailing ';') are dropped."""
    units = (unit.strip(WHITESPACE) for unit in split_outside_quotes(program_message, ";"))
    return [unit for unit in units if unit]


_MNEMONIC = re.compile(r"([A-Za-z][A-Za-z_]*?)([0-9]*)\Z")


@dataclass(frozen=True)
class MessageUnit:
    """One parsed message unit. `header` is ('*XXX',) upper-cased for a common command, else the full path of
    mnemonics (a relative header already resolved); `path` is what the next relative header resolves against."""

    header: tuple[str, ...]
    query: bool
    params: list[str]
    common: bool
    path: tuple[str, ...]


def parse_unit(unit: str, path: tuple[str, ...]) -> MessageUnit:
    """Parse one message unit, resolving a relative header against `path` (common commands leave it alone)."""
    split = next((i for i, ch in enumerate(unit) if ch in WHITESPACE), len(unit))
    header, argument = unit[:split], unit[split:].strip(WHITESPACE)
    params = [p.strip(WHITESPACE) for p in split_outside_quotes(argument, ",")] if argument else []
    if any(not p for p in params):
        raise ScpiError(-102)
    query = header.endswith("?")
    header = header.removesuffix("?")
    if header.startswith(":*"):
        header = header[1:]  # ':*CLS' is sent by some clients; treat it as '*CLS'
    if header.startswith("*"):
        return MessageUnit((header.upper(),), query, params, True, path)
    tokens = tuple(header.removeprefix(":").split(":"))
    if any(_MNEMONIC.match(token) is None for token in tokens):
        raise ScpiError(-102)
    full = tokens if header.startswith(":") else path + tokens
    return MessageUnit(full, query, params, False, full[:-1])


# -- header patterns -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One node of a header pattern."""

    short: str
    long: str
    optional: bool
    suffix_one: bool  # the manual's "[1]": a numeric suffix of 1 is allowed

    def accepts(self, token: str) -> bool:
        match = _MNEMONIC.match(token)
        if match is None:
            return False
        name, suffix = match.group(1).upper(), match.group(2)
        if suffix and not (self.suffix_one and suffix == "1"):
            return False
        return name in (self.short, self.long)


_PATTERN_NODE = re.compile(r"(\[)?:([A-Za-z]+)(\[1\])?(\])?")


def mnemonic_forms(mnemonic: str) -> tuple[str, str]:
    """The manual writes mnemonics with the short form in capitals: 'CURRent' -> ('CURR', 'CURRENT')."""
    short = "".join(ch for ch in mnemonic if ch.isupper() or ch.isdigit())
    return short, mnemonic.upper()


def compile_header(pattern: str) -> tuple[Node, ...]:
    """':SOURce[1]:CURRent[:LEVel]' -> its nodes."""
    nodes = []
    position = 0
    while position < len(pattern):
        match = _PATTERN_NODE.match(pattern, position)
        if match is None:
            raise ValueError(f"bad header pattern {pattern!r}")
        short, long = mnemonic_forms(match.group(2))
        nodes.append(Node(short, long, match.group(1) is not None, match.group(3) is not None))
        position = match.end()
    return tuple(nodes)


def header_matches(nodes: tuple[Node, ...], tokens: tuple[str, ...]) -> bool:
    """Whether the mnemonics `tokens` spell the compiled pattern `nodes`, optional nodes given or left out."""
    if not nodes:
        return not tokens
    head, rest = nodes[0], nodes[1:]
    if tokens and head.accepts(tokens[0]) and header_matches(rest, tokens[1:]):
        return True
    return head.optional and header_matches(rest, tokens)


# -- parameters ------------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)[ \t]*([A-Za-z]*)\Z")
_MULTIPLIERS = {"": 1.0, "EX": 1e18, "PE": 1e15, "T": 1e12, "G": 1e9, "MA": 1e6, "K": 1e3, "M": 1e-3, "U": 1e-6}
_MULTIPLIERS |= {"N": 1e-9, "P": 1e-12, "F": 1e-15}


def one_param(params: list[str]) -> str:
    """The single parameter a command takes: -109 if there is none, -108 if there are more."""
    if not params:
        raise ScpiError(-109)
    if len(params) > 1:
        raise ScpiError(-108)
    return params[0]


def no_params(params: list[str]) -> None:
    if params:
        raise ScpiError(-108)


def keyword(text: str, *mnemonics: str) -> str | None:
    """The short form of the mnemonic `text` spells (long or short, any case), or None."""
    upper = text.upper()
    for mnemonic in mnemonics:
        short, long = mnemonic_forms(mnemonic)
        if upper in (short, long):
            return short
    return None


def number(text: str, unit: str = "") -> float:
    """<NRf> with an optional suffix (IEEE 488.2 7.7.3): '1e-3', '1 mA' and '1MA' (milliamp) for unit 'A'."""
    match = _NUMBER.match(text)
    if match is None:
        raise ScpiError(-104 if text[:1].isalpha() or text[:1] in "'\"" else -120)
    value = float(match.group(1))
    suffix = match.group(2).upper()
    if suffix:
        multiplier = None
        if unit and suffix.endswith(unit):
            prefix = suffix[: -len(unit)]
            multiplier = 1e6 if (unit == "OHM" and prefix == "M") else _MULTIPLIERS.get(prefix)
        if multiplier is None:
            raise ScpiError(-131)
        value *= multiplier
    if not math.isfinite(value):
        raise ScpiError(-222)
    return value


def numeric_value(text: str, unit: str, minimum: float, maximum: float, default: float) -> float:
    """<numeric value>: a `number`, or MINimum, MAXimum or DEFault standing for the values given."""
    word = keyword(text, "MINimum", "MAXimum", "DEFault")
    if word is None:
        return number(text, unit)
    return {"MIN": minimum, "MAX": maximum, "DEF": default}[word]


def numeric_query(params: list[str], present: float, minimum: float, maximum: float, default: float) -> float:
    """For a numeric query: `present`, or the value asked for by 'SOUR:CURR? MAX' and the like."""
    if not params:
        return present
    word = choice(one_param(params), "MINimum", "MAXimum", "DEFault")
    return {"MIN": minimum, "MAX": maximum, "DEF": default}[word]


def boolean(text: str) -> bool:
    """<Boolean program data>: ON, OFF or a number (non-zero once rounded is true)."""
    word = keyword(text, "ON", "OFF")
    if word is not None:
        return word == "ON"
    if text[:1].isalpha():
        raise ScpiError(-224)
    return round(number(text)) != 0


def choice(text: str, *mnemonics: str) -> str:
    """<CHARACTER PROGRAM DATA> that must be one of `mnemonics`: the short form of the one given."""
    word = keyword(text, *mnemonics)
    if word is None:
        raise ScpiError(-224 if text[:1].isalpha() else -104)
    return word


def string(text: str) -> str:
    """<STRING PROGRAM DATA>; bare words are accepted too, as lenient clients send them."""
    if len(text) >= 2 and text[0] in "'\"" and text[-1] == text[0]:
        inner = text[1:-1]
        doubled = text[0] * 2
        if text[0] in inner.replace(doubled, ""):
            raise ScpiError(-151)
        return inner.replace(doubled, text[0])
    if "'" in text or '"' in text:
        raise ScpiError(-151)
    return text


def nr3(value: float) -> str:
    """<NR3 NUMERIC RESPONSE DATA> as the 2400 formats it: '+1.000000E-03'."""
    return f"{value:+.6E}"

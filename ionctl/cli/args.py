"""What the commands' parsers share: argparse types for numbers, and reading the supervisor PIN."""

from __future__ import annotations

import argparse
import getpass
import math
import sys
from typing import TextIO

__all__ = ["PinUnavailable", "finite", "non_negative", "positive", "read_pin"]


class PinUnavailable(Exception):
    """Nobody can be asked for the supervisor PIN (no terminal, no line given)."""


def finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive(text: str) -> float:
    value = finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def non_negative(text: str) -> float:
    value = finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or a positive number, got {text!r}")
    return value


def read_pin(prompt: str, *, from_stdin: bool, stdin: TextIO | None = None) -> str:
    """One PIN: a line of stdin with `--pin-stdin`, else asked at the terminal without echo."""
    stdin = stdin or sys.stdin
    if from_stdin:
        line = stdin.readline()
        if not line:
            raise PinUnavailable(f"{prompt}: no line on stdin")
        return line.rstrip("\r\n")
    if not stdin.isatty():
        raise PinUnavailable("stdin is not a terminal, so nobody can be asked for the PIN; pass --pin-stdin")
    return getpass.getpass(f"{prompt}: ")

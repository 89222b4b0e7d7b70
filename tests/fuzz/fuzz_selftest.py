"""A fuzz target with a planted bug, to show that the runner sees a crash: `IndexError` on input starting `!`."""

from __future__ import annotations

import sys

try:
    import atheris
except ImportError:
    atheris = None


def test_one_input(data: bytes) -> None:
    if data[:1] == b"!":
        raise IndexError("planted bug")


def seeds() -> list[bytes]:
    return [b"ok", b"!"]


if __name__ == "__main__":
    if atheris is None:
        raise SystemExit("atheris is not installed")
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()

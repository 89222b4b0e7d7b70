"""What a typed identifier may hold: printable text. Patient and operator IDs, drug, course and preset names end up
in records, listings, PDFs and exports; a newline, a tab, a terminal escape sequence (ESC [ ...), another C0 or C1
control, an invisible format character (zero-width space, bidirectional overrides) or a line/paragraph separator
in one would forge or hide rows in `ionctl records list` and on the chart.

`identifier_problem` says why a value is refused (naming the field and the character as an escape);
`check_identifier` raises it as a `PrescriptionError`; `escape_controls` shows older stored text safely.
Unicode general categories refused: Cc (controls), Cf (format), Cs (lone surrogates, which arrive from
undecodable command-line bytes), Zl and Zp (line and paragraph separators).
"""

from __future__ import annotations

import unicodedata

from ionctl.safety.errors import PrescriptionError

REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _refused(char: str) -> bool:
    return unicodedata.category(char) in REFUSED_CATEGORIES


def _escape(char: str) -> str:
    """'\\n', '\\t', '\\x1b', '\\u200b': the character as Python writes it in a string literal."""
    return repr(char)[1:-1]


def identifier_problem(field: str, value: str) -> str | None:
    """Why `value` cannot be the identifier `field`, naming the first character refused; None if it can."""
    for index, char in enumerate(value):
        if _refused(char):
            name = unicodedata.name(char, "")
            what = f"U+{ord(char):04X}" + (f" {name}" if name else "")
            return (f"{field} contains the character '{_escape(char)}' ({what}) at position {index + 1}: "
                    "identifiers may hold printable characters only, no control or invisible format characters, "
                    "tabs or line breaks")  # fmt: skip
    return None


def check_identifier(field: str, value: str) -> None:
    """Raise `PrescriptionError` if `value` holds a character an identifier may not (see the module)."""
    problem = identifier_problem(field, value)
    if problem is not None:
        raise PrescriptionError(problem)


def escape_controls(text: str) -> str:
    """`text` with every refused character written as its escape, for showing text stored before the check."""
    if not any(_refused(char) for char in text):
        return text
    return "".join(_escape(char) if _refused(char) else char for char in text)

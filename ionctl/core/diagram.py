"""Write the session state diagram, drawn by `transitions` from the session's own table, into a document.

    python -m ionctl.core.diagram docs/SESSION.md

replaces what stands between `<!-- session-diagram:begin -->` and `<!-- session-diagram:end -->` with a
mermaid block; tests/test_docs.py fails when the document and the machine disagree.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ionctl.core.vocabulary import ExitCode

BEGIN, END = "<!-- session-diagram:begin -->", "<!-- session-diagram:end -->"


def block() -> str:
    from ionctl.core.session import mermaid

    return f"{BEGIN}\n```mermaid\n{mermaid().strip()}\n```\n{END}"


def render(document: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(document):
        raise ValueError(f"no {BEGIN} ... {END} markers in the document")
    return pattern.sub(lambda _: block(), document)


def main(argv: list[str]) -> ExitCode:
    if len(argv) != 1:
        print("usage: python -m ionctl.core.diagram DOCUMENT.md", file=sys.stderr)
        return ExitCode.REFUSED
    path = Path(argv[0])
    path.write_text(render(path.read_text(encoding="utf-8")), encoding="utf-8")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

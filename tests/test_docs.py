"""Documents generated from the code stay in step with it."""

from __future__ import annotations

from pathlib import Path

from ionctl.core.diagram import block, render
from ionctl.core.session import STATES, TRANSITIONS

ROOT = Path(__file__).resolve().parents[1]


def test_the_session_diagram_in_the_docs_is_the_machines_own() -> None:
    document = (ROOT / "docs" / "SESSION.md").read_text(encoding="utf-8")
    assert render(document) == document, "regenerate: python -m ionctl.core.diagram docs/SESSION.md"


def test_the_diagram_shows_every_state_and_trigger() -> None:
    diagram = block()
    for state in STATES:
        assert f'state "{state}"' in diagram
    for transition in TRANSITIONS:
        assert f": {transition['trigger']}" in diagram

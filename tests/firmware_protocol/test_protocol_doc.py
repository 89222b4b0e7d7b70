"""PROTOCOL.md is normative: its tables must say exactly what the codec does."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from firmware_protocol import REGISTRY, Direction, Fault, Result, State

DOC = resources.files("firmware_protocol").joinpath("PROTOCOL.md").read_text(encoding="utf-8")


def table_rows(first_cell: str) -> list[list[str]]:
    """Rows of markdown tables whose first cell matches the regex `first_cell`."""
    rows = []
    for line in DOC.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if re.fullmatch(first_cell, cells[0]):
                rows.append(cells)
    return rows


def test_message_tables_match_the_codec_layouts() -> None:
    rows = {int(r[0], 16): r for r in table_rows(r"0x[0-9A-F]{2}") if len(r) == 4}
    assert set(rows) == set(REGISTRY)
    for msg_id, (_, name, payload, size) in rows.items():
        cls = REGISTRY[msg_id]
        layout = " ".join(f"{n}:{w}" for n, w in cls.LAYOUT) or "—"
        assert (name, payload, int(size)) == (cls.NAME, layout, cls.STRUCT.size), name


def test_message_tables_are_split_by_direction() -> None:
    host = DOC.index("### 5.1 Host → device")
    device = DOC.index("### 5.2 Device → host")
    for cls in REGISTRY.values():
        where = DOC.index(f"| 0x{cls.MSG_ID:02X} | {cls.NAME} |")
        assert (host < where < device) == (cls.DIRECTION is Direction.HOST), cls.NAME


@pytest.mark.parametrize(("enum_cls", "pattern"), [(Fault, r"\d+"), (Result, r"\d+"), (State, r"\d+")])
def test_enum_tables_match_the_codec(enum_cls: type, pattern: str) -> None:
    documented = {}
    for row in table_rows(pattern):
        name = row[1].strip("`")
        if name in enum_cls.__members__:
            documented[name] = int(row[0])
    assert documented == {m.name: int(m.value) for m in enum_cls}


def test_every_host_command_has_a_row_in_the_legality_table() -> None:
    start = DOC.index("### 6.3")
    table = DOC[start : DOC.index("## 7.", start)]
    named = set()
    for row in re.findall(r"^\| ([A-Z_, ]+) \|", table, flags=re.M):
        named |= {name.strip() for name in row.split(",")}
    host_commands = {cls.NAME for cls in REGISTRY.values() if cls.DIRECTION is Direction.HOST}
    assert host_commands <= named

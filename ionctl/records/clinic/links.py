"""A bench store's chain as the clinic store receives it: its links after a point, in order, each with its
canonical content exactly as hashed, and a closed record's telemetry as the lines its closing hashed.

Reads the bench's SQLite store only (`ionctl.records.chain` defines what each link hashes); knows nothing of
PostgreSQL.
"""

from __future__ import annotations

import json
import operator
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ionctl.records.chain import (
    AUDIT_FIELDS,
    COURSE_FIELDS,
    EVENT_FIELDS,
    TELEMETRY_FIELDS,
    canonical,
    closing,
    opening,
)


@dataclass(frozen=True)
class Link:
    """One link of a bench's chain: its place, kind, canonical content (what was hashed) and stored hash.
    `record_id` is the record a closing closes (its telemetry travels with it)."""

    gseq: int
    kind: str  # open, close, event, audit, course
    content: str
    hash: str
    record_id: int | None = None


def links_after(db: sqlite3.Connection, after: int, limit: int) -> list[Link]:
    """Up to `limit` links with gseq > `after`, in gseq order (one indexed range query per table)."""
    found: list[Link] = []
    for row in db.execute("SELECT * FROM records WHERE open_gseq > ? ORDER BY open_gseq LIMIT ?", (after, limit)):
        r = dict(row)
        found.append(Link(r["open_gseq"], "open", canonical(opening(r)), r["open_hash"]))
    for row in db.execute("SELECT * FROM records WHERE close_gseq > ? ORDER BY close_gseq LIMIT ?", (after, limit)):
        r = dict(row)
        found.append(Link(r["close_gseq"], "close", canonical(closing(r)), r["chain_hash"], int(r["id"])))
    for table, kind, fields in (("events", "event", EVENT_FIELDS), ("audit", "audit", AUDIT_FIELDS),
                                ("courses", "course", COURSE_FIELDS)):  # fmt: skip
        for row in db.execute(f"SELECT * FROM {table} WHERE gseq > ? ORDER BY gseq LIMIT ?", (after, limit)):
            r = dict(row)
            found.append(Link(r["gseq"], kind, canonical({k: r[k] for k in fields}), r["chain_hash"]))
    found.sort(key=lambda link: link.gseq)
    return found[:limit]


def link_at(db: sqlite3.Connection, gseq: int) -> Link | None:
    """The link at `gseq`, or None."""
    found = links_after(db, gseq - 1, 1)
    return found[0] if found and found[0].gseq == gseq else None


#: The telemetry's keys in canonical (sorted) order.
_SORTED = tuple(sorted(TELEMETRY_FIELDS))

#: A template per row shape (the type of each value): printf-style, with `null` written in and each kept value's
#: conversion (%r is repr, json's form of a float; %d an int's; %s a string already in its JSON form). None: a
#: shape with a value of another kind, which `canonical` writes.
_Template = tuple[str, Callable[[Sequence[Any]], Any], tuple[int, ...]] | None


def _template(shape: tuple[type, ...]) -> _Template:
    parts: list[str] = []
    kept: list[int] = []
    strings: list[int] = []
    for i, (key, kind) in enumerate(zip(_SORTED, shape, strict=True)):
        name = json.dumps(key).replace("%", "%%")
        if kind is type(None):
            parts.append(f"{name}:null")
            continue
        if kind is str:
            strings.append(len(kept))
        conversion = {float: "%r", int: "%d", str: "%s"}.get(kind)
        if conversion is None:
            return None
        parts.append(f"{name}:{conversion}")
        kept.append(i)
    pick: Callable[[Sequence[Any]], Any]
    if len(kept) > 1:
        pick = operator.itemgetter(*kept)
    else:
        only = kept[0] if kept else None
        pick = (lambda row: ()) if only is None else (lambda row: (row[only],))
    return "{" + ",".join(parts) + "}", pick, tuple(strings)


def telemetry_lines(db: sqlite3.Connection, record_id: int) -> Iterator[str]:
    """A record's samples in the order its closing hashed them, each its canonical line (no newline): exactly
    `canonical(sample)`, written from a template per row shape instead of a dict per sample (this is the sync's
    cost per sample on the bench; tests/clinic/test_links.py holds the two equal). A line that would hold a
    non-finite number (which `canonical` refuses) is left to `canonical`."""
    templates: dict[tuple[type, ...], _Template] = {}
    texts: dict[str, str] = {}
    query = f"SELECT {', '.join(_SORTED)} FROM telemetry WHERE record_id = ? ORDER BY rowid"
    cursor = db.cursor()
    cursor.row_factory = None  # plain tuples, whatever the connection's factory
    for row in cursor.execute(query, (record_id,)):
        shape = tuple(map(type, row))
        template = templates.get(shape, _MISSING)
        if template is _MISSING:
            template = templates[shape] = _template(shape)
        if template is None:
            yield canonical(dict(zip(_SORTED, row, strict=True)))
            continue
        fmt, pick, strings = template
        values = pick(row)
        if strings:
            values = list(values)
            for i in strings:
                text = texts.get(values[i])
                if text is None:
                    text = texts[values[i]] = json.dumps(values[i], ensure_ascii=False)
                values[i] = text
            values = tuple(values)
        line = fmt % values
        if "inf" in line or "nan" in line:  # perhaps a non-finite float (or only a word): canonical decides
            line = canonical(dict(zip(_SORTED, row, strict=True)))
        yield line


_MISSING: Any = object()


def sample(line: str) -> dict[str, Any]:
    """A telemetry line back as the sample it was."""
    return dict(json.loads(line))

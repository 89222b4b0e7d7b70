"""Reading the clinic store: every bench's records, with what this bench has not sent yet.

Records are named clinic-wide `BENCH/ID` (`bench-a/12`); a plain `12` is this bench's own record 12
(`parse_record_name`). The clinic store holds each bench's chain as a prefix of the bench's own store (the sync
sends links in order: `ionctl.records.clinic.sync`), so this bench's records whose opening or closing lies past
the clinic's head for the bench are read from the bench's own store, marked "not yet in the clinic store"
(`merged_rows`); every other bench's records come from the clinic.

`list_rows` asks the clinic with one query over `links` (an opening joined with its closing); a record itself
(its events, telemetry and addenda) is read by replaying its bench's chain (`ionctl.records.clinic.replay`).
Reads only: the bench role's SELECT, or the reader role's. psycopg is imported when a connection is made.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from ionctl.records.chain import GENESIS
from ionctl.records.clinic.schema import SCHEMA, ClinicError, parse_clinic_name
from ionctl.records.clinic.sync import ClinicUnreachable, connect
from ionctl.records.rows import RecordRow

#: What a listing's row says of a record of this bench the clinic does not have in full.
NOT_SENT = "not yet in the clinic store"


def parse_record_name(text: str) -> tuple[str | None, int]:
    """`bench-a/12` -> ("bench-a", 12); `12` -> (None, 12): this bench's. ValueError naming the text otherwise."""
    return parse_clinic_name(text, "record")


@dataclass(frozen=True)
class ListedRecord:
    """A listing's row: the bench, the record as a store returns it, and where it was read ("clinic", or
    "local": this bench's store, for a record the clinic does not have in full)."""

    bench: str
    row: RecordRow
    source: str = "clinic"

    @property
    def name(self) -> str:
        return f"{self.bench}/{self.row['id']}"

    def to_dict(self) -> dict[str, Any]:
        return {"bench": self.bench, "name": self.name, "read_from": self.source, **self.row}


class ClinicReader:
    """A read-only view of the clinic store over one connection (`ClinicReader.open`; close it, or use `with`)."""

    def __init__(self, connection: Any, conninfo: str) -> None:
        self.connection = connection
        self.conninfo = conninfo

    @classmethod
    def open(cls, conninfo: str, *, timeout_s: float) -> ClinicReader:
        """Connect (waiting at most `timeout_s`); ClinicUnreachable if the server cannot be reached."""
        return cls(connect(conninfo, timeout_s=timeout_s), conninfo)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> ClinicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Turn a server lost in the middle of a read into ClinicUnreachable (the caller falls back), and any
        other refusal (no clinic schema there, a role without SELECT) into ClinicError naming it."""
        import psycopg

        try:
            yield
        except psycopg.OperationalError as exc:
            raise ClinicUnreachable(f"the clinic store went away: {_first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise ClinicError(f"the clinic store {self.conninfo} cannot be read: {_first_line(exc)} (is it set "
                              "up with `ionctl clinic init`, and may this login read it?)") from exc  # fmt: skip

    def benches(self) -> list[str]:
        """Every bench the clinic store knows, by name."""
        with self.reading():
            rows = self.connection.execute(f"SELECT bench FROM {SCHEMA}.stores ORDER BY bench").fetchall()
        return [str(r[0]) for r in rows]

    def heads(self) -> dict[str, tuple[int, str]]:
        """Each bench's last link in the clinic store: (gseq, hash); (0, GENESIS) for a bench with none."""
        with self.reading():
            rows = self.connection.execute(
                f"SELECT b.bench, l.gseq, l.hash FROM {SCHEMA}.stores b LEFT JOIN LATERAL (SELECT gseq, hash "
                f"FROM {SCHEMA}.links WHERE bench = b.bench ORDER BY gseq DESC LIMIT 1) l ON true ORDER BY b.bench"
            ).fetchall()
        return {str(b): (0, GENESIS) if g is None else (int(g), str(h)) for b, g, h in rows}

    def first_link(self, bench: str) -> str | None:
        """The identity the clinic holds for `bench` (its store's first link), or None: no such bench."""
        with self.reading():
            row = self.connection.execute(f"SELECT first_link FROM {SCHEMA}.stores WHERE bench = %s",
                                          (bench,)).fetchone()  # fmt: skip
        return None if row is None else str(row[0])

    def has_record(self, bench: str, record_id: int) -> bool:
        with self.reading():
            row = self.connection.execute(
                f"SELECT 1 FROM {SCHEMA}.links WHERE bench = %s AND kind = 'open' AND (doc->>'id')::bigint = %s",
                (bench, record_id),
            ).fetchone()
        return row is not None

    def list_rows(self, *, patient: str | None = None, since: str | None = None) -> list[ListedRecord]:
        """Every bench's records (no events or telemetry), oldest first: each opening with its closing, if it
        has arrived. `since` is the stored form of a time (UTC ISO 8601, as `created_utc` is written)."""
        sql = (f"SELECT o.bench, o.content, o.hash, c.content, c.hash FROM {SCHEMA}.links o "
               f"LEFT JOIN {SCHEMA}.links c ON c.bench = o.bench AND c.kind = 'close' "
               "AND (c.doc->>'id')::bigint = (o.doc->>'id')::bigint WHERE o.kind = 'open'")  # fmt: skip
        params: list[Any] = []
        if patient is not None:
            sql += " AND o.doc->>'patient' = %s"
            params.append(patient)
        if since is not None:
            sql += " AND o.doc->>'created_utc' >= %s"
            params.append(since)
        sql += " ORDER BY o.doc->>'created_utc', o.bench, (o.doc->>'id')::bigint"
        with self.reading():
            rows = self.connection.execute(sql, params).fetchall()
        return [ListedRecord(str(bench), record_row(opened, open_hash, closed, close_hash))
                for bench, opened, open_hash, closed, close_hash in rows]  # fmt: skip


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def record_row(opening: str, open_hash: str, closing: str | None, chain_hash: str | None) -> RecordRow:
    """A `records` row as the bench's store holds it, from a record's opening and closing links."""
    from ionctl.records.chain import CLOSE_FIELDS

    row: dict[str, Any] = {k: None for k in RecordRow.__annotations__}
    row.update(json.loads(opening))
    row["open_hash"] = open_hash
    if closing is not None:
        closed = json.loads(closing)
        row.update({k: closed.get(k) for k in CLOSE_FIELDS})
        row["chain_hash"] = chain_hash
    return cast(RecordRow, row)


def unsent(db: sqlite3.Connection, head: int) -> list[RecordRow]:
    """This bench's records whose opening or closing lies past the clinic's `head` for the bench: what the
    clinic does not have in full yet (a record still open here with its opening sent is the clinic's too)."""
    rows = db.execute("SELECT * FROM records WHERE open_gseq > ? OR close_gseq > ? ORDER BY id", (head, head))
    return [cast(RecordRow, {k: r[k] for k in r.keys()}) for r in rows]  # noqa: SIM118 - sqlite3.Row


def merged_rows(clinic_rows: Sequence[ListedRecord], local: Sequence[RecordRow], bench: str, *,
                patient: str | None = None, since: str | None = None) -> list[ListedRecord]:  # fmt: skip
    """The clinic's rows with this bench's `local` unsent records (`unsent`) in place of the clinic's copies of
    them, filtered as the clinic's were; oldest first."""
    mine = {int(r["id"]) for r in local}
    kept = [r for r in clinic_rows if not (r.bench == bench and int(r.row["id"]) in mine)]
    for r in local:
        if (patient is None or r["patient"] == patient) and (since is None or r["created_utc"] >= since):
            kept.append(ListedRecord(bench, r, "local"))
    kept.sort(key=lambda r: (r.row["created_utc"], r.bench, int(r.row["id"])))
    return kept


def record_links_after(db: sqlite3.Connection, record_id: int, head: int) -> bool:
    """Whether any link of record `record_id` in this bench's store (its opening, events, closing, addenda and
    sign-offs) lies past the clinic's `head`: then the clinic's copy of it is not complete."""
    row = db.execute(
        "SELECT (SELECT max(open_gseq, coalesce(close_gseq, 0)) FROM records WHERE id = :id), "
        "(SELECT max(gseq) FROM events WHERE record_id = :id), (SELECT max(gseq) FROM audit WHERE record_id = :id)",
        {"id": record_id},
    ).fetchone()
    return any(v is not None and int(v) > head for v in tuple(row))


__all__ = ["NOT_SENT", "ClinicError", "ClinicReader", "ClinicUnreachable", "ListedRecord", "merged_rows",
           "parse_record_name", "record_links_after", "record_row", "unsent"]  # fmt: skip

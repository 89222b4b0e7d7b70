"""A treatment course as the clinic store knows it: its content, and its sessions' records from every bench.

Courses are named clinic-wide `BENCH/ID`: the bench that started the course and its id in that bench's store
("bench-a/3"); a plain `3` is this bench's course 3. A session of course 3 at its own bench names it in its
record's `course_id`; a session at another bench names it in `course_ref` ("bench-a/3", schema 3). The clinic
store keeps each bench's links as the canonical JSON they hashed (`ionctl.records.clinic.schema`), so a record
read back here is its opening's content with its closing's (if it has arrived) merged in: the same keys as the
bench store's record rows, plus `bench`.

`history` is what the course rules (`ionctl.core.courses.evaluate`) see: the clinic's records of the course
from every bench, with this bench's own records of it (which may not have been sent yet) in place of the
clinic's copies of them, so a closing this bench has not sent yet still counts as closed. A record is matched to
its copy by its opening's hash, never by its id alone: two different sessions never merge into one.

`forked` says whether this bench's store is still the store whose chain the clinic holds: a store restored from
an older copy keeps its first link but reuses the ids of the records it lost, so the clinic's rows of this bench
can no longer be matched to this store's. The course rules are then not checkable clinic-wide (`StoreForked`).

`patient_courses` reads a patient's courses from every bench (for a session outside any course, which the
courses of the same preset or drug bind wherever they were started).

Reads only; psycopg is imported when `read` runs (`ionctl --help` stays fast).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ionctl.records.clinic.schema import SCHEMA, ClinicError, parse_clinic_name

_T = TypeVar("_T")

#: A clinic-wide name: a bench name (as `[clinic] bench` allows) and a course or record id.

#: The longest a reading of the clinic store may take (ms) before the server cancels it: a session being
#: prepared never waits long on the network.
STATEMENT_TIMEOUT_MS = 3000


def parse_name(text: str) -> tuple[str | None, int]:
    """("bench-a", 3) for "bench-a/3"; (None, 3) for "3" (this bench's); ValueError for anything else."""
    return parse_clinic_name(text, "course")


def name(bench: str, item_id: int) -> str:
    return f"{bench}/{item_id}"


#: Why the course rules cannot be checked clinic-wide at a bench whose store has forked from the clinic's copy.
FORKED = ("this bench's record store differs from the clinic's copy of it (restored from an older copy?): course "
          "rules cannot be checked; the clinic's database administrator must resolve it")  # fmt: skip


class StoreForked(ClinicError):
    """This bench's store is not the one whose chain the clinic holds for the bench (`forked`)."""


def forked(clinic: Any, db: sqlite3.Connection, bench: str) -> str | None:
    """Why this bench's store (`db`) is not the one the clinic holds `bench`'s chain of, or None if it is: the
    clinic holds more of the chain than the store (a store restored from an older copy), or the two disagree at
    the last link both hold (each link's hash covers every link before it, so equal there is equal up to there)."""
    from ionctl.records.chain import head
    from ionctl.records.clinic.links import link_at
    from ionctl.records.clinic.sync import clinic_head

    local, _ = head(db)
    held, _ = clinic_head(clinic, bench)
    if held > local:
        return f"the clinic holds {held} links of {bench}, this store {local}"
    if held == 0:
        return None
    row = clinic.execute(f"SELECT hash FROM {SCHEMA}.links WHERE bench = %s AND gseq = %s", (bench, held)).fetchone()
    mine = link_at(db, held)
    if row is None or mine is None or mine.hash != str(row[0]):
        return f"link {held} of {bench}: the clinic holds {row[0] if row else None}, this store {mine and mine.hash}"
    return None


def connection_options(timeout_s: float) -> dict[str, Any]:
    """libpq options that bound a read on a connection whose network dies after it connected: TCP keepalives
    probe an idle link within a few seconds, and `tcp_user_timeout` drops one whose sent data goes unacknowledged
    for `timeout_s`, so a read never waits much longer than `timeout_s` (the statement timeout bounds a server that
    answers but is slow)."""
    return {"keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1, "keepalives_count": 2,
            "tcp_user_timeout": max(1000, round(timeout_s * 1000))}  # fmt: skip


def read(conninfo: str, bench: str, course_id: int, *, timeout_s: float, content: bool,
         local: sqlite3.Connection | None = None,
         me: str | None = None) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:  # fmt: skip
    """(the course's content if `content` and the clinic has it, its records from every bench), connecting and
    reading within about `timeout_s` each. ClinicUnreachable (a ClinicError) for any failure to read: the server
    down or too slow, the connection lost, the schema missing. With this bench's store (`local`) and its name
    (`me`), StoreForked if the store has forked from the clinic's copy of it (`forked`)."""

    def reads(db: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        return course(db, bench, course_id) if content else None, course_records(db, bench, course_id)

    return _reading(conninfo, timeout_s, local, me, reads)


def read_patient(conninfo: str, patient: str, *, timeout_s: float, local: sqlite3.Connection | None = None,
                 me: str | None = None) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:  # fmt: skip
    """`patient`'s courses from every bench, each with its records from every bench (`patient_courses`), as
    `read` reads them (the same errors)."""
    return _reading(conninfo, timeout_s, local, me, lambda db: patient_courses(db, patient))


def _reading(conninfo: str, timeout_s: float, local: sqlite3.Connection | None, me: str | None,
             reads: Callable[[Any], _T]) -> _T:  # fmt: skip
    import psycopg

    from ionctl.records.clinic.sync import ClinicUnreachable

    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=max(1, round(timeout_s)),
                             application_name="ionctl courses", **connection_options(timeout_s)) as db:  # fmt: skip
            reading(db, round(timeout_s * 1000))
            why = forked(db, local, me) if local is not None and me is not None else None
            if why is not None:
                raise StoreForked(f"{FORKED} ({why})")
            return reads(db)
    except psycopg.Error as exc:
        text = str(exc).strip()
        raise ClinicUnreachable(f"the clinic store cannot be read: {text.splitlines()[0] if text else exc!r}") from exc


def reading(clinic: Any, timeout_ms: int = STATEMENT_TIMEOUT_MS) -> Any:
    """`clinic` with every statement bounded to `timeout_ms` (a server that answers the connection but hangs)."""
    clinic.execute(f"SET statement_timeout = {int(timeout_ms)}")
    return clinic


def course(clinic: Any, bench: str, course_id: int) -> dict[str, Any] | None:
    """Course `course_id` of `bench` as the bench store's `Store.course` gives it (`plan` decoded), with its
    clinic-wide `name`; None if the clinic store does not have it (not started, or not sent yet)."""
    row = clinic.execute(
        f"SELECT content FROM {SCHEMA}.links WHERE bench = %s AND kind = 'course' AND (doc->>'id')::bigint = %s",
        (bench, course_id),
    ).fetchone()
    return None if row is None else _course(bench, row[0])


def _course(bench: str, text: str) -> dict[str, Any]:
    content: dict[str, Any] = json.loads(text)
    content["plan"] = json.loads(content["plan"]) if isinstance(content.get("plan"), str) else content.get("plan")
    content["bench"], content["name"] = bench, name(bench, int(content["id"]))
    return content


def patient_courses(clinic: Any, patient: str) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Every course of `patient` in the clinic store, from every bench (`course`'s form), each with its records
    from every bench (`course_records`); by bench and id."""
    rows = clinic.execute(
        f"SELECT bench, content FROM {SCHEMA}.links WHERE doc->>'patient' = %s AND kind = 'course' "
        "ORDER BY bench, (doc->>'id')::bigint",
        (patient,),
    ).fetchall()
    found = [_course(str(bench), text) for bench, text in rows]
    return [(c, course_records(clinic, c["bench"], int(c["id"]))) for c in found]


def course_records(clinic: Any, bench: str, course_id: int) -> list[dict[str, Any]]:
    """Every record of course `bench`/`course_id` in the clinic store, from every bench: the course's bench's
    records naming it in `course_id`, and any bench's naming it in `course_ref`. Each is its opening's content
    with its closing's merged in (the outcome and the rest NULL while no closing has arrived), its `open_hash`
    and `chain_hash`, and its `bench`; ordered by bench and id."""
    rows = clinic.execute(
        f"""SELECT o.bench, o.content, o.hash, c.content, c.hash
              FROM {SCHEMA}.links o
              LEFT JOIN {SCHEMA}.links c ON c.bench = o.bench AND c.kind = 'close'
                   AND (c.doc->>'id')::bigint = (o.doc->>'id')::bigint
             WHERE o.kind = 'open'
               AND ((o.bench = %s AND (o.doc->>'course_id')::bigint = %s) OR o.doc->>'course_ref' = %s)
             ORDER BY o.bench, (o.doc->>'id')::bigint""",
        (bench, course_id, name(bench, course_id)),
    ).fetchall()
    return [_record(*row) for row in rows]


def _record(bench: str, opened: str, open_hash: str, closed: str | None, close_hash: str | None) -> dict[str, Any]:
    from ionctl.records.chain import CLOSE_FIELDS, OPEN_FIELDS_LATER

    record: dict[str, Any] = {k: None for k in (*OPEN_FIELDS_LATER, *CLOSE_FIELDS)}
    record.update(json.loads(opened))
    record["open_hash"], record["chain_hash"] = open_hash, close_hash
    if closed is not None:
        record.update({k: v for k, v in json.loads(closed).items() if k not in ("id", "open_hash")})
    record["bench"] = bench
    return record


def history(clinic_rows: Iterable[Mapping[str, Any]], local_rows: Iterable[Mapping[str, Any]],
            bench: str) -> list[dict[str, Any]]:  # fmt: skip
    """The course's records for its rules: the clinic's (`course_records`) with this bench's own (`local_rows`,
    named `bench` here) in place of the clinic's copies of the same records, and added where the clinic has none
    yet. This bench's store is the truth about its own records and never older than the clinic's copy. A copy is
    the same record when its opening's hash is (a record's id alone is not: a store restored from an older copy
    gives a new session the id of one it lost, which `forked` refuses before this is reached)."""
    merged: dict[str, dict[str, Any]] = {}
    for row in clinic_rows:
        merged[str(row["open_hash"])] = dict(row)
    for row in local_rows:
        merged[str(row["open_hash"])] = {**dict(row), "bench": bench}
    return sorted(merged.values(), key=lambda r: (str(r["bench"]), int(r["id"]), str(r["open_hash"])))

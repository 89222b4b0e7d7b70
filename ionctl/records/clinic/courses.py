"""A treatment course as the clinic store knows it: its content, and its sessions' records from every bench.

Courses are named clinic-wide `BENCH/ID`: the bench that started the course and its id in that bench's store
("bench-a/3"); a plain `3` is this bench's course 3. A session of course 3 at its own bench names it in its
record's `course_id`; a session at another bench names it in `course_ref` ("bench-a/3", schema 3). The clinic
store keeps each bench's links as the canonical JSON they hashed (`ionctl.records.clinic.schema`), so a record
read back here is its opening's content with its closing's (if it has arrived) merged in: the same keys as the
bench store's record rows, plus `bench`.

`history` is what the course rules (`ionctl.core.courses.evaluate`) see: the clinic's records of the course
from every bench, with this bench's own records of it (which may not have been sent yet) in place of the
clinic's copies of them, so a closing this bench has not sent yet still counts as closed.

Reads only; psycopg is imported when `read` runs (`ionctl --help` stays fast).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ionctl.records.clinic.schema import SCHEMA

#: A clinic-wide name: a bench name (as `[clinic] bench` allows) and a course or record id.
NAME = re.compile(r"([a-z0-9][a-z0-9._-]{0,62})/([1-9][0-9]*)")

#: The longest a reading of the clinic store may take (ms) before the server cancels it: a session being
#: prepared never waits long on the network.
STATEMENT_TIMEOUT_MS = 3000


def parse_name(text: str) -> tuple[str | None, int]:
    """("bench-a", 3) for "bench-a/3"; (None, 3) for "3" (this bench's); ValueError for anything else."""
    text = text.strip()
    if text.isdigit() and int(text) >= 1:
        return None, int(text)
    found = NAME.fullmatch(text)
    if found is None:
        raise ValueError(f"expected ID or BENCH/ID (e.g. 3 or bench-a/3), got {text!r}")
    return found.group(1), int(found.group(2))


def name(bench: str, item_id: int) -> str:
    return f"{bench}/{item_id}"


def read(conninfo: str, bench: str, course_id: int, *, timeout_s: float,
         content: bool) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:  # fmt: skip
    """(the course's content if `content` and the clinic has it, its records from every bench), connecting and
    reading within about `timeout_s` each. ClinicUnreachable (a ClinicError) for any failure to read: the server
    down or too slow, the connection lost, the schema missing."""
    import psycopg

    from ionctl.records.clinic.sync import ClinicUnreachable, connect

    try:
        with connect(conninfo, timeout_s=timeout_s) as db:
            reading(db, round(timeout_s * 1000))
            found = course(db, bench, course_id) if content else None
            return found, course_records(db, bench, course_id)
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
    if row is None:
        return None
    content: dict[str, Any] = json.loads(row[0])
    content["plan"] = json.loads(content["plan"]) if isinstance(content.get("plan"), str) else content.get("plan")
    content["bench"], content["name"] = bench, name(bench, course_id)
    return content


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
    from ionctl.records.chain import CLOSE_FIELDS, OPEN_FIELDS_V2, OPEN_FIELDS_V3

    record: dict[str, Any] = {k: None for k in (*OPEN_FIELDS_V2, *OPEN_FIELDS_V3, *CLOSE_FIELDS)}
    record.update(json.loads(opened))
    record["open_hash"], record["chain_hash"] = open_hash, close_hash
    if closed is not None:
        record.update({k: v for k, v in json.loads(closed).items() if k not in ("id", "open_hash")})
    record["bench"] = bench
    return record


def history(clinic_rows: Iterable[Mapping[str, Any]], local_rows: Iterable[Mapping[str, Any]],
            bench: str) -> list[dict[str, Any]]:  # fmt: skip
    """The course's records for its rules: the clinic's (`course_records`) with this bench's own (`local_rows`,
    named `bench` here) in place of the clinic's copies of the same (bench, id), and added where the clinic has
    none yet. This bench's store is the truth about its own records and never older than the clinic's copy."""
    merged: dict[tuple[str, int], dict[str, Any]] = {}
    for row in clinic_rows:
        merged[(str(row["bench"]), int(row["id"]))] = dict(row)
    for row in local_rows:
        merged[(bench, int(row["id"]))] = {**dict(row), "bench": bench}
    return [merged[key] for key in sorted(merged)]

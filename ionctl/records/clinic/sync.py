"""Push a bench's chain to the clinic store: idempotent, resumable, verified on both sides.

Each round is one transaction on the server: take the bench's lock, read how far the clinic has the bench's
chain, check that link against this store (the same number with different content is a conflict, never an
overwrite), verify the next links here, and send them: a closing's telemetry first (COPY), then the closing, which
the server re-verifies against that telemetry. A sync killed at any instant leaves the server at the end of its
last committed round; the next one starts from there, so nothing is lost and nothing is sent twice.

Never called from a running session: `ionctl run` and the console start it in a process of its own after a
record closes (`spawn`), and `ionctl records sync [--watch]` catches up after an outage.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ionctl.records.chain import GENESIS, first_link, link_hash
from ionctl.records.clinic.links import Link, link_at, links_after, telemetry_lines
from ionctl.records.clinic.schema import SCHEMA, ClinicError

#: Links per round (one server transaction): a round is short enough that a kill loses little work, long enough
#: that a backlog moves at COPY speed.
BATCH = 500


class ClinicUnreachable(ClinicError):
    """The clinic server could not be reached, or went away during a round (nothing of that round is kept)."""


class SyncConflict(ClinicError):
    """The clinic holds different content under a number this bench has used: reported, never overwritten."""


class NotSetUp(ClinicError):
    """The clinic store is reachable but this bench cannot use it: no schema there yet, or a login not granted
    the bench role. Fixed by the clinic's database administrator, not by retrying."""


class LinkRefused(ClinicError):
    """A link did not verify (here, or on the server): reported, never stored."""


@dataclass
class Pushed:
    """What one `push` sent: links and samples in, rounds committed, and the clinic's head for the bench."""

    bench: str
    links: int = 0
    samples: int = 0
    closings: int = 0
    rounds: int = 0
    head: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


#: How long a sync waits for the bench's lock on the server, and for any one statement (a big closing's COPY
#: included): a lock somebody holds forever, or a server that stops answering, ends the round as unreachable
#: instead of hanging the sync (and each detached sync started after it) for ever.
LOCK_TIMEOUT_S = 10
STATEMENT_TIMEOUT_S = 120


def connect(conninfo: str, *, timeout_s: float = 5.0) -> Any:
    """A psycopg connection to the clinic store (autocommit; each round opens its own transaction). The
    credentials are libpq's: a service file or `PGPASSFILE`. TCP keepalives and a user timeout end a connection
    whose network has gone; lock and statement timeouts bound each wait on the server. ClinicUnreachable if the
    server cannot be reached."""
    import psycopg

    wait = max(1, round(timeout_s))
    try:
        clinic = psycopg.connect(conninfo, autocommit=True, connect_timeout=wait, application_name="ionctl sync",
                                 keepalives=1, keepalives_idle=max(1, wait // 2), keepalives_interval=1,
                                 keepalives_count=3, tcp_user_timeout=wait * 1000 * 3)  # fmt: skip
        clinic.execute(f"SET lock_timeout = '{LOCK_TIMEOUT_S}s'")
        clinic.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT_S}s'")
        return clinic
    except psycopg.errors.UndefinedTable as exc:
        raise NotSetUp("the clinic store has no ionctl schema: the clinic's database administrator runs "
                       "`ionctl clinic init` once") from exc  # fmt: skip
    except psycopg.errors.InsufficientPrivilege as exc:
        raise NotSetUp(f"the clinic store refused this login: {_first_line(exc)} (the database administrator "
                       "binds it to this bench: `ionctl clinic add-bench CONNINFO BENCH=LOGIN`)") from exc  # fmt: skip
    except psycopg.OperationalError as exc:
        raise ClinicUnreachable(f"the clinic store cannot be reached: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def register(clinic: Any, db: sqlite3.Connection, bench: str) -> bool:
    """Make sure the clinic knows this store as `bench`'s (its first link's hash). False: the store is empty
    (nothing to send yet). NotSetUp if the database administrator has not bound `bench` to this login;
    SyncConflict if the bench sends another store, or this store is already another bench's."""
    first = first_link(db)
    if first is None:
        return False
    with clinic.transaction():
        bound = clinic.execute(f"SELECT login = session_user, login FROM {SCHEMA}.benches WHERE bench = %s",
                               (bench,)).fetchone()  # fmt: skip
        if bound is None or not bound[0]:
            whose = "no login" if bound is None else f"login {bound[1]}"
            raise NotSetUp(f"bench {bench!r} is bound to {whose} in the clinic store, not to this one: the clinic's "
                           f"database administrator runs `ionctl clinic add-bench CONNINFO {bench}=LOGIN`")  # fmt: skip
        clinic.execute(f"INSERT INTO {SCHEMA}.stores (bench, first_link) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                       (bench, first))  # fmt: skip
        row = clinic.execute(f"SELECT first_link FROM {SCHEMA}.stores WHERE bench = %s", (bench,)).fetchone()
        other = clinic.execute(f"SELECT bench FROM {SCHEMA}.stores WHERE first_link = %s", (first,)).fetchone()
    if row is None:
        raise SyncConflict(f"this store is already in the clinic store as bench {other[0]!r}, not {bench!r}")
    if row[0] != first:
        _alarm(clinic, bench, None, "bench name taken",
               f"bench {bench!r} is another store (its first link {row[0]}); this store's is {first}")  # fmt: skip
        raise SyncConflict(f"bench {bench!r} in the clinic store is another store: name this bench otherwise "
                           "([clinic] bench in the site file)")  # fmt: skip
    return True


def _alarm(clinic: Any, bench: str, gseq: int | None, what: str, detail: str) -> None:
    """Record a conflict where the clinic's administrator sees it (its own transaction: it outlives the round)."""
    try:
        with clinic.transaction():
            seen = clinic.execute(
                f"SELECT 1 FROM {SCHEMA}.conflicts WHERE bench = %s AND gseq IS NOT DISTINCT FROM %s AND what = %s "
                "AND detail = %s", (bench, gseq, what, detail)).fetchone()  # fmt: skip
            if seen is None:  # once: each retry of the same sync finds the same conflict
                clinic.execute(f"INSERT INTO {SCHEMA}.conflicts (bench, gseq, what, detail) VALUES (%s, %s, %s, %s)",
                               (bench, gseq, what, detail))  # fmt: skip
    except Exception:  # noqa: BLE001 - the alarm is best effort; the SyncConflict raised after it is not
        pass


def clinic_head(clinic: Any, bench: str) -> tuple[int, str]:
    """(gseq, hash) of the bench's last link in the clinic store; (0, GENESIS) for none."""
    row = clinic.execute(f"SELECT gseq, hash FROM {SCHEMA}.links WHERE bench = %s ORDER BY gseq DESC LIMIT 1",
                         (bench,)).fetchone()  # fmt: skip
    return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))


def push(db: sqlite3.Connection, clinic: Any, bench: str, *, batch: int = BATCH,
         progress: Callable[[Pushed], None] | None = None) -> Pushed:  # fmt: skip
    """Send every link of `db` the clinic does not have yet, in rounds of up to `batch` links. Returns what was
    sent. ClinicUnreachable (the server went away: what was committed stays), SyncConflict, LinkRefused."""
    import psycopg

    pushed = Pushed(bench)
    try:
        if not register(clinic, db, bench):
            return pushed
        while True:
            with clinic.transaction(), _snapshot(db):
                clinic.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"ionctl bench {bench}",))
                gseq, previous = clinic_head(clinic, bench)
                pushed.head = gseq
                if gseq > 0:
                    mine = link_at(db, gseq)
                    if mine is None or mine.hash != previous:
                        detail = (f"link {gseq}: the clinic holds hash {previous}, this store "
                                  f"{'has no such link' if mine is None else 'holds ' + mine.hash}")  # fmt: skip
                        raise _Conflict(gseq, detail)
                links = links_after(db, gseq, batch)
                if not links:
                    break
                _verify_here(bench, previous, gseq, links)
                sent = Pushed(bench)
                _send(clinic, db, bench, links, sent)
            pushed.links += sent.links
            pushed.samples += sent.samples
            pushed.closings += sent.closings
            for kind, count in sent.kinds.items():
                pushed.kinds[kind] = pushed.kinds.get(kind, 0) + count
            pushed.rounds += 1
            pushed.head = links[-1].gseq
            if progress is not None:
                progress(pushed)
    except _Conflict as exc:
        _alarm(clinic, bench, exc.gseq, "different content under the same number", exc.detail)
        raise SyncConflict(
            f"bench {bench!r}, {exc.detail}: reported to the clinic store, nothing overwritten"
        ) from None
    except (psycopg.errors.CheckViolation, psycopg.errors.UniqueViolation) as exc:
        raise LinkRefused(f"the clinic store refused a link of bench {bench!r}: {_first_line(exc)}") from exc
    except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
        raise ClinicUnreachable(f"the clinic store did not answer in time ({_first_line(exc)}); kept: up to link "
                                f"{pushed.head}") from exc  # fmt: skip
    except psycopg.errors.UndefinedTable as exc:
        raise NotSetUp("the clinic store has no ionctl schema: the clinic's database administrator runs "
                       "`ionctl clinic init` once") from exc  # fmt: skip
    except psycopg.errors.InsufficientPrivilege as exc:
        raise NotSetUp(f"the clinic store refused this login: {_first_line(exc)} (the database administrator binds "
                       f"it to this bench: `ionctl clinic add-bench CONNINFO {bench}=LOGIN`)") from exc  # fmt: skip
    except psycopg.OperationalError as exc:
        raise ClinicUnreachable(f"the clinic store went away during the sync: {_first_line(exc)} "
                                f"(kept: up to link {pushed.head})") from exc  # fmt: skip
    except psycopg.Error as exc:  # anything else the server says: one line, not a traceback
        raise ClinicError(f"the clinic store failed: {_first_line(exc)}") from exc
    return pushed


class _Conflict(Exception):
    def __init__(self, gseq: int, detail: str) -> None:
        super().__init__(detail)
        self.gseq, self.detail = gseq, detail


def _verify_here(bench: str, previous: str, gseq: int, links: list[Link]) -> None:
    """Verify the links about to be sent against the clinic's head: a broken local link is never sent."""
    import json

    for link in links:
        if link.gseq != gseq + 1:
            raise LinkRefused(f"bench {bench!r}: link {gseq + 1} is missing from this store (next found: "
                              f"{link.gseq}); not sent")  # fmt: skip
        if link_hash(previous, link.kind, json.loads(link.content)) != link.hash:
            raise LinkRefused(f"bench {bench!r}: link {link.gseq} ({link.kind}) does not verify in this store; "
                              "not sent (run `ionctl records verify`)")  # fmt: skip
        previous, gseq = link.hash, link.gseq


def _send(clinic: Any, db: sqlite3.Connection, bench: str, links: list[Link], pushed: Pushed) -> None:
    insert = f"INSERT INTO {SCHEMA}.links (bench, gseq, kind, content, hash) VALUES (%s, %s, %s, %s, %s)"
    pending: list[tuple[Any, ...]] = []

    def flush() -> None:
        if pending:
            clinic.cursor().executemany(insert, pending)
            pending.clear()

    for link in links:
        if link.kind == "close" and link.record_id is not None:
            flush()
            pushed.samples += _copy_telemetry(clinic, db, bench, link.record_id)
            pushed.closings += 1
        pending.append((bench, link.gseq, link.kind, link.content, link.hash))
        pushed.kinds[link.kind] = pushed.kinds.get(link.kind, 0) + 1
        pushed.links += 1
        if link.kind == "close":
            flush()
    flush()


#: Samples per chunk of COPY text handed to the server connection.
COPY_CHUNK = 2000
BACKSLASH = "\\"


def _copy_telemetry(clinic: Any, db: sqlite3.Connection, bench: str, record_id: int) -> int:
    """COPY a record's telemetry lines in; how many. The rows are written as COPY's text format in chunks: a
    canonical line never holds a tab, newline or carriage return (JSON writes them as escapes), so only its
    backslashes need doubling, and the bench and record id are the same on every row."""
    if any(c in bench for c in "\t\n\r\\"):  # a bench name never has these (site.py's pattern); be sure
        raise ValueError(f"bench name {bench!r}")
    head = f"{bench}\t{record_id}\t"
    count = 0
    chunk: list[str] = []
    with clinic.cursor().copy(f"COPY {SCHEMA}.telemetry (bench, record_id, n, line) FROM STDIN") as copy:
        for n, line in enumerate(telemetry_lines(db, record_id)):
            chunk.append(f"{head}{n}\t{line.replace(BACKSLASH, BACKSLASH * 2)}\n")
            if len(chunk) >= COPY_CHUNK:
                copy.write("".join(chunk))
                chunk.clear()
            count += 1
        if chunk:
            copy.write("".join(chunk))
    return count


@contextmanager
def _snapshot(db: sqlite3.Connection) -> Iterator[None]:
    """One read transaction over this store for a round: its links come from one snapshot, so a session
    committing a link meanwhile never shows as a gap between the tables read one after another."""
    began = not db.in_transaction
    if began:
        db.execute("BEGIN")
    try:
        yield
    finally:
        if began and db.in_transaction:
            db.execute("COMMIT")


def unsent(db: sqlite3.Connection, head: int) -> int:
    """How many links of this store come after the clinic's head for it (not sent yet)."""
    from ionctl.records.chain import head as local_head

    with _snapshot(db):
        gseq, _ = local_head(db)
    return max(0, gseq - head)


@dataclass(frozen=True)
class BenchState:
    """One bench as the clinic store holds it: its last link, when that arrived, and who sent it."""

    bench: str
    gseq: int
    received: str
    received_by: str


@dataclass(frozen=True)
class Conflict:
    """A row of `ionctl.conflicts`: what a sync refused to store, for the clinic's administrator."""

    id: int
    bench: str
    gseq: int | None
    what: str
    detail: str
    seen: str


def benches(clinic: Any) -> list[BenchState]:
    """Every bench the clinic store knows, with its last link (0 and "-" for a bench with none yet)."""
    rows = clinic.execute(
        f"SELECT b.bench, coalesce(l.gseq, 0), coalesce(l.received::text, '-'), coalesce(l.received_by, '-') "
        f"FROM {SCHEMA}.benches b LEFT JOIN LATERAL (SELECT gseq, received, received_by FROM {SCHEMA}.links "
        f"WHERE bench = b.bench ORDER BY gseq DESC LIMIT 1) l ON true ORDER BY b.bench"
    ).fetchall()
    return [BenchState(str(r[0]), int(r[1]), str(r[2]), str(r[3])) for r in rows]


def conflicts(clinic: Any) -> list[Conflict]:
    """Every conflict the clinic store has on record, oldest first (the table is append-only: all of them)."""
    rows = clinic.execute(f"SELECT id, bench, gseq, what, detail, seen::text FROM {SCHEMA}.conflicts "
                          "ORDER BY id").fetchall()  # fmt: skip
    return [Conflict(int(r[0]), str(r[1]), None if r[2] is None else int(r[2]), str(r[3]), str(r[4]), str(r[5]))
            for r in rows]  # fmt: skip


def schema_version(clinic: Any) -> int | None:
    """The clinic store's schema version, or None where `ionctl clinic init` has not been run."""
    import psycopg

    try:
        row = clinic.execute(f"SELECT value FROM {SCHEMA}.meta WHERE key = 'schema_version'").fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return None if row is None else int(row[0])

"""The clinic store's schema on PostgreSQL, its roles, and `initialise` (what `ionctl clinic init` runs).

One schema, `ionctl`, owned by a role that cannot log in (`ionctl_owner`). Every bench's hash chain is kept as it
was written, link by link:

- `benches`: each bench's name and the login that sends for it, written by the database administrator only
  (`ionctl clinic init --bench`, `ionctl clinic add-bench`): a login sends for its own benches, never another's.
- `stores`: the store each bench sends (the hash of its chain's first link), registered by the bench's first sync,
  so that a second store under a name already in use is refused instead of mixed in.
- `links`: one row per chain link (a record's opening or closing, an event, an audit entry, a course), keyed by
  (bench, gseq): the link's kind, its canonical content exactly as hashed, and its hash. `doc` is the content as
  jsonb, for queries.
- `telemetry`: a closed record's samples, keyed by (bench, record id, n), each as the canonical line its closing
  hashed.
- `conflicts`: what a sync found that it would not store (a link whose content differs from the one the clinic
  holds under the same number): an alarm for the database administrator, never an overwrite.

On arrival a trigger re-verifies each link against the link before it (the chain's order, its hash over the
previous hash and the content), and a closing against the telemetry already stored for its record (count and
SHA-256, both computed by the server). A link that does not verify is refused with the reason.

Append-only by privilege: the bench role (`ionctl_bench`) may SELECT, and INSERT the columns a bench sends, nothing
else (who sent a row and when are the server's defaults); UPDATE, DELETE and TRUNCATE fail with "permission
denied". Triggers refuse them as a second layer, for every role, the owner included, short of dropping the
triggers. The triggers also check that the sender is the bench's own login, and take a per-bench lock, so that
one bench's rows arrive in one transaction at a time. `ionctl_reader` may only SELECT (an auditor's
reports). Logins are made by the database administrator and granted one of these roles; their passwords live
where libpq looks for them (a service file, `PGPASSFILE`), never in ionctl's site file or on its command line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SCHEMA = "ionctl"
SCHEMA_VERSION = 1
OWNER = "ionctl_owner"
BENCH = "ionctl_bench"
READER = "ionctl_reader"
GENESIS = "0" * 64

#: Bench names: what a chart shows before a record's number ("bench-a/12").
BENCH_NAME = r"[a-z0-9][a-z0-9._-]{0,62}"
_CLINIC_NAME = re.compile(rf"(?:({BENCH_NAME})/)?([1-9][0-9]*)")


def parse_clinic_name(text: str, what: str) -> tuple[str | None, int]:
    """A record's or a course's name: `bench-a/12` -> ("bench-a", 12); `12` -> (None, 12), this bench's. ValueError
    naming the text and `what` it should have been otherwise."""
    found = _CLINIC_NAME.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a {what}: give ID (this bench's) or BENCH/ID, e.g. bench-a/12")
    return found.group(1), int(found.group(2))

TABLES = ("meta", "benches", "stores", "links", "telemetry", "conflicts")

# Every function runs with `search_path = pg_catalog, pg_temp` and names every table `ionctl.<table>`: with the
# schema on the path (or pg_temp left off it, which puts it first), a temporary table of the inserter's own named
# `links` would stand in for the real one in the checks.
_PATH = "SET search_path = pg_catalog, pg_temp"

_DDL = f"""
CREATE SCHEMA {SCHEMA} AUTHORIZATION {OWNER};

CREATE TABLE {SCHEMA}.meta (key text PRIMARY KEY, value text NOT NULL);

-- Which login sends for which bench: written by the database administrator only (`ionctl clinic add-bench`).
CREATE TABLE {SCHEMA}.benches (
    bench text PRIMARY KEY CHECK (bench ~ '^{BENCH_NAME}$'),
    login name NOT NULL,
    added timestamptz NOT NULL DEFAULT clock_timestamp(),
    added_by text NOT NULL DEFAULT session_user
);

-- The store a bench sends: its chain's first link, registered by the bench's login at its first sync.
CREATE TABLE {SCHEMA}.stores (
    bench text PRIMARY KEY REFERENCES {SCHEMA}.benches (bench),
    first_link text NOT NULL UNIQUE CHECK (first_link ~ '^[0-9a-f]{{64}}$'),
    registered timestamptz NOT NULL DEFAULT clock_timestamp(),
    registered_by text NOT NULL DEFAULT session_user
);

CREATE TABLE {SCHEMA}.links (
    bench text NOT NULL REFERENCES {SCHEMA}.stores (bench),
    gseq bigint NOT NULL CHECK (gseq >= 1),
    kind text NOT NULL CHECK (kind IN ('open', 'close', 'event', 'audit', 'course')),
    content text NOT NULL,
    hash text NOT NULL CHECK (hash ~ '^[0-9a-f]{{64}}$'),
    doc jsonb GENERATED ALWAYS AS (content::jsonb) STORED,
    received timestamptz NOT NULL DEFAULT clock_timestamp(),
    received_by text NOT NULL DEFAULT session_user,
    PRIMARY KEY (bench, gseq)
);
CREATE INDEX links_record ON {SCHEMA}.links (bench, ((doc->>'id')::bigint), kind)
    WHERE kind IN ('open', 'close', 'course');
CREATE INDEX links_about ON {SCHEMA}.links (bench, ((doc->>'record_id')::bigint)) WHERE kind IN ('event', 'audit');
CREATE INDEX links_patient ON {SCHEMA}.links ((doc->>'patient'), kind) WHERE kind IN ('open', 'course');
CREATE INDEX links_course_ref ON {SCHEMA}.links ((doc->>'course_ref')) WHERE kind = 'open';
CREATE INDEX links_kind ON {SCHEMA}.links (kind, bench, gseq);

CREATE TABLE {SCHEMA}.telemetry (
    bench text NOT NULL,
    record_id bigint NOT NULL,
    n integer NOT NULL CHECK (n >= 0),
    line text NOT NULL,
    PRIMARY KEY (bench, record_id, n)
);

CREATE TABLE {SCHEMA}.conflicts (
    id bigserial PRIMARY KEY,
    bench text NOT NULL,
    gseq bigint,
    what text NOT NULL,
    detail text NOT NULL,
    seen timestamptz NOT NULL DEFAULT clock_timestamp(),
    reported_by text NOT NULL DEFAULT session_user
);

-- Only a bench's own login sends for it (session_user: the login, whatever role it has SET since), and one
-- transaction at a time per bench: the lock is held to the end of the sender's transaction.
CREATE FUNCTION {SCHEMA}.sender_holds(wanted text) RETURNS void LANGUAGE plpgsql {_PATH} AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM {SCHEMA}.benches WHERE bench = wanted AND login = session_user) THEN
        RAISE EXCEPTION 'login % does not send for bench %', session_user, wanted
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'the clinic''s database administrator binds each bench to its login: ionctl clinic add-bench';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('ionctl bench ' || wanted, 0));
END $$;

CREATE FUNCTION {SCHEMA}.store_arrives() RETURNS trigger LANGUAGE plpgsql {_PATH} AS $$
BEGIN
    PERFORM {SCHEMA}.sender_holds(NEW.bench);
    RETURN NEW;
END $$;
CREATE TRIGGER stores_sender BEFORE INSERT ON {SCHEMA}.stores FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.store_arrives();
CREATE TRIGGER conflicts_sender BEFORE INSERT ON {SCHEMA}.conflicts
    FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.store_arrives();

-- A link verifies against the one before it, as `ionctl.records.chain.link_hash` computes it:
-- sha256(previous hash || '\\n' || kind || '\\n' || canonical content), in hex; link 1 follows the genesis hash.
CREATE FUNCTION {SCHEMA}.link_arrives() RETURNS trigger LANGUAGE plpgsql {_PATH} AS $$
DECLARE
    previous text;
    computed text;
    numbered bigint;
    samples bigint;
    digest text;
BEGIN
    PERFORM {SCHEMA}.sender_holds(NEW.bench);
    numbered := CASE NEW.kind WHEN 'open' THEN (NEW.content::jsonb->>'open_gseq')::bigint
                              WHEN 'close' THEN (NEW.content::jsonb->>'close_gseq')::bigint
                              ELSE (NEW.content::jsonb->>'gseq')::bigint END;
    IF numbered IS DISTINCT FROM NEW.gseq THEN
        RAISE EXCEPTION 'bench %, link %: its content is numbered %', NEW.bench, NEW.gseq, numbered
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.gseq = 1 THEN
        previous := '{GENESIS}';
    ELSE
        SELECT hash INTO previous FROM {SCHEMA}.links WHERE bench = NEW.bench AND gseq = NEW.gseq - 1;
        IF previous IS NULL THEN
            RAISE EXCEPTION 'bench %, link %: out of sequence (link % has not arrived)', NEW.bench, NEW.gseq,
                NEW.gseq - 1 USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    computed := encode(sha256(convert_to(previous || E'\\n' || NEW.kind || E'\\n' || NEW.content, 'UTF8')), 'hex');
    IF computed <> NEW.hash THEN
        RAISE EXCEPTION 'bench %, link %: does not verify (hash %, content and the link before give %)',
            NEW.bench, NEW.gseq, NEW.hash, computed USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.kind = 'close' THEN
        SELECT count(*),
               encode(sha256(convert_to(coalesce(string_agg(line || E'\\n', '' ORDER BY n), ''), 'UTF8')), 'hex')
          INTO samples, digest
          FROM {SCHEMA}.telemetry WHERE bench = NEW.bench AND record_id = (NEW.content::jsonb->>'id')::bigint;
        IF samples IS DISTINCT FROM (NEW.content::jsonb->>'telemetry_count')::bigint
           OR digest IS DISTINCT FROM NEW.content::jsonb->>'telemetry_sha256' THEN
            RAISE EXCEPTION 'bench %, link % (record % closing): % samples here do not match the % it closed with',
                NEW.bench, NEW.gseq, NEW.content::jsonb->>'id', samples, NEW.content::jsonb->>'telemetry_count'
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER links_verify BEFORE INSERT ON {SCHEMA}.links FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.link_arrives();

-- Samples arrive from their bench's login, with their record's closing, never after it. Checked once per statement
-- (a COPY of many rows costs one look), after the bench's lock: a closing another transaction of the bench is
-- committing is seen once it has committed.
CREATE FUNCTION {SCHEMA}.telemetry_arrives() RETURNS trigger LANGUAGE plpgsql {_PATH} AS $$
DECLARE
    sender text;
    closed record;
BEGIN
    FOR sender IN SELECT DISTINCT bench FROM arrived LOOP
        PERFORM {SCHEMA}.sender_holds(sender);
    END LOOP;
    SELECT s.bench, s.record_id INTO closed FROM (SELECT DISTINCT bench, record_id FROM arrived) s
      JOIN {SCHEMA}.links l ON l.bench = s.bench AND l.kind = 'close' AND (l.doc->>'id')::bigint = s.record_id
      LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'bench %, record %: telemetry after the record closed', closed.bench, closed.record_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER telemetry_verify AFTER INSERT ON {SCHEMA}.telemetry REFERENCING NEW TABLE AS arrived
    FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.telemetry_arrives();

CREATE FUNCTION {SCHEMA}.append_only() RETURNS trigger LANGUAGE plpgsql {_PATH} AS $$
BEGIN
    RAISE EXCEPTION 'the clinic store is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
"""

FUNCTIONS = ("sender_holds(text)", "store_arrives()", "link_arrives()", "telemetry_arrives()", "append_only()")

# INSERT only of the columns a sender sets: who and when (received_by, registered_by, reported_by and the times)
# are the server's defaults, which an inserter cannot write.
_GRANTS = f"""
REVOKE ALL ON SCHEMA {SCHEMA} FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {SCHEMA} FROM PUBLIC;
GRANT USAGE ON SCHEMA {SCHEMA} TO {BENCH}, {READER};
GRANT SELECT ON ALL TABLES IN SCHEMA {SCHEMA} TO {BENCH}, {READER};
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {SCHEMA} TO {BENCH};
GRANT INSERT (bench, first_link) ON {SCHEMA}.stores TO {BENCH};
GRANT INSERT (bench, gseq, kind, content, hash) ON {SCHEMA}.links TO {BENCH};
GRANT INSERT (bench, record_id, n, line) ON {SCHEMA}.telemetry TO {BENCH};
GRANT INSERT (bench, gseq, what, detail) ON {SCHEMA}.conflicts TO {BENCH};
GRANT USAGE ON SEQUENCE {SCHEMA}.conflicts_id_seq TO {BENCH};
"""


def _append_only_triggers() -> str:
    out = []
    for table in TABLES:
        out.append(f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {SCHEMA}.{table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.append_only();")  # fmt: skip
        out.append(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {SCHEMA}.{table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.append_only();")  # fmt: skip
    return "\n".join(out)


class ClinicError(Exception):
    """The clinic store cannot be used as asked (not set up, refused, unreachable): the message says why."""


def _statements(script: str) -> list[str]:
    """Split a script on the semicolons that end statements (outside $$ bodies)."""
    out, pending, quoted = [], [], False
    for line in script.splitlines():
        pending.append(line)
        quoted ^= line.count("$$") % 2 == 1
        if not quoted and line.rstrip().endswith(";"):
            text = "\n".join(pending).strip()
            if text and not all(p.strip().startswith("--") or not p.strip() for p in pending):
                out.append(text)
            pending = []
    if "\n".join(pending).strip():
        raise ValueError("incomplete SQL statement at the end of the script")
    return out


def _role_exists(db: Any, name: str) -> bool:
    return db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None


def initialise(conninfo: str, *, benches: Mapping[str, str] | None = None, readers: tuple[str, ...] = ()) -> list[str]:
    """Create the roles, the schema, its triggers and grants in the database `conninfo` names (run once, by a
    role that may create roles: the clinic's database administrator). `benches` binds each bench name to the
    existing login role that sends for it (made a member of `ionctl_bench`); `readers` become members of
    `ionctl_reader`. What was done, a line each. ClinicError if the schema is there already (nothing is changed)
    or the role may not do this; nothing is left half made."""
    import psycopg
    from psycopg import sql

    done: list[str] = []
    try:
        with psycopg.connect(conninfo, autocommit=False) as db:
            with db.transaction():
                if db.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (SCHEMA,)).fetchone():
                    raise ClinicError(f"the database already has the {SCHEMA!r} schema: nothing changed")
                for role in (OWNER, BENCH, READER):
                    if not _role_exists(db, role):
                        db.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
                        done.append(f"role {role} created (cannot log in)")
                db.execute(sql.SQL("GRANT {} TO current_user").format(sql.Identifier(OWNER)))
                for statement in _statements(_DDL):
                    db.execute(statement)
                for table in TABLES:
                    db.execute(f"ALTER TABLE {SCHEMA}.{table} OWNER TO {OWNER}")
                for fn in FUNCTIONS:
                    db.execute(f"ALTER FUNCTION {SCHEMA}.{fn} OWNER TO {OWNER}")
                for statement in _statements(_append_only_triggers()):
                    db.execute(statement)
                for statement in _statements(_GRANTS):
                    db.execute(statement)
                db.execute(f"INSERT INTO {SCHEMA}.meta VALUES ('schema_version', %s)", (str(SCHEMA_VERSION),))
                done.append(f"schema {SCHEMA} (version {SCHEMA_VERSION}) created, owned by {OWNER}: "
                            f"{', '.join(TABLES)}")  # fmt: skip
                done.append(f"{BENCH} may SELECT, and INSERT the columns a bench sends, nothing else; {READER} "
                            "may SELECT only")  # fmt: skip
                for bench, login in (benches or {}).items():
                    done.append(_bind(db, bench, login))
                for member in readers:
                    _require_role(db, member, READER)
                    db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(READER), sql.Identifier(member)))
                    done.append(f"{member} granted {READER}")
                db.execute(sql.SQL("REVOKE {} FROM current_user").format(sql.Identifier(OWNER)))
    except psycopg.Error as exc:
        raise ClinicError(f"clinic init failed: {str(exc).strip()}") from exc
    return done


def add_bench(conninfo: str, bench: str, login: str) -> str:
    """Bind a new bench name to the login role that sends for it (the clinic's database administrator, after
    `initialise`); what was done. ClinicError for a name taken, a bad name, a missing role."""
    import psycopg

    try:
        with psycopg.connect(conninfo, autocommit=False) as db, db.transaction():
            return _bind(db, bench, login)
    except psycopg.Error as exc:
        raise ClinicError(f"clinic add-bench failed: {str(exc).strip()}") from exc


def _require_role(db: Any, member: str, group: str) -> None:
    if not _role_exists(db, member):
        raise ClinicError(f"no role {member!r}: the database administrator creates it (CREATE ROLE {member} LOGIN), "
                          f"then this grants it {group}")  # fmt: skip


def _bind(db: Any, bench: str, login: str) -> str:
    from psycopg import sql

    if not re.fullmatch(BENCH_NAME, bench):
        raise ClinicError(f"bench name {bench!r}: lower-case letters, digits, '.', '_' or '-' (up to 63)")
    _require_role(db, login, BENCH)
    if db.execute(f"SELECT 1 FROM {SCHEMA}.benches WHERE bench = %s", (bench,)).fetchone():
        raise ClinicError(f"bench {bench!r} is already bound to a login")
    db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(BENCH), sql.Identifier(login)))
    db.execute(f"INSERT INTO {SCHEMA}.benches (bench, login) VALUES (%s, %s)", (bench, login))
    return f"bench {bench} bound to login {login} (granted {BENCH})"


def parse_binding(text: str) -> tuple[str, str]:
    """`bench-a=bench_a_login` -> ("bench-a", "bench_a_login"); ValueError with what is expected."""
    bench, sep, login = text.partition("=")
    if not sep or not bench or not login:
        raise ValueError(f"{text!r}: expected BENCH=LOGIN, e.g. bench-a=bench_a")
    return bench, login

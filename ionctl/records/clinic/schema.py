"""The clinic store's schema on PostgreSQL, its roles, and `initialise` (what `ionctl clinic init` runs).

One schema, `ionctl`, owned by a role that cannot log in (`ionctl_owner`). Every bench's hash chain is kept as it
was written, link by link:

- `benches`: each bench's name and its store's identity (the hash of its chain's first link), so that a second
  store under a name already taken is refused instead of mixed in.
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

Append-only by privilege: the bench role (`ionctl_bench`) may SELECT and INSERT, nothing else; UPDATE, DELETE and
TRUNCATE fail with "permission denied". Triggers refuse them as a second layer, for any role that is not the
owner... and for the owner too, short of dropping the triggers. `ionctl_reader` may only SELECT (an auditor's
reports). Logins are made by the database administrator and granted one of these roles; their passwords live
where libpq looks for them (a service file, `PGPASSFILE`), never in ionctl's site file or on its command line.
"""

from __future__ import annotations

from typing import Any

SCHEMA = "ionctl"
SCHEMA_VERSION = 1
OWNER = "ionctl_owner"
BENCH = "ionctl_bench"
READER = "ionctl_reader"
GENESIS = "0" * 64

#: Bench names: what a chart shows before a record's number ("bench-a/12").
BENCH_NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"

TABLES = ("meta", "benches", "links", "telemetry", "conflicts")

_DDL = f"""
CREATE SCHEMA {SCHEMA} AUTHORIZATION {OWNER};
SET LOCAL search_path = {SCHEMA}, pg_catalog;

CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);

CREATE TABLE benches (
    bench text PRIMARY KEY CHECK (bench ~ '{BENCH_NAME}'),
    first_link text NOT NULL UNIQUE CHECK (first_link ~ '^[0-9a-f]{{64}}$'),
    registered timestamptz NOT NULL DEFAULT clock_timestamp(),
    registered_by text NOT NULL DEFAULT session_user
);

CREATE TABLE links (
    bench text NOT NULL REFERENCES benches (bench),
    gseq bigint NOT NULL CHECK (gseq >= 1),
    kind text NOT NULL CHECK (kind IN ('open', 'close', 'event', 'audit', 'course')),
    content text NOT NULL,
    hash text NOT NULL CHECK (hash ~ '^[0-9a-f]{{64}}$'),
    doc jsonb GENERATED ALWAYS AS (content::jsonb) STORED,
    received timestamptz NOT NULL DEFAULT clock_timestamp(),
    received_by text NOT NULL DEFAULT session_user,
    PRIMARY KEY (bench, gseq)
);
CREATE INDEX links_record ON links (bench, ((doc->>'id')::bigint), kind) WHERE kind IN ('open', 'close', 'course');
CREATE INDEX links_about ON links (bench, ((doc->>'record_id')::bigint)) WHERE kind IN ('event', 'audit');
CREATE INDEX links_patient ON links ((doc->>'patient'), kind) WHERE kind IN ('open', 'course');
CREATE INDEX links_kind ON links (kind, bench, gseq);

CREATE TABLE telemetry (
    bench text NOT NULL,
    record_id bigint NOT NULL,
    n integer NOT NULL CHECK (n >= 0),
    line text NOT NULL,
    PRIMARY KEY (bench, record_id, n)
);

CREATE TABLE conflicts (
    id bigserial PRIMARY KEY,
    bench text NOT NULL,
    gseq bigint,
    what text NOT NULL,
    detail text NOT NULL,
    seen timestamptz NOT NULL DEFAULT clock_timestamp(),
    reported_by text NOT NULL DEFAULT session_user
);

-- A link verifies against the one before it, as `ionctl.records.chain.link_hash` computes it:
-- sha256(previous hash || '\\n' || kind || '\\n' || canonical content), in hex; link 1 follows the genesis hash.
CREATE FUNCTION link_arrives() RETURNS trigger LANGUAGE plpgsql SET search_path = {SCHEMA}, pg_catalog AS $$
DECLARE
    previous text;
    computed text;
    numbered bigint;
    samples bigint;
    digest text;
BEGIN
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
        SELECT hash INTO previous FROM links WHERE bench = NEW.bench AND gseq = NEW.gseq - 1;
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
          FROM telemetry WHERE bench = NEW.bench AND record_id = (NEW.content::jsonb->>'id')::bigint;
        IF samples IS DISTINCT FROM (NEW.content::jsonb->>'telemetry_count')::bigint
           OR digest IS DISTINCT FROM NEW.content::jsonb->>'telemetry_sha256' THEN
            RAISE EXCEPTION 'bench %, link % (record % closing): % samples here do not match the % it closed with',
                NEW.bench, NEW.gseq, NEW.content::jsonb->>'id', samples, NEW.content::jsonb->>'telemetry_count'
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER links_verify BEFORE INSERT ON links FOR EACH ROW EXECUTE FUNCTION link_arrives();

-- Samples arrive with their record's closing, never after it (checked once per statement: a COPY of many rows
-- costs one lookup).
CREATE FUNCTION telemetry_arrives() RETURNS trigger LANGUAGE plpgsql SET search_path = {SCHEMA}, pg_catalog AS $$
DECLARE
    closed record;
BEGIN
    SELECT s.bench, s.record_id INTO closed FROM (SELECT DISTINCT bench, record_id FROM arrived) s
      JOIN links l ON l.bench = s.bench AND l.kind = 'close' AND (l.doc->>'id')::bigint = s.record_id LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'bench %, record %: telemetry after the record closed', closed.bench, closed.record_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER telemetry_verify AFTER INSERT ON telemetry REFERENCING NEW TABLE AS arrived
    FOR EACH STATEMENT EXECUTE FUNCTION telemetry_arrives();

CREATE FUNCTION append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the clinic store is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
"""

_GRANTS = f"""
REVOKE ALL ON SCHEMA {SCHEMA} FROM PUBLIC;
GRANT USAGE ON SCHEMA {SCHEMA} TO {BENCH}, {READER};
GRANT SELECT ON ALL TABLES IN SCHEMA {SCHEMA} TO {BENCH}, {READER};
GRANT INSERT ON {SCHEMA}.benches, {SCHEMA}.links, {SCHEMA}.telemetry, {SCHEMA}.conflicts TO {BENCH};
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


def initialise(conninfo: str, *, logins: tuple[str, ...] = (), readers: tuple[str, ...] = ()) -> list[str]:
    """Create the roles, the schema, its triggers and grants in the database `conninfo` names (run once, by a
    role that may create roles: the clinic's database administrator). `logins` are existing login roles to make
    benches (members of `ionctl_bench`), `readers` members of `ionctl_reader`. What was done, a line each.
    ClinicError if the schema is there already (nothing is changed) or the role may not do this."""
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
                for fn in ("link_arrives()", "telemetry_arrives()", "append_only()"):
                    db.execute(f"ALTER FUNCTION {SCHEMA}.{fn} OWNER TO {OWNER}")
                for statement in _statements(_append_only_triggers()):
                    db.execute(statement)
                for statement in _statements(_GRANTS):
                    db.execute(statement)
                db.execute(f"INSERT INTO {SCHEMA}.meta VALUES ('schema_version', %s)", (str(SCHEMA_VERSION),))
                done.append(f"schema {SCHEMA} (version {SCHEMA_VERSION}) created, owned by {OWNER}: "
                            f"{', '.join(TABLES)}")  # fmt: skip
                done.append(f"{BENCH} may SELECT and INSERT only; {READER} may SELECT only")
                for group, members in ((BENCH, logins), (READER, readers)):
                    for member in members:
                        if not _role_exists(db, member):
                            raise ClinicError(f"no role {member!r}: the database administrator creates it "
                                              f"(CREATE ROLE {member} LOGIN), then this grants it {group}")
                        db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(member)))
                        done.append(f"{member} granted {group}")
                db.execute(sql.SQL("REVOKE {} FROM current_user").format(sql.Identifier(OWNER)))
    except psycopg.Error as exc:
        raise ClinicError(f"clinic init failed: {str(exc).strip()}") from exc
    return done

"""The hub's schema (SPEC §8) and the triggers that tell hubs what changed.

Every write that can change an answer of the hub — a session, key, account,
collaborator list, placement or host — fires an invalidation ``table:key``
(``remember_me:<hash>``, ``projects:<project_id>`` …).  On PostgreSQL the
triggers send it with ``NOTIFY cocalcproxy_invalidate`` (every hub listens);
on SQLite they append it to ``cocalcproxy_invalidations``, which the hub
polls.  Updates of ``projects.last_active`` alone fire nothing (hubs write it
all the time).  ``create_schema`` is idempotent: ``--init-db`` and the admin
tool's ``init`` may run it on an existing database.
"""

from __future__ import annotations

CHANNEL = "cocalcproxy_invalidate"
KEEP_INVALIDATIONS = 10000  # SQLite: rows kept in the invalidation log

#: table → the column whose value names what changed
WATCHED = (("accounts", "account_id"), ("remember_me", "hash"), ("api_keys", "hash"),
           ("project_hosts", "host_id"), ("projects", "project_id"))

POSTGRES_TABLES = """
CREATE TABLE IF NOT EXISTS accounts (account_id UUID PRIMARY KEY, groups TEXT[] NOT NULL DEFAULT '{}',
                                     banned BOOLEAN NOT NULL DEFAULT false);
CREATE TABLE IF NOT EXISTS remember_me (hash TEXT PRIMARY KEY, account_id UUID NOT NULL, expire TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (hash TEXT PRIMARY KEY, account_id UUID NOT NULL, expire TIMESTAMPTZ,
                                     project_id UUID);
CREATE TABLE IF NOT EXISTS project_hosts (host_id TEXT PRIMARY KEY, url TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects (project_id UUID PRIMARY KEY, users JSONB NOT NULL DEFAULT '{}',
                                     host_id TEXT REFERENCES project_hosts, last_active TIMESTAMPTZ);
"""

POSTGRES_NOTIFY = f"""
CREATE OR REPLACE FUNCTION cocalcproxy_notify() RETURNS trigger AS $$
DECLARE
  old_key text;
  new_key text;
BEGIN
  IF TG_OP <> 'INSERT' THEN old_key := to_jsonb(OLD) ->> TG_ARGV[0]; END IF;
  IF TG_OP <> 'DELETE' THEN new_key := to_jsonb(NEW) ->> TG_ARGV[0]; END IF;
  IF new_key IS NOT NULL THEN PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME || ':' || new_key); END IF;
  IF old_key IS NOT NULL AND old_key IS DISTINCT FROM new_key THEN
    PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME || ':' || old_key);
  END IF;
  RETURN NULL;
END
$$ LANGUAGE plpgsql;
"""


def _postgres_trigger(table: str, column: str) -> str:
    events = "INSERT OR DELETE OR UPDATE OF users, host_id" if table == "projects" else "INSERT OR UPDATE OR DELETE"
    return (f"DROP TRIGGER IF EXISTS cocalcproxy_{table} ON {table};\n"
            f"CREATE TRIGGER cocalcproxy_{table} AFTER {events} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION cocalcproxy_notify('{column}');\n")


SQLITE_TABLES = """
CREATE TABLE IF NOT EXISTS accounts (account_id TEXT PRIMARY KEY, groups TEXT NOT NULL DEFAULT '[]',
                                     banned INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS remember_me (hash TEXT PRIMARY KEY, account_id TEXT NOT NULL, expire INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (hash TEXT PRIMARY KEY, account_id TEXT NOT NULL, expire INTEGER,
                                     project_id TEXT);
CREATE TABLE IF NOT EXISTS project_hosts (host_id TEXT PRIMARY KEY, url TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects (project_id TEXT PRIMARY KEY, users TEXT NOT NULL DEFAULT '{}',
                                     host_id TEXT REFERENCES project_hosts, last_active INTEGER);
CREATE TABLE IF NOT EXISTS cocalcproxy_invalidations (id INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL);
"""


def _sqlite_triggers(table: str, column: str) -> str:
    prune = f"DELETE FROM cocalcproxy_invalidations WHERE id < (SELECT max(id) FROM cocalcproxy_invalidations) - {KEEP_INVALIDATIONS};"
    out = []
    for event, rows in (("INSERT", ("NEW",)), ("DELETE", ("OLD",)), ("UPDATE", ("NEW", "OLD"))):
        of = " OF users, host_id" if table == "projects" and event == "UPDATE" else ""
        inserts = " ".join(f"INSERT INTO cocalcproxy_invalidations (payload) VALUES ('{table}:' || {r}.{column});"
                           for r in rows)
        out.append(f"CREATE TRIGGER IF NOT EXISTS cocalcproxy_{table}_{event.lower()} AFTER {event}{of} ON {table} "
                   f"BEGIN {inserts} {prune} END;")
    return "\n".join(out) + "\n"


def schema_statements(postgres: bool) -> list[str]:
    if postgres:
        script = POSTGRES_TABLES + POSTGRES_NOTIFY + "".join(_postgres_trigger(t, c) for t, c in WATCHED)
        # the function body holds semicolons: keep it one statement
        head, func, tail = script.partition("CREATE OR REPLACE FUNCTION")
        body, end, rest = tail.partition("$$ LANGUAGE plpgsql;")
        return ([s for s in head.split(";") if s.strip()] + [func + body + end]
                + [s for s in rest.split(";") if s.strip()])
    script = SQLITE_TABLES + "".join(_sqlite_triggers(t, c) for t, c in WATCHED)
    return [script]


def create_schema(database) -> None:
    """Create the tables (and triggers) that are missing; ``database`` is a ``Database``."""
    conn = database.connect()
    try:
        if database.postgres:
            for statement in schema_statements(True):
                conn.execute(statement)
        else:
            conn.execute("PRAGMA journal_mode = WAL")  # readers (the hub) never wait for the admin tool
            conn.executescript(schema_statements(False)[0])
    finally:
        conn.close()


__all__ = ["CHANNEL", "WATCHED", "create_schema", "schema_statements"]

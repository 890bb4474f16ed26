"""The ledger: what was applied, in schema ``migrations_ledger`` of the migrated database.

Tables (created idempotently by the runner, under its advisory lock):

``applied``   one row per migration: version, name, checksum, applied_at, duration_ms,
              applied_by (os user@host), db_user, run_id, transaction_mode, status
              (``applied`` | ``partial`` | ``failed``) and, for ``no-transaction`` files, the
              progress: statements_applied / statements_total and the sha256 of each applied
              statement (what resume verifies), last_error.
``settings``  key/value metadata; ``environment`` marks a production database so that
              ``reset``/``seed`` and unconfirmed rollbacks refuse to touch it.
``events``    the audit log of every ``repair``, ``baseline`` and ``rollback``: who, why, when.

The lock is a session-level advisory lock taken with ``pg_try_advisory_lock`` on the runner's
own connection: it is released by the server when that session ends, however the runner dies
(no stale lock row), and it is polled, never waited on (a blocking ``pg_advisory_lock`` waiter
holds a transaction open, which ``CREATE INDEX CONCURRENTLY`` in the holder waits for: deadlock).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

__all__ = [
    "LEDGER_SCHEMA",
    "LOCK_HELD_SQLSTATE",
    "LOCK_KEY",
    "AppliedMigration",
    "LockHolder",
    "acquire_message",
    "ensure_ledger",
    "ledger_environment",
    "lock_holder",
    "read_ledger",
    "read_ledger_message",
    "stamp_environment",
]

LEDGER_SCHEMA = "migrations_ledger"
# pg_try_advisory_lock(int4, int4): 'migr' and 1. Advisory locks are per database already.
LOCK_KEY = (0x6D696772, 1)
# Our own SQLSTATE (class "ML") for "the lock is held": raised inside the acquire message so the
# rest of that message (the ledger read) is skipped in the same round trip.
LOCK_HELD_SQLSTATE = "ML001"

_S = sql.Identifier(LEDGER_SCHEMA)

_DDL = sql.SQL(
    """
CREATE SCHEMA IF NOT EXISTS {s};
COMMENT ON SCHEMA {s} IS 'migration ledger of python -m infra migrate; change it only through its commands';
CREATE TABLE IF NOT EXISTS {s}.applied (
    version            bigint PRIMARY KEY,
    name               text NOT NULL,
    checksum           text NOT NULL CHECK (checksum ~ '^[0-9a-f]{{64}}$'),
    status             text NOT NULL CHECK (status IN ('applied', 'partial', 'failed')),
    transaction_mode   text NOT NULL
        CHECK (transaction_mode IN ('transaction', 'single-transaction', 'no-transaction', 'baseline')),
    applied_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    duration_ms        double precision,
    applied_by         text NOT NULL,
    db_user            text NOT NULL DEFAULT current_user,
    run_id             text NOT NULL,
    statements_applied integer,
    statements_total   integer,
    statement_hashes   text[],
    last_error         text
);
CREATE TABLE IF NOT EXISTS {s}.settings (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_by text NOT NULL DEFAULT current_user
);
CREATE TABLE IF NOT EXISTS {s}.events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    action       text NOT NULL CHECK (action IN ('repair', 'forget', 'baseline', 'rollback', 'stamp')),
    version      bigint,
    name         text,
    old_checksum text,
    new_checksum text,
    reason       text,
    by_user      text NOT NULL,
    db_user      text NOT NULL DEFAULT current_user,
    run_id       text NOT NULL
);
INSERT INTO {s}.settings (key, value) VALUES ('ledger_format', '1') ON CONFLICT (key) DO NOTHING;
"""
).format(s=_S)

_COLUMNS = sql.SQL(
    "version, name, checksum, status, transaction_mode, applied_at, duration_ms, applied_by, "
    "db_user, run_id, statements_applied, statements_total, statement_hashes, last_error"
)


@dataclass(frozen=True)
class AppliedMigration:
    """One ledger row."""

    version: int
    name: str
    checksum: str
    status: str
    transaction_mode: str
    applied_at: dt.datetime
    duration_ms: float | None
    applied_by: str
    db_user: str
    run_id: str
    statements_applied: int | None = None
    statements_total: int | None = None
    statement_hashes: tuple[str, ...] = ()
    last_error: str | None = None

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> AppliedMigration:
        return cls(
            version=int(row[0]),
            name=str(row[1]),
            checksum=str(row[2]),
            status=str(row[3]),
            transaction_mode=str(row[4]),
            applied_at=row[5],
            duration_ms=None if row[6] is None else float(row[6]),
            applied_by=str(row[7]),
            db_user=str(row[8]),
            run_id=str(row[9]),
            statements_applied=row[10],
            statements_total=row[11],
            statement_hashes=tuple(row[12] or ()),
            last_error=row[13],
        )


@dataclass(frozen=True)
class LockHolder:
    """Who holds the migration lock (from pg_locks + pg_stat_activity)."""

    pid: int | None
    application_name: str | None
    client: str | None
    since: str | None
    user: str | None
    # False when the holder's role has no CREATE on the database: it cannot be a migration run (any
    # login may take any advisory lock key, e.g. readonly), so the message says so and how to end it.
    can_migrate: bool | None = None

    def describe(self) -> str:
        if self.pid is None:
            return "an unknown session (it may have just released it)"
        text = (
            f"pid {self.pid} ({self.application_name or 'no application_name'}, user {self.user}, "
            f"client {self.client or 'local socket'}, connected since {self.since})"
        )
        if self.can_migrate is False:
            text += (
                f", which is not a migration run: role {self.user!r} cannot create in this database; "
                f"end it as the admin with SELECT pg_terminate_backend({self.pid})"
            )
        return text

    @classmethod
    def from_json(cls, text: str | None) -> LockHolder:
        try:
            data = json.loads(text or "{}")
        except json.JSONDecodeError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        pid = data.get("pid")
        return cls(
            pid=int(pid) if isinstance(pid, int) else None,
            application_name=_opt_str(data.get("application_name")),
            client=_opt_str(data.get("client")),
            since=_opt_str(data.get("since")),
            user=_opt_str(data.get("user")),
            can_migrate=data.get("can_migrate") if isinstance(data.get("can_migrate"), bool) else None,
        )


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


_HOLDER_JSON = sql.SQL(
    """(SELECT json_build_object('pid', a.pid, 'application_name', a.application_name,
            'client', host(a.client_addr), 'since', a.backend_start, 'user', a.usename,
            'can_migrate', has_database_privilege(a.usename, l.database, 'CREATE'))::text
       FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid()
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid = {k1} AND l.objid = {k2} AND l.objsubid = 2
      LIMIT 1)"""
).format(k1=sql.Literal(LOCK_KEY[0]), k2=sql.Literal(LOCK_KEY[1]))


def acquire_message(*, create: bool) -> sql.Composed:
    """One message: try the lock; if held, fail with ML001 and the holder as DETAIL; else
    create the ledger if missing (``create``) and read it.

    Results of a successful execution: the ledger rows, then the ``environment`` setting.
    """
    ensure = (
        sql.SQL("IF to_regclass({t}) IS NULL THEN EXECUTE {ddl}; END IF;").format(
            t=sql.Literal(f"{LEDGER_SCHEMA}.applied"), ddl=sql.Literal(_DDL.as_string(None))
        )
        if create
        else sql.SQL("")
    )
    body = sql.SQL(
        """DECLARE holder text;
BEGIN
  IF NOT pg_try_advisory_lock({k1}, {k2}) THEN
    holder := {holder};
    RAISE EXCEPTION 'migration lock is held' USING ERRCODE = {code}, DETAIL = coalesce(holder, '{{}}');
  END IF;
  {ensure}
END"""
    ).format(
        k1=sql.Literal(LOCK_KEY[0]),
        k2=sql.Literal(LOCK_KEY[1]),
        holder=_HOLDER_JSON,
        code=sql.Literal(LOCK_HELD_SQLSTATE),
        ensure=ensure,
    )
    return sql.SQL("DO {body};\n{read}").format(body=sql.Literal(body.as_string(None)), read=read_ledger_message())


def read_ledger_message() -> sql.Composed:
    """Two statements: the ledger rows in version order, then the stamped environment."""
    return sql.SQL(
        "SELECT {cols} FROM {s}.applied ORDER BY version;\n"
        "SELECT (SELECT value FROM {s}.settings WHERE key = 'environment');"
    ).format(cols=_COLUMNS, s=_S)


def parse_ledger_results(cur: psycopg.Cursor[tuple[Any, ...]]) -> tuple[tuple[AppliedMigration, ...], str | None]:
    """Rows and environment from a cursor that ran a message ending with :func:`read_ledger_message`."""
    while cur.description is None and cur.nextset():
        pass  # skip the results of the statements before the ledger SELECT (DO, ...)
    rows = tuple(AppliedMigration.from_row(r) for r in cur.fetchall())
    env: str | None = None
    if cur.nextset():
        got = cur.fetchone()
        env = None if got is None or got[0] is None else str(got[0])
    return rows, env


def ledger_exists(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        sql.SQL("SELECT to_regclass({t}) IS NOT NULL").format(t=sql.Literal(f"{LEDGER_SCHEMA}.applied"))
    ).fetchone()
    return bool(row and row[0])


def read_ledger(conn: psycopg.Connection[Any]) -> tuple[tuple[AppliedMigration, ...], str | None]:
    """Ledger rows and stamped environment; empty and ``None`` when there is no ledger yet.

    Takes no lock and writes nothing (status, validate, plan, dry-run).
    """
    if not ledger_exists(conn):
        return (), None
    cur = conn.cursor()
    cur.execute(read_ledger_message())
    return parse_ledger_results(cur)


def ensure_ledger(conn: psycopg.Connection[Any]) -> None:
    """Create the ledger schema and tables if missing (idempotent)."""
    if not ledger_exists(conn):
        conn.execute(_DDL)


def lock_holder(conn: psycopg.Connection[Any]) -> LockHolder:
    """Who holds the migration lock right now (for a timeout message)."""
    row = conn.execute(sql.SQL("SELECT {h}").format(h=_HOLDER_JSON)).fetchone()
    return LockHolder.from_json(None if row is None else row[0])


def ledger_environment(conn: psycopg.Connection[Any]) -> str | None:
    """The environment stamped in the ledger (``'production'`` ...), or ``None``.

    ``reset``/``seed`` call this and refuse on ``'production'``.
    """
    if not ledger_exists(conn):
        return None
    row = conn.execute(sql.SQL("SELECT value FROM {s}.settings WHERE key = 'environment'").format(s=_S)).fetchone()
    return None if row is None else str(row[0])


def stamp_environment(conn: psycopg.Connection[Any], env: str, *, by: str = "", run_id: str = "") -> None:
    """Record ``env`` as this database's environment (creating the ledger if needed), audited."""
    ensure_ledger(conn)
    with conn.transaction():
        old = ledger_environment(conn)
        if old == env:
            return
        conn.execute(
            sql.SQL(
                "INSERT INTO {s}.settings (key, value) VALUES ('environment', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "updated_at = clock_timestamp(), updated_by = current_user"
            ).format(s=_S),
            (env,),
        )
        conn.execute(
            sql.SQL("INSERT INTO {s}.events (action, reason, by_user, run_id) VALUES ('stamp', %s, %s, %s)").format(
                s=_S
            ),
            (f"environment {old!r} -> {env!r}", by or "unknown", run_id or "-"),
        )

"""The ledger: what was applied, in schema ``migrations_ledger`` of the migrated database.

This module is its only writer: every statement that changes a ledger table is built by a named
function here, which returns the SQL (one statement, no ``;``) for the runner to put into its
message; nothing else composes ledger writes. (That is why it is longer than 500 lines: the DDL,
the reads and every write of the ledger in one place, so that the ledger has one owner.)

Tables (created idempotently by the runner, under its advisory lock; format 2):

``applied``   one row per migration: version (``numeric``: any number of digits), the exact file
              name, the slug (``name``), checksum, applied_at, duration_ms, applied_by (os
              user@host), db_user, run_id, transaction_mode, status (``applied`` | ``partial`` |
              ``failed``) and, for ``no-transaction`` sections, the progress: statements_applied /
              statements_total and the sha256 of each applied statement (what resume verifies),
              last_error.
``settings``  key/value metadata; ``environment`` marks a production database so that
              ``reset``/``seed`` and unconfirmed rollbacks refuse to touch it; ``ledger_format``.
``events``    the audit log of every ``repair``, ``forget``, ``baseline``, ``rollback`` and ``stamp``.

Format 1 (before this one) had a ``bigint`` version and no file name; the runner upgrades it in
place under its lock (rows keep ``filename`` NULL: the name they were applied under is unknown).
Reads go through ``to_jsonb(row)`` so that ``status`` reads either format without writing.

The lock is a session-level advisory lock taken with ``pg_try_advisory_lock`` on the runner's
own connection: it is released by the server when that session ends, however the runner dies
(no stale lock row), and it is polled, never waited on (a blocking ``pg_advisory_lock`` waiter
holds a transaction open, which ``CREATE INDEX CONCURRENTLY`` in the holder waits for: deadlock).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import psycopg
from psycopg import sql

from infra.migrations.source import Migration

__all__ = [
    "LEDGER_FORMAT",
    "LEDGER_SCHEMA",
    "LOCK_HELD_SQLSTATE",
    "LOCK_KEY",
    "Actor",
    "AppliedMigration",
    "EventAction",
    "LedgerStatus",
    "LockHolder",
    "TransactionMode",
    "acquire_message",
    "ensure_ledger",
    "ledger_environment",
    "lock_holder",
    "parse_ledger_results",
    "read_ledger",
    "read_ledger_message",
    "stamp_environment",
]

LEDGER_SCHEMA = "migrations_ledger"
LEDGER_FORMAT = "2"
# pg_try_advisory_lock(int4, int4): 'migr' and 1. Advisory locks are per database already.
LOCK_KEY = (0x6D696772, 1)
# Our own SQLSTATE (class "ML") for "the lock is held": raised inside the acquire message so the
# rest of that message (the ledger read) is skipped in the same round trip.
LOCK_HELD_SQLSTATE = "ML001"

_S = sql.Identifier(LEDGER_SCHEMA)


class LedgerStatus(StrEnum):
    APPLIED = "applied"
    PARTIAL = "partial"  # a no-transaction section stopped (interrupted): resumable
    FAILED = "failed"  # a no-transaction section failed at a statement: resumable with --retry-failed


class TransactionMode(StrEnum):
    TRANSACTION = "transaction"
    SINGLE_TRANSACTION = "single-transaction"
    NO_TRANSACTION = "no-transaction"
    BASELINE = "baseline"


class EventAction(StrEnum):
    REPAIR = "repair"
    FORGET = "forget"
    BASELINE = "baseline"
    ROLLBACK = "rollback"
    STAMP = "stamp"


def _checks(values: type[StrEnum]) -> str:
    return ", ".join(f"'{v.value}'" for v in values)


_DDL = sql.SQL(
    """
CREATE SCHEMA IF NOT EXISTS {s};
COMMENT ON SCHEMA {s} IS 'migration ledger of python -m infra migrate; change it only through its commands';
CREATE TABLE IF NOT EXISTS {s}.applied (
    version            numeric PRIMARY KEY
        CONSTRAINT applied_version_check CHECK (version >= 0 AND version = trunc(version)),
    filename           text,
    name               text NOT NULL,
    checksum           text NOT NULL CHECK (checksum ~ '^[0-9a-f]{{64}}$'),
    status             text NOT NULL CHECK (status IN ({statuses})),
    transaction_mode   text NOT NULL CHECK (transaction_mode IN ({modes})),
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
    action       text NOT NULL CHECK (action IN ({actions})),
    version      numeric,
    filename     text,
    name         text,
    old_checksum text,
    new_checksum text,
    reason       text,
    by_user      text NOT NULL,
    db_user      text NOT NULL DEFAULT current_user,
    run_id       text NOT NULL
);
INSERT INTO {s}.settings (key, value) VALUES ('ledger_format', {fmt}) ON CONFLICT (key) DO NOTHING;
"""
).format(
    s=_S,
    statuses=sql.SQL(_checks(LedgerStatus)),
    modes=sql.SQL(_checks(TransactionMode)),
    actions=sql.SQL(_checks(EventAction)),
    fmt=sql.Literal(LEDGER_FORMAT),
)

# Format 1 -> 2: versions of any length, and the exact file name.
_UPGRADE_1 = sql.SQL(
    """
ALTER TABLE {s}.applied ALTER COLUMN version TYPE numeric, ADD COLUMN IF NOT EXISTS filename text,
    ADD CONSTRAINT applied_version_check CHECK (version >= 0 AND version = trunc(version));
ALTER TABLE {s}.events ALTER COLUMN version TYPE numeric, ADD COLUMN IF NOT EXISTS filename text;
UPDATE {s}.settings SET value = {fmt}, updated_at = clock_timestamp(), updated_by = current_user
 WHERE key = 'ledger_format';
"""
).format(s=_S, fmt=sql.Literal(LEDGER_FORMAT))


# -- reading --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppliedMigration:
    """One ledger row."""

    version: int
    filename: str | None  # None for rows recorded by ledger format 1
    name: str
    checksum: str
    status: LedgerStatus
    transaction_mode: TransactionMode
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
    def display_name(self) -> str:
        """The file name it was applied as (format-1 rows: rebuilt from version and slug)."""
        return self.filename or f"{self.version:04d}_{self.name}.sql"

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> AppliedMigration:
        """A row as ``to_jsonb`` gives it (either ledger format)."""
        return cls(
            version=int(row["version"]),
            filename=row.get("filename"),
            name=str(row["name"]),
            checksum=str(row["checksum"]),
            status=LedgerStatus(row["status"]),
            transaction_mode=TransactionMode(row["transaction_mode"]),
            applied_at=dt.datetime.fromisoformat(str(row["applied_at"])),
            duration_ms=None if row.get("duration_ms") is None else float(row["duration_ms"]),
            applied_by=str(row["applied_by"]),
            db_user=str(row["db_user"]),
            run_id=str(row["run_id"]),
            statements_applied=row.get("statements_applied"),
            statements_total=row.get("statements_total"),
            statement_hashes=tuple(row.get("statement_hashes") or ()),
            last_error=row.get("last_error"),
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
    """One message: try the lock; if held, fail with ML001 and the holder as DETAIL; else create
    (or upgrade) the ledger (``create``) and read it.

    Results of a successful execution: the ledger rows, then the ``environment`` setting.
    """
    ensure = (
        sql.SQL(
            "IF to_regclass({t}) IS NULL THEN EXECUTE {ddl}; "
            "ELSIF (SELECT value FROM {s}.settings WHERE key = 'ledger_format') = '1' THEN EXECUTE {up}; END IF;"
        ).format(
            t=sql.Literal(f"{LEDGER_SCHEMA}.applied"),
            s=_S,
            ddl=sql.Literal(_DDL.as_string(None)),
            up=sql.Literal(_UPGRADE_1.as_string(None)),
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
        "SELECT to_jsonb(a) FROM {s}.applied AS a ORDER BY a.version;\n"
        "SELECT (SELECT value FROM {s}.settings WHERE key = 'environment');"
    ).format(s=_S)


def parse_ledger_results(cur: psycopg.Cursor[tuple[Any, ...]]) -> tuple[tuple[AppliedMigration, ...], str | None]:
    """Rows and environment from a cursor that ran a message ending with :func:`read_ledger_message`."""
    while cur.description is None and cur.nextset():
        pass  # skip the results of the statements before the ledger SELECT (DO, ...)
    rows = tuple(AppliedMigration.from_json(r[0]) for r in cur.fetchall())
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


def lock_held_sql() -> sql.Composed:
    """A boolean expression: this session holds the migration lock."""
    return sql.SQL(
        "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() "
        "AND classid = {k1} AND objid = {k2} AND objsubid = 2)"
    ).format(k1=sql.Literal(LOCK_KEY[0]), k2=sql.Literal(LOCK_KEY[1]))


def try_lock_sql() -> sql.Composed:
    return sql.SQL("SELECT pg_try_advisory_lock({}, {})").format(sql.Literal(LOCK_KEY[0]), sql.Literal(LOCK_KEY[1]))


def unlock_sql() -> sql.Composed:
    return sql.SQL("SELECT pg_advisory_unlock({}, {})").format(sql.Literal(LOCK_KEY[0]), sql.Literal(LOCK_KEY[1]))


# -- writing: each function is one statement ------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who writes: the operator (os user@host) and the run."""

    by: str
    run_id: str


def _v(version: int) -> sql.Composable:
    return sql.SQL("{}::numeric").format(sql.Literal(str(version)))


def ensure_ledger_sql() -> sql.Composed:
    """Create the ledger if missing (a DO block: one statement)."""
    return sql.SQL("DO {}").format(
        sql.Literal(
            sql.SQL("BEGIN IF to_regclass({t}) IS NULL THEN EXECUTE {ddl}; END IF; END")
            .format(t=sql.Literal(f"{LEDGER_SCHEMA}.applied"), ddl=sql.Literal(_DDL.as_string(None)))
            .as_string(None)
        )
    )


def insert_applied(mig: Migration, mode: TransactionMode, actor: Actor) -> sql.Composed:
    """The row of a migration applied in a transaction (or baselined); returns its version.

    ``duration_ms`` is the server's time since the message arrived: the migration's own time.
    """
    return sql.SQL(
        "INSERT INTO {s}.applied (version, filename, name, checksum, status, transaction_mode, applied_at, "
        "duration_ms, applied_by, run_id) VALUES ({v}, {f}, {n}, {c}, "
        "'applied', {m}, clock_timestamp(), {ms}, {by}, {run}) RETURNING version"
    ).format(
        s=_S,
        v=_v(mig.version),
        f=sql.Literal(mig.filename),
        n=sql.Literal(mig.name),
        c=sql.Literal(mig.checksum),
        m=sql.Literal(mode.value),
        ms=sql.SQL("0")
        if mode is TransactionMode.BASELINE
        else sql.SQL("1000 * extract(epoch FROM clock_timestamp() - statement_timestamp())"),
        by=sql.Literal(actor.by),
        run=sql.Literal(actor.run_id),
    )


def insert_started(mig: Migration, actor: Actor) -> sql.Composed:
    """The ``partial`` row a no-transaction up section starts with (progress 0 of N)."""
    return sql.SQL(
        "INSERT INTO {s}.applied (version, filename, name, checksum, status, transaction_mode, applied_by, run_id, "
        "statements_applied, statements_total, statement_hashes) VALUES ({v}, {f}, {n}, {c}, 'partial', "
        "'no-transaction', {by}, {run}, 0, {t}, '{{}}')"
    ).format(
        s=_S,
        v=_v(mig.version),
        f=sql.Literal(mig.filename),
        n=sql.Literal(mig.name),
        c=sql.Literal(mig.checksum),
        by=sql.Literal(actor.by),
        run=sql.Literal(actor.run_id),
        t=sql.Literal(len(mig.up)),
    )


def mark_resumed(mig: Migration, actor: Actor) -> sql.Composed:
    """A partial or failed row taken up again by this run (its duration counts from now)."""
    return sql.SQL(
        "UPDATE {s}.applied SET status = 'partial', last_error = NULL, run_id = {run}, statements_total = {t}, "
        "filename = {f}, applied_at = clock_timestamp() WHERE version = {v}"
    ).format(
        s=_S, run=sql.Literal(actor.run_id), t=sql.Literal(len(mig.up)), f=sql.Literal(mig.filename), v=_v(mig.version)
    )


def mark_statement(mig: Migration, index: int, sha256: str) -> sql.Composed:
    """Statement ``index`` (0-based) of a no-transaction section is applied; returns the version."""
    return sql.SQL(
        "UPDATE {s}.applied SET statements_applied = {i}, statement_hashes = statement_hashes || {h}::text "
        "WHERE version = {v} AND statements_applied = {prev} RETURNING version"
    ).format(s=_S, i=sql.Literal(index + 1), h=sql.Literal(sha256), v=_v(mig.version), prev=sql.Literal(index))


def mark_applied(mig: Migration, actor: Actor) -> sql.Composed:
    """A no-transaction section finished: the row becomes ``applied``; returns the version.

    ``duration_ms`` is the server's time since the row was started (or resumed): the whole section
    is sent at once, so the runner cannot know it when it writes this.
    """
    return sql.SQL(
        "UPDATE {s}.applied SET status = 'applied', checksum = {c}, applied_at = clock_timestamp(), "
        "duration_ms = 1000 * extract(epoch FROM clock_timestamp() - applied_at), applied_by = {by} "
        "WHERE version = {v} RETURNING version"
    ).format(s=_S, c=sql.Literal(mig.checksum), by=sql.Literal(actor.by), v=_v(mig.version))


def mark_failed(version: int, error: str) -> sql.Composed:
    return sql.SQL("UPDATE {s}.applied SET status = 'failed', last_error = {e} WHERE version = {v}").format(
        s=_S, e=sql.Literal(error[:500]), v=_v(version)
    )


def delete(version: int) -> sql.Composed:
    """Forget one row (rollback, repair --forget); returns the version."""
    return sql.SQL("DELETE FROM {s}.applied WHERE version = {v} RETURNING version").format(s=_S, v=_v(version))


def accept_checksum(mig: Migration) -> sql.Composed:
    """``repair``: the row takes the file's checksum and name; returns the version."""
    return sql.SQL(
        "UPDATE {s}.applied SET checksum = {c}, name = {n}, filename = {f} WHERE version = {v} RETURNING version"
    ).format(s=_S, c=sql.Literal(mig.checksum), n=sql.Literal(mig.name), f=sql.Literal(mig.filename), v=_v(mig.version))


def event(
    action: EventAction,
    actor: Actor,
    *,
    version: int | None = None,
    filename: str | None = None,
    name: str | None = None,
    old_checksum: str | None = None,
    new_checksum: str | None = None,
    reason: str | None = None,
) -> sql.Composed:
    """One audit row in ``events``."""
    return sql.SQL(
        "INSERT INTO {s}.events (action, version, filename, name, old_checksum, new_checksum, reason, by_user, "
        "run_id) VALUES ({a}, {v}, {f}, {n}, {o}, {c}, {r}, {by}, {run})"
    ).format(
        s=_S,
        a=sql.Literal(action.value),
        v=_v(version) if version is not None else sql.SQL("NULL"),
        f=sql.Literal(filename),
        n=sql.Literal(name),
        o=sql.Literal(old_checksum),
        c=sql.Literal(new_checksum),
        r=sql.Literal(reason or None),
        by=sql.Literal(actor.by),
        run=sql.Literal(actor.run_id),
    )


def forget_all(actor: Actor, reason: str) -> sql.Composed:
    """Delete every row, each audited as ``forget`` (``reset``); returns the versions."""
    return sql.SQL(
        "WITH gone AS (DELETE FROM {s}.applied RETURNING version, filename, name, checksum) "
        "INSERT INTO {s}.events (action, version, filename, name, old_checksum, reason, by_user, run_id) "
        "SELECT 'forget', version, filename, name, checksum, {r}, {by}, {run} FROM gone RETURNING version"
    ).format(s=_S, r=sql.Literal(reason), by=sql.Literal(actor.by), run=sql.Literal(actor.run_id))


def put_setting(key: str, value: sql.Composable) -> sql.Composed:
    """Set ``settings[key]`` to the SQL expression ``value``."""
    return sql.SQL(
        "INSERT INTO {s}.settings (key, value) SELECT {k}, ({val})::text ON CONFLICT (key) DO UPDATE "
        "SET value = excluded.value, updated_at = clock_timestamp(), updated_by = current_user"
    ).format(s=_S, k=sql.Literal(key), val=value)


def ensure_ledger(conn: psycopg.Connection[Any]) -> None:
    """Create the ledger schema and tables if missing (idempotent)."""
    conn.execute(ensure_ledger_sql())


def stamp_environment(conn: psycopg.Connection[Any], env: str, *, by: str = "", run_id: str = "") -> None:
    """Record ``env`` as this database's environment (creating the ledger if needed), audited."""
    ensure_ledger(conn)
    with conn.transaction():
        old = ledger_environment(conn)
        if old == env:
            return
        actor = Actor(by or "unknown", run_id or "-")
        conn.execute(put_setting("environment", sql.Literal(env)))
        conn.execute(event(EventAction.STAMP, actor, reason=f"environment {old!r} -> {env!r}"))

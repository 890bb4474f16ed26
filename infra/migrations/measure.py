"""``plan --measure``: the locks PostgreSQL actually takes, read from ``pg_locks`` on a scratch server.

The caller (:func:`infra.migrations.commands.plan`) gives a database on a
:class:`~infra.migrations.scratch.ScratchServer` that already holds the schema the applied
files produce. For each pending migration:

* transactional: each statement in a transaction of its own, after the statements before it
  were committed (a lock an earlier statement holds would otherwise hide the same lock taken
  again); after it this session's rows of ``pg_locks`` are read together with
  ``pg_class.relfilenode`` (a new filenode for an existing relation means PostgreSQL rewrote it);
  then ``ROLLBACK``, and the statement runs again and commits. The migration itself holds every
  lock of its statements until its one commit: :attr:`MeasuredMigration.held`.
* no-transaction (``CREATE INDEX CONCURRENTLY`` ...): such a statement cannot run in a
  transaction, so a second session holds ``ROW EXCLUSIVE`` on every existing table (what any
  writer holds) while a third watches the statement's backend in ``pg_locks``: a statement that
  waits for writers (every CONCURRENTLY variant) or for a lock that conflicts with writers is
  seen waiting, its locks are recorded, and the writer lets go. A statement that needs neither
  may finish between two looks; the report then says what was seen.

Only objects that existed before the migration count: a table the migration creates is invisible
to everyone else until it commits. Raises :class:`~infra.errors.MigrationError` naming the file
and line of a statement that fails on the scratch server.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from infra.errors import MigrationError
from infra.migrations.connection import ConnectionSpec
from infra.migrations.locks import LockMode, StatementLocks, statement_locks
from infra.migrations.source import Migration, Statement

__all__ = ["MeasuredLock", "MeasuredMigration", "MeasuredStatement", "measure"]

_STATEMENT_TIMEOUT = "60s"
_POLL_SECONDS = 0.002

# This backend's (or a given backend's) locks on relations of this database and on types, with
# names; catalog relations (the query's own) are left out.
_LOCKS = """
SELECT coalesce(c.oid, t.oid), CASE WHEN c.oid IS NOT NULL THEN 'relation' ELSE 'type' END,
       coalesce(cn.nspname || '.' || c.relname, tn.nspname || '.' || t.typname), c.relkind::text, l.mode, l.granted
  FROM pg_catalog.pg_locks l
  LEFT JOIN pg_catalog.pg_class c ON l.locktype = 'relation' AND c.oid = l.relation
  LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_type t ON l.locktype = 'object' AND l.classid = 'pg_catalog.pg_type'::regclass
                                 AND t.oid = l.objid
  LEFT JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
 WHERE l.pid = {pid}
   AND (l.database IS NULL OR l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))
   AND coalesce(cn.nspname, tn.nspname) IS NOT NULL
   AND coalesce(cn.nspname, tn.nspname) NOT IN ('pg_catalog', 'information_schema')
   AND coalesce(cn.nspname, tn.nspname) !~ '^pg_(toast|temp)'
"""
_FILENODES = """
SELECT c.oid, n.nspname || '.' || c.relname, c.relfilenode
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
"""
_TYPES = """
SELECT t.oid FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
"""
# Statements whose effect lasts to the end of the migration's transaction: made again before each
# measured statement, since each is measured in a transaction of its own.
_SETTINGS = frozenset({"VariableSetStmt", "ConstraintsSetStmt"})
_KINDS = {"r": "table", "p": "table", "i": "index", "I": "index", "S": "sequence", "v": "view", "m": "view"}


@dataclass(frozen=True)
class MeasuredLock:
    """One lock seen in ``pg_locks``: on ``relation`` (``schema.name``; a type is ``type schema.name``)."""

    relation: str
    kind: str  # table | index | sequence | view | type
    mode: LockMode
    granted: bool  # False: seen requested and waiting (a no-transaction statement behind the writer)


@dataclass(frozen=True)
class MeasuredStatement:
    """What one statement took on the scratch server, and whether the parse-tree reading agrees."""

    line: int
    locks: tuple[MeasuredLock, ...]
    rewrites: tuple[str, ...]  # relations PostgreSQL rewrote (new relfilenode)
    how: str  # "transaction, rolled back" | "autocommit"
    disagreements: tuple[str, ...]  # where the parse-tree reading said something else

    @property
    def strongest(self) -> MeasuredLock | None:
        return max(self.locks, key=lambda lock: lock.mode, default=None)


@dataclass(frozen=True)
class MeasuredMigration:
    label: str
    statements: tuple[MeasuredStatement, ...]

    @property
    def held(self) -> tuple[MeasuredLock, ...]:
        """The strongest lock per object over all statements: what a transactional migration holds
        from the statement that takes it until its commit."""
        strongest: dict[str, MeasuredLock] = {}
        for stmt in self.statements:
            for lock in stmt.locks:
                if lock.relation not in strongest or lock.mode > strongest[lock.relation].mode:
                    strongest[lock.relation] = lock
        return tuple(sorted(strongest.values(), key=lambda lock: (-lock.mode, lock.relation)))


def measure(spec: ConnectionSpec, pending: Sequence[Migration]) -> tuple[MeasuredMigration, ...]:
    """Measure ``pending`` in order on the scratch database ``spec``, leaving each one applied there."""
    results: list[MeasuredMigration] = []
    for mig in pending:
        if mig.directives.no_transaction:
            statements = _measure_autocommit(spec, mig)
        else:
            statements = _measure_transaction(spec, mig)
        results.append(MeasuredMigration(mig.label, tuple(statements)))
    return tuple(results)


def _connect(spec: ConnectionSpec) -> psycopg.Connection[tuple[Any, ...]]:
    conn: psycopg.Connection[tuple[Any, ...]] = spec.connect(application_name="plan-measure", autocommit=True)
    conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(_STATEMENT_TIMEOUT)))
    return conn


_Seen = dict[tuple[int, str], MeasuredLock]  # (oid, mode) -> lock


def _locks(conn: psycopg.Connection[tuple[Any, ...]], pid: int | None = None) -> _Seen:
    who = sql.SQL("pg_catalog.pg_backend_pid()") if pid is None else sql.Literal(pid)
    seen: _Seen = {}
    for oid, what, name, relkind, mode, granted in conn.execute(sql.SQL(_LOCKS).format(pid=who)).fetchall():
        kind = "type" if what == "type" else _KINDS.get(str(relkind), "relation")
        label = f"type {name}" if kind == "type" else str(name)
        seen[(int(oid), str(mode))] = MeasuredLock(label, kind, LockMode.from_pg_locks(str(mode)), bool(granted))
    return seen


def _filenodes(conn: psycopg.Connection[tuple[Any, ...]]) -> dict[int, tuple[str, int]]:
    return {int(oid): (str(name), int(node)) for oid, name, node in conn.execute(_FILENODES).fetchall()}


def _existing(conn: psycopg.Connection[tuple[Any, ...]]) -> set[int]:
    """The oids of relations and types before the migration: only locks on these matter to others."""
    return set(_filenodes(conn)) | {int(r[0]) for r in conn.execute(_TYPES).fetchall()}


def _measure_transaction(spec: ConnectionSpec, mig: Migration) -> list[MeasuredStatement]:
    """Each statement in a transaction of its own, after the ones before it (so that a lock an earlier
    statement already holds does not hide this one's): measured and rolled back, then run again and
    committed. The settings the earlier statements made (``SET [LOCAL]``, ``SET ROLE``, ``SET
    CONSTRAINTS``) are made again first, as the migration's one transaction would still have them."""
    out: list[MeasuredStatement] = []
    with _connect(spec) as conn:
        existing = _existing(conn)
        settings: list[Statement] = []
        for stmt in mig.up:
            conn.execute("BEGIN")
            try:
                for setting in settings:
                    _execute(conn, mig, setting)
                held, nodes = _locks(conn), _filenodes(conn)
                _execute(conn, mig, stmt)
                taken = [
                    _as_before(k, lock, nodes) for k, lock in _locks(conn).items() if k not in held and k[0] in existing
                ]
                rewrites = _rewritten(nodes, _filenodes(conn), existing)
            finally:
                conn.execute("ROLLBACK")
            out.append(_statement(stmt, taken, rewrites, "transaction, rolled back"))
            conn.execute("BEGIN")  # now for real, so that the next statement and migration see it
            for done in (*settings, stmt):
                _execute(conn, mig, done)
            conn.execute("COMMIT")
            if stmt.kind in _SETTINGS:
                settings.append(stmt)
    return out


def _measure_autocommit(spec: ConnectionSpec, mig: Migration) -> list[MeasuredStatement]:
    out: list[MeasuredStatement] = []
    with _connect(spec) as worker, _connect(spec) as writer, _connect(spec) as watcher:
        existing = _existing(watcher)
        pid = int(worker.execute("SELECT pg_catalog.pg_backend_pid()").fetchall()[0][0])
        for stmt in mig.up:
            nodes = _filenodes(watcher)
            _hold_writer_locks(writer)
            failure: list[BaseException] = []

            def run(statement: Statement = stmt, errors: list[BaseException] = failure) -> None:
                try:
                    _execute(worker, mig, statement)
                except BaseException as exc:  # re-raised in the measuring thread
                    errors.append(exc)

            thread = threading.Thread(target=run, name="plan-measure", daemon=True)
            thread.start()
            seen: _Seen = {}
            released = False
            while thread.is_alive():
                blocked = watcher.execute("SELECT cardinality(pg_catalog.pg_blocking_pids(%s)) > 0", (pid,)).fetchall()
                # read after the check: a waiting statement holds, at that moment, all it took so far
                for key, lock in _locks(watcher, pid).items():
                    if key[0] in existing and (key not in seen or lock.granted):
                        seen[key] = lock
                if not released and blocked[0][0]:
                    writer.execute("COMMIT")
                    released = True
                time.sleep(_POLL_SECONDS)
            thread.join()
            if not released:
                writer.execute("COMMIT")
            if failure:
                raise failure[0]
            rewrites = _rewritten(nodes, _filenodes(watcher), existing)
            taken = [_as_before(key, lock, nodes) for key, lock in seen.items()]
            out.append(_statement(stmt, taken, rewrites, "autocommit"))
            existing |= set(_filenodes(watcher))  # what this statement built is now visible to all
    return out


def _as_before(key: tuple[int, str], lock: MeasuredLock, names: dict[int, tuple[str, int]]) -> MeasuredLock:
    """The lock named as the relation was called before the statement (a RENAME is reported by the old name)."""
    before = names.get(key[0])
    return lock if before is None else dataclasses.replace(lock, relation=before[0])


def _hold_writer_locks(writer: psycopg.Connection[tuple[Any, ...]]) -> None:
    """``BEGIN`` and ROW EXCLUSIVE on every ordinary table: the locks any writing application holds."""
    writer.execute("BEGIN")
    tables = writer.execute(
        "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname !~ '^pg_(toast|temp)'"
    ).fetchall()
    if tables:
        names = sql.SQL(", ").join(sql.Identifier(str(schema), str(name)) for schema, name in tables)
        writer.execute(sql.SQL("LOCK TABLE ONLY {} IN ROW EXCLUSIVE MODE").format(names))


def _execute(conn: psycopg.Connection[tuple[Any, ...]], mig: Migration, stmt: Statement) -> None:
    try:
        conn.execute(stmt.text.encode())
    except psycopg.Error as exc:
        detail = " ".join(str(exc).split())
        raise MigrationError(
            f"{mig.filename}:{stmt.line}: failed on the scratch server while measuring: {detail}"
        ) from exc


def _rewritten(
    before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]], existing: set[int]
) -> tuple[str, ...]:
    return tuple(
        name
        for oid, (name, node) in sorted(before.items(), key=lambda item: item[1][0])
        if oid in existing and oid in after and after[oid][1] != node
    )


def _statement(stmt: Statement, taken: list[MeasuredLock], rewrites: tuple[str, ...], how: str) -> MeasuredStatement:
    strongest: dict[str, MeasuredLock] = {}
    for lock in taken:
        old = strongest.get(lock.relation)
        if old is None or lock.mode > old.mode:
            strongest[lock.relation] = lock
    locks = tuple(sorted(strongest.values(), key=lambda lock: (-lock.mode, lock.relation)))
    return MeasuredStatement(stmt.line, locks, rewrites, how, _disagreements(statement_locks(stmt.text), locks))


def _disagreements(derived: StatementLocks, measured: Sequence[MeasuredLock]) -> tuple[str, ...]:
    """Where the parse-tree reading and ``pg_locks`` differ. An index or sequence the statement does
    not name follows its table and is not counted as missing from the reading."""
    out: list[str] = []
    said = {lock.relation: lock.mode for lock in derived.locks}
    seen: set[str] = set()
    for lock in measured:
        name = _match(lock.relation, said)
        if name is None:
            if lock.kind in ("table", "type", "view"):
                out.append(f"{lock.relation}: {lock.mode.label} taken, not derived")
            continue
        seen.add(name)
        if said[name] != lock.mode:
            out.append(f"{lock.relation}: {lock.mode.label} taken, {said[name].label} derived")
    out += [f"{name}: {mode.label} derived, not taken" for name, mode in said.items() if name not in seen]
    return tuple(out)


def _match(qualified: str, said: dict[str, LockMode]) -> str | None:
    """The derived name (``a``, ``public.a``, ``type e``) that a measured ``schema.name`` stands for."""
    prefix = "type " if qualified.startswith("type ") else ""
    name = qualified.removeprefix(prefix).partition(".")[2]
    for candidate in (qualified, f"{prefix}{name}"):
        if candidate in said:
            return candidate
    lowered = {key.lower(): key for key in said}
    return lowered.get(qualified.lower()) or lowered.get(f"{prefix}{name}".lower())

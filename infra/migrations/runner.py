"""Applying migrations: lock, validate, apply (or roll back) against one connection.

Round trips are the cost of a tunnel, so the runner spends as few as the protocol allows:

* acquire: one simple-query message tries the advisory lock, creates the ledger if missing and
  reads it (a held lock aborts that message with SQLSTATE ML001 and the holder as DETAIL);
* a transactional migration: one message ``BEGIN; RESET ALL; SET LOCAL <timeouts>; <file>;
  INSERT <ledger row>; COMMIT;``. The server runs it statement by statement, so the ledger row
  commits with the migration or not at all.
* a ``no-transaction`` migration: each statement alone in autocommit (``CREATE INDEX
  CONCURRENTLY`` refuses to share a message), each followed by a progress update, so a rerun
  resumes at the first unapplied statement after checking the hashes of those already applied.

:func:`check` is pure (files + ledger rows -> what to do, or the problems that forbid it), so
every refusal is decided before any migration SQL is sent.
"""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import random
import re
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from psycopg import pq, sql

from infra.errors import ChecksumMismatch, LockTimeout, MigrationError, ValidationError
from infra.migrations import catalog, ledger
from infra.migrations.ledger import LEDGER_SCHEMA, AppliedMigration, LockHolder
from infra.migrations.source import Migration, Statement

__all__ = [
    "LOCK_NOT_AVAILABLE",
    "NullProgress",
    "Problem",
    "Progress",
    "RunOptions",
    "Runner",
    "StepResult",
    "Validation",
    "check",
    "new_run_id",
    "raise_problems",
]

_log = logging.getLogger(__name__)

LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout expired
_S = sql.Identifier(LEDGER_SCHEMA)
# Each migration starts from the connection's defaults: a `SET search_path` or `SET ROLE` in one
# file does not leak into the next (RESET ALL leaves the role alone, hence RESET ROLE).
_CLEAN = sql.SQL("RESET ALL;\nRESET ROLE;\n")
# The ledger is written as the login role even when the migration switched role: SET LOCAL
# ROLE NONE lasts to the end of the transaction, so a no-transaction file keeps its own role.
_AS_RUNNER = sql.SQL("SET LOCAL ROLE NONE;\n")


def new_run_id() -> str:
    """Sortable and unique: ``20260123T101500-1a2b3c`` (also in application_name)."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def operator() -> str:
    """Who runs this (os user@host), recorded as applied_by / by_user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class RunOptions:
    """How a run behaves. Durations are PostgreSQL duration strings (``5s``, ``500ms``)."""

    lock_wait: float = 60.0  # seconds to poll for the advisory lock
    lock_timeout: str = "5s"
    statement_timeout: str = "15min"
    idle_in_transaction_timeout: str = "60s"
    # The server checks every so often whether the client is still there, and cancels the
    # migration if not (a killed runner or a dropped tunnel), so its locks go at once.
    client_check_interval: str = "1s"
    lock_retries: int = 3  # extra attempts of a migration that hit lock_timeout
    retry_base_delay: float = 0.5  # seconds; doubled per attempt, jittered
    single_transaction: bool = False
    rebuild_invalid_indexes: bool = False
    retry_failed: bool = False


class Progress(Protocol):
    """Where the runner reports progress (the CLI prints; tests record)."""

    def lock_waiting(self, holder: LockHolder) -> None: ...
    def started(self, migration: Migration, action: str) -> None: ...
    def retrying(self, migration: Migration, attempt: int, delay: float, reason: str) -> None: ...
    def finished(self, migration: Migration, action: str, ms: float) -> None: ...


class NullProgress:
    def lock_waiting(self, holder: LockHolder) -> None:
        pass

    def started(self, migration: Migration, action: str) -> None:
        pass

    def retrying(self, migration: Migration, attempt: int, delay: float, reason: str) -> None:
        pass

    def finished(self, migration: Migration, action: str, ms: float) -> None:
        pass


# -- validation (pure) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """Why the files and the ledger disagree, with the fix."""

    kind: str  # changed | missing | renamed | out-of-order | failed | partial-changed
    file: str
    message: str


@dataclass(frozen=True)
class Validation:
    """What a run would do: resume a partial migration, then apply ``pending``; or the problems."""

    applied: tuple[AppliedMigration, ...]
    pending: tuple[Migration, ...]
    resume: tuple[Migration, AppliedMigration] | None
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def todo(self, target: int | None = None) -> tuple[Migration, ...]:
        """The migrations a run applies, in order (a resumed one first), up to ``target``."""
        first = (self.resume[0],) if self.resume else ()
        return tuple(m for m in (*first, *self.pending) if target is None or m.version <= target)


def check(
    migrations: Sequence[Migration], rows: Sequence[AppliedMigration], *, retry_failed: bool = False
) -> Validation:
    """Compare files with the ledger. Never raises: problems are returned, with their fixes."""
    files = {m.version: m for m in migrations}
    problems: list[Problem] = []
    resume: tuple[Migration, AppliedMigration] | None = None
    for row in rows:
        mig = files.get(row.version)
        if mig is None:
            problems.append(
                Problem(
                    "missing",
                    row.filename,
                    f"{row.filename} is in the ledger (applied {row.applied_at:%Y-%m-%d %H:%M} by "
                    f"{row.applied_by}) but the file is missing; fix: restore it from version control, "
                    f"or if it was removed on purpose: python -m infra repair --version {row.version} "
                    "--forget --reason '...'",
                )
            )
            continue
        if mig.name != row.name:
            problems.append(
                Problem(
                    "renamed",
                    mig.filename,
                    f"version {row.version} was applied as {row.filename} but the file is now "
                    f"{mig.filename}; fix: rename it back (or accept with: python -m infra repair "
                    f"--version {row.version} --reason '...')",
                )
            )
            continue
        if row.status == "applied":
            if row.checksum != mig.checksum:
                problems.append(
                    Problem(
                        "changed",
                        mig.filename,
                        f"{mig.filename} was changed after it was applied on {row.applied_at:%Y-%m-%d} "
                        f"(ledger sha256 {row.checksum[:12]}, file {mig.checksum[:12]}); fix: restore the "
                        "applied content from version control and put the change in a new migration, or "
                        f"accept it: python -m infra repair --version {row.version} --reason '...'",
                    )
                )
            continue
        # partial (interrupted) or failed no-transaction migration: resumable when the
        # statements already applied are still the file's first statements.
        done = row.statements_applied or 0
        hashes = tuple(s.sha256 for s in mig.up[:done])
        if not mig.directives.no_transaction or len(mig.up) < done or hashes != row.statement_hashes:
            problems.append(
                Problem(
                    "partial-changed",
                    mig.filename,
                    f"{mig.filename} stopped after statement {done} of {row.statements_total} and its "
                    "applied statements were changed since; fix: restore them from version control, or "
                    "repair the database by hand and then: python -m infra repair "
                    f"--version {row.version} --forget --reason '...'",
                )
            )
        elif row.status == "failed" and not retry_failed:
            problems.append(
                Problem(
                    "failed",
                    mig.filename,
                    f"{mig.filename} failed at statement {done + 1} of {row.statements_total}: "
                    f"{row.last_error}; statements 1..{done} stay applied; fix the cause (the file's "
                    "later statements or the database), then rerun with --retry-failed",
                )
            )
        else:
            resume = (mig, row)
    top = max((r.version for r in rows), default=None)
    applied_versions = {r.version for r in rows}
    pending: list[Migration] = []
    for mig in migrations:
        if mig.version in applied_versions:
            continue
        if top is not None and mig.version < top:
            problems.append(
                Problem(
                    "out-of-order",
                    mig.filename,
                    f"{mig.filename} is new but its version {mig.version} is below the highest applied "
                    f"version {top}; fix: renumber it above {top:04d} (e.g. {top + 1:04d}_{mig.name}.sql)",
                )
            )
            continue
        pending.append(mig)
    return Validation(tuple(rows), tuple(pending), resume, tuple(problems))


def raise_problems(validation: Validation) -> None:
    """Raise :class:`ValidationError` (or :class:`ChecksumMismatch`) listing every problem."""
    if validation.ok:
        return
    text = "\n".join(p.message for p in validation.problems)
    if all(p.kind == "changed" for p in validation.problems):
        raise ChecksumMismatch(text)
    raise ValidationError(text)


# -- applying -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    """One migration applied (or rolled back) by this run."""

    version: int
    name: str
    action: str  # apply | resume | rollback
    ms: float
    attempts: int = 1
    statements: int = 0


_CIC = re.compile(
    r"^\s*create\s+(?:unique\s+)?index\s+concurrently\s+(?:if\s+not\s+exists\s+)?"
    r"(?P<index>\"(?:[^\"]|\"\")+\"|[\w$]+)\s+on\s+(?:only\s+)?"
    r"(?P<table>(?:\"(?:[^\"]|\"\")+\"|[\w$]+)(?:\.(?:\"(?:[^\"]|\"\")+\"|[\w$]+))?)",
    re.IGNORECASE,
)


def _unquote(ident: str) -> str:
    if ident.startswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident.lower()


@dataclass
class Runner:
    """Holds the run's connection and settings; one per run."""

    conn: psycopg.Connection[tuple[Any, ...]]
    run_id: str
    options: RunOptions = field(default_factory=RunOptions)
    progress: Progress = field(default_factory=NullProgress)
    applied_by: str = field(default_factory=operator)
    sleep: Callable[[float], None] = time.sleep
    locked: bool = False

    # -- lock ---------------------------------------------------------------------------------

    def acquire(self, *, create: bool = True) -> tuple[tuple[AppliedMigration, ...], str | None]:
        """Take the advisory lock (polling with jittered backoff up to ``lock_wait``), create the
        ledger if missing and read it. Raises :class:`LockTimeout` naming the holder."""
        deadline = time.monotonic() + self.options.lock_wait
        delay = 0.05
        message = ledger.acquire_message(create=create)
        reported = False
        while True:
            cur = self.conn.cursor()
            try:
                cur.execute(message)
            except psycopg.Error as exc:
                if exc.sqlstate != ledger.LOCK_HELD_SQLSTATE:
                    raise MigrationError(f"cannot read the migration ledger: {_one_line(exc)}") from exc
                holder = LockHolder.from_json(exc.diag.message_detail)
                if not reported:
                    self.progress.lock_waiting(holder)
                    reported = True
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LockTimeout(
                        f"another runner holds the migration lock: {holder.describe()}; waited "
                        f"{self.options.lock_wait:g}s; fix: wait for it to finish, or raise --lock-wait"
                    ) from None
                self.sleep(min(left, random.uniform(delay / 2, delay)))  # noqa: S311 - jitter, not crypto
                delay = min(delay * 2, 2.0)
                continue
            self.locked = True
            return ledger.parse_ledger_results(cur)

    def release(self) -> None:
        """Release the lock (closing the connection would too)."""
        if self.locked and not self.conn.closed:
            self.conn.execute(
                sql.SQL("SELECT pg_advisory_unlock({}, {})").format(
                    sql.Literal(ledger.LOCK_KEY[0]), sql.Literal(ledger.LOCK_KEY[1])
                )
            )
        self.locked = False

    # -- message pieces -----------------------------------------------------------------------

    def _timeouts(self, mig: Migration | None, *, local: bool) -> list[sql.Composable]:
        d = mig.directives if mig else None
        values = [
            ("lock_timeout", (d and d.lock_timeout) or self.options.lock_timeout),
            ("statement_timeout", (d and d.statement_timeout) or self.options.statement_timeout),
            ("idle_in_transaction_session_timeout", self.options.idle_in_transaction_timeout),
            ("client_connection_check_interval", self.options.client_check_interval),
        ]
        verb = sql.SQL("SET LOCAL" if local else "SET")
        return [
            sql.SQL("{} {} = {};\n").format(verb, sql.Identifier(name), sql.Literal(value)) for name, value in values
        ]

    def _ledger_insert(self, mig: Migration, mode: str) -> sql.Composable:
        # statement_timestamp() is when the server received this message: the duration is
        # the migration's own time on the server.
        return sql.SQL(
            "INSERT INTO {s}.applied (version, name, checksum, status, transaction_mode, applied_at, "
            "duration_ms, applied_by, run_id) VALUES ({v}, {n}, {c}, 'applied', {m}, clock_timestamp(), "
            "1000 * extract(epoch FROM clock_timestamp() - statement_timestamp()), {by}, {run});\n"
        ).format(
            s=_S,
            v=sql.Literal(mig.version),
            n=sql.Literal(mig.name),
            c=sql.Literal(mig.checksum),
            m=sql.Literal(mode),
            by=sql.Literal(self.applied_by),
            run=sql.Literal(self.run_id),
        )

    def _event(self, action: str, mig: Migration | AppliedMigration, reason: str) -> sql.Composable:
        return sql.SQL(
            "INSERT INTO {s}.events (action, version, name, old_checksum, reason, by_user, run_id) "
            "VALUES ({a}, {v}, {n}, {c}, {r}, {by}, {run});\n"
        ).format(
            s=_S,
            a=sql.Literal(action),
            v=sql.Literal(mig.version),
            n=sql.Literal(mig.name),
            c=sql.Literal(mig.checksum),
            r=sql.Literal(reason),
            by=sql.Literal(self.applied_by),
            run=sql.Literal(self.run_id),
        )

    def _compose(
        self,
        mig: Migration,
        head: Sequence[sql.Composable],
        statements: Sequence[Statement],
        tail: Sequence[sql.Composable],
    ) -> tuple[str, list[tuple[int, Statement]]]:
        """The message text and where each statement starts in it (to map error positions)."""
        parts = [p.as_string(self.conn) for p in head]
        offsets: list[tuple[int, Statement]] = []
        pos = sum(len(p) for p in parts)
        for stmt in statements:
            offsets.append((pos, stmt))
            piece = stmt.text + ";\n"
            parts.append(piece)
            pos += len(piece)
        parts += [p.as_string(self.conn) for p in tail]
        return "".join(parts), offsets

    # -- transactional ------------------------------------------------------------------------

    def apply_transactional(self, mig: Migration, *, stamp_catalog: bool = False) -> StepResult:
        """Apply in one transaction with its ledger row, in one round trip; retry on lock timeout.

        ``stamp_catalog`` (the last migration of a run) also records the catalog snapshot that
        ``drift`` compares against, in the same transaction and the same message.
        """
        head = [sql.SQL("BEGIN;\n"), _CLEAN, *self._timeouts(mig, local=True)]
        tail = [_AS_RUNNER, self._ledger_insert(mig, "transaction")]
        if stamp_catalog:
            tail.append(sql.SQL("{};\n").format(catalog.stamp_sql()))
        tail.append(sql.SQL("COMMIT;\n"))
        message, offsets = self._compose(mig, head, mig.up, tail)
        return self._run_with_retries(mig, "apply", message, offsets)

    def _run_with_retries(
        self, mig: Migration, action: str, message: str, offsets: list[tuple[int, Statement]]
    ) -> StepResult:
        self.progress.started(mig, action)
        attempt = 1
        while True:
            started = time.perf_counter()
            try:
                self.conn.execute(message.encode())
            except psycopg.Error as exc:
                self._rollback_quietly()
                if exc.sqlstate == LOCK_NOT_AVAILABLE and attempt <= self.options.lock_retries:
                    delay = _backoff(self.options.retry_base_delay, attempt)
                    self.progress.retrying(mig, attempt, delay, _one_line(exc))
                    self.sleep(delay)
                    attempt += 1
                    continue
                raise self._failure(mig, exc, offsets, attempt) from exc
            ms = (time.perf_counter() - started) * 1000
            self.progress.finished(mig, action, ms)
            return StepResult(mig.version, mig.name, action, ms, attempt, len(mig.up))

    def apply_single_transaction(self, migrations: Sequence[Migration]) -> list[StepResult]:
        """All of ``migrations`` in one transaction (``--single-transaction``), one message each;
        a lock timeout retries the whole run."""
        for mig in migrations:
            if mig.directives.no_transaction:
                raise MigrationError(
                    f"{mig.filename} is no-transaction and cannot run inside --single-transaction; "
                    "fix: run without --single-transaction"
                )
        attempt = 1
        while True:
            results: list[StepResult] = []
            try:
                for i, mig in enumerate(migrations):
                    head: list[sql.Composable] = [sql.SQL("BEGIN;\n")] if i == 0 else []
                    head += [_CLEAN, *self._timeouts(mig, local=True)]
                    tail = [_AS_RUNNER, self._ledger_insert(mig, "single-transaction")]
                    if i == len(migrations) - 1:
                        # the catalog snapshot drift compares against, committed with the run
                        tail += [sql.SQL("{};\n").format(catalog.stamp_sql()), sql.SQL("COMMIT;\n")]
                    message, offsets = self._compose(mig, head, mig.up, tail)
                    self.progress.started(mig, "apply")
                    started = time.perf_counter()
                    try:
                        self.conn.execute(message.encode())
                    except psycopg.Error as exc:
                        self._rollback_quietly()
                        if exc.sqlstate == LOCK_NOT_AVAILABLE and attempt <= self.options.lock_retries:
                            raise _Retry(mig, _one_line(exc)) from exc
                        raise self._failure(mig, exc, offsets, attempt) from exc
                    ms = (time.perf_counter() - started) * 1000
                    self.progress.finished(mig, "apply", ms)
                    results.append(StepResult(mig.version, mig.name, "apply", ms, attempt, len(mig.up)))
                return results
            except _Retry as retry:
                delay = _backoff(self.options.retry_base_delay, attempt)
                self.progress.retrying(retry.migration, attempt, delay, retry.reason)
                self.sleep(delay)
                attempt += 1

    # -- no-transaction -----------------------------------------------------------------------

    def apply_autocommit(self, mig: Migration, row: AppliedMigration | None) -> StepResult:
        """Statement by statement in autocommit, recording progress; resume after ``row``."""
        done = (row.statements_applied or 0) if row else 0
        total = len(mig.up)
        action = "resume" if row else "apply"
        self.progress.started(mig, action)
        started = time.perf_counter()
        setup = [_CLEAN, *self._timeouts(mig, local=False)]
        if row is None:
            setup.append(
                sql.SQL(
                    "INSERT INTO {s}.applied (version, name, checksum, status, transaction_mode, "
                    "applied_by, run_id, statements_applied, statements_total, statement_hashes) "
                    "VALUES ({v}, {n}, {c}, 'partial', 'no-transaction', {by}, {run}, 0, {t}, '{{}}');\n"
                ).format(
                    s=_S,
                    v=sql.Literal(mig.version),
                    n=sql.Literal(mig.name),
                    c=sql.Literal(mig.checksum),
                    by=sql.Literal(self.applied_by),
                    run=sql.Literal(self.run_id),
                    t=sql.Literal(total),
                )
            )
        else:
            setup.append(
                sql.SQL(
                    "UPDATE {s}.applied SET status = 'partial', last_error = NULL, run_id = {run}, "
                    "statements_total = {t} WHERE version = {v};\n"
                ).format(s=_S, run=sql.Literal(self.run_id), t=sql.Literal(total), v=sql.Literal(mig.version))
            )
            self._handle_invalid_indexes(mig, mig.up[done : done + 1])
        self.conn.execute(sql.Composed(setup))
        attempts = 1
        for index in range(done, total):
            stmt = mig.up[index]
            attempt = 1
            while True:
                try:
                    self.conn.execute(stmt.text.encode())
                    break
                except psycopg.Error as exc:
                    retryable = exc.sqlstate == LOCK_NOT_AVAILABLE and attempt <= self.options.lock_retries
                    if retryable and self._handle_invalid_indexes(mig, (stmt,), fail=False):
                        delay = _backoff(self.options.retry_base_delay, attempt)
                        self.progress.retrying(mig, attempt, delay, _one_line(exc))
                        self.sleep(delay)
                        attempt += 1
                        continue
                    self._record_failure(mig, exc)
                    raise self._failure(mig, exc, [(0, stmt)], attempt, autocommit_index=index) from exc
            attempts = max(attempts, attempt)
            last = index == total - 1
            ms = (time.perf_counter() - started) * 1000
            self.conn.execute(
                sql.SQL(
                    "BEGIN;\n{as_runner}UPDATE {s}.applied SET statements_applied = {i}, "
                    "statement_hashes = statement_hashes || {h}::text{fin} WHERE version = {v};\nCOMMIT;\n{reset}"
                ).format(
                    as_runner=_AS_RUNNER,
                    s=_S,
                    i=sql.Literal(index + 1),
                    h=sql.Literal(stmt.sha256),
                    fin=sql.SQL(
                        ", status = 'applied', checksum = {c}, applied_at = clock_timestamp(), "
                        "duration_ms = {ms}, applied_by = {by}"
                    ).format(c=sql.Literal(mig.checksum), ms=sql.Literal(ms), by=sql.Literal(self.applied_by))
                    if last
                    else sql.SQL(""),
                    v=sql.Literal(mig.version),
                    reset=_CLEAN if last else sql.SQL(""),
                )
            )
        if done >= total:  # everything ran before the interruption; only the status was left
            self.conn.execute(
                sql.SQL(
                    "BEGIN;\n{r}UPDATE {s}.applied SET status = 'applied', checksum = {c} WHERE version = {v};\n"
                    "COMMIT;\n{clean}"
                ).format(r=_AS_RUNNER, s=_S, c=sql.Literal(mig.checksum), v=sql.Literal(mig.version), clean=_CLEAN)
            )
        ms = (time.perf_counter() - started) * 1000
        self.progress.finished(mig, action, ms)
        return StepResult(mig.version, mig.name, action, ms, attempts, total - done)

    def _record_failure(self, mig: Migration, exc: psycopg.Error) -> None:
        if self.conn.closed:
            return
        try:
            self.conn.execute(
                sql.SQL(
                    "BEGIN;\n{r}UPDATE {s}.applied SET status = 'failed', last_error = {e} WHERE version = {v};\n"
                    "COMMIT;\n{clean}"
                ).format(
                    r=_AS_RUNNER,
                    s=_S,
                    e=sql.Literal(_one_line(exc)[:500]),
                    v=sql.Literal(mig.version),
                    clean=_CLEAN,
                )
            )
        except psycopg.Error:
            _log.warning("could not record the failure of %s in the ledger", mig.filename)

    def invalid_indexes(self, statements: Sequence[Statement]) -> list[tuple[str, str, Statement]]:
        """INVALID indexes (schema, name) left by the ``CREATE INDEX CONCURRENTLY`` statements."""
        found: list[tuple[str, str, Statement]] = []
        for stmt in statements:
            m = _CIC.match(stmt.text)
            if m is None:
                continue
            row = self.conn.execute(
                "SELECT n.nspname, c.relname FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE NOT i.indisvalid AND c.relname = %s AND i.indrelid = to_regclass(%s)",
                (_unquote(m.group("index")), m.group("table")),
            ).fetchone()
            if row is not None:
                found.append((str(row[0]), str(row[1]), stmt))
        return found

    def _handle_invalid_indexes(self, mig: Migration, statements: Sequence[Statement], *, fail: bool = True) -> bool:
        """Drop INVALID indexes left by an interrupted build when allowed; else refuse.

        Returns True when the statements may run (again); raises (``fail``) or returns False.
        """
        for schema, name, stmt in self.invalid_indexes(statements):
            ident = sql.Identifier(schema, name)
            if not self.options.rebuild_invalid_indexes:
                if not fail:
                    return False
                raise MigrationError(
                    f"{mig.filename}:{stmt.line}: index {schema}.{name} is INVALID after an interrupted "
                    f"CREATE INDEX CONCURRENTLY; fix: run DROP INDEX CONCURRENTLY {ident.as_string(self.conn)}; "
                    "then rerun, or rerun with --rebuild-invalid-indexes (drops and rebuilds it)"
                )
            _log.warning("dropping INVALID index %s.%s to rebuild it", schema, name)
            self.conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(ident))
        return True

    # -- rollback ------------------------------------------------------------------------------

    def rollback(self, mig: Migration, row: AppliedMigration, reason: str) -> StepResult:
        """Run the down section and delete the ledger row (in one transaction unless no-transaction)."""
        forget = [
            _AS_RUNNER,
            sql.SQL("DELETE FROM {s}.applied WHERE version = {v};\n").format(s=_S, v=sql.Literal(mig.version)),
            self._event("rollback", row, reason),
        ]
        if not mig.directives.no_transaction:
            head = [sql.SQL("BEGIN;\n"), _CLEAN, *self._timeouts(mig, local=True)]
            message, offsets = self._compose(mig, head, mig.down, [*forget, sql.SQL("COMMIT;\n")])
            return self._run_with_retries(mig, "rollback", message, offsets)
        self.progress.started(mig, "rollback")
        started = time.perf_counter()
        self.conn.execute(sql.Composed([_CLEAN, *self._timeouts(mig, local=False)]))
        for stmt in mig.down:
            try:
                self.conn.execute(stmt.text.encode())
            except psycopg.Error as exc:
                raise self._failure(mig, exc, [(0, stmt)], 1, section="down") from exc
        self.conn.execute(sql.Composed([sql.SQL("BEGIN;\n"), *forget, sql.SQL("COMMIT;\n"), _CLEAN]))
        ms = (time.perf_counter() - started) * 1000
        self.progress.finished(mig, "rollback", ms)
        return StepResult(mig.version, mig.name, "rollback", ms, 1, len(mig.down))

    # -- errors --------------------------------------------------------------------------------

    def _rollback_quietly(self) -> None:
        if self.conn.closed:
            return
        if self.conn.info.transaction_status in (pq.TransactionStatus.INERROR, pq.TransactionStatus.INTRANS):
            try:
                self.conn.execute("ROLLBACK")
            except psycopg.Error:
                _log.debug("rollback after a failed migration failed", exc_info=True)

    def _failure(
        self,
        mig: Migration,
        exc: psycopg.Error,
        offsets: Sequence[tuple[int, Statement]],
        attempts: int,
        *,
        autocommit_index: int | None = None,
        section: str = "up",
    ) -> MigrationError:
        where = mig.filename
        stmt = _statement_at(offsets, exc)
        if stmt is not None:
            line = stmt[1].line + stmt[1].text.count("\n", 0, max(stmt[0], 0))
            where = f"{mig.filename}:{line}"
        detail = _one_line(exc)
        if exc.sqlstate:
            detail = f"{detail} (SQLSTATE {exc.sqlstate})"
        if exc.sqlstate == LOCK_NOT_AVAILABLE:
            detail += f"; gave up after {attempts} attempts: another session holds a conflicting lock"
        if self.conn.closed or (isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None):
            detail += "; the connection was lost: the server rolls the open transaction back; rerun"
        if autocommit_index is not None:
            detail += (
                f"; statements 1..{autocommit_index} stay applied and are recorded, a rerun with "
                "--retry-failed resumes at this one"
            )
            invalid = [] if self.conn.closed else self.invalid_indexes(mig.up[autocommit_index : autocommit_index + 1])
            for schema, name, _ in invalid:
                detail += (
                    f"; index {schema}.{name} is INVALID: run DROP INDEX CONCURRENTLY {schema}.{name}; "
                    "or rerun with --rebuild-invalid-indexes"
                )
        elif section == "up":
            detail += "; rolled back, nothing recorded"
        return MigrationError(f"{where}: {detail}")


class _Retry(Exception):
    def __init__(self, migration: Migration, reason: str) -> None:
        super().__init__(reason)
        self.migration = migration
        self.reason = reason


def _backoff(base: float, attempt: int) -> float:
    cap = base * 2 ** (attempt - 1)
    return random.uniform(cap / 2, cap)  # noqa: S311 - jitter, not crypto


def _statement_at(offsets: Sequence[tuple[int, Statement]], exc: psycopg.Error) -> tuple[int, Statement] | None:
    """(offset within the statement, statement) for the error's position, if the server gave one."""
    if not offsets:
        return None
    position = exc.diag.statement_position
    if position is None:
        return (0, offsets[0][1]) if len(offsets) == 1 else None
    pos = int(position) - 1
    chosen: tuple[int, Statement] | None = None
    for start, stmt in offsets:
        if start <= pos:
            chosen = (pos - start, stmt)
    if chosen is not None and chosen[0] > len(chosen[1].text):
        return None  # the error is in our own SQL after the file's statements
    return chosen


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__

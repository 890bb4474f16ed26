"""``transaction:false`` sections: statement by statement in autocommit, progress in the ledger.

``CREATE INDEX CONCURRENTLY`` and friends refuse to run in a transaction block, and a message of
several statements is one implicit transaction, so each statement goes alone. After each, one
message checks the session (the guard), records the statement's sha256 and the count in the ledger,
and, after the last, marks the row ``applied``: a rerun resumes at the first unapplied statement
once the hashes of those already applied still match the file (:mod:`infra.migrations.validate`).

An INVALID index left by an interrupted concurrent build is detected and named with the fix, or
dropped and rebuilt with ``--rebuild-invalid-indexes``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from infra.errors import MigrationError
from infra.migrations import ledger
from infra.migrations.messages import (
    AS_RUNNER,
    CLEAN,
    Message,
    Unacknowledged,
    guard,
    one_line,
    timeouts,
    unacknowledged,
)
from infra.migrations.source import Migration
from infra.migrations.statements import Statement, concurrent_index
from infra.migrations.steps import LOCK_NOT_AVAILABLE, Action, Outcome, StepResult, backoff

if TYPE_CHECKING:
    from infra.migrations.runner import Runner

__all__ = ["apply_autocommit", "invalid_indexes", "run_statements"]

_log = logging.getLogger(__name__)


def apply_autocommit(runner: Runner, mig: Migration, row: ledger.AppliedMigration | None) -> StepResult:
    """The up section statement by statement, recording progress; resume after ``row``."""
    done = (row.statements_applied or 0) if row else 0
    total = len(mig.up)
    action = Action.RESUME if row else Action.APPLY
    runner.progress.started(mig, action)
    started = time.perf_counter()
    setup = Message(runner.conn).ours(*CLEAN, *timeouts(runner.timeouts_for(mig), local=False))
    if row is None:
        setup.ours(ledger.insert_started(mig, runner.actor))
    else:
        setup.ours(ledger.mark_resumed(mig, runner.actor))
        _handle_invalid_indexes(runner, mig, mig.up[done : done + 1])
    _send(runner, mig, setup, f"nothing ran; statements 1..{done} stay applied from before")
    attempts = 1
    for index in range(done, total):
        attempts = max(attempts, _run_one(runner, mig, index))
        last = index == total - 1
        writes = [ledger.mark_statement(mig, index, mig.up[index].sha256)]
        if last:
            writes.append(ledger.mark_applied(mig, (time.perf_counter() - started) * 1000, runner.actor))
        message = runner.finish(Message(runner.conn).ours(sql.SQL("BEGIN")), mig, *writes).commit()
        if last:
            message.ours(*CLEAN)
        _send(runner, mig, message, f"statement {index + 1} ran but is not recorded; statements 1..{index} are")
    if done >= total:  # everything ran before the interruption; only the status was left
        ms = (time.perf_counter() - started) * 1000
        message = Message(runner.conn).ours(sql.SQL("BEGIN"), AS_RUNNER)
        message.ours(ledger.mark_applied(mig, ms, runner.actor), returns=mig.version).commit().ours(*CLEAN)
        _send(runner, mig, message, f"statements 1..{done} stay applied")
    ms = (time.perf_counter() - started) * 1000
    runner.progress.finished(mig, action, Outcome.DONE, ms)
    return StepResult(mig.version, mig.name, mig.filename, action, Outcome.DONE, ms, attempts, total - done)


def _run_one(runner: Runner, mig: Migration, index: int) -> int:
    """Statement ``index`` alone, retried on a lock timeout; the attempts it took."""
    stmt = mig.up[index]
    attempt = 1
    while True:
        message = Message(runner.conn).theirs([stmt])
        try:
            message.send()
            return attempt
        except psycopg.Error as exc:
            retryable = exc.sqlstate == LOCK_NOT_AVAILABLE and attempt <= runner.options.lock_retries
            if retryable and _handle_invalid_indexes(runner, mig, (stmt,), fail=False):
                delay = backoff(runner.options.retry_base_delay, attempt, runner.options.retry_max_delay)
                runner.progress.retrying(mig, attempt, delay, one_line(exc))
                runner.sleep(delay)
                attempt += 1
                continue
            _record_failure(runner, mig, one_line(exc))
            raise _failure(runner, mig, exc, message, attempt, index) from exc
        except Unacknowledged as exc:
            _record_failure(runner, mig, exc.detail)
            raise unacknowledged(mig, exc) from exc


def _send(runner: Runner, mig: Migration, message: Message, after: str) -> None:
    """One bookkeeping message; a failure (the guard, a lost connection) is recorded and raised."""
    try:
        message.send()
    except psycopg.Error as exc:
        runner.rollback_quietly()
        _record_failure(runner, mig, one_line(exc))
        raise runner.failure(mig, exc, message, 1, after=after) from exc
    except Unacknowledged as exc:
        raise unacknowledged(mig, exc) from exc


def _failure(
    runner: Runner, mig: Migration, exc: psycopg.Error, message: Message, attempts: int, index: int
) -> MigrationError:
    after = (
        f"statements 1..{index} stay applied and are recorded, a rerun with --retry-failed resumes at statement "
        f"{index + 1}"
    )
    if not runner.conn.closed:
        for schema, name, _ in invalid_indexes(runner, mig.up[index : index + 1]):
            after += (
                f"; index {schema}.{name} is INVALID: run DROP INDEX CONCURRENTLY {schema}.{name}; "
                "or rerun with --rebuild-invalid-indexes"
            )
    return runner.failure(mig, exc, message, attempts, after=after)


def _record_failure(runner: Runner, mig: Migration, error: str) -> None:
    if runner.conn.closed:
        return
    message = Message(runner.conn).ours(sql.SQL("BEGIN"), AS_RUNNER, ledger.mark_failed(mig.version, error)).commit()
    try:
        message.ours(*CLEAN).send()
    except (psycopg.Error, Unacknowledged):
        runner.rollback_quietly()
        _log.warning("could not record the failure of %s in the ledger", mig.filename)


def run_statements(runner: Runner, mig: Migration, statements: Sequence[Statement], section: str) -> None:
    """A ``transaction:false`` down section: each statement alone, the session checked after each."""
    expected = runner.timeouts_for(mig)
    runner.conn.execute(sql.SQL(";\n").join([*CLEAN, *timeouts(expected, local=False)]))
    for index, stmt in enumerate(statements):
        # alone: a second statement in the message would make it one (implicit) transaction
        for message in (Message(runner.conn).theirs([stmt]), Message(runner.conn).ours(guard(expected))):
            try:
                message.send()
            except psycopg.Error as exc:
                runner.rollback_quietly()
                after = f"the {section} section stopped at statement {index + 1}; the ledger still lists the migration"
                raise runner.failure(mig, exc, message, 1, after=after) from exc
            except Unacknowledged as exc:
                raise unacknowledged(mig, exc) from exc


def invalid_indexes(runner: Runner, statements: Sequence[Statement]) -> list[tuple[str, str, Statement]]:
    """INVALID indexes (schema, name) left by the ``CREATE INDEX CONCURRENTLY`` statements."""
    found: list[tuple[str, str, Statement]] = []
    for stmt in statements:
        target = concurrent_index(stmt)
        if target is None:
            continue
        schema, table, index = target
        relation = sql.Identifier(schema, table) if schema else sql.Identifier(table)
        row = runner.conn.execute(
            "SELECT n.nspname, c.relname FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE NOT i.indisvalid AND c.relname = %s AND i.indrelid = to_regclass(%s)",
            (index, relation.as_string(runner.conn)),
        ).fetchone()
        if row is not None:
            found.append((str(row[0]), str(row[1]), stmt))
    return found


def _handle_invalid_indexes(
    runner: Runner, mig: Migration, statements: Sequence[Statement], *, fail: bool = True
) -> bool:
    """Drop INVALID indexes left by an interrupted build when allowed; else refuse.

    Returns True when the statements may run (again); raises (``fail``) or returns False.
    """
    for schema, name, stmt in invalid_indexes(runner, statements):
        ident = sql.Identifier(schema, name)
        if not runner.options.rebuild_invalid_indexes:
            if not fail:
                return False
            raise MigrationError(
                f"index {schema}.{name} is INVALID after an interrupted CREATE INDEX CONCURRENTLY",
                file=mig.filename,
                line=stmt.line,
                fix=f"run DROP INDEX CONCURRENTLY {ident.as_string(runner.conn)}; then rerun, or rerun with "
                "--rebuild-invalid-indexes (drops and rebuilds it)",
            )
        _log.warning("dropping INVALID index %s.%s to rebuild it", schema, name)
        runner.conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(ident))
    return True

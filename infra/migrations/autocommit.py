"""``transaction:false`` sections: the whole section in one round trip, progress in the ledger.

``CREATE INDEX CONCURRENTLY`` and friends refuse to run in a transaction block, and a simple-query
message of several statements is one implicit transaction, so the section goes as a
:class:`~infra.migrations.messages.Pipeline`: the file's statements each alone, and after each,
in a transaction of the runner's own, the guard (the session is as the runner set it), the
statement's sha256 and the count in the ledger; after the last, the row becomes ``applied``. An
error makes the server skip the rest, so a statement is never recorded without having run and
nothing runs after a failure; a rerun resumes at the first unrecorded statement once the hashes
of those recorded still match the file (:mod:`infra.migrations.validate`). A lock timeout retries
from the statement that hit it, in a new pipeline.

An INVALID index left by an interrupted concurrent build is detected and named with the fix, or
dropped and rebuilt with ``--rebuild-invalid-indexes``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from infra.errors import MigrationError
from infra.migrations import catalog, ledger
from infra.migrations.messages import (
    AS_RUNNER,
    CLEAN,
    Message,
    Pipeline,
    Unacknowledged,
    guard,
    one_line,
    timeouts,
    unacknowledged,
)
from infra.migrations.source import Migration, Section
from infra.migrations.statements import Statement, concurrent_index
from infra.migrations.steps import LOCK_NOT_AVAILABLE, Action, Outcome, StepResult, backoff

if TYPE_CHECKING:
    from infra.migrations.runner import Runner

__all__ = ["apply_autocommit", "invalid_indexes", "rollback_autocommit"]

_log = logging.getLogger(__name__)
_BEGIN = sql.SQL("BEGIN")


@dataclasses.dataclass
class _Layout:
    """Where each part of a pipeline starts (entry indexes), to say what a failure left behind."""

    statements: dict[int, int] = dataclasses.field(default_factory=dict)  # entry -> statement index
    records: dict[int, int] = dataclasses.field(default_factory=dict)  # first entry of a record -> index
    setup_end: int = 0  # entries before this are the setup transaction
    last_end: int = 0  # entries from here on come after the last record (the clean slate)

    def where(self, entry: int) -> tuple[str, int]:
        """("setup" | "statement" | "record" | "clean", statement index)."""
        if entry < self.setup_end:
            return "setup", -1
        if entry >= self.last_end:
            return "clean", -1
        if entry in self.statements:
            return "statement", self.statements[entry]
        start = max(e for e in self.records if e <= entry)
        return "record", self.records[start]


def apply_autocommit(
    runner: Runner, mig: Migration, row: ledger.AppliedMigration | None, *, stamp_catalog: bool = False
) -> StepResult:
    """The up section in one pipeline, recording progress; resume after ``row``; a lock timeout
    retries from the statement that hit it. ``stamp_catalog``: the run's last migration."""
    done = (row.statements_applied or 0) if row else 0
    total = len(mig.up)
    action = Action.RESUME if row else Action.APPLY
    runner.progress.started(mig, action)
    started = time.perf_counter()
    if row is not None:
        _handle_invalid_indexes(runner, mig, mig.up[done : done + 1])
    first, setup, attempt, attempts = done, True, 1, 1
    while True:
        pipeline, layout = _up_pipeline(runner, mig, first, setup=setup, resumed=row is not None, stamp=stamp_catalog)
        try:
            pipeline.send()
            break
        except psycopg.Error as exc:
            runner.rollback_quietly()
            if pipeline.failed_at is None:  # not a statement's error: the connection, most likely
                _record_failure(runner, mig, one_line(exc))
                after = "the ledger row says how far the section got (status shows it); a rerun resumes after it"
                raise runner.failure(mig, exc, pipeline, attempt, after=after) from exc
            part, index = layout.where(pipeline.failed_at)
            if part == "statement":
                stmt = mig.up[index]
                attempt = attempt if index == first else 1
                retryable = exc.sqlstate == LOCK_NOT_AVAILABLE and attempt <= runner.options.lock_retries
                if retryable and _handle_invalid_indexes(runner, mig, (stmt,), fail=False):
                    delay = backoff(runner.options.retry_base_delay, attempt, runner.options.retry_max_delay)
                    runner.progress.retrying(mig, attempt, delay, one_line(exc))
                    runner.sleep(delay)
                    first, setup, attempt = index, False, attempt + 1
                    attempts = max(attempts, attempt)
                    continue
                recorded = _record_failure(runner, mig, one_line(exc))
                raise _failure(runner, mig, exc, pipeline, attempt, index, recorded=recorded) from exc
            _record_failure(runner, mig, one_line(exc))
            after = {
                "setup": "nothing ran" + (f"; statements 1..{first} stay applied from before" if first else ""),
                "record": f"statement {index + 1} ran but its record failed: both rolled back where the server "
                f"allows (an index built CONCURRENTLY stays INVALID); {_recorded(index)}",
                "clean": "the migration is applied and recorded",
            }[part]
            raise runner.failure(mig, exc, pipeline, attempt, after=after) from exc
        except Unacknowledged as exc:
            scope = "the ledger row says how far the section got (status shows it)"
            raise unacknowledged(mig, exc, scope=scope) from exc
    ms = (time.perf_counter() - started) * 1000
    runner.progress.finished(mig, action, Outcome.DONE, ms)
    return StepResult(mig.version, mig.name, mig.filename, action, Outcome.DONE, ms, attempts, total - done)


def _up_pipeline(
    runner: Runner, mig: Migration, first: int, *, setup: bool, resumed: bool, stamp: bool
) -> tuple[Pipeline, _Layout]:
    """[setup transaction] (statement, its record)... from ``first``, then the clean slate."""
    pipeline, layout = Pipeline(runner.conn), _Layout()
    if setup:
        start_row = ledger.mark_resumed(mig, runner.actor) if resumed else ledger.insert_started(mig, runner.actor)
        pipeline.ours(_BEGIN, *CLEAN, *timeouts(runner.timeouts_for(mig), local=False), start_row).commit()
    layout.setup_end = len(pipeline.entries)
    total = len(mig.up)
    for index in range(first, total):
        layout.statements[len(pipeline.entries)] = index
        pipeline.theirs([mig.up[index]])
        layout.records[len(pipeline.entries)] = index
        writes = [ledger.mark_statement(mig, index, mig.up[index].sha256)]
        if index == total - 1:
            writes.append(ledger.mark_applied(mig, runner.actor))
        _record(runner, pipeline.ours(_BEGIN), mig, writes, stamp and index == total - 1)
    if first >= total:  # everything ran before the interruption; only the status was left
        layout.records[len(pipeline.entries)] = total - 1
        _record(runner, pipeline.ours(_BEGIN), mig, [ledger.mark_applied(mig, runner.actor)], stamp)
    layout.last_end = len(pipeline.entries)
    pipeline.ours(*CLEAN)
    return pipeline, layout


def _record(runner: Runner, pipeline: Pipeline, mig: Migration, writes: list[sql.Composed], stamp: bool) -> None:
    runner.finish(pipeline, mig, *writes)
    if stamp:
        pipeline.ours(catalog.stamp_sql())
    pipeline.commit()


def rollback_autocommit(
    runner: Runner, mig: Migration, section: Section, forget: Sequence[sql.Composed], extra: Sequence[sql.Composed]
) -> None:
    """A ``transaction:false`` down section in one pipeline: each statement alone, the guard after
    each, then the ledger row's removal (``forget``, then ``extra``) in a transaction of its own."""
    expected = runner.timeouts_for(mig)
    pipeline, layout = Pipeline(runner.conn), _Layout()
    pipeline.ours(_BEGIN, *CLEAN, *timeouts(expected, local=False)).commit()
    layout.setup_end = len(pipeline.entries)
    for index, stmt in enumerate(section.statements):
        layout.statements[len(pipeline.entries)] = index
        pipeline.theirs([stmt])
        layout.records[len(pipeline.entries)] = index
        pipeline.ours(_BEGIN, guard(expected)).commit()
    layout.records[len(pipeline.entries)] = len(section.statements)
    runner.finish(pipeline.ours(_BEGIN), mig, *forget).ours(*extra).commit()
    layout.last_end = len(pipeline.entries)
    pipeline.ours(*CLEAN)
    try:
        pipeline.send()
    except psycopg.Error as exc:
        runner.rollback_quietly()
        if pipeline.failed_at is None:  # not a statement's error: the connection, most likely
            # the server may have run all of it, the ledger's change included, before the reply was lost
            after = "the down section may have run in part or in whole; status shows whether the ledger still lists it"
            raise runner.failure(mig, exc, pipeline, 1, after=after) from exc
        part, index = layout.where(pipeline.failed_at)
        after = {
            "setup": "nothing ran; the ledger still lists the migration",
            "statement": f"the down section stopped at statement {index + 1}; the ledger still lists the migration",
            "record": f"the down section stopped after statement {index}; the ledger still lists the migration"
            if index < len(section.statements)
            else "its down section ran; the ledger still lists it",
            "clean": "the down section ran and the ledger no longer lists it",
        }[part]
        raise runner.failure(mig, exc, pipeline, 1, after=after) from exc
    except Unacknowledged as exc:
        raise unacknowledged(mig, exc, scope="the ledger says whether it still lists the migration") from exc


def _recorded(count: int) -> str:
    """What the ledger holds when the first ``count`` statements are recorded, in words."""
    return f"statements 1..{count} stay applied and are recorded" if count else "no statement is recorded"


def _failure(
    runner: Runner, mig: Migration, exc: psycopg.Error, message: Message, attempts: int, index: int, *, recorded: bool
) -> MigrationError:
    # not recorded (the connection is gone): the row stays partial, which a plain rerun resumes
    rerun = "a rerun with --retry-failed" if recorded else "a rerun"
    after = f"{_recorded(index)}, {rerun} resumes at statement {index + 1}"
    if not runner.conn.closed:
        for schema, name, _ in invalid_indexes(runner, mig.up[index : index + 1]):
            after += (
                f"; index {schema}.{name} is INVALID: run DROP INDEX CONCURRENTLY {schema}.{name}; "
                "or rerun with --rebuild-invalid-indexes"
            )
    return runner.failure(mig, exc, message, attempts, after=after)


def _record_failure(runner: Runner, mig: Migration, error: str) -> bool:
    """Mark the row failed; False when it could not be (it stays partial)."""
    if runner.conn.closed:
        return False
    message = Message(runner.conn).ours(sql.SQL("BEGIN"), AS_RUNNER, ledger.mark_failed(mig.version, error)).commit()
    try:
        message.ours(*CLEAN).send()
    except (psycopg.Error, Unacknowledged):
        runner.rollback_quietly()
        _log.warning("could not record the failure of %s in the ledger", mig.filename)
        return False
    return True


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

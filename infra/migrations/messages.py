"""The simple-query messages the runner sends, and the proof that the server ran all of them.

A :class:`Message` holds the runner's own statements and a file's statements, each on lines of
its own: a file's statement is followed by a newline and then ``;``, so a statement that ends in
a ``-- comment`` is never commented out and no text is ever appended to a user's line.

:meth:`Message.send` counts what the server answered. Success means one result per statement
sent, every ``RETURNING`` of a ledger write returned its row, and a final ``COMMIT`` answered
``COMMIT``; anything less raises :class:`Unacknowledged` (after the open transaction is rolled back),
so "applied" is never printed for SQL that did not run (libpq, for one, ends a query at a NUL).

The pieces every migration message shares live here too: :data:`CLEAN` (each migration starts
from the connection's defaults, without the last one's temporary objects), the timeouts, and the
:func:`guard` that fails the migration's own transaction if it changed what the runner pins.
"""

from __future__ import annotations

import functools
import select
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import psycopg
from psycopg import pq, sql

from infra.errors import MigrationError
from infra.migrations import ledger
from infra.migrations.source import Migration
from infra.migrations.statements import PINNED, Statement

__all__ = [
    "AS_RUNNER",
    "CLEAN",
    "GUARD_SQLSTATE",
    "Message",
    "Pipeline",
    "Unacknowledged",
    "guard",
    "one_line",
    "pipeline_results",
    "timeouts",
    "unacknowledged",
]

#: Each migration starts from the connection's defaults and without what the last one left in the
#: session: a ``SET``, ``SET ROLE``/``SET SESSION AUTHORIZATION``, temporary table, sequence state
#: (``currval``), prepared statement, ``WITH HOLD`` cursor or ``LISTEN`` of one file does not leak into
#: the next. (RESET ALL leaves the role and the session user alone, hence their own RESETs; it keeps the
#: settings pinned at connect time. DISCARD ALL would do all this but refuses a transaction block.)
CLEAN: tuple[sql.Composable, ...] = tuple(
    sql.SQL(s)
    for s in (
        "RESET ALL",
        "RESET SESSION AUTHORIZATION",
        "RESET ROLE",
        "DISCARD TEMP",
        "DISCARD SEQUENCES",
        "DEALLOCATE ALL",
        "CLOSE ALL",
        "UNLISTEN *",
    )
)
#: The ledger is written as the login role even when the migration switched role: SET LOCAL ROLE
#: NONE lasts to the end of the transaction, so a no-transaction section keeps its own role.
AS_RUNNER = sql.SQL("SET LOCAL ROLE NONE")
#: Our SQLSTATE for "the migration changed what the runner pins" (raised by :func:`guard`).
GUARD_SQLSTATE = "ML002"
_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.EMPTY_QUERY)


def timeouts(values: Mapping[str, str], *, local: bool) -> list[sql.Composable]:
    """``SET [LOCAL] name = 'value'`` for each of the runner's timeouts."""
    verb = sql.SQL("SET LOCAL" if local else "SET")
    return [sql.SQL("{} {} = {}").format(verb, sql.Identifier(k), sql.Literal(v)) for k, v in values.items()]


def guard(expected_timeouts: Mapping[str, str]) -> sql.Composable:
    """One statement that fails (SQLSTATE ML002, DETAIL = what changed) unless the pinned settings,
    the timeouts and the migration lock are still as the runner set them.

    It runs at the end of every migration, inside its transaction: a migration that hid a
    ``SET standard_conforming_strings = off`` in a DO block is rolled back, and the next message is
    never read under the changed setting. (Built once per set of timeouts: every migration of a
    run sends the same one.)
    """
    return _guard(tuple(expected_timeouts.items()))


@functools.lru_cache(maxsize=16)
def _guard(expected: tuple[tuple[str, str], ...]) -> sql.Composable:
    expected_timeouts = dict(expected)
    checks: list[sql.Composable] = [
        sql.SQL("IF current_setting({n}) <> {v} THEN changed := changed || {n}::text; END IF;").format(
            n=sql.Literal(name), v=sql.Literal(value)
        )
        for name, value in PINNED.items()
    ]
    checks += [
        sql.SQL(
            "IF current_setting({n})::interval <> {v}::interval THEN changed := changed || {n}::text; END IF;"
        ).format(n=sql.Literal(name), v=sql.Literal(value))
        for name, value in expected_timeouts.items()
    ]
    checks.append(
        sql.SQL("IF NOT {held} THEN changed := changed || 'the migration lock'::text; END IF;").format(
            held=ledger.lock_held_sql()
        )
    )
    # first, the search path of the rest of this transaction (the guard and the ledger writes after
    # it): pg_catalog, so a file's own schema put before it cannot shadow a function or an operator
    body = sql.SQL(
        "DECLARE changed pg_catalog.text[] := '{{}}'; BEGIN "
        "PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true); "
        "{checks} IF cardinality(changed) > 0 THEN "
        "RAISE EXCEPTION 'the migration changed what the runner pins' USING ERRCODE = {code}, "
        "DETAIL = array_to_string(changed, ', '); END IF; END"
    ).format(checks=sql.SQL(" ").join(checks), code=sql.Literal(GUARD_SQLSTATE))
    return sql.SQL(sql.SQL("DO {}").format(sql.Literal(body.as_string(None))).as_string(None))


class Unacknowledged(Exception):
    """The server answered fewer statements than were sent, or a ledger write returned nothing."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _Cursor(psycopg.Cursor[tuple[Any, ...]]):
    """A cursor that keeps every result of the last message, including the error that ended it
    (psycopg checks them all in ``_check_results`` and raises on the first error)."""

    seen: list[pq.abc.PGresult]

    def _check_results(self, results: list[pq.abc.PGresult]) -> None:
        self.seen = results
        super()._check_results(results)


@dataclass
class _Entry:
    start: int  # character offset in the message
    statement: Statement | None  # a file's statement; None for the runner's own
    returns: str | None = None  # the value a ledger write must return


@dataclass
class Message:
    """One simple-query message under construction."""

    conn: psycopg.Connection[tuple[Any, ...]]
    parts: list[str] = field(default_factory=list)
    entries: list[_Entry] = field(default_factory=list)
    length: int = 0
    failed_at: int | None = None  # index of the statement whose result was an error
    commits: list[int] = field(default_factory=list)  # our COMMITs (each must answer COMMIT, not ROLLBACK)
    #: what follows each of our statements and each of a file's (a simple-query message separates
    #: them with ``;``; a :class:`Pipeline` sends each alone)
    ours_end = ";\n"
    theirs_end = "\n;\n"

    def ours(self, *statements: sql.Composable, returns: int | None = None) -> Self:
        """The runner's statements (one each); ``returns``: the version the last one must return."""
        for i, stmt in enumerate(statements):
            last = i == len(statements) - 1
            self._add(
                stmt.as_string(self.conn) + self.ours_end, None, str(returns) if last and returns is not None else None
            )
        return self

    def commit(self) -> Self:
        self.commits.append(len(self.entries))
        return self.ours(sql.SQL("COMMIT"))

    def theirs(self, statements: Sequence[Statement]) -> Self:
        """A file's statements, as written, each closed by ``;`` on a line of its own."""
        for stmt in statements:
            self._add(stmt.text + self.theirs_end, stmt, None)
        return self

    def _add(self, text: str, statement: Statement | None, returns: str | None) -> None:
        self.entries.append(_Entry(self.length, statement, returns))
        self.parts.append(text)
        self.length += len(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def send(self) -> None:
        """Execute; raise :class:`psycopg.Error` (with :attr:`failed_at` set) or :class:`Unacknowledged`."""
        cur = _Cursor(self.conn)
        cur.seen = []
        self.failed_at = None
        try:
            cur.execute(self.text.encode())
        except psycopg.Error:
            bad = [i for i, r in enumerate(cur.seen) if r.status not in _OK]
            self.failed_at = bad[0] if bad else None
            raise
        try:
            self._verify(cur.seen)
        except Unacknowledged:
            if self.conn.info.transaction_status != pq.TransactionStatus.IDLE:
                self.conn.execute("ROLLBACK")
            raise

    def _verify(self, results: Sequence[pq.abc.PGresult]) -> None:
        if len(results) != len(self.entries):
            raise Unacknowledged(f"the server answered {len(results)} of the {len(self.entries)} statements sent")
        for entry, result in zip(self.entries, results, strict=True):
            if entry.returns is None:
                continue
            got = result.get_value(0, 0) if result.ntuples == 1 else None
            if got is None or got.decode() != entry.returns:
                raise Unacknowledged(
                    f"a ledger write returned {result.ntuples} rows instead of version {entry.returns}"
                )
        for at in self.commits:
            if (status := results[at].command_status) != b"COMMIT":
                raise Unacknowledged(f"COMMIT was answered {status!r}")

    def culprit(self, exc: psycopg.Error) -> tuple[Statement | None, int | None]:
        """The file's statement an error belongs to and its file line (None: the runner's own SQL).

        A position (syntax errors, most name errors) places it exactly; otherwise the result
        that was an error says which statement it was.
        """
        position = exc.diag.statement_position
        if position is not None:
            offset = int(position) - 1
            entry = next((e for e in reversed(self.entries) if e.start <= offset), None)
            if entry is None or entry.statement is None:
                return None, None
            return entry.statement, entry.statement.line_at(offset - entry.start)
        if self.failed_at is not None and self.failed_at < len(self.entries):
            stmt = self.entries[self.failed_at].statement
            return stmt, stmt.line if stmt else None
        theirs = [e.statement for e in self.entries if e.statement is not None]
        return (theirs[0], theirs[0].line) if len(theirs) == 1 else (None, None)


class Pipeline(Message):
    """Statements sent each alone (the extended protocol) with one Sync after the last: one round trip.

    Unlike a simple-query message, whose statements are one implicit transaction, a pipeline can
    hold a ``transaction:false`` section: the runner's bookkeeping in transactions of its own and
    the file's statements between them, including those that refuse a transaction block. What the
    runner relies on (PostgreSQL 16's ``exec_execute_message`` in src/backend/tcop/postgres.c and
    ``PreventInTransactionBlock`` in xact.c; each checked against the server by
    tests/integration/migrations/test_pipeline_protocol.py):

    * an error makes the server skip every later message up to the Sync: nothing after a failed
      statement runs, and a statement's record is never written without it;
    * a statement that refuses a transaction block (``CREATE INDEX CONCURRENTLY``, ``VACUUM``) runs
      when it comes first or right after a ``COMMIT``; after any other statement of the pipeline
      the server refuses it ("cannot be executed within a pipeline"), so each of a file's
      statements follows the runner's ``COMMIT``;
    * what such a statement leaves open (the step that marks a concurrently built index valid)
      commits with the runner's next transaction, as a plain statement does: a statement and its
      record commit together where the server allows it.
    """

    ours_end = ""
    theirs_end = ""

    def send(self) -> None:
        self.failed_at = None
        results = pipeline_results(self.conn, [part.encode() for part in self.parts])
        answered = [r for r in results if r.status in _OK]
        if len(answered) < len(results):
            self.failed_at = len(answered)
            failed = results[len(answered)]
            if failed.status == pq.ExecStatus.FATAL_ERROR:
                raise psycopg.errors.error_from_result(failed, encoding=self.conn.info.encoding)
        try:
            if len(answered) != len(self.entries):
                raise Unacknowledged(f"the server answered {len(answered)} of the {len(self.entries)} statements sent")
            self._verify(answered)
        except Unacknowledged:
            if self.conn.info.transaction_status != pq.TransactionStatus.IDLE:
                self.conn.execute("ROLLBACK")
            raise

    def culprit(self, exc: psycopg.Error) -> tuple[Statement | None, int | None]:
        """The failed statement (each was sent alone: a position counts from its own start); when
        the runner's own SQL failed (the guard, a record), the file's statement before it."""
        if self.failed_at is None:
            return None, None
        stmt = self.entries[self.failed_at].statement
        if stmt is None:
            before = [e.statement for e in self.entries[: self.failed_at] if e.statement is not None]
            return (before[-1], before[-1].line) if before else (None, None)
        position = exc.diag.statement_position
        return stmt, stmt.line_at(int(position) - 1) if position is not None else stmt.line


def pipeline_results(conn: psycopg.Connection[tuple[Any, ...]], parts: Sequence[bytes]) -> list[pq.abc.PGresult]:
    """Send each part alone and one Sync, in one write, and read every result up to the Sync.

    (psycopg's own pipeline sends each statement as it is queued and reads what has come back
    in between: correct, but several turns of the wire for what is one round trip here.) Ctrl-C
    cancels the running statement, reads the rest, then raises. A session the server ends with an
    error (``pg_terminate_backend``, a shutdown) returns what was read, that error last but for the
    statements it skipped; a connection lost without one raises.
    """
    pgconn = conn.pgconn
    pgconn.enter_pipeline_mode()
    results: list[pq.abc.PGresult] = []
    interrupted = False
    try:
        for part in parts:
            pgconn.send_query_params(part, None)
        pgconn.pipeline_sync()
        while True:
            try:
                flushing = pgconn.flush() == 1
                if flushing or pgconn.is_busy():
                    readable, _, _ = select.select([pgconn.socket], [pgconn.socket] if flushing else [], [], 1.0)
                    if readable:
                        pgconn.consume_input()
                    continue
                result = pgconn.get_result()
                if result is None:  # the end of one statement's results
                    continue
                if result.status == pq.ExecStatus.PIPELINE_SYNC:
                    break
                results.append(result)
            except KeyboardInterrupt:
                if interrupted:
                    raise
                interrupted = True
                conn.cancel_safe()
            except psycopg.OperationalError:
                # the server ended the session (pg_terminate_backend, a shutdown) with an error of
                # its own, then closed: that error, and the statement it ended, tell what happened
                if not any(_server_error(r) for r in results):
                    raise
                break
    finally:
        # a lost connection stays in pipeline mode: leaving it would raise over the real error
        ended = pgconn.status != pq.ConnStatus.OK or pgconn.pipeline_status == pq.PipelineStatus.OFF
        if not ended and not pgconn.is_busy():
            pgconn.exit_pipeline_mode()
    if interrupted:
        raise KeyboardInterrupt
    return results


def _server_error(result: pq.abc.PGresult) -> bool:
    """An error the server sent (libpq's own, such as a lost connection, carry no SQLSTATE)."""
    return result.status == pq.ExecStatus.FATAL_ERROR and bool(result.error_field(pq.DiagnosticField.SQLSTATE))


def unacknowledged(
    mig: Migration, exc: Unacknowledged, *, whole_run: bool = False, scope: str | None = None
) -> MigrationError:
    """The error for a message the server did not run as sent (its transaction is rolled back)."""
    scope = scope or ("the whole run was rolled back" if whole_run else "rolled back, nothing recorded")
    return MigrationError(
        f"{exc.detail}; {scope}",
        file=mig.filename,
        fix="report this: the message did not run as sent (a NUL byte or a proxy that drops statements)",
    )


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__

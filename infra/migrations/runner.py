"""Applying migrations: lock, apply (or roll back) against one connection.

Round trips are the cost of a tunnel, so the runner spends as few as the protocol allows:

* acquire: one simple-query message tries the advisory lock, creates the ledger if missing and
  reads it (a held lock aborts that message with SQLSTATE ML001 and the holder as DETAIL);
* a transactional section: one message ``BEGIN; <the clean slate: RESET ALL, DISCARD TEMP...>; SET
  LOCAL <timeouts>; <file's statements>; <guard>; INSERT <ledger row> RETURNING; COMMIT;``
  (:mod:`infra.migrations.messages`). The server runs it statement by statement, so the ledger row
  commits with the migration or not at all, and "done" is printed only when the server answered
  every statement, the row came back and COMMIT said COMMIT.
* a ``transaction:false`` section (:mod:`infra.migrations.autocommit`): one pipeline of
  extended-protocol messages, each statement alone and followed by its progress record in a
  transaction of the runner's own, so a rerun resumes at the first unrecorded one.

What to run is decided before (:mod:`infra.migrations.validate`); this module only runs it.
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
from typing import Any

import psycopg
from psycopg import pq, sql

from infra.errors import LockTimeout, MigrationError
from infra.migrations import catalog, ledger
from infra.migrations.autocommit import apply_autocommit, rollback_autocommit
from infra.migrations.ledger import Actor, AppliedMigration, EventAction, LockHolder, TransactionMode
from infra.migrations.messages import (
    AS_RUNNER,
    CLEAN,
    GUARD_SQLSTATE,
    Message,
    Unacknowledged,
    guard,
    one_line,
    timeouts,
    unacknowledged,
)
from infra.migrations.source import Migration, Section
from infra.migrations.steps import LOCK_NOT_AVAILABLE, Action, NullProgress, Outcome, Progress, StepResult, backoff

__all__ = [
    "LOCK_NOT_AVAILABLE",
    "Action",
    "NullProgress",
    "Outcome",
    "Progress",
    "RunOptions",
    "Runner",
    "StepResult",
    "new_run_id",
    "operator",
]

_log = logging.getLogger(__name__)

DURATION_RE = re.compile(r"0*[1-9][0-9]*(ms|s|min|h|d)")


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
    # Short, and retried: while a migration waits for its lock, every query on the table queues
    # behind it, so the application stalls for as long as one attempt waits (bench/lock_bench.py:
    # 500 ms keeps the application's p99 within a second; pgroll's default is the same). A file that
    # may wait longer says so: -- migrate:lock-timeout 1min (a CONCURRENTLY index build, whose
    # SHARE UPDATE EXCLUSIVE lets reads and writes through, loses nothing by waiting).
    lock_timeout: str = "500ms"
    statement_timeout: str = "15min"
    idle_in_transaction_timeout: str = "60s"
    # The server checks every so often whether the client is still there, and cancels the
    # migration if not (a killed runner or a dropped tunnel), so its locks go at once.
    client_check_interval: str = "1s"
    lock_retries: int = 20  # extra attempts of a migration that hit lock_timeout (about a minute in all)
    retry_base_delay: float = 0.5  # seconds; doubled per attempt, jittered
    retry_max_delay: float = 5.0  # seconds: the doubling stops here
    single_transaction: bool = False
    rebuild_invalid_indexes: bool = False
    retry_failed: bool = False

    def __post_init__(self) -> None:
        for name in ("lock_timeout", "statement_timeout", "idle_in_transaction_timeout", "client_check_interval"):
            value = getattr(self, name)
            if not DURATION_RE.fullmatch(value):
                raise MigrationError(f"{name.replace('_', '-')} {value!r} is not a duration above zero like 5s or 2min")


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

    @property
    def actor(self) -> Actor:
        return Actor(self.applied_by, self.run_id)

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
                    raise MigrationError(f"cannot read the migration ledger: {one_line(exc)}") from exc
                holder = LockHolder.from_json(exc.diag.message_detail)
                if not reported:
                    self.progress.lock_waiting(holder)
                    reported = True
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LockTimeout(holder, self.options.lock_wait) from None
                self.sleep(min(left, random.uniform(delay / 2, delay)))  # noqa: S311 - jitter, not crypto
                delay = min(delay * 2, 2.0)
                continue
            self.locked = True
            return ledger.parse_ledger_results(cur)

    # -- message pieces -----------------------------------------------------------------------

    def timeouts_for(self, mig: Migration | None) -> dict[str, str]:
        """The runner's timeouts for ``mig`` (its directives win over the run's options)."""
        d = mig.directives if mig else None
        return {
            "lock_timeout": (d and d.lock_timeout) or self.options.lock_timeout,
            "statement_timeout": (d and d.statement_timeout) or self.options.statement_timeout,
            "idle_in_transaction_session_timeout": self.options.idle_in_transaction_timeout,
            "client_connection_check_interval": self.options.client_check_interval,
        }

    def begin(self, mig: Migration, *, first: bool = True) -> Message:
        """``BEGIN`` (when ``first``), the clean slate and the migration's timeouts."""
        start = (sql.SQL("BEGIN"),) if first else ()
        return Message(self.conn).ours(*start, *CLEAN, *timeouts(self.timeouts_for(mig), local=True))

    def finish(self, message: Message, mig: Migration, *ledger_writes: sql.Composable, returns: bool = True) -> Message:
        """The guard, then the ledger writes as the login role (the last returns ``mig.version``)."""
        message.ours(guard(self.timeouts_for(mig)), AS_RUNNER)
        return message.ours(*ledger_writes, returns=mig.version if returns else None)

    # -- transactional ------------------------------------------------------------------------

    def apply(self, mig: Migration, *, resume: AppliedMigration | None = None, last: bool = False) -> StepResult:
        """Apply one migration its way; ``last`` records the catalog snapshot drift compares against."""
        if resume is None and (mig.up_section.empty or not mig.directives.no_transaction):
            return self.apply_transactional(mig, stamp_catalog=last)
        return apply_autocommit(self, mig, resume, stamp_catalog=last)

    def apply_transactional(self, mig: Migration, *, stamp_catalog: bool = False) -> StepResult:
        """Apply in one transaction with its ledger row, in one round trip; retry on lock timeout."""
        message = self.finish(
            self.begin(mig).theirs(mig.up), mig, ledger.insert_applied(mig, TransactionMode.TRANSACTION, self.actor)
        )
        if stamp_catalog:
            message.ours(catalog.stamp_sql())
        message.commit()
        return self._run_with_retries(mig, Action.APPLY, message, mig.up_section)

    def _run_with_retries(self, mig: Migration, action: Action, message: Message, section: Section) -> StepResult:
        self.progress.started(mig, action)
        attempt = 1
        while True:
            started = time.perf_counter()
            try:
                message.send()
            except psycopg.Error as exc:
                self.rollback_quietly()
                if exc.sqlstate == LOCK_NOT_AVAILABLE and attempt <= self.options.lock_retries:
                    delay = backoff(self.options.retry_base_delay, attempt, self.options.retry_max_delay)
                    self.progress.retrying(mig, attempt, delay, one_line(exc))
                    self.sleep(delay)
                    attempt += 1
                    continue
                raise self.failure(mig, exc, message, attempt, after="rolled back, nothing recorded") from exc
            except Unacknowledged as exc:
                raise unacknowledged(mig, exc) from exc
            ms = (time.perf_counter() - started) * 1000
            outcome = Outcome.NOOP if section.empty else Outcome.DONE
            self.progress.finished(mig, action, outcome, ms)
            return StepResult(
                mig.version, mig.name, mig.filename, action, outcome, ms, attempt, len(section.statements)
            )

    def apply_single_transaction(self, migrations: Sequence[Migration]) -> list[StepResult]:
        """All of ``migrations`` in one transaction (``--single-transaction``), one message each;
        a lock timeout retries the whole run. Each is reported ``staged`` until the last COMMIT."""
        for mig in migrations:
            if mig.directives.no_transaction and not mig.up_section.empty:
                raise MigrationError(
                    "a transaction:false section cannot run inside --single-transaction",
                    file=mig.filename,
                    line=mig.up_section.line,
                    fix="run without --single-transaction",
                )
        attempt = 1
        while True:
            results: list[StepResult] = []
            for i, mig in enumerate(migrations):
                last = i == len(migrations) - 1
                message = self.finish(
                    self.begin(mig, first=i == 0).theirs(mig.up),
                    mig,
                    ledger.insert_applied(mig, TransactionMode.SINGLE_TRANSACTION, self.actor),
                )
                if last:
                    message.ours(catalog.stamp_sql()).commit()
                self.progress.started(mig, Action.APPLY)
                started = time.perf_counter()
                try:
                    message.send()
                except psycopg.Error as exc:
                    self.rollback_quietly()
                    if exc.sqlstate == LOCK_NOT_AVAILABLE and attempt <= self.options.lock_retries:
                        break
                    done = ", ".join(m.label for m in migrations[:i]) or "none"
                    after = (
                        f"the whole --single-transaction run was rolled back: none of its {len(migrations)} "
                        f"migration(s) is applied (staged before this one: {done})"
                    )
                    raise self.failure(mig, exc, message, attempt, after=after) from exc
                except Unacknowledged as exc:
                    raise unacknowledged(mig, exc, whole_run=True) from exc
                ms = (time.perf_counter() - started) * 1000
                outcome = Outcome.STAGED if not last else Outcome.DONE
                self.progress.finished(mig, Action.APPLY, outcome, ms)
                results.append(
                    StepResult(mig.version, mig.name, mig.filename, Action.APPLY, outcome, ms, attempt, len(mig.up))
                )
            else:
                return results
            delay = backoff(self.options.retry_base_delay, attempt, self.options.retry_max_delay)
            self.progress.retrying(migrations[len(results)], attempt, delay, "lock timeout: retrying the whole run")
            self.sleep(delay)
            attempt += 1

    # -- rollback ------------------------------------------------------------------------------

    def rollback(
        self, mig: Migration, row: AppliedMigration, reason: str, *, stamp_catalog: bool = False
    ) -> StepResult:
        """Run the down section and delete the ledger row (in one transaction unless transaction:false);
        ``stamp_catalog``: record the catalog drift compares against, with the ledger change."""
        section = mig.down_section
        assert section is not None  # commands refuse irreversible migrations first
        forget = (
            ledger.event(
                EventAction.ROLLBACK,
                self.actor,
                version=row.version,
                filename=row.filename,
                name=row.name,
                old_checksum=row.checksum,
                reason=reason,
            ),
            ledger.delete(mig.version),
        )
        stamp = (catalog.stamp_sql(),) if stamp_catalog else ()
        if section.transaction or section.empty:
            message = self.finish(self.begin(mig).theirs(section.statements), mig, *forget).ours(*stamp).commit()
            return self._run_with_retries(mig, Action.ROLLBACK, message, section)
        self.progress.started(mig, Action.ROLLBACK)
        started = time.perf_counter()
        rollback_autocommit(self, mig, section, forget, stamp)
        ms = (time.perf_counter() - started) * 1000
        self.progress.finished(mig, Action.ROLLBACK, Outcome.DONE, ms)
        return StepResult(
            mig.version, mig.name, mig.filename, Action.ROLLBACK, Outcome.DONE, ms, 1, len(section.statements)
        )

    # -- errors --------------------------------------------------------------------------------

    def rollback_quietly(self) -> None:
        if self.conn.closed:
            return
        if self.conn.info.transaction_status in (pq.TransactionStatus.INERROR, pq.TransactionStatus.INTRANS):
            try:
                self.conn.execute("ROLLBACK")
            except psycopg.Error:
                _log.debug("rollback after a failed migration failed", exc_info=True)

    def failure(
        self, mig: Migration, exc: psycopg.Error, message: Message | None, attempts: int, *, after: str
    ) -> MigrationError:
        """The error a failed message becomes: the server's words, where in the file, what it left."""
        stmt, line = message.culprit(exc) if message is not None else (None, None)
        detail = exc.diag.message_primary or one_line(exc)
        fix = None
        if exc.sqlstate == GUARD_SQLSTATE:
            detail = f"the migration changed what the runner pins: {exc.diag.message_detail}"
            fix = "remove what changes it (SET, set_config or pg_advisory_unlock, also inside DO blocks and functions)"
        elif exc.sqlstate:
            detail += f" (SQLSTATE {exc.sqlstate})"
        if exc.sqlstate == LOCK_NOT_AVAILABLE:
            detail += f"; gave up after {attempts} attempts: another session holds a conflicting lock"
        if self.conn.closed or (isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None):
            detail += "; the connection was lost: the server rolls the open transaction back; rerun"
        return MigrationError(
            f"{detail}; {after}",
            file=mig.filename,
            line=line,
            statement=stmt.text if stmt else None,
            sqlstate=exc.sqlstate,
            fix=fix,
        )

"""The command layer: one plain function per verb, taking a :class:`MigrationContext`, returning a result.

The CLI (``infra/migrations/cli.py``) only parses arguments and prints these results; the
post-deploy step and the tests call these functions directly. Every refusal (ledger/file
disagreement, production guard, lint) happens before any migration SQL is sent; a broken file
stops ``migrate`` at that file (what comes before it is applied) and never hides the other
files from ``status``, ``plan`` or ``validate``.

``baseline`` and ``plan --measure`` also replay files on a scratch PostgreSQL 16 (the steps that
make this module longer than 500 lines; the pieces they use live in ``adopt``, ``measure``,
``scratch``). Those modules, the importers' and ``lint``'s are imported by the verbs that use them:
``python -m infra migrate`` starts without them.

Raises (all :class:`~infra.errors.InfraError`): ``MigrationParseError``, ``ValidationError`` /
``ChecksumMismatch``, ``LockTimeout``, ``LintBlocked``, ``SafetyError``, ``MigrationError``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from infra.enums import Environment
from infra.errors import MigrationError, MigrationParseError, SafetyError
from infra.migrations import ledger, source
from infra.migrations.connection import ConnectionSpec, connect
from infra.migrations.ledger import AppliedMigration, EventAction, TransactionMode
from infra.migrations.messages import Message, Unacknowledged, one_line
from infra.migrations.results import (
    BaselineResult,
    LintResult,
    MigrateResult,
    PlanItem,
    PlanMode,
    PlanResult,
    RepairResult,
    RollbackResult,
    StatementPlan,
    StatusResult,
    ValidateResult,
)
from infra.migrations.runner import Runner, RunOptions, new_run_id
from infra.migrations.source import BrokenFile, Migration, Source
from infra.migrations.steps import NullProgress, Progress, StepResult
from infra.migrations.validate import Validation, check, raise_problems
from infra.paths import MIGRATIONS_DIR

if TYPE_CHECKING:
    from infra.migrations.measure import MeasuredMigration
    from infra.migrations.scratch import ScratchServer

__all__ = [
    "BaselineResult",
    "LintResult",
    "MigrateResult",
    "MigrationContext",
    "PlanItem",
    "PlanResult",
    "RepairResult",
    "RollbackResult",
    "StatusResult",
    "ValidateResult",
    "apply_for_postdeploy",
    "baseline",
    "lint",
    "migrate",
    "pending_for_postdeploy",
    "pending_versions",
    "plan",
    "repair",
    "rollback",
    "status",
    "validate",
]

DEFAULT_MIGRATIONS_DIR = Path("schema/migrations")


@dataclass(frozen=True)
class MigrationContext:
    """What every command needs: where the database is, where the files are, which environment."""

    connection: ConnectionSpec
    migrations_dir: Path = DEFAULT_MIGRATIONS_DIR
    environment: Environment | None = None  # the stack's environment, when known
    stack: str | None = None  # the stack name: what --confirm must repeat on production
    options: RunOptions = field(default_factory=RunOptions)


# -- helpers --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _runner(target: MigrationContext, progress: Progress | None) -> Iterator[Runner]:
    run_id = new_run_id()
    conn = connect(target.connection, run_id)
    try:
        yield Runner(conn, run_id, target.options, progress or NullProgress())
    finally:
        # Closing ends the session, which releases the advisory lock: no separate unlock round trip.
        conn.close()


def _load(target: MigrationContext) -> Source:
    """The target's migrations; a missing directory is an error here (an empty one is not):
    against a database, a wrong --migrations-dir would otherwise read as "every file deleted"."""
    if not target.migrations_dir.is_dir():
        raise MigrationError(
            f"migrations directory {str(target.migrations_dir)!r} does not exist", fix="pass --migrations-dir"
        )
    return source.load(target.migrations_dir)


def _read(target: MigrationContext) -> tuple[Source, Validation, str | None]:
    """Files, their validation against the ledger, the stamped environment; no lock, no writes."""
    files = _load(target)
    with _runner(target, None) as runner:
        rows, stamped = ledger.read_ledger(runner.conn)
    return files, check(files, rows, retry_failed=target.options.retry_failed), stamped


def _is_production(target: MigrationContext, stamped: str | None) -> bool:
    return target.environment == Environment.PRODUCTION or stamped == Environment.PRODUCTION.value


def _check_environment(runner: Runner, target: MigrationContext, stamped: str | None) -> str | None:
    """Refuse a non-production run on a database stamped production; stamp a new environment."""
    wanted = target.environment.value if target.environment else None
    if stamped == Environment.PRODUCTION.value and wanted not in (None, stamped):
        raise SafetyError(
            f"database {target.connection.describe()} is marked environment 'production' in its "
            f"ledger but this run says {wanted!r}; fix: pass --environment production"
        )
    if wanted is not None and wanted != stamped:
        ledger.stamp_environment(runner.conn, wanted, by=runner.applied_by, run_id=runner.run_id)
        return wanted
    return stamped


def _lint_gate(migrations: Sequence[Migration]) -> None:
    """Production's lint gate (``lint`` is imported here: a run elsewhere does not load it)."""
    from infra.migrations import lint as lint_mod

    lint_mod.gate(migrations)


def _stopped(broken: BrokenFile) -> MigrationParseError:
    """A run's stop at a broken file: its own error, saying what happened around it."""
    error = broken.error
    return MigrationParseError(
        f"{error.message}; the migrations before it are applied, none after it",
        file=error.file,
        line=error.line,
        fix=error.fix,
    )


def _send(runner: Runner, message: Message, what: str) -> None:
    """One bookkeeping message (baseline, repair): sent, acknowledged, or rolled back and raised."""
    try:
        message.send()
    except psycopg.Error as exc:
        runner.rollback_quietly()
        raise MigrationError(f"{what} failed: {one_line(exc)}", sqlstate=exc.sqlstate) from exc
    except Unacknowledged as exc:
        raise MigrationError(f"{what} failed: {exc.detail}; nothing was changed") from exc


# -- commands -------------------------------------------------------------------------------------


def migrate(
    target: MigrationContext,
    *,
    to: int | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> MigrateResult:
    """Apply pending migrations (up to version ``to``). ``dry_run`` takes no lock, writes nothing.

    A broken pending file stops the run there: the ones before it are applied, then its error is raised.
    """
    files = _load(target)
    known = {m.version for m in files.migrations} | {b.version for b in files.broken}
    if to is not None and to not in known:
        raise MigrationError(f"--target {to}: no migration file has that version")
    with _runner(target, progress) as runner:
        linted: set[str] = set()
        if not dry_run and target.environment == Environment.PRODUCTION:
            # The gate comes before the lock message, which creates the ledger on a new database:
            # a refusal writes nothing. (A database stamped production already has its ledger, so
            # the gate after the lock below writes nothing either.)
            pending = _validated(files, ledger.read_ledger(runner.conn)[0], to, target.options).todo(to)
            _lint_gate(pending)
            linted = {m.filename for m in pending}
        rows, stamped = ledger.read_ledger(runner.conn) if dry_run else runner.acquire()
        validation = _validated(files, rows, to, target.options)
        todo = validation.todo(to)
        stop = validation.stop if validation.stop and (to is None or (validation.stop.version or 0) <= to) else None
        if _is_production(target, stamped):
            _lint_gate([m for m in todo if m.filename not in linted])
        planned = tuple(m.label for m in todo)
        if dry_run:
            return MigrateResult(runner.run_id, (), planned, True, stamped, stop=validation.later[0] if stop else None)
        environment = _check_environment(runner, target, stamped)
        steps = _apply(runner, validation, todo, target.options)
        if stop is not None:
            raise _stopped(stop)
        return MigrateResult(
            runner.run_id, tuple(steps), planned, False, environment, target.options.single_transaction
        )


def _validated(files: Source, rows: Sequence[AppliedMigration], to: int | None, options: RunOptions) -> Validation:
    """Files against the ledger (raising the problems), and ``to`` not below what is applied."""
    validation = check(files, rows, retry_failed=options.retry_failed)
    raise_problems(validation.problems)
    top = max((r.version for r in rows), default=None)
    if to is not None and top is not None and to < top:
        raise MigrationError(f"--target {to} is below the highest applied version {top}", fix=f"rollback --to {to}")
    return validation


def _apply(runner: Runner, validation: Validation, todo: Sequence[Migration], options: RunOptions) -> list[StepResult]:
    if options.single_transaction:
        if validation.resume is not None:
            raise MigrationError(
                "a partially applied transaction:false migration cannot resume in --single-transaction",
                file=validation.resume[0].filename,
                fix="run without --single-transaction to resume it",
            )
        return runner.apply_single_transaction(todo) if todo else []
    steps: list[StepResult] = []
    for index, mig in enumerate(todo):
        resume = validation.resume[1] if validation.resume and validation.resume[0] is mig else None
        steps.append(runner.apply(mig, resume=resume, last=index == len(todo) - 1))
    return steps


def status(target: MigrationContext) -> StatusResult:
    """What is applied, what is pending, and any disagreement or broken file (never raises for those)."""
    _, validation, stamped = _read(target)
    return StatusResult(
        applied=validation.applied,
        pending=tuple(m.label for m in (*validation.todo(), *validation.blocked)),
        problems=validation.all_problems,
        environment=stamped,
    )


def validate(target: MigrationContext) -> ValidateResult:
    """Files parse and agree with the ledger. Raises ``ValidationError`` naming each file and fix."""
    files, validation, _ = _read(target)
    raise_problems(validation.all_problems)
    return ValidateResult(len(files.migrations), len(validation.applied), tuple(m.label for m in validation.todo()))


def plan(
    target: MigrationContext, *, to: int | None = None, measure: bool = False, scratch: ScratchServer | None = None
) -> PlanResult:
    """The pending migrations: SQL, directives, locks and lint findings. Writes nothing.

    Locks are read from each statement's parse tree; ``measure`` also applies the pending
    migrations on a scratch PostgreSQL 16 (``scratch``, else one started for the call) that holds
    the schema the applied files produce, and reports what ``pg_locks`` showed. Broken files are
    listed in ``problems``; the others are planned (a run stops at the first broken one).
    """
    from infra.migrations import lint as lint_mod
    from infra.migrations.scratch import ScratchServer

    _, validation, stamped = _read(target)
    raise_problems(validation.problems)
    runnable = validation.todo(to)
    todo = (*runnable, *(m for m in validation.blocked if to is None or m.version <= to))
    measured: dict[str, MeasuredMigration] = {}
    if measure and runnable:
        if validation.resume is not None:
            raise MigrationError(
                "plan --measure: a transaction:false migration is partially applied",
                file=validation.resume[0].filename,
                fix="finish it with migrate --retry-failed first",
            )
        with contextlib.ExitStack() as stack:
            server = scratch or stack.enter_context(ScratchServer())
            measured = _measure(target, server, validation.applied, runnable)
    findings = lint_mod.lint(todo)
    items: list[PlanItem] = []
    for mig in todo:
        resumed = validation.resume is not None and validation.resume[0] is mig
        start = (validation.resume[1].statements_applied or 0) if resumed and validation.resume else 0
        on_scratch = dict(zip(mig.up, measured[mig.label].statements, strict=True)) if mig.label in measured else {}
        statements = [StatementPlan.of(stmt.line, stmt.text, on_scratch.get(stmt)) for stmt in mig.up[start:]]
        d = mig.directives
        how: PlanMode = "no-op" if mig.up_section.empty else "no-transaction" if d.no_transaction else "transaction"
        items.append(
            PlanItem(
                label=mig.label,
                transaction="resume" if resumed else how,
                lock_timeout=d.lock_timeout or target.options.lock_timeout,
                statement_timeout=d.statement_timeout or target.options.statement_timeout,
                allow=tuple(sorted(d.allow)),
                statements=tuple(statements),
                findings=tuple(f for f in findings if f.version == mig.version),
                held=measured[mig.label].held if mig.label in measured and how == "transaction" else (),
            )
        )
    blocking = tuple(f for f in findings if f.blocks_production)
    return PlanResult(tuple(items), stamped, blocking, validation.later, measured=bool(measured))


def _twin(
    target: MigrationContext, server: ScratchServer, live: psycopg.Connection[Any], login: str | None
) -> MigrationContext:
    """The target pointed at an empty database on ``server`` shaped like the live cluster (its roles)."""
    return dataclasses.replace(target, connection=server.twin(live, login), environment=None, stack=None)


def _measure(
    target: MigrationContext,
    server: ScratchServer,
    applied: Sequence[AppliedMigration],
    todo: Sequence[Migration],
) -> dict[str, MeasuredMigration]:
    """Replay the applied files on a twin of the live cluster, then measure ``todo`` there."""
    from infra.migrations.measure import measure as measure_locks

    with _runner(target, None) as runner:
        twin = _twin(target, server, runner.conn, None)
    top = max((r.version for r in applied), default=None)
    if top is not None:
        migrate(twin, to=top)
    return {m.label: m for m in measure_locks(twin.connection, todo)}


def rollback(
    target: MigrationContext,
    *,
    to: int,
    confirm: str | None = None,
    reason: str = "",
    progress: Progress | None = None,
) -> RollbackResult:
    """Run the down sections of every applied migration above version ``to``, newest first.

    Refuses, before any SQL, when one of them is irreversible (marked, or without a down section)
    or broken, or on production without ``confirm`` equal to the stack name (the database name when
    no stack is given). An empty down section is a no-op: its row goes, nothing runs.
    """
    files = _load(target)
    migrations = {m.version: m for m in files.migrations}
    broken = {b.version: b for b in files.broken}
    with _runner(target, progress) as runner:
        rows, stamped = runner.acquire()
        undo = sorted((r for r in rows if r.version > to), key=lambda r: r.version, reverse=True)
        for row in undo:
            if row.version in broken:
                raise broken[row.version].error
        missing = [r.display_name for r in undo if r.version not in migrations]
        if missing:
            raise MigrationError(f"cannot roll back {', '.join(missing)}: file missing", fix="restore it")
        mine = Source(files.directory, tuple(migrations[r.version] for r in reversed(undo)))
        raise_problems(check(mine, undo).problems)
        irreversible = [
            migrations[r.version].irreversible_reason() for r in undo if not migrations[r.version].reversible
        ]
        if irreversible:
            raise MigrationError(
                f"cannot roll back to {to}: " + "; ".join(irreversible),
                fix="roll forward with a new migration instead",
            )
        if _is_production(target, stamped):
            expected = target.stack or target.connection.dbname or ""
            if not confirm or confirm != expected:
                raise SafetyError(
                    f"rollback on production rolls back {len(undo)} migration(s); "
                    f"fix: repeat the stack name: --confirm {expected}"
                )
        # a rollback changes the schema on purpose: the last one records the new drift baseline
        steps = [
            runner.rollback(migrations[r.version], r, reason or f"rollback --to {to}", stamp_catalog=i == len(undo) - 1)
            for i, r in enumerate(undo)
        ]
        return RollbackResult(runner.run_id, tuple(steps))


def baseline(
    target: MigrationContext,
    *,
    version: int | None = None,
    from_ledger: str | None = None,
    mapping: Path | None = None,
    ledger_table: str | None = None,
    reason: str = "",
    progress: Progress | None = None,
    scratch: ScratchServer | None = None,
) -> BaselineResult:
    """Adopt an existing database: record files as applied, run nothing.

    Which files: every one up to ``version``, or (``from_ledger``, a tool of
    :data:`~infra.migrations.adopt.LEDGER_TOOLS`) those the other tool's ledger says ran, mapped
    through the import mapping (``mapping``, default ``<migrations-dir>/.import-map.json``).
    Before anything is written the live catalog is compared with the one those files produce on
    a scratch PostgreSQL 16 (``scratch``, else one started for the call). Refuses when our ledger
    already has rows, when one of the files is broken, when the other ledger is dirty or disagrees
    with the files, or when the catalogs differ.
    """
    from infra.migrations import adopt
    from infra.migrations.importers import MAP_FILE, ImportMap
    from infra.migrations.scratch import ScratchServer

    if (version is None) == (from_ledger is None):
        raise MigrationError("baseline needs exactly one of --version V and --from-ledger TOOL")
    files = _load(target)
    with _runner(target, progress) as runner:
        if from_ledger is not None:
            imported = ImportMap.read(mapping or target.migrations_dir / MAP_FILE)
            chosen = adopt.from_ledger(files, runner.conn, from_ledger, imported, ledger_table)
        else:
            assert version is not None
            chosen = adopt.up_to(files, version)
        migrations = chosen.migrations
        reason = reason or chosen.reason
        rows, _ = ledger.read_ledger(runner.conn)  # read only: nothing is written before the checks
        if rows:
            raise SafetyError(
                f"baseline refused: the ledger already records {len(rows)} migration(s); "
                "baseline only adopts a database that has none"
            )
        with contextlib.ExitStack() as stack:
            server = scratch or stack.enter_context(ScratchServer())
            twin = _twin(target, server, runner.conn, chosen.login)
            migrate(twin, to=migrations[-1].version)
            with twin.connection.connect(application_name="baseline-check") as conn:
                adopt.refuse_differences(runner.conn, conn, chosen.leave_out)
        rows, _ = runner.acquire()
        if rows:
            raise SafetyError(f"baseline refused: another run recorded {len(rows)} migration(s) meanwhile")
        message = Message(runner.conn).ours(sql.SQL("BEGIN"))
        for mig in migrations:
            message.ours(
                ledger.event(
                    EventAction.BASELINE,
                    runner.actor,
                    version=mig.version,
                    filename=mig.filename,
                    name=mig.name,
                    new_checksum=mig.checksum,
                    reason=reason,
                ),
                ledger.insert_applied(mig, TransactionMode.BASELINE, runner.actor),
                returns=mig.version,
            )
        _send(runner, message.commit(), "baseline")
        return BaselineResult(runner.run_id, tuple(m.version for m in migrations))


def repair(target: MigrationContext, *, version: int, reason: str, forget: bool = False) -> RepairResult:
    """The audited way to accept a changed file (or ``forget`` a ledger row): who, why, when.

    Accepting sets the ledger checksum and file name to the file's; ``forget`` deletes the row of a
    missing file or of a partial/failed no-transaction migration you fixed by hand.
    """
    if not reason.strip():
        raise SafetyError("repair needs --reason: it is recorded in the audit log with who and when")
    files = _load(target)
    migrations = {m.version: m for m in files.migrations}
    with _runner(target, None) as runner:
        rows, _ = runner.acquire()
        row = next((r for r in rows if r.version == version), None)
        if row is None:
            raise MigrationError(f"repair --version {version}: the ledger has no row for that version")
        mig = migrations.get(version)
        message = Message(runner.conn).ours(sql.SQL("BEGIN"))
        if forget:
            audit = ledger.event(
                EventAction.FORGET,
                runner.actor,
                version=version,
                filename=row.filename,
                name=row.name,
                old_checksum=row.checksum,
                reason=reason,
            )
            _send(runner, message.ours(audit, ledger.delete(version), returns=version).commit(), "repair --forget")
            return RepairResult(runner.run_id, version, EventAction.FORGET, row.checksum, None)
        if mig is None:
            broken = next((b for b in files.broken if b.version == version), None)
            if broken is not None:
                raise broken.error
            raise MigrationError(
                f"repair --version {version}: {row.display_name} is missing", fix="restore it, or use --forget"
            )
        if row.status != ledger.LedgerStatus.APPLIED:
            raise MigrationError(
                f"repair --version {version}: {mig.filename} is {row.status}, not applied",
                fix="fix the database by hand and use --forget, or resume it with migrate --retry-failed",
            )
        audit = ledger.event(
            EventAction.REPAIR,
            runner.actor,
            version=version,
            filename=mig.filename,
            name=mig.name,
            old_checksum=row.checksum,
            new_checksum=mig.checksum,
            reason=reason,
        )
        _send(runner, message.ours(audit, ledger.accept_checksum(mig), returns=version).commit(), "repair")
        return RepairResult(runner.run_id, version, EventAction.REPAIR, row.checksum, mig.checksum)


def lint(migrations_dir: Path, *, versions: Sequence[int] | None = None, write_baseline: bool = False) -> LintResult:
    """squawk over the files of ``migrations_dir`` (all, or only ``versions``); no database.

    ``write_baseline`` records the findings the files do not allow as the directory's lint
    baseline (for an adopted history), after which they no longer count. An absent or empty
    directory is fine (nothing to lint); broken files are listed as problems.
    """
    from infra.migrations import lint as lint_mod

    files = source.load(migrations_dir)
    migrations = files.migrations
    if versions is not None:
        wanted = set(versions)
        migrations = tuple(m for m in migrations if m.version in wanted)
    problems = check(Source(files.directory, (), files.broken), ()).all_problems
    written: Path | None = None
    if write_baseline:
        if versions is not None:
            raise MigrationError("lint --write-baseline covers every file", fix="drop --pending")
        written = lint_mod.write_baseline(migrations_dir, lint_mod.lint(migrations, migrations_dir))
    findings = lint_mod.lint(migrations, migrations_dir)
    return LintResult(tuple(m.filename for m in migrations), findings, problems, written)


def pending_versions(target: MigrationContext) -> tuple[int, ...]:
    """Versions not yet applied (for ``lint --pending``)."""
    _, validation, _ = _read(target)
    return tuple(m.version for m in validation.todo())


# -- the post-deploy step's entry points (infra/postdeploy/run.py) ---------------------------------


def apply_for_postdeploy(
    spec: ConnectionSpec,
    *,
    migrations_dir: Path | None = None,
    environment: Environment | None = None,
    stack: str | None = None,
    progress: Progress | None = None,
) -> tuple[str, ...]:
    """Apply the project's migrations through the tunnel; the labels applied."""
    target = MigrationContext(spec, migrations_dir or MIGRATIONS_DIR, environment, stack)
    return tuple(Path(s.filename).stem for s in migrate(target, progress=progress).applied)


def pending_for_postdeploy(spec: ConnectionSpec, *, migrations_dir: Path | None = None) -> tuple[str, ...]:
    """The labels a migrate would apply (validates; takes no lock, writes nothing)."""
    target = MigrationContext(spec, migrations_dir or MIGRATIONS_DIR)
    return migrate(target, dry_run=True).planned

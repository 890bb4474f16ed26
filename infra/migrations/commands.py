"""The command layer: one plain function per verb, taking a :class:`MigrationContext`, returning a result.

The CLI (``infra/migrations/cli.py``) only parses arguments and prints these results; the
post-deploy step and the tests call these functions directly. Every refusal (parse error,
ledger/file disagreement, production guard, lint) happens before any migration SQL is sent.

Raises (all :class:`~infra.errors.InfraError`): ``MigrationParseError``, ``ValidationError`` /
``ChecksumMismatch``, ``LockTimeout``, ``LintBlocked``, ``SafetyError``, ``MigrationError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import sql

from infra.enums import Environment
from infra.errors import LintBlocked, MigrationError, SafetyError
from infra.migrations import catalog, ledger, source
from infra.migrations import lint as lint_mod
from infra.migrations.connection import ConnectionSpec, connect
from infra.migrations.ledger import LEDGER_SCHEMA, AppliedMigration
from infra.migrations.lint import Finding
from infra.migrations.locks import lock_mode
from infra.migrations.runner import (
    NullProgress,
    Problem,
    Progress,
    Runner,
    RunOptions,
    StepResult,
    Validation,
    check,
    new_run_id,
    raise_problems,
)
from infra.migrations.source import Migration
from infra.paths import MIGRATIONS_DIR

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


# -- results --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MigrateResult:
    run_id: str
    applied: tuple[StepResult, ...]
    planned: tuple[str, ...]  # labels of what was (or, with dry_run, would be) applied
    dry_run: bool
    environment: str | None


@dataclass(frozen=True)
class StatusResult:
    applied: tuple[AppliedMigration, ...]
    pending: tuple[str, ...]
    problems: tuple[Problem, ...]
    environment: str | None


@dataclass(frozen=True)
class ValidateResult:
    files: int
    applied: int
    pending: tuple[str, ...]


@dataclass(frozen=True)
class StatementPlan:
    line: int
    sql: str
    lock_mode: str
    table: str | None
    blocks: str


@dataclass(frozen=True)
class PlanItem:
    label: str
    transaction: str  # transaction | no-transaction | resume
    lock_timeout: str
    statement_timeout: str
    allow: tuple[str, ...]
    statements: tuple[StatementPlan, ...]
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class PlanResult:
    items: tuple[PlanItem, ...]
    environment: str | None
    blocking: tuple[Finding, ...]  # findings that would block migrate on production


@dataclass(frozen=True)
class RollbackResult:
    run_id: str
    rolled_back: tuple[StepResult, ...]


@dataclass(frozen=True)
class BaselineResult:
    run_id: str
    versions: tuple[int, ...]


@dataclass(frozen=True)
class RepairResult:
    run_id: str
    version: int
    action: str  # repair | forget
    old_checksum: str | None
    new_checksum: str | None


@dataclass(frozen=True)
class LintResult:
    files: tuple[str, ...]
    findings: tuple[Finding, ...]

    @property
    def blocking(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.allowed)


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


def _load(target: MigrationContext) -> tuple[Migration, ...]:
    """The target's migrations; a missing directory is an error here (an empty one is not):
    against a database, a wrong --migrations-dir would otherwise read as "every file deleted"."""
    if not target.migrations_dir.is_dir():
        raise MigrationError(
            f"migrations directory {str(target.migrations_dir)!r} does not exist; fix: --migrations-dir"
        )
    return source.load(target.migrations_dir)


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


def _lint_gate(migrations: Sequence[Migration]) -> tuple[Finding, ...]:
    findings = lint_mod.lint(migrations)
    return tuple(f for f in findings if not f.allowed)


# -- commands -------------------------------------------------------------------------------------


def migrate(
    target: MigrationContext,
    *,
    to: int | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> MigrateResult:
    """Apply pending migrations (up to version ``to``). ``dry_run`` takes no lock, writes nothing."""
    migrations = _load(target)
    if to is not None and to not in {m.version for m in migrations}:
        raise MigrationError(f"--target {to}: no migration file has that version")
    with _runner(target, progress) as runner:
        if dry_run:
            rows, stamped = ledger.read_ledger(runner.conn)
        else:
            rows, stamped = runner.acquire()
        validation = check(migrations, rows, retry_failed=target.options.retry_failed)
        raise_problems(validation)
        top = max((r.version for r in rows), default=None)
        if to is not None and top is not None and to < top:
            raise MigrationError(
                f"--target {to} is below the highest applied version {top}; fix: use rollback --to {to}"
            )
        todo = validation.todo(to)
        production = _is_production(target, stamped)
        if production and todo:
            blocking = _lint_gate(todo)
            if blocking:
                raise LintBlocked(
                    "lint findings block migrate on production:\n"
                    + "\n".join(f.describe() for f in blocking)
                    + "\nfix: change the migration, or after review add '-- migrate:allow <rule>' to it"
                )
        planned = tuple(m.label for m in todo)
        if dry_run:
            return MigrateResult(runner.run_id, (), planned, True, stamped)
        environment = _check_environment(runner, target, stamped)
        steps = _apply(runner, validation, todo, target.options)
        return MigrateResult(runner.run_id, tuple(steps), planned, False, environment)


def _apply(runner: Runner, validation: Validation, todo: Sequence[Migration], options: RunOptions) -> list[StepResult]:
    if options.single_transaction:
        if validation.resume is not None:
            raise MigrationError(
                f"{validation.resume[0].filename} is a partially applied no-transaction migration; "
                "fix: run without --single-transaction to resume it"
            )
        return runner.apply_single_transaction(todo) if todo else []
    steps: list[StepResult] = []
    for index, mig in enumerate(todo):
        last = index == len(todo) - 1
        if mig.directives.no_transaction:
            row = validation.resume[1] if validation.resume and validation.resume[0] is mig else None
            steps.append(runner.apply_autocommit(mig, row))
            if last:
                catalog.stamp(runner.conn)  # the snapshot drift compares against (one more round trip)
        else:
            steps.append(runner.apply_transactional(mig, stamp_catalog=last))
    return steps


def status(target: MigrationContext) -> StatusResult:
    """What is applied, what is pending, and any disagreement (never raises for those)."""
    migrations = _load(target)
    with _runner(target, None) as runner:
        rows, stamped = ledger.read_ledger(runner.conn)
    validation = check(migrations, rows)
    return StatusResult(
        applied=rows,
        pending=tuple(m.label for m in validation.todo()),
        problems=validation.problems,
        environment=stamped,
    )


def validate(target: MigrationContext) -> ValidateResult:
    """Files parse and agree with the ledger. Raises ``ValidationError`` naming each file and fix."""
    migrations = _load(target)
    with _runner(target, None) as runner:
        rows, _ = ledger.read_ledger(runner.conn)
    validation = check(migrations, rows, retry_failed=target.options.retry_failed)
    raise_problems(validation)
    return ValidateResult(len(migrations), len(rows), tuple(m.label for m in validation.todo()))


def plan(target: MigrationContext, *, to: int | None = None) -> PlanResult:
    """The pending migrations: SQL, directives, lock modes and lint findings. Writes nothing."""
    migrations = _load(target)
    with _runner(target, None) as runner:
        rows, stamped = ledger.read_ledger(runner.conn)
    validation = check(migrations, rows, retry_failed=target.options.retry_failed)
    raise_problems(validation)
    todo = validation.todo(to)
    findings = lint_mod.lint(todo)
    items: list[PlanItem] = []
    for mig in todo:
        resumed = validation.resume is not None and validation.resume[0] is mig
        start = (validation.resume[1].statements_applied or 0) if resumed and validation.resume else 0
        statements = []
        for stmt in mig.up[start:]:
            mode, table, blocks = lock_mode(stmt.text)
            statements.append(StatementPlan(stmt.line, stmt.text, mode, table, blocks))
        d = mig.directives
        items.append(
            PlanItem(
                label=mig.label,
                transaction="resume" if resumed else "no-transaction" if d.no_transaction else "transaction",
                lock_timeout=d.lock_timeout or target.options.lock_timeout,
                statement_timeout=d.statement_timeout or target.options.statement_timeout,
                allow=tuple(sorted(d.allow)),
                statements=tuple(statements),
                findings=tuple(f for f in findings if f.version == mig.version),
            )
        )
    blocking = tuple(f for f in findings if not f.allowed)
    return PlanResult(tuple(items), stamped, blocking)


def rollback(
    target: MigrationContext,
    *,
    to: int,
    confirm: str | None = None,
    reason: str = "",
    progress: Progress | None = None,
) -> RollbackResult:
    """Run the down sections of every applied migration above version ``to``, newest first.

    Refuses, before any SQL, when one of them has no down section, or on production without
    ``confirm`` equal to the stack name (the database name when no stack is given).
    """
    migrations = {m.version: m for m in _load(target)}
    with _runner(target, progress) as runner:
        rows, stamped = runner.acquire()
        undo = sorted((r for r in rows if r.version > to), key=lambda r: r.version, reverse=True)
        missing = [r.filename for r in undo if r.version not in migrations]
        if missing:
            raise MigrationError(f"cannot roll back {', '.join(missing)}: file missing; fix: restore it")
        raise_problems(check([migrations[r.version] for r in undo], undo))
        irreversible = [migrations[r.version].filename for r in undo if not migrations[r.version].reversible]
        if irreversible:
            raise MigrationError(
                f"cannot roll back to {to}: no '-- migrate:down' section in {', '.join(irreversible)}; "
                "fix: write one, or roll forward with a new migration"
            )
        if _is_production(target, stamped):
            expected = target.stack or target.connection.dbname or ""
            if not confirm or confirm != expected:
                raise SafetyError(
                    f"rollback on production rolls back {len(undo)} migration(s); "
                    f"fix: repeat the stack name: --confirm {expected}"
                )
        steps = [runner.rollback(migrations[r.version], r, reason or f"rollback --to {to}") for r in undo]
        if steps:
            catalog.stamp(runner.conn)  # a rollback changes the schema on purpose: new drift baseline
        return RollbackResult(runner.run_id, tuple(steps))


def baseline(
    target: MigrationContext, *, version: int, reason: str = "", progress: Progress | None = None
) -> BaselineResult:
    """Adopt an existing database: record every file up to ``version`` as applied, run nothing.

    Refuses when the ledger already has rows.
    """
    migrations = [m for m in _load(target) if m.version <= version]
    if not any(m.version == version for m in migrations):
        raise MigrationError(f"baseline --version {version}: no migration file has that version")
    with _runner(target, progress) as runner:
        rows, _ = runner.acquire()
        if rows:
            raise SafetyError(
                f"baseline refused: the ledger already records {len(rows)} migration(s); "
                "baseline only adopts a database that has none"
            )
        parts: list[sql.Composable] = [sql.SQL("BEGIN;\n")]
        for mig in migrations:
            parts.append(
                sql.SQL(
                    "INSERT INTO {s}.applied (version, name, checksum, status, transaction_mode, "
                    "duration_ms, applied_by, run_id) VALUES ({v}, {n}, {c}, 'applied', 'baseline', 0, "
                    "{by}, {run});\n"
                ).format(
                    s=sql.Identifier(LEDGER_SCHEMA),
                    v=sql.Literal(mig.version),
                    n=sql.Literal(mig.name),
                    c=sql.Literal(mig.checksum),
                    by=sql.Literal(runner.applied_by),
                    run=sql.Literal(runner.run_id),
                )
            )
            parts.append(_event(runner, "baseline", mig.version, mig.name, None, mig.checksum, reason))
        parts.append(sql.SQL("COMMIT;"))
        runner.conn.execute(sql.Composed(parts))
        return BaselineResult(runner.run_id, tuple(m.version for m in migrations))


def repair(target: MigrationContext, *, version: int, reason: str, forget: bool = False) -> RepairResult:
    """The audited way to accept a changed file (or ``forget`` a ledger row): who, why, when.

    Accepting sets the ledger checksum (and name) to the file's; ``forget`` deletes the row of a
    missing file or of a partial/failed no-transaction migration you fixed by hand.
    """
    if not reason.strip():
        raise SafetyError("repair needs --reason: it is recorded in the audit log with who and when")
    migrations = {m.version: m for m in _load(target)}
    with _runner(target, None) as runner:
        rows, _ = runner.acquire()
        row = next((r for r in rows if r.version == version), None)
        if row is None:
            raise MigrationError(f"repair --version {version}: the ledger has no row for that version")
        mig = migrations.get(version)
        s = sql.Identifier(LEDGER_SCHEMA)
        if forget:
            runner.conn.execute(
                sql.Composed(
                    [
                        sql.SQL("BEGIN;\nDELETE FROM {s}.applied WHERE version = {v};\n").format(
                            s=s, v=sql.Literal(version)
                        ),
                        _event(runner, "forget", version, row.name, row.checksum, None, reason),
                        sql.SQL("COMMIT;"),
                    ]
                )
            )
            return RepairResult(runner.run_id, version, "forget", row.checksum, None)
        if mig is None:
            raise MigrationError(f"repair --version {version}: {row.filename} is missing; restore it, or use --forget")
        if row.status != "applied":
            raise MigrationError(
                f"repair --version {version}: {mig.filename} is {row.status}, not applied; "
                "fix the database by hand and use --forget, or resume it with migrate --retry-failed"
            )
        runner.conn.execute(
            sql.Composed(
                [
                    sql.SQL("BEGIN;\nUPDATE {s}.applied SET checksum = {c}, name = {n} WHERE version = {v};\n").format(
                        s=s, c=sql.Literal(mig.checksum), n=sql.Literal(mig.name), v=sql.Literal(version)
                    ),
                    _event(runner, "repair", version, mig.name, row.checksum, mig.checksum, reason),
                    sql.SQL("COMMIT;"),
                ]
            )
        )
        return RepairResult(runner.run_id, version, "repair", row.checksum, mig.checksum)


def _event(
    runner: Runner,
    action: str,
    version: int,
    name: str,
    old: str | None,
    new: str | None,
    reason: str,
) -> sql.Composable:
    return sql.SQL(
        "INSERT INTO {s}.events (action, version, name, old_checksum, new_checksum, reason, by_user, run_id) "
        "VALUES ({a}, {v}, {n}, {o}, {c}, {r}, {by}, {run});\n"
    ).format(
        s=sql.Identifier(LEDGER_SCHEMA),
        a=sql.Literal(action),
        v=sql.Literal(version),
        n=sql.Literal(name),
        o=sql.Literal(old),
        c=sql.Literal(new),
        r=sql.Literal(reason or None),
        by=sql.Literal(runner.applied_by),
        run=sql.Literal(runner.run_id),
    )


def lint(migrations_dir: Path, *, versions: Sequence[int] | None = None) -> LintResult:
    """squawk over the files of ``migrations_dir`` (all, or only ``versions``); no database.

    An absent or empty directory is fine (nothing to lint).
    """
    migrations = source.load(migrations_dir)
    if versions is not None:
        wanted = set(versions)
        migrations = tuple(m for m in migrations if m.version in wanted)
    return LintResult(tuple(m.filename for m in migrations), lint_mod.lint(migrations))


def pending_versions(target: MigrationContext) -> tuple[int, ...]:
    """Versions not yet applied (for ``lint --pending``)."""
    migrations = _load(target)
    with _runner(target, None) as runner:
        rows, _ = ledger.read_ledger(runner.conn)
    return tuple(m.version for m in check(migrations, rows).todo())


# -- the post-deploy step's entry points (infra/postdeploy.py) -------------------------------------


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
    return tuple(f"{s.version:04d}_{s.name}" for s in migrate(target, progress=progress).applied)


def pending_for_postdeploy(spec: ConnectionSpec, *, migrations_dir: Path | None = None) -> tuple[str, ...]:
    """The labels a migrate would apply (validates; takes no lock, writes nothing)."""
    target = MigrationContext(spec, migrations_dir or MIGRATIONS_DIR)
    return migrate(target, dry_run=True).planned

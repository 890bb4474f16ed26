"""``python -m infra migrate|status|plan|validate|rollback|baseline|repair|lint|import``.

Parsing and printing only: each handler turns the ``argparse.Namespace`` once into frozen values
(:class:`Common` for the options every verb shares, one ``*Args`` per verb) and calls a typed
function, which calls :mod:`infra.migrations.commands` and prints the result. Errors become exit
codes in :func:`infra.cli.main` (with ``--json``, a JSON error object on stdout). Exit codes: 0 ok;
1 error, refusal, ledger/file disagreement, broken file or lint findings not allowed; 2
migrations pending (``status --exit-code``).

Connection: ``--host/--hostaddr/--port/--dbname/--user/--sslmode/--sslrootcert`` or libpq's
environment (``PGHOST``, ``PGPORT``, ``PGDATABASE``, ``PGUSER``, ``PGSSLMODE``, ``PGSERVICE``...).
The password comes only from ``PGPASSWORD``, ``PGPASSFILE`` (~/.pgpass) or a service file: there
is no ``--password``, and a ``--dsn`` that carries one is refused. A later stage may route a verb
through a stack's bastion (``--stack``): :data:`Route`. (One argument dataclass and one printer per
verb keep this module past 500 lines; ``import`` registers from :mod:`infra.migrations.importers.cli`.)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import enum
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO, TypeVar

from infra.enums import Environment
from infra.errors import ExitCode
from infra.migrations import adopt, commands
from infra.migrations.connection import ConnectionSpec, add_libpq_arguments, spec_from_args
from infra.migrations.importers import cli as importers_cli
from infra.migrations.ledger import LockHolder
from infra.migrations.runner import RunOptions
from infra.migrations.source import Migration
from infra.migrations.steps import Action, Outcome

__all__ = ["ArgumentsHook", "Common", "PrintProgress", "Route", "register"]

#: Options a later stage adds to every verb (post-deploy: how to reach a stack).
ArgumentsHook = Callable[[argparse.ArgumentParser], None]


class Route(Protocol):
    """How a later stage runs a verb that needs the database (post-deploy: ``--stack`` through the
    bastion). It calls ``run`` with ``common`` (its connection replaced), or runs the verb its own way
    (``migrate --stack`` is the whole post-deploy run), and returns the exit code."""

    def __call__(
        self, verb: str, namespace: argparse.Namespace, common: Common, run: Callable[[Common], int]
    ) -> int: ...


class PrintProgress:
    """``0004_x ... done (12 ms)`` lines (stderr when stdout carries --json).

    A closed stream (``migrate | head -1``) stops the printing, never the run.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream: TextIO | None = stream

    def _print(self, text: str, end: str = "\n") -> None:
        if self.stream is None:
            return
        try:
            print(text, end=end, file=self.stream, flush=True)
        except BrokenPipeError:
            self.stream = None

    def lock_waiting(self, holder: LockHolder) -> None:
        self._print(f"waiting for the migration lock held by {holder.describe()}")

    def started(self, migration: Migration, action: Action) -> None:
        verb = {Action.RESUME: "resuming ", Action.ROLLBACK: "rolling back "}.get(action, "")
        self._print(f"{verb}{migration.label} ... ", end="")

    def retrying(self, migration: Migration, attempt: int, delay: float, reason: str) -> None:
        self._print(f"lock timeout, retry {attempt} in {delay:.1f}s ... ", end="")

    def finished(self, migration: Migration, action: Action, outcome: Outcome, ms: float) -> None:
        said = {
            Outcome.DONE: "done",
            Outcome.NOOP: "no-op: the section is empty",
            Outcome.STAGED: "staged, commits with the whole run",
        }[outcome]
        self._print(f"{said} ({ms:.0f} ms)")


@dataclass(frozen=True)
class Common:
    """The options every engine verb shares, parsed once."""

    connection: ConnectionSpec
    explicit_connection: bool  # --host or --dsn given: never routed through a stack
    migrations_dir: Path
    environment: Environment | None
    stack: str | None
    json: bool
    lock_wait: float
    lock_timeout: str
    statement_timeout: str
    lock_retries: int

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> Common:
        return cls(
            connection=spec_from_args(ns),
            explicit_connection=bool(ns.host or ns.dsn),
            migrations_dir=ns.migrations_dir,
            environment=Environment(ns.environment) if ns.environment else None,
            stack=ns.stack,
            json=ns.json,
            lock_wait=ns.lock_wait,
            lock_timeout=ns.lock_timeout,
            statement_timeout=ns.statement_timeout,
            lock_retries=ns.lock_retries,
        )

    def context(
        self, *, single_transaction: bool = False, rebuild_invalid_indexes: bool = False, retry_failed: bool = False
    ) -> commands.MigrationContext:
        """The command layer's context (the flags are ``migrate``'s)."""
        options = RunOptions(
            lock_wait=self.lock_wait,
            lock_timeout=self.lock_timeout,
            statement_timeout=self.statement_timeout,
            lock_retries=self.lock_retries,
            single_transaction=single_transaction,
            rebuild_invalid_indexes=rebuild_invalid_indexes,
            retry_failed=retry_failed,
        )
        return commands.MigrationContext(self.connection, self.migrations_dir, self.environment, self.stack, options)

    def progress(self) -> PrintProgress:
        return PrintProgress(sys.stderr if self.json else sys.stdout)


def _dump(obj: object) -> None:
    def default(value: object) -> object:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        if isinstance(value, dt.datetime):
            return value.isoformat()
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, frozenset | set):
            return sorted(value)
        raise TypeError(type(value).__name__)

    def fields(pairs: list[tuple[str, object]]) -> dict[str, object]:
        # an enum field (a lock mode) reads as its name in the manual's spelling, not as a number
        return {k: getattr(v, "label", v.name) if isinstance(v, enum.Enum) else v for k, v in pairs}

    is_value = dataclasses.is_dataclass(obj) and not isinstance(obj, type)
    data = dataclasses.asdict(obj, dict_factory=fields) if is_value else obj  # type: ignore[call-overload]
    print(json.dumps(data, default=default, indent=2, sort_keys=True))


# -- verbs: frozen arguments and a typed function each --------------------------------------------


@dataclass(frozen=True)
class MigrateArgs:
    target: int | None
    dry_run: bool
    single_transaction: bool
    rebuild_invalid_indexes: bool
    retry_failed: bool

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> MigrateArgs:
        return cls(ns.target, ns.dry_run, ns.single_transaction, ns.rebuild_invalid_indexes, ns.retry_failed)


def run_migrate(common: Common, args: MigrateArgs) -> int:
    context = common.context(
        single_transaction=args.single_transaction,
        rebuild_invalid_indexes=args.rebuild_invalid_indexes,
        retry_failed=args.retry_failed,
    )
    result = commands.migrate(context, to=args.target, dry_run=args.dry_run, progress=common.progress())
    if common.json:
        _dump(result)
    elif args.dry_run:
        for label in result.planned:
            print(f"would apply {label}")
        if result.stop is not None:
            print(f"would stop at {result.stop.describe()}")
        print(f"dry run: {len(result.planned)} pending, nothing changed")
    else:
        total = sum(s.ms for s in result.applied)
        how = " in one transaction" if result.single_transaction and result.applied else ""
        print(f"{len(result.applied)} migration(s) applied{how} in {total:.0f} ms (run {result.run_id})")
    return ExitCode.ERROR if result.stop is not None else ExitCode.OK


@dataclass(frozen=True)
class StatusArgs:
    exit_code: bool

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> StatusArgs:
        return cls(ns.exit_code)


def run_status(common: Common, args: StatusArgs) -> int:
    result = commands.status(common.context())
    if common.json:
        _dump(result)
    else:
        for row in result.applied:
            extra = ""
            if row.status != "applied":
                extra = f" {row.status} at statement {(row.statements_applied or 0) + 1}/{row.statements_total}"
            print(
                f"applied  {row.display_name}  {row.applied_at:%Y-%m-%d %H:%M:%S}  {row.applied_by}  "
                f"{row.transaction_mode}{extra}"
            )
        for label in result.pending:
            print(f"pending  {label}.sql")
        for problem in result.problems:
            print(f"problem  {problem.describe()}")
        env = result.environment or "unstamped"
        print(f"{len(result.applied)} applied, {len(result.pending)} pending, environment {env}")
    if result.problems:
        return ExitCode.ERROR
    if args.exit_code and result.pending:
        return ExitCode.ATTENTION
    return ExitCode.OK


@dataclass(frozen=True)
class NoArgs:
    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> NoArgs:
        return cls()


def run_validate(common: Common, args: NoArgs) -> int:
    result = commands.validate(common.context())
    if common.json:
        _dump(result)
    else:
        print(f"ok: {result.files} file(s), {result.applied} applied, {len(result.pending)} pending")
    return ExitCode.OK


@dataclass(frozen=True)
class PlanArgs:
    target: int | None
    measure: bool

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> PlanArgs:
        return cls(ns.target, ns.measure)


def run_plan(common: Common, args: PlanArgs) -> int:
    result = commands.plan(common.context(), to=args.target, measure=args.measure)
    if common.json:
        _dump(result)
        return ExitCode.ERROR if result.problems else ExitCode.OK
    if not result.items:
        print("nothing pending")
    for item in result.items:
        allow = f", allow: {', '.join(item.allow)}" if item.allow else ""
        print(
            f"== {item.label} ({item.transaction}, lock_timeout {item.lock_timeout}, "
            f"statement_timeout {item.statement_timeout}{allow})"
        )
        for stmt in item.statements:
            on = f" on {stmt.table}" if stmt.table else ""
            if stmt.lock_mode == "unknown":
                print(f"-- line {stmt.line}: lock not derivable from the parse tree")
            else:
                print(f"-- line {stmt.line}: lock {stmt.lock_mode}{on}; blocks {stmt.blocks}")
            others = [f"{lock.mode.label} on {lock.relation}" for lock in stmt.locks if lock.relation != stmt.table]
            if others:
                print(f"--   also: {'; '.join(others)}")
            for text in (*stmt.rewrites, *stmt.notes):
                print(f"--   {text}")
            if stmt.measured is not None:
                taken = "; ".join(
                    f"{lock.mode.label} on {lock.relation}" + ("" if lock.granted else " (waited)")
                    for lock in stmt.measured.locks
                )
                print(f"--   measured ({stmt.measured.how}): {taken or 'no lock on an existing object'}")
                if stmt.measured.rewrites:
                    print(f"--   measured: rewrote {', '.join(stmt.measured.rewrites)}")
                for text in stmt.measured.disagreements:
                    print(f"--   the parse tree and pg_locks differ: {text}")
            print(stmt.sql + "\n;")
        if item.held:
            held = "; ".join(f"{lock.mode.label} on {lock.relation}" for lock in item.held)
            print(f"-- measured: the migration holds until its commit: {held}")
        for finding in item.findings:
            print(f"lint: {finding.describe()}")
        print()
    for problem in result.problems:
        print(f"problem  {problem.describe()}")
    if result.blocking:
        print(
            f"{len(result.blocking)} lint finding(s) would block migrate on production "
            "(rules that take dangerous locks or rewrite tables)"
        )
    return ExitCode.ERROR if result.problems else ExitCode.OK


@dataclass(frozen=True)
class RollbackArgs:
    to: int
    confirm: str | None
    reason: str

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> RollbackArgs:
        return cls(ns.to, ns.confirm, ns.reason or "")


def run_rollback(common: Common, args: RollbackArgs) -> int:
    result = commands.rollback(
        common.context(), to=args.to, confirm=args.confirm, reason=args.reason, progress=common.progress()
    )
    if common.json:
        _dump(result)
    else:
        print(f"{len(result.rolled_back)} migration(s) rolled back (run {result.run_id})")
    return ExitCode.OK


@dataclass(frozen=True)
class BaselineArgs:
    version: int | None
    from_ledger: str | None
    mapping: Path | None
    ledger_table: str | None
    reason: str

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> BaselineArgs:
        return cls(ns.version, ns.from_ledger, ns.mapping, ns.ledger_table, ns.reason or "")


def run_baseline(common: Common, args: BaselineArgs) -> int:
    result = commands.baseline(
        common.context(),
        version=args.version,
        from_ledger=args.from_ledger,
        mapping=args.mapping,
        ledger_table=args.ledger_table,
        reason=args.reason,
        progress=common.progress(),
    )
    if common.json:
        _dump(result)
    else:
        print(f"baseline: {len(result.versions)} migration(s) recorded as applied, none run")
    return ExitCode.OK


@dataclass(frozen=True)
class RepairArgs:
    version: int
    reason: str
    forget: bool

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> RepairArgs:
        return cls(ns.version, ns.reason, ns.forget)


def run_repair(common: Common, args: RepairArgs) -> int:
    result = commands.repair(common.context(), version=args.version, reason=args.reason, forget=args.forget)
    if common.json:
        _dump(result)
    elif result.action == "forget":
        print(f"version {result.version} removed from the ledger (audited, run {result.run_id})")
    else:
        old, new = (result.old_checksum or "")[:12], (result.new_checksum or "")[:12]
        print(f"version {result.version}: checksum {old} -> {new} accepted (audited, run {result.run_id})")
    return ExitCode.OK


@dataclass(frozen=True)
class LintArgs:
    pending: bool
    write_baseline: bool

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> LintArgs:
        return cls(ns.pending, ns.write_baseline)


def run_lint(common: Common, args: LintArgs) -> int:
    versions = commands.pending_versions(common.context()) if args.pending else None
    result = commands.lint(common.migrations_dir, versions=versions, write_baseline=args.write_baseline)
    if common.json:
        _dump(result)
    else:
        for finding in result.findings:
            print(finding.describe())
        for problem in result.problems:
            print(f"problem  {problem.describe()}")
        blocking = len(result.blocking)
        production = sum(1 for f in result.findings if f.blocks_production)
        if result.baseline is not None:
            print(f"lint baseline written: {result.baseline}")
        print(
            f"{len(result.files)} file(s) linted, {len(result.findings)} finding(s), {blocking} neither allowed "
            f"nor in the lint baseline, {production} of the kind that blocks production"
        )
    return ExitCode.ERROR if result.blocking or result.problems else ExitCode.OK


# -- registration ---------------------------------------------------------------------------------


def _version(text: str) -> int:
    """A version on the command line: ASCII digits only (``int()`` would also take '٠٠٠٨')."""
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a version (ASCII digits 0-9)")
    return int(text)


_DEFAULTS = RunOptions()


def _connection_args(p: argparse.ArgumentParser, extra_arguments: ArgumentsHook | None) -> None:
    add_libpq_arguments(p, "connection (default: libpq environment variables)")
    p.add_argument("--migrations-dir", type=Path, default=commands.DEFAULT_MIGRATIONS_DIR)
    p.add_argument(
        "--environment",
        choices=[e.value for e in Environment],
        help="the stack's environment; production turns on the guards (lint blocks, --confirm)",
    )
    p.add_argument(
        "--stack",
        help="Pulumi stack: without --host/--dsn, connect through its bastion from its outputs and secrets "
        "(migrate --stack runs the whole post-deploy path); also what rollback --confirm must repeat",
    )
    if extra_arguments is not None:
        extra_arguments(p)
    p.add_argument("--json", action="store_true", help="machine-readable output (and errors) on stdout")
    p.add_argument("--lock-wait", type=float, default=60.0, help="seconds to wait for the lock (60)")
    p.add_argument(
        "--lock-timeout",
        default=_DEFAULTS.lock_timeout,
        help=f"lock_timeout per attempt of a migration ({_DEFAULTS.lock_timeout}); a timeout is retried",
    )
    p.add_argument("--statement-timeout", default="15min", help="default statement_timeout (15min)")
    p.add_argument(
        "--lock-retries",
        type=int,
        default=_DEFAULTS.lock_retries,
        help=f"retries after a lock timeout, jittered backoff doubling to {_DEFAULTS.retry_max_delay:g}s "
        f"({_DEFAULTS.lock_retries})",
    )


class _VerbArgs(Protocol):
    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> Any: ...


A = TypeVar("A", bound=_VerbArgs)


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    route: Route | None = None,
    extra_arguments: ArgumentsHook | None = None,
) -> None:
    """Add the engine's verbs. The post-deploy stage passes ``route``/``extra_arguments`` for ``--stack``."""

    def add(name: str, args_type: type[A], run: Callable[[Common, A], int], help_text: str) -> argparse.ArgumentParser:
        p = subparsers.add_parser(name, help=help_text, description=help_text)
        _connection_args(p, extra_arguments)

        def handler(ns: argparse.Namespace) -> int:
            common = Common.from_namespace(ns)
            args: A = args_type.from_namespace(ns)
            needs_database = not (isinstance(args, LintArgs) and not args.pending)
            if route is None or not needs_database:
                return run(common, args)
            return route(name, ns, common, lambda routed: run(routed, args))

        p.set_defaults(handler=handler)
        return p

    p = add("migrate", MigrateArgs, run_migrate, "apply pending migrations under the advisory lock")
    p.add_argument("--target", type=_version, help="apply up to this version")
    p.add_argument("--dry-run", action="store_true", help="validate and list; no lock, no change")
    p.add_argument("--single-transaction", action="store_true", help="all pending in one transaction")
    p.add_argument(
        "--rebuild-invalid-indexes",
        action="store_true",
        help="drop an INVALID index left by an interrupted CREATE INDEX CONCURRENTLY and rebuild it",
    )
    p.add_argument("--retry-failed", action="store_true", help="resume a failed no-transaction migration")
    p.add_argument("--skip-snapshot", action="store_true", help="with --stack on production: no pre-migration snapshot")

    p = add("status", StatusArgs, run_status, "applied and pending migrations")
    p.add_argument("--exit-code", action="store_true", help="exit 2 when migrations are pending")

    add("validate", NoArgs, run_validate, "check files against the ledger; run nothing")

    p = add("plan", PlanArgs, run_plan, "pending SQL, directives, lock modes and lint findings")
    p.add_argument("--target", type=_version)
    p.add_argument(
        "--measure",
        action="store_true",
        help="also apply the pending migrations on a scratch PostgreSQL 16 holding the current schema "
        "and report the locks pg_locks shows (and table rewrites); the live database is only read",
    )

    p = add("rollback", RollbackArgs, run_rollback, "run down sections back to a version")
    p.add_argument("--to", type=_version, required=True, help="keep this version and those below")
    p.add_argument("--confirm", metavar="STACK", help="required on production: the stack name")
    p.add_argument("--reason", help="recorded in the audit log")

    p = add(
        "baseline",
        BaselineArgs,
        run_baseline,
        "adopt an existing database: record files as applied (up to --version, or those another tool's ledger "
        "says ran), after checking its catalog against what they produce on a scratch PostgreSQL 16",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", type=_version, help="every file up to this version")
    which.add_argument(
        "--from-ledger",
        choices=sorted(adopt.LEDGER_TOOLS),
        help="the files the other tool's ledger in this database says ran (dirty or disagreeing: refused)",
    )
    p.add_argument("--mapping", type=Path, help="the import mapping (default: <migrations-dir>/.import-map.json)")
    p.add_argument("--ledger-table", help="the other tool's ledger table, if not its default (schema.name)")
    p.add_argument("--reason", help="recorded in the audit log")

    p = add("repair", RepairArgs, run_repair, "accept a changed file's checksum (audited), or --forget a ledger row")
    p.add_argument("--version", type=_version, required=True)
    p.add_argument("--reason", required=True, help="why (recorded with who and when)")
    p.add_argument("--forget", action="store_true", help="delete the row instead (missing file, failed run)")

    p = add("lint", LintArgs, run_lint, "squawk over the migration files (no database unless --pending)")
    p.add_argument("--pending", action="store_true", help="only files not yet applied (connects)")
    p.add_argument(
        "--write-baseline",
        action="store_true",
        help="record today's findings in <migrations-dir>/.lint-baseline.json (an adopted history); "
        "only new findings count after that",
    )

    importers_cli.register(subparsers)

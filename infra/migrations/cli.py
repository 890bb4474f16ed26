"""``python -m infra migrate|status|plan|validate|rollback|baseline|repair|lint``.

Parsing and printing only: the work is in :mod:`infra.migrations.commands`; errors become exit
codes in :func:`infra.cli.main`. Exit codes: 0 ok; 1 error, refusal, ledger/file disagreement or
lint findings not allowed; 2 migrations pending (``status --exit-code``).

Connection: ``--host/--hostaddr/--port/--dbname/--user/--sslmode/--sslrootcert`` or libpq's
environment (``PGHOST``, ``PGPORT``, ``PGDATABASE``, ``PGUSER``, ``PGSSLMODE``, ``PGSERVICE``...).
The password comes only from ``PGPASSWORD``, ``PGPASSFILE`` (~/.pgpass) or a service file: there
is no ``--password``, and a ``--dsn`` that carries one is refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.enums import Environment
from infra.errors import ExitCode
from infra.migrations import commands
from infra.migrations.connection import add_libpq_arguments, spec_from_args
from infra.migrations.ledger import LockHolder
from infra.migrations.runner import RunOptions
from infra.migrations.source import Migration

__all__ = ["ArgumentsHook", "PrintProgress", "Wrap", "register"]

Handler = Callable[[argparse.Namespace], int]
#: How a later stage wraps a verb's handler (post-deploy: ``--stack`` goes through the bastion).
Wrap = Callable[[str, Handler], Handler]
#: Options a later stage adds to every verb (post-deploy: how to reach a stack).
ArgumentsHook = Callable[[argparse.ArgumentParser], None]


class PrintProgress:
    """``0004_x ... done (12 ms)`` lines (stderr when stdout carries --json)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def lock_waiting(self, holder: LockHolder) -> None:
        print(f"waiting for the migration lock held by {holder.describe()}", file=self.stream, flush=True)

    def started(self, migration: Migration, action: str) -> None:
        verb = {"apply": "", "resume": "resuming ", "rollback": "rolling back "}.get(action, "")
        print(f"{verb}{migration.label} ... ", end="", file=self.stream, flush=True)

    def retrying(self, migration: Migration, attempt: int, delay: float, reason: str) -> None:
        print(f"lock timeout, retry {attempt} in {delay:.1f}s ... ", end="", file=self.stream, flush=True)

    def finished(self, migration: Migration, action: str, ms: float) -> None:
        print(f"done ({ms:.0f} ms)", file=self.stream, flush=True)


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
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("--lock-wait", type=float, default=60.0, help="seconds to wait for the lock (60)")
    p.add_argument("--lock-timeout", default="5s", help="lock_timeout per migration (5s)")
    p.add_argument("--statement-timeout", default="15min", help="default statement_timeout (15min)")
    p.add_argument("--lock-retries", type=int, default=3, help="retries after a lock timeout (3)")


def _context(args: argparse.Namespace) -> commands.MigrationContext:
    spec = getattr(args, "stack_spec", None) or spec_from_args(
        args
    )  # set by infra.postdeploy.cli.stack_aware for --stack
    options = RunOptions(
        lock_wait=args.lock_wait,
        lock_timeout=args.lock_timeout,
        statement_timeout=args.statement_timeout,
        lock_retries=args.lock_retries,
        single_transaction=getattr(args, "single_transaction", False),
        rebuild_invalid_indexes=getattr(args, "rebuild_invalid_indexes", False),
        retry_failed=getattr(args, "retry_failed", False),
    )
    return commands.MigrationContext(
        connection=spec,
        migrations_dir=args.migrations_dir,
        environment=Environment(args.environment) if args.environment else None,
        stack=args.stack,
        options=options,
    )


def _progress(args: argparse.Namespace) -> PrintProgress:
    return PrintProgress(sys.stderr if args.json else sys.stdout)


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

    data = dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) and not isinstance(obj, type) else obj
    print(json.dumps(data, default=default, indent=2, sort_keys=True))


# -- handlers -------------------------------------------------------------------------------------


def _migrate(args: argparse.Namespace) -> int:
    result = commands.migrate(_context(args), to=args.target, dry_run=args.dry_run, progress=_progress(args))
    if args.json:
        _dump(result)
    elif args.dry_run:
        for label in result.planned:
            print(f"would apply {label}")
        print(f"dry run: {len(result.planned)} pending, nothing changed")
    else:
        total = sum(s.ms for s in result.applied)
        print(f"{len(result.applied)} migration(s) applied in {total:.0f} ms (run {result.run_id})")
    return ExitCode.OK


def _status(args: argparse.Namespace) -> int:
    result = commands.status(_context(args))
    if args.json:
        _dump(result)
    else:
        for row in result.applied:
            extra = ""
            if row.status != "applied":
                extra = f" {row.status} at statement {(row.statements_applied or 0) + 1}/{row.statements_total}"
            print(
                f"applied  {row.filename}  {row.applied_at:%Y-%m-%d %H:%M:%S}  {row.applied_by}  "
                f"{row.transaction_mode}{extra}"
            )
        for label in result.pending:
            print(f"pending  {label}.sql")
        for problem in result.problems:
            print(f"problem  {problem.message}")
        env = result.environment or "unstamped"
        print(f"{len(result.applied)} applied, {len(result.pending)} pending, environment {env}")
    if result.problems:
        return ExitCode.ERROR
    if args.exit_code and result.pending:
        return ExitCode.ATTENTION
    return ExitCode.OK


def _validate(args: argparse.Namespace) -> int:
    result = commands.validate(_context(args))
    if args.json:
        _dump(result)
    else:
        print(f"ok: {result.files} file(s), {result.applied} applied, {len(result.pending)} pending")
    return ExitCode.OK


def _plan(args: argparse.Namespace) -> int:
    result = commands.plan(_context(args), to=args.target)
    if args.json:
        _dump(result)
        return ExitCode.OK
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
            print(f"-- line {stmt.line}: lock {stmt.lock_mode}{on}; blocks {stmt.blocks}")
            print(stmt.sql + ";")
        for finding in item.findings:
            print(f"lint: {finding.describe()}")
        print()
    if result.blocking:
        print(f"{len(result.blocking)} lint finding(s) would block migrate on production")
    return ExitCode.OK


def _rollback(args: argparse.Namespace) -> int:
    result = commands.rollback(
        _context(args), to=args.to, confirm=args.confirm, reason=args.reason or "", progress=_progress(args)
    )
    if args.json:
        _dump(result)
    else:
        print(f"{len(result.rolled_back)} migration(s) rolled back (run {result.run_id})")
    return ExitCode.OK


def _baseline(args: argparse.Namespace) -> int:
    result = commands.baseline(_context(args), version=args.version, reason=args.reason or "")
    if args.json:
        _dump(result)
    else:
        print(f"baseline: {len(result.versions)} migration(s) recorded as applied, none run")
    return ExitCode.OK


def _repair(args: argparse.Namespace) -> int:
    result = commands.repair(_context(args), version=args.version, reason=args.reason, forget=args.forget)
    if args.json:
        _dump(result)
    elif result.action == "forget":
        print(f"version {result.version} removed from the ledger (audited, run {result.run_id})")
    else:
        old, new = (result.old_checksum or "")[:12], (result.new_checksum or "")[:12]
        print(f"version {result.version}: checksum {old} -> {new} accepted (audited, run {result.run_id})")
    return ExitCode.OK


def _lint(args: argparse.Namespace) -> int:
    versions = commands.pending_versions(_context(args)) if args.pending else None
    result = commands.lint(args.migrations_dir, versions=versions)
    if args.json:
        _dump(result)
    else:
        for finding in result.findings:
            print(finding.describe())
        blocking = len(result.blocking)
        print(f"{len(result.files)} file(s) linted, {len(result.findings)} finding(s), {blocking} not allowed")
    return ExitCode.ERROR if result.blocking else ExitCode.OK


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    wrap: Wrap | None = None,
    extra_arguments: ArgumentsHook | None = None,
) -> None:
    """Add the engine's verbs. The post-deploy stage passes ``wrap``/``extra_arguments`` for ``--stack``."""

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = subparsers.add_parser(name, help=help_text, description=help_text)
        _connection_args(p, extra_arguments)
        p.set_defaults(handler=wrap(name, handler) if wrap is not None else handler)
        return p

    p = add("migrate", _migrate, "apply pending migrations under the advisory lock")
    p.add_argument("--target", type=int, help="apply up to this version")
    p.add_argument("--dry-run", action="store_true", help="validate and list; no lock, no change")
    p.add_argument("--single-transaction", action="store_true", help="all pending in one transaction")
    p.add_argument(
        "--rebuild-invalid-indexes",
        action="store_true",
        help="drop an INVALID index left by an interrupted CREATE INDEX CONCURRENTLY and rebuild it",
    )
    p.add_argument("--retry-failed", action="store_true", help="resume a failed no-transaction migration")
    p.add_argument("--skip-snapshot", action="store_true", help="with --stack on production: no pre-migration snapshot")

    p = add("status", _status, "applied and pending migrations")
    p.add_argument("--exit-code", action="store_true", help="exit 2 when migrations are pending")

    add("validate", _validate, "check files against the ledger; run nothing")

    p = add("plan", _plan, "pending SQL, directives, lock modes and lint findings")
    p.add_argument("--target", type=int)

    p = add("rollback", _rollback, "run down sections back to a version")
    p.add_argument("--to", type=int, required=True, help="keep this version and those below")
    p.add_argument("--confirm", metavar="STACK", help="required on production: the stack name")
    p.add_argument("--reason", help="recorded in the audit log")

    p = add("baseline", _baseline, "adopt an existing database: record files up to a version as applied")
    p.add_argument("--version", type=int, required=True)
    p.add_argument("--reason", help="recorded in the audit log")

    p = add("repair", _repair, "accept a changed file's checksum (audited), or --forget a ledger row")
    p.add_argument("--version", type=int, required=True)
    p.add_argument("--reason", required=True, help="why (recorded with who and when)")
    p.add_argument("--forget", action="store_true", help="delete the row instead (missing file, failed run)")

    p = add("lint", _lint, "squawk over the migration files (no database unless --pending)")
    p.add_argument("--pending", action="store_true", help="only files not yet applied (connects)")

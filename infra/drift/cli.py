"""``python -m infra drift``: infrastructure and schema drift of a stack, for people and the scheduled job.

    python -m infra drift --stack prod                       # text report on stdout
    python -m infra drift --stack prod --json                # JSON on stdout
    python -m infra drift --stack prod --markdown drift.md   # also write markdown (issue / PR comment)
    python -m infra drift --local                            # the demo's schema (after `local up`)

Infrastructure: :mod:`infra.drift.infra` (Automation API). Schema: :mod:`infra.drift.schema`,
as ``migrator`` through the bastion tunnel, against the expected catalog built by
:mod:`infra.drift.expected`.

Exit codes: 0 no drift, 2 drift found, 1 the check could not run (unreachable stack or
database, no PostgreSQL 16 to build the expected catalog, unreadable ledger): never "no drift"
without having looked.
"""

from __future__ import annotations

import argparse
import contextlib
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from infra.drift.expected import CACHE_DIR, ExpectedCatalogs
from infra.drift.infra import PreviewingStack, infra_drift, select_stack
from infra.drift.model import DriftItem, DriftReport
from infra.drift.report import render_json, render_markdown, render_text
from infra.drift.rules import MANAGED_SERVICE, IgnoreList
from infra.drift.schema import ExpectedSource, schema_drift
from infra.errors import ExitCode, InfraError
from infra.paths import MIGRATIONS_DIR, PROJECT_DIR

__all__ = ["DriftOptions", "LiveDatabase", "register", "run_drift"]


@dataclass(frozen=True)
class LiveDatabase:
    """How to reach the live database (as ``migrator``) and who its managed admin is.

    ``open`` yields a connection for a run id; ``admin`` names the admin the expected catalog's
    throwaway server gives the same name, so memberships compare one for one.
    """

    open: Callable[[str], AbstractContextManager[psycopg.Connection[Any]]]
    admin: str


def _stack_database(stack: str, outputs_file: Path | None) -> LiveDatabase:
    """``migrator`` through the stack's tunnel; the admin's name from the stack outputs.

    Outputs and credentials are resolved once, here; the tunnel opens only for the check.
    """
    from infra.postdeploy.run import Route
    from infra.postdeploy.stack import stack_context

    ctx = stack_context(stack, outputs_file=outputs_file)

    @contextlib.contextmanager
    def open_(run_id: str) -> Iterator[psycopg.Connection[Any]]:
        from infra.migrations.connection import connect

        with ctx.tunnel:
            spec = Route(ctx.outputs.db_host, ctx.tunnel.local_port, ctx.outputs.db_name, ctx.ca_file).params(
                ctx.credentials.user("migrator")
            )
            with connect(spec, run_id) as conn:
                conn.autocommit = True
                yield conn

    return LiveDatabase(open_, ctx.outputs.db_admin_user)


def _local_database(root: Path | None) -> LiveDatabase:
    """``migrator`` on the local demo (``local up``) through its own jump host."""
    from infra.local.demo import ADMIN_USER, DEMO_DIR, DemoState, LocalDemo

    @contextlib.contextmanager
    def open_(run_id: str) -> Iterator[psycopg.Connection[Any]]:
        demo = LocalDemo(root or DEMO_DIR)
        state = DemoState.load(demo.root)
        if state is None:
            raise InfraError("the local demo is not running; run `python -m infra local up` (make demo) first")
        migrator = demo.credentials().user("migrator")
        with demo.tunnel(state) as tunnel:
            params = demo.route(state, tunnel.local_port).params(migrator)
            try:
                conn = params.connect(autocommit=True, application_name=f"drift:{run_id}")
            except psycopg.OperationalError as exc:
                raise InfraError(f"cannot connect to the local demo's database: {str(exc).strip()[:300]}") from None
            with conn:
                yield conn

    return LiveDatabase(open_, ADMIN_USER)


@dataclass(frozen=True)
class DriftOptions:
    """What to check and against what (the parsed command line, or a test's choice)."""

    migrations_dir: Path = MIGRATIONS_DIR
    check_infra: bool = True
    check_schema: bool = True
    cache_dir: Path | None = CACHE_DIR
    ignore: IgnoreList = MANAGED_SERVICE
    work_dir: Path = PROJECT_DIR


def run_drift(
    stack: str,
    options: DriftOptions | None = None,
    *,
    database: LiveDatabase | None = None,
    stack_factory: Callable[[str, Path], PreviewingStack] = select_stack,
    expected: ExpectedSource | None = None,
) -> DriftReport:
    """Run the chosen checks; a check that cannot run raises (exit 1), it never passes silently.

    ``expected`` replaces the expected-catalog source (tests lend one built on a shared scratch server).
    """
    options = options or DriftOptions()
    checks: list[str] = []
    items: list[DriftItem] = []
    source: str | None = None
    if options.check_infra:
        items += infra_drift(stack_factory(stack, options.work_dir))
        checks.append("infra")
    if options.check_schema:
        live = database or _stack_database(stack, None)
        catalogs = expected or ExpectedCatalogs(live.admin, cache_dir=options.cache_dir)
        with live.open(f"drift-{uuid.uuid4().hex[:8]}") as conn:
            found, source = schema_drift(
                conn, options.migrations_dir, catalogs, ignore=options.ignore.with_provider_roles(live.admin)
            )
        items += found
        checks.append("schema")
    return DriftReport(stack=stack, checks=tuple(checks), items=tuple(items), expected_source=source)


def _handle(args: argparse.Namespace) -> int:
    options = DriftOptions(
        migrations_dir=args.migrations_dir,
        check_infra=not (args.skip_infra or args.local),  # the demo has no Pulumi stack
        check_schema=not args.skip_schema,
        cache_dir=None if args.no_cache else args.cache_dir,
    )
    if args.local:
        report = run_drift("local", options, database=_local_database(args.dir))
    else:
        database = _stack_database(args.stack, args.outputs_file) if options.check_schema else None
        report = run_drift(args.stack, options, database=database)
    if args.markdown is not None:
        args.markdown.write_text(render_markdown(report))
    print(render_json(report) if args.json else render_text(report))
    return ExitCode.ATTENTION if report.drifted else ExitCode.OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "drift",
        help="infrastructure and schema drift of a stack; exit 0 none, 2 drift, 1 error",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="the Pulumi stack to check")
    where.add_argument("--local", action="store_true", help="the local demo's schema (after `local up`)")
    parser.add_argument("--dir", type=Path, help="--local: the demo's state directory (default: .local/demo)")
    parser.add_argument("--skip-infra", action="store_true", help="only the schema checks")
    parser.add_argument("--skip-schema", action="store_true", help="only the infrastructure checks")
    parser.add_argument("--outputs-file", type=Path, help="stack outputs recorded with `pulumi stack output --json`")
    parser.add_argument("--migrations-dir", type=Path, default=MIGRATIONS_DIR)
    parser.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the report as markdown to FILE")
    parser.add_argument(
        "--cache-dir", type=Path, default=CACHE_DIR, help=f"expected catalogs by key (default: {CACHE_DIR})"
    )
    parser.add_argument("--no-cache", action="store_true", help="always build the expected catalog afresh")
    parser.set_defaults(handler=_handle)

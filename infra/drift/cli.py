"""Drift detection for the scheduled job: infrastructure (Pulumi) and schema (ledger + catalog).

Infrastructure, through the Automation API on the stack:

* ``preview_refresh`` (a refresh dry run): cloud resources changed outside Pulumi
  (a console edit, a deleted security-group rule);
* ``preview``: the program and the state disagree (an undeployed change, or a setting that
  diffs on every run, which the quiet-preview rule forbids).

Schema, on the database:

* the ledger against ``schema/migrations``: pending, changed, missing or failed migrations;
* the catalog snapshot stored by the last migration run (``infra.migrations.catalog``) against the catalog
  now: objects added, removed or changed by hand.

Exit codes (``python -m infra drift``): 0 no drift, 2 drift found, 1 the check itself failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import psycopg

from infra.errors import AutomationError, InfraError, MigrationError
from infra.migrations import catalog, source, validate
from infra.migrations.ledger import read_ledger
from infra.paths import PROJECT_DIR

__all__ = [
    "DriftItem",
    "DriftReport",
    "PreviewingStack",
    "infra_drift",
    "register",
    "run_drift",
    "schema_drift",
]

Area = Literal["infra", "schema"]


# Step operations that mean "something would change". `same` and `read` do not.
_CHANGING_OPS = frozenset(
    {
        "create",
        "update",
        "delete",
        "replace",
        "create-replacement",
        "delete-replaced",
        "import",
        "import-replacement",
        "discard",
        "discard-replaced",
        "remove-pending-replace",
    }
)


@dataclass(frozen=True)
class DriftItem:
    """One difference: where it was found and what a person should look at."""

    area: Area
    check: str  # refresh | preview | ledger | catalog
    subject: str  # a URN, a migration file, or a catalog object
    detail: str

    def describe(self) -> str:
        return f"[{self.area}/{self.check}] {self.subject}: {self.detail}"


@dataclass(frozen=True)
class DriftReport:
    stack: str
    checks: tuple[str, ...]
    items: tuple[DriftItem, ...] = field(default=())

    @property
    def drifted(self) -> bool:
        return bool(self.items)

    def to_json(self) -> dict[str, object]:
        return {
            "stack": self.stack,
            "checks": list(self.checks),
            "drifted": self.drifted,
            "items": [asdict(item) for item in self.items],
        }


class PreviewingStack(Protocol):
    """What drift needs of ``pulumi.automation.Stack`` (a recorded double in tests)."""

    def preview(self, *, diff: bool | None = ..., on_event: Callable[[Any], None] | None = ...) -> Any: ...

    def preview_refresh(self, *, on_event: Callable[[Any], None] | None = ...) -> Any: ...


def _step_items(events: Iterable[Any], check: str) -> list[DriftItem]:
    """Changing steps from engine events (``ResourcePreEvent``), one item per URN."""
    seen: dict[str, DriftItem] = {}
    for event in events:
        pre = getattr(event, "resource_pre_event", None)
        if pre is None:
            continue
        meta = pre.metadata
        op = str(getattr(meta.op, "value", meta.op))
        diffs = list(meta.diffs or []) or sorted((meta.detailed_diff or {}).keys())
        # In a refresh, a resource whose cloud state moved is a `refresh` step with diffs
        # (older engines) or an `update`/`delete` step (newer ones).
        changing = op in _CHANGING_OPS or (op == "refresh" and bool(diffs))
        if not changing or meta.type == "pulumi:pulumi:Stack":
            continue
        detail = op + (f" ({', '.join(diffs)})" if diffs else "")
        seen[meta.urn] = DriftItem("infra", check, meta.urn, detail)
    return list(seen.values())


def _summary_changes(result: Any) -> dict[str, int]:
    summary: Mapping[Any, int] = getattr(result, "change_summary", None) or {}
    return {
        str(getattr(op, "value", op)): int(n)
        for op, n in summary.items()
        if str(getattr(op, "value", op)) != "same" and n
    }


def infra_drift(stack: PreviewingStack) -> list[DriftItem]:
    """Run a refresh preview and a preview; return every resource that would change.

    Raises AutomationError when the engine fails (not logged in, no credentials, ...).
    """
    from pulumi.automation import errors as auto_errors

    items: list[DriftItem] = []
    for check in ("refresh", "preview"):
        events: list[Any] = []
        try:
            if check == "refresh":
                result = stack.preview_refresh(on_event=events.append)
            else:
                result = stack.preview(diff=True, on_event=events.append)
        except auto_errors.CommandError as exc:
            lines = [ln for ln in str(exc).splitlines() if ln.strip() and "password" not in ln.lower()]
            raise AutomationError(f"pulumi {check} failed: {(lines[-1] if lines else 'no detail')[:300]}") from None
        found = _step_items(events, check)
        counted = _summary_changes(result)
        if counted and not found:
            # The summary says something changes but no step event named it: report the counts.
            detail = ", ".join(f"{n} to {op}" for op, n in sorted(counted.items()))
            found = [DriftItem("infra", check, "(stack)", detail)]
        items.extend(found)
    return items


def select_stack(stack: str, work_dir: Path) -> PreviewingStack:
    """The real stack through the Automation API (needs the Pulumi CLI and a backend login)."""
    from pulumi import automation as auto

    try:
        selected: PreviewingStack = auto.select_stack(stack_name=stack, work_dir=str(work_dir))
    except auto.errors.StackNotFoundError:
        raise AutomationError(f"stack {stack!r} not found; check `pulumi stack ls` and the backend login") from None
    except (auto.errors.CommandError, FileNotFoundError) as exc:
        raise AutomationError(f"pulumi could not select stack {stack!r}: {str(exc).splitlines()[-1][:300]}") from None
    return selected


def _ledger_items(conn: psycopg.Connection[Any], migrations_dir: Path) -> list[DriftItem]:
    """The engine's own validation (``validate.check``): one definition of "ledger and files agree"."""
    try:
        migrations = source.load(migrations_dir)
    except MigrationError as exc:
        return [DriftItem("schema", "ledger", str(migrations_dir), f"migration files do not parse: {exc}")]
    rows, _env = read_ledger(conn)
    validation = validate.check(migrations, rows)
    items = [DriftItem("schema", "ledger", p.file, f"{p.kind}: {p.describe()}") for p in validation.all_problems]
    items += [DriftItem("schema", "ledger", m.path.name, "pending: not applied") for m in validation.todo()]
    return items


def schema_drift(
    conn: psycopg.Connection[Any], migrations_dir: Path, schemas: tuple[str, ...] = catalog.APP_SCHEMAS
) -> list[DriftItem]:
    """Ledger vs files, and the stored catalog snapshot vs the catalog now. Reads only."""
    items = _ledger_items(conn, migrations_dir)
    expected = catalog.stored(conn)
    if expected is None:
        items.append(
            DriftItem(
                "schema", "catalog", "(database)", "no catalog snapshot in the ledger: run `migrate` once to record it"
            )
        )
        return items
    for change in catalog.compare(expected, catalog.snapshot(conn, schemas)):
        items.append(
            DriftItem("schema", "catalog", f"{change.kind} {change.name}", f"{change.change} outside the migrations")
        )
    return items


def render(report: DriftReport, as_json: bool) -> str:
    if as_json:
        return json.dumps(report.to_json(), indent=2, sort_keys=True)
    lines = [f"drift check of stack {report.stack!r}: {', '.join(report.checks)}"]
    lines += [f"  {item.describe()}" for item in report.items]
    lines.append(f"{len(report.items)} difference(s)" if report.drifted else "no drift")
    return "\n".join(lines)


ConnectionFactory = Callable[[str], AbstractContextManager[psycopg.Connection[Any]]]


def _stack_database(stack: str, outputs_file: Path | None) -> ConnectionFactory:
    """Connect as `migrator` (it owns the ledger) through the stack's tunnel."""

    @contextlib.contextmanager
    def open_(run_id: str) -> Iterator[psycopg.Connection[Any]]:
        from infra.migrations.connection import connect
        from infra.postdeploy.stack import stack_connection

        with stack_connection(stack, "migrator", outputs_file=outputs_file) as spec, connect(spec, run_id) as conn:
            yield conn

    return open_


def _local_database(root: Path | None) -> ConnectionFactory:
    """Connect as `migrator` to the local demo (``local up``) through its own jump host."""

    @contextlib.contextmanager
    def open_(run_id: str) -> Iterator[psycopg.Connection[Any]]:
        from infra.local.demo import DEMO_DIR, DemoState, LocalDemo

        demo = LocalDemo(root or DEMO_DIR)
        state = DemoState.load(demo.root)
        if state is None:
            raise InfraError("the local demo is not running; run `python -m infra local up` (make demo) first")
        migrator = demo.credentials().user("migrator")
        with demo.tunnel(state) as tunnel:
            params = demo.route(state, tunnel.local_port).params(migrator)
            with params.connect(autocommit=True, application_name=f"drift:{run_id}") as conn:
                yield conn

    return open_


def run_drift(
    stack: str,
    *,
    migrations_dir: Path,
    check_infra: bool = True,
    check_schema: bool = True,
    stack_factory: Callable[[str, Path], PreviewingStack] = select_stack,
    database: ConnectionFactory | None = None,
    work_dir: Path = PROJECT_DIR,
) -> DriftReport:
    """Run the chosen checks; a check that cannot run raises (exit 1), it never passes silently."""
    checks: list[str] = []
    items: list[DriftItem] = []
    if check_infra:
        items += infra_drift(stack_factory(stack, work_dir))
        checks.append("infra")
    if check_schema:
        opener = database or _stack_database(stack, None)
        with opener(f"drift-{uuid.uuid4().hex[:8]}") as conn:
            items += schema_drift(conn, migrations_dir)
        checks.append("schema")
    return DriftReport(stack=stack, checks=tuple(checks), items=tuple(items))


def _handle(args: argparse.Namespace) -> int:
    from infra.errors import ExitCode

    if args.local:
        # the demo has no Pulumi stack: only the schema can drift
        report = run_drift(
            "local", migrations_dir=args.migrations_dir, check_infra=False, database=_local_database(args.dir)
        )
    else:
        database = _stack_database(args.stack, args.outputs_file) if not args.skip_schema else None
        report = run_drift(
            args.stack,
            migrations_dir=args.migrations_dir,
            check_infra=not args.skip_infra,
            check_schema=not args.skip_schema,
            database=database,
        )
    print(render(report, args.json))
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
    parser.add_argument("--migrations-dir", type=Path, default=PROJECT_DIR / "schema" / "migrations")
    parser.add_argument("--json", action="store_true", help="machine-readable report")
    parser.set_defaults(handler=_handle)

"""Sub-commands of the post-deploy path: ``postdeploy``, and the engine's verbs with ``--stack``.

``python -m infra migrate --stack NAME`` is the same run as ``python -m infra postdeploy --stack NAME``
(the engine's ``migrate`` hands ``--stack`` to :func:`run_stack_postdeploy`).

Reports go to stdout (``--json`` for machines); diagnostics go to stderr through logging.
No password is ever printed: the psql hints read them from a 0600 pgpass file.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from infra.errors import ExitCode, InfraError
from infra.migrations.cli import PrintProgress

if TYPE_CHECKING:
    from infra.postdeploy.stack import StackContext


__all__ = [
    "add_stack_arguments",
    "emit_report",
    "format_report",
    "register",
    "run_stack_postdeploy",
    "stack_aware",
    "term_as_interrupt",
]

Handler = Callable[[argparse.Namespace], int]

# The engine's verbs that talk to the database (lint only with --pending).
_DB_VERBS = frozenset({"migrate", "status", "validate", "plan", "rollback", "baseline", "repair", "lint"})


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that locate a stack's database (shared with the engine's ``--stack`` commands)."""
    parser.add_argument(
        "--outputs-file",
        type=Path,
        help="read outputs from this `pulumi stack output --json --show-secrets` document instead of Pulumi",
    )
    parser.add_argument("--ca-file", type=Path, help="CA bundle for verify-full (AWS default: cached RDS bundle)")
    parser.add_argument("--local-port", type=int, help="local tunnel port (default: a free one)")
    parser.add_argument("--ssh-identity", type=Path, help="ssh mode: private key for the bastion")
    parser.add_argument("--ssh-known-hosts", type=Path, help="ssh mode: known_hosts holding the bastion's key")
    parser.add_argument("--ssh-config", type=Path, help="ssh mode: ssh_config file (port, ProxyJump, ...) for ssh -F")
    parser.add_argument("--aws-profile", help="AWS profile for Secrets Manager, SSM and RDS")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    post = subparsers.add_parser(
        "postdeploy",
        help="bootstrap roles, snapshot (production), migrate and verify a stack through its bastion",
    )
    post.add_argument("--stack", required=True, help="Pulumi stack name")
    add_stack_arguments(post)
    _add_run_arguments(post)
    post.set_defaults(handler=run_stack_postdeploy)

    from infra.migrations import cli as engine_cli

    engine_cli.register(subparsers, wrap=stack_aware, extra_arguments=add_stack_arguments)


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skip-snapshot", action="store_true", help="production: no pre-migration snapshot")
    parser.add_argument("--dry-run", action="store_true", help="bootstrap and list pending migrations only")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def format_report(report: object) -> str:
    """The human summary of a :class:`~infra.postdeploy.run.PostDeployReport`."""
    from infra.postdeploy.run import PostDeployReport

    assert isinstance(report, PostDeployReport)
    lines = [
        f"post-deploy {report.stack} ({report.platform}, {report.environment.value}) through the {report.tunnel} tunnel"
    ]
    if report.bootstrap:
        lines.append(f"  bootstrap:  {len(report.bootstrap)} change(s)")
        lines += [f"    {action}" for action in report.bootstrap]
    else:
        lines.append("  bootstrap:  roles in place, nothing changed")
    lines.append(f"  snapshot:   {report.snapshot or 'none'}")
    if report.migrations_applied:
        lines.append(f"  migrations: {len(report.migrations_applied)} applied")
        lines += [f"    {name}" for name in report.migrations_applied]
    elif report.migrations_pending:
        lines.append(f"  migrations: {len(report.migrations_pending)} pending (dry run)")
        lines += [f"    {name}" for name in report.migrations_pending]
    else:
        lines.append("  migrations: up to date")
    if report.seeded:
        lines.append("  seed:       development data loaded")
    status = "ok" if report.verification.ok else "FAILED"
    lines.append(f"  verify:     {status}")
    lines += [f"    {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in report.verification.checks]
    if report.scale is not None:
        lines += report.scale.lines()
    lines.append(f"  duration:   {report.duration_seconds:.1f}s")
    return "\n".join(lines)


def emit_report(report: object, as_json: bool) -> int:
    from infra.postdeploy.run import PostDeployReport

    assert isinstance(report, PostDeployReport)
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_report(report))
    return ExitCode.OK if report.ok else ExitCode.ERROR


def term_as_interrupt() -> None:
    # SIGTERM (CI cancel, `kill`) must unwind like Ctrl-C so the tunnel's context manager closes it
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def stack_aware(name: str, handler: Handler) -> Handler:
    """Wrap a migration-engine handler so ``--stack`` (without --host/--dsn) goes through the bastion.

    ``migrate --stack`` becomes the whole post-deploy run; the other verbs get a connection as
    ``migrator`` through a tunnel that stays open while the handler runs, and the stack's
    environment (so the production guards apply).
    """

    def run(args: argparse.Namespace) -> int:
        explicit = getattr(args, "host", None) or getattr(args, "dsn", None)
        if not getattr(args, "stack", None) or explicit or name not in _DB_VERBS:
            return handler(args)
        if name == "lint" and not getattr(args, "pending", False):
            return handler(args)
        if name == "migrate":
            if getattr(args, "target", None) is not None:
                raise InfraError("migrate --stack applies every pending migration; use plan/rollback for versions")
            return run_stack_postdeploy(args)
        from infra.postdeploy.run import Route

        term_as_interrupt()
        ctx = _context(args)
        with ctx.tunnel:
            route = Route(ctx.outputs.db_host, ctx.tunnel.local_port, ctx.outputs.db_name, ctx.ca_file)
            args.stack_spec = route.params(ctx.credentials.user("migrator"))
            if getattr(args, "environment", None) is None:
                args.environment = ctx.outputs.environment.value
            return handler(args)

    run.__name__ = f"{name}_stack_aware"
    return run


def _context(args: argparse.Namespace) -> StackContext:
    from infra.postdeploy.stack import stack_context

    return stack_context(
        args.stack,
        outputs_file=getattr(args, "outputs_file", None),
        ca_file=getattr(args, "ca_file", None),
        local_port=getattr(args, "local_port", None),
        ssh_identity=getattr(args, "ssh_identity", None),
        ssh_known_hosts=getattr(args, "ssh_known_hosts", None),
        ssh_config=getattr(args, "ssh_config", None),
        aws_profile=getattr(args, "aws_profile", None),
    )


def run_stack_postdeploy(args: argparse.Namespace) -> int:
    """The whole post-deploy run for ``args.stack`` (also ``migrate --stack``)."""
    from infra.postdeploy.run import Deployment, PostDeployOptions, run_postdeploy

    term_as_interrupt()
    ctx = _context(args)
    as_json = bool(getattr(args, "json", False))
    report = run_postdeploy(
        Deployment.of(args.stack, ctx.outputs),
        credentials=ctx.credentials,
        tunnel=ctx.tunnel,
        ca_file=ctx.ca_file,
        options=PostDeployOptions(
            skip_snapshot=bool(getattr(args, "skip_snapshot", False)), dry_run=bool(getattr(args, "dry_run", False))
        ),
        snapshotter=ctx.snapshotter,
        progress=PrintProgress(sys.stderr if as_json else sys.stdout),
        scale=ctx.scale,
    )
    return emit_report(report, as_json)

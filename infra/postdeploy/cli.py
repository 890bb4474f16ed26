"""Sub-commands of the post-deploy path: ``postdeploy``, and the engine's verbs with ``--stack``.

``python -m infra migrate --stack NAME`` is the same run as ``python -m infra postdeploy --stack NAME``
(the engine's ``migrate`` hands ``--stack`` to :func:`run_stack_postdeploy`).

Reports go to stdout (``--json`` for machines); diagnostics go to stderr through logging.
No password is ever printed: the psql hints read them from a 0600 pgpass file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from infra.errors import ExitCode, InfraError
from infra.migrations.cli import Common, PrintProgress

if TYPE_CHECKING:
    from infra.postdeploy.stack import StackContext


__all__ = [
    "StackArgs",
    "add_stack_arguments",
    "emit_report",
    "format_report",
    "register",
    "route_through_stack",
    "run_stack_postdeploy",
    "term_as_interrupt",
]


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

    engine_cli.register(subparsers, route=route_through_stack, extra_arguments=add_stack_arguments)


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


@dataclass(frozen=True)
class StackArgs:
    """The options of :func:`add_stack_arguments` and of a post-deploy run, parsed once."""

    stack: str
    outputs_file: Path | None
    ca_file: Path | None
    local_port: int | None
    ssh_identity: Path | None
    ssh_known_hosts: Path | None
    ssh_config: Path | None
    aws_profile: str | None
    skip_snapshot: bool = False
    dry_run: bool = False
    json: bool = False

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace, *, run: bool) -> StackArgs:
        """``run``: the namespace also holds ``--skip-snapshot``/``--dry-run``/``--json`` (postdeploy, migrate)."""
        return cls(
            stack=ns.stack,
            outputs_file=ns.outputs_file,
            ca_file=ns.ca_file,
            local_port=ns.local_port,
            ssh_identity=ns.ssh_identity,
            ssh_known_hosts=ns.ssh_known_hosts,
            ssh_config=ns.ssh_config,
            aws_profile=ns.aws_profile,
            skip_snapshot=ns.skip_snapshot if run else False,
            dry_run=ns.dry_run if run else False,
            json=ns.json if run else False,
        )


def route_through_stack(verb: str, namespace: argparse.Namespace, common: Common, run: Callable[[Common], int]) -> int:
    """The engine's :class:`~infra.migrations.cli.Route`: ``--stack`` (without --host/--dsn) goes through
    the bastion.

    ``migrate --stack`` becomes the whole post-deploy run; the other verbs get a connection as
    ``migrator`` through a tunnel that stays open while they run, and the stack's environment
    (so the production guards apply).
    """
    if common.stack is None or common.explicit_connection:
        return run(common)
    if verb == "migrate":
        if namespace.target is not None:
            raise InfraError("migrate --stack applies every pending migration; use plan/rollback for versions")
        return _postdeploy(StackArgs.from_namespace(namespace, run=True))
    from infra.postdeploy.run import Route

    term_as_interrupt()
    stack_args = StackArgs.from_namespace(namespace, run=False)
    ctx = _context(stack_args)
    with ctx.tunnel:
        route = Route(ctx.outputs.db_host, ctx.tunnel.local_port, ctx.outputs.db_name, ctx.ca_file)
        routed = dataclasses.replace(
            common,
            connection=route.params(ctx.credentials.user("migrator")),
            environment=common.environment or ctx.outputs.environment,
        )
        return run(routed)


def _context(args: StackArgs) -> StackContext:
    from infra.postdeploy.stack import stack_context

    return stack_context(
        args.stack,
        outputs_file=args.outputs_file,
        ca_file=args.ca_file,
        local_port=args.local_port,
        ssh_identity=args.ssh_identity,
        ssh_known_hosts=args.ssh_known_hosts,
        ssh_config=args.ssh_config,
        aws_profile=args.aws_profile,
    )


def run_stack_postdeploy(ns: argparse.Namespace) -> int:
    """The ``postdeploy`` verb: the whole post-deploy run for ``--stack``."""
    return _postdeploy(StackArgs.from_namespace(ns, run=True))


def _postdeploy(args: StackArgs) -> int:
    """The whole post-deploy run for ``args.stack`` (also ``migrate --stack``)."""
    from infra.postdeploy.run import Deployment, PostDeployOptions, run_postdeploy

    term_as_interrupt()
    ctx = _context(args)
    report = run_postdeploy(
        Deployment.of(args.stack, ctx.outputs),
        credentials=ctx.credentials,
        tunnel=ctx.tunnel,
        ca_file=ctx.ca_file,
        options=PostDeployOptions(skip_snapshot=args.skip_snapshot, dry_run=args.dry_run),
        snapshotter=ctx.snapshotter,
        progress=PrintProgress(sys.stderr if args.json else sys.stdout),
        scale=ctx.scale,
    )
    return emit_report(report, args.json)

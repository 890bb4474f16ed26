"""Sub-commands of the post-deploy path: ``postdeploy``, ``tunnel`` and ``local up|down``.

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
from typing import TYPE_CHECKING, TextIO

from infra.cli import EXIT_ERROR, EXIT_OK
from infra.errors import InfraError

if TYPE_CHECKING:
    from infra.migrations.ledger import LockHolder
    from infra.migrations.source import Migration
    from infra.postdeploy import StackContext


class _Progress:
    """``0004_x ... done (12 ms)`` while the engine applies (stderr when stdout carries --json)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def lock_waiting(self, holder: LockHolder) -> None:
        print(f"waiting for the migration lock held by {holder.describe()}", file=self.stream, flush=True)

    def started(self, migration: Migration, action: str) -> None:
        print(f"{migration.label} ... ", end="", file=self.stream, flush=True)

    def retrying(self, migration: Migration, attempt: int, delay: float, reason: str) -> None:
        print(f"lock timeout, retry {attempt} in {delay:.1f}s ... ", end="", file=self.stream, flush=True)

    def finished(self, migration: Migration, action: str, ms: float) -> None:
        print(f"done ({ms:.0f} ms)", file=self.stream, flush=True)


__all__ = ["add_stack_arguments", "format_report", "register", "run_stack_postdeploy", "stack_aware"]

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

    tunnel = subparsers.add_parser("tunnel", help="open the bastion tunnel and print psql parameters; Ctrl-C closes")
    where = tunnel.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="Pulumi stack name")
    where.add_argument("--local", action="store_true", help="the local demo's jump host (after `local up`)")
    tunnel.add_argument("--role", default="app", help="login to print parameters for (default: app)")
    tunnel.add_argument("--dir", type=Path, help="with --local: the demo's state directory (default: .local/demo)")
    add_stack_arguments(tunnel)
    tunnel.set_defaults(handler=_tunnel)

    local = subparsers.add_parser("local", help="the post-deploy path on this machine (no cloud)")
    verbs = local.add_subparsers(dest="local_command", metavar="up|down", required=True)
    up = verbs.add_parser("up", help="embedded PostgreSQL 16 + local sshd jump host; migrate, seed, verify")
    up.add_argument("--no-seed", action="store_true", help="skip the development seed data")
    up.add_argument("--json", action="store_true", help="print the report as JSON")
    up.add_argument("--dir", type=Path, help="state directory (default: .local/demo)")
    up.set_defaults(handler=_local_up)
    down = verbs.add_parser("down", help="stop the local parts and delete their directory")
    down.add_argument("--dir", type=Path, help="state directory (default: .local/demo)")
    down.set_defaults(handler=_local_down)


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skip-snapshot", action="store_true", help="production: no pre-migration snapshot")
    parser.add_argument("--dry-run", action="store_true", help="bootstrap and list pending migrations only")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def format_report(report: object) -> str:
    """The human summary of a :class:`~infra.postdeploy.PostDeployReport`."""
    from infra.postdeploy import PostDeployReport

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
    lines.append(f"  duration:   {report.duration_seconds:.1f}s")
    return "\n".join(lines)


def _emit(report: object, as_json: bool) -> int:
    from infra.postdeploy import PostDeployReport

    assert isinstance(report, PostDeployReport)
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_report(report))
    return EXIT_OK if report.ok else EXIT_ERROR


def _term_as_interrupt() -> None:
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
        from infra.postdeploy import Route

        _term_as_interrupt()
        ctx = _context(args)
        with ctx.tunnel:
            route = Route(ctx.outputs.db_host, ctx.tunnel.local_port, ctx.outputs.db_name, ctx.ca_file)
            args.stack_spec = route.params(ctx.credentials.user("migrator")).spec()
            if getattr(args, "environment", None) is None:
                args.environment = ctx.outputs.environment.value
            return handler(args)

    run.__name__ = f"{name}_stack_aware"
    return run


def _context(args: argparse.Namespace) -> StackContext:
    from infra.postdeploy import stack_context

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
    from infra.postdeploy import PostDeployOptions, Target, run_postdeploy

    _term_as_interrupt()
    ctx = _context(args)
    as_json = bool(getattr(args, "json", False))
    report = run_postdeploy(
        Target.of(args.stack, ctx.outputs),
        credentials=ctx.credentials,
        tunnel=ctx.tunnel,
        ca_file=ctx.ca_file,
        options=PostDeployOptions(
            skip_snapshot=bool(getattr(args, "skip_snapshot", False)), dry_run=bool(getattr(args, "dry_run", False))
        ),
        snapshotter=ctx.snapshotter,
        progress=_Progress(sys.stderr if as_json else sys.stdout),
    )
    return _emit(report, as_json)


def _tunnel(args: argparse.Namespace) -> int:
    from infra.local import LocalDemo
    from infra.postdeploy import ConnParams, Route
    from infra.secrets import Credential

    _term_as_interrupt()
    if args.local:
        from infra.local import DEMO_DIR, DemoState

        demo = LocalDemo(args.dir or DEMO_DIR)
        state = DemoState.load(demo.root)
        if state is None:
            raise InfraError("the local demo is not running; run `python -m infra local up` first")
        tunnel = demo.tunnel(state)
        with tunnel:
            local_params = demo.route(state, tunnel.local_port).params(Credential(args.role, ""))
            _print_tunnel(local_params, demo.psql_hint(local_params))
            tunnel.wait()
        return EXIT_OK
    # no secret is read here: the tunnel carries TLS, the user brings the password to psql
    from infra.postdeploy import ca_file_for, configured_ca, load_stack_outputs
    from infra.tunnel import tunnel_for

    outputs = load_stack_outputs(args.stack, args.outputs_file)
    role = outputs.db_admin_user if args.role == "admin" else args.role
    secret_id = outputs.db_admin_secret if args.role == "admin" else outputs.db_user_secrets.get(args.role)
    if secret_id is None:
        raise InfraError(f"no login {args.role!r} on stack {args.stack!r}; use admin, migrator, app or readonly")
    stack_tunnel = tunnel_for(
        outputs,
        local_port=args.local_port,
        ssh_identity=args.ssh_identity,
        ssh_known_hosts=args.ssh_known_hosts,
        ssh_config=args.ssh_config,
        aws_profile=args.aws_profile,
    )
    ca_file = ca_file_for(outputs, configured=configured_ca(args.ca_file))
    with stack_tunnel:
        route = Route(outputs.db_host, stack_tunnel.local_port, outputs.db_name, ca_file)
        params: ConnParams = route.params(Credential(role, ""))
        conninfo = " ".join(f"{k}={v}" for k, v in params.public().items())
        _print_tunnel(params, f'psql "{conninfo}"')
        print(f"password: secret {secret_id} (give it to psql through PGPASSFILE or its prompt)")
        sys.stdout.flush()
        stack_tunnel.wait()
    return EXIT_OK


def _print_tunnel(params: object, hint: str) -> None:
    from infra.postdeploy import ConnParams

    assert isinstance(params, ConnParams)
    print(f"tunnel open on 127.0.0.1:{params.port} -> {params.host}; Ctrl-C closes it")
    for key, value in params.public().items():
        print(f"  {key}={value}")
    print(hint)
    sys.stdout.flush()


def _local_up(args: argparse.Namespace) -> int:
    from infra.local import DEMO_DIR, LocalDemo

    _term_as_interrupt()
    demo = LocalDemo(args.dir or DEMO_DIR)
    report = demo.up(seed=not args.no_seed, progress=_Progress(sys.stderr if args.json else sys.stdout))
    code = _emit(report, args.json)
    if not args.json:
        state = demo.state()
        where = "" if args.dir is None else f" --dir {args.dir}"
        print()
        if state is not None:
            print(f"postgresql 16 on 127.0.0.1:{state.pg_port} (certificate for {state.tls_name}); jump host (sshd)")
            print(f"on 127.0.0.1:{state.sshd_port}, forwarding only to the database; state in {demo.root}")
        print("connect with psql (the tunnel stays open until Ctrl-C):")
        from infra.postdeploy import project_python

        python = project_python()
        print(f"  {python} -m infra tunnel --local{where}")
        print("  then run the psql line it prints (passwords come from the 0600 pgpass file)")
        print(f"stop everything: {python} -m infra local down{where}   (or: make demo-down)")
    return code


def _local_down(args: argparse.Namespace) -> int:
    from infra.local import DEMO_DIR, LocalDemo

    for line in LocalDemo(args.dir or DEMO_DIR).down() or ["nothing to stop"]:
        print(line)
    return EXIT_OK

"""``python -m infra seed`` and ``python -m infra reset``: development data and a clean slate.

Parsing and printing only; the work is in :mod:`infra.postdeploy.seed`. Both refuse when any source
says production: the stack's outputs (whenever ``--stack`` is given, ``--host`` or not),
``--environment``, or the database's ledger stamp; ``reset`` needs ``--confirm`` repeating the
stack name, or the database name when connecting directly.

Connection: ``--stack NAME`` connects as ``migrator`` through the stack's bastion (outputs,
secret store, tunnel, verify-full TLS); otherwise ``--host/--port/--dbname/--user/...`` or
``--dsn`` or libpq's environment (``PGHOST``, ``PGDATABASE``...). The password comes only from
``PGPASSWORD``, ``~/.pgpass`` or a service file, never from the command line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from infra.enums import Environment
from infra.errors import ExitCode, SafetyError
from infra.migrations.connection import ConnectionSpec, add_libpq_arguments, spec_from_args
from infra.postdeploy.cli import add_stack_arguments

__all__ = ["register"]


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stack", help="Pulumi stack: connect as migrator through its bastion")
    add_stack_arguments(p)
    add_libpq_arguments(p, "direct connection (default: libpq environment variables)")
    p.add_argument(
        "--environment",
        choices=[e.value for e in Environment],
        help="environment of a direct connection (with --stack it comes from the stack's outputs)",
    )


def _environment(args: argparse.Namespace) -> Environment | None:
    """The environment from every source the command line names; refuses if any says production.

    Sources: ``--environment`` and, whenever ``--stack`` is given (with ``--host``/``--dsn`` too),
    the stack's outputs. The database's ledger stamp is the third, checked once connected. Runs
    before any secret is read, tunnel opened or connection made.
    """
    from infra.postdeploy.seed import refuse_production_stack

    sources: list[tuple[str, Environment]] = []
    if args.environment:
        sources.append(("--environment", Environment(args.environment)))
    if args.stack:
        from infra.postdeploy.stack import environment_of

        environment = environment_of(args.stack, args.outputs_file)
        refuse_production_stack(args.stack, environment, args.command)
        sources.append((f"stack {args.stack!r}", environment))
    for source, environment in sources:
        if environment is Environment.PRODUCTION:
            raise SafetyError(f"refusing to {args.command}: {source} says the environment is production")
    return sources[-1][1] if sources else None


@contextmanager
def _connection(args: argparse.Namespace) -> Iterator[tuple[ConnectionSpec, Environment | None]]:
    """The spec and environment; with --stack (and no --host/--dsn) the tunnel stays open for the block."""
    environment = _environment(args)
    if args.stack and not (args.host or args.dsn):
        from infra.postdeploy.stack import stack_connection

        options = {
            "outputs_file": args.outputs_file,
            "ca_file": args.ca_file,
            "local_port": args.local_port,
            "ssh_identity": args.ssh_identity,
            "ssh_known_hosts": args.ssh_known_hosts,
            "ssh_config": args.ssh_config,
            "aws_profile": args.aws_profile,
        }
        with stack_connection(args.stack, "migrator", **options) as spec:
            yield spec, environment
        return
    yield spec_from_args(args), environment


def _seed(args: argparse.Namespace) -> int:
    from infra.postdeploy.seed import seed

    with _connection(args) as (spec, environment):
        result = seed(spec, environment=environment)
    print(f"seeded database {result.database!r} from {len(result.files)} file(s): {', '.join(result.files)}")
    return ExitCode.OK


def _reset(args: argparse.Namespace) -> int:
    from infra.postdeploy.seed import reset

    with _connection(args) as (spec, environment):
        result = reset(spec, confirm=args.confirm, environment=environment, stack=args.stack)
    print(
        f"reset database {result.database!r}: schema app dropped, "
        f"{len(result.forgotten)} ledger row(s) forgotten, {len(result.applied)} migration(s) applied"
    )
    for label in result.applied:
        print(f"  {label}")
    return ExitCode.OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    commands: list[tuple[str, str, Callable[[argparse.Namespace], int]]] = [
        ("seed", "load the development data (idempotent; refused on production)", _seed),
        ("reset", "drop schema app and re-apply every migration (refused on production)", _reset),
    ]
    for name, help_text, handler in commands:
        p = subparsers.add_parser(name, help=help_text, description=help_text)
        _arguments(p)
        if name == "reset":
            p.add_argument(
                "--confirm",
                required=True,
                metavar="NAME",
                help="repeat the stack name (or, connecting directly, the database name)",
            )
        p.set_defaults(handler=handler)

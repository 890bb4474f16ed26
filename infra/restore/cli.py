"""``python -m infra restore-drill``: restore a backup to a point in time, verify the copy, report RPO/RTO.

    restore-drill --stack S [--to TIMESTAMP|latest] [--keep] [--json | --markdown]
    restore-drill --local [--to TIMESTAMP|latest] [--dir DIR] [--json | --markdown]

Exit codes: 0 the copy was restored and every check passed; 1 no copy could be made (no backup
yet, PITR off, a time outside the window, a copy that never became available: one line naming
the cause) or a check failed (the report says which).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.errors import ExitCode, RestoreError
from infra.paths import DEMO_DIR
from infra.postdeploy.cli import add_stack_arguments, term_as_interrupt

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from infra.restore.drill import DEFAULT_WAIT_MINUTES

    parser = subparsers.add_parser(
        "restore-drill",
        help="restore the database to a point in time into a temporary copy, verify it, report RPO/RTO",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="the Pulumi stack whose database to restore")
    where.add_argument("--local", action="store_true", help="the local demo (after `local up`): a real WAL restore")
    parser.add_argument(
        "--to", default="latest", metavar="TIMESTAMP|latest", help="ISO 8601 with an offset, or latest (default)"
    )
    parser.add_argument("--keep", action="store_true", help="--stack: keep the copy (delete it yourself afterwards)")
    parser.add_argument(
        "--wait-minutes",
        type=int,
        default=DEFAULT_WAIT_MINUTES,
        help=f"--stack: how long the copy may take to become available (default {DEFAULT_WAIT_MINUTES})",
    )
    parser.add_argument("--dir", type=Path, help="--local: the demo's state directory")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="the report as JSON")
    output.add_argument("--markdown", action="store_true", help="the report as Markdown (a CI job summary)")
    add_stack_arguments(parser)
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from infra.restore.report import render
    from infra.restore.window import parse_restore_time

    term_as_interrupt()
    requested = parse_restore_time(args.to)
    if args.local:
        if args.keep:
            raise RestoreError("--keep is for --stack; the local copy is always removed")
        from infra.restore.local import run_local_drill

        report = run_local_drill(args.dir or DEMO_DIR, requested)
    else:
        if args.wait_minutes < 1:
            raise RestoreError(f"--wait-minutes {args.wait_minutes} must be at least 1")
        from infra.postdeploy.stack import stack_context
        from infra.restore.drill import restorer_for, run_stack_drill, tunnel_factory

        ctx = stack_context(
            args.stack,
            outputs_file=args.outputs_file,
            ca_file=args.ca_file,
            local_port=args.local_port,
            ssh_identity=args.ssh_identity,
            ssh_known_hosts=args.ssh_known_hosts,
            ssh_config=args.ssh_config,
            aws_profile=args.aws_profile,
        )
        restorer = restorer_for(ctx.outputs, aws_profile=args.aws_profile, wait_minutes=args.wait_minutes)
        opener = tunnel_factory(
            ctx,
            ssh_identity=args.ssh_identity,
            ssh_known_hosts=args.ssh_known_hosts,
            ssh_config=args.ssh_config,
            aws_profile=args.aws_profile,
        )
        report = run_stack_drill(args.stack, ctx, restorer, requested, open_tunnel=opener, keep=args.keep)
    print(render(report, as_json=args.json, markdown=args.markdown))
    sys.stdout.flush()
    return ExitCode.OK if report.ok else ExitCode.ERROR

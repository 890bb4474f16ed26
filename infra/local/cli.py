"""``python -m infra local up|down`` and ``tunnel`` (a cloud stack's bastion, or the demo's jump host).

``tunnel`` lives here, not in the post-deploy stage, because ``--local`` needs the demo and the
post-deploy stage never imports it. Reports to stdout; no password is ever printed: the psql
hints read them from a 0600 pgpass file, and a stack's tunnel names the secret to read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.errors import ExitCode, InfraError
from infra.migrations.cli import PrintProgress
from infra.paths import DEMO_DIR
from infra.postdeploy.cli import add_stack_arguments, emit_report, term_as_interrupt

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    up.add_argument(
        "--replicas", type=_replica_count, default=0, help="streaming read replicas behind the jump host (0-5)"
    )
    up.add_argument("--pooler", action="store_true", help="a PgBouncer in transaction mode behind the jump host")
    up.set_defaults(handler=_local_up)
    down = verbs.add_parser("down", help="stop the local parts and delete their directory")
    down.add_argument("--dir", type=Path, help="state directory (default: .local/demo)")
    down.set_defaults(handler=_local_down)


def _tunnel(args: argparse.Namespace) -> int:
    from infra.local.demo import LocalDemo
    from infra.migrations.connection import ConnectionSpec
    from infra.postdeploy.run import Route
    from infra.postdeploy.secrets import Credential

    term_as_interrupt()
    if args.local:
        from infra.local.demo import DemoState

        demo = LocalDemo(args.dir or DEMO_DIR)
        state = DemoState.load(demo.root)
        if state is None:
            raise InfraError("the local demo is not running; run `python -m infra local up` first")
        tunnel = demo.tunnel(state)
        with tunnel:
            local_params = demo.route(state, tunnel.local_port).params(Credential(args.role, ""))
            _print_tunnel(local_params, demo.psql_hint(local_params))
            tunnel.wait()
        return ExitCode.OK
    # no secret is read here: the tunnel carries TLS, the user brings the password to psql
    from infra.postdeploy.ca import ca_file_for, configured_ca
    from infra.postdeploy.stack import load_stack_outputs
    from infra.postdeploy.tunnel import tunnel_for

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
        params: ConnectionSpec = route.params(Credential(role, ""))
        conninfo = " ".join(f"{k}={v}" for k, v in params.public().items())
        _print_tunnel(params, f'psql "{conninfo}"')
        print(f"password: secret {secret_id} (give it to psql through PGPASSFILE or its prompt)")
        sys.stdout.flush()
        stack_tunnel.wait()
    return ExitCode.OK


def _print_tunnel(params: object, hint: str) -> None:
    from infra.migrations.connection import ConnectionSpec

    assert isinstance(params, ConnectionSpec)
    print(f"tunnel open on 127.0.0.1:{params.port} -> {params.host}; Ctrl-C closes it")
    for key, value in params.public().items():
        print(f"  {key}={value}")
    print(hint)
    sys.stdout.flush()


def _local_up(args: argparse.Namespace) -> int:
    from infra.local.demo import LocalDemo

    term_as_interrupt()
    demo = LocalDemo(args.dir or DEMO_DIR)
    report = demo.up(
        seed=not args.no_seed,
        replicas=args.replicas,
        pooler=args.pooler,
        progress=PrintProgress(sys.stderr if args.json else sys.stdout),
    )
    code = emit_report(report, args.json)
    if not args.json:
        state = demo.state()
        where = "" if args.dir is None else f" --dir {args.dir}"
        print()
        if state is not None:
            print(
                f"postgresql 16 on port {state.pg_port} in a private network (certificate for {state.tls_name}),"
                " reachable only through"
            )
            print(f"the jump host (sshd) on 127.0.0.1:{state.sshd_port}, forwarding only to it; state in {demo.root}")
        print("connect with psql (the tunnel stays open until Ctrl-C):")
        from infra.paths import project_python

        python = project_python()
        print(f"  {python} -m infra tunnel --local{where}")
        print("  then run the psql line it prints (passwords come from the 0600 pgpass file)")
        print(f"stop everything: {python} -m infra local down{where}   (or: make demo-down)")
    return code


def _replica_count(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 5:
        raise argparse.ArgumentTypeError(f"{value!r} is not a replica count from 0 to 5")
    return int(value)


def _local_down(args: argparse.Namespace) -> int:
    from infra.local.demo import LocalDemo

    for line in LocalDemo(args.dir or DEMO_DIR).down() or ["nothing to stop"]:
        print(line)
    return ExitCode.OK

"""A deployed stack as post-deploy sees it: its outputs, credentials, tunnel, CA and backups.

:func:`stack_context` resolves everything for one stack before the tunnel opens; the commands
(``migrate --stack``, ``tunnel``, ``seed``/``reset --stack``, ``drift``) start here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.contract import OUTPUTS_ENV, Endpoint, StackOutputs
from infra.enums import Environment
from infra.migrations.connection import ConnectionSpec
from infra.postdeploy.backup import Snapshotter, snapshotter_for
from infra.postdeploy.ca import ca_file_for, configured_ca, endpoint_ca_file
from infra.postdeploy.run import Route
from infra.postdeploy.scale import Hop, ScalePlan
from infra.postdeploy.secrets import Credentials, resolve_credentials, resolver_for
from infra.postdeploy.tunnel import Tunnel, tunnel_for

__all__ = ["StackContext", "environment_of", "load_stack_outputs", "stack_connection", "stack_context"]


@dataclass(frozen=True)
class StackContext:
    """Everything resolved for one stack before the tunnel opens."""

    stack: str
    outputs: StackOutputs
    credentials: Credentials
    tunnel: Tunnel
    ca_file: Path
    snapshotter: Snapshotter | None
    scale: ScalePlan | None = None  # the read replicas and the pooler, each through its own tunnel


def load_stack_outputs(stack: str, outputs_file: Path | None = None) -> StackOutputs:
    """Outputs from ``$INFRA_STACK_OUTPUTS`` (inside ``pulumi up``), a file, or the Pulumi CLI."""
    from infra.postdeploy.outputs import load_outputs_file, parse_document, read_outputs

    if outputs_file is not None:
        return load_outputs_file(outputs_file)
    inline = os.environ.get(OUTPUTS_ENV)
    if inline:
        return parse_document(inline, f"${OUTPUTS_ENV}")
    return read_outputs(stack)


def stack_context(
    stack: str,
    *,
    outputs_file: Path | None = None,
    ca_file: Path | None = None,
    local_port: int | None = None,
    ssh_identity: Path | None = None,
    ssh_known_hosts: Path | None = None,
    ssh_config: Path | None = None,
    aws_profile: str | None = None,
) -> StackContext:
    """Read and validate the outputs, resolve the credentials, choose the tunnel and the CA."""
    outputs = load_stack_outputs(stack, outputs_file)
    credentials = resolve_credentials(outputs, resolver_for(outputs, aws_profile=aws_profile))
    tunnel = tunnel_for(
        outputs,
        local_port=local_port,
        ssh_identity=ssh_identity,
        ssh_known_hosts=ssh_known_hosts,
        ssh_config=ssh_config,
        aws_profile=aws_profile,
    )
    configured = configured_ca(ca_file)

    def hop(name: str, endpoint: Endpoint) -> Hop:
        through = tunnel_for(
            outputs,
            ssh_identity=ssh_identity,
            ssh_known_hosts=ssh_known_hosts,
            ssh_config=ssh_config,
            aws_profile=aws_profile,
            remote_host=endpoint.host,
            remote_port=endpoint.port,
        )
        ca = endpoint_ca_file(outputs, endpoint, configured=configured)
        return Hop(name, endpoint.host, ca, through, outputs.db_name)

    replicas = [hop(f"replica-{i}", e) for i, e in enumerate(outputs.db_read_endpoints)]
    pooler = hop("pooler", outputs.db_pooler) if outputs.db_pooler is not None else None
    return StackContext(
        stack=stack,
        outputs=outputs,
        credentials=credentials,
        tunnel=tunnel,
        ca_file=ca_file_for(outputs, configured=configured),
        snapshotter=snapshotter_for(outputs, aws_profile=aws_profile),
        scale=ScalePlan(replicas=replicas, pooler=pooler) if replicas or pooler else None,
    )


@contextlib.contextmanager
def stack_connection(stack: str, role: str = "migrator", **options: Any) -> Iterator[ConnectionSpec]:
    """Connection parameters of ``role`` on ``stack``'s database, through a tunnel open for the block.

    For the seed commands (seed/reset) and scripts; ``options`` are :func:`stack_context`'s
    (``outputs_file``, ``ca_file``, ``ssh_config``, ...). ``role`` is ``admin`` or a login user.
    """
    ctx = stack_context(stack, **options)
    cred = ctx.credentials.admin if role == "admin" else ctx.credentials.user(role)
    with ctx.tunnel:
        yield Route(ctx.outputs.db_host, ctx.tunnel.local_port, ctx.outputs.db_name, ctx.ca_file).params(cred)


def environment_of(stack: str, outputs_file: Path | None = None) -> Environment:
    return load_stack_outputs(stack, outputs_file).environment

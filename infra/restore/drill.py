"""The cloud drill: window → source facts → restore → wait → tunnel → verify → delete → report.

1. The restore window from the cloud (no backup yet, PITR off: one line, nothing created).
2. The restore time: ``latest`` or ``--to``, inside the window (else one line, nothing created).
3. The source's ledger and row estimates, as ``migrator`` through the stack's own tunnel, before
   anything is paid for (an unreachable bastion fails here).
4. The copy: requested, waited for (the timeout used is in the failure), then reached through
   the same bastion (its tunnel forwards to the copy's address) with ``verify-full`` against the
   copy's own name, and verified (:mod:`infra.restore.checks`).
5. The copy is deleted on every path unless ``--keep``; a failed delete names the command to run.

RTO runs from just before the restore request to the end of verification; RPO is the drill's
start minus the newest restorable time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

from infra.contract import CloudSqlInstance, RdsInstance, StackOutputs
from infra.errors import ContractError, InfraError
from infra.postdeploy.run import Route
from infra.postdeploy.stack import StackContext
from infra.postdeploy.tunnel import Tunnel
from infra.restore import checks
from infra.restore.checks import SourceFacts, read_source
from infra.restore.report import DrillReport
from infra.restore.restorer import CopyEndpoint, Restorer
from infra.restore.window import restore_point

__all__ = ["DEFAULT_WAIT_MINUTES", "restorer_for", "run_stack_drill", "stack_source", "tunnel_factory"]

_log = logging.getLogger(__name__)

#: How long a copy may take to become available (RDS and Cloud SQL restores take 10-30 minutes).
DEFAULT_WAIT_MINUTES = 90

#: ``(address, port) -> a tunnel`` through the stack's bastion to that address.
TunnelFactory = Callable[[str, int], Tunnel]


def restorer_for(
    outputs: StackOutputs, *, aws_profile: str | None = None, wait_minutes: int = DEFAULT_WAIT_MINUTES
) -> Restorer:
    """The cloud's restorer for the stack's ``db_instance``; ContractError when the stack lacks it."""
    match outputs.db_instance:
        case None:
            raise ContractError(
                "stack output 'db_instance' is missing (the stack predates the restore drill); "
                "run `pulumi up` with this version of the program, then retry"
            )
        case RdsInstance() as rds:
            from infra.restore.aws import RdsRestore

            delay = 30
            return RdsRestore(
                rds,
                ca_identifier=outputs.db_ca,
                profile=aws_profile,
                wait_delay=delay,
                wait_attempts=wait_minutes * 60 // delay,
            )
        case CloudSqlInstance() as sql:
            from infra.restore.gcp import CloudSqlClone

            return CloudSqlClone(sql, wait_delay=10.0, wait_attempts=wait_minutes * 6)


def _labels(stack: str, source: str) -> dict[str, str]:
    # valid as AWS tags and as GCP labels (lowercase letters, digits, '-' and '_', at most 63)
    def clean(value: str) -> str:
        return re.sub(r"[^a-z0-9_-]", "-", value.lower())[:63]

    return {"purpose": "restore-drill", "stack": clean(stack), "source": clean(source)}


def _ca_bundle(base: Path, extra: str) -> Path:
    """``base`` plus the copy's own CA certificates when it names ones ``base`` lacks."""
    text = base.read_text()
    if not extra.strip() or extra.strip() in text:
        return base
    combined = text.rstrip("\n") + "\n" + extra.strip() + "\n"
    path = base.with_name(f"drill-{hashlib.sha256(combined.encode()).hexdigest()[:16]}.pem")
    path.write_text(combined)
    return path


def stack_source(ctx: StackContext) -> SourceFacts:
    """The source's ledger and row estimates, as ``migrator`` through the stack's own tunnel."""
    with ctx.tunnel:
        route = Route(ctx.outputs.db_host, ctx.tunnel.local_port, ctx.outputs.db_name, ctx.ca_file)
        migrator = route.params(ctx.credentials.user("migrator"))
        with migrator.connect(autocommit=True, application_name="restore-drill") as conn:
            return read_source(conn, exact=False)


def run_stack_drill(
    stack: str,
    ctx: StackContext,
    restorer: Restorer,
    requested: dt.datetime | None,
    *,
    open_tunnel: TunnelFactory,
    keep: bool = False,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    read_source_of: Callable[[StackContext], SourceFacts] | None = None,
) -> DrillReport:
    """One drill on ``stack``; RestoreError when no usable copy could be made (nothing is left behind)."""
    read_source_of = read_source_of or stack_source
    started_at = clock()
    window = restorer.window()
    restore_point(requested, window, started_at)  # outside the window: fail before anything else
    source = read_source_of(ctx)
    copy = restorer.copy_name(started_at)
    restored_to, point = restore_point(requested, window, clock())
    began = time.monotonic()
    cleanup = "not created"
    try:
        restorer.restore(copy, requested, _labels(stack, restorer.source))
        cleanup = "created"
        endpoint: CopyEndpoint = restorer.wait(copy)
        ca_file = _ca_bundle(ctx.ca_file, endpoint.ca_pem)
        with open_tunnel(endpoint.address, endpoint.port) as tunnel:
            copy_route = Route(endpoint.tls_name, tunnel.local_port, ctx.outputs.db_name, ca_file)
            results, rows = checks.verify_copy(
                copy_route.params(ctx.credentials.user("migrator")),
                copy_route.params(ctx.credentials.user("readonly")),
                source,
                point,
            )
        rto = time.monotonic() - began
    except BaseException:
        if cleanup == "created" and not keep:
            try:
                restorer.delete(copy)
            except InfraError as exc:
                _log.error("%s", exc)
        raise
    cleanup = f"kept: delete it when done ({copy})" if keep else restorer.delete(copy)
    return DrillReport(
        target=stack,
        platform=restorer.platform,
        source=restorer.source,
        copy=copy,
        requested="latest" if requested is None else requested.isoformat(),
        restored_to=restored_to,
        earliest=window.earliest,
        newest=window.newest,
        started_at=started_at,
        rpo_seconds=(started_at - window.newest).total_seconds(),
        rto_seconds=rto,
        checks=(endpoint.placement, *results),
        row_counts=rows,
        cleanup=cleanup,
    )


def tunnel_factory(ctx: StackContext, **options: object) -> TunnelFactory:
    """Tunnels through the stack's bastion to a copy's address (``options``: ``tunnel_for``'s)."""
    from infra.postdeploy.tunnel import tunnel_for

    def open_(address: str, port: int) -> Tunnel:
        outputs = dataclasses.replace(ctx.outputs, db_port=port)
        return tunnel_for(outputs, remote_host=address, **options)  # type: ignore[arg-type]

    return open_

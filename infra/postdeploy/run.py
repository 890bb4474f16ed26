"""The post-deploy path: outputs → secrets → tunnel → bootstrap → snapshot → migrate → verify → report.

:func:`run_postdeploy` is the one orchestration, used by ``python -m infra migrate --stack``, by
``pulumi up`` (through :func:`migration_command`) and by the local demo (``python -m infra local up``,
which hands it a local jump host, a local secret map and the embedded PostgreSQL's CA).
``pulumi up`` runs it through :mod:`infra.provision.migrate_step`, as a separate process.

Every database connection goes through the tunnel with ``sslmode=verify-full``, ``host`` set to
the private endpoint's name (checked against the server certificate) and ``hostaddr=127.0.0.1``
(where the tunnel listens). Passwords travel only in the ``password`` connection keyword,
never in a DSN, argv, log line or message.

If the tunnel dies while a step runs, the step's database error is reported as a
:class:`~infra.errors.TunnelError` naming the step; the migration engine commits each
migration with its ledger row, so a rerun continues where the lost run stopped.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from infra.contract import StackOutputs
from infra.enums import Cloud, Environment
from infra.errors import InfraError, SafetyError, TunnelError
from infra.migrations import commands
from infra.migrations.connection import ConnectionSpec
from infra.migrations.runner import Progress
from infra.postdeploy.backup import Snapshotter
from infra.postdeploy.bootstrap import BootstrapResult, bootstrap_roles
from infra.postdeploy.scale import ScalePlan, ScaleReport, run_scale_checks
from infra.postdeploy.secrets import Credential, Credentials
from infra.postdeploy.tunnel import Tunnel
from infra.postdeploy.verify import VerifyResult, verify_app

if TYPE_CHECKING:
    pass

__all__ = [
    "Deployment",
    "PostDeployOptions",
    "PostDeployReport",
    "Route",
    "run_postdeploy",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """The database as seen through an open tunnel."""

    tls_name: str
    local_port: int
    dbname: str
    ca_file: Path

    def params(self, cred: Credential) -> ConnectionSpec:
        """``cred``'s login through the tunnel: verify-full against ``tls_name`` on 127.0.0.1."""
        password = cred.password
        return ConnectionSpec(
            host=self.tls_name,
            hostaddr="127.0.0.1",
            port=self.local_port,
            dbname=self.dbname,
            user=cred.user,
            sslmode="verify-full",
            sslrootcert=str(self.ca_file),
            password=lambda: password,
            connect_timeout=15,
        )


@dataclass(frozen=True)
class Deployment:
    """The database a post-deploy run works on: a stack's, or the local demo's."""

    stack: str
    platform: str  # "aws", "gcp" or "local"
    environment: Environment
    db_host: str  # private endpoint name (TLS name)
    db_name: str
    #: Extensions the admin creates in the database before the migrations (bootstrap).
    extensions: tuple[str, ...] = ()

    @classmethod
    def of(cls, stack: str, outputs: StackOutputs) -> Deployment:
        return cls(
            stack,
            outputs.cloud.value,
            outputs.environment,
            outputs.db_host,
            outputs.db_name,
            extensions=audit_extensions(outputs.cloud),
        )


def audit_extensions(cloud: Cloud) -> tuple[str, ...]:
    """Cloud SQL loads pgAudit (flag cloudsql.enable_pgaudit) but audits nothing until the extension
    exists in the database; a cloudsqlsuperuser member (the admin) creates it (Cloud SQL docs,
    "Use pgAudit"; CIS GCP 6.2.8). RDS is not configured for pgAudit here."""
    return ("pgaudit",) if cloud is Cloud.GCP else ()


@dataclass(frozen=True)
class PostDeployOptions:
    skip_snapshot: bool = False
    dry_run: bool = False  # bootstrap + plan only (no snapshot, no migration)
    seed: bool = False  # development data after the migrations (refused in production)


@dataclass(frozen=True)
class PostDeployReport:
    """What the post-deploy run did; printed as a summary or ``--json``."""

    stack: str
    platform: str
    environment: Environment
    tunnel: str
    bootstrap: tuple[str, ...]
    snapshot: str | None
    migrations_applied: tuple[str, ...]
    migrations_pending: tuple[str, ...]
    seeded: bool
    verification: VerifyResult
    duration_seconds: float
    scale: ScaleReport | None = None  # read replicas and the pooler, when the stack has them

    @property
    def ok(self) -> bool:
        return self.verification.ok and (self.scale is None or self.scale.ok)

    def to_json(self) -> dict[str, object]:
        return {
            "stack": self.stack,
            "platform": self.platform,
            "environment": self.environment.value,
            "tunnel": self.tunnel,
            "bootstrap": list(self.bootstrap),
            "snapshot": self.snapshot,
            "migrations_applied": list(self.migrations_applied),
            "migrations_pending": list(self.migrations_pending),
            "seeded": self.seeded,
            "verification": {
                "ok": self.verification.ok,
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.verification.checks],
            },
            "duration_seconds": round(self.duration_seconds, 3),
            "scale": None if self.scale is None else self.scale.to_json(),
            "ok": self.ok,
        }


#: ``(migrator params) -> labels of the migrations applied``; default: the engine's command layer.
MigrateStep = Callable[[ConnectionSpec], Sequence[str]]
#: ``(migrator params) -> labels of the pending migrations`` (validates, writes nothing).
PlanStep = Callable[[ConnectionSpec], Sequence[str]]
#: ``(migrator params) -> None``: development data (local demo, dev stacks).
SeedStep = Callable[[ConnectionSpec], None]


def engine_steps(target: Deployment, progress: Progress | None = None) -> tuple[MigrateStep, PlanStep]:
    """The migration engine's apply and plan, bound to the target's environment and stack name."""

    def apply(params: ConnectionSpec) -> Sequence[str]:
        return commands.apply_for_postdeploy(
            params, environment=target.environment, stack=target.stack, progress=progress
        )

    def pending(params: ConnectionSpec) -> Sequence[str]:
        return commands.pending_for_postdeploy(params)

    return apply, pending


@contextlib.contextmanager
def _step(name: str, tunnel: Tunnel) -> Iterator[None]:
    """Turn a database error caused by a lost tunnel into a TunnelError naming the step."""
    try:
        yield
    except (psycopg.OperationalError, InfraError) as exc:
        if isinstance(exc, TunnelError):
            raise
        try:
            tunnel.check()
        except TunnelError as lost:
            raise TunnelError(
                f"{lost} during {name}; applied migrations are committed with their ledger rows, rerun to continue"
            ) from None
        raise


def _reopen_if_lost(tunnel: Tunnel, route: Route) -> Route:
    """The route through ``tunnel``, reopened if the tunnel ended while we waited."""
    try:
        tunnel.check()
    except TunnelError as exc:
        _log.warning("%s; reopening it", exc)
        tunnel.close()
        tunnel.open()
    return Route(route.tls_name, tunnel.local_port, route.dbname, route.ca_file)


def _can_login(route: Route) -> Callable[[str, str], bool]:
    def probe(user: str, password: str) -> bool:
        try:
            with route.params(Credential(user, password)).connect():
                return True
        except psycopg.OperationalError:
            return False

    return probe


def run_postdeploy(
    target: Deployment,
    *,
    credentials: Credentials,
    tunnel: Tunnel,
    ca_file: Path,
    options: PostDeployOptions = PostDeployOptions(),
    snapshotter: Snapshotter | None = None,
    migrate: MigrateStep | None = None,
    pending: PlanStep | None = None,
    seed: SeedStep | None = None,
    progress: Progress | None = None,
    scale: ScalePlan | None = None,
) -> PostDeployReport:
    """Run the whole post-deploy path through ``tunnel`` (opened and always closed here).

    ``migrate`` / ``pending`` default to the migration engine; tests may pass their own.
    Raises TunnelError (tunnel lost, naming the step), BootstrapError, SafetyError, MigrationError.
    """
    started = time.monotonic()
    engine_apply, engine_pending = engine_steps(target, progress)
    migrate = migrate or engine_apply
    pending = pending or engine_pending
    stack = target.stack
    production = target.environment is Environment.PRODUCTION
    if options.seed and production:
        raise SafetyError(f"refusing to seed production stack {stack!r}")
    snapshot: str | None = None
    applied: Sequence[str] = ()
    still_pending: Sequence[str] = ()
    seeded = False
    with tunnel:
        route = Route(target.db_host, tunnel.local_port, target.db_name, ca_file)
        with _step("bootstrap", tunnel), route.params(credentials.admin).connect() as admin:
            result: BootstrapResult = bootstrap_roles(
                admin, target.db_name, credentials.passwords(), _can_login(route), extensions=target.extensions
            )
        migrator = route.params(credentials.user("migrator"))
        with _step("plan", tunnel):
            still_pending = tuple(pending(migrator))
        if options.dry_run:
            _log.info("dry run: %d migration(s) pending, nothing applied", len(still_pending))
        else:
            if production and still_pending and not options.skip_snapshot:
                if snapshotter is None:
                    raise InfraError("production needs a pre-migration snapshot; configure one or pass --skip-snapshot")
                snapshot = snapshotter.create(f"pre-migrate-{stack}")
                # a snapshot can outlast an idle session (SSM closes idle sessions after 20 minutes)
                route = _reopen_if_lost(tunnel, route)
                migrator = route.params(credentials.user("migrator"))
            with _step("migrate", tunnel):
                applied = tuple(migrate(migrator))
            still_pending = ()
            if options.seed and seed is not None:
                with _step("seed", tunnel):
                    seed(migrator)
                seeded = True
        with (
            _step("verify", tunnel),
            route.params(credentials.user("app")).connect() as app_conn,
            route.params(credentials.user("migrator")).connect() as platform_conn,
        ):
            verification = verify_app(app_conn, platform_conn)
        scale_report = None
        if scale is not None and (scale.replicas or scale.pooler is not None) and not options.dry_run:
            # each endpoint through its own tunnel; the primary's stays open for the replay check
            with _step("scale-out checks", tunnel):
                scale_report = run_scale_checks(scale, credentials, route.params(credentials.user("migrator")))
    return PostDeployReport(
        stack=stack,
        platform=target.platform,
        environment=target.environment,
        tunnel=tunnel.kind.value,
        bootstrap=result.actions,
        snapshot=snapshot,
        migrations_applied=tuple(applied),
        migrations_pending=tuple(still_pending),
        seeded=seeded,
        verification=verification,
        duration_seconds=time.monotonic() - started,
        scale=scale_report,
    )

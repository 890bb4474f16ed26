"""The post-deploy path: outputs → secrets → tunnel → bootstrap → snapshot → migrate → verify → report.

:func:`run_postdeploy` is the one orchestration, used by ``python -m infra migrate --stack``, by
``pulumi up`` (through :func:`migration_command`) and by the local demo (``python -m infra local up``,
which hands it a local jump host, a local secret map and the embedded PostgreSQL's CA).

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
import hashlib
import logging
import os
import shlex
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from infra.bootstrap import BootstrapResult, bootstrap_roles
from infra.contract import StackOutputs
from infra.enums import Cloud, Environment
from infra.errors import ContractError, InfraError, SafetyError, TunnelError
from infra.migrations import commands
from infra.migrations.connection import ConnectionSpec
from infra.migrations.runner import Progress
from infra.secrets import Credential, Credentials, resolve_credentials, resolver_for
from infra.snapshot import Snapshotter, snapshotter_for
from infra.tunnel import Tunnel, tunnel_for
from infra.verify import VerifyResult, verify_app

if TYPE_CHECKING:
    import pulumi
    import pulumi_command

__all__ = [
    "OUTPUTS_ENV",
    "ConnParams",
    "PostDeployOptions",
    "PostDeployReport",
    "Route",
    "Target",
    "ca_file_for",
    "migration_command",
    "run_postdeploy",
    "stack_connection",
    "stack_context",
]

_log = logging.getLogger(__name__)

#: Environment variable through which ``pulumi up`` hands the outputs to the migrate command
#: (the stack's outputs are only written at the end of the update, after the command ran).
OUTPUTS_ENV = "INFRA_STACK_OUTPUTS"

RDS_CA_URL = "https://truststore.pki.rds.amazonaws.com/{region}/{region}-bundle.pem"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "private-postgres"


@dataclass(frozen=True)
class ConnParams:
    """libpq parameters of one login through the tunnel (password hidden from ``repr``)."""

    host: str  # the name the server certificate must carry (verify-full checks it)
    hostaddr: str  # where to connect: the tunnel's local end
    port: int
    dbname: str
    user: str
    password: str = field(repr=False)
    sslrootcert: str = ""
    sslmode: str = "verify-full"
    connect_timeout: int = 15

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` (includes the password: never log them)."""
        return {**self.public(), "password": self.password, "connect_timeout": str(self.connect_timeout)}

    def public(self) -> dict[str, str]:
        """The parameters without the password (safe to print for psql)."""
        return {
            "host": self.host,
            "hostaddr": self.hostaddr,
            "port": str(self.port),
            "dbname": self.dbname,
            "user": self.user,
            "sslmode": self.sslmode,
            "sslrootcert": self.sslrootcert,
        }

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(**self.kwargs(), **kwargs)

    def spec(self) -> ConnectionSpec:
        """The migration engine's connection spec (the password as a supplier, never a string field)."""
        password = self.password
        return ConnectionSpec(
            host=self.host,
            hostaddr=self.hostaddr,
            port=self.port,
            dbname=self.dbname,
            user=self.user,
            sslmode=self.sslmode,
            sslrootcert=self.sslrootcert,
            password=lambda: password,
            connect_timeout=self.connect_timeout,
        )


@dataclass(frozen=True)
class Route:
    """The database as seen through an open tunnel."""

    tls_name: str
    local_port: int
    dbname: str
    ca_file: Path

    def params(self, cred: Credential) -> ConnParams:
        return ConnParams(
            host=self.tls_name,
            hostaddr="127.0.0.1",
            port=self.local_port,
            dbname=self.dbname,
            user=cred.user,
            password=cred.password,
            sslrootcert=str(self.ca_file),
        )


@dataclass(frozen=True)
class Target:
    """The database a post-deploy run works on: a stack's, or the local demo's."""

    stack: str
    platform: str  # "aws", "gcp" or "local"
    environment: Environment
    db_host: str  # private endpoint name (TLS name)
    db_name: str

    @classmethod
    def of(cls, stack: str, outputs: StackOutputs) -> Target:
        return cls(stack, outputs.cloud.value, outputs.environment, outputs.db_host, outputs.db_name)


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

    @property
    def ok(self) -> bool:
        return self.verification.ok

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
            "ok": self.ok,
        }


#: ``(migrator params) -> labels of the migrations applied``; default: the engine's command layer.
MigrateStep = Callable[[ConnParams], Sequence[str]]
#: ``(migrator params) -> labels of the pending migrations`` (validates, writes nothing).
PlanStep = Callable[[ConnParams], Sequence[str]]
#: ``(migrator params) -> None``: development data (local demo, dev stacks).
SeedStep = Callable[[ConnParams], None]


def engine_steps(target: Target, progress: Progress | None = None) -> tuple[MigrateStep, PlanStep]:
    """The migration engine's apply and plan, bound to the target's environment and stack name."""

    def apply(params: ConnParams) -> Sequence[str]:
        return commands.apply_for_postdeploy(
            params.spec(), environment=target.environment, stack=target.stack, progress=progress
        )

    def pending(params: ConnParams) -> Sequence[str]:
        return commands.pending_for_postdeploy(params.spec())

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
    target: Target,
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
            result: BootstrapResult = bootstrap_roles(admin, target.db_name, credentials.passwords(), _can_login(route))
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
        with _step("verify", tunnel), route.params(credentials.user("app")).connect() as app_conn:
            verification = verify_app(app_conn)
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
    )


# -- CA certificates ----------------------------------------------------------------------------


def _check_pem(data: bytes, source: str) -> None:
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ContractError(f"{source} is not a PEM certificate bundle") from None
    if not certs:
        raise ContractError(f"{source} holds no certificate")


def ca_file_for(
    outputs: StackOutputs,
    *,
    configured: Path | None = None,
    cache_dir: Path = CACHE_DIR,
    fetch: Callable[[str], bytes] | None = None,
) -> Path:
    """The CA bundle that ``verify-full`` checks the server certificate against.

    GCP: the ``db_ca`` output (the instance's server CA, PEM). AWS: ``configured`` if given,
    else the regional RDS bundle cached under ``cache_dir`` (downloaded over HTTPS once).
    """
    if configured is not None:
        if not configured.is_file():
            raise ContractError(f"ca bundle {str(configured)!r} does not exist; fix --ca-file or RDS_CA_BUNDLE")
        return configured
    cache_dir.mkdir(parents=True, exist_ok=True)
    if outputs.cloud is Cloud.GCP:
        data = outputs.db_ca.encode()
        _check_pem(data, "stack output 'db_ca'")
        path = cache_dir / f"cloudsql-{hashlib.sha256(data).hexdigest()[:16]}.pem"  # one file per CA
        path.write_bytes(data)
        return path
    region = outputs.bastion.region
    if region is None:
        raise ContractError("stack output 'bastion.region' is needed to find the RDS ca bundle; pass --ca-file")
    path = cache_dir / f"rds-{region}-bundle.pem"
    if path.is_file():
        return path
    url = RDS_CA_URL.format(region=region)
    _log.info("fetching the RDS ca bundle from %s", url)
    getter = fetch or _https_get
    data = getter(url)
    _check_pem(data, url)
    with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False) as tmp:
        tmp.write(data)
    Path(tmp.name).replace(path)  # atomic: a half-written bundle is never used
    return path


def _https_get(url: str) -> bytes:
    if not url.startswith("https://"):
        raise ContractError(f"refusing to fetch a ca bundle over {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - https only, checked above
            data: bytes = response.read()
            return data
    except OSError as exc:
        raise ContractError(f"cannot fetch the RDS ca bundle from {url}: {exc}; pass --ca-file") from None


# -- stack entry points -------------------------------------------------------------------------


@dataclass(frozen=True)
class StackContext:
    """Everything resolved for one stack before the tunnel opens."""

    stack: str
    outputs: StackOutputs
    credentials: Credentials
    tunnel: Tunnel
    ca_file: Path
    snapshotter: Snapshotter | None


def configured_ca(ca_file: Path | None) -> Path | None:
    """``--ca-file``, else ``$RDS_CA_BUNDLE``, else None (the default bundle for the cloud)."""
    if ca_file is not None:
        return ca_file
    env = os.environ.get("RDS_CA_BUNDLE")
    return Path(env) if env else None


def load_stack_outputs(stack: str, outputs_file: Path | None = None) -> StackOutputs:
    """Outputs from ``$INFRA_STACK_OUTPUTS`` (inside ``pulumi up``), a file, or the Pulumi CLI."""
    from infra.outputs import load_outputs_file, parse_document, read_outputs

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
    return StackContext(
        stack=stack,
        outputs=outputs,
        credentials=credentials,
        tunnel=tunnel,
        ca_file=ca_file_for(outputs, configured=configured_ca(ca_file)),
        snapshotter=snapshotter_for(outputs, aws_profile=aws_profile),
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
        yield Route(ctx.outputs.db_host, ctx.tunnel.local_port, ctx.outputs.db_name, ctx.ca_file).params(cred).spec()


def environment_of(stack: str, outputs_file: Path | None = None) -> Environment:
    return load_stack_outputs(stack, outputs_file).environment


# -- inside `pulumi up` -------------------------------------------------------------------------

PROJECT_DIR = Path(__file__).resolve().parents[1]


def _project_python(project_dir: Path) -> str:
    """The running interpreter, relative to the project when it is the project's virtualenv.

    ``pulumi up`` runs the program with the project's virtualenv; naming it relatively
    (``.venv/bin/python``) keeps the command's input the same on every machine, so a second
    preview elsewhere shows no diff. An interpreter outside the project is named absolutely.
    """
    try:
        venv = Path(sys.prefix).resolve().relative_to(project_dir.resolve())
    except ValueError:
        return sys.executable
    return str(venv / "bin" / "python")


def project_python() -> str:
    """How to run this project's interpreter from the project directory (for printed hints)."""
    return _project_python(PROJECT_DIR)


def migration_command(
    stack_name: str,
    manifest: Sequence[str],
    outputs: pulumi.Input[Mapping[str, Any]],
    depends_on: Sequence[pulumi.Resource],
    *,
    python: str | None = None,
) -> pulumi_command.local.Command:
    """A ``local.Command`` that runs ``python -m infra migrate --stack <name>`` during ``pulumi up``.

    ``triggers`` are the sorted ``"<file>:<sha256>"`` entries of schema/migrations, so
    ``pulumi preview`` shows exactly which files changed and the command reruns only then.
    The outputs reach the command through ``$INFRA_STACK_OUTPUTS`` (the stack's own outputs are
    written only when the update ends). stdout/stderr are secret outputs and not logged: they
    hold endpoint names and role actions. There is no delete step: removing the resource (or
    turning ``runMigrationsOnUp`` off) must never touch the database.
    """
    import pulumi
    import pulumi_command

    interpreter = python or _project_python(PROJECT_DIR)
    argv = (interpreter, "-m", "infra", "migrate", "--stack", stack_name, "--json")
    create = " ".join(shlex.quote(part) for part in argv)
    return pulumi_command.local.Command(
        "post-deploy-migrations",
        create=create,
        # a changed trigger replaces the resource, i.e. reruns `create`; update is the same command
        update=create,
        triggers=sorted(manifest),
        # no `dir`: the command runs in the project directory, where pulumi runs; an absolute
        # path here would differ between machines and show a diff on every other checkout
        environment={OUTPUTS_ENV: pulumi.Output.json_dumps(outputs)},
        logging=pulumi_command.local.Logging.NONE,
        opts=pulumi.ResourceOptions(
            depends_on=list(depends_on),
            additional_secret_outputs=["stdout", "stderr"],
        ),
    )

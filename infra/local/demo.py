"""``python -m infra local up|down``: the post-deploy path on this machine, with no cloud.

``up`` starts (or reuses) three real parts under ``.local/demo/``:

- an embedded PostgreSQL 16 in a private network of its own (:mod:`infra.local.privnet`): its
  TCP port exists only there, so nothing on this machine reaches it but the jump host. TLS on,
  SCRAM, a server certificate for ``db.demo.internal``; a managed-style ``admin`` (CREATEROLE,
  CREATEDB, not superuser) owns the ``appdb`` database, as on RDS / Cloud SQL;
- a jump host: OpenSSH sshd, reached through its one door on a free loopback port, generated host
  and client keys, forward-only (:mod:`infra.bastion`) to the database and nothing else;
- generated passwords in ``secrets.json`` (mode 0600), the local stand-in for the secret store.

Then it runs :func:`infra.postdeploy.run.run_postdeploy` exactly as for a cloud stack: an ssh tunnel
through the jump host, TLS ``verify-full`` to ``db.demo.internal`` on ``hostaddr=127.0.0.1``,
role bootstrap, migrations as ``migrator``, seed data, verification as ``app``.

``down`` stops sshd and PostgreSQL and deletes ``.local/demo/``. State lives in ``state.json``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from infra.enums import Environment
from infra.errors import InfraError, ToolMissing
from infra.local.backup import archive_now, archive_settings, ensure_base_backup
from infra.local.jumphost import JumpHost, find_sshd, stop_jump_host
from infra.local.pg import LocalPostgres, pg_bin
from infra.local.pooler import LocalPooler
from infra.local.privnet import PrivateNetwork
from infra.local.replica import LocalReplica
from infra.migrations.connection import ConnectionSpec
from infra.paths import DEMO_DIR
from infra.postdeploy.run import (
    Deployment,
    PostDeployOptions,
    PostDeployReport,
    Route,
    SeedStep,
    run_postdeploy,
)
from infra.postdeploy.scale import Hop, ScalePlan
from infra.postdeploy.secrets import Credential, Credentials
from infra.postdeploy.tunnel import SshTunnel

__all__ = ["DEMO_DIR", "DemoState", "LocalDemo"]

_log = logging.getLogger(__name__)

DEMO_DOMAIN = "demo.internal"
TLS_NAME = f"db.{DEMO_DOMAIN}"
DB_NAME = "appdb"
ADMIN_USER = "admin"
LOGIN_USERS = ("migrator", "app", "readonly")


@dataclass(frozen=True)
class DemoState:
    """What ``down`` and ``tunnel --local`` need to find the running parts."""

    pg_port: int
    sshd_port: int
    sshd_pid: int | None
    db_name: str = DB_NAME
    tls_name: str = TLS_NAME
    replica_ports: tuple[int, ...] = ()  # local up --replicas N (infra.local.replica)
    pooler_port: int | None = None  # local up --pooler (infra.local.pooler)

    @classmethod
    def load(cls, root: Path) -> DemoState | None:
        try:
            doc = json.loads((root / "state.json").read_text())
        except (OSError, ValueError):
            return None
        keys = ("pg_port", "sshd_port", "sshd_pid", "db_name", "tls_name", "pooler_port")
        return cls(**{k: doc[k] for k in keys if k in doc}, replica_ports=tuple(doc.get("replica_ports", ())))

    def save(self, root: Path) -> None:
        (root / "state.json").write_text(json.dumps(asdict(self), indent=2) + "\n")


class LocalDemo:
    """The demo's parts under ``root`` (default ``.local/demo``)."""

    def __init__(self, root: Path = DEMO_DIR) -> None:
        self.root = root.resolve()
        self.secrets_file = self.root / "secrets.json"
        self.pgpass_file = self.root / "pgpass"

    # -- parts ---------------------------------------------------------------------------------

    @staticmethod
    def network() -> PrivateNetwork:
        """Where the database lives: a network namespace of its own (a user namespace too without root)."""
        return PrivateNetwork.here()

    def postgres(self, port: int | None = None) -> LocalPostgres:
        # WAL archived under the demo's root: what `restore-drill --local` restores from (infra/local/backup.py)
        return LocalPostgres(
            self.root / "pg",
            port=port,
            server_names=(TLS_NAME,),
            settings=archive_settings(self.root),
            private_network=self.network(),
        )

    def jump_host(self, pg_port: int, port: int | None = None, *, also: tuple[int, ...] = ()) -> JumpHost:
        """sshd inside the database's network, behind a door on this machine's loopback; it may
        forward to the database only (and to its replicas and pooler, ``also``, in the same network)."""
        pid_file = self.postgres(pg_port).postmaster_pid_file()
        return JumpHost(
            self.root / "jumphost",
            permit_open=[f"127.0.0.1:{p}" for p in (pg_port, *also)],
            port=port,
            private_network=(self.network(), pid_file),
        )

    # -- scale-out parts (local up --replicas N --pooler) --------------------------------------

    def replica(self, pg: LocalPostgres, index: int, port: int | None = None) -> LocalReplica:
        name = f"replica-{index}"
        return LocalReplica(self.root / name, pg, name=name, server_names=(f"{name}.{DEMO_DOMAIN}",), port=port)

    def pooler(self, pg: LocalPostgres, port: int | None = None) -> LocalPooler:
        return LocalPooler(self.root / "pooler", pg, DB_NAME, port=port, server_names=(f"pooler.{DEMO_DOMAIN}",))

    def _scale_plan(self, jump: JumpHost, replicas: list[LocalReplica], pooler: LocalPooler | None) -> ScalePlan | None:
        if not replicas and pooler is None:
            return None
        hops = [
            Hop(
                r.name,
                r.pg.server_names[0],
                r.pg.tls.ca_cert,
                SshTunnel(jump.ssh_options(), "127.0.0.1", r.port),
                DB_NAME,
            )
            for r in replicas
        ]
        pooled = None
        if pooler is not None:
            tunnel = SshTunnel(jump.ssh_options(), "127.0.0.1", pooler.port)
            pooled = Hop("pooler", pooler.server_names[0], pooler.tls.ca_cert, tunnel, DB_NAME)
        return ScalePlan(replicas=hops, pooler=pooled, replay_timeout=60.0)

    def tunnel(self, state: DemoState, jump: JumpHost | None = None) -> SshTunnel:
        jump = jump or self.jump_host(state.pg_port, state.sshd_port)
        return SshTunnel(jump.ssh_options(), "127.0.0.1", state.pg_port)

    def credentials(self) -> Credentials:
        """Generated once, kept in secrets.json (0600) so a second ``up`` reuses them."""
        if self.secrets_file.exists():
            stored: Mapping[str, str] = json.loads(self.secrets_file.read_text())
        else:
            stored = {role: secrets.token_urlsafe(24) for role in (ADMIN_USER, *LOGIN_USERS)}
            fd = os.open(self.secrets_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(stored, handle)
        return Credentials(
            admin=Credential(ADMIN_USER, stored[ADMIN_USER]),
            users={role: Credential(role, stored[role]) for role in LOGIN_USERS},
        )

    def _write_pgpass(self, creds: Credentials) -> None:
        # psql reads passwords from here (matched on host name, any port): never on its command line
        lines = [f"{TLS_NAME}:*:{DB_NAME}:{c.user}:{_pgpass_escape(c.password)}" for c in creds.users.values()]
        fd = os.open(self.pgpass_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")

    def _provision(self, pg: LocalPostgres, creds: Credentials) -> None:
        """What ``pulumi up`` does in the cloud: the admin login and the application database."""
        with psycopg.connect(pg.superuser_conninfo(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ADMIN_USER,)).fetchone()
            if exists is None:
                verifier = conn.pgconn.encrypt_password(
                    creds.admin.password.encode(), ADMIN_USER.encode(), b"scram-sha-256"
                ).decode()
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN CREATEROLE CREATEDB PASSWORD {}").format(
                        sql.Identifier(ADMIN_USER), sql.Literal(verifier)
                    )
                )
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone() is None:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DB_NAME), sql.Identifier(ADMIN_USER))
                )
                with psycopg.connect(pg.superuser_conninfo(DB_NAME), autocommit=True) as db:
                    db.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")  # as on RDS / Cloud SQL (PG15+)
                    # Nobody needs large objects; readonly must not store any. Only a superuser may
                    # revoke these (on RDS / Cloud SQL the provider's: there readonly's read-only
                    # default, set by the bootstrap, is what stands).
                    db.execute(
                        "REVOKE EXECUTE ON FUNCTION pg_catalog.lo_create(oid), pg_catalog.lo_creat(integer),"
                        " pg_catalog.lo_from_bytea(oid, bytea) FROM PUBLIC"
                    )

    # -- commands ------------------------------------------------------------------------------

    @staticmethod
    def preflight() -> None:
        """Everything ``up`` needs, checked before anything starts; one error listing what is missing."""
        problems: list[str] = []
        try:
            find_sshd()
        except ToolMissing as exc:
            problems.append(str(exc))
        for tool, package in (("ssh", "openssh-client"), ("ssh-keygen", "openssh-client")):
            if shutil.which(tool) is None:
                problems.append(f"{tool!r} not found; install it (apt-get install {package})")
        try:
            pg_bin("postgres")
            pg_bin("initdb")
        except InfraError as exc:
            problems.append(str(exc))
        problems += PrivateNetwork.missing_tools()
        if os.geteuid() == 0 and shutil.which("useradd") is None:
            problems.append("as root, postgres and the jump host's login are users created with 'useradd' (not found)")
        if problems:
            raise ToolMissing("the local demo cannot start: " + "; ".join(problems))

    def up(
        self,
        *,
        seed: bool = True,
        seed_step: SeedStep | None = None,
        replicas: int = 0,
        pooler: bool = False,
        **run: Any,
    ) -> PostDeployReport:
        """Start or reuse the parts, then run the post-deploy path through the jump host.

        ``replicas`` streaming replicas and a PgBouncer (``pooler``) join the run: they sit behind the
        same jump host, and the post-deploy step checks them as it checks a stack's (``infra.postdeploy.scale``).
        """
        self.preflight()
        # not 0700: as root, postgres runs as an unprivileged user that must traverse this directory;
        # the secrets are 0600 files and the jump host's keys sit in their own 0700 directory
        self.root.mkdir(parents=True, exist_ok=True)
        previous = DemoState.load(self.root)
        pg = self.postgres(previous.pg_port if previous else None)
        creds = self.credentials()
        if not pg.running():
            pg.start()
        self._provision(pg, creds)
        ensure_base_backup(pg, self.root)  # before the migrations: the drill restores to any time after
        standbys = self._start_replicas(pg, replicas, previous)
        bouncer = self._start_pooler(pg, previous) if pooler else None
        if previous is not None and previous.sshd_pid is not None:
            stop_jump_host(self.root / "jumphost")  # a fresh jump host each time: new port
        extra = tuple(r.port for r in standbys) + ((bouncer.port,) if bouncer else ())
        jump = self.jump_host(pg.port, also=extra)
        jump.start()
        state = DemoState(
            pg_port=pg.port,
            sshd_port=jump.port,
            sshd_pid=jump.pid,
            replica_ports=tuple(r.port for r in standbys),
            pooler_port=bouncer.port if bouncer else None,
        )
        state.save(self.root)
        self._write_pgpass(creds)
        report = run_postdeploy(
            Deployment("local", "local", Environment.DEV, TLS_NAME, DB_NAME),
            credentials=creds,
            tunnel=self.tunnel(state, jump),
            ca_file=pg.tls.ca_cert,
            options=PostDeployOptions(seed=seed),
            seed=seed_step if seed_step is not None else _default_seed(),
            scale=self._scale_plan(jump, standbys, bouncer),
            **run,
        )
        archive_now(pg)  # the migrated state restorable at once, not after archive_timeout
        return report

    def _start_replicas(self, pg: LocalPostgres, count: int, previous: DemoState | None) -> list[LocalReplica]:
        ports = previous.replica_ports if previous else ()
        standbys = [self.replica(pg, i, ports[i] if i < len(ports) else None) for i in range(count)]
        for standby in standbys:
            if not standby.running():
                standby.start()
        return standbys

    def _start_pooler(self, pg: LocalPostgres, previous: DemoState | None) -> LocalPooler:
        bouncer = self.pooler(pg, previous.pooler_port if previous else None)
        bouncer.stop()  # a fresh configuration each time (it names the database's port)
        bouncer.start()
        return bouncer

    def down(self) -> list[str]:
        """Stop everything ``up`` started and delete the demo directory; what was done, in words."""
        done: list[str] = []
        if not self.root.exists():
            return done
        if stop_jump_host(self.root / "jumphost"):
            done.append("stopped the jump host (sshd)")
        state = DemoState.load(self.root)
        pg = self.postgres(state.pg_port if state else None)
        if self.pooler(pg).stop():
            done.append("stopped the pooler (pgbouncer)")
        for index, _port in enumerate(state.replica_ports if state else ()):
            standby = self.replica(pg, index)
            if (standby.pg.data / "postmaster.pid").exists():
                standby.stop()
                done.append(f"stopped {standby.name}")
        if (pg.data / "postmaster.pid").exists():
            pg.stop()
            done.append("stopped postgresql 16")
        shutil.rmtree(self.root, ignore_errors=True)
        done.append(f"removed {self.root}")
        return done

    def state(self) -> DemoState | None:
        return DemoState.load(self.root)

    def route(self, state: DemoState, local_port: int) -> Route:
        return Route(state.tls_name, local_port, state.db_name, self.postgres(state.pg_port).tls.ca_cert)

    def psql_hint(self, params: ConnectionSpec) -> str:
        """The psql command line for ``params`` (password from the 0600 pgpass file, not argv)."""
        conninfo = " ".join(f"{k}={v}" for k, v in params.public().items())
        return f'PGPASSFILE={self.pgpass_file} psql "{conninfo}"'


def _pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _default_seed() -> SeedStep | None:
    """The seed engineer's loader, if present (``infra.postdeploy.seed``); the demo runs without it otherwise."""
    try:
        seed_module = importlib.import_module("infra.postdeploy.seed")
    except ImportError:
        return None
    step: SeedStep | None = getattr(seed_module, "seed_for_postdeploy", None)
    return step

"""The whole post-deploy path against real parts: PostgreSQL 16 (TLS, SCRAM, log_statement=all),
an OpenSSH jump host, the ssh tunnel, role bootstrap as a non-superuser admin, the migration
engine as ``migrator`` and the verification as ``app``.

The module has its own cluster, so role names and the server log belong to these tests alone.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from infra.cli import main
from infra.enums import Environment
from infra.errors import InfraError, SafetyError, TunnelError
from infra.local.jumphost import JumpHost
from infra.local.pg import LocalPostgres
from infra.migrations.connection import ConnectionSpec
from infra.migrations.ledger import LEDGER_SCHEMA
from infra.migrations.source import Migration
from infra.migrations.steps import Action, Outcome
from infra.postdeploy.run import Deployment, PostDeployOptions, PostDeployReport, engine_steps, run_postdeploy
from infra.postdeploy.secrets import Credential, Credentials, StaticSecrets
from infra.postdeploy.tunnel import SshTunnel
from tests.fixtures.pg import start_managed
from tests.fixtures.sshd import StartJumpHost

TLS_NAME = "db.postdeploy.test"
ADMIN = "pgadmin"
MIGRATIONS = sorted(p.stem for p in (Path(__file__).resolve().parents[3] / "schema/migrations").glob("*.sql"))


@dataclass
class Stack:
    cluster: LocalPostgres
    jump: JumpHost
    admin_password: str

    def log_size(self) -> int:
        return self.cluster.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.cluster.log_path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, start_jump_host: StartJumpHost) -> Iterator[Stack]:
    cluster = LocalPostgres(
        tmp_path_factory.mktemp("postdeploy") / "pg",
        server_names=(TLS_NAME, "localhost"),
        settings={"log_statement": "'all'"},
    )
    password = start_managed(cluster, ADMIN)  # the managed admin's shape: CREATEROLE + CREATEDB
    jump = start_jump_host([f"127.0.0.1:{cluster.port}", f"localhost:{cluster.port}"])
    yield Stack(cluster, jump, password)
    cluster.destroy()


@pytest.fixture
def dbname(stack: Stack) -> Iterator[str]:
    """A fresh database owned by the admin; the login roles are dropped afterwards (cluster-wide)."""
    name = f"pd_{secrets.token_hex(4)}"
    with psycopg.connect(stack.cluster.superuser_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(ADMIN)))
        with psycopg.connect(stack.cluster.superuser_conninfo(name), autocommit=True) as db:
            db.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    yield name
    with psycopg.connect(stack.cluster.superuser_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        for role in ("migrator", "app", "readonly", "app_owner", "app_readwrite", "app_readonly", "platform_admin"):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _credentials(stack: Stack, **overrides: str) -> Credentials:
    passwords = {role: f"{role}-{secrets.token_urlsafe(18)}:x" for role in ("migrator", "app", "readonly")}
    passwords.update(overrides)
    return Credentials(Credential(ADMIN, stack.admin_password), {r: Credential(r, p) for r, p in passwords.items()})


def _run(
    stack: Stack,
    dbname: str,
    creds: Credentials,
    *,
    environment: Environment = Environment.DEV,
    **kwargs: Any,
) -> PostDeployReport:
    return run_postdeploy(
        Deployment("itest", "local", environment, TLS_NAME, dbname),
        credentials=creds,
        tunnel=SshTunnel(stack.jump.ssh_options(), "127.0.0.1", stack.cluster.port),
        ca_file=stack.cluster.tls.ca_cert,
        **kwargs,
    )


def _ledger(stack: Stack, dbname: str) -> list[tuple[int, str]]:
    with psycopg.connect(stack.cluster.superuser_conninfo(dbname)) as conn:
        rows = conn.execute(
            sql.SQL("SELECT version, status FROM {}.applied ORDER BY version").format(sql.Identifier(LEDGER_SCHEMA))
        ).fetchall()
    return [(int(v), str(s)) for v, s in rows]


def test_full_path_then_a_second_run_changes_nothing(stack: Stack, dbname: str) -> None:
    creds = _credentials(stack)
    first = _run(stack, dbname, creds)
    assert first.verification.ok, first.verification.failed()
    assert list(first.migrations_applied) == MIGRATIONS
    assert "create login role migrator" in first.bootstrap
    assert "grant app_owner to migrator" in first.bootstrap
    assert first.tunnel == "ssh"

    offset = stack.log_size()
    second = _run(stack, dbname, creds)
    assert second.bootstrap == ()
    assert second.migrations_applied == ()
    assert second.verification.ok
    log = stack.log_since(offset)
    # log_statement=all: a second bootstrap sent no DDL at all
    for ddl in ("CREATE ROLE", "ALTER ROLE", "GRANT "):
        assert ddl not in log.upper().replace("SET LOCAL ROLE", ""), ddl
    assert _ledger(stack, dbname) == [(int(m[:4]), "applied") for m in MIGRATIONS]


def test_no_plaintext_password_reaches_the_server_log(stack: Stack, dbname: str) -> None:
    offset = stack.log_size()
    creds = _credentials(stack)
    _run(stack, dbname, creds, migrate=lambda p: (), pending=lambda p: ())
    log = stack.log_since(offset)
    assert "CREATE ROLE" in log  # the statements were logged...
    assert "SCRAM-SHA-256$4096:" in log
    for cred in creds.users.values():
        assert cred.password not in log  # ...with verifiers, never the password
    assert stack.admin_password not in log


def test_a_changed_secret_resets_only_that_password(stack: Stack, dbname: str) -> None:
    creds = _credentials(stack)
    _run(stack, dbname, creds)
    rotated = _credentials(stack, migrator=creds.user("migrator").password, readonly=creds.user("readonly").password)
    report = _run(stack, dbname, rotated)
    assert report.bootstrap == ("set password of app",)
    assert report.verification.ok  # the app logged in with the new password


class _KillTunnelAt:
    """Engine progress hook: kill the ssh process when migration ``label`` starts."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.tunnel: SshTunnel | None = None

    def lock_waiting(self, holder: object) -> None:
        pass

    def started(self, migration: Migration, action: Action) -> None:
        if migration.label == self.label and self.tunnel is not None and self.tunnel.pid is not None:
            os.kill(self.tunnel.pid, signal.SIGKILL)
            with pytest.raises(TunnelError):
                self.tunnel.wait()  # returns once the process is gone

    def retrying(self, migration: Migration, attempt: int, delay: float, reason: str) -> None:
        pass

    def finished(self, migration: Migration, action: Action, outcome: Outcome, ms: float) -> None:
        pass


def test_killing_the_tunnel_mid_run_is_clear_and_a_rerun_completes(stack: Stack, dbname: str) -> None:
    creds = _credentials(stack)
    target = Deployment("itest", "local", Environment.DEV, TLS_NAME, dbname)
    killer = _KillTunnelAt(MIGRATIONS[2])
    migrate, pending = engine_steps(target, killer)
    tunnel = SshTunnel(stack.jump.ssh_options(), "127.0.0.1", stack.cluster.port)
    killer.tunnel = tunnel
    with pytest.raises(TunnelError, match=r"ssh tunnel was lost .* during migrate; .* rerun to continue"):
        run_postdeploy(
            target,
            credentials=creds,
            tunnel=tunnel,
            ca_file=stack.cluster.tls.ca_cert,
            migrate=migrate,
            pending=pending,
        )
    assert tunnel.pid is None  # torn down on the error path too
    assert _ledger(stack, dbname) == [(1, "applied"), (2, "applied")]  # exact: no half-applied third

    rerun = _run(stack, dbname, creds)
    assert list(rerun.migrations_applied) == MIGRATIONS[2:]
    assert rerun.verification.ok
    assert len(_ledger(stack, dbname)) == len(MIGRATIONS)


class _Snapshots:
    def __init__(self) -> None:
        self.labels: list[str] = []

    def create(self, label: str) -> str:
        self.labels.append(label)
        return f"{label}-snap"


def test_production_snapshots_before_migrating(stack: Stack, dbname: str) -> None:
    calls: list[str] = []
    snaps = _Snapshots()

    def migrate(params: ConnectionSpec) -> Sequence[str]:
        calls.append(f"migrate after {len(snaps.labels)} snapshot(s)")
        return ()

    report = _run(
        stack,
        dbname,
        _credentials(stack),
        environment=Environment.PRODUCTION,
        snapshotter=snaps,
        migrate=migrate,
        pending=lambda p: ("0001_x",),
    )
    assert snaps.labels == ["pre-migrate-itest"]
    assert calls == ["migrate after 1 snapshot(s)"]
    assert report.snapshot == "pre-migrate-itest-snap"


def test_production_without_snapshot_is_refused_unless_skipped(stack: Stack, dbname: str) -> None:
    creds = _credentials(stack)
    with pytest.raises(InfraError, match=r"pre-migration snapshot; .* --skip-snapshot"):
        _run(stack, dbname, creds, environment=Environment.PRODUCTION, migrate=lambda p: (), pending=lambda p: ("x",))
    report = _run(
        stack,
        dbname,
        creds,
        environment=Environment.PRODUCTION,
        options=PostDeployOptions(skip_snapshot=True),
        migrate=lambda p: (),
        pending=lambda p: ("x",),
    )
    assert report.snapshot is None


def test_seed_is_refused_on_production(stack: Stack, dbname: str) -> None:
    with pytest.raises(SafetyError, match="refusing to seed production stack 'itest'"):
        _run(
            stack, dbname, _credentials(stack), environment=Environment.PRODUCTION, options=PostDeployOptions(seed=True)
        )


def test_dry_run_lists_pending_and_applies_nothing(stack: Stack, dbname: str) -> None:
    report = _run(stack, dbname, _credentials(stack), options=PostDeployOptions(dry_run=True))
    assert list(report.migrations_pending) == MIGRATIONS
    assert report.migrations_applied == ()


def test_the_bootstrap_creates_the_deployments_extensions_once(stack: Stack, dbname: str) -> None:
    """Item 6: Cloud SQL deployments ask for pgaudit (not in this PostgreSQL build); pgcrypto stands in,
    created by the same non-superuser admin path the cloud's admin takes."""
    creds = _credentials(stack)

    def run() -> PostDeployReport:
        return run_postdeploy(
            Deployment("itest", "local", Environment.DEV, TLS_NAME, dbname, extensions=("pgcrypto",)),
            credentials=creds,
            tunnel=SshTunnel(stack.jump.ssh_options(), "127.0.0.1", stack.cluster.port),
            ca_file=stack.cluster.tls.ca_cert,
        )

    assert "create extension pgcrypto" in run().bootstrap
    assert "create extension pgcrypto" not in run().bootstrap
    with psycopg.connect(stack.cluster.superuser_conninfo(dbname)) as conn:
        row = conn.execute("SELECT extowner::regrole::text FROM pg_extension WHERE extname = 'pgcrypto'").fetchone()
    assert row == (ADMIN,)


def _stack_files(stack: Stack, dbname: str, creds: Credentials, tmp_path: Path) -> tuple[dict[str, Any], Path, Path]:
    """A recorded-style outputs document (ssh bastion) and an ssh_config reaching the test jump host."""
    doc: dict[str, Any] = {
        "cloud": "aws",
        "environment": "dev",
        "db_host": "localhost",  # the jump host resolves it; the certificate carries it
        "db_port": stack.cluster.port,
        "db_name": dbname,
        "db_admin_user": ADMIN,
        "db_admin_secret": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:admin-AbC",
        "db_user_secrets": {r: f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{r}-AbC" for r in creds.users},
        "bastion": {"mode": "ssh", "target": "local-jump", "host": "jump-test", "user": stack.jump.user},
        "db_ca": "rds-ca-rsa2048-g1",
        "migrations": [],
    }
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(doc))
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        f"Host jump-test\n  HostName 127.0.0.1\n  Port {stack.jump.port}\n"
        f"  IdentityFile {stack.jump.files.client_key}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {stack.jump.files.known_hosts}\n"
    )
    return doc, outputs, ssh_config


def test_migrate_and_status_with_stack_through_the_cli(
    stack: Stack, dbname: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m infra migrate --stack`` and ``status --stack``: outputs file, secrets, ssh bastion."""
    creds = _credentials(stack)
    doc, outputs, ssh_config = _stack_files(stack, dbname, creds, tmp_path)
    values = {doc["db_admin_secret"]: json.dumps({"username": ADMIN, "password": stack.admin_password})}
    values |= {doc["db_user_secrets"][r]: json.dumps({"password": c.password}) for r, c in creds.users.items()}
    monkeypatch.setattr("infra.postdeploy.stack.resolver_for", lambda outputs, **kw: StaticSecrets(values))
    common = ["--stack", "itest", "--outputs-file", str(outputs), "--ssh-config", str(ssh_config)]
    common += ["--ca-file", str(stack.cluster.tls.ca_cert), "--json"]

    assert main(["migrate", *common]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["migrations_applied"] == MIGRATIONS
    assert report["verification"]["ok"] is True

    assert main(["status", *common]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [row["version"] for row in status["applied"]] == [int(m[:4]) for m in MIGRATIONS]
    assert status["pending"] == []
    out = capsys.readouterr()
    for cred in creds.users.values():
        assert cred.password not in out.out + out.err


def test_a_tunnel_lost_during_a_long_snapshot_is_reopened(stack: Stack, dbname: str) -> None:
    tunnel = SshTunnel(stack.jump.ssh_options(), "127.0.0.1", stack.cluster.port)

    class IdleTimeoutSnapshots:
        def create(self, label: str) -> str:
            # what an SSM idle timeout does to the session while RDS takes the snapshot
            assert tunnel.pid is not None
            os.kill(tunnel.pid, signal.SIGKILL)
            with pytest.raises(TunnelError):
                tunnel.wait()
            return f"{label}-snap"

    report = run_postdeploy(
        Deployment("itest", "local", Environment.PRODUCTION, TLS_NAME, dbname),
        credentials=_credentials(stack),
        tunnel=tunnel,
        ca_file=stack.cluster.tls.ca_cert,
        snapshotter=IdleTimeoutSnapshots(),
    )
    assert report.snapshot == "pre-migrate-itest-snap"
    assert list(report.migrations_applied) == MIGRATIONS
    assert report.verification.ok


def test_tunnel_stack_prints_parameters_that_work(stack: Stack, dbname: str, tmp_path: Path) -> None:
    """``python -m infra tunnel --stack``: libpq parameters (no password) that psql can use; Ctrl-C closes."""
    creds = _credentials(stack)
    _run(stack, dbname, creds, migrate=lambda p: (), pending=lambda p: ())  # the logins exist
    _, outputs, ssh_config = _stack_files(stack, dbname, creds, tmp_path)
    argv = [sys.executable, "-m", "infra", "tunnel", "--stack", "itest", "--role", "readonly"]
    argv += [
        "--outputs-file",
        str(outputs),
        "--ssh-config",
        str(ssh_config),
        "--ca-file",
        str(stack.cluster.tls.ca_cert),
    ]
    root = Path(__file__).resolve().parents[3]
    with subprocess.Popen(argv, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
        try:
            assert proc.stdout is not None
            lines: list[str] = []
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                if line.startswith("password:"):
                    break
            params: dict[str, Any] = dict(ln.strip().split("=", 1) for ln in lines if ln.startswith("  ") and "=" in ln)
            assert (params["host"], params["hostaddr"], params["sslmode"]) == ("localhost", "127.0.0.1", "verify-full")
            assert lines[-1].startswith("password: secret arn:aws:secretsmanager:")
            with psycopg.connect(**params, password=creds.user("readonly").password) as conn:
                assert conn.execute("SELECT current_user").fetchone() == ("readonly",)
            assert not any(c.password in "\n".join(lines) for c in creds.users.values())
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 130

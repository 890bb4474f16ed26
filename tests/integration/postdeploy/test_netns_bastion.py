"""The database is reachable only through the bastion: network namespaces, sshd, PostgreSQL 16.

PostgreSQL listens on 10.214.N.2 in the "db" namespace; sshd listens on 10.213.N.2 in the
"bastion" namespace, the only place that can reach the database. The runner (root namespace)
cannot connect directly, but can through the ssh tunnel, with ``sslmode=verify-full`` checking
the name ``db.internal`` on ``hostaddr=127.0.0.1``, and the full post-deploy path passes.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from infra.enums import Environment
from infra.local.jumphost import JumpHost
from infra.local.pg import LocalPostgres
from infra.postdeploy.run import Deployment, Route, run_postdeploy
from infra.postdeploy.secrets import Credential, Credentials
from infra.postdeploy.tunnel import SshTunnel
from tests.fixtures.netns import NetnsLab
from tests.fixtures.pg import start_managed
from tests.fixtures.sshd import StartJumpHost

TLS_NAME = "db.internal"
ADMIN = "cloudadmin"


@dataclass(frozen=True)
class Private:
    lab: NetnsLab
    cluster: LocalPostgres
    jump: JumpHost
    admin: Credential

    def tunnel(self) -> SshTunnel:
        # the bastion forwards to the database's private address; TLS checks the name
        return SshTunnel(self.jump.ssh_options(), self.lab.db_ip, self.cluster.port)


@pytest.fixture(scope="module")
def private(
    netns_lab: NetnsLab, tmp_path_factory: pytest.TempPathFactory, start_jump_host: StartJumpHost
) -> Iterator[Private]:
    cluster = LocalPostgres(
        tmp_path_factory.mktemp("netns") / "pg",
        listen=netns_lab.db_ip,
        server_names=(TLS_NAME,),
        netns=netns_lab.db_ns,
    )
    password = start_managed(cluster, ADMIN)
    with psycopg.connect(cluster.superuser_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE app OWNER {}").format(sql.Identifier(ADMIN)))
    with psycopg.connect(cluster.superuser_conninfo("app"), autocommit=True) as conn:
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    jump = start_jump_host(f"{netns_lab.db_ip}:{cluster.port}", listen=netns_lab.bastion_ip, netns=netns_lab.bastion_ns)
    try:
        yield Private(netns_lab, cluster, jump, Credential(ADMIN, password))
    finally:
        jump.stop()
        cluster.destroy()


def test_the_runner_cannot_reach_the_database_directly(private: Private) -> None:
    # no route from the runner's namespace to the db namespace
    with (
        pytest.raises(OSError, match="No route to host"),
        socket.create_connection((private.lab.db_ip, private.cluster.port), timeout=3),
    ):
        pass
    direct: dict[str, Any] = {
        **private.cluster.tcp_params(ADMIN, "app", host=TLS_NAME),
        "password": private.admin.password,
    }
    with pytest.raises(psycopg.OperationalError, match="No route to host"):
        psycopg.connect(**direct, connect_timeout=3)


def test_the_bastion_is_reachable_and_the_tunnel_carries_verify_full(private: Private) -> None:
    with private.tunnel() as tunnel:
        params = Route(TLS_NAME, tunnel.local_port, "app", private.cluster.tls.ca_cert).params(private.admin)
        assert params.public()["sslmode"] == "verify-full"
        assert params.public()["hostaddr"] == "127.0.0.1"
        with params.connect() as conn:
            row = conn.execute(
                "SELECT ssl, inet_client_addr()::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            ).fetchone()
        # TLS end to end; the server sees the bastion's inner address, never the runner's
        assert row == (True, f"{private.lab.bastion_inner_ip}/32")


def test_full_post_deploy_through_the_bastion(private: Private) -> None:
    users = {r: Credential(r, secrets.token_urlsafe(20)) for r in ("migrator", "app", "readonly")}
    report = run_postdeploy(
        Deployment("netns", "local", Environment.STAGING, TLS_NAME, "app"),
        credentials=Credentials(private.admin, users),
        tunnel=private.tunnel(),
        ca_file=private.cluster.tls.ca_cert,
    )
    assert report.verification.ok, report.verification.failed()
    assert len(report.migrations_applied) >= 6
    assert report.migrations_applied[0].startswith("0001_")

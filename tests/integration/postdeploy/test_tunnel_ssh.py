"""The OpenSSH tunnel against a real sshd jump host and the real PostgreSQL 16, with verify-full TLS."""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from infra.errors import ToolMissing, TunnelError
from infra.local.jumphost import JumpHost
from infra.migrations.connection import ConnectionSpec
from infra.postdeploy.run import Route
from infra.postdeploy.secrets import Credential
from infra.postdeploy.tunnel import SshTunnel
from tests.fixtures.pg import ADMIN_USER, AdminCluster


def _admin(pg_cluster: AdminCluster, port: int, tls_name: str = "localhost") -> ConnectionSpec:
    route = Route(tls_name, port, "postgres", pg_cluster.tls.ca_cert)
    return route.params(Credential(ADMIN_USER, pg_cluster.admin_password))


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_tunnel_carries_verify_full_tls(pg_cluster: AdminCluster, jump_host: JumpHost) -> None:
    tunnel = SshTunnel(jump_host.ssh_options(), "127.0.0.1", pg_cluster.port)
    assert tunnel.local_port != pg_cluster.port
    with tunnel, _admin(pg_cluster, tunnel.local_port).connect() as conn:
        row = conn.execute("SELECT ssl, inet_client_addr()::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        ssl, client = row.fetchone() or (None, None)
        assert ssl is True
        # the server sees the jump host's forwarded connection, not us directly
        assert client == "127.0.0.1/32"
        assert conn.pgconn.ssl_in_use


def test_verify_full_checks_the_name_through_the_tunnel(pg_cluster: AdminCluster, jump_host: JumpHost) -> None:
    with (
        SshTunnel(jump_host.ssh_options(), "127.0.0.1", pg_cluster.port) as tunnel,
        pytest.raises(psycopg.OperationalError, match=r"does not match|certificate"),
    ):
        _admin(pg_cluster, tunnel.local_port, tls_name="db.wrong.internal").connect()


def test_tunnel_is_closed_on_error_exit(pg_cluster: AdminCluster, jump_host: JumpHost) -> None:
    tunnel = SshTunnel(jump_host.ssh_options(), "127.0.0.1", pg_cluster.port)
    seen: list[int | None] = []

    def fail_inside() -> None:
        with tunnel:
            assert _listening(tunnel.local_port)
            seen.append(tunnel.pid)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_inside()
    pid = seen[0]
    assert tunnel.pid is None
    assert not _listening(tunnel.local_port)
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_unknown_host_key_is_refused(pg_cluster: AdminCluster, jump_host: JumpHost, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    options = dataclasses.replace(jump_host.ssh_options(), known_hosts=empty)
    tunnel = SshTunnel(options, "127.0.0.1", pg_cluster.port)
    with pytest.raises(TunnelError, match=r"exited with code 255.*[Hh]ost key verification failed"):
        tunnel.open(timeout=20)
    assert tunnel.pid is None


def test_lost_tunnel_is_reported(pg_cluster: AdminCluster, jump_host: JumpHost) -> None:
    with SshTunnel(jump_host.ssh_options(), "127.0.0.1", pg_cluster.port) as tunnel:
        tunnel.check()
        assert tunnel.pid is not None
        os.kill(tunnel.pid, signal.SIGKILL)
        with pytest.raises(TunnelError, match="ssh tunnel was lost"):
            tunnel.wait()


def test_forwarding_is_limited_to_the_database(pg_cluster: AdminCluster, jump_host: JumpHost) -> None:
    # PermitOpen: the jump host refuses any other destination, e.g. its own sshd port
    with (
        SshTunnel(jump_host.ssh_options(), "127.0.0.1", jump_host.port) as tunnel,
        socket.create_connection(("127.0.0.1", tunnel.local_port), timeout=5) as sock,
    ):
        sock.settimeout(30)  # generous: a loaded CI machine; a refusal arrives in milliseconds
        assert sock.recv(16) == b""  # closed without a banner: the channel was refused


def test_missing_ssh_says_how_to_install(
    pg_cluster: AdminCluster, jump_host: JumpHost, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing, match="'ssh' not found on PATH; install the OpenSSH client"):
        SshTunnel(jump_host.ssh_options(), "127.0.0.1", pg_cluster.port).open()


_HOLDER = """
import dataclasses, json, sys, time
from pathlib import Path
from infra.postdeploy.tunnel import SshOptions, SshTunnel
raw = json.loads(sys.argv[1])
for key in ("identity_file", "known_hosts"):
    raw[key] = Path(raw[key])
tunnel = SshTunnel(SshOptions(**raw), "127.0.0.1", int(sys.argv[2]))
tunnel.open()
print(tunnel.pid, flush=True)
sys.stdin.read()  # hold the tunnel until killed
"""


def test_the_tunnel_dies_with_a_killed_parent(pg_cluster: AdminCluster, jump_host: JumpHost) -> None:
    """Even SIGKILL of the process that opened it (no finally runs) ends the ssh child (PR_SET_PDEATHSIG)."""
    options = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(jump_host.ssh_options()).items()}
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, json.dumps(options), str(pg_cluster.port)],
        cwd=Path(__file__).resolve().parents[3],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None
        ssh_pid = int(holder.stdout.readline())
        pidfd = os.pidfd_open(ssh_pid)
        try:
            holder.kill()
            holder.wait()
            gone, _, _ = select.select([pidfd], [], [], 10)  # readable once the ssh process has exited
            if not gone:
                os.kill(ssh_pid, signal.SIGKILL)  # do not leave the orphan behind
            assert gone, "the ssh tunnel outlived its parent"
        finally:
            os.close(pidfd)

"""A real PgBouncer in transaction mode in front of the demo's PostgreSQL 16 (Debian's package).

It runs where the database runs: in the demo's private network (:mod:`infra.local.privnet`),
entered with ``nsenter`` beside the postmaster, so only the jump host can forward to it. Clients
reach it on its own loopback port there with TLS (its own certificate for
``pooler.demo.internal``, so ``sslmode=verify-full`` works as against RDS Proxy), and log in
with SCRAM-SHA-256 against the server's own verifiers (``auth_query`` on ``pg_shadow``, read as
the superuser over the private socket): no password file. Server connections go over the
primary's private Unix socket. Transaction mode hands a server connection to a client for one
transaction only; ``server_reset_query`` is not run between clients in that mode (PgBouncer
docs, ``server_reset_query``), so session state set by one client *is* seen by the next: the
isolation check (``infra.postdeploy.scale``) shows that the tenant context does not ride along.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

from infra.errors import InfraError, ToolMissing
from infra.local.jumphost import stop_pid_file
from infra.local.pg import LocalPostgres, TlsMaterial, make_tls, open_for_traversal
from infra.local.privnet import PrivateNetwork
from infra.postdeploy.tunnel import child_environment, free_port

__all__ = ["LocalPooler", "find_pgbouncer"]


def find_pgbouncer() -> Path:
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/sbin:/usr/local/sbin")
    if found is None:
        raise ToolMissing("'pgbouncer' not found; install it (apt-get install pgbouncer, or make install)")
    return Path(found)


class LocalPooler:
    """PgBouncer under ``root`` for ``database`` on ``primary``; ``pool_size`` server connections per user."""

    def __init__(
        self,
        root: Path,
        primary: LocalPostgres,
        database: str,
        *,
        port: int | None = None,
        server_names: tuple[str, ...] = ("pooler.demo.internal",),
        pool_size: int = 10,
        max_client_conn: int = 1000,
        tls: bool = True,
    ) -> None:
        self.root = root.resolve()
        self.primary = primary
        self.database = database
        self.listen = primary.listen
        self.port = port if port is not None else free_port()
        self.server_names = server_names
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self.tls_enabled = tls
        self.tls = TlsMaterial(self.root / "tls/ca.pem", self.root / "tls/server.crt", self.root / "tls/server.key")
        self.config = self.root / "pgbouncer.ini"
        self.pid_file = self.root / "pgbouncer.pid"
        self.log_path = self.root / "pgbouncer.log"

    def _ini(self) -> str:
        socket_dir = self.primary.socket_dir
        lines = [
            "[databases]",
            f"{self.database} = host={socket_dir} port={self.primary.port} dbname={self.database}",
            "[pgbouncer]",
            f"listen_addr = {self.listen}",
            f"listen_port = {self.port}",
            "unix_socket_dir =",  # TCP only: the one door is the TLS port
            "pool_mode = transaction",
            f"default_pool_size = {self.pool_size}",
            f"max_client_conn = {self.max_client_conn}",
            "auth_type = scram-sha-256",
            f"auth_file = {self.root / 'userlist.txt'}",  # empty: every login is looked up with auth_query
            "auth_user = postgres",
            "auth_query = SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename = $1",
            f"logfile = {self.log_path}",
            f"pidfile = {self.pid_file}",
            "log_connections = 1",
            "log_disconnections = 1",
            "server_tls_sslmode = disable",  # the private Unix socket
            # psycopg and pgbench send these at startup; PgBouncer would refuse the login otherwise
            "ignore_startup_parameters = extra_float_digits,options",
        ]
        if self.tls_enabled:
            lines += [
                "client_tls_sslmode = require",  # no plaintext client (the local twin of require_tls)
                f"client_tls_cert_file = {self.tls.server_cert}",
                f"client_tls_key_file = {self.tls.server_key}",
                "client_tls_protocols = tlsv1.2,tlsv1.3",
            ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 20.0) -> None:
        """Write the configuration and start PgBouncer (daemonized) as the server user; wait until it listens."""
        binary = find_pgbouncer()
        user = self.primary._run_as()
        self.root.mkdir(parents=True, exist_ok=True)
        if self.tls_enabled and not self.tls.ca_cert.exists():
            make_tls(self.tls.ca_cert.parent, list(self.server_names), ["127.0.0.1"])
        self.config.write_text(self._ini())
        (self.root / "userlist.txt").write_text("")
        if user is not None:  # PgBouncer refuses to run as root; it runs as PostgreSQL's user
            open_for_traversal(self.root, recursive=False)
            self.primary._chown(self.root, user)
        self.log_path.unlink(missing_ok=True)
        argv = [str(binary), "-d", "-q", str(self.config)]
        network = self._network()
        if network is not None:  # beside the database, in its private network
            private, pid_file = network
            drop = []
            if user is not None:
                entry = pwd.getpwnam(user)
                drop = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups"]
            argv = ["sh", "-c", private.enter(pid_file, [*drop, *argv])]
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            user=None if network is not None else user,
            check=False,
            env=child_environment(),
        )
        if result.returncode != 0:
            raise InfraError(f"pgbouncer did not start (exit {result.returncode}): {self._tail(result.stderr)}")
        # Ready when its log says it listens (from inside a private network the port cannot be tried here).
        deadline = time.monotonic() + timeout
        while not self._listening(network is None):
            if time.monotonic() >= deadline:
                raise InfraError(f"pgbouncer not listening on {self.listen}:{self.port}: {self._tail('')}")
            time.sleep(0.05)

    def _network(self) -> tuple[PrivateNetwork, Path] | None:
        if self.primary.private_network is not None:
            return self.primary.private_network, self.primary.postmaster_pid_file()
        return self.primary.join_network

    def _listening(self, reachable: bool) -> bool:
        if reachable:
            return self._accepts()
        log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"listening on {self.listen}:{self.port}" in log

    def _tail(self, stderr: str) -> str:
        log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return " | ".join((stderr + log).strip().splitlines()[-3:])

    def _accepts(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((self.listen, self.port), timeout=1.0):
            return True
        return False

    def running(self) -> bool:
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return False
        return True

    def stop(self) -> bool:
        """Stop the PgBouncer of the pid file (checked to be pgbouncer); True if one was stopped."""
        return stop_pid_file(self.pid_file, expect="pgbouncer")

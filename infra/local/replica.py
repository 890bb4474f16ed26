"""A real streaming replica of the demo's embedded PostgreSQL 16, the local twin of a read replica.

The base backup is ``pg_basebackup`` (PostgreSQL 16 client tools from the ``pgserver`` wheel, see
:func:`client_bin`), taken over the primary's private Unix socket: that build's libpq has no
SSL, and the socket needs none (0700, the server user only). The replica then streams WAL from
the same socket (``primary_conninfo``) and serves read-only TLS connections on its own loopback
port with its own certificate, like an RDS / Cloud SQL replica endpoint. When the primary lives in
the demo's private network (:mod:`infra.local.privnet`) the replica starts inside that network too,
where the jump host's sshd can forward to it and nothing outside can reach it. The server binary stays
the npm build of :func:`infra.local.pg.pg_bin`.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from infra.errors import InfraError, ToolMissing
from infra.local.pg import LocalPostgres, open_for_traversal
from infra.postdeploy.tunnel import child_environment

__all__ = ["LocalReplica", "client_bin"]

PGSERVER_VERSION = "0.1.4"  # keep in step with requirements-dev.txt


def client_bin(name: str) -> Path:
    """A PostgreSQL 16 client tool (``pg_basebackup``, ``pgbench``): ``$PG16_CLIENT_BINDIR`` or the pgserver wheel."""
    env = os.environ.get("PG16_CLIENT_BINDIR")
    if env:
        path = Path(env) / name
    else:
        spec = importlib.util.find_spec("pgserver")
        if spec is None or not spec.submodule_search_locations:
            raise ToolMissing(
                f"postgresql 16 client tool {name!r} needs the pgserver wheel; "
                f"pip install pgserver=={PGSERVER_VERSION} (requirements-dev.txt) or set PG16_CLIENT_BINDIR"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name
    if not path.exists():
        raise ToolMissing(f"postgresql 16 client tool {name!r} not found at {path}; set PG16_CLIENT_BINDIR")
    return path


class LocalReplica:
    """A hot standby of ``primary`` under ``root``: base backup once, then streaming replication."""

    def __init__(
        self,
        root: Path,
        primary: LocalPostgres,
        *,
        name: str = "replica-0",
        server_names: Sequence[str] = ("replica-0.demo.internal",),
        port: int | None = None,
    ) -> None:
        self.primary = primary
        self.name = name
        conninfo = f"host={primary.socket_dir} port={primary.port} user=postgres application_name={name}"
        self.pg = LocalPostgres(
            root,
            port=port,
            listen=primary.listen,
            server_names=server_names,
            settings={"primary_conninfo": f"'{conninfo}'", "hot_standby": "on"},
            join_network=(
                (primary.private_network, primary.postmaster_pid_file())
                if primary.private_network is not None
                else primary.join_network
            ),
        )

    @property
    def port(self) -> int:
        return self.pg.port

    def running(self) -> bool:
        return self.pg.running()

    def start(self) -> None:
        """Take the base backup (first time only), mark the cluster a standby, start it; wait until it reads."""
        user = self.pg._run_as()
        self.pg.root.mkdir(parents=True, exist_ok=True)
        if not (self.pg.data / "PG_VERSION").exists():
            tool = client_bin("pg_basebackup")
            if user is not None:  # the server user runs it, so it can reach the socket and own the files
                open_for_traversal(tool.parents[1])
                open_for_traversal(self.pg.root, recursive=False)
            self.pg.data.mkdir(mode=0o700, exist_ok=True)
            self.pg._chown(self.pg.data, user)
            result = subprocess.run(
                [
                    str(tool),
                    "--pgdata",
                    str(self.pg.data),
                    "--host",
                    str(self.primary.socket_dir),
                    "--port",
                    str(self.primary.port),
                    "--username",
                    "postgres",
                    "--no-password",
                    "--wal-method=stream",  # the WAL written during the copy comes along: consistent at once
                    "--checkpoint=fast",
                    "--label",
                    f"private-postgres {self.name}",
                ],
                capture_output=True,
                text=True,
                user=user,
                check=False,
                env=child_environment(),  # no PGPASSWORD or cloud credentials in the child
            )
            if result.returncode != 0:
                raise InfraError(
                    f"pg_basebackup for {self.name} failed (exit {result.returncode}): {result.stderr.strip()}"
                )
        (self.pg.data / "standby.signal").touch()  # start as a hot standby, streaming from primary_conninfo
        self.pg.start()

    def stop(self) -> None:
        self.pg.stop()

"""A throwaway PostgreSQL 16 of the engine's own: where ``baseline`` builds the catalog the files
produce and ``plan --measure`` reads the locks a migration takes, never touching the live database.

The server is the project's embedded PostgreSQL 16 build (:func:`pg_bindir`, the npm package that
``make install`` fetches; never the machine's PostgreSQL 15). It listens on no TCP port at all:
only on a Unix socket inside its own temporary directory, with ``trust`` authentication, so
nothing outside this process's user can reach it, and nothing it holds is secret (a schema, no
data). ``fsync`` is off: the cluster is deleted when the ``with`` block ends.

PostgreSQL refuses to run as root, so when we are root the server runs as the unprivileged
system user :data:`~infra.migrations.binaries.SERVER_USER` (created on first use); the helpers for
that live in :mod:`infra.migrations.binaries`, which the local demo's server shares.

Raises :class:`~infra.errors.InfraError` when the binaries are missing or the server cannot start.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

from infra.errors import InfraError
from infra.migrations.binaries import open_for_traversal, pg_bin, server_env, server_user
from infra.migrations.connection import ConnectionSpec

__all__ = ["ScratchServer"]

_PORT = 5432  # only names the socket file (.s.PGSQL.5432) in a private directory: no TCP listener
_BOOTSTRAP = "postgres"


class ScratchServer:
    """A PostgreSQL 16 cluster in a temporary directory, for the length of a ``with`` block.

    >>> with ScratchServer() as server:
    ...     spec = server.create_database()   # a fresh, empty database; superuser connection
    """

    def __init__(self) -> None:
        self.root: Path | None = None
        self._user: str | None = None

    @property
    def socket_dir(self) -> Path:
        if self.root is None:
            raise InfraError("scratch server is not running")
        return self.root / "run"

    def __enter__(self) -> ScratchServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        """initdb, then start on the private socket; wait until it accepts connections."""
        self._user = server_user()
        initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
        self.root = Path(tempfile.mkdtemp(prefix="pg16-scratch-"))
        data, run, log = self.root / "data", self.root / "run", self.root / "postgres.log"
        run.mkdir(mode=0o700)
        if self._user is not None:
            open_for_traversal(initdb.parent.parent)  # the server user must reach its binaries
            entry = pwd.getpwnam(self._user)
            for path in (self.root, run):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        try:
            self._run([str(initdb), "-D", str(data), "-U", _BOOTSTRAP, "-A", "trust", "-E", "UTF8", "--locale=C", "-N"])
            options = " ".join(
                f"-c {name}={value}"
                for name, value in (
                    ("listen_addresses", "''"),  # no TCP at all
                    ("unix_socket_directories", f"'{run}'"),
                    ("port", str(_PORT)),
                    ("fsync", "off"),  # a throwaway cluster: nothing here needs to survive a crash
                    ("full_page_writes", "off"),
                    ("synchronous_commit", "off"),
                    ("shared_buffers", "16MB"),
                    ("max_connections", "20"),
                )
            )
            self._run([str(pg_ctl), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"])
        except InfraError:
            self.close()
            raise

    def _run(self, argv: list[str]) -> None:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, user=self._user, env=server_env())
        if result.returncode != 0:
            log = self.root / "postgres.log" if self.root else None
            tail = result.stderr + (log.read_text(errors="replace") if log and log.exists() else "")
            raise InfraError(f"scratch postgresql 16 failed ({Path(argv[0]).name}): {tail.strip()[-1500:]}")

    def close(self) -> None:
        """Stop the server (immediate: nothing to keep) and delete its directory."""
        if self.root is None:
            return
        if (self.root / "data" / "postmaster.pid").exists():
            subprocess.run(
                [str(pg_bin("pg_ctl")), "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                check=False,
                user=self._user,
                env=server_env(),
            )
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def spec(self, dbname: str = _BOOTSTRAP, user: str = _BOOTSTRAP) -> ConnectionSpec:
        """How to reach ``dbname`` as ``user`` (trust over the private socket: no password)."""
        return ConnectionSpec(host=str(self.socket_dir), port=_PORT, dbname=dbname, user=user, sslmode="disable")

    def connect(self, dbname: str = _BOOTSTRAP, user: str = _BOOTSTRAP) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection (``application_name`` scratch)."""
        conn: psycopg.Connection[tuple[object, ...]] = self.spec(dbname, user).connect(
            application_name="scratch", autocommit=True
        )
        return conn

    def create_database(self, owner: str = _BOOTSTRAP) -> ConnectionSpec:
        """A new empty database owned by ``owner`` (a role that must exist); the spec connects as the owner."""
        name = f"scratch_{secrets.token_hex(4)}"
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))
        return self.spec(name, owner)

    def twin(self, live: psycopg.Connection[Any], login: str | None = None) -> ConnectionSpec:
        """An empty database shaped like ``live``'s cluster, for replaying its migration files.

        Every role of the live cluster is created here by name (NOLOGIN, no password: grants and
        ``SET ROLE`` in the files then work and owners come out the same), the live login as a
        superuser of this throwaway cluster so that whatever it could do, it can do here. The spec
        connects as that login (``login``, default the live ``current_user``: the role that ran the
        migrations there) to a new database it owns.
        """
        rows = live.execute(
            "SELECT rolname, rolname = coalesce(%s, current_user) FROM pg_catalog.pg_roles "
            "WHERE rolname !~ '^pg_' ORDER BY rolname",
            (login,),
        ).fetchall()
        login = next((str(name) for name, is_login in rows if is_login), None)
        if login is None:
            raise InfraError("the role that ran the migrations no longer exists on the live server")
        with self.connect() as conn:
            existing = {str(r[0]) for r in conn.execute("SELECT rolname FROM pg_catalog.pg_roles").fetchall()}
            for name, is_login in rows:
                ident = sql.Identifier(str(name))
                if str(name) not in existing:
                    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(ident))
                if is_login:
                    conn.execute(sql.SQL("ALTER ROLE {} LOGIN SUPERUSER").format(ident))
        return self.create_database(login)

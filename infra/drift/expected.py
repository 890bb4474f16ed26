"""The expected catalog: the migrations applied to a throwaway PostgreSQL 16, introspected like the live one.

What the live database should look like is never taken from the live database itself (a change
made by hand before a migration run would be folded into any snapshot that run recorded).
Instead :class:`ScratchServer` starts the embedded PostgreSQL 16 (:class:`infra.local.pg.LocalPostgres`)
in a temporary directory and repeats what a deployment does, as the same roles:

1. the managed-style admin (named like the stack's, with only CREATEROLE and CREATEDB, as RDS and
   Cloud SQL give it) and the database;
2. the post-deploy role bootstrap (``infra.postdeploy.bootstrap``: group roles, the ``migrator``,
   ``app`` and ``readonly`` logins and their memberships);
3. the migrations the live ledger records as applied, by the engine (``commands.migrate``) as
   ``migrator``;

then introspects it with :func:`infra.migrations.catalog.introspect`, the code that reads the live
database. The result is cached on disk (:class:`ExpectedCatalogs`) under a key made of the
applied files' checksums, the admin's name, the server's major version and the introspection SQL
itself; a cached catalog is used while its key matches, so an unchanged schema costs no server
start. Anything that stops the build raises :class:`ExpectedCatalogError` (exit 1): drift never
reports "no drift" without having built what to compare against.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from infra.errors import InfraError
from infra.local.pg import LocalPostgres
from infra.migrations import catalog, commands
from infra.migrations.catalog import Catalog
from infra.migrations.source import Migration
from infra.postdeploy.bootstrap import USER_GROUPS, bootstrap_roles

__all__ = ["CACHE_DIR", "Expected", "ExpectedCatalogError", "ExpectedCatalogs", "ScratchServer", "cache_key"]

_log = logging.getLogger(__name__)

CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "private-postgres" / "expected-catalog"
#: PostgreSQL's major version of the embedded build (``infra.local.pg``); part of the cache key.
SERVER_MAJOR = 16


class ExpectedCatalogError(InfraError):
    """The expected catalog could not be built (no PostgreSQL 16, a migration failed, ...)."""


def cache_key(migrations: Sequence[Migration], admin: str, server_major: int = SERVER_MAJOR) -> str:
    """What the expected catalog depends on, hashed: change any of it and the cache misses."""
    parts = {
        "format": catalog.FORMAT,
        "introspection": hashlib.sha256(catalog.introspect_sql().as_string(None).encode()).hexdigest(),
        "server_major": server_major,
        "admin": admin,
        "logins": dict(USER_GROUPS),
        "files": [[m.filename, m.checksum] for m in sorted(migrations, key=lambda m: m.version)],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class ScratchServer:
    """A throwaway embedded PostgreSQL 16 in which expected catalogs are built; a context manager.

    One server serves one admin name: roles are cluster-wide, and an admin from another build
    would show up in this one's memberships. Each :meth:`build` uses a fresh database.
    """

    def __init__(self, admin: str, root: Path | None = None) -> None:
        self.admin = admin
        self._owned_root = root is None
        self.root = root or Path(tempfile.mkdtemp(prefix="drift-expected-"))
        self.server = LocalPostgres(self.root / "cluster", server_names=("localhost",))
        self._admin_password = secrets.token_urlsafe(24)
        self._builds = 0

    def __enter__(self) -> ScratchServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        try:
            self.server.start()
            with psycopg.connect(self.server.superuser_conninfo(), autocommit=True) as conn:
                # the managed admin's shape on RDS / Cloud SQL: not superuser, CREATEROLE and CREATEDB
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN CREATEROLE CREATEDB PASSWORD {}").format(
                        sql.Identifier(self.admin), sql.Literal(self._admin_password)
                    )
                )
        except (InfraError, psycopg.Error, OSError) as exc:
            self.close()
            raise ExpectedCatalogError(
                f"cannot start the PostgreSQL 16 that builds the expected catalog: {exc}"
            ) from None

    def close(self) -> None:
        self.server.destroy()
        if self._owned_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def build(self, migrations: Sequence[Migration]) -> Catalog:
        """Deploy ``migrations`` into a new database the way a stack is deployed; its catalog."""
        self._builds += 1
        dbname = f"expected_{self._builds}"
        try:
            with psycopg.connect(self.server.superuser_conninfo(), autocommit=True) as conn:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname), sql.Identifier(self.admin))
                )
            passwords = {user: secrets.token_urlsafe(24) for user in USER_GROUPS}
            with self.server.connection_spec(self.admin, self._admin_password, dbname).connect() as admin:
                # every login's password is new here, so "can it log in already?" is always no
                bootstrap_roles(admin, dbname, passwords, lambda _user, _password: False)
                admin.commit()
            migrator = self.server.connection_spec("migrator", passwords["migrator"], dbname)
            with tempfile.TemporaryDirectory(prefix="migrations-") as directory:
                for mig in migrations:
                    shutil.copyfile(mig.path, Path(directory) / mig.filename)
                commands.migrate(commands.MigrationContext(migrator, Path(directory)))
            with migrator.connect(autocommit=True) as conn:
                return catalog.introspect(conn)
        except InfraError as exc:
            raise ExpectedCatalogError(f"the expected catalog could not be built: {exc}") from None
        except psycopg.Error as exc:
            raise ExpectedCatalogError(f"the expected catalog could not be built: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@dataclass(frozen=True)
class Expected:
    """An expected catalog and where it came from (``built`` in N s, or ``cache``), for the report."""

    catalog: Catalog
    key: str
    source: str

    def describe(self) -> str:
        return f"{self.source} (key {self.key[:12]})"


class ExpectedCatalogs:
    """Expected catalogs by cache key: from ``cache_dir`` while the key matches, else built.

    ``server`` lends an already started :class:`ScratchServer` (tests build several catalogs in
    one); without it each build starts and removes its own. ``cache_dir=None`` turns the cache off.
    """

    def __init__(self, admin: str, *, cache_dir: Path | None = CACHE_DIR, server: ScratchServer | None = None) -> None:
        if server is not None and server.admin != admin:
            raise ValueError(f"scratch server built for admin {server.admin!r}, not {admin!r}")
        self.admin = admin
        self.cache_dir = cache_dir
        self.server = server

    def _cached(self, key: str) -> Catalog | None:
        if self.cache_dir is None:
            return None
        path = self.cache_dir / f"{key}.json"
        try:
            document: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return Catalog.from_json(document)

    def _store(self, key: str, built: Catalog) -> None:
        if self.cache_dir is None:
            return
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            partial = self.cache_dir / f".{key}.{os.getpid()}.tmp"
            partial.write_text(json.dumps(built.to_json(), sort_keys=True))
            partial.replace(self.cache_dir / f"{key}.json")  # atomic: a reader never sees half a file
        except OSError as exc:
            _log.warning("expected catalog not cached in %s: %s", self.cache_dir, exc)

    def get(self, migrations: Sequence[Migration]) -> Expected:
        """The expected catalog after ``migrations``. Raises ExpectedCatalogError when it cannot be built."""
        key = cache_key(migrations, self.admin)
        found = self._cached(key)
        if found is not None:
            return Expected(found, key, "cache")
        started = time.monotonic()
        if self.server is not None:
            built = self.server.build(migrations)
        else:
            with ScratchServer(self.admin) as server:
                built = server.build(migrations)
        self._store(key, built)
        return Expected(built, key, f"built on PostgreSQL {SERVER_MAJOR} in {time.monotonic() - started:.1f} s")

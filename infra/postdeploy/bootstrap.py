"""Role bootstrap, run as the managed admin: group roles and the login users, idempotently.

What it guarantees, after which migrations can run as ``migrator``:

- the NOLOGIN group roles exist (``app_owner`` owns the schema, ``app_readwrite``,
  ``app_readonly``, ``platform_admin``); the migrations grant them their privileges;
- ``app_owner`` may create schemas in the database (the first migration creates ``app``);
- the login users ``migrator`` (member of ``app_owner``), ``app`` (``app_readwrite``) and
  ``readonly`` (``app_readonly``) exist, can log in, and their password is the generated one;
- the extensions the deployment asks for exist in the database (``pgaudit`` on Cloud SQL).

Passwords never reach the server in plain text: the SCRAM-SHA-256 verifier is computed here,
by libpq (``PQencryptPasswordConn`` with an explicit algorithm, which does not ask the server),
and only the verifier is sent in ``CREATE/ALTER ROLE ... PASSWORD``. A statement log
(``log_statement=ddl`` on RDS, exported to CloudWatch) then holds a salted verifier, never the
password.

Idempotence ("run twice changes nothing"): a non-superuser admin cannot read ``pg_authid``,
so it cannot compare verifiers, and re-sending one would change the stored salt. Instead each
user's password is *proved* by logging in as that user with it (``can_login``); only a user
whose login fails gets ``ALTER ROLE ... PASSWORD``. Roles, attributes and memberships are read
from ``pg_roles`` / ``pg_auth_members`` first. A second run therefore issues no DDL at all,
which the integration test checks in the server's statement log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from infra.errors import InfraError

__all__ = [
    "GROUP_ROLES",
    "USER_GROUPS",
    "BootstrapError",
    "BootstrapResult",
    "bootstrap_roles",
    "scram_verifier",
]

_log = logging.getLogger(__name__)

#: NOLOGIN group roles; the migrations grant them privileges on the ``app`` schema.
GROUP_ROLES: tuple[str, ...] = ("app_owner", "app_readwrite", "app_readonly", "platform_admin", "app_tenant_issuer")

#: Each login user and the group role it is a member of.
USER_GROUPS: Mapping[str, str] = {"migrator": "app_owner", "app": "app_readwrite", "readonly": "app_readonly"}

_SCRAM_PREFIX = "SCRAM-SHA-256$"


class BootstrapError(InfraError):
    """The admin could not create or fix a role (the message names the role, never a password)."""


@dataclass(frozen=True)
class BootstrapResult:
    """What the bootstrap changed; empty ``actions`` means nothing needed changing."""

    actions: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.actions)


def scram_verifier(conn: psycopg.Connection[Any], user: str, password: str) -> str:
    """The SCRAM-SHA-256 verifier of ``password`` for ``user``, computed client-side by libpq."""
    verifier = conn.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256").decode()
    if not verifier.startswith(_SCRAM_PREFIX):  # never send anything that could be a plain password
        raise BootstrapError(f"libpq did not produce a scram-sha-256 verifier for role {user!r}")
    return verifier


def bootstrap_roles(
    conn: psycopg.Connection[Any],
    dbname: str,
    passwords: Mapping[str, str],
    can_login: Callable[[str, str], bool],
    *,
    extensions: Sequence[str] = (),
) -> BootstrapResult:
    """Create or fix the group roles and the login users; return what was changed.

    ``conn`` is the admin's connection; ``passwords`` maps each of :data:`USER_GROUPS` to its
    generated password; ``can_login(user, password)`` tries a real login (through the tunnel);
    ``extensions`` are created when missing. Everything runs in one transaction: a failure leaves
    the roles as they were.
    Raises BootstrapError naming the role when the admin lacks a privilege.
    """
    absent = [u for u in USER_GROUPS if u not in passwords]
    if absent:
        raise BootstrapError(f"no password for login role {absent[0]!r}")
    actions: list[str] = []
    # Decide password changes before the transaction: each probe is its own short connection.
    stale = {user for user in USER_GROUPS if not _role_exists(conn, user) or not can_login(user, passwords[user])}
    conn.commit()
    try:
        with conn.transaction():
            for extension in extensions:
                if not _scalar(
                    conn, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = %s)", (extension,)
                ):
                    statement = sql.SQL("CREATE EXTENSION {}").format(sql.Identifier(extension))
                    _execute(conn, statement, extension, kind="extension")
                    actions.append(f"create extension {extension}")
            for group in GROUP_ROLES:
                if not _role_exists(conn, group):
                    _execute(conn, sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(group)), group)
                    actions.append(f"create group role {group}")
            if not _scalar(conn, "SELECT has_database_privilege('app_owner', %s, 'CREATE')", (dbname,)):
                _execute(
                    conn,
                    sql.SQL("GRANT CREATE ON DATABASE {} TO app_owner").format(sql.Identifier(dbname)),
                    "app_owner",
                )
                actions.append(f"grant create on database {dbname} to app_owner")
            for user, group in USER_GROUPS.items():
                actions += _ensure_user(conn, user, group, passwords[user], user in stale)
            actions += _least_privilege(conn, dbname)
    except psycopg.Error as exc:
        raise BootstrapError(f"role bootstrap failed: {_safe(exc)}; the admin needs CREATEROLE") from None
    for action in actions:
        _log.info("bootstrap: %s", action)
    if not actions:
        _log.info("bootstrap: roles already in place, nothing changed")
    return BootstrapResult(tuple(actions))


def _ensure_user(conn: psycopg.Connection[Any], user: str, group: str, password: str, stale: bool) -> list[str]:
    actions: list[str] = []
    row = conn.execute("SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = %s", (user,)).fetchone()
    ident = sql.Identifier(user)
    if row is None:
        verifier = sql.Literal(scram_verifier(conn, user, password))
        _execute(conn, sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ident, verifier), user)
        actions.append(f"create login role {user}")
    else:
        if not row[0]:
            _execute(conn, sql.SQL("ALTER ROLE {} LOGIN").format(ident), user)
            actions.append(f"allow login for {user}")
        if stale:
            verifier = sql.Literal(scram_verifier(conn, user, password))
            _execute(conn, sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, verifier), user)
            actions.append(f"set password of {user}")
    member = _scalar(
        conn,
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m"
        " JOIN pg_catalog.pg_roles r ON r.oid = m.roleid JOIN pg_catalog.pg_roles u ON u.oid = m.member"
        " WHERE r.rolname = %s AND u.rolname = %s)",
        (group, user),
    )
    if not member:
        _execute(conn, sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), ident), user)
        actions.append(f"grant {group} to {user}")
    return actions


def _least_privilege(conn: psycopg.Connection[Any], dbname: str) -> list[str]:
    """Take away what the readers do not need: temporary tables, and writes (large objects).

    TEMP is PUBLIC's by default; only the owner and the application keep it. ``readonly``'s
    transactions are read-only by default, which refuses ``lo_create`` and every other write. A
    session may turn that default off again: where a superuser provisions (the local demo) the
    large-object creators are revoked from PUBLIC as well; on RDS and Cloud SQL those functions
    belong to the provider's superuser, so this default is what the managed admin can do.
    """
    actions: list[str] = []
    db = sql.Identifier(dbname)
    if _scalar(conn, "SELECT has_database_privilege('app_readonly', %s, 'TEMP')", (dbname,)):
        _execute(conn, sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC").format(db), "PUBLIC")
        grant = sql.SQL("GRANT TEMPORARY ON DATABASE {} TO app_owner, app_readwrite").format(db)
        _execute(conn, grant, "app_readwrite")
        actions.append(f"temporary tables on {dbname} for app_owner and app_readwrite only")
    read_only = _scalar(
        conn,
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_db_role_setting s JOIN pg_catalog.pg_roles r ON r.oid = s.setrole"
        " WHERE r.rolname = 'readonly' AND s.setdatabase = 0"
        " AND 'default_transaction_read_only=on' = ANY (s.setconfig))",
        (),
    )
    if not read_only:
        read_only_default = sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
            sql.Identifier("readonly")
        )
        _execute(conn, read_only_default, "readonly")
        actions.append("readonly's transactions read-only by default")
    return actions


def _role_exists(conn: psycopg.Connection[Any], role: str) -> bool:
    return bool(_scalar(conn, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s)", (role,)))


def _scalar(conn: psycopg.Connection[Any], query: LiteralString, params: tuple[object, ...]) -> object:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def _execute(conn: psycopg.Connection[Any], statement: sql.Composed, role: str, *, kind: str = "role") -> None:
    try:
        conn.execute(statement)
    except psycopg.Error as exc:
        # the statement may hold a verifier: name the role (or extension) and the server's reason only
        raise BootstrapError(f"could not bootstrap {kind} {role!r}: {_safe(exc)}") from None


def _safe(exc: psycopg.Error) -> str:
    diag = exc.diag.message_primary if exc.diag is not None else None
    return (diag or type(exc).__name__).strip()

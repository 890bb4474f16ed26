"""Post-migration verification as the application login (``app``), leaving no trace.

Creating a tenant and minting its token are platform actions the ``app`` login may not do, so
the platform side (the ``migrator`` connection, a member of the owner group) creates two
throwaway tenants A and B, mints their tokens, and deletes them at the end, whatever happens.
The checks run as ``app`` in one transaction that is always rolled back:

1. the session is TLS-encrypted and authenticated as ``app``;
2. with A's signed token (``app.set_tenant``), the app writes a ``users`` row and reads it back
   (the grants and the RLS ``WITH CHECK`` let a tenant write its own rows);
3. B writes its own row; switched back to A, B's rows are invisible, and a write into B is
   refused (row-level security isolates tenants both ways);
4. a bare ``SET app.tenant_id`` to B shows nothing of B, and a token forged from A's for B is
   refused (only a signed tenant context counts);
5. with no tenant set, even A's row is invisible (isolation fails closed).

:func:`verify_readonly` is the read half, as the read-only login (``readonly``), for a database
that must not be written (a restored copy in the restore drill): a tenant sees its own rows and
no other tenant's, nothing is visible with no tenant set, and a write is refused.

Each check is a :class:`Check`; the caller decides what a failure means (exit code 1).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

__all__ = ["Check", "VerifyResult", "verify_app", "verify_readonly"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class VerifyResult:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)


def _set_tenant(conn: psycopg.Connection[Any], token: str) -> None:
    # transaction-local, like the application's per-request setting
    conn.execute("SELECT app.set_tenant(%s)", (token,))


def _insert_user(conn: psycopg.Connection[Any], tenant: uuid.UUID, token: str, label: str) -> uuid.UUID:
    _set_tenant(conn, token)
    row = conn.execute(
        "INSERT INTO app.users (tenant_id, email, display_name) VALUES (%s, %s, %s) RETURNING id",
        (tenant, f"verify-{label}-{tenant.hex[:12]}@example.invalid", f"verify {label}"),
    ).fetchone()
    assert row is not None
    user_id: uuid.UUID = row[0]
    return user_id


@contextmanager
def _throwaway_tenants(platform: psycopg.Connection[Any]) -> Iterator[dict[uuid.UUID, str]]:
    """Two committed tenants and their tokens (5 minutes), deleted on exit whatever happened."""
    tenants = [uuid.uuid4(), uuid.uuid4()]
    tokens: dict[uuid.UUID, str] = {}
    try:
        with platform.transaction():
            for label, tenant in zip("ab", tenants, strict=True):
                row = platform.execute(
                    "SELECT app.set_tenant(app.mint_tenant_token(%s, interval '5 minutes')),"
                    " current_setting('app.tenant_token')",
                    (tenant,),
                ).fetchone()
                assert row is not None
                tokens[tenant] = str(row[1])
                platform.execute(
                    "INSERT INTO app.tenants (id, slug, name, status) VALUES (%s, %s, %s, 'archived')",
                    (tenant, f"verify-{label}-{tenant.hex[:12]}", f"post-deploy verification {label}"),
                )
        yield tokens
    finally:
        if not platform.closed:
            platform.rollback()
            with platform.transaction():
                for tenant, token in tokens.items():
                    _set_tenant(platform, token)
                    platform.execute("DELETE FROM app.tenants WHERE id = %s", (tenant,))


def verify_app(
    conn: psycopg.Connection[Any], platform: psycopg.Connection[Any], expected_user: str = "app"
) -> VerifyResult:
    """Run the checks on ``conn`` (a fresh connection as the app login); nothing is left behind.

    ``platform`` (the migrator) creates and removes the two throwaway tenants and mints their tokens.
    """
    checks: list[Check] = []
    checks.append(Check("tls", conn.pgconn.ssl_in_use, f"ssl in use: {conn.pgconn.ssl_in_use}"))
    try:
        with _throwaway_tenants(platform) as tokens, conn.transaction(force_rollback=True):  # never commits
            row = conn.execute("SELECT current_user").fetchone()
            who = row[0] if row else None
            checks.append(Check("login", who == expected_user, f"connected as {who!r}"))
            (tenant_a, token_a), (tenant_b, token_b) = tokens.items()
            try:
                with conn.transaction():
                    user_a = _insert_user(conn, tenant_a, token_a, "a")
                    _insert_user(conn, tenant_b, token_b, "b")
                    _set_tenant(conn, token_a)
                    found = conn.execute("SELECT email FROM app.users WHERE id = %s", (user_a,)).fetchone()
                    checks.append(
                        Check(
                            "write-read",
                            found is not None,
                            "tenant row written and read back" if found else "row not found",
                        )
                    )
                    row = conn.execute("SELECT count(*) FROM app.users WHERE tenant_id = %s", (tenant_b,)).fetchone()
                    other = row[0] if row else -1
                    checks.append(Check("rls-read", other == 0, f"other tenant's rows visible: {other}"))
                    checks.append(_cross_write(conn, tenant_b))
                    checks.append(_unsigned(conn, tenant_b, token_a))
                    conn.execute("SELECT pg_catalog.set_config('app.tenant_token', '', true)")
                    row = conn.execute("SELECT count(*) FROM app.users WHERE id = %s", (user_a,)).fetchone()
                    unset = row[0] if row else -1
                    checks.append(Check("rls-unset", unset == 0, f"rows visible with no tenant set: {unset}"))
            except psycopg.Error as exc:
                checks.append(Check("write-read", False, f"{type(exc).__name__}: {_primary(exc)}"))
    except psycopg.Error as exc:
        checks.append(Check("session", False, f"{type(exc).__name__}: {_primary(exc)}"))
    result = VerifyResult(tuple(checks))
    for check in result.checks:
        _log.info("verify %s: %s (%s)", check.name, "ok" if check.ok else "FAILED", check.detail)
    return result


def _unsigned(conn: psycopg.Connection[Any], other_tenant: uuid.UUID, token: str) -> Check:
    """A bare ``app.tenant_id`` grants nothing, and a token re-pointed at another tenant is refused."""
    with conn.transaction():
        conn.execute("SELECT pg_catalog.set_config('app.tenant_token', '', true)")
        conn.execute("SELECT pg_catalog.set_config('app.tenant_id', %s, true)", (str(other_tenant),))
        row = conn.execute("SELECT count(*) FROM app.users WHERE tenant_id = %s", (other_tenant,)).fetchone()
    if row is None or row[0] != 0:
        return Check("rls-signed", False, f"a bare app.tenant_id showed {row[0] if row else '?'} rows")
    version, _, expiry, mac = token.split(".")
    try:
        with conn.transaction():
            _set_tenant(conn, f"{version}.{other_tenant}.{expiry}.{mac}")
    except psycopg.errors.InvalidAuthorizationSpecification as exc:
        return Check("rls-signed", True, f"bare app.tenant_id shows nothing; forged token refused: {_primary(exc)}")
    return Check("rls-signed", False, "a token forged for another tenant was accepted")


#: Mints a tenant token (the owner's ``app.mint_tenant_token``); ``None`` for a database from before
#: the signed tenant context (0008), whose policies read the bare ``app.tenant_id``.
Mint = Callable[[uuid.UUID], "str | None"]


def verify_readonly(
    conn: psycopg.Connection[Any],
    *,
    mint: Mint,
    tenant: uuid.UUID | None = None,
    tenant_users: int | None = None,
    expected_user: str = "readonly",
) -> VerifyResult:
    """The read checks on ``conn`` (a fresh connection as the read-only login); nothing is committed.

    ``tenant`` and ``tenant_users``: a tenant that exists and how many users it has (counted by the
    caller with row-level security out of the way), so "sees its own rows" is checked on real data.
    With no tenant given, a tenant id that exists nowhere must see nothing. ``mint`` gives the
    tokens the read-only login may not mint itself.
    """
    checks: list[Check] = [Check("tls", conn.pgconn.ssl_in_use, f"ssl in use: {conn.pgconn.ssl_in_use}")]
    probe = tenant or uuid.uuid4()
    expected = tenant_users if tenant is not None and tenant_users is not None else 0
    try:
        with conn.transaction(force_rollback=True):
            row = conn.execute("SELECT current_user").fetchone()
            who = row[0] if row else None
            checks.append(Check("login", who == expected_user, f"connected as {who!r}"))
            _use_tenant(conn, probe, mint)
            row = conn.execute("SELECT count(*) FROM app.users").fetchone()
            own = row[0] if row else -1
            checks.append(
                Check("read", own == expected, f"{own} user row(s) visible to the tenant, {expected} expected")
            )
            row = conn.execute("SELECT count(*) FROM app.users WHERE tenant_id <> %s", (probe,)).fetchone()
            other = row[0] if row else -1
            checks.append(Check("rls-read", other == 0, f"other tenants' rows visible: {other}"))
            conn.execute("SELECT pg_catalog.set_config('app.tenant_token', '', true)")
            conn.execute("SELECT pg_catalog.set_config('app.tenant_id', '', true)")
            row = conn.execute("SELECT count(*) FROM app.users").fetchone()
            unset = row[0] if row else -1
            checks.append(Check("rls-unset", unset == 0, f"rows visible with no tenant set: {unset}"))
            checks.append(_write_refused(conn, mint))
    except psycopg.Error as exc:
        checks.append(Check("session", False, f"{type(exc).__name__}: {_primary(exc)}"))
    result = VerifyResult(tuple(checks))
    for check in result.checks:
        _log.info("verify (readonly) %s: %s (%s)", check.name, "ok" if check.ok else "FAILED", check.detail)
    return result


def _use_tenant(conn: psycopg.Connection[Any], tenant: uuid.UUID, mint: Mint) -> None:
    token = mint(tenant)
    if token is None:  # a copy from before 0008
        conn.execute("SELECT pg_catalog.set_config('app.tenant_id', %s, true)", (str(tenant),))
    else:
        _set_tenant(conn, token)


def _write_refused(conn: psycopg.Connection[Any], mint: Mint) -> Check:
    """The read-only login may not write, even into its own tenant."""
    tenant = uuid.uuid4()
    try:
        with conn.transaction():  # a savepoint: the refusal must not abort the outer transaction
            _use_tenant(conn, tenant, mint)
            conn.execute(
                "INSERT INTO app.tenants (id, slug, name) VALUES (%s, %s, %s)",
                (tenant, f"verify-ro-{tenant.hex[:12]}", "read-only verification"),
            )
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction) as exc:
        return Check("read-only", True, f"write refused: {_primary(exc)}")
    return Check("read-only", False, "the read-only login wrote a row")


def _cross_write(conn: psycopg.Connection[Any], other_tenant: uuid.UUID) -> Check:
    """A write into another tenant must be refused by RLS ``WITH CHECK``."""
    try:
        with conn.transaction():  # a savepoint: the refusal must not abort the outer transaction
            conn.execute(
                "INSERT INTO app.users (tenant_id, email, display_name) VALUES (%s, %s, %s)",
                (other_tenant, f"cross-{other_tenant.hex[:12]}@example.invalid", "verify cross"),
            )
    except psycopg.errors.InsufficientPrivilege as exc:
        return Check("rls-write", True, f"write into another tenant refused: {_primary(exc)}")
    except psycopg.errors.IntegrityError as exc:
        return Check("rls-write", True, f"write into another tenant refused: {_primary(exc)}")
    return Check("rls-write", False, "a row was written into another tenant")


def _primary(exc: psycopg.Error) -> str:
    return (exc.diag.message_primary if exc.diag is not None else None) or "no detail"

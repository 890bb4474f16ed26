"""Tenant isolation and least privilege, as the login users the application really uses.

Each test logs in over TCP as a throwaway member of one group role, the way the post-deploy
step's ``app`` / ``readonly`` users will, and sets ``app.tenant_id`` per transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from tests.fixtures.pg import PgDatabase
from tests.fixtures.schema import LoginFactory, World, build_world, use_tenant

TENANT_TABLES = (
    "tenants",
    "users",
    "user_roles",
    "subscriptions",
    "virtual_wallets",
    "coin_transactions",
    "audit_logs",
    "tenant_api_keys",
)


@pytest.fixture
def world(schema_db: PgDatabase) -> World:
    with schema_db.connect_admin(autocommit=True) as conn:
        world = build_world(conn)
        for key in ("a", "b"):
            tenant, user = getattr(world, f"tenant_{key}"), getattr(world, f"user_{key}")
            with conn.transaction():
                use_tenant(conn, tenant)
                conn.execute(
                    "INSERT INTO app.user_roles (tenant_id, user_id, role_id)"
                    " SELECT %s, %s, id FROM app.roles WHERE name = 'member'",
                    (tenant, user),
                )
                conn.execute(
                    "INSERT INTO app.subscriptions (tenant_id, user_id, plan, status, current_period_start,"
                    " current_period_end) VALUES (%s, %s, 'pro', 'active', now(), now() + interval '30 days')",
                    (tenant, user),
                )
                conn.execute(
                    "INSERT INTO app.audit_logs (tenant_id, user_id, action, resource_type)"
                    " VALUES (%s, %s, 'user.login', 'user')",
                    (tenant, user),
                )
                conn.execute(
                    "INSERT INTO app.tenant_api_keys (tenant_id, name, prefix, key_hash, permissions)"
                    " VALUES (%s, 'ci', %s, sha256(%s::bytea), '{wallet:read}')",
                    (tenant, f"pk_test_{key}xxxxx", f"secret-{key}".encode()),
                )
    return world


@pytest.fixture
def rw(login_as: LoginFactory, world: World) -> Iterator[psycopg.Connection[Any]]:
    with login_as("app_readwrite").connect(autocommit=True) as conn:
        yield conn


def _count(conn: psycopg.Connection[Any], table: str, tenant: str | None) -> int:
    with conn.transaction():
        use_tenant(conn, tenant)
        row = conn.execute(sql.SQL("SELECT count(*) FROM app.{}").format(sql.Identifier(table))).fetchone()
    assert row is not None
    return int(row[0])


def _error(
    conn: psycopg.Connection[Any], tenant: str | None, statement: str | sql.Composed, params: tuple[object, ...] = ()
) -> psycopg.Error:
    try:
        with conn.transaction():
            use_tenant(conn, tenant)
            conn.execute(statement, params)
    except psycopg.Error as exc:
        return exc
    pytest.fail(f"accepted: {statement!r}")


def _rowcount(conn: psycopg.Connection[Any], tenant: str, statement: str, params: tuple[object, ...]) -> int:
    with conn.transaction():
        use_tenant(conn, tenant)
        return conn.execute(statement, params).rowcount


def test_readwrite_sees_only_its_tenant_and_nothing_without_one(rw: psycopg.Connection[Any], world: World) -> None:
    for table in TENANT_TABLES:
        assert _count(rw, table, world.tenant_a) == 1, table
        assert _count(rw, table, None) == 0, table
    with rw.transaction():
        use_tenant(rw, world.tenant_a)
        assert rw.execute("SELECT id FROM app.users WHERE id = %s", (world.user_b,)).fetchall() == []
        assert rw.execute("SELECT id FROM app.virtual_wallets WHERE id = %s", (world.wallet_b,)).fetchall() == []
        visible = rw.execute("SELECT DISTINCT tenant_id::text FROM app.coin_transactions").fetchall()
        assert visible == [(world.tenant_a,)]
    # the per-request check the post-deploy step runs: insert and read back inside one tenant
    with rw.transaction():
        use_tenant(rw, world.tenant_a)
        rw.execute(
            "INSERT INTO app.users (tenant_id, email, display_name) VALUES (%s, 'new@a.example', 'New')",
            (world.tenant_a,),
        )
        tenants = rw.execute("SELECT DISTINCT tenant_id::text FROM app.users").fetchall()
        assert tenants == [(world.tenant_a,)]
    # an empty setting (what SET LOCAL leaves behind after commit) also shows nothing
    rw.execute("SET app.tenant_id = ''")
    assert rw.execute("SELECT count(*) FROM app.users").fetchone() == (0,)
    # a malformed tenant id is an error, never a wildcard
    assert isinstance(_error(rw, "not-a-uuid", "SELECT count(*) FROM app.users"), errors.InvalidTextRepresentation)


def test_readwrite_cannot_write_another_tenants_rows(rw: psycopg.Connection[Any], world: World) -> None:
    a, b = world.tenant_a, world.tenant_b
    rejected = _error(
        rw, a, "INSERT INTO app.users (tenant_id, email, display_name) VALUES (%s, 'x@b.example', 'X')", (b,)
    )
    assert isinstance(rejected, errors.InsufficientPrivilege), rejected  # row-level security WITH CHECK
    assert _rowcount(rw, a, "UPDATE app.users SET display_name = 'pwned' WHERE tenant_id = %s", (b,)) == 0
    assert _rowcount(rw, a, "DELETE FROM app.user_roles WHERE tenant_id = %s", (b,)) == 0
    assert _rowcount(rw, a, "DELETE FROM app.users WHERE id = %s", (world.user_b,)) == 0
    # moving one's own row into another tenant is refused too
    rejected = _error(rw, a, "UPDATE app.users SET tenant_id = %s WHERE id = %s", (b, world.user_a))
    assert isinstance(rejected, errors.InsufficientPrivilege | errors.ForeignKeyViolation), rejected
    # nor can coins be posted to the other tenant's wallet
    rejected = _error(rw, a, "SELECT app.post_coin_transaction(%s, 5, 'reward', 'steal')", (world.wallet_b,))
    assert isinstance(rejected, errors.ForeignKeyViolation), rejected
    with rw.transaction():
        use_tenant(rw, b)
        assert rw.execute("SELECT display_name FROM app.users WHERE id = %s", (world.user_b,)).fetchone() == (
            "Owner B",
        )
        assert rw.execute("SELECT balance FROM app.virtual_wallets").fetchone() == (100,)


def test_readwrite_privileges_are_least(rw: psycopg.Connection[Any], world: World) -> None:
    a = world.tenant_a
    denied = [
        ("UPDATE app.coin_transactions SET amount = 1 WHERE tenant_id = %s", (a,)),
        ("DELETE FROM app.coin_transactions WHERE tenant_id = %s", (a,)),
        ("UPDATE app.virtual_wallets SET balance = 1000000 WHERE tenant_id = %s", (a,)),
        ("UPDATE app.audit_logs SET action = 'x.y' WHERE tenant_id = %s", (a,)),
        ("DELETE FROM app.audit_logs WHERE tenant_id = %s", (a,)),
        ("DELETE FROM app.tenants WHERE id = %s", (a,)),
        ("INSERT INTO app.roles (name) VALUES ('hacker')", ()),
        ("DELETE FROM app.role_permissions", ()),
        ("CREATE TABLE app.sneaky (id bigint)", ()),
        ("ALTER TABLE app.users DISABLE ROW LEVEL SECURITY", ()),
        ("TRUNCATE app.audit_logs", ()),
        ("SET ROLE app_owner", ()),
    ]
    for statement, params in denied:
        assert isinstance(_error(rw, a, statement, params), errors.InsufficientPrivilege), statement
    # reading the catalog and posting through the ledger are allowed
    assert _count(rw, "roles", None) == 3
    with rw.transaction():
        use_tenant(rw, a)
        row = rw.execute(
            "SELECT balance_after FROM app.post_coin_transaction(%s, -30, 'debit', 'buy-1')", (world.wallet_a,)
        ).fetchone()
        assert row == (70,)


def test_readonly_reads_its_tenant_and_writes_nothing(login_as: LoginFactory, world: World) -> None:
    with login_as("app_readonly").connect(autocommit=True) as ro:
        assert _count(ro, "users", world.tenant_a) == 1
        assert _count(ro, "users", None) == 0
        rejected = _error(
            ro,
            world.tenant_a,
            "INSERT INTO app.users (tenant_id, email, display_name) VALUES (%s, 'r@a.example', 'R')",
            (world.tenant_a,),
        )
        assert isinstance(rejected, errors.InsufficientPrivilege)
        # secrets stay with the roles that check them
        for column, table in (("password_hash", "users"), ("key_hash", "tenant_api_keys")):
            statement = sql.SQL("SELECT {} FROM app.{}").format(sql.Identifier(column), sql.Identifier(table))
            assert isinstance(_error(ro, world.tenant_a, statement), errors.InsufficientPrivilege), column
        with ro.transaction():
            use_tenant(ro, world.tenant_a)
            assert ro.execute("SELECT email FROM app.users").fetchall() == [("owner@a.example",)]


def test_platform_admin_sees_and_manages_all_tenants(login_as: LoginFactory, world: World) -> None:
    with login_as("platform_admin").connect(autocommit=True) as pa:
        for table in TENANT_TABLES:
            assert _count(pa, table, None) == 2, table
        with pa.transaction():
            pa.execute("UPDATE app.tenants SET status = 'suspended' WHERE id = %s", (world.tenant_b,))
        flags = pa.execute("SELECT rolbypassrls FROM pg_roles WHERE rolname = current_user").fetchone()
        assert flags == (False,)  # an explicit policy, not BYPASSRLS


def test_a_login_without_a_group_cannot_use_the_schema(login_as: LoginFactory, world: World) -> None:
    with login_as("pg_monitor").connect(autocommit=True) as other:
        assert isinstance(_error(other, world.tenant_a, "SELECT count(*) FROM app.users"), errors.InsufficientPrivilege)
        assert isinstance(_error(other, None, "SELECT app.resolve_tenant('x')"), errors.InsufficientPrivilege)


def test_lookups_before_the_tenant_is_known(rw: psycopg.Connection[Any], world: World) -> None:
    with rw.transaction():
        use_tenant(rw, world.tenant_b)
        slug = rw.execute("SELECT slug FROM app.tenants").fetchone()
    assert slug is not None
    # no tenant set: the definer functions still resolve, and return identifiers only
    assert rw.execute("SELECT app.resolve_tenant(%s)::text", (slug[0],)).fetchone() == (world.tenant_b,)
    assert rw.execute("SELECT app.resolve_tenant('nope')").fetchone() == (None,)
    found = rw.execute(
        "SELECT tenant_id::text, permissions FROM app.authenticate_api_key(%s, %s)",
        ("pk_test_bxxxxx", hashlib.sha256(b"secret-b").digest()),
    ).fetchall()
    assert found == [(world.tenant_b, ["wallet:read"])]
    wrong = rw.execute(
        "SELECT count(*) FROM app.authenticate_api_key(%s, %s)", ("pk_test_bxxxxx", hashlib.sha256(b"guess").digest())
    ).fetchone()
    assert wrong == (0,)
    assert _count(rw, "tenant_api_keys", None) == 0
    assert _count(rw, "tenants", None) == 0

"""Every constraint of the bundled schema rejects its bad row, and cascades do what the schema says.

Run as the migrating admin (a member of app_owner): row-level security is forced on the owner
too, so each statement runs inside the tenant it names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from tests.fixtures.pg import PgDatabase
from tests.fixtures.schema import World, build_world, use_tenant


@pytest.fixture
def admin(schema_db: PgDatabase) -> Iterator[psycopg.Connection[Any]]:
    with schema_db.connect_admin(autocommit=True) as conn:
        yield conn


@pytest.fixture
def world(admin: psycopg.Connection[Any]) -> World:
    return build_world(admin)


@pytest.fixture(scope="module")
def shared(shared_schema_db: PgDatabase) -> Iterator[tuple[psycopg.Connection[Any], World]]:
    """The bad-row cases change nothing (each statement fails and rolls back): one database for all."""
    with shared_schema_db.connect_admin(autocommit=True) as conn:
        yield conn, build_world(conn)


def _reject(conn: psycopg.Connection[Any], tenant: str, statement: str, params: tuple[object, ...]) -> psycopg.Error:
    """The error ``statement`` fails with inside ``tenant`` (its transaction is rolled back)."""
    try:
        with conn.transaction():
            use_tenant(conn, tenant)
            conn.execute(statement, params)
    except psycopg.Error as exc:
        return exc
    pytest.fail(f"accepted: {statement}")


# (case id, tenant key, SQL, params built from the world, error class, constraint name)
BAD_ROWS: list[tuple[str, str, str, tuple[str, ...], type[psycopg.Error], str]] = [
    (
        "duplicate email in another case",
        "tenant_a",
        "INSERT INTO app.users (tenant_id, email, display_name) VALUES (%s, 'OWNER@A.example', 'Dup')",
        ("tenant_a",),
        errors.UniqueViolation,
        "users_tenant_email_key",
    ),
    (
        "unknown user status",
        "tenant_a",
        "INSERT INTO app.users (tenant_id, email, display_name, status) VALUES (%s, 'x@a.example', 'X', 'banned')",
        ("tenant_a",),
        errors.CheckViolation,
        "users_status_check",
    ),
    (
        "plain-text password",
        "tenant_a",
        "INSERT INTO app.users (tenant_id, email, display_name, password_hash)"
        " VALUES (%s, 'p@a.example', 'P', 'hunter2')",
        ("tenant_a",),
        errors.CheckViolation,
        "users_password_hash_check",
    ),
    (
        "malformed email",
        "tenant_a",
        "INSERT INTO app.users (tenant_id, email, display_name) VALUES (%s, 'not-an-email', 'N')",
        ("tenant_a",),
        errors.CheckViolation,
        "users_email_check",
    ),
    (
        "unknown tenant status",
        "tenant_a",
        "UPDATE app.tenants SET status = 'closed' WHERE id = %s",
        ("tenant_a",),
        errors.CheckViolation,
        "tenants_status_check",
    ),
    (
        "unknown subscription tier",
        "tenant_a",
        "UPDATE app.tenants SET subscription_tier = 'gold' WHERE id = %s",
        ("tenant_a",),
        errors.CheckViolation,
        "tenants_subscription_tier_check",
    ),
    (
        "user role pointing at another tenant's user",
        "tenant_a",
        "INSERT INTO app.user_roles (tenant_id, user_id, role_id)"
        " SELECT %s, %s, id FROM app.roles WHERE name = 'member'",
        ("tenant_a", "user_b"),
        errors.ForeignKeyViolation,
        "user_roles_user_fkey",
    ),
    (
        "unknown user role status",
        "tenant_a",
        "INSERT INTO app.user_roles (tenant_id, user_id, role_id, status)"
        " SELECT %s, %s, id, 'paused' FROM app.roles WHERE name = 'member'",
        ("tenant_a", "user_a"),
        errors.CheckViolation,
        "user_roles_status_check",
    ),
    (
        "unknown subscription status",
        "tenant_a",
        "INSERT INTO app.subscriptions (tenant_id, plan, status, current_period_start, current_period_end)"
        " VALUES (%s, 'pro', 'paused', now(), now() + interval '30 days')",
        ("tenant_a",),
        errors.CheckViolation,
        "subscriptions_status_check",
    ),
    (
        "subscription period ending before it starts",
        "tenant_a",
        "INSERT INTO app.subscriptions (tenant_id, plan, current_period_start, current_period_end)"
        " VALUES (%s, 'pro', now(), now() - interval '1 day')",
        ("tenant_a",),
        errors.CheckViolation,
        "subscriptions_period_check",
    ),
    (
        "subscription of another tenant's user",
        "tenant_a",
        "INSERT INTO app.subscriptions (tenant_id, user_id, plan, current_period_start, current_period_end)"
        " VALUES (%s, %s, 'pro', now(), now() + interval '30 days')",
        ("tenant_a", "user_b"),
        errors.ForeignKeyViolation,
        "subscriptions_user_fkey",
    ),
    (
        "wallet of another tenant's user",
        "tenant_a",
        "INSERT INTO app.virtual_wallets (tenant_id, user_id, currency) VALUES (%s, %s, 'GEM')",
        ("tenant_a", "user_b"),
        errors.ForeignKeyViolation,
        "virtual_wallets_user_fkey",
    ),
    (
        "second wallet in one currency",
        "tenant_a",
        "INSERT INTO app.virtual_wallets (tenant_id, user_id) VALUES (%s, %s)",
        ("tenant_a", "user_a"),
        errors.UniqueViolation,
        "virtual_wallets_user_id_currency_key",
    ),
    (
        "wallet created with a balance",
        "tenant_a",
        "INSERT INTO app.virtual_wallets (tenant_id, user_id, currency, balance) VALUES (%s, %s, 'GEM', 5)",
        ("tenant_a", "user_a"),
        errors.CheckViolation,
        "virtual_wallets_balance_check",
    ),
    (
        "debit that would go negative",
        "tenant_a",
        "INSERT INTO app.coin_transactions (tenant_id, wallet_id, amount, kind, idempotency_key)"
        " VALUES (%s, %s, -101, 'debit', 'too-much')",
        ("tenant_a", "wallet_a"),
        errors.CheckViolation,
        "virtual_wallets_balance_check",
    ),
    (
        "zero amount",
        "tenant_a",
        "INSERT INTO app.coin_transactions (tenant_id, wallet_id, amount, kind, idempotency_key)"
        " VALUES (%s, %s, 0, 'transfer', 'zero')",
        ("tenant_a", "wallet_a"),
        errors.CheckViolation,
        "coin_transactions_amount_check",
    ),
    (
        "debit with a positive amount",
        "tenant_a",
        "INSERT INTO app.coin_transactions (tenant_id, wallet_id, amount, kind, idempotency_key)"
        " VALUES (%s, %s, 5, 'debit', 'wrong-sign')",
        ("tenant_a", "wallet_a"),
        errors.CheckViolation,
        "coin_transactions_sign_check",
    ),
    (
        "unknown transaction kind",
        "tenant_a",
        "INSERT INTO app.coin_transactions (tenant_id, wallet_id, amount, kind, idempotency_key)"
        " VALUES (%s, %s, 5, 'gift', 'unknown-kind')",
        ("tenant_a", "wallet_a"),
        errors.CheckViolation,
        "coin_transactions_kind_check",
    ),
    (
        "reused idempotency key",
        "tenant_a",
        "INSERT INTO app.coin_transactions (tenant_id, wallet_id, amount, kind, idempotency_key)"
        " VALUES (%s, %s, 5, 'reward', 'initial')",
        ("tenant_a", "wallet_a"),
        errors.UniqueViolation,
        "coin_transactions_wallet_id_idempotency_key_key",
    ),
    (
        "ledger row on another tenant's wallet",
        "tenant_a",
        "INSERT INTO app.coin_transactions (tenant_id, wallet_id, amount, kind, idempotency_key)"
        " VALUES (%s, %s, 5, 'reward', 'cross')",
        ("tenant_a", "wallet_b"),
        errors.ForeignKeyViolation,
        "coin_transactions_wallet_fkey",
    ),
    (
        "audit details that are not an object",
        "tenant_a",
        "INSERT INTO app.audit_logs (tenant_id, action, resource_type, details)"
        " VALUES (%s, 'user.login', 'user', '[1]')",
        ("tenant_a",),
        errors.CheckViolation,
        "audit_logs_details_check",
    ),
    (
        "audit entry by another tenant's user",
        "tenant_a",
        "INSERT INTO app.audit_logs (tenant_id, user_id, action, resource_type) VALUES (%s, %s, 'user.login', 'user')",
        ("tenant_a", "user_b"),
        errors.ForeignKeyViolation,
        "audit_logs_user_fkey",
    ),
    (
        "api key hash that is not sha-256",
        "tenant_a",
        "INSERT INTO app.tenant_api_keys (tenant_id, name, prefix, key_hash) VALUES (%s, 'ci', 'pk_test_1', '\\x00')",
        ("tenant_a",),
        errors.CheckViolation,
        "tenant_api_keys_key_hash_check",
    ),
]


@pytest.mark.parametrize(
    ("tenant", "statement", "params", "error", "constraint"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_ROWS],
)
def test_constraint_rejects_bad_row(
    shared: tuple[psycopg.Connection[Any], World],
    tenant: str,
    statement: str,
    params: tuple[str, ...],
    error: type[psycopg.Error],
    constraint: str,
) -> None:
    admin, world = shared
    rejected = _reject(admin, getattr(world, tenant), statement, tuple(getattr(world, p) for p in params))
    assert isinstance(rejected, error), rejected
    assert rejected.diag.constraint_name == constraint, rejected


def test_same_email_in_another_tenant_is_fine(admin: psycopg.Connection[Any], world: World) -> None:
    with admin.transaction():
        use_tenant(admin, world.tenant_b)
        admin.execute(
            "INSERT INTO app.users (tenant_id, email, display_name) VALUES (%s, 'OWNER@a.example', 'Same')",
            (world.tenant_b,),
        )
        row = admin.execute(
            "SELECT count(*) FROM app.users WHERE tenant_id = %s AND lower(email) = 'owner@a.example'",
            (world.tenant_b,),
        ).fetchone()
        assert row == (1,)  # the same address as tenant A's owner, stored once for tenant B


def test_duplicate_external_subscription_id(admin: psycopg.Connection[Any], world: World) -> None:
    statement = (
        "INSERT INTO app.subscriptions (tenant_id, plan, status, current_period_start, current_period_end,"
        " external_customer_id, external_subscription_id)"
        " VALUES (%s, 'pro', 'active', now(), now() + interval '30 days', 'cus_1', 'sub_1')"
    )
    with admin.transaction():
        use_tenant(admin, world.tenant_a)
        admin.execute(statement, (world.tenant_a,))
    # in either tenant: a provider subscription is recorded once
    rejected = _reject(admin, world.tenant_b, statement, (world.tenant_b,))
    assert isinstance(rejected, errors.UniqueViolation)


def test_balance_is_the_sum_of_the_ledger(admin: psycopg.Connection[Any], world: World) -> None:
    with admin.transaction():
        use_tenant(admin, world.tenant_a)
        for key, amount, kind in [("r1", 30, "reward"), ("d1", -45, "debit"), ("t1", -5, "transfer")]:
            admin.execute("SELECT app.post_coin_transaction(%s, %s, %s, %s)", (world.wallet_a, amount, kind, key))
        # an idempotent replay returns the recorded row and moves nothing
        admin.execute("SELECT app.post_coin_transaction(%s, -45, 'debit', 'd1')", (world.wallet_a,))
        row = admin.execute(
            "SELECT w.balance, (SELECT sum(amount) FROM app.coin_transactions t WHERE t.wallet_id = w.id),"
            " (SELECT balance_after FROM app.coin_transactions t WHERE t.wallet_id = w.id ORDER BY id DESC LIMIT 1)"
            " FROM app.virtual_wallets w WHERE w.id = %s",
            (world.wallet_a,),
        ).fetchone()
    assert row == (80, 80, 80)
    # a replay with a different amount is refused, not silently accepted
    rejected = _reject(
        admin, world.tenant_a, "SELECT app.post_coin_transaction(%s, -1, 'debit', 'd1')", (world.wallet_a,)
    )
    assert isinstance(rejected, errors.UniqueViolation)


def test_on_conflict_do_nothing_cannot_move_the_balance_twice(admin: psycopg.Connection[Any], world: World) -> None:
    rejected = _reject(
        admin,
        world.tenant_a,
        "INSERT INTO app.coin_transactions (tenant_id, wallet_id, amount, kind, idempotency_key)"
        " VALUES (%s, %s, 100, 'purchase', 'initial') ON CONFLICT DO NOTHING",
        (world.tenant_a, world.wallet_a),
    )
    assert isinstance(rejected, errors.UniqueViolation)
    with admin.transaction():
        use_tenant(admin, world.tenant_a)
        assert admin.execute("SELECT balance FROM app.virtual_wallets WHERE id = %s", (world.wallet_a,)).fetchone() == (
            100,
        )


def test_ledger_and_balance_cannot_be_rewritten_even_by_the_owner(admin: psycopg.Connection[Any], world: World) -> None:
    for statement in (
        "UPDATE app.coin_transactions SET amount = 1000 WHERE wallet_id = %s",
        "DELETE FROM app.coin_transactions WHERE wallet_id = %s",
        "UPDATE app.virtual_wallets SET balance = 1000 WHERE id = %s",
    ):
        rejected = _reject(admin, world.tenant_a, statement, (world.wallet_a,))
        assert isinstance(rejected, errors.InsufficientPrivilege), statement
    rejected = _reject(admin, world.tenant_a, "TRUNCATE app.coin_transactions CASCADE", ())
    assert isinstance(rejected, errors.InsufficientPrivilege)
    with admin.transaction():
        use_tenant(admin, world.tenant_a)
        admin.execute(
            "INSERT INTO app.audit_logs (tenant_id, action, resource_type) VALUES (%s, 'user.login', 'user')",
            (world.tenant_a,),
        )
    rejected = _reject(
        admin,
        world.tenant_a,
        "UPDATE app.audit_logs SET action = 'user.logout' WHERE tenant_id = %s",
        (world.tenant_a,),
    )
    assert isinstance(rejected, errors.InsufficientPrivilege)


def _count(conn: psycopg.Connection[Any], tenant: str, table: str) -> int:
    with conn.transaction():
        use_tenant(conn, tenant)
        row = conn.execute(sql.SQL("SELECT count(*) FROM app.{}").format(sql.Identifier(table))).fetchone()
    assert row is not None
    return int(row[0])


def test_cascades(admin: psycopg.Connection[Any], world: World) -> None:
    a, b = world.tenant_a, world.tenant_b
    with admin.transaction():
        use_tenant(admin, a)
        second = admin.execute(
            "INSERT INTO app.users (tenant_id, email, display_name) VALUES (%s, 'second@a.example', 'Second')"
            " RETURNING id",
            (a,),
        ).fetchone()
        assert second is not None
        admin.execute(
            "INSERT INTO app.user_roles (tenant_id, user_id, role_id, assigned_by)"
            " SELECT %s, %s, id, %s FROM app.roles WHERE name = 'member'",
            (a, second[0], world.user_a),
        )
        admin.execute(
            "INSERT INTO app.user_roles (tenant_id, user_id, role_id, assigned_by)"
            " SELECT %s, %s, id, %s FROM app.roles WHERE name = 'tenant_admin'",
            (a, world.user_a, second[0]),
        )
        admin.execute("INSERT INTO app.virtual_wallets (tenant_id, user_id) VALUES (%s, %s)", (a, second[0]))
        admin.execute(
            "INSERT INTO app.subscriptions (tenant_id, user_id, plan, current_period_start, current_period_end)"
            " VALUES (%s, %s, 'pro', now(), now() + interval '30 days')",
            (a, second[0]),
        )
        admin.execute(
            "INSERT INTO app.audit_logs (tenant_id, user_id, action, resource_type)"
            " VALUES (%s, %s, 'user.login', 'user')",
            (a, second[0]),
        )
        admin.execute(
            "INSERT INTO app.tenant_api_keys (tenant_id, name, prefix, key_hash, created_by)"
            " VALUES (%s, 'ci', 'pk_test_cascade', sha256('k'), %s)",
            (a, second[0]),
        )
        # deleting a user without ledger history: roles and empty wallet go, references are cleared
        admin.execute("DELETE FROM app.users WHERE id = %s", (second[0],))
        rows = admin.execute(
            "SELECT (SELECT count(*) FROM app.user_roles WHERE user_id = %(u)s),"
            " (SELECT count(*) FROM app.virtual_wallets WHERE user_id = %(u)s),"
            " (SELECT count(*) FROM app.user_roles WHERE assigned_by IS NULL AND user_id = %(o)s),"
            " (SELECT count(*) FROM app.subscriptions WHERE user_id IS NULL),"
            " (SELECT count(*) FROM app.audit_logs WHERE user_id IS NULL),"
            " (SELECT count(*) FROM app.tenant_api_keys WHERE created_by IS NULL)",
            {"u": second[0], "o": world.user_a},
        ).fetchone()
        assert rows == (0, 0, 1, 1, 1, 1)

    # a user (or tenant) with ledger history cannot be hard-deleted
    rejected = _reject(admin, a, "DELETE FROM app.users WHERE id = %s", (world.user_a,))
    assert isinstance(rejected, errors.RestrictViolation | errors.ForeignKeyViolation)
    rejected = _reject(admin, a, "DELETE FROM app.tenants WHERE id = %s", (a,))
    assert isinstance(rejected, errors.RestrictViolation | errors.ForeignKeyViolation)
    # a role that is assigned cannot leave the catalog
    rejected = _reject(admin, a, "DELETE FROM app.roles WHERE name = 'tenant_admin'", ())
    assert isinstance(rejected, errors.RestrictViolation | errors.ForeignKeyViolation)
    assert _count(admin, a, "users") == 1
    assert _count(admin, b, "users") == 1

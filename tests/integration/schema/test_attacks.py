"""Issue 11, items 4 and 6-8: the attacks as the issue wrote them, on the bundled schema, now refused.

Each test logs in over TCP as a throwaway member of the group role the attack used (``app`` is
``app_readwrite``, ``readonly`` is ``app_readonly``, the owner is ``app_owner``) and also shows
that the legitimate path still works.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import psycopg
import pytest
from psycopg import errors

from infra.errors import LockTimeout, SafetyError
from infra.migrations import commands
from infra.migrations.ledger import LOCK_KEY
from infra.migrations.runner import RunOptions
from infra.postdeploy.seed import reset
from tests.fixtures.pg import PgDatabase
from tests.fixtures.schema import LoginFactory, World, build_world, mint_token, target_for, use_tenant


@pytest.fixture
def world(schema_db: PgDatabase) -> World:
    with schema_db.connect_admin(autocommit=True) as conn:
        return build_world(conn)


def _attempt(
    conn: psycopg.Connection[Any], tenant: str, statement: str, params: dict[str, Any] | tuple[Any, ...] = ()
) -> psycopg.Error | None:
    """Run ``statement`` in its own transaction with ``tenant`` set; the error it raised, if any."""
    try:
        with conn.transaction():
            use_tenant(conn, tenant)
            conn.execute(statement, params)
    except psycopg.Error as exc:
        return exc
    return None


def _emails(conn: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in conn.execute("SELECT email FROM app.users ORDER BY email")]


def _sign(db: PgDatabase, message: str) -> str:
    """HMAC-SHA-256 of ``message`` with the database's key, in Python (what a key holder could do)."""
    with db.connect_superuser() as conn:
        row = conn.execute("SELECT inner_key, outer_key FROM app_private.tenant_context_key").fetchone()
    assert row is not None
    inner, outer = bytes(row[0]), bytes(row[1])
    return hashlib.sha256(outer + hashlib.sha256(inner + message.encode()).digest()).hexdigest()


# -- 6. tenant context ------------------------------------------------------------------------


@pytest.mark.parametrize("group", ["app_readwrite", "app_readonly"])
def test_a_bare_set_of_app_tenant_id_shows_nothing(
    schema_db: PgDatabase, world: World, login_as: LoginFactory, group: str
) -> None:
    """The attack: ``SET app.tenant_id = '<other tenant>'`` as app or readonly. It grants nothing."""
    with login_as(group).connect(autocommit=True) as conn:
        conn.execute(f"SET app.tenant_id = '{world.tenant_b}'")
        assert _emails(conn) == []
        assert conn.execute("SELECT count(*) FROM app.virtual_wallets").fetchone() == (0,)
        # the legitimate path: a signed token for tenant A shows A, and only A
        with conn.transaction():
            use_tenant(conn, world.tenant_a)
            assert _emails(conn) == ["owner@a.example"]


def test_forged_expired_and_self_minted_tokens_are_refused(
    schema_db: PgDatabase, world: World, login_as: LoginFactory
) -> None:
    good = mint_token(schema_db.name, world.tenant_a)
    _, _, expiry, mac = good.split(".")
    forged = f"v1.{world.tenant_b}.{expiry}.{mac}"  # A's signature on B's id
    past = str(int(time.time()) - 60)
    expired = f"v1.{world.tenant_a}.{past}.{_sign(schema_db, f'v1.{world.tenant_a}.{past}')}"
    with login_as("app_readwrite").connect() as conn:
        with pytest.raises(errors.InvalidAuthorizationSpecification, match="signature does not verify"):
            conn.execute("SELECT app.set_tenant(%s)", (forged,))
        conn.rollback()
        with pytest.raises(errors.InvalidAuthorizationSpecification, match="expired"):
            conn.execute("SELECT app.set_tenant(%s)", (expired,))
        conn.rollback()
        # setting the token variable by hand skips set_tenant, not the check: every policy checks it
        conn.execute("SELECT set_config('app.tenant_token', %s, true)", (forged,))
        with pytest.raises(errors.InvalidAuthorizationSpecification, match="signature does not verify"):
            _emails(conn)
        conn.rollback()
        # the application may neither mint nor read the key
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT app.mint_tenant_token(%s)", (world.tenant_b,))
        conn.rollback()
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM app_private.tenant_context_key")
        conn.rollback()
        assert conn.execute("SELECT app.set_tenant(%s)::text", (good,)).fetchone() == (world.tenant_a,)
        assert _emails(conn) == ["owner@a.example"]


def test_set_tenant_lasts_one_transaction_as_a_transaction_pooler_needs(
    schema_db: PgDatabase, world: World, login_as: LoginFactory
) -> None:
    """Behind a transaction-pooling pooler the next transaction on this server connection may be
    another client's: the tenant must be gone by then."""
    token = mint_token(schema_db.name, world.tenant_a)
    with login_as("app_readwrite").connect() as conn:
        conn.execute("BEGIN")
        conn.execute("SELECT app.set_tenant(%s)", (token,))
        assert _emails(conn) == ["owner@a.example"]
        conn.execute("COMMIT")
        # the next client's transaction on the same server session
        assert conn.execute("SELECT app.current_tenant()").fetchone() == (None,)
        assert _emails(conn) == []
        conn.rollback()
        # outside a transaction block the setting ends with its own statement
        conn.autocommit = True
        conn.execute("SELECT app.set_tenant(%s)", (token,))
        assert _emails(conn) == []


def test_tenants_and_tiers_are_platform_actions(world: World, login_as: LoginFactory) -> None:
    with login_as("app_readwrite").connect() as conn:
        with conn.transaction():
            use_tenant(conn, world.tenant_a)
            # the tenant profile stays the application's
            conn.execute("UPDATE app.tenants SET name = 'Tenant A renamed' WHERE id = %s", (world.tenant_a,))
        for statement in (
            "INSERT INTO app.tenants (id, slug, name) VALUES (app.current_tenant(), 'new-tenant', 'New')",
            "UPDATE app.tenants SET subscription_tier = 'enterprise'",
            "UPDATE app.tenants SET status = 'active'",
        ):
            assert isinstance(_attempt(conn, world.tenant_a, statement), errors.InsufficientPrivilege), statement


@pytest.mark.parametrize("group", ["app_readwrite", "app_readonly"])
def test_no_sequence_value_is_readable(world: World, login_as: LoginFactory, group: str) -> None:
    with login_as(group).connect() as conn:
        for statement in (
            "SELECT last_value FROM app.coin_transactions_id_seq",
            "SELECT pg_sequence_last_value('app.audit_logs_id_seq')",
            "SELECT currval('app.coin_transactions_id_seq')",
        ):
            with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
                conn.execute(statement)
        hidden = conn.execute("SELECT count(*) FROM pg_sequences WHERE schemaname = 'app' AND last_value IS NOT NULL")
        assert hidden.fetchone() == (0,)


# -- 4. the money path ------------------------------------------------------------------------


def _balance_and_rows(db: PgDatabase, wallet: str) -> tuple[Any, ...]:
    with db.connect_superuser() as conn:
        row = conn.execute(
            "SELECT (SELECT balance FROM app.virtual_wallets WHERE id = %s),"
            " (SELECT count(*) FROM app.coin_transactions WHERE wallet_id = %s)",
            (wallet, wallet),
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_app_cannot_choose_ledger_or_audit_ids(world: World, login_as: LoginFactory) -> None:
    with login_as("app_readwrite").connect() as conn:
        for statement in (
            "INSERT INTO app.coin_transactions (id, tenant_id, wallet_id, amount, kind, idempotency_key)"
            " OVERRIDING SYSTEM VALUE VALUES (999999, %(t)s, %(w)s, 5, 'credit', 'chosen-id')",
            "INSERT INTO app.audit_logs (id, tenant_id, action, resource_type)"
            " OVERRIDING SYSTEM VALUE VALUES (999999, %(t)s, 'user.login', 'user')",
        ):
            refused = _attempt(conn, world.tenant_a, statement, {"t": world.tenant_a, "w": world.wallet_a})
            assert isinstance(refused, errors.InsufficientPrivilege), statement
            assert "permission denied for table" in str(refused)
        with conn.transaction():  # the legitimate insert, ids from the database
            use_tenant(conn, world.tenant_a)
            conn.execute(
                "INSERT INTO app.audit_logs (tenant_id, action, resource_type) VALUES (%s, 'user.login', 'user')",
                (world.tenant_a,),
            )


@pytest.mark.parametrize("clash", ["sequence left behind by a restore", "id taken with OVERRIDING SYSTEM VALUE"])
def test_an_id_clash_is_an_error_not_an_empty_success(
    schema_db: PgDatabase, world: World, login_as: LoginFactory, clash: str
) -> None:
    with schema_db.connect_admin(autocommit=True) as owner:
        if clash.startswith("sequence"):
            owner.execute("SELECT setval(pg_get_serial_sequence('app.coin_transactions', 'id'), 1, false)")
        else:
            with owner.transaction():
                use_tenant(owner, world.tenant_a)
                owner.execute(
                    "INSERT INTO app.coin_transactions (id, tenant_id, wallet_id, amount, kind, idempotency_key)"
                    " OVERRIDING SYSTEM VALUE"
                    " VALUES (nextval(pg_get_serial_sequence('app.coin_transactions', 'id')) + 1, %s, %s, 1,"
                    " 'credit', 'owner-chose-the-next-id')",
                    (world.tenant_a, world.wallet_a),
                )
    before = _balance_and_rows(schema_db, world.wallet_a)
    with login_as("app_readwrite").connect() as conn:
        post = "SELECT * FROM app.post_coin_transaction(%s, -5, 'debit', 'order-1')"
        clashed = _attempt(conn, world.tenant_a, post, (world.wallet_a,))
        assert isinstance(clashed, errors.UniqueViolation)
        assert clashed.diag.constraint_name == "coin_transactions_pkey"
    assert _balance_and_rows(schema_db, world.wallet_a) == before


# -- 7. readonly and the engine ---------------------------------------------------------------


def test_readonly_holding_the_lock_is_named_not_waited_for_silently(
    schema_db: PgDatabase, login_as: LoginFactory
) -> None:
    reader = login_as("app_readonly")
    with reader.connect(autocommit=True) as attacker:
        assert attacker.execute("SELECT pg_try_advisory_lock(%s, %s)", LOCK_KEY).fetchone() == (True,)
        with pytest.raises(LockTimeout, match=rf"role '{reader.name}' cannot create in this database.*pg_terminate"):
            commands.migrate(
                commands.MigrationContext(
                    target_for(schema_db).connection,
                    target_for(schema_db).migrations_dir,
                    options=RunOptions(lock_wait=0.2),
                )
            )
        with pytest.raises(SafetyError, match=rf"user {reader.name}.*not a migration run"):
            reset(target_for(schema_db).connection, confirm=schema_db.name)


# -- 8. the ledger and its owner --------------------------------------------------------------


def test_the_owner_rewrites_the_ledger_only_through_ddl_that_the_server_logs(
    schema_db: PgDatabase, world: World, login_as: LoginFactory
) -> None:
    """The claim is corrected (schema/README "Money"): DML is refused to every role, the owner
    included; the owner can still change the table's definition, and that is DDL, which the server
    logs with the role's name (``log_statement=ddl`` on RDS and Cloud SQL, set by provisioning;
    ``all`` in this test cluster), outside the owner's reach."""
    owner = login_as("app_owner")
    with owner.connect() as conn:
        use_tenant(conn, world.tenant_a)
        with pytest.raises(errors.InsufficientPrivilege, match="append-only"), conn.transaction():
            conn.execute("UPDATE app.coin_transactions SET amount = 1")
        conn.execute("ALTER TABLE app.coin_transactions DISABLE TRIGGER coin_transactions_append_only")
        changed = conn.execute("UPDATE app.coin_transactions SET amount = 1 WHERE wallet_id = %s", (world.wallet_a,))
        assert changed.rowcount == 1  # the owner can, by changing the table first
        conn.rollback()
    log = schema_db.cluster.log_path.read_text(errors="replace")
    assert (
        f"{owner.name}@{schema_db.name} LOG:  statement: "
        "ALTER TABLE app.coin_transactions DISABLE TRIGGER coin_transactions_append_only"
    ) in log


# -- the documents table ----------------------------------------------------------------------


def test_documents_are_tenant_scoped_and_cannot_point_at_another_tenants_user(
    world: World, login_as: LoginFactory
) -> None:
    insert = (
        "INSERT INTO app.documents (tenant_id, user_id, title, content_hash, metadata)"
        " VALUES (%s, %s, 'Q3 report', sha256('q3'::bytea), '{\"kind\": \"report\"}')"
    )
    with login_as("app_readwrite").connect() as conn:
        with conn.transaction():
            use_tenant(conn, world.tenant_a)
            conn.execute(insert, (world.tenant_a, world.user_a))
        # tenant A's document naming tenant B's user: the composite foreign key refuses it
        refused = _attempt(conn, world.tenant_a, insert, (world.tenant_a, world.user_b))
        assert isinstance(refused, errors.ForeignKeyViolation)
        assert refused.diag.constraint_name == "documents_user_fkey"
        # and a row for tenant B from A's context: row-level security refuses it
        assert isinstance(
            _attempt(conn, world.tenant_a, insert, (world.tenant_b, world.user_b)), errors.InsufficientPrivilege
        )
        with conn.transaction():
            use_tenant(conn, world.tenant_b)
            assert conn.execute("SELECT count(*) FROM app.documents").fetchone() == (0,)
            use_tenant(conn, world.tenant_a)
            found = conn.execute("SELECT title, metadata->>'kind' FROM app.documents").fetchall()
            assert found == [("Q3 report", "report")]
